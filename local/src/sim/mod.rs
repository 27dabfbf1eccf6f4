//! The node-agent simulator of `dm-local`. In the emulator, instances are only
//! records: nothing boots and no agent answers on their (invented) private IPs.
//! The [`Simulator`] gives every emulated instance an agent of its own on
//! 127.0.0.1 (see [`agent`]) and registers it in an [`AgentDirectory`], where the
//! prober (`HttpAgents` with `Resolver::Directory`) finds it.
//!
//! Every [`SYNC_INTERVAL`] the simulator lists the DM's instances in every
//! region in use, starts an agent for each new live instance of a cluster, and
//! stops the agents of instances that are shutting down, terminated or gone.
//!
//! Every agent's services write log lines, which the agent uploads to the
//! staging bucket periodically and when asked to flush ([`logs`]).
//!
//! [`control`] serves the API that `dm-local sim` ([`cli`]) uses to fail a
//! service, fail a node (unreachable or slow), restore it, or list the agents;
//! and to break a version: every agent, current or future, of a cluster that runs
//! it reports one service failed, until the version is restored. An agent's
//! version is its cluster's, read from the store once per cluster; nothing of
//! this is persisted.

pub mod agent;
pub mod cli;
pub mod control;
pub mod logs;
#[cfg(test)]
mod terminate_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use shared::cloud::agents::AgentDirectory;
use shared::cloud::aws::{AwsSettings, Ec2Adapter, S3Adapter};
use shared::cloud::{Compute, Instance, ObjectStore};
use shared::config::{Config, S3Location};
use shared::domain::health::SERVICES;
use shared::store::{Store, StoreError};

use agent::{lock, AgentServer, FailedService, Identity, Knobs, NodeMode};
use logs::LogSettings;

/// How often the simulator looks for new and gone instances.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// How long a new agent takes to bring all its services up, by default.
pub const DEFAULT_STARTUP: Duration = Duration::from_secs(2);

/// EC2 states in which a node runs no agent.
const GONE_STATES: [&str; 4] = ["shutting-down", "terminated", "stopping", "stopped"];

/// Why a control request names nothing the simulator has. Each variant is the
/// field at fault, and its message lists what exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("cluster {cluster} has no simulated agents; clusters with agents: {known}")]
    Cluster { cluster: i64, known: String },
    #[error("cluster {cluster} has no node {node}; its nodes: {known}")]
    Node {
        cluster: i64,
        node: String,
        known: String,
    },
    #[error("there is no service {service:?}; services: {known}")]
    Service { service: String, known: String },
    #[error("there is no node failure mode {mode:?}; modes: unreachable, slow")]
    Mode { mode: String },
    #[error("version must be 1 to 32 characters of letters, digits, '.' and '-', got {version:?}")]
    Version { version: String },
}

impl SimError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            SimError::Cluster { .. } => "cluster",
            SimError::Node { .. } => "node",
            SimError::Service { .. } => "service",
            SimError::Mode { .. } => "mode",
            SimError::Version { .. } => "version",
        }
    }
}

/// What the control API may do to one node's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    FailService(FailedService),
    FailNode(NodeMode),
    Restore,
}

impl Action {
    fn apply(self, knobs: &mut Knobs) {
        match self {
            Action::FailService(failed) => knobs.failed = Some(failed),
            Action::FailNode(mode) => knobs.mode = mode,
            Action::Restore => *knobs = Knobs::default(),
        }
    }
}

/// The index of a service in [`SERVICES`].
pub fn service_index(name: &str) -> Result<usize, SimError> {
    SERVICES
        .iter()
        .position(|s| *s == name)
        .ok_or_else(|| SimError::Service {
            service: name.to_owned(),
            known: SERVICES.join(", "),
        })
}

/// A version as the control API names it: trimmed, 1 to 32 letters, digits,
/// `.` and `-` (what a cluster's version may be).
pub fn parse_version(raw: &str) -> Result<String, SimError> {
    let version = raw.trim();
    let ok = !version.is_empty()
        && version.len() <= 32
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if ok {
        Ok(version.to_owned())
    } else {
        Err(SimError::Version {
            version: raw.to_owned(),
        })
    }
}

