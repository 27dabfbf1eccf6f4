//! Diagnostics bundles (`ocadm clusters diag`): a tar.gz of a cluster's node logs
//! of the last N days, with its state, recent status history, operations and
//! audit rows, streamed to S3.
//!
//! Two halves, as every write in the DM:
//!
//! - [`request`] is the API's command: it checks the request, picks where the
//!   bundle goes, and records a `DIAGNOSTICS` operation with its open request, in
//!   one transaction. It calls no AWS; the API then wakes the worker ([`Wake`]).
//! - [`Worker`] builds the bundle. In Lambda it is the log-rotation function,
//!   woken by an asynchronous invoke (`{"diagnostics": {"operationId": N}}`, see
//!   [`event`]) and, for wake-ups that were lost and attempts that were killed, by
//!   its schedule ([`Worker::run_due`]). Locally `dm-local` runs it in-process. A
//!   bundle can be far larger than an API request may take (API Gateway stops
//!   waiting after 29 s), which is why it is built apart from the request.
//!
//! The bundle is built as a stream, so memory stays flat whatever its size: the
//! cluster's log objects are listed a page at a time, and each object goes into
//! the tar a chunk at a time as S3 sends it (its size comes from the GET's
//! answer), through gzip, into a multipart upload ([`GzUpload`]) that holds one
//! part at a time. The worker holds its request with a lease that it renews as it
//! goes; a worker that was killed leaves the request to the next run, which
//! writes the same key again.
//!
//! Layout of a bundle (`<root>` is `cluster-<id>-<yyyymmddThhmmssZ>`):
//!
//! ```text
//! <root>/cluster.json          the cluster's row and its nodes, as the store holds them
//! <root>/status-history.json   its status changes of the last N days, newest first
//! <root>/operations.json       its operations of the last N days (and any still open)
//! <root>/audit.json            its audit rows of the last N days
//! <root>/logs/<instance>/<service>/<yyyy-mm-dd-hh>/<file>   the log objects, as stored
//! <root>/manifest.json         what was included, what was skipped and why
//! ```

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::cloud::upload::{GzUpload, Upload};
use crate::cloud::{CloudError, Functions, ObjectStore};
use crate::config::S3Location;
use crate::domain::logs::{parse_log_key, LogClock, LogKey, HOUR_MS};
use crate::domain::FieldError;
use crate::store::{
    AuditRow, Claim, ClusterRow, DiagnosticsJob, Finish, NewDiagnostics, NodeRow, OperationRow, StatusChange,
    Store, StoreError, Submitted, WriteCtx,
};
use crate::time::{format_ms, now_ms};
use crate::workflows::commands::CommandError;
use crate::workflows::wake::BoxFuture;

/// Days of logs when the request names none.
pub const DEFAULT_DAYS: u32 = 1;
/// The most days of logs a bundle may cover.
pub const MAX_DAYS: u32 = 30;
/// The longest S3 key.
const MAX_KEY: usize = 1024;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Rows of each kind of history a bundle holds at most (the newest).
pub const HISTORY_ROWS: i64 = 1000;
/// Keys a manifest names at most per kind of skipped object; it counts them all.
const NAMED_KEYS: usize = 100;

/// How long a worker holds a request before another may take it over: longer
/// than a Lambda function may run (15 minutes). The worker renews it after every
/// page of the listing, so a bundle may take longer.
pub const LEASE_MS: i64 = 16 * 60 * 1000;
/// Attempts at one request before its operation fails.
pub const MAX_ATTEMPTS: i64 = 3;

/// The body of `POST /v1/clusters/{id}/diagnostics`, as it arrives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposedDiagnostics {
    /// Days of logs, from 1 to [`MAX_DAYS`]; default [`DEFAULT_DAYS`].
    #[serde(default)]
    pub days: Option<i64>,
    /// `s3://bucket/prefix` to write the bundle under instead of the staging prefix.
    #[serde(default)]
    pub s3_upload_path: Option<String>,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosticsRequest {
    pub days: u32,
    /// Where the bundle's layout goes; none for the staging location.
    pub upload_path: Option<S3Location>,
}

