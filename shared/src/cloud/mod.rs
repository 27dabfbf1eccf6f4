//! Ports to the systems the DM drives: EC2 [`Compute`], Auto Scaling [`Scaling`],
//! S3 [`ObjectStore`], Lambda [`Functions`], CloudWatch [`Metrics`], Route 53
//! [`Dns`], RDS [`GlobalDatabase`], the DynamoDB [`Fence`] and the node agents
//! [`Agents`]. Workflows are written against these traits; the real
//! adapters in [`aws`] (behind the `aws-*` cargo features) use the AWS SDK, and
//! integration tests run them against the emulator. [`agents`] holds the HTTP
//! prober of the node agents.
//!
//! Every call names its region, because a DM manages environments in several.

pub mod agents;
#[cfg(feature = "aws")]
pub mod aws;
pub mod upload;

use std::future::Future;

use crate::domain::failover::{FailoverRequest, FailoverState, Leader};
use crate::domain::health::AgentReport;
use crate::domain::security_group::Peer;
use crate::domain::InstanceSize;

/// How an AWS call failed, classed for the caller's retry decision. The SDK has
/// already retried throttling and 5xx answers by the time one of these surfaces.
#[derive(Debug, thiserror::Error)]
#[error("{op} failed: {code}: {message}")]
pub struct CloudError {
    pub op: &'static str,
    pub kind: CloudErrorKind,
    pub code: String,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudErrorKind {
    /// The resource exists already (a create lost a race, or ran twice).
    AlreadyExists,
    /// The resource is gone (a delete ran twice).
    NotFound,
    /// Throttled, 5xx, or the network: trying again later may succeed.
    Transient,
    /// The request itself is wrong; trying again will not help.
    Permanent,
}

impl CloudError {
    pub fn is_retryable(&self) -> bool {
        self.kind == CloudErrorKind::Transient
    }
}

pub type CloudResult<T> = Result<T, CloudError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    /// Inbound TCP rules, one entry per (port, peer).
    pub rules: Vec<(u16, Peer)>,
}

/// An inbound rule to add: port, peer and description.
pub type IngressRule = (u16, Peer, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplate {
    pub id: String,
    pub name: String,
}

/// What a cluster's nodes are launched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplateSpec {
    pub name: String,
    pub image_id: String,
    pub instance_type: String,
    pub storage_gb: i32,
    pub security_group_ids: Vec<String>,
    /// The instance profile (ARN) that gives nodes their role.
    pub instance_profile: Option<String>,
    /// Plain text; the adapter encodes it.
    pub user_data: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// EC2 state name: `pending`, `running`, `shutting-down`, `terminated`, ...
    pub state: String,
    pub availability_zone: String,
    pub private_ip: Option<String>,
    /// The `okera:cluster-id` tag, when it holds a number.
    pub cluster_id: Option<i64>,
    /// Epoch milliseconds.
    pub launched_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupInstance {
    pub id: String,
    /// Auto Scaling lifecycle state: `Pending`, `InService`, `Terminating`, ...
    pub lifecycle_state: String,
    pub availability_zone: String,
    /// `Healthy` or `Unhealthy`, as Auto Scaling sees it.
    pub health_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub instances: Vec<GroupInstance>,
    /// Set while AWS deletes the group.
    pub deleting: bool,
}

/// An Auto Scaling group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: String,
    pub launch_template_id: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub subnet_ids: Vec<String>,
    /// Propagated to the instances the group launches.
    pub tags: Vec<(String, String)>,
    /// Created with the group, so that no instance launches before them.
    pub hooks: Vec<HookSpec>,
}

/// Which transition a lifecycle hook holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Launching,
    Terminating,
}

impl Transition {
    pub fn as_aws(self) -> &'static str {
        match self {
            Transition::Launching => "autoscaling:EC2_INSTANCE_LAUNCHING",
            Transition::Terminating => "autoscaling:EC2_INSTANCE_TERMINATING",
        }
    }
}

