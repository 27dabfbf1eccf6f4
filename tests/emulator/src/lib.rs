//! The AWS emulator for tests and `dm-local`: moto's server (pinned, in its own
//! venv) with the DM's plugins, on a free loopback port.
//!
//! * [`ensure_venv`] creates the venv and installs the pinned requirements.
//! * [`Emulator::start`] runs `python -m dm_emulator` and waits for it.
//! * [`shared`] is one emulator per test process; isolate tests from each other
//!   with [`fresh_account`] as the AWS access key id (a 12-digit access key id
//!   selects that account in the emulator).
//! * [`Emulator::inject_fault`] / [`Emulator::request_count`] drive the
//!   emulator's `/_dm/` control routes (S3 by operation name; a
//!   [`FaultRule`] may `skip` matching requests to fail partway through);
//!   [`Emulator::requests`] counts every request of an account by action.
//! * [`Emulator::set_upload_initiated`] back-dates an S3 multipart upload.
//! * [`Emulator::create_function`] makes a stub Lambda function (no IAM or
//!   zip needed) and [`Emulator::invocations`] lists the `Event` invocations
//!   the emulator recorded instead of running them.
//! * [`Emulator::lifecycle_events`] lists the Auto Scaling lifecycle action
//!   events the emulator recorded, and [`Emulator::advance_clock`] moves its
//!   clock so lifecycle hook timeouts expire without waiting.
//! * [`Emulator::alarm_events`] lists the CloudWatch alarm state-change events
//!   (the emulator evaluates metric alarms; CloudWatch also speaks the Smithy
//!   rpcv2 CBOR protocol of the current AWS SDKs).
//! * [`Emulator::set_replication_lag`] / [`Emulator::replication_lag`] set and
//!   read the replication lag of an Aurora global database's secondary
//!   cluster (also put into CloudWatch as `AuroraGlobalDBReplicationLag`), and
//!   [`Emulator::set_global_failover_duration`] makes the emulator's
//!   `SwitchoverGlobalCluster` / `FailoverGlobalCluster` take time on its clock.
//! * [`Emulator::resolve`] answers what Route 53 would answer for a name now
//!   ([`Resolved`]): failover records follow their health checks, which
//!   follow CloudWatch alarms.
//! * [`Emulator::set_region_outage`] takes a region down (every service
//!   answers 503 `ServiceUnavailable`), [`FaultRule::region`] scopes a fault
//!   to one region, and [`Emulator::set_capacity`] makes an instance type run
//!   out (`InsufficientInstanceCapacity`; Auto Scaling groups stay short).
//!   DynamoDB global tables (multi-region strong consistency) need no helper:
//!   `UpdateTable` with `ReplicaUpdates` works as on AWS.
//!
//! The Python package and the requirements are embedded in this crate, so a
//! binary using it (dm-local) is self-contained.

pub mod roles;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

/// `tests/emulator/requirements.txt`: moto[server] and all its dependencies, pinned.
pub const REQUIREMENTS: &str = include_str!("../requirements.txt");

/// The `dm_emulator` Python package: (path relative to the package's parent, content).
const PACKAGE_FILES: &[(&str, &str)] = &[
    (
        "dm_emulator/__init__.py",
        include_str!("../python/dm_emulator/__init__.py"),
    ),
    (
        "dm_emulator/__main__.py",
        include_str!("../python/dm_emulator/__main__.py"),
    ),
    (
        "dm_emulator/cbor.py",
        include_str!("../python/dm_emulator/cbor.py"),
    ),
    (
        "dm_emulator/faults.py",
        include_str!("../python/dm_emulator/faults.py"),
    ),
    (
        "dm_emulator/plugins/__init__.py",
        include_str!("../python/dm_emulator/plugins/__init__.py"),
    ),
    (
        "dm_emulator/plugins/accounts.py",
        include_str!("../python/dm_emulator/plugins/accounts.py"),
    ),
    (
        "dm_emulator/plugins/asg_instance_health.py",
        include_str!("../python/dm_emulator/plugins/asg_instance_health.py"),
    ),
    (
        "dm_emulator/plugins/autoscaling_unique_names.py",
        include_str!("../python/dm_emulator/plugins/autoscaling_unique_names.py"),
    ),
    (
        "dm_emulator/plugins/cloudwatch_alarms.py",
        include_str!("../python/dm_emulator/plugins/cloudwatch_alarms.py"),
    ),
    (
        "dm_emulator/plugins/cloudwatch_cbor.py",
        include_str!("../python/dm_emulator/plugins/cloudwatch_cbor.py"),
    ),
    (
        "dm_emulator/plugins/cloudwatch_list_metrics.py",
        include_str!("../python/dm_emulator/plugins/cloudwatch_list_metrics.py"),
    ),
    (
        "dm_emulator/plugins/dynamodb_global_tables.py",
        include_str!("../python/dm_emulator/plugins/dynamodb_global_tables.py"),
    ),
    (
        "dm_emulator/plugins/ec2_capacity.py",
        include_str!("../python/dm_emulator/plugins/ec2_capacity.py"),
    ),
    (
        "dm_emulator/plugins/ec2_instance_pages.py",
        include_str!("../python/dm_emulator/plugins/ec2_instance_pages.py"),
    ),
    (
        "dm_emulator/plugins/lambda_async_invoke.py",
        include_str!("../python/dm_emulator/plugins/lambda_async_invoke.py"),
    ),
    (
        "dm_emulator/plugins/lifecycle_hooks.py",
        include_str!("../python/dm_emulator/plugins/lifecycle_hooks.py"),
    ),
    (
        "dm_emulator/plugins/rds_global_clusters.py",
        include_str!("../python/dm_emulator/plugins/rds_global_clusters.py"),
    ),
    (
        "dm_emulator/plugins/route53_changes.py",
        include_str!("../python/dm_emulator/plugins/route53_changes.py"),
    ),
    (
        "dm_emulator/plugins/route53_health_checks.py",
        include_str!("../python/dm_emulator/plugins/route53_health_checks.py"),
    ),
    (
        "dm_emulator/plugins/s3_lifecycle.py",
        include_str!("../python/dm_emulator/plugins/s3_lifecycle.py"),
    ),
    (
        "dm_emulator/plugins/s3_multipart_uploads.py",
        include_str!("../python/dm_emulator/plugins/s3_multipart_uploads.py"),
    ),
];