impl DiagnosticsRequest {
    pub fn parse(p: ProposedDiagnostics) -> Result<DiagnosticsRequest, FieldError> {
        let days = match p.days {
            None => DEFAULT_DAYS,
            Some(d) => u32::try_from(d)
                .ok()
                .filter(|d| (1..=MAX_DAYS).contains(d))
                .ok_or_else(|| {
                    FieldError::new(
                        "days",
                        format!("days must be a whole number from 1 to {MAX_DAYS}, got {d}"),
                    )
                })?,
        };
        let upload_path = p
            .s3_upload_path
            .map(|raw| {
                let location = S3Location::parse(raw.trim()).map_err(|e| {
                    FieldError::new(
                        "s3UploadPath",
                        format!("s3UploadPath: {e}; give s3://bucket or s3://bucket/prefix"),
                    )
                })?;
                let bad = location
                    .prefix
                    .chars()
                    .find(|c| c.is_control())
                    .map(|c| format!("a control character ({:?})", c))
                    .or_else(|| {
                        location
                            .prefix
                            .split('/')
                            .any(|s| s.is_empty() || s == "." || s == "..")
                            .then(|| "an empty, \".\" or \"..\" path segment".to_owned())
                    });
                if let (Some(bad), false) = (bad, location.prefix.is_empty()) {
                    return Err(FieldError::new(
                        "s3UploadPath",
                        format!("s3UploadPath {raw:?} has {bad} in its prefix"),
                    ));
                }
                let longest = location.key(&bundle_path(i64::MAX, 0, &uuid_v4())).len();
                if longest > MAX_KEY {
                    return Err(FieldError::new(
                        "s3UploadPath",
                        format!(
                            "the prefix of s3UploadPath is too long: bundle keys under it would pass S3's {MAX_KEY} bytes"
                        ),
                    ));
                }
                Ok(location)
            })
            .transpose()?;
        Ok(DiagnosticsRequest { days, upload_path })
    }
}

/// `20261125T154021Z`: a UTC time as it appears in keys and file names.
fn compact_time(ms: i64) -> String {
    let s = format_ms(ms);
    format!(
        "{}{}{}T{}{}{}Z",
        &s[0..4],
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16],
        &s[17..19]
    )
}

/// The bundle's top directory, and the stem of its file name.
fn bundle_root(cluster_id: i64, at_ms: i64) -> String {
    format!("cluster-{cluster_id}-{}", compact_time(at_ms))
}

/// `diagnostics/<timestamp>/<cluster>/<uuid>/<root>.tgz`, relative to the base location.
fn bundle_path(cluster_id: i64, at_ms: i64, id: &str) -> String {
    format!(
        "diagnostics/{}/{cluster_id}/{id}/{}.tgz",
        compact_time(at_ms),
        bundle_root(cluster_id, at_ms)
    )
}

/// A random (version 4) UUID.
fn uuid_v4() -> String {
    let r = rand::random::<u128>();
    let r = (r & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Where a bundle requested at `at_ms` goes: under `upload_path` when given, else
/// under the staging location, at `diagnostics/<timestamp>/<cluster>/<uuid>/…tgz`.
pub fn destination(
    staging: &S3Location,
    upload_path: Option<&S3Location>,
    cluster_id: i64,
    at_ms: i64,
) -> (String, String) {
    let base = upload_path.unwrap_or(staging);
    (
        base.bucket.clone(),
        base.key(&bundle_path(cluster_id, at_ms, &uuid_v4())),
    )
}

/// Why a diagnostics request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A field of the body is wrong (400).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// No cluster has this id (404).
    #[error("cluster {0} does not exist (ocadm clusters list)")]
    UnknownCluster(i64),
    /// The cluster was deleted, or is being deleted (409).
    #[error(
        "cluster {id} is {status} (deleted); diagnostics are only built for clusters that are not deleted"
    )]
    Deleted { id: i64, status: String },
    /// Anything else, as for every command.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<StoreError> for RequestError {
    fn from(e: StoreError) -> Self {
        RequestError::Command(e.into())
    }
}

/// What a recorded request answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub submitted: Submitted,
    /// Where the bundle goes; none for a replayed request whose operation failed.
    pub uri: Option<String>,
    pub days: u32,
}

/// The API's command: checks the request and records the `DIAGNOSTICS` operation.
/// Nothing is written when it is refused.
pub async fn request(
    store: &Store,
    staging: &S3Location,
    ctx: &WriteCtx,
    cluster_id: i64,
    proposed: ProposedDiagnostics,
) -> Result<Requested, RequestError> {
    let checked = DiagnosticsRequest::parse(proposed)?;
    match store.get_cluster(cluster_id).await {
        Ok(c) if c.delete_requested => {
            return Err(RequestError::Deleted {
                id: cluster_id,
                status: c.status_code,
            })
        }
        Ok(_) => {}
        Err(StoreError::NotFound { .. }) => return Err(RequestError::UnknownCluster(cluster_id)),
        Err(e) => return Err(e.into()),
    }
    let (bucket, key) = destination(staging, checked.upload_path.as_ref(), cluster_id, now_ms());
    let new = NewDiagnostics {
        days: checked.days,
        bucket,
        key,
    };
    let submitted = store.request_diagnostics(ctx, cluster_id, &new).await?;
    let uri = if submitted.replayed {
        store.diagnostics_uri(submitted.operation_id).await?
    } else {
        Some(new.uri())
    };
    Ok(Requested {
        submitted,
        uri,
        days: checked.days,
    })
}

