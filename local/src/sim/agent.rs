//! One simulated node agent: the contract of `docs/agent.md` served on
//! 127.0.0.1, with knobs to fail a service, make the node unreachable or slow,
//! and restore it.
//!
//! A new agent reports its services coming up one by one, in dependency order,
//! until all run after the startup time. A service that is not running makes
//! every service after it `UNKNOWN`, as a real agent does.
//!
//! `POST /v1/services/restart` restarts one service and every service after it
//! (they depend on it), or all of them: they come back one by one at the pace of
//! startup, so restarting service `k` of `n` takes `(n - k) / n` of the startup
//! time. A failed service stays failed through a restart.
//!
//! Its services write log lines, which it uploads to the staging bucket
//! periodically and on `POST /v1/logs/flush` (see [`super::logs`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::cloud::ObjectStore;
use shared::config::S3Location;
use shared::domain::health::{ServiceHealth, ServiceState, SERVICES};
use shared::domain::logs::LogClock;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::logs::{log_now, LogBook, LogSettings, Staged};

/// How long a `slow` agent takes to answer: longer than any probe waits.
pub const SLOW_ANSWER: Duration = Duration::from_secs(30);

/// How the node as a whole behaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeMode {
    #[default]
    Normal,
    /// Connections are closed as soon as they are accepted.
    Unreachable,
    /// Answers only after [`SLOW_ANSWER`].
    Slow,
}

impl NodeMode {
    /// `unreachable` or `slow`; `normal` is what `restore` is for.
    pub fn parse_failure(raw: &str) -> Option<NodeMode> {
        match raw {
            "unreachable" => Some(NodeMode::Unreachable),
            "slow" => Some(NodeMode::Slow),
            _ => None,
        }
    }
}

/// A service made to fail: its index in [`SERVICES`] and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedService {
    pub index: usize,
    pub message: String,
}

impl FailedService {
    /// The service at `index`, failed the way the OOM killer would end it.
    pub fn killed(index: usize) -> FailedService {
        FailedService {
            index,
            message: format!("{} exited with status 137", SERVICES[index]),
        }
    }
}

/// What the control API set on an agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    pub failed: Option<FailedService>,
    pub mode: NodeMode,
}

/// A restart under way: from the service at index `from` on, since `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Restart {
    at: Instant,
    from: usize,
}

/// An agent's clock and knobs, shared by its server and the control API.
#[derive(Debug)]
pub struct AgentState {
    started: Instant,
    startup: Duration,
    restart: Option<Restart>,
    pub knobs: Knobs,
    /// The failure of the version the node runs (`dm-local sim fail-version`).
    /// The fleet sets and clears it; `restore` of the node leaves it.
    pub version_failure: Option<FailedService>,
}

impl AgentState {
    pub fn new(startup: Duration) -> AgentState {
        AgentState::started_at(Instant::now(), startup)
    }

    fn started_at(started: Instant, startup: Duration) -> AgentState {
        AgentState {
            started,
            startup,
            restart: None,
            knobs: Knobs::default(),
            version_failure: None,
        }
    }

    /// The services as the agent reports them now.
    pub fn services(&self) -> Vec<ServiceHealth> {
        self.services_at(Instant::now())
    }

    fn services_at(&self, now: Instant) -> Vec<ServiceHealth> {
        services(self.up_at(now), self.failure())
    }

    /// How many services (in dependency order) have started by `now`: those
    /// the boot brought up, less those a restart has not brought back yet.
    fn up_at(&self, now: Instant) -> usize {
        let booted = services_up(now.saturating_duration_since(self.started), self.startup);
        match self.restart {
            Some(r) => booted.min(restarted_up(r, now, self.startup)),
            None => booted,
        }
    }

    /// The failure the agent reports: the lower in dependency order of the
    /// node's own and its version's (the node's own when they are the same service).
    fn failure(&self) -> Option<&FailedService> {
        match (&self.knobs.failed, &self.version_failure) {
            (Some(own), Some(version)) if version.index < own.index => Some(version),
            (Some(own), _) => Some(own),
            (None, version) => version.as_ref(),
        }
    }

