//! One simulated node agent: the contract of `docs/agent.md` served on
//! 127.0.0.1, with knobs to fail a service, make the node unreachable or slow,
//! and restore it.
//!
//! A new agent reports its services coming up one by one, in dependency order,
//! until all run after the startup time. A service that is not running makes
//! every service after it `UNKNOWN`, as a real agent does.
//!
//! Its services write log lines, which it uploads to the staging bucket
//! periodically and on `POST /v1/logs/flush` (see [`super::logs`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
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

/// An agent's clock and knobs, shared by its server and the control API.
#[derive(Debug)]
pub struct AgentState {
    started: Instant,
    startup: Duration,
    pub knobs: Knobs,
}

impl AgentState {
    pub fn new(startup: Duration) -> AgentState {
        AgentState {
            started: Instant::now(),
            startup,
            knobs: Knobs::default(),
        }
    }

    /// The services as the agent reports them now.
    pub fn services(&self) -> Vec<ServiceHealth> {
        let up = services_up(self.started.elapsed(), self.startup);
        services(up, self.knobs.failed.as_ref())
    }

    /// One word or two for listings: `RUNNING`, `STARTING 3/7`, `planner FAILED`,
    /// `UNREACHABLE`, `SLOW`.
    pub fn summary(&self) -> String {
        match self.knobs.mode {
            NodeMode::Unreachable => "UNREACHABLE".to_owned(),
            NodeMode::Slow => "SLOW".to_owned(),
            NodeMode::Normal => summarize(&self.services()),
        }
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
}