/// Wakes the diagnostics worker for an operation. It never fails the request: a
/// lost wake-up leaves the request to the worker's schedule.
pub type Wake = Arc<dyn Fn(i64) -> BoxFuture + Send + Sync>;

/// The event that asks the worker (the log-rotation function) for an operation.
pub fn event(operation_id: i64) -> Value {
    json!({ "diagnostics": { "operationId": operation_id } })
}

/// Reads a worker event: none when the event is not a diagnostics event at all
/// (the log-rotation function's other events), else its operation id, or why it
/// is malformed.
pub fn parse_event(event: &Value) -> Option<Result<i64, String>> {
    let d = event.get("diagnostics")?;
    let parsed = match d.as_object() {
        Some(o) if o.len() == 1 => o
            .get("operationId")
            .and_then(Value::as_i64)
            .filter(|id| *id > 0)
            .ok_or_else(|| format!("diagnostics.operationId must be a positive whole number, got {d}")),
        _ => Err(format!(
            "a diagnostics event is {{\"diagnostics\": {{\"operationId\": N}}}}, got {d}"
        )),
    };
    Some(parsed)
}

/// The wake-up of the Lambda deployment: an asynchronous invoke of the worker
/// function (the log-rotation function) with [`event`].
pub fn wake_by_invoke<F: Functions + 'static>(functions: Arc<F>, function: String) -> Wake {
    Arc::new(move |operation_id: i64| {
        let (functions, function) = (functions.clone(), function.clone());
        Box::pin(async move {
            let payload = event(operation_id).to_string().into_bytes();
            if let Err(e) = functions.invoke_async(&function, payload).await {
                tracing::warn!(error = %e, operation_id, "could not wake the diagnostics worker; its schedule will");
            }
        })
    })
}

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("could not list the cluster's logs under {location}")]
    List {
        location: String,
        #[source]
        source: CloudError,
    },
    #[error("could not read {uri}")]
    Read {
        uri: String,
        #[source]
        source: CloudError,
    },
    #[error("could not write the bundle to {uri}")]
    Write {
        uri: String,
        #[source]
        source: CloudError,
    },
    /// The object's bytes differ from the size its GET announced: it changed
    /// while it was read. The tar entry would be corrupt, so the bundle is given up.
    #[error("{uri} changed while it was read: its GET announced {expected} bytes, and {read} came")]
    Changed { uri: String, expected: u64, read: u64 },
    #[error("cluster {0} no longer exists")]
    NoCluster(i64),
    #[error("reading the cluster's records from the database failed")]
    Store(#[source] StoreError),
    #[error("the diagnostics worker lost its lease on the request; another worker has taken it over")]
    LostLease,
}

impl BundleError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            BundleError::List { source, .. }
            | BundleError::Read { source, .. }
            | BundleError::Write { source, .. } => source.is_retryable(),
            BundleError::Changed { .. } => true,
            BundleError::Store(e) => e.is_retryable(),
            BundleError::NoCluster(_) | BundleError::LostLease => false,
        }
    }

    /// The message the operation shows: the whole chain for S3 errors (their
    /// code and message say what to fix), none of the database's internals.
    pub fn user_message(&self) -> String {
        match self {
            BundleError::Store(_) => format!("{self}; the DM's log has the cause"),
            _ => chain(self),
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What a bundle holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleStats {
    /// Log objects in the bundle, and their bytes.
    pub log_objects: u64,
    pub log_bytes: u64,
    /// Everything in the tar (headers and padding included), before gzip.
    pub tar_bytes: u64,
    /// The object written to S3.
    pub bundle_bytes: u64,
    /// Parts of its multipart upload (0: a single PUT).
    pub parts: usize,
    /// Keys under the cluster's logs that are not in the layout (skipped).
    pub outside_layout: u64,
    /// Objects that were listed but gone when read (compacted meanwhile).
    pub vanished: u64,
}

impl BundleStats {
    /// The message of the operation's step; its result holds the URI.
    fn summary(&self) -> String {
        format!(
            "{} log object(s) of {} byte(s), in a bundle of {} byte(s)",
            self.log_objects, self.log_bytes, self.bundle_bytes
        )
    }
}

/// What one run of the worker did with an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded {
        uri: String,
        stats: BundleStats,
    },
    /// The operation failed with this error.
    Failed {
        error: String,
    },
    /// This attempt failed in a way that may pass; the request waits for the next run.
    Retrying {
        error: String,
    },
    /// Another worker holds the request.
    Busy,
    /// Nothing to do: the operation finished already, or is not a diagnostics one.
    AlreadyFinished,
}