    /// Restarts the service at `from` and every service after it (they depend
    /// on it); `from` 0 restarts them all. Returns the services restarted.
    pub fn restart(&mut self, from: usize) -> &'static [&'static str] {
        self.restart_at(Instant::now(), from)
    }

    fn restart_at(&mut self, now: Instant, from: usize) -> &'static [&'static str] {
        let from = from.min(SERVICES.len());
        // A restart under way that has not brought `from` back yet already
        // restarts it, and finishes no later than a new one would.
        let pending = self
            .restart
            .is_some_and(|r| restarted_up(r, now, self.startup) < from);
        if !pending {
            self.restart = Some(Restart { at: now, from });
        }
        &SERVICES[from..]
    }

    /// True while a restart has not brought every service back.
    fn restarting_at(&self, now: Instant) -> bool {
        self.restart
            .is_some_and(|r| restarted_up(r, now, self.startup) < SERVICES.len())
    }

    /// One word or two for listings: `RUNNING`, `STARTING 3/7`, `RESTARTING 5/7`,
    /// `planner FAILED`, `UNREACHABLE`, `SLOW`.
    pub fn summary(&self) -> String {
        let now = Instant::now();
        match self.knobs.mode {
            NodeMode::Unreachable => "UNREACHABLE".to_owned(),
            NodeMode::Slow => "SLOW".to_owned(),
            NodeMode::Normal => {
                let summary = summarize(&self.services_at(now));
                match summary.strip_prefix("STARTING ") {
                    Some(count) if self.restarting_at(now) => format!("RESTARTING {count}"),
                    _ => summary,
                }
            }
        }
    }
}

/// How many services are up `now` as far as restart `r` goes: those before
/// it, and those it has brought back one by one at the pace of startup.
fn restarted_up(r: Restart, now: Instant, startup: Duration) -> usize {
    let back = services_up(now.saturating_duration_since(r.at), startup);
    (r.from + back).min(SERVICES.len())
}

/// Why a restart request is refused: the field at fault and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRestart {
    pub field: String,
    pub message: String,
}

/// The index of the first service a `POST /v1/services/restart` body restarts:
/// `{"service": "<name>"}` for one service (and those after it), `{}` (or a
/// `null` service) for all.
pub fn parse_restart(body: &[u8]) -> Result<usize, BadRestart> {
    let shape = r#"{"service": "<name>"} for one service or {} for all"#;
    let bad = |field: &str, message: String| BadRestart {
        field: field.to_owned(),
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| bad("body", format!("the body must be a JSON object, {shape}: {e}")))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(bad("body", format!("the body must be a JSON object, {shape}")));
    };
    if let Some(other) = fields.keys().find(|k| *k != "service") {
        return Err(bad(
            other,
            format!("unknown field {other:?}: the body is {shape}"),
        ));
    }
    match fields.get("service") {
        None | Some(serde_json::Value::Null) => Ok(0),
        Some(serde_json::Value::String(name)) => {
            super::service_index(name).map_err(|e| bad("service", e.to_string()))
        }
        Some(other) => Err(bad(
            "service",
            format!(
                "service must be a string, one of: {}; got {other}",
                SERVICES.join(", ")
            ),
        )),
    }
}

pub type SharedState = Arc<Mutex<AgentState>>;

/// Locks an agent's state; a panic elsewhere does not make it unusable.
pub fn lock(state: &SharedState) -> std::sync::MutexGuard<'_, AgentState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many services have come up `elapsed` into a `startup` that brings them
/// up one by one, at even intervals, the last one at `startup`.
pub fn services_up(elapsed: Duration, startup: Duration) -> usize {
    if startup.is_zero() || elapsed >= startup {
        return SERVICES.len();
    }
    let up = elapsed.as_nanos() * SERVICES.len() as u128 / startup.as_nanos();
    usize::try_from(up).map_or(SERVICES.len(), |u| u.min(SERVICES.len()))
}