/// Marker in the venv: a copy of the requirements it was installed from.
/// `tests/run` uses the same file name and compares the same way.
const MARKER: &str = ".dm-requirements.txt";
const PACKAGE_DIR: &str = "dm_emulator_src";
/// Rewritten in a package directory whenever the package is written there.
const LAST_USED: &str = ".last-used";
const READY_PREFIX: &str = "DM_EMULATOR_READY ";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const SETUP_LOCK_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Creates (or updates) the emulator's venv at `dir` and returns its python.
///
/// * `python3 -m venv DIR` if there is no venv yet;
/// * `pip install -r requirements.txt` unless the marker file shows exactly
///   these requirements are already installed;
/// * writes the embedded `dm_emulator` package to `DIR/dm_emulator_src/<hash
///   of its content>` (every call, so it always matches this binary, and
///   binaries with other versions of it never overwrite its files), and
///   removes other versions' directories unused for a day.
///
/// Safe to call from several processes at once (a lock file `DIR.lock`
/// serialises setup).  Progress goes to stderr.
pub fn ensure_venv(dir: &Path) -> Result<PathBuf> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let _lock = SetupLock::acquire(&lock_path(dir))?;
    let python = venv_python(dir);
    let marker = dir.join(MARKER);
    let installed = fs::read_to_string(&marker).ok();
    if !python.exists() || installed.as_deref() != Some(REQUIREMENTS) {
        progress(&format!(
            "setting up the AWS emulator in {} (first run takes a minute)",
            dir.display()
        ));
        if !python.exists() {
            let base = std::env::var("DM_EMULATOR_BASE_PYTHON").unwrap_or_else(|_| "python3".into());
            run_to_stderr(
                Command::new(&base).arg("-m").arg("venv").arg(dir),
                &format!(
                    "{base} -m venv {} (on Debian: apt-get install python3-venv)",
                    dir.display()
                ),
            )?;
            if !python.exists() {
                bail!("{base} -m venv did not create {}", python.display());
            }
        }
        let requirements = dir.join("requirements.txt");
        write_atomic(&requirements, REQUIREMENTS.as_bytes())?;
        let _ = fs::remove_file(&marker);
        run_to_stderr(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-q",
                    "-r",
                ])
                .arg(&requirements),
            "pip install -r requirements.txt (the AWS emulator's pinned moto)",
        )?;
        write_atomic(&marker, REQUIREMENTS.as_bytes())?;
        progress(&format!("AWS emulator ready in {}", dir.display()));
    }
    let packages = dir.join(PACKAGE_DIR);
    prune_old_packages(&packages, Duration::from_secs(24 * 3600));
    write_package(&packages.join(package_hash()))?;
    Ok(python)
}

/// A running `python -m dm_emulator`; the child is killed on drop.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    endpoint: String,
    addr: SocketAddr,
}

/// Make the next `count` requests matching `service:action` (and `account`
/// and `region`, if set) fail with HTTP `status` and error `code`, shaped like the
/// service's protocol, after letting the first `skip` matching requests
/// through (0: fail from the next one on).  `action` may be `"*"`.  For S3
/// the action is the operation (`"UploadPart"`, `"ListObjectsV2"`,
/// `"PutBucketLifecycleConfiguration"`, ...; see the emulator's README) or a
/// bare HTTP method (`"PUT"`, `"GET"`, ...), which matches every S3 request
/// of that method; S3 errors are S3's XML, so `503 SlowDown` is throttling
/// and `500 InternalError` a transient error to the SDK.
///
/// `skip` counts every matching request that arrives after the rule is
/// armed, including ones another rule fails: it counts attempts, as
/// [`Emulator::request_count`] does.  The 3rd `UploadPart` failing twice
/// (the part and the SDK's first retry of it):
///
/// ```ignore
/// emulator.inject_fault(&FaultRule::new("s3", "UploadPart", 503, "SlowDown", 2).account(&account).skip(2))?;
/// ```
///
/// Build rules with [`FaultRule::new`] and its setters, or as a struct
/// literal ending in `..Default::default()`, so that fields added later
/// keep compiling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultRule {
    pub service: String,
    pub action: String,
    pub status: u16,
    pub code: String,
    pub count: u32,
    pub account: Option<String>,
    /// Matching requests to let through before the `count` faults; sent
    /// only when not 0.
    pub skip: u32,
    /// Only requests signed for this region (the region of the SigV4
    /// credential scope); sent only when set.
    pub region: Option<String>,
}

impl FaultRule {
    /// Fails the next `count` requests of `service:action` of any account
    /// with `status` and `code`.
    pub fn new(service: &str, action: &str, status: u16, code: &str, count: u32) -> FaultRule {
        FaultRule {
            service: service.to_owned(),
            action: action.to_owned(),
            status,
            code: code.to_owned(),
            count,
            account: None,
            skip: 0,
            region: None,
        }
    }

    /// Only requests of `account`.
    pub fn account(mut self, account: &str) -> FaultRule {
        self.account = Some(account.to_owned());
        self
    }

    /// Lets the first `skip` matching requests through first.
    pub fn skip(mut self, skip: u32) -> FaultRule {
        self.skip = skip;
        self
    }

    /// Only requests signed for `region` (their SigV4 credential scope's
    /// region: the region the client is configured for; `us-east-1` for
    /// Route 53 and the other global services).
    pub fn region(mut self, region: &str) -> FaultRule {
        self.region = Some(region.to_owned());
        self
    }
}

/// What Route 53 would answer for a name now ([`Emulator::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The values answered, sorted; empty when the name has no record set
    /// of that type.
    pub values: Vec<String>,
    /// The `SetIdentifier` of the record set answered (`None` for a simple
    /// set, or when nothing is answered).
    pub set_identifier: Option<String>,
    /// `"PRIMARY"` or `"SECONDARY"` when a failover record set is answered.
    pub failover: Option<String>,
    /// The health check of the record set answered, if it has one.
    pub health_check_id: Option<String>,
}