/// The diagnostics worker, over the store and the object store.
pub struct Worker<'a, O: ObjectStore> {
    pub store: &'a Store,
    pub objects: &'a O,
    /// Where the node logs are (`logs/…` under it).
    pub staging: &'a S3Location,
    /// The clock the logs are keyed by; it decides which hours are in "the last N days".
    pub clock: LogClock,
    /// Names this worker in leases.
    pub owner: &'a str,
    pub lease_ms: i64,
}

impl<'a, O: ObjectStore> Worker<'a, O> {
    pub fn new(
        store: &'a Store,
        objects: &'a O,
        staging: &'a S3Location,
        clock: LogClock,
        owner: &'a str,
    ) -> Self {
        Worker {
            store,
            objects,
            staging,
            clock,
            owner,
            lease_ms: LEASE_MS,
        }
    }

    /// Builds the bundle of one operation, and finishes the operation. Safe to
    /// run twice on the same event: a finished operation is left alone, and one
    /// that another worker holds is left to it.
    #[tracing::instrument(skip_all, fields(operation_id = operation_id))]
    pub async fn run(&self, operation_id: i64) -> Result<RunOutcome, StoreError> {
        let job = match self
            .store
            .claim_diagnostics(operation_id, self.owner, self.lease_ms)
            .await?
        {
            Claim::Job(job) => job,
            Claim::Busy => return Ok(RunOutcome::Busy),
            Claim::Finished => return Ok(RunOutcome::AlreadyFinished),
        };
        let uri = job.uri();
        if job.attempts > MAX_ATTEMPTS {
            let error = format!(
                "gave up after {MAX_ATTEMPTS} attempts; the last one failed: {}",
                job.last_error
                    .as_deref()
                    .unwrap_or("it was stopped before it finished (did the worker run out of time?)")
            );
            return self
                .finish(
                    &job,
                    Finish::Failed { error: error.clone() },
                    RunOutcome::Failed { error },
                )
                .await;
        }
        if job.attempts > 1 {
            self.abort_leftovers(&job).await;
        }
        match self.build(&job).await {
            Ok(stats) => {
                tracing::info!(%uri, log_objects = stats.log_objects, bytes = stats.bundle_bytes, "diagnostics bundle written");
                let finish = Finish::Succeeded {
                    uri: uri.clone(),
                    message: stats.summary(),
                };
                self.finish(&job, finish, RunOutcome::Succeeded { uri, stats })
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), %uri, attempt = job.attempts, "diagnostics bundle failed");
                let error = e.user_message();
                if e.is_retryable() && job.attempts < MAX_ATTEMPTS {
                    self.store
                        .release_diagnostics(operation_id, self.owner, &error)
                        .await?;
                    Ok(RunOutcome::Retrying { error })
                } else {
                    self.finish(
                        &job,
                        Finish::Failed { error: error.clone() },
                        RunOutcome::Failed { error },
                    )
                    .await
                }
            }
        }
    }

    async fn finish(
        &self,
        job: &DiagnosticsJob,
        finish: Finish,
        outcome: RunOutcome,
    ) -> Result<RunOutcome, StoreError> {
        if self
            .store
            .finish_diagnostics(job.operation_id, self.owner, &finish)
            .await?
        {
            Ok(outcome)
        } else {
            Ok(RunOutcome::Busy)
        }
    }

    /// Runs every open request that no worker holds (new ones whose wake-up was
    /// lost, given-back ones, those of a killed worker), at most `limit`.
    pub async fn run_due(&self, limit: i64) -> Result<Vec<(i64, RunOutcome)>, StoreError> {
        let mut done = Vec::new();
        for id in self.store.diagnostics_due(limit).await? {
            done.push((id, self.run(id).await?));
        }
        Ok(done)
    }

    /// An earlier attempt that was killed may have left a multipart upload of the
    /// same key behind; throw it away (best effort: the bucket's rule for
    /// incomplete uploads is the backstop).
    async fn abort_leftovers(&self, job: &DiagnosticsJob) {
        match self.objects.pending_uploads(&job.bucket, &job.key).await {
            Ok(pending) => {
                for p in pending.iter().filter(|p| p.key == job.key) {
                    // `abort_multipart` logs nothing itself; a failure is left to the rule.
                    if let Err(e) = self
                        .objects
                        .abort_multipart(&job.bucket, &p.key, &p.upload_id)
                        .await
                    {
                        tracing::warn!(error = %e, key = %p.key, "could not abort a leftover upload");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, key = %job.key, "could not list leftover uploads"),
        }
    }

    /// Builds the bundle of a request this worker holds and writes it to S3.
    pub async fn build(&self, job: &DiagnosticsJob) -> Result<BundleStats, BundleError> {
        let uri = job.uri();
        let upload = Upload::new(self.objects, &job.bucket, &job.key);
        let mut tar = TarOut {
            gz: GzUpload::new(upload),
            uri: uri.clone(),
        };
        match self.write_bundle(job, &mut tar).await {
            Ok(mut stats) => {
                stats.tar_bytes = tar.gz.plain_bytes() + 1024;
                stats.parts = tar.gz.upload().parts();
                stats.bundle_bytes = tar.finish().await?;
                if stats.parts > 0 {
                    // The last part goes up in `finish`.
                    stats.parts += 1;
                }
                Ok(stats)
            }
            Err(e) => {
                tar.gz.abort().await;
                Err(e)
            }
        }
    }

    async fn write_bundle(
        &self,
        job: &DiagnosticsJob,
        tar: &mut TarOut<'_, O>,
    ) -> Result<BundleStats, BundleError> {
        let generated = now_ms();
        // The directory is named as the file: `cluster-<id>-<timestamp>`.
        let root = job
            .key
            .rsplit('/')
            .next()
            .and_then(|file| file.strip_suffix(".tgz"))
            .map_or_else(|| bundle_root(job.cluster_id, job.requested_at), str::to_owned);
        let since_ms = job.requested_at - i64::from(job.days) * DAY_MS;
        let since_log = self.clock.at(job.requested_at) - i64::from(job.days) * DAY_MS;
        let mtime = (generated / 1000).max(0) as u64;

        // The records first: they are small and bounded.
        let cluster = match self.store.get_cluster(job.cluster_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound { .. }) => return Err(BundleError::NoCluster(job.cluster_id)),
            Err(e) => return Err(BundleError::Store(e)),
        };
        let nodes = self
            .store
            .nodes_of(job.cluster_id)
            .await
            .map_err(BundleError::Store)?;
        tar.file(
            &format!("{root}/cluster.json"),
            &pretty(&cluster_document(&cluster, &nodes)),
            mtime,
        )
        .await?;
        let history = self
            .store
            .status_history_since(job.cluster_id, since_ms, HISTORY_ROWS)
            .await
            .map_err(BundleError::Store)?;
        tar.file(
            &format!("{root}/status-history.json"),
            &pretty(&history_document(&history)),
            mtime,
        )
        .await?;
        let operations = self
            .store
            .operations_since("cluster", job.cluster_id, since_ms, HISTORY_ROWS)
            .await
            .map_err(BundleError::Store)?;
        tar.file(
            &format!("{root}/operations.json"),
            &pretty(&operations_document(&operations)),
            mtime,
        )
        .await?;
        let audit = self
            .store
            .audit_since(&format!("cluster/{}", job.cluster_id), since_ms, HISTORY_ROWS)
            .await
            .map_err(BundleError::Store)?;
        tar.file(
            &format!("{root}/audit.json"),
            &pretty(&audit_document(&audit)),
            mtime,
        )
        .await?;

        // Then the logs, a page of the listing at a time.
        let mut stats = BundleStats::default();
        let mut outside = Vec::new();
        let mut vanished = Vec::new();
        let base = self.staging.key("");
        let prefix = self.staging.key(&format!("logs/{}/", job.cluster_id));
        let mut next = None;
        loop {
            let page = self
                .objects
                .list_page(&self.staging.bucket, &prefix, next)
                .await
                .map_err(|source| BundleError::List {
                    location: format!("s3://{}/{prefix}", self.staging.bucket),
                    source,
                })?;
            for object in &page.objects {
                let relative = object.key.strip_prefix(&base).unwrap_or(&object.key);
                let hour = match parse_log_key(relative) {
                    Ok(
                        LogKey::Part { hour, .. }
                        | LogKey::Compacted { hour, .. }
                        | LogKey::Manifest { hour, .. },
                    ) if hour.cluster_id == job.cluster_id => hour,
                    _ => {
                        stats.outside_layout += 1;
                        if outside.len() < NAMED_KEYS {
                            outside.push(object.key.clone());
                        }
                        continue;
                    }
                };
                if hour.start_ms + HOUR_MS <= since_log {
                    continue;
                }
                let file = relative.rsplit('/').next().unwrap_or_default();
                let day_hour = format_ms(hour.start_ms);
                let path = format!(
                    "{root}/logs/{}/{}/{}-{}/{file}",
                    hour.instance_id,
                    hour.service,
                    &day_hour[0..10],
                    &day_hour[11..13]
                );
                let hour_mtime = (hour.start_ms / 1000).max(0) as u64;
                match self.copy_object(tar, &object.key, &path, hour_mtime).await? {
                    Some(bytes) => {
                        stats.log_objects += 1;
                        stats.log_bytes += bytes;
                    }
                    None => {
                        stats.vanished += 1;
                        if vanished.len() < NAMED_KEYS {
                            vanished.push(object.key.clone());
                        }
                    }
                }
            }
            if !self
                .store
                .renew_diagnostics(job.operation_id, self.owner, self.lease_ms)
                .await
                .map_err(BundleError::Store)?
            {
                return Err(BundleError::LostLease);
            }
            match page.next {
                Some(token) => next = Some(token),
                None => break,
            }
        }

        let manifest = json!({
            "clusterId": job.cluster_id,
            "clusterName": cluster.name,
            "days": job.days,
            "requestedAt": format_ms(job.requested_at),
            "generatedAt": format_ms(generated),
            "destination": job.uri(),
            "logs": {
                "source": format!("s3://{}/{prefix}", self.staging.bucket),
                "fromHour": format_ms(since_log - since_log.rem_euclid(HOUR_MS)),
                "logClockHourMs": self.clock.hour_ms,
                "objects": stats.log_objects,
                "bytes": stats.log_bytes,
            },
            "records": {
                "since": format_ms(since_ms),
                "statusChanges": history.len(),
                "operations": operations.len(),
                "auditEntries": audit.len(),
                "limitPerKind": HISTORY_ROWS,
            },
            "skipped": {
                "outsideLayout": { "count": stats.outside_layout, "keys": outside },
                "vanished": {
                    "count": stats.vanished,
                    "keys": vanished,
                    "why": "listed, then gone when read: log rotation compacts parts into compacted-*.log.gz, which the bundle holds when it was listed",
                },
            },
        });
        tar.file(&format!("{root}/manifest.json"), &pretty(&manifest), mtime)
            .await?;
        Ok(stats)
    }

    /// Streams one object into the tar: a header with the size its GET announced,
    /// the body chunk by chunk, then the padding. None when the object is gone.
    async fn copy_object(
        &self,
        tar: &mut TarOut<'_, O>,
        key: &str,
        path: &str,
        mtime: u64,
    ) -> Result<Option<u64>, BundleError> {
        let uri = || format!("s3://{}/{key}", self.staging.bucket);
        let body = self
            .objects
            .get_body(&self.staging.bucket, key)
            .await
            .map_err(|source| BundleError::Read { uri: uri(), source })?;
        let Some(mut body) = body else {
            return Ok(None);
        };
        let expected = body.meta.size;
        tar.header(path, expected, mtime).await?;
        let mut read = 0u64;
        while let Some(chunk) = body
            .next_chunk()
            .await
            .map_err(|source| BundleError::Read { uri: uri(), source })?
        {
            read += chunk.len() as u64;
            if read > expected {
                break;
            }
            tar.write(&chunk).await?;
        }
        if read != expected {
            return Err(BundleError::Changed {
                uri: uri(),
                expected,
                read,
            });
        }
        tar.pad(expected).await?;
        Ok(Some(expected))
    }
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(v).expect("JSON serialises");
    bytes.push(b'\n');
    bytes
}