/// A lifecycle hook on a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub name: String,
    pub transition: Transition,
    /// Seconds before `default_result` applies, unless a heartbeat restarts it.
    pub heartbeat_timeout_s: i32,
    /// `CONTINUE` or `ABANDON`.
    pub default_result: &'static str,
}

/// One instance held at a lifecycle hook, as the lifecycle event names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleAction {
    pub group: String,
    pub hook: String,
    pub token: String,
    pub instance_id: String,
}

/// How to end a lifecycle action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionResult {
    Continue,
    Abandon,
}

impl ActionResult {
    pub fn as_aws(self) -> &'static str {
        match self {
            ActionResult::Continue => "CONTINUE",
            ActionResult::Abandon => "ABANDON",
        }
    }
}

/// The most group names one `DescribeAutoScalingGroups` call takes.
pub const GROUPS_PER_DESCRIBE: usize = 50;
/// The most instances one `DescribeInstances` page returns.
pub const INSTANCES_PER_PAGE: i32 = 1000;

/// EC2: networks, security groups, launch templates and instances.
pub trait Compute: Send + Sync {
    fn default_vpc(&self, region: &str) -> impl Future<Output = CloudResult<Option<Vpc>>> + Send;
    fn vpc(&self, region: &str, vpc_id: &str) -> impl Future<Output = CloudResult<Option<Vpc>>> + Send;
    fn subnets(&self, region: &str, vpc_id: &str) -> impl Future<Output = CloudResult<Vec<String>>> + Send;
    /// The instance types offered in the region, with their sizes.
    fn instance_types(
        &self,
        region: &str,
    ) -> impl Future<Output = CloudResult<Vec<(String, InstanceSize)>>> + Send;
    /// Security groups in a VPC that carry the tag `key=value`.
    fn security_groups_tagged(
        &self,
        region: &str,
        vpc_id: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = CloudResult<Vec<SecurityGroup>>> + Send;
    /// Creates a group, tagged at creation; `AlreadyExists` if the name is taken.
    fn create_security_group(
        &self,
        region: &str,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = CloudResult<String>> + Send;
    fn authorize_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[IngressRule],
    ) -> impl Future<Output = CloudResult<()>> + Send;
    fn revoke_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[(u16, Peer)],
    ) -> impl Future<Output = CloudResult<()>> + Send;
    fn delete_security_group(
        &self,
        region: &str,
        group_id: &str,
    ) -> impl Future<Output = CloudResult<()>> + Send;
    fn launch_templates_tagged(
        &self,
        region: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = CloudResult<Vec<LaunchTemplate>>> + Send;
    /// Creates a template, tagged at creation; `AlreadyExists` if the name is taken.
    fn create_launch_template(
        &self,
        region: &str,
        spec: &LaunchTemplateSpec,
    ) -> impl Future<Output = CloudResult<LaunchTemplate>> + Send;
    fn delete_launch_template(&self, region: &str, id: &str) -> impl Future<Output = CloudResult<()>> + Send;
    /// Instances that carry the tag `key=value` and are not yet terminated.
    fn instances_tagged(
        &self,
        region: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = CloudResult<Vec<Instance>>> + Send;
    fn terminate_instances(
        &self,
        region: &str,
        ids: &[String],
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// Every instance the DM launched (`LaunchedBy=Okera`) that is not yet
    /// terminated, in pages of [`INSTANCES_PER_PAGE`]: one call per page.
    fn managed_instances(&self, region: &str) -> impl Future<Output = CloudResult<Vec<Instance>>> + Send;
    /// One instance by id, `None` once it is gone.
    fn instance(&self, region: &str, id: &str) -> impl Future<Output = CloudResult<Option<Instance>>> + Send;
}

/// Auto Scaling groups.
pub trait Scaling: Send + Sync {
    /// Groups that carry the tag `key=value`.
    fn groups_tagged(
        &self,
        region: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = CloudResult<Vec<Group>>> + Send;
    /// Creates a group; `AlreadyExists` if the name is taken.
    fn create_group(&self, region: &str, spec: &GroupSpec) -> impl Future<Output = CloudResult<()>> + Send;
    fn resize_group(
        &self,
        region: &str,
        name: &str,
        min: i32,
        max: i32,
        desired: i32,
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// Deletes a group and terminates its instances.
    fn delete_group(&self, region: &str, name: &str) -> impl Future<Output = CloudResult<()>> + Send;
    /// The named groups that exist, [`GROUPS_PER_DESCRIBE`] names per call.
    fn groups_named(
        &self,
        region: &str,
        names: &[String],
    ) -> impl Future<Output = CloudResult<Vec<Group>>> + Send;
    /// The names of a group's lifecycle hooks.
    fn hooks(&self, region: &str, group: &str) -> impl Future<Output = CloudResult<Vec<String>>> + Send;
    /// Creates or updates a lifecycle hook.
    fn put_hook(
        &self,
        region: &str,
        group: &str,
        hook: &HookSpec,
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// Ends a lifecycle action. An action that is no longer active (completed
    /// already, or timed out) is `NotFound`.
    fn complete_action(
        &self,
        region: &str,
        action: &LifecycleAction,
        result: ActionResult,
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// Restarts a lifecycle action's heartbeat timeout; `NotFound` as above.
    fn heartbeat(
        &self,
        region: &str,
        action: &LifecycleAction,
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// Marks an instance `Unhealthy`, so that its group replaces it.
    fn set_unhealthy(&self, region: &str, instance_id: &str) -> impl Future<Output = CloudResult<()>> + Send;
}

/// An object as a listing or a GET describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// The ETag as S3 sends it, quotes included: it changes whenever the object does.
    pub etag: String,
}

/// One page of a listing, in key order.
#[derive(Debug, Clone, Default)]
pub struct ObjectPage {
    pub objects: Vec<ObjectMeta>,
    /// Pass back to get the next page; none after the last.
    pub next: Option<String>,
}

/// A GET under way: what the object is, then its body a chunk at a time, so that a
/// reader holds one chunk, not the object.
pub struct ObjectBody {
    pub meta: ObjectMeta,
    pub chunks: futures_util::stream::BoxStream<'static, CloudResult<Vec<u8>>>,
}

impl ObjectBody {
    /// The next chunk of the body; none at its end.
    pub async fn next_chunk(&mut self) -> CloudResult<Option<Vec<u8>>> {
        use futures_util::StreamExt;
        self.chunks.next().await.transpose()
    }
}

/// A multipart upload that was started and never completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: i64,
}

/// A bucket lifecycle rule the DM owns: expire what is under `prefix` after `days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryRule {
    /// Starts with [`ExpiryRule::OWNED`], which is how the DM tells its rules from
    /// everybody else's.
    pub id: String,
    pub prefix: String,
    pub days: u32,
    /// Also abort multipart uploads left incomplete under the prefix this many days
    /// after they began.
    pub abort_incomplete_after_days: Option<u32>,
}

impl ExpiryRule {
    /// The id prefix of the rules the DM owns.
    pub const OWNED: &'static str = "okera-dm-";
}

/// What merging the DM's rules into a bucket's lifecycle configuration did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LifecycleMerge {
    /// False when the bucket already had exactly these rules: nothing was written.
    pub changed: bool,
    /// The ids of the rules others own, kept as they were.
    pub foreign: Vec<String>,
}

/// S3: the staging bucket.
pub trait ObjectStore: Send + Sync {
    fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> impl Future<Output = CloudResult<()>> + Send;
    fn get(&self, bucket: &str, key: &str) -> impl Future<Output = CloudResult<Option<Vec<u8>>>> + Send;
    /// Starts a GET whose body is read in chunks; none when the object is missing.
    fn get_body(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = CloudResult<Option<ObjectBody>>> + Send;
    /// Every key under a prefix, following continuation tokens.
    fn list(&self, bucket: &str, prefix: &str) -> impl Future<Output = CloudResult<Vec<String>>> + Send;
    /// One page (up to 1000 objects) of the objects under a prefix, after `next`.
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> impl Future<Output = CloudResult<ObjectPage>> + Send;
    /// Deletes keys, up to 1000 per request.
    fn delete(&self, bucket: &str, keys: &[String]) -> impl Future<Output = CloudResult<()>> + Send;
    /// Copies an object (up to 5 GB) inside the bucket, on the server side.
    fn copy(&self, bucket: &str, from: &str, to: &str) -> impl Future<Output = CloudResult<()>> + Send;
    /// Starts a multipart upload; returns its upload id.
    fn create_multipart(&self, bucket: &str, key: &str) -> impl Future<Output = CloudResult<String>> + Send;
    /// Uploads part `number` (from 1); returns its ETag. Every part but the last
    /// must hold at least 5 MiB.
    fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> impl Future<Output = CloudResult<String>> + Send;
    /// Joins the parts, given as `(number, etag)` in order, into the object.
    fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// Throws an upload's parts away. One that is already gone is not an error.
    fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// The multipart uploads under a prefix that were neither completed nor aborted.
    fn pending_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = CloudResult<Vec<PendingUpload>>> + Send;
    /// Makes the DM's rules (ids starting with [`ExpiryRule::OWNED`]) in the
    /// bucket's lifecycle configuration exactly `ours`, and leaves every other rule
    /// as it was. Each of ours also expires noncurrent versions a day after they
    /// become noncurrent, so that in a versioned bucket expiry frees space.
    fn merge_lifecycle(
        &self,
        bucket: &str,
        ours: &[ExpiryRule],
    ) -> impl Future<Output = CloudResult<LifecycleMerge>> + Send;
}

/// A per-cluster CloudWatch alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    pub dimensions: Vec<(String, String)>,
    /// `Minimum`, `Average`, ...
    pub statistic: String,
    pub period_s: i32,
    pub evaluation_periods: i32,
    /// `LessThanThreshold`, ...
    pub comparison: String,
    pub threshold: f64,
    /// `breaching`, `notBreaching`, `missing` or `ignore`.
    pub treat_missing_data: String,
    pub tags: Vec<(String, String)>,
}

/// CloudWatch: the alarms the DM owns. Metrics themselves are written as
/// Embedded Metric Format log lines, which need no API call.
pub trait Metrics: Send + Sync {
    /// Creates or replaces an alarm.
    fn put_alarm(&self, region: &str, alarm: &AlarmSpec) -> impl Future<Output = CloudResult<()>> + Send;
    /// The names of the alarms whose name starts with `prefix`.
    fn alarms_with_prefix(
        &self,
        region: &str,
        prefix: &str,
    ) -> impl Future<Output = CloudResult<Vec<String>>> + Send;
    /// Deletes alarms; names that do not exist are ignored.
    fn delete_alarms(&self, region: &str, names: &[String]) -> impl Future<Output = CloudResult<()>> + Send;
    /// Puts one datapoint, now (`PutMetricData`). Only the few metrics that an
    /// alarm must see at once go through the API; the rest are EMF lines.
    fn put_metric(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dimensions: &[(String, String)],
        value: f64,
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// The state of a metric alarm (`OK`, `ALARM`, `INSUFFICIENT_DATA`); none
    /// when there is no such alarm.
    fn alarm_state(
        &self,
        region: &str,
        alarm: &str,
    ) -> impl Future<Output = CloudResult<Option<String>>> + Send;
    /// Sets an alarm's state (`OK`, `ALARM`) until its next evaluation.
    fn set_alarm_state(
        &self,
        region: &str,
        alarm: &str,
        state: &str,
        reason: &str,
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// The newest datapoint's maximum of a metric since `since_ms`, by the minute;
    /// none without data.
    fn latest(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dimensions: &[(String, String)],
        since_ms: i64,
    ) -> impl Future<Output = CloudResult<Option<f64>>> + Send;
}

/// Where a node's agent is, as the DM knows the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTarget {
    pub instance_id: String,
    pub private_ip: Option<String>,
}

/// Why an agent could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The address is not one this process may contact (DESIGN.md §4).
    #[error("refused to contact {0}: outside AWS, agents are only contacted on loopback")]
    Refused(String),
    #[error("no address is known for the agent")]
    NoAddress,
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Unreachable(String),
    /// It answered, but not with what the contract says.
    #[error("bad answer: {0}")]
    BadAnswer(String),
}

/// The node agents (`docs/agent.md`).
pub trait Agents: Send + Sync {
    /// `GET /v1/health`, bounded in time and size.
    fn health(&self, node: &AgentTarget) -> impl Future<Output = Result<AgentReport, ProbeError>> + Send;
    /// `POST /v1/logs/flush`: the agent uploads what it has not yet uploaded to
    /// the staging bucket, and answers when done.
    fn flush_logs(&self, node: &AgentTarget) -> impl Future<Output = Result<(), ProbeError>> + Send;
    /// `POST /v1/services/restart`: the agent restarts one service (`Some`) or all
    /// of them, and answers once the restart has begun; health then reports the
    /// services coming back up in dependency order.
    fn restart(
        &self,
        node: &AgentTarget,
        service: Option<&str>,
    ) -> impl Future<Output = Result<(), ProbeError>> + Send;
}

/// One DNS record set: a fully qualified name (with or without the final dot),
/// its type (`A`, `CNAME`), TTL in seconds and values; and, for one side of a
/// failover pair, how Route 53 chooses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    pub name: String,
    pub kind: String,
    pub ttl: i64,
    pub values: Vec<String>,
    /// None: a simple record set, the only one of its name and type.
    pub failover: Option<FailoverRouting>,
}

/// One side of a Route 53 failover pair: Route 53 answers with the primary while
/// its health check is healthy, else with the secondary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverRouting {
    /// The set identifier: the region of the side's environment.
    pub set_id: String,
    pub primary: bool,
    pub health_check_id: Option<String>,
}

impl RecordSet {
    /// A simple `A` record set.
    pub fn a(name: impl Into<String>, ttl: i64, values: Vec<String>) -> RecordSet {
        RecordSet {
            name: name.into(),
            kind: "A".into(),
            ttl,
            values,
            failover: None,
        }
    }

    /// Whether `other` is the same set of a zone (name, type, set identifier):
    /// an UPSERT of one replaces the other.
    pub fn same_set(&self, other: &RecordSet) -> bool {
        let id = |r: &RecordSet| r.failover.as_ref().map(|f| f.set_id.clone());
        let name = |r: &RecordSet| r.name.trim_end_matches('.').to_ascii_lowercase();
        name(self) == name(other) && self.kind == other.kind && id(self) == id(other)
    }
}

/// Route 53: the stable DNS names of clusters. Route 53 is global: no region.
/// Changes are UPSERTs (never CREATE, which the emulator duplicates), and callers
/// read back what they wrote.
pub trait Dns: Send + Sync {
    /// Every record set in `zone_id` whose name is `name`, whatever its type, in
    /// the order Route 53 lists them. Two sets of one type mean someone CREATEd
    /// twice: the caller treats that as a mismatch and writes again.
    fn records(&self, zone_id: &str, name: &str) -> impl Future<Output = CloudResult<Vec<RecordSet>>> + Send;
    /// Creates or replaces one record set (UPSERT).
    fn upsert(&self, zone_id: &str, record: &RecordSet) -> impl Future<Output = CloudResult<()>> + Send;
    /// Deletes exactly this record set (its values must match); `NotFound` when gone.
    fn delete(&self, zone_id: &str, record: &RecordSet) -> impl Future<Output = CloudResult<()>> + Send;
    /// The id of the hosted zone named `name`, creating a public one when there
    /// is none (dm-local makes its zone in the emulator with this).
    fn ensure_zone(&self, name: &str) -> impl Future<Output = CloudResult<String>> + Send;
    /// The id of the health check made with `reference` that follows the
    /// CloudWatch alarm `alarm` in `alarm_region` (insufficient data counts as
    /// unhealthy), creating it when there is none.
    fn ensure_health_check(
        &self,
        reference: &str,
        alarm_region: &str,
        alarm: &str,
    ) -> impl Future<Output = CloudResult<String>> + Send;
}

/// The outcome of a conditional claim of the fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    Won,
    /// Another contender moved the epoch first; what it holds now, if readable.
    Lost(Option<Leader>),
}

/// The fence: who is active, claimed with a conditional write that exactly one
/// contender wins, and the failover requests, which must be writable when the
/// database is not. In AWS a DynamoDB table with multi-region strong
/// consistency; every call goes to this region's replica.
pub trait Fence: Send + Sync {
    /// The leader item, read strongly consistent; none before the first claim.
    fn leader(&self) -> impl Future<Output = CloudResult<Option<Leader>>> + Send;
    /// Writes `next` only if the stored epoch is still `seen` (none: no item yet).
    fn claim(&self, seen: Option<i64>, next: &Leader) -> impl Future<Output = CloudResult<Claimed>> + Send;
    /// Records a new request; false when one with its id exists already.
    fn create_request(&self, request: &FailoverRequest) -> impl Future<Output = CloudResult<bool>> + Send;
    fn request(&self, id: &str) -> impl Future<Output = CloudResult<Option<FailoverRequest>>> + Send;
    /// Writes `request` only if the stored one is still in state `from`; false
    /// when it moved on meanwhile.
    fn update_request(
        &self,
        request: &FailoverRequest,
        from: FailoverState,
    ) -> impl Future<Output = CloudResult<bool>> + Send;
    /// The requests, newest first.
    fn requests(&self) -> impl Future<Output = CloudResult<Vec<FailoverRequest>>> + Send;
}

/// One member of a global database, as RDS lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbMember {
    pub arn: String,
    pub region: String,
    pub writer: bool,
    /// `connected`, `pending-resync`, ... (none when RDS gives none).
    pub synchronization: Option<String>,
}