/// How a broken version fails `service` (an index in [`SERVICES`]).
pub fn version_failure(version: &str, service: usize) -> FailedService {
    FailedService {
        index: service,
        message: format!("{} exited with status 1 on version {version}", SERVICES[service]),
    }
}

/// A node as the control API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub instance_id: String,
    pub cluster_id: i64,
    pub launched_at: i64,
}

/// A cluster's nodes in index order: by launch time, then instance id.
pub fn cluster_nodes(cluster: i64, nodes: &[NodeInfo]) -> Vec<&NodeInfo> {
    let mut of_cluster: Vec<&NodeInfo> = nodes.iter().filter(|n| n.cluster_id == cluster).collect();
    of_cluster.sort_by(|a, b| (a.launched_at, &a.instance_id).cmp(&(b.launched_at, &b.instance_id)));
    of_cluster
}

/// Finds `node` (an instance id, or a 0-based index) of `cluster` among `nodes`;
/// returns its index and instance id.
pub fn resolve_node(cluster: i64, node: &str, nodes: &[NodeInfo]) -> Result<(usize, String), SimError> {
    let of_cluster = cluster_nodes(cluster, nodes);
    if of_cluster.is_empty() {
        let clusters: BTreeSet<i64> = nodes.iter().map(|n| n.cluster_id).collect();
        let known = if clusters.is_empty() {
            "none".to_owned()
        } else {
            clusters.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        };
        return Err(SimError::Cluster { cluster, known });
    }
    let found = match node.trim().parse::<usize>() {
        Ok(index) => of_cluster.get(index).map(|n| (index, *n)),
        Err(_) => of_cluster
            .iter()
            .copied()
            .enumerate()
            .find(|(_, n)| n.instance_id == node),
    };
    found
        .map(|(index, n)| (index, n.instance_id.clone()))
        .ok_or_else(|| SimError::Node {
            cluster,
            node: node.to_owned(),
            known: of_cluster
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{i} ({})", n.instance_id))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// One agent as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub cluster: i64,
    pub index: usize,
    pub instance_id: String,
    pub address: String,
    /// The ODAS version the node runs: its cluster's.
    #[serde(default)]
    pub version: String,
    /// `RUNNING`, `STARTING 3/7`, `RESTARTING 5/7`, `planner FAILED`,
    /// `UNREACHABLE` or `SLOW`.
    pub state: String,
}

/// A version made to fail, as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenVersion {
    pub version: String,
    /// The service its agents report failed.
    pub service: String,
}

/// What `fail-version` or `restore-version` changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionChange {
    pub version: String,
    /// The service the version fails, while it is broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Whether the version was broken before the change.
    pub was_broken: bool,
    /// The agents that run the version now.
    pub agents: Vec<AgentView>,
}

struct Running {
    node: NodeInfo,
    /// The ODAS version the agent reports: its cluster's.
    version: String,
    server: AgentServer,
}

#[derive(Default)]
struct FleetState {
    agents: BTreeMap<String, Running>,
    /// Broken versions, and how their agents fail.
    broken: BTreeMap<String, FailedService>,
}

/// The running agents by instance id, and the broken versions, shared by the
/// simulator and the control API.
#[derive(Clone, Default)]
pub struct Fleet(Arc<Mutex<FleetState>>);