fn cluster_document(c: &ClusterRow, nodes: &[NodeRow]) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "type": c.cluster_type,
        "environmentId": c.environment_id,
        "numNodes": c.num_nodes,
        "instanceType": c.instance_type,
        "storageGb": c.storage_gb,
        "version": c.odas_version,
        "owner": c.owner,
        "tags": c.tags,
        "terminationProtectionEnabled": c.termination_protection,
        "autoRepairEnabled": c.auto_repair,
        "deleteRequested": c.delete_requested,
        "statusCode": c.status_code,
        "statusMessage": c.status_message,
        "statusSince": format_ms(c.status_since),
        "healthCheckedAt": (c.health_checked_at > 0).then(|| format_ms(c.health_checked_at)),
        "generation": c.generation,
        "observedGeneration": c.observed_generation,
        "configGeneration": c.config_generation,
        "numRunningNodes": c.running_nodes,
        "runningServices": c.running_services,
        "resources": {
            "autoScalingGroup": c.asg_name,
            "launchTemplate": c.launch_template_id,
            "configUri": c.config_uri,
        },
        "createdAt": format_ms(c.created_at),
        "updatedAt": format_ms(c.updated_at),
        "nodes": nodes.iter().map(|n| json!({
            "instanceId": n.instance_id,
            "lifecycleState": n.lifecycle_state,
            "availabilityZone": n.availability_zone,
            "privateIp": n.private_ip,
            "launchedAt": format_ms(n.launched_at),
            "joiningSince": n.joining_since.map(format_ms),
            "probe": n.probe,
            "checkedAt": (n.checked_at > 0).then(|| format_ms(n.checked_at)),
            "unhealthySince": n.unhealthy_since.map(format_ms),
            "repairRequestedAt": n.repair_requested_at.map(format_ms),
        })).collect::<Vec<_>>(),
    })
}