/// The report of a node whose first `up` services have started and whose
/// `failed` service, if any, is down. The first service that is not running is
/// reported as it is; those after it are `UNKNOWN`.
pub fn services(up: usize, failed: Option<&FailedService>) -> Vec<ServiceHealth> {
    let mut blocked: Option<&str> = None;
    SERVICES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (state, message) = match (blocked, failed) {
                (Some(below), _) => (
                    ServiceState::Unknown,
                    format!("Not checked: {below} is not running."),
                ),
                (None, Some(f)) if f.index == i => (ServiceState::Failed, f.message.clone()),
                (None, _) if i < up => (ServiceState::Running, String::new()),
                (None, _) => (ServiceState::Starting, "Starting.".to_owned()),
            };
            if state != ServiceState::Running && blocked.is_none() {
                blocked = Some(name);
            }
            ServiceHealth {
                name: (*name).to_owned(),
                state,
                message,
            }
        })
        .collect()
}

fn summarize(services: &[ServiceHealth]) -> String {
    let running = services
        .iter()
        .filter(|s| s.state == ServiceState::Running)
        .count();
    match services.iter().find(|s| s.state != ServiceState::Running) {
        None => "RUNNING".to_owned(),
        Some(s) if s.state == ServiceState::Failed => format!("{} FAILED", s.name),
        Some(_) => format!("STARTING {running}/{}", services.len()),
    }
}

/// Who an agent is and where it uploads logs.
pub struct Identity {
    pub instance_id: String,
    pub cluster_id: i64,
    pub version: String,
    pub staging: S3Location,
}

struct Ctx<O> {
    identity: Identity,
    state: SharedState,
    clock: LogClock,
    logs: Arc<LogBook>,
    sink: Staged<O>,
}

/// A running agent's server and log uploader. Dropping it stops both and frees
/// its port; lines not uploaded yet are lost, as on a node that is gone.
pub struct AgentServer {
    pub addr: SocketAddr,
    pub state: SharedState,
    /// The node's log lines not uploaded yet.
    #[cfg(test)]
    pub logs: Arc<LogBook>,
    task: JoinHandle<()>,
    uploader: JoinHandle<()>,
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        self.task.abort();
        self.uploader.abort();
    }
}

impl AgentServer {
    /// Starts an agent on a free port of 127.0.0.1, and its periodic log uploads.
    pub async fn start<O: ObjectStore + 'static>(
        identity: Identity,
        startup: Duration,
        objects: Arc<O>,
        log_settings: LogSettings,
    ) -> Result<AgentServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding a simulated agent to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let state: SharedState = Arc::new(Mutex::new(AgentState::new(startup)));
        let instance = identity.instance_id.clone();
        let clock = log_settings.clock;
        let logs = Arc::new(LogBook::new(
            identity.cluster_id,
            &identity.instance_id,
            &log_settings,
            log_now(&clock),
        ));
        let sink = Staged {
            objects,
            staging: identity.staging.clone(),
        };
        let ctx = Arc::new(Ctx {
            identity,
            state: state.clone(),
            clock,
            logs: logs.clone(),
            sink,
        });
        let router = Router::new()
            .route("/v1/health", get(health::<O>))
            .route("/v1/logs/flush", post(flush::<O>))
            .route("/v1/services/restart", post(restart::<O>))
            .with_state(ctx.clone());
        let gated = GatedListener {
            inner: listener,
            state: state.clone(),
        };
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(gated, router).await {
                tracing::warn!(instance = %instance, error = %e, "simulated agent stopped");
            }
        });
        let uploader = tokio::spawn(upload_loop(ctx, log_settings.upload_every));
        Ok(AgentServer {
            addr,
            state,
            #[cfg(test)]
            logs,
            task,
            uploader,
        })
    }
}

