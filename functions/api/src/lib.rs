//! The DM's REST API as one axum [`Router`], built by [`router`]. The same router
//! runs in Lambda (hosted by `lambda_http`, see `main.rs`) and locally (hosted by a
//! TCP listener in `dm-local`). Handlers only parse, call one workflow in `shared`,
//! and map the result; no SQL and no AWS calls here.

mod auth;
mod error;
mod extract;
mod regions;
mod views;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use shared::cloud::Functions;
use shared::config::S3Location;
use shared::domain::upgrade::{ProposedDefaultVersion, ProposedRestart, ProposedUpgrade};
use shared::domain::{ClusterUpdate, ProposedCluster, ProposedEnvironment};
use shared::store::{RunbookKind, Store, Submitted};
use shared::workflows::commands::{self, Limits};
use shared::workflows::diagnostics::{self, ProposedDiagnostics};
use shared::workflows::failover::Desk;
use shared::workflows::reconcile::Target;
pub use shared::workflows::wake::{wake_by_invoke, BoxFuture, Kick};

pub use auth::{required_role, Auth, AuthConfigError, EntryProblem, IamRoles, Unmapped};
pub use error::ApiError;
use extract::{Caller, Id, JsonBody, OptionalJsonBody};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub limits: Limits,
    pub kick: Kick,
    pub diagnostics: Diagnostics,
    /// Wakes the runbook runner for one runbook (its operation id) after a
    /// runbook write, so that it need not wait for its schedule.
    pub run_runbook: RunbookWake,
    /// This region's failovers: who is active, dry runs, requests.
    pub failover: std::sync::Arc<dyn Desk>,
    /// Wakes this region's failover function for a drill's runbook.
    pub run_region_runbook: RunbookWake,
    /// How callers are known: bearer tokens, or IAM callers (`OKERA_AUTH`).
    pub auth: Auth,
}

/// Wakes the runbook runner for a runbook. Like a [`Kick`], it never fails the
/// request: a lost wake-up only waits for the runner's schedule.
pub type RunbookWake = std::sync::Arc<dyn Fn(i64) -> BoxFuture + Send + Sync>;

/// The runbook wake-up of the Lambda deployment: an asynchronous invoke of the
/// runbooks function with `{"runbookId": N}`.
pub fn runbook_wake_by_invoke<F: Functions + 'static>(
    functions: std::sync::Arc<F>,
    function: String,
) -> RunbookWake {
    std::sync::Arc::new(move |runbook_id: i64| {
        let (functions, function) = (functions.clone(), function.clone());
        Box::pin(async move {
            let payload = shared::workflows::runbook::event(runbook_id)
                .to_string()
                .into_bytes();
            if let Err(e) = functions.invoke_async(&function, payload).await {
                tracing::warn!(error = %e, runbook_id, "could not wake the runbook runner; its schedule will");
            }
        })
    })
}

/// What diagnostics requests need: the staging location (bundles go under it
/// unless the request names another) and the wake-up of the worker that builds
/// them (the log-rotation function in Lambda, a task in dm-local).
#[derive(Clone)]
pub struct Diagnostics {
    pub staging: S3Location,
    pub wake: diagnostics::Wake,
}

/// The API, with every route under `/v1`.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/status", get(status))
        .route("/environments", get(list_environments).post(create_environment))
        .route(
            "/environments/{id}",
            get(get_environment).delete(delete_environment),
        )
        .route("/clusters", get(list_clusters).post(create_cluster))
        .route(
            "/clusters/{id}",
            get(get_cluster).patch(update_cluster).delete(delete_cluster),
        )
        .route("/clusters/{id}/status", get(cluster_status))
        .route("/clusters/{id}/diagnostics", post(request_diagnostics))
        .route("/clusters/{id}/upgrade", post(upgrade_cluster))
        .route("/clusters/{id}/rollback", post(rollback_cluster))
        .route("/clusters/{id}/restart", post(restart_cluster))
        .route("/operations", get(list_operations))
        .route("/operations/{id}", get(get_operation))
        .route("/operations/{id}/cancel", post(cancel_operation))
        .route(
            "/settings/default-version",
            get(get_default_version).put(set_default_version),
        )
        .route("/regions", get(regions::regions))
        .route("/failover", post(regions::request_failover))
        .route("/failovers", get(regions::list_failovers))
        .route("/failovers/{id}", get(regions::get_failover))
        .route("/drills", get(regions::list_drills).post(regions::start_drill))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/v1", v1)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Every request needs a caller (a bearer token, or an IAM caller in IAM mode)
