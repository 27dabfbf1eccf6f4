//! The diagnostics branch of the log-rotation function. The API invokes the
//! function asynchronously with `{"diagnostics": {"operationId": N}}` after a
//! diagnostics request (`POST /v1/clusters/{id}/diagnostics`); this builds the
//! bundle and finishes the operation (`shared::workflows::diagnostics`). The
//! function's schedule also builds the requests whose wake-up was lost, or whose
//! worker ran out of time ([`run_due`]).
//!
//! The answer says what happened. A malformed event is refused with its reason
//! and changes nothing. A database error fails the invocation, so that Lambda
//! retries it; a failed bundle does not: its operation carries the error.

use serde_json::{json, Value};
use shared::cloud::ObjectStore;
use shared::workflows::diagnostics::{RunOutcome, Worker};
use tracing::{info, warn};

use crate::Logs;

/// Requests [`run_due`] builds in one scheduled run at most.
pub const DUE_PER_RUN: i64 = 10;

fn worker<O: ObjectStore>(logs: &Logs<O>) -> Worker<'_, O> {
    let a = &logs.archiver;
    Worker::new(&a.store, &a.objects, &a.staging, logs.rotation.clock, &a.owner)
}

fn outcome(operation_id: i64, outcome: &RunOutcome) -> Value {
    match outcome {
        RunOutcome::Succeeded { uri, stats } => json!({
            "operationId": operation_id,
            "state": "SUCCEEDED",
            "uri": uri,
            "logObjects": stats.log_objects,
            "bytes": stats.bundle_bytes,
        }),
        RunOutcome::Failed { error } => {
            json!({ "operationId": operation_id, "state": "FAILED", "error": error })
        }
        RunOutcome::Retrying { error } => {
            json!({ "operationId": operation_id, "state": "RETRYING", "error": error })
        }
        RunOutcome::Busy => json!({ "operationId": operation_id, "state": "BUSY" }),
        RunOutcome::AlreadyFinished => json!({ "operationId": operation_id, "state": "ALREADY_FINISHED" }),
    }
}

/// Handles a diagnostics event, as `shared::workflows::diagnostics::parse_event`
/// read it.
pub async fn handle<O: ObjectStore>(
    logs: &Logs<O>,
    parsed: Result<i64, String>,
) -> Result<Value, anyhow::Error> {
    let operation_id = match parsed {
        Ok(id) => id,
        Err(reason) => {
            warn!(%reason, "rejected event");
            return Ok(json!({ "rejected": reason }));
        }
    };
    // Boxed: the bundle's future is deep, and would make every caller's deeper.
    let done = Box::pin(worker(logs).run(operation_id)).await?;
    info!(operation_id, ?done, "diagnostics");
    Ok(json!({ "diagnostics": outcome(operation_id, &done) }))
}

/// Builds the open requests no worker holds, for the schedule; the answer lists
/// what each became, or the error.
pub async fn run_due<O: ObjectStore>(logs: &Logs<O>) -> Value {
    match Box::pin(worker(logs).run_due(DUE_PER_RUN)).await {
        Ok(runs) => Value::Array(runs.iter().map(|(id, o)| outcome(*id, o)).collect()),
        Err(e) => {
            warn!(error = %e, "diagnostics run failed");
            json!({ "error": e.to_string() })
        }
    }
}