impl Fleet {
    fn state(&self) -> MutexGuard<'_, FleetState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nodes(agents: &BTreeMap<String, Running>) -> Vec<NodeInfo> {
        agents.values().map(|r| r.node.clone()).collect()
    }

    fn running_ids(&self) -> BTreeSet<String> {
        self.state().agents.keys().cloned().collect()
    }

    fn view(index: usize, running: &Running) -> AgentView {
        AgentView {
            cluster: running.node.cluster_id,
            index,
            instance_id: running.node.instance_id.clone(),
            address: running.server.addr.to_string(),
            version: running.version.clone(),
            state: lock(&running.server.state).summary(),
        }
    }

    /// Every agent, by cluster and index.
    pub fn list(&self) -> Vec<AgentView> {
        let state = self.state();
        let agents = &state.agents;
        let nodes = Self::nodes(agents);
        let clusters: BTreeSet<i64> = nodes.iter().map(|n| n.cluster_id).collect();
        clusters
            .into_iter()
            .flat_map(|c| {
                cluster_nodes(c, &nodes)
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, n)| agents.get(&n.instance_id).map(|r| Self::view(i, r)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The broken versions, by version.
    pub fn broken_versions(&self) -> Vec<BrokenVersion> {
        self.state()
            .broken
            .iter()
            .map(|(version, failed)| BrokenVersion {
                version: version.clone(),
                service: SERVICES[failed.index].to_owned(),
            })
            .collect()
    }

    /// Breaks `version`: every agent that runs it, now or later, reports
    /// `service` (an index in [`SERVICES`]) failed, until [`Self::restore_version`].
    pub fn fail_version(&self, version: &str, service: usize) -> Result<VersionChange, SimError> {
        let version = parse_version(version)?;
        let failed = version_failure(&version, service);
        let was_broken = {
            let mut state = self.state();
            for running in state.agents.values().filter(|r| r.version == version) {
                lock(&running.server.state).version_failure = Some(failed.clone());
            }
            state.broken.insert(version.clone(), failed).is_some()
        };
        Ok(VersionChange {
            service: Some(SERVICES[service].to_owned()),
            was_broken,
            agents: self.running(&version),
            version,
        })
    }

    /// Undoes [`Self::fail_version`]; restoring a version that is not broken
    /// changes nothing. A node's own failures stay.
    pub fn restore_version(&self, version: &str) -> Result<VersionChange, SimError> {
        let version = parse_version(version)?;
        let was_broken = {
            let mut state = self.state();
            for running in state.agents.values().filter(|r| r.version == version) {
                lock(&running.server.state).version_failure = None;
            }
            state.broken.remove(&version).is_some()
        };
        Ok(VersionChange {
            service: None,
            was_broken,
            agents: self.running(&version),
            version,
        })
    }

    /// The agents that run `version`.
    fn running(&self, version: &str) -> Vec<AgentView> {
        self.list().into_iter().filter(|a| a.version == version).collect()
    }

    /// Applies `action` to `node` of `cluster`; returns the agent as it is now.
    pub fn act(&self, cluster: i64, node: &str, action: Action) -> Result<AgentView, SimError> {
        let state = self.state();
        let agents = &state.agents;
        let (index, id) = resolve_node(cluster, node, &Self::nodes(agents))?;
        let running = agents.get(&id).ok_or_else(|| SimError::Node {
            cluster,
            node: node.to_owned(),
            known: "none".to_owned(),
        })?;
        action.apply(&mut lock(&running.server.state).knobs);
        Ok(Self::view(index, running))
    }

    /// Adds a started agent that runs `version`, failed as the version is.
    fn insert(&self, node: NodeInfo, version: String, server: AgentServer) {
        let mut state = self.state();
        lock(&server.state).version_failure = state.broken.get(&version).cloned();
        state.agents.insert(
            node.instance_id.clone(),
            Running {
                node,
                version,
                server,
            },
        );
    }

    /// Stops an agent (dropping its server frees its port).
    fn remove(&self, instance_id: &str) -> bool {
        self.state().agents.remove(instance_id).is_some()
    }
}

/// The regions whose instances get agents: `default` (dm-local's `--region`)
/// and the region of every environment in the store.
pub struct Regions {
    pub store: Store,
    pub default: String,
}

impl Regions {
    async fn list(&self) -> Vec<String> {
        let mut regions = BTreeSet::from([self.default.clone()]);
        match self.store.list_environments().await {
            Ok(envs) => regions.extend(envs.into_iter().map(|e| e.region)),
            Err(e) => tracing::warn!(error = %e, "simulator: listing the environments' regions"),
        }
        regions.into_iter().collect()
    }
}

/// What one sync pass changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub start: Vec<NodeInfo>,
    pub stop: Vec<String>,
}

/// True for an instance of a cluster that is running or on its way there.
fn live(instance: &Instance) -> bool {
    instance.cluster_id.is_some() && !GONE_STATES.contains(&instance.state.as_str())
}

/// Agents to start (live instances without one) and to stop (agents whose
/// instance is no longer live). With `complete` false, some region could not be
/// listed, so nothing is stopped.
pub fn plan(running: &BTreeSet<String>, instances: &[Instance], complete: bool) -> Plan {
    let mut live_ids = BTreeSet::new();
    let mut start = Vec::new();
    for instance in instances.iter().filter(|i| live(i)) {
        let (Some(cluster_id), true) = (instance.cluster_id, live_ids.insert(instance.id.clone())) else {
            continue;
        };
        if !running.contains(&instance.id) {
            start.push(NodeInfo {
                instance_id: instance.id.clone(),
                cluster_id,
                launched_at: instance.launched_at,
            });
        }
    }
    let stop = if complete {
        running.difference(&live_ids).cloned().collect()
    } else {
        Vec::new()
    };
    Plan { start, stop }
}

/// Runs one simulated agent per live instance of the DM.
pub struct Simulator<C, O> {
    compute: Arc<C>,
    objects: Arc<O>,
    staging: S3Location,
    regions: Regions,
    directory: AgentDirectory,
    fleet: Fleet,
    startup: Duration,
    logs: LogSettings,
    /// The version of a cluster the store does not know.
    version: String,
    /// Each cluster's version, as the store said: a cluster keeps its version
    /// (an upgrade makes a new cluster row).
    versions: Mutex<BTreeMap<i64, String>>,
}

impl<C: Compute + 'static, O: ObjectStore + 'static> Simulator<C, O> {
    /// A simulator that registers its agents in `directory`. Agents upload logs
    /// to `staging` through `objects`, as `logs` says, and bring their services
    /// up in `startup`.
    pub fn new(
        compute: Arc<C>,
        objects: Arc<O>,
        staging: S3Location,
        regions: Regions,
        directory: AgentDirectory,
        startup: Duration,
        logs: LogSettings,
    ) -> Self {
        Simulator {
            compute,
            objects,
            staging,
            regions,
            directory,
            fleet: Fleet::default(),
            startup,
            logs,
            version: "2.0.0".to_owned(),
            versions: Mutex::default(),
        }
    }

    /// The ODAS version the agents of a cluster the store does not know report.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The running agents, for the control API.
    pub fn fleet(&self) -> Fleet {
        self.fleet.clone()
    }

    /// Syncs every [`SYNC_INTERVAL`], forever.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sync().await;
        }
    }

    /// One pass: lists the instances, then starts and stops agents to match.
    pub async fn sync(&self) {
        let (instances, complete) = self.instances().await;
        let plan = plan(&self.fleet.running_ids(), &instances, complete);
        for id in &plan.stop {
            self.directory.remove(id);
            if self.fleet.remove(id) {
                tracing::info!(instance = %id, "simulated agent stopped");
            }
        }
        for node in plan.start {
            self.start(node).await;
        }
    }

    /// The DM's instances in every region, and whether every region answered.
    async fn instances(&self) -> (Vec<Instance>, bool) {
        let mut all = Vec::new();
        let mut complete = true;
        for region in self.regions.list().await {
            match self.compute.managed_instances(&region).await {
                Ok(instances) => all.extend(instances),
                Err(e) => {
                    complete = false;
                    tracing::warn!(region = %region, error = %e, "simulator: listing instances");
                }
            }
        }
        (all, complete)
    }

    /// The version `cluster` runs: from the cache, else from the store. A
    /// cluster the store does not know runs the default version; `None` when
    /// the store could not answer (the agent starts at a later sync).
    async fn version_of(&self, cluster: i64) -> Option<String> {
        if let Some(version) = self.cached_versions().get(&cluster) {
            return Some(version.clone());
        }
        match self.regions.store.get_cluster(cluster).await {
            Ok(row) => {
                self.cached_versions().insert(cluster, row.odas_version.clone());
                Some(row.odas_version)
            }
            Err(StoreError::NotFound { .. }) => {
                tracing::warn!(cluster, version = %self.version, "simulator: the store has no cluster {cluster}; its agents report the default version");
                Some(self.version.clone())
            }
            Err(e) => {
                tracing::warn!(cluster, error = %e, "simulator: reading a cluster's version; its new agents start at a later sync");
                None
            }
        }
    }

    fn cached_versions(&self) -> MutexGuard<'_, BTreeMap<i64, String>> {
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn start(&self, node: NodeInfo) {
        let Some(version) = self.version_of(node.cluster_id).await else {
            return;
        };
        let identity = Identity {
            instance_id: node.instance_id.clone(),
            cluster_id: node.cluster_id,
            version: version.clone(),
            staging: self.staging.clone(),
        };
        match AgentServer::start(identity, self.startup, self.objects.clone(), self.logs).await {
            Ok(server) => {
                tracing::info!(instance = %node.instance_id, cluster = node.cluster_id, version = %version, addr = %server.addr, "simulated agent started");
                // In the fleet (failed as its version is) before the prober can find it.
                let addr = server.addr;
                self.fleet.insert(node.clone(), version, server);
                self.directory.insert(node.instance_id, addr);
            }
            Err(e) => {
                tracing::warn!(instance = %node.instance_id, error = %e, "could not start a simulated agent")
            }
        }
    }
}