/// whose role may do what the request asks (`auth::required_role`).
async fn authenticate(
    State(state): State<AppState>,
    mut req: axum::extract::Request,
    next: Next,
) -> Response {
    let caller = match state
        .auth
        .identify(&state.store, req.headers(), req.extensions())
        .await
    {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.auth.authorize(&caller, req.method(), req.uri().path()) {
        return e.into_response();
    }
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    // Only the active region takes writes; a failover is asked of the region
    // that takes over, which stands by until then.
    if write && req.uri().path() != "/v1/failover" {
        let role = state.failover.role().await;
        if !role.is_active() {
            let region = state.failover.region().to_owned();
            let err = match &role {
                shared::domain::failover::Role::Unknown(_) => {
                    ApiError::fence_unavailable(role.describe(&region))
                }
                _ => ApiError::standby(format!(
                    "{}; send writes to {}",
                    role.describe(&region),
                    role.leader()
                        .map_or("the active region's API".to_owned(), |l| format!(
                            "{}'s API",
                            l.region
                        ))
                )),
            };
            return err.into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}; see docs/api.md", uri.path()))
}

/// The fallback of the `/v1` router, which sees paths without their `/v1`.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!(
        "/v1{} does not take {method}; see docs/api.md",
        uri.path()
    ))
}

async fn status(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.ping().await.map_err(ApiError::internal)?;
    let region = state.failover.region().to_owned();
    let role = state.failover.role().await;
    Ok(Json(json!({
        "status": "Running",
        "message": "Service available",
        "version": env!("CARGO_PKG_VERSION"),
        "region": region,
        "role": role.as_str(),
        "activeRegion": role.leader().map(|l| l.region.clone()),
        "epoch": role.leader().map(|l| l.epoch),
        "roleMessage": role.describe(&region),
    })))
}

/// The `202 Accepted` answer of a write, with the target as it is now. A fresh
/// write wakes the reconciler for its target first.
async fn accepted(state: &AppState, submitted: Submitted, key: &str, target: serde_json::Value) -> Response {
    if !submitted.replayed {
        let wake = if key == "cluster" {
            Target::Cluster(submitted.target_id)
        } else {
            Target::Environment(submitted.target_id)
        };
        (state.kick)(wake).await;
    }
    let mut headers = HeaderMap::new();
    if submitted.replayed {
        headers.insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    }
    let body = json!({ "operationId": submitted.operation_id, key: target });
    (StatusCode::ACCEPTED, headers, Json(body)).into_response()
}

async fn create_environment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<ProposedEnvironment>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let submitted = commands::create_environment(&state.store, &ctx, body.value).await?;
    let env = state.store.get_environment(submitted.target_id).await?;
    Ok(accepted(&state, submitted, "environment", views::environment(&env)).await)
}

async fn list_environments(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let envs = state.store.list_environments().await?;
    Ok(Json(
        json!({ "environments": envs.iter().map(views::environment).collect::<Vec<_>>() }),
    ))
}

async fn get_environment(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<serde_json::Value>, ApiError> {
    let env = state.store.get_environment(id).await?;
    Ok(Json(views::environment(&env)))
}

async fn delete_environment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ctx = extract::write_ctx_without_body(&caller, &method, &uri, &headers)?;
    let submitted = commands::delete_environment(&state.store, &ctx, id).await?;
    let env = state.store.get_environment(submitted.target_id).await?;
    Ok(accepted(&state, submitted, "environment", views::environment(&env)).await)
}