/// Uploads the node's new log lines every `every`, as a real agent does. A dead
/// (unreachable) node writes and uploads nothing; failed parts are tried again
/// at the next tick.
async fn upload_loop<O: ObjectStore + 'static>(ctx: Arc<Ctx<O>>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (dead, health) = {
            let state = lock(&ctx.state);
            (state.knobs.mode == NodeMode::Unreachable, state.services())
        };
        let now = log_now(&ctx.clock);
        if dead {
            ctx.logs.skip_until(now).await;
            continue;
        }
        let report = ctx.logs.upload(&ctx.sink, now, &health).await;
        if let Some(first) = report.errors.first() {
            tracing::warn!(
                instance = %ctx.identity.instance_id,
                failed = report.errors.len(),
                uploaded = report.uploaded,
                error = %first,
                "simulated agent could not upload some log parts; their lines stay pending for the next upload"
            );
        } else {
            tracing::debug!(instance = %ctx.identity.instance_id, parts = report.uploaded, lines = report.lines, "simulated agent uploaded its logs");
        }
    }
}

/// Accepts connections, but closes them at once while the node is unreachable.
struct GatedListener {
    inner: TcpListener,
    state: SharedState,
}

impl axum::serve::Listener for GatedListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let (stream, peer) = axum::serve::Listener::accept(&mut self.inner).await;
            if lock(&self.state).knobs.mode != NodeMode::Unreachable {
                return (stream, peer);
            }
            drop(stream);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Waits out a slow node's delay.
async fn delay_if_slow(state: &SharedState) {
    let slow = lock(state).knobs.mode == NodeMode::Slow;
    if slow {
        tokio::time::sleep(SLOW_ANSWER).await;
    }
}

async fn health<O: ObjectStore + 'static>(State(ctx): State<Arc<Ctx<O>>>) -> Json<serde_json::Value> {
    delay_if_slow(&ctx.state).await;
    let services = lock(&ctx.state).services();
    Json(json!({
        "instanceId": ctx.identity.instance_id,
        "clusterId": ctx.identity.cluster_id.to_string(),
        "version": ctx.identity.version,
        "timestamp": shared::time::format_ms(shared::time::now_ms()),
        "services": services,
    }))
}

/// Uploads every line not uploaded yet (waiting for a periodic upload under way
/// to finish first), and answers once they are in the bucket.
async fn flush<O: ObjectStore + 'static>(State(ctx): State<Arc<Ctx<O>>>) -> Response {
    delay_if_slow(&ctx.state).await;
    let health = lock(&ctx.state).services();
    let report = ctx.logs.upload(&ctx.sink, log_now(&ctx.clock), &health).await;
    if let Some(first) = report.errors.first() {
        tracing::warn!(instance = %ctx.identity.instance_id, error = %first, "simulated agent: log flush failed");
        let message = format!(
            "{} of the node's log parts could not be uploaded (they stay pending): {first}",
            report.errors.len()
        );
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": message, "uploaded": report.uploaded })),
        )
            .into_response();
    }
    Json(json!({ "uploaded": report.uploaded, "lines": report.lines })).into_response()
}

/// Begins a restart and answers `202 {"restarting": [...]}`, or `400
/// {"error", "field"}` naming what is wrong with the body.
async fn restart<O: ObjectStore + 'static>(State(ctx): State<Arc<Ctx<O>>>, body: Bytes) -> Response {
    delay_if_slow(&ctx.state).await;
    let from = match parse_restart(&body) {
        Ok(from) => from,
        Err(bad) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": bad.message, "field": bad.field })),
            )
                .into_response()
        }
    };
    let restarting = lock(&ctx.state).restart(from);
    tracing::info!(instance = %ctx.identity.instance_id, services = %restarting.join(", "), "simulated agent restarting services");
    (StatusCode::ACCEPTED, Json(json!({ "restarting": restarting }))).into_response()
}

/// What tests give agents that must not upload: a bucket nothing serves, and
/// uploads an hour apart.
#[cfg(test)]
pub(crate) mod quiet {
    use shared::cloud::aws::{AwsSettings, S3Adapter};