/// The simulator as `dm-local up` runs it: the simulator's task, its control
/// API, and `<data-dir>/sim.json`. Dropping it stops them and removes the file.
pub struct Simulation {
    /// Where the prober finds the agents (`Resolver::Directory`).
    pub directory: AgentDirectory,
    _task: AbortOnDrop,
    _control: control::ControlServer,
    _file: control::PublishedFile,
}

/// A background task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Simulation {
    /// Starts the simulator over the emulator that `settings` reach, with the
    /// staging bucket and ODAS version of `config`, serves its control API, and
    /// writes `<data-dir>/sim.json`.
    pub async fn start(
        settings: &AwsSettings,
        config: &Config,
        regions: Regions,
        startup: Duration,
        logs: LogSettings,
        data_dir: &Path,
    ) -> anyhow::Result<Simulation> {
        let directory = AgentDirectory::new();
        let simulator = Simulator::new(
            Arc::new(Ec2Adapter::new(settings.clone())),
            Arc::new(S3Adapter::new(settings.clone(), &regions.default)),
            config.staging.clone(),
            regions,
            directory.clone(),
            startup,
            logs,
        )
        .with_version(config.default_version.clone());
        let control = control::ControlServer::start(simulator.fleet()).await?;
        let file = control.publish(data_dir)?;
        tracing::info!(url = %control.url, "node agent simulator: control API listening; use `dm-local sim`");
        let task = AbortOnDrop(tokio::spawn(Arc::new(simulator).run()));
        Ok(Simulation {
            directory,
            _task: task,
            _control: control,
            _file: file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, cluster: i64, launched_at: i64) -> NodeInfo {
        NodeInfo {
            instance_id: id.into(),
            cluster_id: cluster,
            launched_at,
        }
    }

    fn instance(id: &str, state: &str, cluster: Option<i64>) -> Instance {
        Instance {
            id: id.into(),
            state: state.into(),
            cluster_id: cluster,
            launched_at: 1,
            ..Instance::default()
        }
    }

    #[test]
    fn nodes_are_indexed_by_launch_time_then_id() {
        let nodes = [
            node("i-c", 1, 200),
            node("i-b", 1, 100),
            node("i-a", 1, 200),
            node("i-z", 2, 50),
        ];
        assert_eq!(resolve_node(1, "0", &nodes), Ok((0, "i-b".into())));
        assert_eq!(resolve_node(1, "1", &nodes), Ok((1, "i-a".into())));
        assert_eq!(resolve_node(1, "2", &nodes), Ok((2, "i-c".into())));
        assert_eq!(resolve_node(1, "i-c", &nodes), Ok((2, "i-c".into())));
        assert_eq!(resolve_node(2, "0", &nodes), Ok((0, "i-z".into())));
    }

    #[test]
    fn unknown_nodes_and_clusters_name_what_exists() {
        let nodes = [node("i-a", 1, 1), node("i-b", 1, 2), node("i-z", 3, 1)];
        let err = resolve_node(1, "5", &nodes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cluster 1 has no node 5; its nodes: 0 (i-a), 1 (i-b)"
        );
        assert_eq!(err.field(), "node");
        let err = resolve_node(1, "i-z", &nodes).unwrap_err();
        assert!(matches!(err, SimError::Node { .. }), "i-z is in another cluster");
        let err = resolve_node(2, "0", &nodes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cluster 2 has no simulated agents; clusters with agents: 1, 3"
        );
        let err = resolve_node(2, "0", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cluster 2 has no simulated agents; clusters with agents: none"
        );
    }

    #[test]
    fn services_are_named_as_the_contract_names_them() {
        assert_eq!(service_index("canary"), Ok(0));
        assert_eq!(service_index("planner"), Ok(3));
        let err = service_index("hms").unwrap_err();
        assert_eq!(
            err.to_string(),
            "there is no service \"hms\"; services: canary, zookeeper, catalog, planner, worker, rest-server, webui"
        );
    }

    #[test]
    fn actions_set_and_clear_the_knobs() {
        let mut knobs = Knobs::default();
        Action::FailService(FailedService::killed(3)).apply(&mut knobs);
        Action::FailNode(NodeMode::Slow).apply(&mut knobs);
        assert_eq!(knobs.failed, Some(FailedService::killed(3)));
        assert_eq!(knobs.mode, NodeMode::Slow);
        Action::Restore.apply(&mut knobs);
        assert_eq!(knobs, Knobs::default());
    }

    #[test]
    fn a_plan_starts_new_live_instances_and_stops_gone_ones() {
        let running = BTreeSet::from(["i-1".to_owned(), "i-2".to_owned(), "i-3".to_owned()]);
        let instances = [
            instance("i-1", "running", Some(1)),
            instance("i-2", "shutting-down", Some(1)),
            instance("i-4", "pending", Some(1)),
            instance("i-5", "terminated", Some(1)),
            instance("i-6", "running", None),
            instance("i-4", "pending", Some(1)),
        ];
        let p = plan(&running, &instances, true);
        assert_eq!(p.start, vec![node("i-4", 1, 1)]);
        assert_eq!(p.stop, vec!["i-2".to_owned(), "i-3".to_owned()]);
        let partial = plan(&running, &instances, false);
        assert_eq!(partial.start, p.start);
        assert!(
            partial.stop.is_empty(),
            "a region that did not answer stops nothing"
        );
    }

    #[test]
    fn versions_are_checked_and_trimmed() {
        assert_eq!(parse_version(" 2.1.0 "), Ok("2.1.0".into()));
        assert_eq!(parse_version("2.1.0-rc1"), Ok("2.1.0-rc1".into()));
        for bad in ["", "   ", "2.1.0 beta", "2.1/0", &"9".repeat(33)] {
            let err = parse_version(bad).unwrap_err();
            assert_eq!(err.field(), "version", "{bad:?}");
        }
        assert_eq!(
            parse_version("").unwrap_err().to_string(),
            "version must be 1 to 32 characters of letters, digits, '.' and '-', got \"\""
        );
        let fleet = Fleet::default();
        assert!(matches!(
            fleet.fail_version(" ", 3),
            Err(SimError::Version { .. })
        ));
        assert!(matches!(fleet.restore_version(""), Err(SimError::Version { .. })));
        assert!(fleet.broken_versions().is_empty());
    }

    mod versions {
        use shared::cloud::agents::{HttpAgents, Resolver};
        use shared::cloud::aws::Ec2Adapter;
        use shared::cloud::{AgentTarget, Agents};
        use shared::domain::health::ServiceState;
        use shared::domain::{
            ClusterSpec, EnvironmentSpec, EnvironmentStatus, InstanceSize, ProposedCluster,
            ProposedEnvironment,
        };
        use shared::store::{EnvironmentObservation, WriteCtx};

        use super::super::agent::quiet;
        use super::*;

        const PLANNER: usize = 3;
        const WORKER: usize = 4;

        /// A store with a READY environment and one cluster per version given.
        async fn store_with_clusters(versions: &[Option<&str>]) -> (Store, Vec<i64>) {
            let dir = std::env::temp_dir().join("dm-local-tests");
            std::fs::create_dir_all(&dir).unwrap();
            let db = dir.join(format!(
                "sim-versions-{}-{}.sqlite",
                std::process::id(),
                rand::random_range(0..u64::MAX)
            ));
            let store = Store::connect(&format!("sqlite://{}", db.display()))
                .await
                .unwrap();
            let ctx = WriteCtx {
                principal: "tester".into(),
                idempotency: None,
            };
            let spec = EnvironmentSpec::parse(ProposedEnvironment {
                name: "dev".into(),
                region: "us-west-2".into(),
                vpc_id: None,
                subnet_ids: None,
                vpc_cidr: None,
                admin_cidr: None,
                create_security_group: false,
                failover_for: None,
                warm_standby_nodes: None,
            })
            .unwrap();
            let env = store.create_environment(&ctx, &spec).await.unwrap().target_id;
            assert!(store.claim_environment(env, "fixture", 60_000).await.unwrap());
            let ready = EnvironmentObservation {
                vpc_id: Some("vpc-1".into()),
                subnet_ids: vec!["subnet-1".into()],
                vpc_cidr: Some("10.0.0.0/16".into()),
                security_group_id: None,
                status: EnvironmentStatus::Ready,
                message: "ready".into(),
                observed_generation: Some(1),
                steps: vec![],
                failure: None,
            };
            store.record_environment(env, "fixture", &ready).await.unwrap();
            store.release_environment(env, "fixture", true).await.unwrap();
            let mut ids = Vec::new();
            for (i, version) in versions.iter().enumerate() {
                let proposed = ProposedCluster {
                    name: format!("c{i}"),
                    num_nodes: 2,
                    cluster_type: "STANDALONE_CLUSTER".into(),
                    environment_id: env,
                    instance_type: None,
                    storage_gb: None,
                    tags: Default::default(),
                    description: None,
                    termination_protection_enabled: false,
                    auto_repair_enabled: None,
                    version: version.map(str::to_owned),
                };
                let size = |_: &str| {
                    Some(InstanceSize {
                        vcpus: 2,
                        memory_mib: 8192,
                    })
                };
                let spec = ClusterSpec::parse(proposed, 10, "2.0.0", size).unwrap();
                ids.push(store.create_cluster(&ctx, &spec).await.unwrap().target_id);
            }
            (store, ids)
        }

        fn simulator(store: Store) -> Simulator<Ec2Adapter, shared::cloud::aws::S3Adapter> {
            Simulator::new(
                Arc::new(Ec2Adapter::new(quiet::settings())),
                Arc::new(quiet::objects()),
                S3Location::parse("s3://nowhere/staging").unwrap(),
                Regions {
                    store,
                    default: "us-west-2".into(),
                },
                AgentDirectory::new(),
                Duration::ZERO,
                quiet::logs(),
            )
            .with_version("9.9.9")
        }

        fn node(id: &str, cluster: i64, launched_at: i64) -> NodeInfo {
            NodeInfo {
                instance_id: id.into(),
                cluster_id: cluster,
                launched_at,
            }
        }

        /// Each agent as `(instance, version, state)`.
        fn states(fleet: &Fleet) -> Vec<(String, String, String)> {
            fleet
                .list()
                .into_iter()
                .map(|a| (a.instance_id, a.version, a.state))
                .collect()
        }

        fn row(id: &str, version: &str, state: &str) -> (String, String, String) {
            (id.into(), version.into(), state.into())
        }

        #[tokio::test]
        async fn a_broken_version_fails_its_agents_now_and_later() {
            let (store, ids) = store_with_clusters(&[Some("2.1.0"), None]).await;
            let (new, old) = (ids[0], ids[1]);
            let sim = simulator(store);
            let fleet = sim.fleet();
            sim.start(node("i-a1", new, 1)).await;
            sim.start(node("i-b1", old, 1)).await;
            assert_eq!(
                states(&fleet),
                [row("i-a1", "2.1.0", "RUNNING"), row("i-b1", "2.0.0", "RUNNING")]
            );

            let change = fleet.fail_version(" 2.1.0 ", PLANNER).unwrap();
            assert_eq!(change.version, "2.1.0");
            assert_eq!(change.service.as_deref(), Some("planner"));
            assert!(!change.was_broken);
            assert_eq!(change.agents.len(), 1);
            assert_eq!(change.agents[0].state, "planner FAILED");
            assert_eq!(
                fleet.broken_versions(),
                [BrokenVersion {
                    version: "2.1.0".into(),
                    service: "planner".into()
                }]
            );
            // A node that joins the cluster later runs the broken version too.
            sim.start(node("i-a2", new, 2)).await;
            assert_eq!(
                states(&fleet),
                [
                    row("i-a1", "2.1.0", "planner FAILED"),
                    row("i-a2", "2.1.0", "planner FAILED"),
                    row("i-b1", "2.0.0", "RUNNING"),
                ]
            );

            // What the DM sees: the cluster's version, planner failed, through a
            // restart and a restore of the node.
            let prober = HttpAgents::new(Resolver::Directory(sim.directory.clone())).allow_remote(false);
            let target = AgentTarget {
                instance_id: "i-a2".into(),
                private_ip: None,
            };
            prober.restart(&target, None).await.unwrap();
            fleet.act(new, "i-a2", Action::Restore).unwrap();
            let report = prober.health(&target).await.unwrap();
            assert_eq!(report.version, "2.1.0");
            let planner = &report.normalized()[PLANNER];
            assert_eq!(planner.state, ServiceState::Failed);
            assert_eq!(planner.message, "planner exited with status 1 on version 2.1.0");
            assert!(!report.ready());

            // Breaking it another way replaces the failure; restoring ends it.
            let change = fleet.fail_version("2.1.0", WORKER).unwrap();
            assert!(change.was_broken);
            assert!(change.agents.iter().all(|a| a.state == "worker FAILED"));
            let change = fleet.restore_version("2.1.0").unwrap();
            assert!(change.was_broken);
            assert!(change.agents.iter().all(|a| a.state == "RUNNING"), "{change:?}");
            assert!(fleet.broken_versions().is_empty());
            assert!(!fleet.restore_version("2.1.0").unwrap().was_broken);
            // A node's own failure is not the version's to restore.
            fleet
                .act(new, "0", Action::FailService(FailedService::killed(1)))
                .unwrap();
            fleet.fail_version("2.1.0", PLANNER).unwrap();
            fleet.restore_version("2.1.0").unwrap();
            assert_eq!(states(&fleet)[0], row("i-a1", "2.1.0", "zookeeper FAILED"));
        }

        #[tokio::test]
        async fn cluster_versions_are_read_once_and_unknown_clusters_get_the_default() {
            let (store, ids) = store_with_clusters(&[Some("2.1.0")]).await;
            let sim = simulator(store);
            assert_eq!(sim.version_of(ids[0]).await.as_deref(), Some("2.1.0"));
            assert_eq!(
                sim.cached_versions().get(&ids[0]).map(String::as_str),
                Some("2.1.0")
            );
            // The cache answers from then on, whatever the store would say.
            sim.cached_versions().insert(ids[0], "cached".into());
            assert_eq!(sim.version_of(ids[0]).await.as_deref(), Some("cached"));
            assert_eq!(sim.version_of(999).await.as_deref(), Some("9.9.9"));
            assert!(!sim.cached_versions().contains_key(&999), "a guess is not cached");
        }
    }
}