impl Emulator {
    /// Runs `python -m dm_emulator --host 127.0.0.1 --port 0` (the embedded
    /// package is written next to the venv of `python`, or to a temp dir) and
    /// waits up to 60 s for it to listen.  The child's stderr goes to
    /// `log_file` (appended) or nowhere.  The child also exits by itself when
    /// this process dies (it watches its stdin pipe).
    pub fn start(python: &Path, log_file: Option<&Path>) -> Result<Emulator> {
        let package_parent = package_dir_for(python);
        write_package(&package_parent)?;

        let stderr = match log_file {
            Some(path) => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                }
                let file = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening the emulator log {}", path.display()))?;
                Stdio::from(file)
            }
            None => Stdio::null(),
        };
        let mut child = Command::new(python)
            .args(["-m", "dm_emulator", "--host", "127.0.0.1", "--port", "0"])
            .env("PYTHONPATH", &package_parent)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            // Would pin every request to one account and defeat fresh_account().
            .env_remove("MOTO_ACCOUNT_ID")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("running {} -m dm_emulator", python.display()))?;

        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, rx) = mpsc::channel::<String>();
        thread::Builder::new()
            .name("dm-emulator-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let mut sent = false;
                for line in lines.by_ref() {
                    let Ok(line) = line else { break };
                    if !sent && line.starts_with(READY_PREFIX) {
                        sent = tx.send(line).is_ok();
                    }
                    // Keep draining so the child never blocks on a full pipe.
                }
            })
            .context("spawning the stdout reader")?;

        let hint = match log_file {
            Some(path) => format!("see {}", path.display()),
            None => "pass a log file to Emulator::start to see why".to_string(),
        };
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the AWS emulator did not get ready within {}s ({hint})",
                    READY_TIMEOUT.as_secs()
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                bail!("the AWS emulator exited before it was ready ({status:?}; {hint})");
            }
        };
        let endpoint = line[READY_PREFIX.len()..].trim().to_string();
        let addr = match parse_loopback_endpoint(&endpoint) {
            Ok(addr) => addr,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        tracing::info!(%endpoint, pid = child.id(), "AWS emulator started");
        Ok(Emulator {
            child,
            endpoint,
            addr,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Arms a fault (see [`FaultRule`]); it applies from the next request on.
    pub fn inject_fault(&self, rule: &FaultRule) -> Result<()> {
        let body = fault_rule_json(rule);
        let (status, response) = self.call("POST", "/_dm/faults", Some(&body))?;
        if status != 200 {
            bail!("the emulator rejected fault rule {rule:?}: HTTP {status}: {response}");
        }
        Ok(())
    }

    /// Requests seen for `service:action` (faulted ones included), by
    /// `account` or all accounts.  For S3 the action is the operation
    /// (`"UploadPart"`), or an HTTP method (`"PUT"`) for all requests of that
    /// method.
    pub fn request_count(&self, account: Option<&str>, service: &str, action: &str) -> Result<u64> {
        let mut path = format!(
            "/_dm/count?service={}&action={}",
            percent_encode(service),
            percent_encode(action)
        );
        if let Some(account) = account {
            path.push_str("&account=");
            path.push_str(&percent_encode(account));
        }
        let (status, body) = self.call("GET", &path, None)?;
        if status != 200 {
            bail!("{path}: HTTP {status}: {body}");
        }
        parse_count(&body).with_context(|| format!("{path}: unexpected answer {body:?}"))
    }

    /// Every request of `account` seen so far (faulted ones included), by
    /// `service:Action` (`"dynamodb:GetItem"`, `"s3:PutBucketLifecycleConfiguration"`).
    pub fn requests(&self, account: &str) -> Result<BTreeMap<String, u64>> {
        let path = format!("/_dm/requests?account={}", percent_encode(account));
        let (status, body) = self.call("GET", &path, None)?;
        if status != 200 {
            bail!("{path}: HTTP {status}: {body}");
        }
        parse_request_counts(&body).with_context(|| format!("{path}: unexpected answer {body:?}"))
    }

    /// Clears every pending fault, all request counts and all recorded Lambda
    /// invocations (of every account: prefer account-scoped rules with a
    /// `count` and [`fresh_account`]s in parallel tests).
    pub fn reset_faults(&self) -> Result<()> {
        let (status, body) = self.call("POST", "/_dm/reset", Some(""))?;
        if status != 200 {
            bail!("/_dm/reset: HTTP {status}: {body}");
        }
        Ok(())
    }

    /// Creates a stub Lambda function `name` in `account` (12 digits) and
    /// `region`, with the IAM role it needs, and returns its ARN
    /// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`).  A function of that
    /// name that exists already is kept and its ARN returned.  The stub never
    /// runs: an `Invoke` with `X-Amz-Invocation-Type: Event` answers 202 with
    /// an empty body and is recorded (see [`Emulator::invocations`]).
    pub fn create_function(&self, account: &str, region: &str, name: &str) -> Result<String> {
        let body = format!(
            "{{\"account\":{},\"region\":{},\"name\":{}}}",
            json_string(account),
            json_string(region),
            json_string(name)
        );
        let (status, response) = self.call("POST", "/_dm/lambda/functions", Some(&body))?;
        if status != 200 {
            bail!("creating the stub function {name} in {account}/{region}: HTTP {status}: {response}");
        }
        let answer = parse_json(&response).with_context(|| format!("unexpected answer {response:?}"))?;
        answer
            .get("arn")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no arn in {response:?}"))
    }

    /// Payloads (the request bodies, as text) of the `Event` invocations of
    /// `function` in `account`, oldest first, from every region.  `function`
    /// matches the name or ARN the caller invoked, the function's name and
    /// its unqualified ARN.  `POST /_dm/reset` clears them.
    pub fn invocations(&self, account: &str, function: &str) -> Result<Vec<String>> {
        let path = format!(
            "/_dm/lambda/invocations?account={}&function={}",
            percent_encode(account),
            percent_encode(function)
        );
        let (status, body) = self.call("GET", &path, None)?;
        if status != 200 {
            bail!("{path}: HTTP {status}: {body}");
        }
        parse_invocation_payloads(&body).with_context(|| format!("{path}: unexpected answer {body:?}"))
    }

    /// The Auto Scaling lifecycle action events (`EC2 Instance-launch
    /// Lifecycle Action` / `EC2 Instance-terminate Lifecycle Action`) the
    /// emulator recorded for `account` with a sequence number above `since`
    /// (0: all), oldest first, as `(seq, event JSON)`: the event exactly as
    /// EventBridge would deliver it to a target.  Sequence numbers count per
    /// account from 1; pass the last one seen to get only newer events.
    /// Expired lifecycle actions are settled first (see [`Emulator::advance_clock`]).
    pub fn lifecycle_events(&self, account: &str, since: u64) -> Result<Vec<(u64, String)>> {
        lifecycle_events_at(&self.endpoint, account, since)
    }

    /// Moves the emulator's clock forward by `seconds` for every account:
    /// lifecycle actions whose `HeartbeatTimeout` (or global timeout) has
    /// passed then get their hook's `DefaultResult`.  The clock never goes
    /// back.  In tests running in parallel prefer
    /// [`Emulator::advance_account_clock`].
    pub fn advance_clock(&self, seconds: u64) -> Result<()> {
        self.post_clock(&format!("{{\"advance_seconds\":{seconds}}}"))
    }

    /// [`Emulator::advance_clock`] for one account only.
    pub fn advance_account_clock(&self, account: &str, seconds: u64) -> Result<()> {
        self.post_clock(&format!(
            "{{\"advance_seconds\":{seconds},\"account\":{}}}",
            json_string(account)
        ))
    }

    fn post_clock(&self, body: &str) -> Result<()> {
        let (status, response) = self.call("POST", "/_dm/clock", Some(body))?;
        if status != 200 {
            bail!("advancing the emulator's clock ({body}): HTTP {status}: {response}");
        }
        Ok(())
    }

    /// The CloudWatch alarm state-change events (`CloudWatch Alarm State
    /// Change`, source `aws.cloudwatch`) the emulator recorded for `account`
    /// with a sequence number above `since` (0: all), oldest first, as
    /// `(seq, event JSON)`: the event as EventBridge would deliver it.
    /// Sequence numbers count per account from 1 and are never reused; pass
    /// the last one seen to get only newer events.  Alarms are evaluated
    /// first (as when they are described), so a state change due by now
    /// is included.
    pub fn alarm_events(&self, account: &str, since: u64) -> anyhow::Result<Vec<(u64, String)>> {
        alarm_events_at(&self.endpoint, account, since)
    }

    /// Records `lag_ms` milliseconds as the replication lag of the Aurora DB
    /// cluster `db_cluster` (identifier or ARN; it must exist in `account` and
    /// `region`), and puts it into the emulator's CloudWatch there as AWS
    /// does: `AuroraGlobalDBReplicationLag`, namespace `AWS/RDS`, dimension
    /// `DBClusterIdentifier`, unit `Milliseconds`.  `lag_ms` must be finite
    /// and not negative.  `POST /_dm/reset` forgets it (not the datapoint).
    pub fn set_replication_lag(
        &self,
        account: &str,
        region: &str,
        db_cluster: &str,
        lag_ms: f64,
    ) -> Result<()> {
        if !lag_ms.is_finite() || lag_ms < 0.0 {
            bail!("lag_ms must be a finite number >= 0, not {lag_ms}");
        }
        let body = format!(
            "{{\"account\":{},\"region\":{},\"db_cluster\":{},\"lag_ms\":{lag_ms}}}",
            json_string(account),
            json_string(region),
            json_string(db_cluster)
        );
        let (status, response) = self.call("POST", "/_dm/rds/replication-lag", Some(&body))?;
        if status != 200 {
            bail!("setting the replication lag of {db_cluster} in {account}/{region}: HTTP {status}: {response}");
        }
        Ok(())
    }

    /// The replication lag (milliseconds) last recorded with
    /// [`Emulator::set_replication_lag`] for `db_cluster` (identifier or ARN)
    /// in `account` and `region`, or `None`.
    pub fn replication_lag(&self, account: &str, region: &str, db_cluster: &str) -> Result<Option<f64>> {
        let path = format!(
            "/_dm/rds/replication-lag?account={}&region={}&db_cluster={}",
            percent_encode(account),
            percent_encode(region),
            percent_encode(db_cluster)
        );
        let (status, body) = self.call("GET", &path, None)?;
        if status != 200 {
            bail!("{path}: HTTP {status}: {body}");
        }
        let lags =
            parse_replication_lags(&body).with_context(|| format!("{path}: unexpected answer {body:?}"))?;
        Ok(lags.first().map(|(_, lag)| *lag))
    }

    /// Makes the `SwitchoverGlobalCluster` / `FailoverGlobalCluster` calls of
    /// `account` take `seconds` on the emulator's clock (default 0: done by
    /// the next RDS request).  Until then `DescribeGlobalClusters` shows the
    /// operation in progress (`FailoverState`) and the old roles; move the
    /// clock with [`Emulator::advance_account_clock`] to finish it.  After a
    /// failover with `AllowDataLoss`, the old primary is a secondary with
    /// `SynchronizationStatus` `pending-resync` for another `seconds`.
    pub fn set_global_failover_duration(&self, account: &str, seconds: u64) -> Result<()> {
        let body = format!("{{\"account\":{},\"seconds\":{seconds}}}", json_string(account));
        let (status, response) = self.call("POST", "/_dm/rds/failover-duration", Some(&body))?;
        if status != 200 {
            bail!("setting the global failover duration of {account}: HTTP {status}: {response}");
        }
        Ok(())
    }

    /// Sets when the S3 multipart upload `upload_id` of `bucket` in
    /// `account` began, as `ListMultipartUploads` reports it (`Initiated`,
    /// to the second), to test the aging of incomplete uploads without
    /// waiting.  Uploads otherwise begin at the emulator's clock when they
    /// are created.  Fails if the account has no such bucket or upload.
    pub fn set_upload_initiated(
        &self,
        account: &str,
        bucket: &str,
        upload_id: &str,
        initiated: SystemTime,
    ) -> Result<()> {
        let seconds = initiated
            .duration_since(UNIX_EPOCH)
            .context("an initiation time before 1970")?
            .as_secs_f64();
        let body = format!(
            "{{\"account\":{},\"bucket\":{},\"upload_id\":{},\"initiated\":{seconds}}}",
            json_string(account),
            json_string(bucket),
            json_string(upload_id)
        );
        let (status, response) = self.call("POST", "/_dm/s3/multipart-initiated", Some(&body))?;
        if status != 200 {
            bail!(
                "setting when upload {upload_id} of {bucket} in {account} began: HTTP {status}: {response}"
            );
        }
        Ok(())
    }

    /// What Route 53 would answer now for `name` (any case, final dot or
    /// not) of type `A` in hosted zone `zone_id` (with or without
    /// `/hostedzone/`) of `account`: the values of a simple record set; of
    /// failover record sets the `PRIMARY` if its health check is healthy (no
    /// health check: healthy), else the `SECONDARY` if healthy, else (all
    /// unhealthy) the `PRIMARY`.  A `CLOUDWATCH_METRIC` health check follows
    /// its alarm in the emulator's CloudWatch (evaluated now), honouring
    /// `InsufficientDataHealthStatus`, `Inverted` and `Disabled`.  An alias
    /// to a name of the same zone is followed.  A name with nothing: empty
    /// `values`, no set identifier.  Fails if the zone does not exist.
    pub fn resolve(&self, account: &str, zone_id: &str, name: &str) -> Result<Resolved> {
        let path = format!(
            "/_dm/route53/resolve?account={}&zone={}&name={}",
            percent_encode(account),
            percent_encode(zone_id),
            percent_encode(name)
        );
        let (status, body) = self.call("GET", &path, None)?;
        if status != 200 {
            bail!("{path}: HTTP {status}: {body}");
        }
        parse_resolved(&body).with_context(|| format!("{path}: unexpected answer {body:?}"))
    }

    /// Takes `region` down (`down` true) or brings it back: while it is down,
    /// every AWS request signed for that region (any service; only those of
    /// `account` if given) fails with HTTP 503 `ServiceUnavailable` in the
    /// service's error shape, and is still counted.  Route 53, IAM and the
    /// other global services are signed for `us-east-1`, so an outage of
    /// `us-east-1` takes them down too, as on AWS.  `POST /_dm/reset` ends
    /// outages (that account's, with an account).
    pub fn set_region_outage(&self, account: Option<&str>, region: &str, down: bool) -> Result<()> {
        let account = match account {
            Some(account) => format!(",\"account\":{}", json_string(account)),
            None => String::new(),
        };
        let body = format!("{{\"region\":{},\"down\":{down}{account}}}", json_string(region));
        let (status, response) = self.call("POST", "/_dm/region-outage", Some(&body))?;
        if status != 200 {
            bail!("setting the outage {body}: HTTP {status}: {response}");
        }
        Ok(())
    }

    /// Lets at most `available` instances of `instance_type` be pending or
    /// running in `account` and `region` (`None`: no limit, the default).
    /// Beyond it `RunInstances` fails with HTTP 500
    /// `InsufficientInstanceCapacity` and launches nothing, and an Auto
    /// Scaling group launches only what fits, stays below its desired
    /// capacity and records a `Failed` scaling activity; once the limit is
    /// raised or lifted, the group launches the rest at its next Auto
    /// Scaling request (through its lifecycle hooks, if any).  Instances
    /// already running stay.  `POST /_dm/reset` lifts the limits.
    pub fn set_capacity(
        &self,
        account: &str,
        region: &str,
        instance_type: &str,
        available: Option<u32>,
    ) -> Result<()> {
        let available = match available {
            Some(n) => n.to_string(),
            None => "null".to_string(),
        };
        let body = format!(
            "{{\"account\":{},\"region\":{},\"instance_type\":{},\"available\":{available}}}",
            json_string(account),
            json_string(region),
            json_string(instance_type)
        );
        let (status, response) = self.call("POST", "/_dm/ec2/capacity", Some(&body))?;
        if status != 200 {
            bail!("setting the capacity {body}: HTTP {status}: {response}");
        }
        Ok(())
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
        http_request(self.addr, method, path, body)
            .with_context(|| format!("{method} {}{path}", self.endpoint))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`Emulator::lifecycle_events`] of an emulator at `endpoint` that this
/// process did not start (`dm-local up --aws-endpoint`).
pub fn lifecycle_events_at(endpoint: &str, account: &str, since: u64) -> Result<Vec<(u64, String)>> {
    let addr = parse_loopback_endpoint(endpoint)?;
    let path = format!(
        "/_dm/lifecycle-events?account={}&since={since}",
        percent_encode(account)
    );
    let (status, body) =
        http_request(addr, "GET", &path, None).with_context(|| format!("GET {endpoint}{path}"))?;
    if status != 200 {
        bail!("{path}: HTTP {status}: {body}");
    }
    parse_lifecycle_events(&body).with_context(|| format!("{path}: unexpected answer {body:?}"))
}

/// [`Emulator::alarm_events`] of an emulator at `endpoint` that this process
/// did not start (`dm-local up`, which delivers them to its failover functions).
pub fn alarm_events_at(endpoint: &str, account: &str, since: u64) -> Result<Vec<(u64, String)>> {
    let addr = parse_loopback_endpoint(endpoint)?;
    let path = format!(
        "/_dm/alarm-events?account={}&since={since}",
        percent_encode(account)
    );
    let (status, body) =
        http_request(addr, "GET", &path, None).with_context(|| format!("GET {endpoint}{path}"))?;
    if status != 200 {
        bail!("{path}: HTTP {status}: {body}");
    }
    parse_alarm_events(&body).with_context(|| format!("{path}: unexpected answer {body:?}"))
}

/// The emulator shared by every test of this process, started on first use.
///
/// Python: env `DM_EMULATOR_PYTHON` if set, else [`ensure_venv`] at
/// `<workspace>/target/emulator-venv`.  Log: env `DM_EMULATOR_LOG` if set,
/// else `<workspace>/target/emulator-logs/emulator-<pid>.log`.
/// Panics (in every caller) if the emulator cannot start.
pub fn shared() -> &'static Emulator {
    static SHARED: OnceLock<std::result::Result<Emulator, String>> = OnceLock::new();
    let started = SHARED.get_or_init(|| start_shared().map_err(|err| format!("{err:#}")));
    match started {
        Ok(emulator) => emulator,
        Err(err) => panic!("cannot start the shared AWS emulator: {err}"),
    }
}

fn start_shared() -> Result<Emulator> {
    match std::env::var_os("DM_EMULATOR_LOG") {
        Some(log) if !log.is_empty() => Emulator::start(&python()?, Some(Path::new(&log))),
        _ => start_own("emulator"),
    }
}

/// Starts an emulator of the caller's own (a benchmark's), with the interpreter
/// `shared` uses: `DM_EMULATOR_PYTHON`, else the venv in the workspace's
/// `target/`. It logs to `target/emulator-logs/<name>-<pid>.log`.
pub fn start_own(name: &str) -> Result<Emulator> {
    let dir = workspace_root().join("target").join("emulator-logs");
    prune_old_logs(&dir, Duration::from_secs(24 * 3600));
    let log = dir.join(format!("{name}-{}.log", std::process::id()));
    let python = python()?;
    progress(&format!("starting the AWS emulator (log: {})", log.display()));
    Emulator::start(&python, Some(&log))
}

/// `DM_EMULATOR_PYTHON`, else the workspace's venv (made if missing).
fn python() -> Result<PathBuf> {
    match std::env::var_os("DM_EMULATOR_PYTHON") {
        Some(python) if !python.is_empty() => Ok(PathBuf::from(python)),
        _ => ensure_venv(&workspace_root().join("target").join("emulator-venv")),
    }
}

/// A fresh 12-digit account id to use as the AWS access key id: unique within
/// this process, unlikely to collide with other processes, never 123456789012
/// (moto's default account).
pub fn fresh_account() -> String {
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (prefix, offset) = *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let local = 0u8;
        let mut hash = Fnv::new();
        hash.write(&u64::from(std::process::id()).to_le_bytes());
        hash.write(&nanos.to_le_bytes());
        hash.write(&(std::ptr::addr_of!(local) as usize).to_le_bytes());
        let a = hash.finish();
        hash.write(b"offset");
        let b = hash.finish();
        (a % 100_000, b % 10_000_000)
    });
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{prefix:05}{:07}", (offset + n) % 10_000_000);
        if id != "123456789012" {
            return id;
        }
    }
}

