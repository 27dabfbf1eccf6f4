//! The log-rotation function. On its schedule it keeps the staging bucket
//! within bounds:
//!
//! 1. merges the DM's expiry rules into the bucket's lifecycle configuration
//!    (`shared::workflows::retention`);
//! 2. compacts every closed hour of node logs into one gzip object
//!    (`shared::workflows::rotation`);
//! 3. moves history rows older than the retention to S3 and deletes them
//!    (`shared::workflows::archive`);
//! 4. builds the diagnostics bundles whose wake-up was lost ([`diagnostics`]).
//!
//! A direct invoke `{"diagnostics": {"operationId": N}}` (from the API) builds
//! one diagnostics bundle.
//!
//! Each step runs even when an earlier one failed; the answer reports all three.
//! A lease keeps two rotations from running at once.

pub mod diagnostics;

use serde_json::{json, Value};
use shared::cloud::ObjectStore;
use shared::config::RetentionConfig;
use shared::metrics::{rotation_emf_line, RotationSample};
use shared::time::now_ms;
use shared::workflows::archive::Archiver;
use shared::workflows::failover::Gate;
use shared::workflows::retention::apply_retention;
use shared::workflows::rotation::{LogRotation, RotationSettings};
use tracing::{info, warn};

/// The lease that keeps rotations from overlapping.
pub const LEASE: &str = "log-rotation";
/// How long a rotation's lease lasts: a killed run blocks the next one for at
/// most this long.
pub const LEASE_MS: i64 = 15 * 60_000;

/// Everything one run needs. The archiver carries the store, the object store
/// and the staging location the other steps use too.
pub struct Logs<O: ObjectStore> {
    /// The region this function runs in: the dimension of its metrics.
    pub region: String,
    pub archiver: Archiver<O>,
    pub rotation: RotationSettings,
    pub retention: RetentionConfig,
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The schedule: retention, rotation, archive.
    Scheduled,
}

/// Accepts the schedule's event (an EventBridge `Scheduled Event`).
pub fn parse_event(event: &Value) -> Result<Request, String> {
    match (
        event.get("detail-type").and_then(Value::as_str),
        event.get("source").and_then(Value::as_str),
    ) {
        (Some("Scheduled Event"), Some("aws.events")) => Ok(Request::Scheduled),
        _ => Err(format!(
            "expected an EventBridge \"Scheduled Event\" from aws.events, got detail-type {} and source {}",
            event.get("detail-type").unwrap_or(&Value::Null),
            event.get("source").unwrap_or(&Value::Null)
        )),
    }
}

impl<O: ObjectStore> Logs<O> {
    /// Handles one event. A malformed event is refused with its reason and
    /// changes nothing; a failed step is reported, and the function fails so that
    /// the failure shows in its metrics, after the other steps ran.
    /// A scheduled run hands its metric line (CloudWatch Embedded Metric Format)
    /// to `emit`.
    pub async fn handle(
        &self,
        gate: &Gate,
        event: &Value,
        emit: &(dyn Fn(&str) + Sync),
    ) -> Result<Value, anyhow::Error> {
        // A malformed event is refused in every region, standby or not.
        let diagnostics = shared::workflows::diagnostics::parse_event(event);
        let malformed = match &diagnostics {
            Some(Err(reason)) => Some(reason.clone()),
            Some(Ok(_)) => None,
            None => parse_event(event).err(),
        };
        if let Some(reason) = malformed {
            warn!(%reason, "rejected event");
            return Ok(json!({ "rejected": reason }));
        }
        if let Some(answer) = gate.standing_by().await {
            return Ok(answer);
        }
        match diagnostics {
            Some(parsed) => diagnostics::handle(self, parsed).await,
            None => self.scheduled(emit).await,
        }
    }

    /// One scheduled run, unless another holds the lease.
    pub async fn scheduled(&self, emit: &(dyn Fn(&str) + Sync)) -> Result<Value, anyhow::Error> {
        let started = std::time::Instant::now();
        let a = &self.archiver;
        let mut sample = RotationSample {
            at_ms: now_ms(),
            region: self.region.clone(),
            ..Default::default()
        };
        if !a.store.claim_lease(LEASE, &a.owner, LEASE_MS).await? {
            info!("another log rotation is running; this one does nothing");
            return Ok(json!({ "skipped": true }));
        }
        let mut failures = Vec::new();
        let retention = match apply_retention(&a.objects, &a.staging, &self.retention).await {
            Ok(merge) => json!({ "changed": merge.changed, "foreignRules": merge.foreign }),
            Err(e) => {
                failures.push(format!("retention: {e}"));
                json!({ "error": e.to_string() })
            }
        };
        let rotation = match LogRotation::new(&a.objects, &a.staging, self.rotation.clone())
            .run()
            .await
        {
            Ok(report) => {
                info!("log rotation: {}", report.summary());
                sample.log_hours_compacted = report.hours_compacted;
                sample.log_parts_compacted = report.parts_compacted;
                sample.log_parts_quarantined = report.quarantined_count;
                sample.log_hours_retried = report.retry_count;
                sample.log_keys_outside_layout = report.outside_layout_count;
                serde_json::to_value(&report).expect("a report serialises")
            }
            Err(e) => {
                failures.push(format!("rotation: {e}"));
                json!({ "error": e.to_string() })
            }
        };
        let archive = match a.archive(self.retention.history_cutoff_ms(now_ms())).await {
            Ok(report) => {
                sample.history_rows_archived = report.rows;
                json!({
                    "skipped": report.skipped,
                    "batches": report.batches.len(),
                    "rows": report.rows,
                    "discarded": report.discarded,
                    "more": report.more,
                    "idempotencyKeysExpired": report.keys_expired,
                })
            }
            Err(e) => {
                failures.push(format!("history archive: {e}"));
                json!({ "error": e.to_string() })
            }
        };
        if let Err(e) = a.store.release_lease(LEASE, &a.owner).await {
            warn!(error = %e, "could not release the log-rotation lease; it expires on its own");
        }
        // Bundles whose wake-up was lost, or whose worker ran out of time.
        let diagnostics = diagnostics::run_due(self).await;
        if let Some(e) = diagnostics.get("error") {
            failures.push(format!("diagnostics: {e}"));
        }
        sample.log_rotation_duration = started.elapsed().as_millis() as u64;
        emit(&rotation_emf_line(&sample));
        let answer = json!({
            "retention": retention,
            "rotation": rotation,
            "archive": archive,
            "diagnostics": diagnostics,
        });
        if failures.is_empty() {
            Ok(answer)
        } else {
            Err(anyhow::anyhow!("{}; {answer}", failures.join("; ")))
        }
    }
}
