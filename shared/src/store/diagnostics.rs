//! Diagnostics bundles' side of the store: the `DIAGNOSTICS` operation a request
//! records, the open request the worker claims (`diagnostics_requests`), and the
//! bounded reads of a cluster's recent history that go into a bundle.
//!
//! A request row lives only while its operation is open: the transaction that
//! finishes the operation deletes it, so the table never grows with history. The
//! worker holds a row with a lease that expires, so a worker that was killed
//! gives its work back, and one request is never built twice at once.

use sqlx::any::AnyRow;

use super::health::StatusChange;
use super::operations::{begin, record, with_key_retry, Begun, Change, Step, StepState};
use super::rows::{col, opt_text, text, AuditRow, OperationRow, OPERATION_COLUMNS};
use super::{q, Backend, Store, StoreError, Submitted, WriteCtx};
use crate::time::now_ms;

/// The kind of a diagnostics operation. The reconciler never touches these
/// (`operations::progress` leaves them out): the diagnostics worker finishes them.
pub const DIAGNOSTICS: &str = "DIAGNOSTICS";

/// The target generation of a diagnostics operation. It changes no desired state,
/// so no observed generation may ever complete it.
pub const NO_GENERATION: i64 = i64::MAX;

/// The name of the one step a diagnostics operation shows.
const STEP: &str = "diagnostics bundle";

/// What a diagnostics request asks for: the days of logs and where the bundle goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDiagnostics {
    pub days: u32,
    pub bucket: String,
    pub key: String,
}

impl NewDiagnostics {
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// An open diagnostics request, as the worker that claimed it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosticsJob {
    pub operation_id: i64,
    pub cluster_id: i64,
    pub days: u32,
    pub bucket: String,
    pub key: String,
    /// When the request was made (the operation's `created_at`): the window of
    /// "the last N days" ends here.
    pub requested_at: i64,
    /// Claims so far, this one included.
    pub attempts: i64,
    /// Why the previous attempt gave the work back, if one did.
    pub last_error: Option<String>,
}

impl DiagnosticsJob {
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// What claiming a request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The request is this worker's until its lease runs out.
    Job(DiagnosticsJob),
    /// Another worker holds it.
    Busy,
    /// There is no open request under this operation: it finished already (a
    /// duplicate event), or it is not a diagnostics operation.
    Finished,
}

/// How a diagnostics operation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The bundle is at `uri`; `message` says what it holds.
    Succeeded {
        uri: String,
        message: String,
    },
    Failed {
        error: String,
    },
}

fn step(state: StepState, message: String) -> String {
    let steps = vec![Step {
        name: STEP.into(),
        state,
        message,
    }];
    serde_json::to_string(&steps).expect("steps serialise")
}

fn job_from_row(r: &AnyRow) -> Result<DiagnosticsJob, StoreError> {
    let days: i64 = col(r, "days")?;
    Ok(DiagnosticsJob {
        operation_id: col(r, "operation_id")?,
        cluster_id: col(r, "cluster_id")?,
        days: u32::try_from(days).map_err(|_| StoreError::Corrupt {
            what: "diagnostics request",
            detail: format!("days is {days}"),
        })?,
        bucket: text(r, "bucket")?,
        key: text(r, "object_key")?,
        requested_at: col(r, "requested_at")?,
        attempts: col(r, "attempts")?,
        last_error: opt_text(r, "last_error")?,
    })
}