async fn create_cluster(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<ProposedCluster>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let submitted = commands::create_cluster(&state.store, &state.limits, &ctx, body.value).await?;
    let cluster = state.store.get_cluster(submitted.target_id).await?;
    Ok(accepted(&state, submitted, "cluster", views::cluster(&cluster, None)).await)
}

async fn list_clusters(
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "environmentId") {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "UNKNOWN_FIELD",
            unknown.clone(),
            format!("{unknown} is not a query parameter of this route; use environmentId"),
        ));
    }
    let env = query
        .get("environmentId")
        .map(|raw| extract::parse_id_field("environmentId", raw))
        .transpose()?;
    let clusters = state.store.list_clusters(env).await?;
    Ok(Json(
        json!({ "clusters": clusters.iter().map(|c| views::cluster(c, None)).collect::<Vec<_>>() }),
    ))
}

async fn get_cluster(State(state): State<AppState>, Id(id): Id) -> Result<Json<serde_json::Value>, ApiError> {
    let cluster = state.store.get_cluster(id).await?;
    let nodes = state.store.nodes_of(id).await?;
    Ok(Json(views::cluster(&cluster, Some(&nodes))))
}

/// The cluster's health as the original DM reported it, with its nodes' last
/// probes and its latest status changes.
async fn cluster_status(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<views::ClusterStatus>, ApiError> {
    let cluster = state.store.get_cluster(id).await?;
    let nodes = state.store.nodes_of(id).await?;
    let history = state.store.status_history(id, views::HISTORY_LENGTH).await?;
    Ok(Json(views::cluster_status(
        &cluster,
        &nodes,
        &history,
        shared::time::now_ms(),
    )))
}

async fn update_cluster(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    body: JsonBody<ClusterUpdate>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let submitted = commands::update_cluster(&state.store, &state.limits, &ctx, id, body.value).await?;
    let cluster = state.store.get_cluster(id).await?;
    Ok(accepted(&state, submitted, "cluster", views::cluster(&cluster, None)).await)
}

async fn delete_cluster(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ctx = extract::write_ctx_without_body(&caller, &method, &uri, &headers)?;
    let submitted = commands::delete_cluster(&state.store, &ctx, id).await?;
    let cluster = state.store.get_cluster(id).await?;
    Ok(accepted(&state, submitted, "cluster", views::cluster(&cluster, None)).await)
}

/// Asks for a diagnostics bundle of a cluster. The bundle is built by the
/// worker, not here: a big one takes longer than an API request may.
async fn request_diagnostics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    body: JsonBody<ProposedDiagnostics>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let requested =
        diagnostics::request(&state.store, &state.diagnostics.staging, &ctx, id, body.value).await?;
    let submitted = requested.submitted;
    let mut headers = HeaderMap::new();
    if submitted.replayed {
        headers.insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    } else {
        (state.diagnostics.wake)(submitted.operation_id).await;
    }
    let cluster = state.store.get_cluster(id).await?;
    let body = json!({
        "operationId": submitted.operation_id,
        "cluster": views::cluster(&cluster, None),
        "diagnostics": { "uri": requested.uri, "days": requested.days },
    });
    Ok((StatusCode::ACCEPTED, headers, Json(body)).into_response())
}