fn history_document(history: &[StatusChange]) -> Value {
    json!({
        "statusChanges": history.iter().map(|h| json!({
            "at": format_ms(h.at),
            "code": h.code,
            "message": h.message,
        })).collect::<Vec<_>>(),
    })
}

fn operations_document(operations: &[OperationRow]) -> Value {
    json!({
        "operations": operations.iter().map(|o| json!({
            "id": o.id,
            "kind": o.kind,
            "target": format!("{}/{}", o.target_kind, o.target_id),
            "state": o.state,
            "steps": o.steps,
            "error": o.error,
            "result": o.result,
            "principal": o.principal,
            "createdAt": format_ms(o.created_at),
            "updatedAt": format_ms(o.updated_at),
        })).collect::<Vec<_>>(),
    })
}

fn audit_document(audit: &[AuditRow]) -> Value {
    json!({
        "auditEntries": audit.iter().map(|a| json!({
            "id": a.id,
            "at": format_ms(a.at),
            "principal": a.principal,
            "action": a.action,
            "target": a.target,
            "detail": a.detail,
        })).collect::<Vec<_>>(),
    })
}

/// The 512-byte header(s) of a tar entry: a ustar header, after a PAX header that
/// carries the whole path when the path does not fit ustar's name and prefix.
pub fn entry_header(path: &str, size: u64, mtime: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut header = tar::Header::new_ustar();
    if header.set_path(path).is_err() {
        // A path record: "<length> path=<path>\n", the length counting itself.
        let body_len = " path=\n".len() + path.len();
        let mut len = body_len + 1;
        while len != body_len + len.to_string().len() {
            len = body_len + len.to_string().len();
        }
        let record = format!("{len} path={path}\n");
        let mut pax = tar::Header::new_ustar();
        pax.set_path("PaxHeader/entry").expect("a short path fits");
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_mode(0o644);
        pax.set_mtime(mtime);
        pax.set_cksum();
        out.extend_from_slice(pax.as_bytes());
        out.extend_from_slice(record.as_bytes());
        out.resize(out.len() + padding(record.len() as u64), 0);
        // The ustar name is only a fallback for readers without PAX.
        let tail: String = path
            .chars()
            .rev()
            .take(90)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let fallback = tail.trim_start_matches('/').replace("..", "__");
        if header.set_path(&fallback).is_err() {
            header.set_path("long-name").expect("a short path fits");
        }
    }
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out
}