    use super::*;

    /// AWS settings that reach nothing (the discard port of 127.0.0.1).
    pub fn settings() -> AwsSettings {
        AwsSettings {
            endpoint: Some("http://127.0.0.1:9".into()),
            credentials: Some(("test".into(), "test".into())),
            max_attempts: Some(1),
        }
    }

    pub fn objects() -> S3Adapter {
        S3Adapter::new(settings(), "us-west-2")
    }

    pub fn logs() -> LogSettings {
        LogSettings {
            upload_every: Duration::from_secs(3600),
            ..LogSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServiceState::*;

    fn states(services: &[ServiceHealth]) -> Vec<ServiceState> {
        services.iter().map(|s| s.state).collect()
    }

    #[test]
    fn services_come_up_one_by_one_over_the_startup_time() {
        let startup = Duration::from_millis(700);
        assert_eq!(services_up(Duration::ZERO, startup), 0);
        assert_eq!(services_up(Duration::from_millis(99), startup), 0);
        assert_eq!(services_up(Duration::from_millis(100), startup), 1);
        assert_eq!(services_up(Duration::from_millis(650), startup), 6);
        assert_eq!(services_up(Duration::from_millis(700), startup), 7);
        assert_eq!(services_up(Duration::from_secs(60), startup), 7);
        assert_eq!(
            services_up(Duration::ZERO, Duration::ZERO),
            7,
            "no startup time: all up"
        );
    }

    #[test]
    fn a_starting_node_reports_the_first_service_not_up_as_starting() {
        assert_eq!(
            states(&services(0, None)),
            [Starting, Unknown, Unknown, Unknown, Unknown, Unknown, Unknown]
        );
        let s = services(3, None);
        assert_eq!(
            states(&s),
            [Running, Running, Running, Starting, Unknown, Unknown, Unknown]
        );
        assert_eq!(s[4].message, "Not checked: planner is not running.");
        assert_eq!(states(&services(7, None)), [Running; 7]);
    }

    #[test]
    fn a_failed_service_makes_the_ones_after_it_unknown() {
        let planner = SERVICES.iter().position(|s| *s == "planner").unwrap();
        let s = services(7, Some(&FailedService::killed(planner)));
        assert_eq!(
            states(&s),
            [Running, Running, Running, Failed, Unknown, Unknown, Unknown]
        );
        assert_eq!(s[3].message, "planner exited with status 137");
        assert_eq!(s[6].message, "Not checked: planner is not running.");
        // A failure below what is still starting shows; one above it does not.
        let early = services(2, Some(&FailedService::killed(1)));
        assert_eq!(states(&early)[..3], [Running, Failed, Unknown]);
        let late = services(2, Some(&FailedService::killed(5)));
        assert_eq!(states(&late)[..3], [Running, Running, Starting]);
        assert_eq!(late[5].state, Unknown);
    }

    #[test]
    fn the_report_is_what_the_dm_normalizes_it_to() {
        for (up, failed) in [(0, None), (4, None), (7, Some(FailedService::killed(2)))] {
            let s = services(up, failed.as_ref());
            let report = shared::domain::health::AgentReport {
                instance_id: "i-1".into(),
                version: "2.0.0".into(),
                services: s.clone(),
            };
            assert_eq!(report.normalized(), s);
        }
    }

    #[test]
    fn summaries_name_the_first_problem() {
        let mut state = AgentState::new(Duration::ZERO);
        assert_eq!(state.summary(), "RUNNING");
        state.knobs.failed = Some(FailedService::killed(4));
        assert_eq!(state.summary(), "worker FAILED");
        state.knobs.mode = NodeMode::Slow;
        assert_eq!(state.summary(), "SLOW");
        assert_eq!(summarize(&services(3, None)), "STARTING 3/7");
    }

    const PLANNER: usize = 3;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// An agent booted with a startup of 700 ms (a service every 100 ms), and a
    /// moment after its boot.
    fn booted() -> (AgentState, Instant) {
        let t0 = Instant::now();
        let state = AgentState::started_at(t0, ms(700));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(state.up_at(later), 7);
        (state, later)
    }

    #[test]
    fn a_restart_brings_the_service_and_those_after_it_back_one_by_one() {
        let (mut s, t) = booted();
        assert_eq!(
            s.restart_at(t, PLANNER),
            ["planner", "worker", "rest-server", "webui"]
        );
        assert_eq!(
            states(&s.services_at(t)),
            [Running, Running, Running, Starting, Unknown, Unknown, Unknown]
        );
        assert_eq!(s.up_at(t + ms(99)), 3);
        assert_eq!(
            s.up_at(t + ms(100)),
            4,
            "planner is back after a seventh of startup"
        );
        assert_eq!(s.up_at(t + ms(399)), 6);
        assert_eq!(
            s.up_at(t + ms(400)),
            7,
            "4 of 7 services: 4/7 of the startup time"
        );
        assert_eq!(states(&s.services_at(t + ms(400))), [Running; 7]);
        // The last service alone takes one step; all of them, the whole startup.
        s.restart_at(t + ms(1000), 6);
        assert_eq!(s.up_at(t + ms(1000)), 6);
        assert_eq!(s.up_at(t + ms(1100)), 7);
        s.restart_at(t + ms(2000), 0);
        assert_eq!(states(&s.services_at(t + ms(2000)))[..2], [Starting, Unknown]);
        assert_eq!(s.up_at(t + ms(2699)), 6);
        assert_eq!(s.up_at(t + ms(2700)), 7);
    }

    #[test]
    fn overlapping_restarts_end_when_the_lowest_one_does() {
        let (mut s, t) = booted();
        s.restart_at(t, PLANNER);
        // worker is still waiting for planner: asking again changes nothing.
        s.restart_at(t + ms(50), 4);
        assert_eq!(s.up_at(t + ms(400)), 7);
        // worker is back: restarting it starts over from it.
        s.restart_at(t + ms(1000), PLANNER);
        s.restart_at(t + ms(1150), 4);
        assert_eq!(s.up_at(t + ms(1150)), 4);
        assert_eq!(s.up_at(t + ms(1449)), 6);
        assert_eq!(s.up_at(t + ms(1450)), 7);
        // A lower service restarted meanwhile takes everything down again.
        s.restart_at(t + ms(2000), PLANNER);
        s.restart_at(t + ms(2050), 1);
        assert_eq!(s.up_at(t + ms(2050)), 1);
        assert_eq!(s.up_at(t + ms(2649)), 6);
        assert_eq!(s.up_at(t + ms(2650)), 7);
    }

    #[test]
    fn a_restart_during_boot_ends_no_earlier_than_the_boot() {
        let t0 = Instant::now();
        let mut s = AgentState::started_at(t0, ms(700));
        s.restart_at(t0 + ms(100), PLANNER);
        assert_eq!(s.up_at(t0 + ms(300)), 3, "the boot has brought up 3");
        assert_eq!(s.up_at(t0 + ms(500)), 5);
        assert_eq!(s.up_at(t0 + ms(700)), 7);
    }

    #[test]
    fn a_failed_service_stays_failed_through_a_restart() {
        let (mut s, t) = booted();
        s.knobs.failed = Some(FailedService::killed(4));
        s.restart_at(t, 0);
        assert_eq!(s.up_at(t + ms(700)), 7);
        let after = s.services_at(t + ms(700));
        assert_eq!(after[4].state, Failed);
        assert_eq!(after[4].message, "worker exited with status 137");
        // The version's failure too, and the lower of the two shows.
        s.version_failure = Some(FailedService {
            index: PLANNER,
            message: "broken".into(),
        });
        s.restart_at(t + ms(1000), PLANNER);
        let after = s.services_at(t + ms(2000));
        assert_eq!(after[PLANNER].state, Failed);
        assert_eq!(after[PLANNER].message, "broken");
        assert_eq!(after[4].state, Unknown);
        s.knobs.failed = Some(FailedService::killed(1));
        assert_eq!(s.failure(), Some(&FailedService::killed(1)));
    }

    #[test]
    fn a_restart_shows_in_the_summary() {
        let mut s = AgentState::new(Duration::from_secs(7));
        s.started = Instant::now() - Duration::from_secs(10);
        assert_eq!(s.summary(), "RUNNING");
        s.restart(PLANNER);
        assert_eq!(s.summary(), "RESTARTING 3/7");
        s.knobs.failed = Some(FailedService::killed(1));
        assert_eq!(s.summary(), "zookeeper FAILED");
    }

    #[test]
    fn restart_bodies_name_one_service_or_none() {
        assert_eq!(parse_restart(br#"{"service": "planner"}"#), Ok(PLANNER));
        assert_eq!(parse_restart(br#"{"service": "webui"}"#), Ok(6));
        assert_eq!(parse_restart(b"{}"), Ok(0));
        assert_eq!(parse_restart(br#"{"service": null}"#), Ok(0));
        let bad = |body: &[u8]| parse_restart(body).unwrap_err();
        let e = bad(br#"{"service": "hms"}"#);
        assert_eq!(e.field, "service");
        assert!(
            e.message
                .starts_with("there is no service \"hms\"; services: canary"),
            "{e:?}"
        );
        assert_eq!(bad(br#"{"service": 3}"#).field, "service");
        let e = bad(br#"{"servce": "planner"}"#);
        assert_eq!(e.field, "servce");
        assert!(e.message.contains("unknown field \"servce\""), "{e:?}");
        for body in [&b""[..], b"[]", b"\"planner\"", b"{"] {
            let e = bad(body);
            assert_eq!(e.field, "body", "{body:?}");
            assert!(e.message.starts_with("the body must be a JSON object"), "{e:?}");
        }
    }

    /// A simulated agent whose log uploads never run.
    async fn quiet_agent(instance_id: &str, startup: Duration) -> AgentServer {
        let identity = Identity {
            instance_id: instance_id.into(),
            cluster_id: 1,
            version: "2.0.0".into(),
            staging: S3Location::parse("s3://nowhere/staging").unwrap(),
        };
        AgentServer::start(identity, startup, Arc::new(quiet::objects()), quiet::logs())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_prober_restarts_a_simulated_agent() {
        use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
        use shared::cloud::{AgentTarget, Agents, ProbeError};
        let agent = quiet_agent("i-1", Duration::from_secs(7)).await;
        lock(&agent.state).started = Instant::now() - Duration::from_secs(10);
        let directory = AgentDirectory::new();
        directory.insert("i-1", agent.addr);
        let prober = HttpAgents::new(Resolver::Directory(directory)).allow_remote(false);
        let node = AgentTarget {
            instance_id: "i-1".into(),
            private_ip: None,
        };
        assert!(prober.health(&node).await.unwrap().ready());
        prober.restart(&node, Some("worker")).await.unwrap();
        let report = prober.health(&node).await.unwrap();
        assert_eq!(
            states(&report.services),
            [Running, Running, Running, Running, Starting, Unknown, Unknown]
        );
        assert_eq!(lock(&agent.state).summary(), "RESTARTING 4/7");
        match prober.restart(&node, Some("hms")).await {
            Err(ProbeError::BadAnswer(why)) => assert!(
                why.starts_with("HTTP 400 Bad Request, expected 2xx: there is no service \"hms\""),
                "{why}"
            ),
            other => panic!("expected a bad answer, got {other:?}"),
        }
        prober.restart(&node, None).await.unwrap();
        assert_eq!(
            states(&prober.health(&node).await.unwrap().services)[..2],
            [Starting, Unknown]
        );
        // An unreachable node cannot be asked.
        lock(&agent.state).knobs.mode = NodeMode::Unreachable;
        assert!(matches!(
            prober.restart(&node, None).await,
            Err(ProbeError::Unreachable(_))
        ));
    }
}