async fn get_operation(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<serde_json::Value>, ApiError> {
    let op = state.store.get_operation(id).await?;
    let mut v = views::operation(&op);
    if let Some(rb) = state.store.get_runbook(id).await? {
        v["runbook"] = views::runbook(&rb, shared::time::now_ms());
    }
    Ok(Json(v))
}

/// The body of a rollback (or a cancel): nothing, or `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// The `202 Accepted` of a runbook write: the operation and the cluster as it is
/// now. A fresh one wakes the runbook runner, which does the work.
async fn runbook_accepted(state: &AppState, submitted: Submitted) -> Result<Response, ApiError> {
    if !submitted.replayed {
        (state.run_runbook)(submitted.operation_id).await;
    }
    let cluster = state.store.get_cluster(submitted.target_id).await?;
    let mut headers = HeaderMap::new();
    if submitted.replayed {
        headers.insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    }
    let body = json!({ "operationId": submitted.operation_id, "cluster": views::cluster(&cluster, None) });
    Ok((StatusCode::ACCEPTED, headers, Json(body)).into_response())
}

/// Upgrades a cluster by replacement: a new cluster row at the new version is
/// built, the endpoint moves to it, and the old one is retired after the
/// rollback window.
async fn upgrade_cluster(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    body: JsonBody<ProposedUpgrade>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let submitted = commands::upgrade_cluster(&state.store, &ctx, id, body.value).await?;
    runbook_accepted(&state, submitted).await
}

async fn rollback_cluster(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    OptionalJsonBody(body): OptionalJsonBody<NoFields>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let submitted = commands::rollback_cluster(&state.store, &ctx, id).await?;
    runbook_accepted(&state, submitted).await
}

async fn restart_cluster(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    OptionalJsonBody(body): OptionalJsonBody<ProposedRestart>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let submitted = commands::restart_cluster(&state.store, &ctx, id, body.value).await?;
    runbook_accepted(&state, submitted).await
}

/// Asks a running runbook to stop at its next step boundary (and undo what it
/// must); answers with the operation.
async fn cancel_operation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    OptionalJsonBody(body): OptionalJsonBody<NoFields>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let submitted = commands::cancel_operation(&state.store, &ctx, id).await?;
    // A drill (or failover) runs in this region's failover function, and its
    // undo only there: the runbooks function knows the cluster kinds' steps only.
    let region_runbook = state
        .store
        .get_runbook(submitted.operation_id)
        .await?
        .is_some_and(|rb| RunbookKind::REGION.contains(&rb.kind));
    if region_runbook {
        (state.run_region_runbook)(submitted.operation_id).await;
    } else {
        (state.run_runbook)(submitted.operation_id).await;
    }
    let op = state.store.get_operation(submitted.operation_id).await?;
    let body = json!({ "operationId": submitted.operation_id, "operation": views::operation(&op) });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

const OPERATION_STATES: [&str; 5] = ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const DEFAULT_OPERATIONS: i64 = 20;
const MAX_OPERATIONS: i64 = 200;

/// Operations, newest first: all, or those of one cluster, optionally in one state.
async fn list_operations(
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let known = ["clusterId", "state", "limit"];
    if let Some(unknown) = query.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "UNKNOWN_FIELD",
            unknown.clone(),
            format!(
                "{unknown} is not a query parameter of this route; use {}",
                known.join(", ")
            ),
        ));
    }
    let cluster = query
        .get("clusterId")
        .map(|raw| extract::parse_id_field("clusterId", raw))
        .transpose()?;
    let wanted = query
        .get("state")
        .map(|raw| {
            OPERATION_STATES
                .iter()
                .find(|s| **s == raw.as_str())
                .copied()
                .ok_or_else(|| {
                    ApiError::field(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        "state",
                        format!(
                            "state must be one of {}, got {raw:?}",
                            OPERATION_STATES.join(", ")
                        ),
                    )
                })
        })
        .transpose()?;
    let limit = match query.get("limit") {
        None => DEFAULT_OPERATIONS,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_OPERATIONS).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_OPERATIONS}, got {raw:?}"),
                )
            })?,
    };
    let ops = state.store.list_operations(cluster, wanted, limit).await?;
    Ok(Json(
        json!({ "operations": ops.iter().map(views::operation).collect::<Vec<_>>() }),
    ))
}

/// The version new clusters get when their create names none.
async fn get_default_version(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let version = state.store.default_version(&state.limits.default_version).await?;
    Ok(Json(json!({ "version": version })))
}

async fn set_default_version(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<ProposedDefaultVersion>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let version = commands::set_default_version(&state.store, &caller.name, body.value).await?;
    Ok(Json(json!({ "version": version })))
}