// ---------------------------------------------------------------------------
// venv and package files

fn venv_python(dir: &Path) -> PathBuf {
    if cfg!(windows) {
        dir.join("Scripts").join("python.exe")
    } else {
        dir.join("bin").join("python")
    }
}

fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

/// Where `start` puts the package: a directory named after its content, so
/// binaries embedding different versions (several test binaries of a
/// workspace being rebuilt) never overwrite each other's files: inside the
/// venv of `python` if it is one (`<venv>/dm_emulator_src/<hash>`), else in
/// the temp dir.
fn package_dir_for(python: &Path) -> PathBuf {
    if let Some(venv) = python.parent().and_then(Path::parent) {
        if venv.join("pyvenv.cfg").is_file() {
            return venv.join(PACKAGE_DIR).join(package_hash());
        }
    }
    let user = std::env::var("USER").unwrap_or_default();
    std::env::temp_dir().join(format!("dm-emulator-src-{user}-{}", package_hash()))
}

/// 16 hex digits naming the embedded package's content.
fn package_hash() -> String {
    let mut hash = Fnv::new();
    for (path, content) in PACKAGE_FILES {
        hash.write(path.as_bytes());
        hash.write(content.as_bytes());
    }
    format!("{:016x}", hash.finish())
}

/// Removes package directories (`<16 hex digits>/`) of other versions not
/// used (see [`LAST_USED`]) for `max_age`; a running emulator has imported its
/// files long before.
fn prune_old_packages(dir: &Path, max_age: Duration) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let current = package_hash();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let versioned = name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit());
        let marker = entry.path().join(LAST_USED);
        let old = fs::metadata(&marker)
            .or_else(|_| entry.metadata())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if versioned && old && name != current {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes the embedded package under `parent` (`parent/dm_emulator/...`).
/// Files already identical are left alone; others are replaced atomically, so
/// a concurrently starting emulator never reads half a file.  Stale `.py`
/// files (e.g. a removed plugin) are deleted.  [`LAST_USED`] gets the time.
fn write_package(parent: &Path) -> Result<()> {
    for (relative, content) in PACKAGE_FILES {
        let path = parent.join(relative);
        if fs::read(&path).is_ok_and(|existing| existing == content.as_bytes()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_atomic(&path, content.as_bytes())?;
    }
    for dir in ["dm_emulator", "dm_emulator/plugins"] {
        let Ok(entries) = fs::read_dir(parent.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = format!("{dir}/{name}");
            if name.ends_with(".py") && !PACKAGE_FILES.iter().any(|(p, _)| *p == relative) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // Best effort: only pruning reads it.
    let _ = fs::write(parent.join(LAST_USED), format!("{now}\n"));
    Ok(())
}

fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// A progress line on the real stderr (not `eprintln!`, which the test
/// harness captures: a minute-long setup should not look like a hang).
fn progress(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

fn run_to_stderr(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// A lock file holding the owner's pid, created with `create_new`.  A lock
/// whose owner is gone (no `/proc/PID`) or that is older than the setup
/// timeout is taken over.
struct SetupLock {
    path: PathBuf,
}

impl SetupLock {
    fn acquire(path: &Path) -> Result<SetupLock> {
        let started = Instant::now();
        let mut told = false;
        loop {
            match fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    let _ = write!(file, "{}", std::process::id());
                    return Ok(SetupLock {
                        path: path.to_path_buf(),
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    if lock_is_stale(path) {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    if started.elapsed() > SETUP_LOCK_TIMEOUT {
                        bail!(
                            "timed out waiting for {} (remove it if no setup is running)",
                            path.display()
                        );
                    }
                    if !told {
                        progress(&format!(
                            "waiting for another process setting up the AWS emulator ({})",
                            path.display()
                        ));
                        told = true;
                    }
                    thread::sleep(Duration::from_millis(250));
                }
                Err(err) => return Err(err).with_context(|| format!("creating {}", path.display())),
            }
        }
    }
}

impl Drop for SetupLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn lock_is_stale(path: &Path) -> bool {
    let age = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .unwrap_or_default();
    if age > SETUP_LOCK_TIMEOUT {
        return true;
    }
    let pid = fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match pid {
        Some(pid) if Path::new("/proc/self").exists() => !Path::new(&format!("/proc/{pid}")).exists(),
        // Being written right now, or no /proc: wait for the age limit.
        _ => false,
    }
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

fn prune_old_logs(dir: &Path, max_age: Duration) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if old && entry.file_name().to_string_lossy().ends_with(".log") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

// ---------------------------------------------------------------------------
// The tiny HTTP/1.1 client for /_dm/ (loopback only, Connection: close)

fn parse_loopback_endpoint(endpoint: &str) -> Result<SocketAddr> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("unexpected emulator endpoint {endpoint:?}"))?
        .trim_end_matches('/');
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("unexpected emulator endpoint {endpoint:?}"))?;
    if !addr.ip().is_loopback() {
        bail!("the emulator endpoint {endpoint} is not on loopback");
    }
    Ok(addr)
}

fn http_request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    if !addr.ip().is_loopback() {
        bail!("refusing to talk to non-loopback {addr}");
    }
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str("Content-Type: application/json\r\n");
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    parse_http_response(&response)
}

fn parse_http_response(raw: &[u8]) -> Result<(u16, String)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("truncated HTTP response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("bad HTTP status line {status_line:?}"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body)?;
    } else if let Some(length) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        if body.len() < length {
            bail!("truncated HTTP body: {} of {length} bytes", body.len());
        }
        body.truncate(length);
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn fault_rule_json(rule: &FaultRule) -> String {
    let account = match &rule.account {
        Some(account) => json_string(account),
        None => "null".to_string(),
    };
    let skip = match rule.skip {
        0 => String::new(),
        skip => format!(",\"skip\":{skip}"),
    };
    let region = match &rule.region {
        Some(region) => format!(",\"region\":{}", json_string(region)),
        None => String::new(),
    };
    format!(
        "{{\"service\":{},\"action\":{},\"status\":{},\"code\":{},\"count\":{},\"account\":{}{skip}{region}}}",
        json_string(&rule.service),
        json_string(&rule.action),
        rule.status,
        json_string(&rule.code),
        rule.count,
        account
    )
}

/// The number in `{"count": N}`.
fn parse_count(body: &str) -> Result<u64> {
    let rest = body
        .split_once("\"count\"")
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("no count"))?;
    let rest = rest
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(|| anyhow!("no count"))?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().map_err(|_| anyhow!("no count"))
}

/// `{"service:Action": n, ...}`.
fn parse_request_counts(body: &str) -> Result<BTreeMap<String, u64>> {
    match parse_json(body)? {
        Json::Object(members) => members
            .into_iter()
            .map(|(key, value)| match value {
                Json::Number(n) if n >= 0.0 && n.fract() == 0.0 => Ok((key, n as u64)),
                other => bail!("{key}: {other:?} is not a count"),
            })
            .collect(),
        other => bail!("{other:?} is not an object of counts"),
    }
}

/// The `payload`s of `{"invocations": [{"payload": "...", ...}, ...]}`, in order.
fn parse_invocation_payloads(body: &str) -> Result<Vec<String>> {
    let answer = parse_json(body)?;
    let Some(Json::Array(items)) = answer.get("invocations") else {
        bail!("no invocations array");
    };
    items
        .iter()
        .map(|item| {
            item.get("payload")
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("an invocation without a payload string"))
        })
        .collect()
}

/// `(seq, json)` of `{"events": [{"seq": N, "json": "...", ...}, ...]}`, in order.
fn parse_lifecycle_events(body: &str) -> Result<Vec<(u64, String)>> {
    let answer = parse_json(body)?;
    let Some(Json::Array(items)) = answer.get("events") else {
        bail!("no events array");
    };
    items
        .iter()
        .map(|item| {
            let seq = match item.get("seq") {
                Some(Json::Number(n)) if *n >= 0.0 && n.fract() == 0.0 && *n < 9.0e15 => *n as u64,
                _ => bail!("an event without a sequence number"),
            };
            let json = item
                .get("json")
                .and_then(Json::as_str)
                .ok_or_else(|| anyhow!("an event without its json text"))?;
            Ok((seq, json.to_owned()))
        })
        .collect()
}

/// `(seq, json)` of the alarm events answer `{"events": [{"seq": N, "json": "...", ...}, ...]}`.
fn parse_alarm_events(body: &str) -> Result<Vec<(u64, String)>> {
    let answer = parse_json(body)?;
    let Some(Json::Array(items)) = answer.get("events") else {
        bail!("no events array");
    };
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        let seq = match item.get("seq") {
            Some(Json::Number(n)) if *n >= 1.0 && n.fract() == 0.0 && *n < 9.0e15 => *n as u64,
            _ => bail!("an alarm event without a sequence number"),
        };
        let json = item
            .get("json")
            .and_then(Json::as_str)
            .ok_or_else(|| anyhow!("alarm event {seq} without its json text"))?;
        events.push((seq, json.to_owned()));
    }
    Ok(events)
}

/// `(db_cluster, lag_ms)` of `{"lags": [{"db_cluster": "...", "lag_ms": N, ...}, ...]}`, in order.
fn parse_replication_lags(body: &str) -> Result<Vec<(String, f64)>> {
    let answer = parse_json(body)?;
    let Some(Json::Array(items)) = answer.get("lags") else {
        bail!("no lags array");
    };
    items
        .iter()
        .map(|item| {
            let cluster = item
                .get("db_cluster")
                .and_then(Json::as_str)
                .ok_or_else(|| anyhow!("a lag without its db_cluster"))?;
            let lag = match item.get("lag_ms") {
                Some(Json::Number(n)) if *n >= 0.0 => *n,
                _ => bail!("the lag of {cluster} is not a number >= 0"),
            };
            Ok((cluster.to_owned(), lag))
        })
        .collect()
}

/// The answer of `/_dm/route53/resolve`: `{"values": [...], "record": {...} | null, ...}`.
fn parse_resolved(body: &str) -> Result<Resolved> {
    let answer = parse_json(body)?;
    let Some(Json::Array(items)) = answer.get("values") else {
        bail!("no values array");
    };
    let values = items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("a value that is not a string"))
        })
        .collect::<Result<Vec<_>>>()?;
    let text = |record: &Json, key: &str| -> Result<Option<String>> {
        match record.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(text)) => Ok(Some(text.clone())),
            Some(_) => bail!("{key} is not a string"),
        }
    };
    match answer.get("record") {
        None | Some(Json::Null) => Ok(Resolved {
            values,
            ..Resolved::default()
        }),
        Some(record @ Json::Object(_)) => Ok(Resolved {
            values,
            set_identifier: text(record, "setIdentifier")?,
            failover: text(record, "failover")?,
            health_check_id: text(record, "healthCheckId")?,
        }),
        Some(_) => bail!("record is neither an object nor null"),
    }
}