/// An Aurora global database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalDb {
    pub id: String,
    /// `available`, `switching-over`, `failing-over`, ...
    pub status: String,
    pub members: Vec<DbMember>,
    /// While a switchover or failover runs: the DB cluster it promotes.
    pub promoting: Option<String>,
}

impl GlobalDb {
    pub fn writer(&self) -> Option<&DbMember> {
        self.members.iter().find(|m| m.writer)
    }

    pub fn member_in(&self, region: &str) -> Option<&DbMember> {
        self.members.iter().find(|m| m.region == region)
    }
}

/// RDS: the DM's own Aurora global database.
pub trait GlobalDatabase: Send + Sync {
    fn describe(&self, region: &str, global_id: &str) -> impl Future<Output = CloudResult<GlobalDb>> + Send;
    /// Makes `target` (a DB cluster ARN) the writer: `SwitchoverGlobalCluster`
    /// when `planned` (no data loss; both regions up), else
    /// `FailoverGlobalCluster` with `AllowDataLoss`. Returns once asked; the
    /// promotion completes later (poll [`GlobalDatabase::describe`]).
    fn promote(
        &self,
        region: &str,
        global_id: &str,
        target: &str,
        planned: bool,
    ) -> impl Future<Output = CloudResult<()>> + Send;
}

/// Lambda: waking another DM function.
pub trait Functions: Send + Sync {
    /// Invokes `function` (name or ARN) asynchronously with a JSON payload; AWS
    /// queues the event and answers at once.
    fn invoke_async(&self, function: &str, payload: Vec<u8>) -> impl Future<Output = CloudResult<()>> + Send;
}
