//! The simulator's control API, served on 127.0.0.1 by `dm-local up` and used by
//! `dm-local sim`. Every request carries `Authorization: Bearer <token>`; the URL
//! and the token are in `<data-dir>/sim.json`, readable only by its owner.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /sim/agents` | | `{"agents": [agent, ...], "brokenVersions": [{"version", "service"}, ...]}` |
//! | `POST /sim/fail-service` | `{"cluster", "node", "service", "message"?}` | `agent` |
//! | `POST /sim/fail-node` | `{"cluster", "node", "mode"?}` (`unreachable`, the default, or `slow`) | `agent` |
//! | `POST /sim/restore` | `{"cluster", "node"}` | `agent` |
//! | `POST /sim/fail-version` | `{"version", "service"?}` (default `planner`) | `change` |
//! | `POST /sim/restore-version` | `{"version"}` | `change` |
//!
//! `node` is an instance id or a 0-based index (a number or a string of digits).
//! An agent is `{"cluster", "index", "instanceId", "address", "version",
//! "state"}`. A change is `{"version", "service"?, "wasBroken", "agents"}`: the
//! agents that run the version now. `restore` of a node leaves its version's
//! failure; `restore-version` of a version that is not broken changes nothing.
//! Errors are `{"error": {"code", "field"?, "message"}}` with a 4xx status.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::domain::health::SERVICES;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::agent::{FailedService, NodeMode};
use super::{service_index, Action, AgentView, Fleet, SimError, VersionChange};

/// The file, under the data directory, that tells `dm-local sim` where the
/// control API is.
pub const SIM_FILE: &str = "sim.json";

/// The contents of [`SIM_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimFile {
    pub url: String,
    pub token: String,
}

/// A node as a request names it: an index or an instance id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeRef {
    Index(u64),
    Id(String),
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeRef::Index(i) => write!(f, "{i}"),
            NodeRef::Id(id) => f.write_str(id),
        }
    }
}