/// Just enough JSON for the answers of the `/_dm/` routes.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }
}

fn parse_json(text: &str) -> Result<Json> {
    let mut parser = JsonParser {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        bail!("trailing characters at byte {}", parser.pos);
    }
    Ok(value)
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl JsonParser<'_> {
    const MAX_DEPTH: usize = 64;

    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek() != Some(byte) {
            bail!("expected {:?} at byte {}", byte as char, self.pos);
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json> {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            bail!("bad literal at byte {}", self.pos);
        }
        self.pos += word.len();
        Ok(value)
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > Self::MAX_DEPTH {
            bail!("JSON nested too deeply");
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    if self.peek() != Some(b'"') {
                        bail!("expected a key at byte {}", self.pos);
                    }
                    let key = self.string()?;
                    self.expect(b':')?;
                    members.push((key, self.value(depth + 1)?));
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => bail!("expected ',' or '}}' at byte {}", self.pos),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => bail!("expected ',' or ']' at byte {}", self.pos),
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while self
                    .bytes
                    .get(self.pos)
                    .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.bytes[start..self.pos])?;
                let number = text
                    .parse::<f64>()
                    .map_err(|_| anyhow!("bad number {text:?} at byte {start}"))?;
                Ok(Json::Number(number))
            }
            Some(_) => bail!("unexpected character at byte {}", self.pos),
            None => bail!("unexpected end of JSON"),
        }
    }

    /// A string; `self.pos` is at its opening quote.
    fn string(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else {
                bail!("unterminated string");
            };
            self.pos += 1;
            match byte {
                b'"' => return Ok(String::from_utf8(out)?),
                b'\\' => {
                    let Some(&escape) = self.bytes.get(self.pos) else {
                        bail!("unterminated string");
                    };
                    self.pos += 1;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => bail!("bad escape at byte {}", self.pos - 1),
                    };
                    let mut buffer = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
                byte if byte < 0x20 => bail!("control character in a string at byte {}", self.pos - 1),
                byte => out.push(byte),
            }
        }
    }

    /// After `\u`: four hex digits, and a low surrogate's escape after a high one.
    fn unicode_escape(&mut self) -> Result<char> {
        let first = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&first) {
            if !self.bytes[self.pos..].starts_with(b"\\u") {
                bail!("lone high surrogate at byte {}", self.pos);
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xdc00..0xe000).contains(&second) {
                bail!("bad low surrogate at byte {}", self.pos);
            }
            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| anyhow!("bad \\u escape before byte {}", self.pos))
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| anyhow!("truncated \\u escape"))?;
        let text = std::str::from_utf8(digits)?;
        let code = u32::from_str_radix(text, 16).map_err(|_| anyhow!("bad \\u escape {text:?}"))?;
        self.pos += 4;
        Ok(code)
    }
}