impl Store {
    /// Records a `DIAGNOSTICS` operation on a cluster and its open request, with
    /// the audit row and the idempotency key, in one transaction. A cluster whose
    /// delete was asked for is refused.
    pub async fn request_diagnostics(
        &self,
        ctx: &WriteCtx,
        cluster_id: i64,
        new: &NewDiagnostics,
    ) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || self.request_diagnostics_once(ctx, cluster_id, new)).await
    }

    async fn request_diagnostics_once(
        &self,
        ctx: &WriteCtx,
        cluster_id: i64,
        new: &NewDiagnostics,
    ) -> Result<Submitted, StoreError> {
        let mut tx = self.begin_tx().await?;
        if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
            return Ok(s);
        }
        // MySQL: hold the cluster's row, so that a delete cannot commit between
        // this check and the operation. SQLite's write lock is already held.
        let lock = match self.backend() {
            Backend::MySql => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT delete_requested, status_code FROM clusters WHERE id = ?{lock}"
        ))
        .bind(cluster_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(q("read cluster"))?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                kind: "cluster",
                id: cluster_id,
            });
        };
        if col::<i64>(&row, "delete_requested")? != 0 {
            return Err(StoreError::Conflict(format!(
                "cluster {cluster_id} is {} (deleted); diagnostics are only built for clusters that are not deleted",
                text(&row, "status_code")?
            )));
        }
        let uri = new.uri();
        let plural = if new.days == 1 { "" } else { "s" };
        let detail = format!("diagnostics bundle of the last {} day{plural} to {uri}", new.days);
        let submitted = record(
            &mut tx,
            ctx,
            Change {
                kind: DIAGNOSTICS,
                target_kind: "cluster",
                target_id: cluster_id,
                target_generation: NO_GENERATION,
                steps: vec![Step {
                    name: STEP.into(),
                    state: StepState::Pending,
                    message: format!("waiting for the diagnostics worker; the bundle goes to {uri}"),
                }],
                audit_detail: &detail,
            },
        )
        .await?;
        sqlx::query(
            "INSERT INTO diagnostics_requests (operation_id, cluster_id, days, bucket, object_key, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(submitted.operation_id)
        .bind(cluster_id)
        .bind(i64::from(new.days))
        .bind(&new.bucket)
        .bind(&new.key)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(q("insert diagnostics request"))?;
        tx.commit().await.map_err(q("commit diagnostics request"))?;
        Ok(submitted)
    }

    /// Where a diagnostics operation writes (while open) or wrote (once it
    /// succeeded) its bundle; none for a failed one, or another kind.
    pub async fn diagnostics_uri(&self, operation_id: i64) -> Result<Option<String>, StoreError> {
        let open: Option<(String, String)> =
            sqlx::query("SELECT bucket, object_key FROM diagnostics_requests WHERE operation_id = ?")
                .bind(operation_id)
                .fetch_optional(self.pool())
                .await
                .map_err(q("read diagnostics request"))?
                .map(|r| Ok::<_, StoreError>((text(&r, "bucket")?, text(&r, "object_key")?)))
                .transpose()?;
        if let Some((bucket, key)) = open {
            return Ok(Some(format!("s3://{bucket}/{key}")));
        }
        Ok(self.get_operation(operation_id).await?.result)
    }

    /// Takes an open request for `ttl_ms`, unless another worker holds it, and
    /// marks its operation `RUNNING`.
    pub async fn claim_diagnostics(
        &self,
        operation_id: i64,
        owner: &str,
        ttl_ms: i64,
    ) -> Result<Claim, StoreError> {
        let mut tx = self.begin_tx().await?;
        let now = now_ms();
        let taken = sqlx::query(
            "UPDATE diagnostics_requests SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 \
             WHERE operation_id = ? AND lease_until < ?",
        )
        .bind(owner)
        .bind(now + ttl_ms)
        .bind(operation_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(q("claim diagnostics request"))?;
        if taken.rows_affected() == 0 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT operation_id FROM diagnostics_requests WHERE operation_id = ?")
                    .bind(operation_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(q("find diagnostics request"))?;
            return Ok(if exists.is_some() {
                Claim::Busy
            } else {
                Claim::Finished
            });
        }
        let row = sqlx::query(
            "SELECT d.operation_id, d.cluster_id, d.days, d.bucket, d.object_key, d.attempts, d.last_error, \
             o.created_at AS requested_at FROM diagnostics_requests d JOIN operations o ON o.id = d.operation_id \
             WHERE d.operation_id = ?",
        )
        .bind(operation_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(q("read diagnostics request"))?;
        let job = job_from_row(&row)?;
        let attempt = if job.attempts > 1 {
            format!(" (attempt {})", job.attempts)
        } else {
            String::new()
        };
        sqlx::query(
            "UPDATE operations SET state = 'RUNNING', steps = ?, updated_at = ? \
             WHERE id = ? AND state IN ('PENDING', 'RUNNING')",
        )
        .bind(step(
            StepState::Running,
            format!("building the bundle{attempt}; it goes to {}", job.uri()),
        ))
        .bind(now)
        .bind(operation_id)
        .execute(&mut *tx)
        .await
        .map_err(q("start diagnostics operation"))?;
        tx.commit().await.map_err(q("commit diagnostics claim"))?;
        Ok(Claim::Job(job))
    }

    /// Extends the lease of a request this worker holds; false when it lost it.
    pub async fn renew_diagnostics(
        &self,
        operation_id: i64,
        owner: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE diagnostics_requests SET lease_until = ? WHERE operation_id = ? AND lease_owner = ?",
        )
        .bind(now_ms() + ttl_ms)
        .bind(operation_id)
        .bind(owner)
        .execute(self.pool())
        .await
        .map_err(q("renew diagnostics lease"))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives a request back after an attempt that may succeed when tried again,
    /// with the reason; the next run takes it up.
    pub async fn release_diagnostics(
        &self,
        operation_id: i64,
        owner: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let released = sqlx::query(
            "UPDATE diagnostics_requests SET lease_owner = NULL, lease_until = 0, last_error = ? \
             WHERE operation_id = ? AND lease_owner = ?",
        )
        .bind(error)
        .bind(operation_id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(q("release diagnostics request"))?;
        if released.rows_affected() == 1 {
            sqlx::query(
                "UPDATE operations SET steps = ?, updated_at = ? WHERE id = ? AND state IN ('PENDING', 'RUNNING')",
            )
            .bind(step(
                StepState::Pending,
                format!("the last attempt failed ({error}); it will be tried again"),
            ))
            .bind(now_ms())
            .bind(operation_id)
            .execute(&mut *tx)
            .await
            .map_err(q("update diagnostics operation"))?;
        }
        tx.commit().await.map_err(q("commit diagnostics release"))
    }

    /// Finishes a diagnostics operation this worker holds, and forgets its
    /// request, in one transaction. False (and nothing written) when the worker
    /// no longer holds the request.
    pub async fn finish_diagnostics(
        &self,
        operation_id: i64,
        owner: &str,
        finish: &Finish,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_tx().await?;
        let held = sqlx::query("DELETE FROM diagnostics_requests WHERE operation_id = ? AND lease_owner = ?")
            .bind(operation_id)
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(q("forget diagnostics request"))?;
        if held.rows_affected() == 0 {
            return Ok(false);
        }
        let (state, steps, error, result) = match finish {
            Finish::Succeeded { uri, message } => (
                "SUCCEEDED",
                step(StepState::Done, message.clone()),
                None,
                Some(uri.clone()),
            ),
            Finish::Failed { error } => (
                "FAILED",
                step(StepState::Failed, error.clone()),
                Some(error.clone()),
                None,
            ),
        };
        sqlx::query(
            "UPDATE operations SET state = ?, steps = ?, error = ?, result = ?, updated_at = ? \
             WHERE id = ? AND state IN ('PENDING', 'RUNNING')",
        )
        .bind(state)
        .bind(steps)
        .bind(error)
        .bind(result)
        .bind(now_ms())
        .bind(operation_id)
        .execute(&mut *tx)
        .await
        .map_err(q("finish diagnostics operation"))?;
        tx.commit().await.map_err(q("commit diagnostics finish"))?;
        Ok(true)
    }

    /// Open requests that no worker holds (new ones, given back ones, and those
    /// of a worker that was killed), oldest first.
    pub async fn diagnostics_due(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT operation_id FROM diagnostics_requests WHERE lease_until < ? ORDER BY operation_id LIMIT ?",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(q("diagnostics due"))
    }

    /// A cluster's status changes since `since_ms`, newest first, at most `limit`.
    pub async fn status_history_since(
        &self,
        cluster_id: i64,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<StatusChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, code, message FROM cluster_status_history WHERE cluster_id = ? AND at >= ? \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(cluster_id)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(q("status history since"))?;
        rows.iter()
            .map(|r| {
                Ok(StatusChange {
                    at: col(r, "at")?,
                    code: text(r, "code")?,
                    message: text(r, "message")?,
                })
            })
            .collect()
    }

    /// The operations on a target made since `since_ms`, and those still open,
    /// newest first, at most `limit`.
    pub async fn operations_since(
        &self,
        target_kind: &str,
        target_id: i64,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<OperationRow>, StoreError> {
        let sql = format!(
            "SELECT {OPERATION_COLUMNS} FROM operations WHERE target_kind = ? AND target_id = ? \
             AND (created_at >= ? OR state IN ('PENDING', 'RUNNING')) ORDER BY id DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(target_kind)
            .bind(target_id)
            .bind(since_ms)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(q("operations since"))?;
        rows.iter().map(OperationRow::from_row).collect()
    }

    /// The audit rows of a target since `since_ms`, newest first, at most `limit`.
    pub async fn audit_since(
        &self,
        target: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, principal, action, target, detail FROM audit_log WHERE target = ? AND at >= ? \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(target)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(q("audit since"))?;
        rows.iter().map(AuditRow::from_row).collect()
    }
}