/// The body of the `POST` routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    pub cluster: i64,
    pub node: NodeRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The failed service's message (default: `<service> exited with status 137`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The body of `POST /sim/fail-version` and `POST /sim/restore-version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The service the version's agents report failed (default: `planner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// The service a broken version fails unless told otherwise.
pub const DEFAULT_VERSION_SERVICE: &str = "planner";

/// An error answer.
#[derive(Debug)]
pub struct ControlError {
    status: StatusCode,
    code: &'static str,
    field: Option<&'static str>,
    message: String,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<SimError> for ControlError {
    fn from(e: SimError) -> Self {
        let (status, code) = match e {
            SimError::Cluster { .. } | SimError::Node { .. } => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            SimError::Service { .. } | SimError::Mode { .. } | SimError::Version { .. } => {
                (StatusCode::BAD_REQUEST, "INVALID_FIELD")
            }
        };
        ControlError {
            status,
            code,
            field: Some(e.field()),
            message: e.to_string(),
        }
    }
}

impl From<JsonRejection> for ControlError {
    fn from(e: JsonRejection) -> Self {
        ControlError {
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED_JSON",
            field: None,
            message: e.body_text(),
        }
    }
}

struct Ctx {
    fleet: Fleet,
    token: String,
}

/// A request that carries the control token.
struct Authorized;

impl FromRequestParts<Arc<Ctx>> for Authorized {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<Ctx>) -> Result<Self, ControlError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(token) if same(token.as_bytes(), ctx.token.as_bytes()) => Ok(Authorized),
            _ => Err(ControlError {
                status: StatusCode::UNAUTHORIZED,
                code: "UNAUTHENTICATED",
                field: None,
                message: format!("the control API needs the token in the runner's {SIM_FILE}"),
            }),
        }
    }
}

/// Compares in time that depends on the length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn router(fleet: Fleet, token: String) -> Router {
    Router::new()
        .route("/sim/agents", get(list))
        .route("/sim/fail-service", post(fail_service))
        .route("/sim/fail-node", post(fail_node))
        .route("/sim/restore", post(restore))
        .route("/sim/fail-version", post(fail_version))
        .route("/sim/restore-version", post(restore_version))
        .with_state(Arc::new(Ctx { fleet, token }))
}

async fn list(_: Authorized, State(ctx): State<Arc<Ctx>>) -> Json<serde_json::Value> {
    Json(json!({ "agents": ctx.fleet.list(), "brokenVersions": ctx.fleet.broken_versions() }))
}

type Answer = Result<Json<AgentView>, ControlError>;

fn act(ctx: &Ctx, req: &ControlRequest, action: Action) -> Answer {
    Ok(Json(ctx.fleet.act(req.cluster, &req.node.to_string(), action)?))
}

async fn fail_service(
    _: Authorized,
    State(ctx): State<Arc<Ctx>>,
    body: Result<Json<ControlRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body?;
    let service = req.service.as_deref().ok_or_else(|| ControlError {
        status: StatusCode::BAD_REQUEST,
        code: "MISSING_FIELD",
        field: Some("service"),
        message: format!("fail-service needs a service; services: {}", SERVICES.join(", ")),
    })?;
    let index = service_index(service)?;
    let failed = match &req.message {
        Some(message) => FailedService {
            index,
            message: message.clone(),
        },
        None => FailedService::killed(index),
    };
    act(&ctx, &req, Action::FailService(failed))
}

async fn fail_node(
    _: Authorized,
    State(ctx): State<Arc<Ctx>>,
    body: Result<Json<ControlRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body?;
    let raw = req.mode.as_deref().unwrap_or("unreachable");
    let mode = NodeMode::parse_failure(raw).ok_or_else(|| SimError::Mode { mode: raw.to_owned() })?;
    act(&ctx, &req, Action::FailNode(mode))
}

async fn restore(
    _: Authorized,
    State(ctx): State<Arc<Ctx>>,
    body: Result<Json<ControlRequest>, JsonRejection>,
) -> Answer {
    let Json(req) = body?;
    act(&ctx, &req, Action::Restore)
}

/// The request's version, which both version routes need.
fn version_of<'a>(req: &'a VersionRequest, route: &str) -> Result<&'a str, ControlError> {
    req.version.as_deref().ok_or_else(|| ControlError {
        status: StatusCode::BAD_REQUEST,
        code: "MISSING_FIELD",
        field: Some("version"),
        message: format!("{route} needs a version, such as 2.1.0"),
    })
}

async fn fail_version(
    _: Authorized,
    State(ctx): State<Arc<Ctx>>,
    body: Result<Json<VersionRequest>, JsonRejection>,
) -> Result<Json<VersionChange>, ControlError> {
    let Json(req) = body?;
    let version = version_of(&req, "fail-version")?;
    let service = service_index(req.service.as_deref().unwrap_or(DEFAULT_VERSION_SERVICE))?;
    Ok(Json(ctx.fleet.fail_version(version, service)?))
}

async fn restore_version(
    _: Authorized,
    State(ctx): State<Arc<Ctx>>,
    body: Result<Json<VersionRequest>, JsonRejection>,
) -> Result<Json<VersionChange>, ControlError> {
    let Json(req) = body?;
    if req.service.is_some() {
        return Err(ControlError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_FIELD",
            field: Some("service"),
            message: "restore-version takes only a version: it restores every service of it".to_owned(),
        });
    }
    let version = version_of(&req, "restore-version")?;
    Ok(Json(ctx.fleet.restore_version(version)?))
}

/// The control API, running. Dropping it stops the server.
pub struct ControlServer {
    pub url: String,
    pub token: String,
    task: JoinHandle<()>,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ControlServer {
    /// Serves the control API of `fleet` on a free port of 127.0.0.1, with a
    /// fresh random token.
    pub async fn start(fleet: Fleet) -> Result<ControlServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the simulator's control API to 127.0.0.1")?;
        let url = format!("http://{}", listener.local_addr()?);
        let token = new_token();
        let app = router(fleet, token.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the simulator's control API stopped");
            }
        });
        Ok(ControlServer { url, token, task })
    }

    /// Writes [`SIM_FILE`] (mode 0600) under `data_dir`; the guard removes it.
    pub fn publish(&self, data_dir: &Path) -> Result<PublishedFile> {
        let path = data_dir.join(SIM_FILE);
        // A file left by a runner that was killed may have other permissions.
        let _ = std::fs::remove_file(&path);
        let file = SimFile {
            url: self.url.clone(),
            token: self.token.clone(),
        };
        crate::tokens::write_private(&path, &serde_json::to_string(&file)?)?;
        Ok(PublishedFile(path))
    }
}

/// [`SIM_FILE`], removed when dropped (when `dm-local up` exits cleanly).
pub struct PublishedFile(PathBuf);

impl Drop for PublishedFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "could not remove the simulator's control file");
        }
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("sim-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    const TOKEN: &str = "sim-test";

    async fn call(
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        call_fleet(&Fleet::default(), method, path, token, body).await
    }

    async fn call_fleet(
        fleet: &Fleet,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = router(fleet.clone(), TOKEN.to_owned())
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn requests_without_the_token_are_refused() {
        for token in [None, Some("sim-wrong")] {
            let (status, body) = call("GET", "/sim/agents", token, "").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
        }
        let (status, body) = call("GET", "/sim/agents", Some(TOKEN), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"agents": [], "brokenVersions": []}));
    }

    #[tokio::test]
    async fn unknown_clusters_services_and_modes_are_named() {
        let (status, body) = call(
            "POST",
            "/sim/restore",
            Some(TOKEN),
            r#"{"cluster": 7, "node": 0}"#,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["field"], "cluster");
        assert_eq!(
            body["error"]["message"],
            "cluster 7 has no simulated agents; clusters with agents: none"
        );
        let req = r#"{"cluster": 7, "node": "0", "service": "hms"}"#;
        let (status, body) = call("POST", "/sim/fail-service", Some(TOKEN), req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "service");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("rest-server"),
            "{body}"
        );
        let req = r#"{"cluster": 7, "node": "0", "mode": "asleep"}"#;
        let (status, body) = call("POST", "/sim/fail-node", Some(TOKEN), req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "mode");
    }

    #[tokio::test]
    async fn malformed_and_incomplete_requests_are_400() {
        let (status, body) = call("POST", "/sim/restore", Some(TOKEN), r#"{"cluster": 1}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "MALFORMED_JSON");
        let (status, body) = call(
            "POST",
            "/sim/fail-service",
            Some(TOKEN),
            r#"{"cluster": 1, "node": 0}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "service");
    }

    #[tokio::test]
    async fn versions_are_broken_and_restored() {
        let fleet = Fleet::default();
        let post = |path: &'static str, body: &'static str| {
            let fleet = fleet.clone();
            async move { call_fleet(&fleet, "POST", path, Some(TOKEN), body).await }
        };
        let (status, body) = post("/sim/fail-version", r#"{"version": "2.1.0"}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"version": "2.1.0", "service": "planner", "wasBroken": false, "agents": []})
        );
        let (_, body) = post(
            "/sim/fail-version",
            r#"{"version": "2.2.0", "service": "worker"}"#,
        )
        .await;
        assert_eq!(body["service"], "worker");
        let (_, listed) = call_fleet(&fleet, "GET", "/sim/agents", Some(TOKEN), "").await;
        assert_eq!(
            listed["brokenVersions"],
            json!([{"version": "2.1.0", "service": "planner"}, {"version": "2.2.0", "service": "worker"}])
        );
        let (status, body) = post("/sim/restore-version", r#"{"version": "2.1.0"}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"version": "2.1.0", "wasBroken": true, "agents": []}));
        let (_, body) = post("/sim/restore-version", r#"{"version": "2.1.0"}"#).await;
        assert_eq!(body["wasBroken"], false);
        let (_, listed) = call_fleet(&fleet, "GET", "/sim/agents", Some(TOKEN), "").await;
        assert_eq!(
            listed["brokenVersions"],
            json!([{"version": "2.2.0", "service": "worker"}])
        );
    }

    #[tokio::test]
    async fn a_broken_version_shows_on_its_agents_until_restored() {
        use std::time::Duration;

        use super::super::agent::{quiet, AgentServer, Identity};
        use super::super::NodeInfo;

        let fleet = Fleet::default();
        fleet.fail_version("2.1.0", 4).unwrap();
        for (id, version) in [("i-a", "2.1.0"), ("i-b", "2.0.0")] {
            let identity = Identity {
                instance_id: id.into(),
                cluster_id: 5,
                version: version.into(),
                staging: shared::config::S3Location::parse("s3://nowhere/staging").unwrap(),
            };
            let server = AgentServer::start(
                identity,
                Duration::ZERO,
                Arc::new(quiet::objects()),
                quiet::logs(),
            )
            .await
            .unwrap();
            let node = NodeInfo {
                instance_id: id.into(),
                cluster_id: 5,
                launched_at: 1,
            };
            fleet.insert(node, version.into(), server);
        }
        let fleet = &fleet;
        let get = || async move { call_fleet(fleet, "GET", "/sim/agents", Some(TOKEN), "").await.1 };
        let post = |path: &'static str, body: &'static str| async move {
            call_fleet(fleet, "POST", path, Some(TOKEN), body).await
        };
        let listed = get().await;
        assert_eq!(listed["agents"][0]["instanceId"], "i-a");
        assert_eq!(listed["agents"][0]["version"], "2.1.0");
        assert_eq!(
            listed["agents"][0]["state"], "worker FAILED",
            "a later agent is broken too"
        );
        assert_eq!(listed["agents"][1]["state"], "RUNNING");

        let (status, body) = post("/sim/fail-version", r#"{"version": "2.1.0"}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["wasBroken"], true);
        assert_eq!(body["agents"].as_array().unwrap().len(), 1);
        assert_eq!(body["agents"][0]["state"], "planner FAILED");
        let (_, body) = post("/sim/restore", r#"{"cluster": 5, "node": "i-a"}"#).await;
        assert_eq!(
            body["state"], "planner FAILED",
            "restoring a node leaves its version broken"
        );
        let (_, body) = post("/sim/restore-version", r#"{"version": "2.1.0"}"#).await;
        assert_eq!(body["agents"][0]["state"], "RUNNING");
        assert_eq!(get().await["agents"][0]["state"], "RUNNING");
    }

    #[tokio::test]
    async fn bad_version_requests_name_the_field() {
        let cases = [
            (
                "/sim/fail-version",
                r#"{"version": ""}"#,
                "INVALID_FIELD",
                "version",
            ),
            (
                "/sim/fail-version",
                r#"{"version": "2.1.0 beta"}"#,
                "INVALID_FIELD",
                "version",
            ),
            ("/sim/fail-version", r#"{}"#, "MISSING_FIELD", "version"),
            (
                "/sim/fail-version",
                r#"{"version": "2.1.0", "service": "hms"}"#,
                "INVALID_FIELD",
                "service",
            ),
            (
                "/sim/restore-version",
                r#"{"version": "  "}"#,
                "INVALID_FIELD",
                "version",
            ),
            (
                "/sim/restore-version",
                r#"{"service": "planner"}"#,
                "INVALID_FIELD",
                "service",
            ),
            ("/sim/restore-version", r#"{}"#, "MISSING_FIELD", "version"),
        ];
        for (path, req, code, field) in cases {
            let (status, body) = call("POST", path, Some(TOKEN), req).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {req}: {body}");
            assert_eq!(body["error"]["code"], code, "{path} {req}: {body}");
            assert_eq!(body["error"]["field"], field, "{path} {req}: {body}");
        }
        let (_, body) = call("POST", "/sim/fail-version", Some(TOKEN), r#"{"version": ""}"#).await;
        assert_eq!(
            body["error"]["message"],
            "version must be 1 to 32 characters of letters, digits, '.' and '-', got \"\""
        );
        let (status, body) = call(
            "POST",
            "/sim/fail-version",
            Some(TOKEN),
            r#"{"version": "2.1.0", "cluster": 1}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "MALFORMED_JSON");
        let (status, _) = call("POST", "/sim/fail-version", None, r#"{"version": "2.1.0"}"#).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn nodes_are_named_by_index_or_id() {
        let index: ControlRequest = serde_json::from_str(r#"{"cluster": 1, "node": 2}"#).unwrap();
        assert_eq!(index.node.to_string(), "2");
        let id: ControlRequest = serde_json::from_str(r#"{"cluster": 1, "node": "i-0abc"}"#).unwrap();
        assert_eq!(id.node, NodeRef::Id("i-0abc".into()));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