/// FNV-1a, 64 bit: stable across Rust versions (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_python_file_of_the_package_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
        let mut on_disk = BTreeSet::new();
        let mut stack = vec![root.join("dm_emulator")];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path.file_name().is_some_and(|n| n != "__pycache__") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "py") {
                    let relative = path.strip_prefix(&root).unwrap();
                    on_disk.insert(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let embedded: BTreeSet<String> = PACKAGE_FILES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(on_disk, embedded, "update PACKAGE_FILES in src/lib.rs");
    }

    #[test]
    fn requirements_are_fully_pinned() {
        let pins: Vec<&str> = REQUIREMENTS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(pins.len() > 20, "{pins:?}");
        for pin in &pins {
            assert!(pin.contains("=="), "not pinned: {pin}");
        }
        assert!(pins.contains(&"moto[server]==5.2.5"));
    }

    #[test]
    fn fresh_accounts_are_twelve_digits_and_unique() {
        let ids: Vec<String> = (0..10_000).map(|_| fresh_account()).collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 12, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
            assert_ne!(id, "123456789012");
        }
    }

    #[test]
    fn fault_rules_serialize_to_json() {
        let rule = FaultRule {
            service: "autoscaling".into(),
            action: "DescribeAutoScalingGroups".into(),
            status: 503,
            code: "Service\"Unavailable\n".into(),
            count: 2,
            account: Some("111122223333".into()),
            ..Default::default()
        };
        assert_eq!(
            fault_rule_json(&rule),
            r#"{"service":"autoscaling","action":"DescribeAutoScalingGroups","status":503,"code":"Service\"Unavailable\n","count":2,"account":"111122223333"}"#
        );
        let rule = FaultRule {
            account: None,
            ..rule
        };
        assert!(fault_rule_json(&rule).ends_with(r#""account":null}"#));
    }

    #[test]
    fn fault_rule_builder_and_skip() {
        let rule = FaultRule::new("s3", "UploadPart", 503, "SlowDown", 2)
            .account("111122223333")
            .skip(2);
        assert_eq!(
            rule,
            FaultRule {
                service: "s3".into(),
                action: "UploadPart".into(),
                status: 503,
                code: "SlowDown".into(),
                count: 2,
                account: Some("111122223333".into()),
                skip: 2,
                region: None,
            }
        );
        assert_eq!(
            fault_rule_json(&rule),
            r#"{"service":"s3","action":"UploadPart","status":503,"code":"SlowDown","count":2,"account":"111122223333","skip":2}"#
        );
        assert_eq!(
            fault_rule_json(&FaultRule::new("ec2", "*", 503, "Unavailable", 1).region("eu-west-1")),
            r#"{"service":"ec2","action":"*","status":503,"code":"Unavailable","count":1,"account":null,"region":"eu-west-1"}"#
        );
        assert_eq!(FaultRule::new("s3", "PUT", 500, "InternalError", 1).skip, 0);
        assert!(!fault_rule_json(&FaultRule::new("s3", "PUT", 500, "InternalError", 1)).contains("skip"));
    }

    #[test]
    fn http_responses_parse() {
        let raw =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"count\": 7}";
        let (status, body) = parse_http_response(raw).unwrap();
        assert_eq!(status, 200);
        assert_eq!(parse_count(&body).unwrap(), 7);
        let chunked = b"HTTP/1.1 404 NOT FOUND\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_http_response(chunked).unwrap(), (404, "abcde".to_string()));
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_count("{\"ok\": true}").is_err());
    }

    #[test]
    fn request_counts_parse() {
        let counts = parse_request_counts(r#"{"dynamodb:GetItem": 2, "s3:PutObject": 1}"#).unwrap();
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [
                ("dynamodb:GetItem".to_string(), 2),
                ("s3:PutObject".to_string(), 1)
            ]
        );
        assert!(parse_request_counts("{}").unwrap().is_empty());
        assert!(parse_request_counts(r#"{"s3:PutObject": "1"}"#).is_err());
        assert!(parse_request_counts("[1]").is_err());
    }

    #[test]
    fn invocation_answers_parse() {
        let body = r#"{"invocations": [{"account": "111122223333", "function": "fn", "payload": "{\"a\": \"\u00e9\\n\ud83d\ude00\"}", "qualifier": null, "time": 1.5e9, "ok": true}, {"payload": ""}]}"#;
        assert_eq!(
            parse_invocation_payloads(body).unwrap(),
            vec!["{\"a\": \"\u{e9}\\n\u{1f600}\"}".to_string(), String::new()]
        );
        assert_eq!(
            parse_invocation_payloads(r#"{"invocations": []}"#).unwrap(),
            Vec::<String>::new()
        );
        assert!(parse_invocation_payloads(r#"{"invocations": [{"payload": 1}]}"#).is_err());
        assert!(parse_invocation_payloads(r#"{"error": "x"}"#).is_err());
        let arn =
            parse_json(r#" {"arn":"arn:aws:lambda:us-west-2:111122223333:function:f","created":false} "#)
                .unwrap();
        assert_eq!(
            arn.get("arn").and_then(Json::as_str),
            Some("arn:aws:lambda:us-west-2:111122223333:function:f")
        );
        assert_eq!(arn.get("created"), Some(&Json::Bool(false)));
        assert_eq!(
            parse_json("[-1.25, null, {}]").unwrap(),
            Json::Array(vec![Json::Number(-1.25), Json::Null, Json::Object(vec![])])
        );
        for bad in [
            "",
            "{",
            "[1,]",
            r#"{"a" 1}"#,
            r#""\ud800""#,
            r#""\x""#,
            "nul",
            "[1] 2",
            "\"a\nb\"",
        ] {
            assert!(parse_json(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_json(&deep).is_err());
    }

    #[test]
    fn alarm_event_answers_parse() {
        let body = r#"{"events": [{"seq": 1, "account": "111122223333", "event": {"source": "aws.cloudwatch"}, "json": "{\"source\":\"aws.cloudwatch\"}"}, {"seq": 4, "json": "{}"}], "last_seq": 4}"#;
        assert_eq!(
            parse_alarm_events(body).unwrap(),
            vec![
                (1, r#"{"source":"aws.cloudwatch"}"#.to_string()),
                (4, "{}".to_string())
            ]
        );
        assert!(parse_alarm_events(r#"{"events": [], "last_seq": 0}"#)
            .unwrap()
            .is_empty());
        for bad in [
            r#"{"events": [{"seq": 0, "json": "{}"}]}"#,
            r#"{"events": [{"seq": 2.5, "json": "{}"}]}"#,
            r#"{"events": [{"json": "{}"}]}"#,
            r#"{"events": [{"seq": 1, "json": {}}]}"#,
            r#"{"error": "account is required"}"#,
        ] {
            assert!(parse_alarm_events(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replication_lag_answers_parse() {
        let body = r#"{"lags": [{"account": "111122223333", "region": "eu-west-1", "db_cluster": "secondary", "db_cluster_arn": "arn:aws:rds:eu-west-1:111122223333:cluster:secondary", "lag_ms": 1200.5, "time": 1.7e9}, {"db_cluster": "b", "lag_ms": 0}]}"#;
        assert_eq!(
            parse_replication_lags(body).unwrap(),
            vec![("secondary".to_string(), 1200.5), ("b".to_string(), 0.0)]
        );
        assert!(parse_replication_lags(r#"{"lags": []}"#).unwrap().is_empty());
        for bad in [
            r#"{"lags": [{"db_cluster": "a", "lag_ms": -1}]}"#,
            r#"{"lags": [{"db_cluster": "a", "lag_ms": "5"}]}"#,
            r#"{"lags": [{"lag_ms": 5}]}"#,
            r#"{"error": "account (12 digits) is required"}"#,
        ] {
            assert!(parse_replication_lags(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lifecycle_event_answers_parse() {
        let body =
            r#"{"events": [{"seq": 1, "event": {"a": 1}, "json": "{\"a\":1}"}, {"seq": 7, "json": ""}]}"#;
        assert_eq!(
            parse_lifecycle_events(body).unwrap(),
            vec![(1, "{\"a\":1}".to_string()), (7, String::new())]
        );
        assert!(parse_lifecycle_events(r#"{"events": []}"#).unwrap().is_empty());
        for bad in [
            r#"{"events": [{"seq": -1, "json": ""}]}"#,
            r#"{"events": [{"seq": 1.5, "json": ""}]}"#,
            r#"{"events": [{"json": ""}]}"#,
            r#"{"events": [{"seq": 1}]}"#,
            r#"{"error": "account is required"}"#,
        ] {
            assert!(parse_lifecycle_events(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_answers_parse() {
        let body = r#"{"name": "api.example.", "type": "A", "values": ["10.0.0.1", "10.0.0.2"], "record": {"setIdentifier": "us-east-1", "failover": "PRIMARY", "healthCheckId": "hc-1"}}"#;
        assert_eq!(
            parse_resolved(body).unwrap(),
            Resolved {
                values: vec!["10.0.0.1".into(), "10.0.0.2".into()],
                set_identifier: Some("us-east-1".into()),
                failover: Some("PRIMARY".into()),
                health_check_id: Some("hc-1".into()),
            }
        );
        let simple = r#"{"values": ["a"], "record": {"setIdentifier": null, "failover": null, "healthCheckId": null}}"#;
        assert_eq!(
            parse_resolved(simple).unwrap(),
            Resolved {
                values: vec!["a".into()],
                ..Resolved::default()
            }
        );
        assert_eq!(
            parse_resolved(r#"{"values": [], "record": null}"#).unwrap(),
            Resolved::default()
        );
        for bad in [
            r#"{"record": null}"#,
            r#"{"values": [1], "record": null}"#,
            r#"{"values": [], "record": {"failover": 1}}"#,
            r#"{"values": [], "record": []}"#,
            r#"{"error": "no hosted zone"}"#,
        ] {
            assert!(parse_resolved(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_loopback_endpoints_are_accepted() {
        assert_eq!(
            parse_loopback_endpoint("http://127.0.0.1:4566").unwrap(),
            "127.0.0.1:4566".parse().unwrap()
        );
        assert!(parse_loopback_endpoint("http://[::1]:4566").is_ok());
        assert!(parse_loopback_endpoint("http://10.0.0.1:4566").is_err());
        assert!(parse_loopback_endpoint("https://127.0.0.1:4566").is_err());
        assert!(http_request("192.0.2.1:80".parse().unwrap(), "GET", "/", None).is_err());
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("s3"), "s3");
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn package_is_written_and_stale_files_removed() {
        let dir = std::env::temp_dir().join(format!("dm-emulator-pkg-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("dm_emulator/plugins")).unwrap();
        fs::write(dir.join("dm_emulator/plugins/removed_plugin.py"), "x").unwrap();
        fs::write(dir.join("dm_emulator/faults.py"), "old").unwrap();
        write_package(&dir).unwrap();
        for (relative, content) in PACKAGE_FILES {
            assert_eq!(fs::read_to_string(dir.join(relative)).unwrap(), *content);
        }
        assert!(!dir.join("dm_emulator/plugins/removed_plugin.py").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn package_directories_are_per_version_and_old_ones_pruned() {
        let hash = package_hash();
        assert_eq!(hash.len(), 16);
        let root = std::env::temp_dir().join(format!("dm-emulator-prune-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let venv = root.join("venv");
        fs::create_dir_all(venv.join("bin")).unwrap();
        fs::write(venv.join("pyvenv.cfg"), "").unwrap();
        let current = package_dir_for(&venv.join("bin/python"));
        assert_eq!(current, venv.join(PACKAGE_DIR).join(&hash));
        write_package(&current).unwrap();
        assert!(current.join(LAST_USED).is_file());
        let other = venv.join(PACKAGE_DIR).join("0123456789abcdef");
        let unrelated = venv.join(PACKAGE_DIR).join("dm_emulator");
        fs::create_dir_all(&other).unwrap();
        fs::create_dir_all(&unrelated).unwrap();
        prune_old_packages(&venv.join(PACKAGE_DIR), Duration::from_secs(3600));
        assert!(other.exists(), "recently used");
        prune_old_packages(&venv.join(PACKAGE_DIR), Duration::ZERO);
        assert!(!other.exists());
        assert!(current.exists(), "the current version stays");
        assert!(unrelated.exists(), "not a version directory");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn lock_path_is_next_to_the_venv() {
        assert_eq!(
            lock_path(Path::new("/w/target/emulator-venv")),
            PathBuf::from("/w/target/emulator-venv.lock")
        );
    }
}