/// Zero bytes after `size` bytes of data, up to the next 512-byte block.
fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// A tar stream into a gzip upload.
struct TarOut<'a, O: ObjectStore> {
    gz: GzUpload<'a, O>,
    uri: String,
}

impl<O: ObjectStore> TarOut<'_, O> {
    async fn write(&mut self, data: &[u8]) -> Result<(), BundleError> {
        self.gz.write(data).await.map_err(|source| BundleError::Write {
            uri: self.uri.clone(),
            source,
        })
    }

    async fn header(&mut self, path: &str, size: u64, mtime: u64) -> Result<(), BundleError> {
        self.write(&entry_header(path, size, mtime)).await
    }

    async fn pad(&mut self, size: u64) -> Result<(), BundleError> {
        let zeros = [0u8; 512];
        self.write(&zeros[..padding(size)]).await
    }

    /// A whole entry from bytes in memory.
    async fn file(&mut self, path: &str, bytes: &[u8], mtime: u64) -> Result<(), BundleError> {
        self.header(path, bytes.len() as u64, mtime).await?;
        self.write(bytes).await?;
        self.pad(bytes.len() as u64).await
    }

    /// Ends the archive (two zero blocks) and the object; returns its size.
    async fn finish(mut self) -> Result<u64, BundleError> {
        self.write(&[0u8; 1024]).await?;
        let uri = self.uri.clone();
        self.gz
            .finish()
            .await
            .map_err(|source| BundleError::Write { uri, source })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn proposed(days: Option<i64>, path: Option<&str>) -> ProposedDiagnostics {
        ProposedDiagnostics {
            days,
            s3_upload_path: path.map(str::to_owned),
        }
    }

    #[test]
    fn requests_default_to_one_day_under_the_staging_location() {
        let r = DiagnosticsRequest::parse(ProposedDiagnostics::default()).unwrap();
        assert_eq!(
            r,
            DiagnosticsRequest {
                days: 1,
                upload_path: None
            }
        );
        let r = DiagnosticsRequest::parse(proposed(Some(30), Some("s3://my-bucket/ops/diag/"))).unwrap();
        assert_eq!(r.days, 30);
        assert_eq!(
            r.upload_path,
            Some(S3Location::parse("s3://my-bucket/ops/diag").unwrap())
        );
    }

    #[test]
    fn bad_requests_name_their_field() {
        let long = format!("s3://my-bucket/{}", "p".repeat(1000));
        for (p, field, why) in [
            (proposed(Some(0), None), "days", "from 1 to 30, got 0"),
            (proposed(Some(31), None), "days", "got 31"),
            (proposed(Some(-2), None), "days", "got -2"),
            (proposed(Some(i64::MAX), None), "days", "from 1 to 30"),
            (
                proposed(None, Some("my-bucket/x")),
                "s3UploadPath",
                "must start with s3://",
            ),
            (proposed(None, Some("s3://")), "s3UploadPath", "valid S3 bucket"),
            (
                proposed(None, Some("s3://Bad_Bucket/x")),
                "s3UploadPath",
                "valid S3 bucket",
            ),
            (
                proposed(None, Some("s3://my-bucket/a//b")),
                "s3UploadPath",
                "path segment",
            ),
            (
                proposed(None, Some("s3://my-bucket/a/../b")),
                "s3UploadPath",
                "path segment",
            ),
            (
                proposed(None, Some("s3://my-bucket/a\nb")),
                "s3UploadPath",
                "control character",
            ),
            (proposed(None, Some(&long)), "s3UploadPath", "too long"),
        ] {
            let e = DiagnosticsRequest::parse(p.clone()).expect_err(&format!("{p:?}"));
            assert_eq!(e.field, field, "{p:?}");
            assert!(e.message.contains(why), "{p:?}: {}", e.message);
        }
    }

    #[test]
    fn bundles_go_under_diagnostics_with_a_timestamp_cluster_and_uuid() {
        let staging = S3Location::parse("s3://okera-staging/dm").unwrap();
        let at = 1_764_086_421_557; // 2025-11-25 16:00:21.557
        let (bucket, key) = destination(&staging, None, 7, at);
        assert_eq!(bucket, "okera-staging");
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(
            parts[..4],
            ["dm", "diagnostics", "20251125T160021Z", "7"],
            "{key}"
        );
        assert_eq!(parts[4].len(), 36, "{key}");
        assert_eq!(parts[4].as_bytes()[14], b'4', "a version 4 UUID: {key}");
        assert_eq!(parts[5], "cluster-7-20251125T160021Z.tgz");
        let mine = S3Location::parse("s3://my-bucket/x/y").unwrap();
        let (bucket, key) = destination(&staging, Some(&mine), 7, at);
        assert_eq!(bucket, "my-bucket");
        assert!(key.starts_with("x/y/diagnostics/20251125T160021Z/7/"), "{key}");
        assert_ne!(
            destination(&staging, None, 7, at),
            destination(&staging, None, 7, at)
        );
    }

    #[test]
    fn diagnostics_events_round_trip_and_other_events_are_not_ours() {
        assert_eq!(parse_event(&event(12)), Some(Ok(12)));
        assert_eq!(parse_event(&json!({"detail-type": "Scheduled Event"})), None);
        for bad in [
            json!({"diagnostics": {"operationId": 0}}),
            json!({"diagnostics": {"operationId": "3"}}),
            json!({"diagnostics": {}}),
            json!({"diagnostics": 3}),
            json!({"diagnostics": {"operationId": 3, "extra": 1}}),
        ] {
            assert!(matches!(parse_event(&bad), Some(Err(_))), "{bad}");
        }
    }

    /// Reads a tar made of `entries` (header, data, padding) with the tar crate.
    fn read_back(entries: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        let mut bytes = Vec::new();
        for (path, data) in entries {
            bytes.extend(entry_header(path, data.len() as u64, 1_700_000_000));
            bytes.extend_from_slice(data);
            bytes.resize(bytes.len() + padding(data.len() as u64), 0);
        }
        bytes.extend([0u8; 1024]);
        let mut archive = tar::Archive::new(&bytes[..]);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, data)
            })
            .collect()
    }

    #[test]
    fn entries_keep_paths_of_any_length() {
        let short = "cluster-7-20251125T160021Z/cluster.json";
        let split = format!(
            "cluster-7-20251125T160021Z/logs/i-0123456789abcdef0/rest-server/2025-11-25-16/{}.log.gz",
            "1764086400005-0123456789abcdef"
        );
        let long = format!(
            "cluster-7-20251125T160021Z/logs/i-0abc/planner/2025-11-25-16/{}.log",
            "x".repeat(150)
        );
        assert!(split.len() > 100 && long.len() > 155);
        let read = read_back(&[
            (short, b"{}"),
            (&split, &[1u8; 513]),
            (&long, b""),
            (short, &[7u8; 512]),
        ]);
        assert_eq!(
            read,
            vec![
                (short.to_owned(), b"{}".to_vec()),
                (split.clone(), vec![1u8; 513]),
                (long.clone(), vec![]),
                (short.to_owned(), vec![7u8; 512]),
            ]
        );
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid_v4();
        let groups: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{u}");
        assert!(
            u.as_bytes()[14] == b'4' && b"89ab".contains(&u.as_bytes()[19]),
            "{u}"
        );
    }
}
