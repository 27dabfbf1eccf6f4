//! Regions, failovers and drills (`docs/failover.md`): who is active, failover
//! requests (sent to the region that takes over, which stands by until then)
//! and their progress, and recovery drills (run from the active region).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use shared::domain::failover::{FailoverRequest, ProposedDrill, ProposedFailover};
use shared::store::RunbookKind;
use shared::time::format_ms;

use crate::extract::{Caller, JsonBody};
use crate::{views, ApiError, AppState};

/// How many failovers and drills the lists show.
const RECENT: usize = 20;

fn request_view(r: &FailoverRequest) -> Value {
    let at = |ms: Option<i64>| ms.map(format_ms);
    json!({
        "id": r.id,
        "to": r.to,
        "from": r.from,
        "planned": r.planned,
        "force": r.force,
        "trigger": r.trigger,
        "state": r.state.as_str(),
        "epoch": r.epoch,
        "requestedAt": format_ms(r.requested_at),
        "claimedAt": at(r.claimed_at),
        "promotionStartedAt": at(r.promote_started_at),
        "promotedAt": at(r.promoted_at),
        "replicaLagMs": r.lag_ms,
        "operationId": r.operation_id,
        "error": r.error,
        "preconditions": r.preconditions,
        "updatedAt": format_ms(r.updated_at),
    })
}

/// `GET /v1/regions`: this region's role, who is active, the DM regions as the
/// store knows them, and the latest failovers.
pub async fn regions(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let desk = &state.failover;
    let region = desk.region().to_owned();
    let role = desk.role().await;
    let known = state.store.dm_regions().await?;
    let history = state.store.leadership_history(10).await?;
    let failovers = desk.list().await?;
    Ok(Json(json!({
        "region": region,
        "role": role.as_str(),
        "message": role.describe(&region),
        "leader": role.leader().map(|l| json!({
            "region": l.region,
            "epoch": l.epoch,
            "since": format_ms(l.since),
            "previous": l.previous,
            "failoverId": l.failover_id,
        })),
        "regions": desk.dm_regions().iter().map(|r| {
            let row = known.iter().find(|k| k.region == *r);
            json!({
                "region": r,
                "active": role.leader().is_some_and(|l| l.region == *r) || matches!(role, shared::domain::failover::Role::Single),
                "healthCheckId": row.and_then(|k| k.health_check_id.clone()),
                "heartbeatAt": row.map(|k| k.heartbeat_at).filter(|t| *t > 0).map(format_ms),
                "clustersReady": row.map(|k| k.clusters_ready),
                "clusters": row.map(|k| k.clusters),
            })
        }).collect::<Vec<_>>(),
        "leadershipHistory": history.iter().map(|h| json!({
            "epoch": h.epoch,
            "region": h.region,
            "previous": h.previous,
            "at": format_ms(h.at),
            "failoverId": h.failover_id,
            "operationId": h.operation_id,
        })).collect::<Vec<_>>(),
        "failovers": failovers.iter().take(RECENT).map(request_view).collect::<Vec<_>>(),
    })))
}

/// `POST /v1/failover`: a dry run (200, the plan and its preconditions), or a
/// request (202, then `GET /v1/failovers/{id}`). Only the target region's API
/// takes it, whether it stands by or not.
pub async fn request_failover(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<ProposedFailover>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let spec = body.value.parse()?;
    if spec.dry_run {
        let plan = state.failover.plan(spec).await?;
        return Ok((StatusCode::OK, Json(json!({ "dryRun": true, "plan": plan }))).into_response());
    }
    let taken = state.failover.request(spec, ctx).await?;
    let request = &taken.request;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "failoverId": request.id, "failover": request_view(request) })),
    )
        .into_response();
    if taken.replayed {
        response
            .headers_mut()
            .insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A failover id: the API's (`fo-…`) or an alarm event's (a UUID).
fn failover_id(raw: &str) -> Result<String, ApiError> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "id",
            format!("a failover id is 1 to 128 letters, digits, '-' and '_', got {raw:?}"),
        ))
    }
}

pub async fn list_failovers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = state.failover.list().await?;
    Ok(Json(
        json!({ "failovers": all.iter().take(RECENT).map(request_view).collect::<Vec<_>>() }),
    ))
}

/// `GET /v1/failovers/{id}`: the request, and its runbook once written.
pub async fn get_failover(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    // A path that does not decode (bytes that are not UTF-8) is a bad id too,
    // answered with the JSON error rather than axum's plain-text one.
    let Ok(Path(raw)) = path else {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "id",
            "a failover id is 1 to 128 letters, digits, '-' and '_'; this one is not UTF-8",
        ));
    };
    let id = failover_id(&raw)?;
    let request =
        state.failover.status(id.clone()).await?.ok_or_else(|| {
            ApiError::not_found(format!("no failover {id}; ocadm failover list shows them"))
        })?;
    let mut v = request_view(&request);
    if let Some(op) = request.operation_id {
        // Written in the target region's database, which this region may only
        // see once its replica caught up.
        if let Ok(operation) = state.store.get_operation(op).await {
            v["operation"] = views::operation(&operation);
            if let Some(rb) = state.store.get_runbook(op).await? {
                v["operation"]["runbook"] = views::runbook(&rb, shared::time::now_ms());
                v["report"] = rb.context.report.clone().unwrap_or(Value::Null);
            }
        }
    }
    Ok(Json(v))
}

/// `POST /v1/drills`: a recovery drill from this (active) region to another.
pub async fn start_drill(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<ProposedDrill>,
) -> Result<Response, ApiError> {
    let ctx = body.write_ctx(&caller);
    let spec = body.value.parse()?;
    let role = state.failover.role().await;
    let submitted = shared::workflows::failover::start_drill(
        &state.store,
        &role,
        state.failover.region(),
        &state.failover.dm_regions(),
        &ctx,
        &spec,
    )
    .await?;
    let mut headers = HeaderMap::new();
    if submitted.replayed {
        headers.insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    } else {
        (state.run_region_runbook)(submitted.operation_id).await;
    }
    let op = state.store.get_operation(submitted.operation_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(json!({ "operationId": submitted.operation_id, "operation": views::operation(&op) })),
    )
        .into_response())
}

/// `GET /v1/drills`: the drills, newest first, with what each measured.
pub async fn list_drills(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let drills = state
        .store
        .region_runbooks(RunbookKind::Drill, RECENT as i64)
        .await?;
    let now = shared::time::now_ms();
    Ok(Json(json!({
        "drills": drills.iter().map(|rb| {
            let report = rb.context.report.clone().unwrap_or(Value::Null);
            json!({
                "operationId": rb.id,
                "from": rb.params.from_region,
                "to": rb.params.to_region,
                "state": rb.state,
                "error": rb.error,
                "startedAt": format_ms(rb.created_at),
                "updatedAt": format_ms(rb.updated_at),
                "rtoMs": report.get("rtoMs").cloned().unwrap_or(Value::Null),
                "leaks": report.get("leaks").cloned().unwrap_or(json!([])),
                "runbook": views::runbook(rb, now),
            })
        }).collect::<Vec<_>>(),
    })))
}
