//! Operations, idempotency keys and the audit log: the three records every write
//! leaves, in the same transaction as the change itself.

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use super::rows::{AuditRow, OperationRow, OPERATION_COLUMNS};
use super::{inserted_id, is_unique_violation, q, Store, StoreError};
use crate::time::now_ms;

/// Who is writing, and the idempotency key they sent, if any.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    pub principal: String,
    /// `(key, sha256 of method + path + body)`.
    pub idempotency: Option<(String, String)>,
}

/// What a write left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub operation_id: i64,
    pub target_id: i64,
    /// True when an earlier request with the same idempotency key did the work.
    pub replayed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl OpState {
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::Pending => "PENDING",
            OpState::Running => "RUNNING",
            OpState::Succeeded => "SUCCEEDED",
            OpState::Failed => "FAILED",
            OpState::Cancelled => "CANCELLED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    /// A runbook step passed over because an earlier one failed.
    Skipped,
    Cancelled,
}

/// One step of an operation, as the reconciler last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub state: StepState,
    pub message: String,
}

/// The start of a write: either an earlier request with the same key already did
/// the work, or the caller goes on inside `tx`.
pub(crate) enum Begun {
    Replay(Submitted),
    Fresh,
}

/// Looks the idempotency key up inside the write's transaction.
pub(crate) async fn begin(tx: &mut Transaction<'static, Any>, ctx: &WriteCtx) -> Result<Begun, StoreError> {
    let Some((key, hash)) = &ctx.idempotency else {
        return Ok(Begun::Fresh);
    };
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT request_hash, operation_id, target FROM idempotency_keys WHERE principal = ? AND idem_key = ?",
    )
    .bind(&ctx.principal)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(q("idempotency lookup"))?;
    match row {
        None => Ok(Begun::Fresh),
        Some((stored, op, target)) if &stored == hash => {
            let target_id = target
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    what: "idempotency target",
                    detail: target.clone(),
                })?;
            Ok(Begun::Replay(Submitted {
                operation_id: op,
                target_id,
                replayed: true,
            }))
        }
        Some(_) => Err(StoreError::Conflict(format!(
            "Idempotency-Key {key:?} was already used with a different request; use a new key for a new request"
        ))),
    }
}

/// The latest operation of `kind` on a target, inside a write's transaction: a
/// second delete answers with the first one's operation instead of making another.
pub(crate) async fn latest_operation(
    tx: &mut Transaction<'static, Any>,
    kind: &str,
    target_kind: &str,
    target_id: i64,
) -> Result<Option<Submitted>, StoreError> {
    let op: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(id) FROM operations WHERE target_kind = ? AND target_id = ? AND kind = ?",
    )
    .bind(target_kind)
    .bind(target_id)
    .bind(kind)
    .fetch_one(&mut **tx)
    .await
    .map_err(q("find latest operation"))?;
    Ok(op.map(|operation_id| Submitted {
        operation_id,
        target_id,
        replayed: true,
    }))
}

/// What a write did, for its operation and audit records.
pub(crate) struct Change<'a> {
    pub kind: &'static str,
    pub target_kind: &'static str,
    pub target_id: i64,
    pub target_generation: i64,
    pub steps: Vec<Step>,
    pub audit_detail: &'a str,
}

/// Records the operation, claims the idempotency key and appends to the audit log,
/// then commits. A concurrent request that claimed the same key first wins: this
/// one rolls back and reports `KeyRace`, and the caller answers as a replay.
pub(crate) async fn finish(
    mut tx: Transaction<'static, Any>,
    ctx: &WriteCtx,
    change: Change<'_>,
) -> Result<Submitted, StoreError> {
    let submitted = record(&mut tx, ctx, change).await?;
    tx.commit().await.map_err(q("commit write"))?;
    Ok(submitted)
}

/// [`finish`] without the commit, for a write that records more in the same
/// transaction once it knows the operation's id.
pub(crate) async fn record(
    tx: &mut Transaction<'static, Any>,
    ctx: &WriteCtx,
    change: Change<'_>,
) -> Result<Submitted, StoreError> {
    let now = now_ms();
    let target = format!("{}/{}", change.target_kind, change.target_id);
    let steps = serde_json::to_string(&change.steps).expect("steps serialise");
    let op = sqlx::query(
        "INSERT INTO operations (kind, target_kind, target_id, target_generation, state, steps, error, principal, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 'PENDING', ?, NULL, ?, ?, ?)",
    )
    .bind(change.kind)
    .bind(change.target_kind)
    .bind(change.target_id)
    .bind(change.target_generation)
    .bind(steps)
    .bind(&ctx.principal)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(q("insert operation"))?;
    let operation_id = inserted_id(tx, &op).await?;
    if let Some((key, hash)) = &ctx.idempotency {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (principal, idem_key, request_hash, operation_id, target, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&ctx.principal)
        .bind(key)
        .bind(hash)
        .bind(operation_id)
        .bind(&target)
        .bind(now)
        .execute(&mut **tx)
        .await;
        match claimed {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(KEY_RACE.into()));
            }
            Err(e) => return Err(q("claim idempotency key")(e)),
        }
    }
    sqlx::query("INSERT INTO audit_log (at, principal, action, target, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(now)
        .bind(&ctx.principal)
        .bind(change.kind)
        .bind(&target)
        .bind(change.audit_detail)
        .execute(&mut **tx)
        .await
        .map_err(q("append audit log"))?;
    Ok(Submitted {
        operation_id,
        target_id: change.target_id,
        replayed: false,
    })
}

/// The conflict a lost idempotency-key race carries; `with_key_retry` runs the
/// write again, and the retry sees the winner's key.
const KEY_RACE: &str = "idempotency key claimed concurrently";

impl Store {
    /// Begins a write transaction. SQLite takes its write lock up front
    /// (`BEGIN IMMEDIATE`): a transaction that reads first and writes later would
    /// fail at once ("database is locked") when another writer got there between,
    /// instead of waiting for it.
    pub(crate) async fn begin_tx(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend() {
            super::Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await,
            super::Backend::MySql => self.pool().begin().await,
        }
        .map_err(q("begin transaction"))
    }

    pub async fn get_operation(&self, id: i64) -> Result<OperationRow, StoreError> {
        let sql = format!("SELECT {OPERATION_COLUMNS} FROM operations WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(q("get operation"))?;
        match row {
            Some(r) => OperationRow::from_row(&r),
            None => Err(StoreError::NotFound {
                kind: "operation",
                id,
            }),
        }
    }

    /// Operations on a target that have not finished, oldest first.
    pub async fn open_operations(
        &self,
        target_kind: &str,
        target_id: i64,
    ) -> Result<Vec<OperationRow>, StoreError> {
        let sql = format!(
            "SELECT {OPERATION_COLUMNS} FROM operations WHERE target_kind = ? AND target_id = ? \
             AND state IN ('PENDING', 'RUNNING') ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(target_kind)
            .bind(target_id)
            .fetch_all(self.pool())
            .await
            .map_err(q("open operations"))?;
        rows.iter().map(OperationRow::from_row).collect()
    }

    /// Forgets the idempotency keys recorded before `cutoff_ms`; returns how many.
    /// They answer retries of a request, which do not come a retention later.
    pub async fn expire_idempotency_keys(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(cutoff_ms)
            .execute(self.pool())
            .await
            .map(|r| r.rows_affected())
            .map_err(q("expire idempotency keys"))
    }

    /// The audit log of one target, oldest first.
    pub async fn audit_of(&self, target: &str) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, principal, action, target, detail FROM audit_log WHERE target = ? ORDER BY id",
        )
        .bind(target)
        .fetch_all(self.pool())
        .await
        .map_err(q("read audit log"))?;
        rows.iter().map(AuditRow::from_row).collect()
    }
}

/// The operation kinds the reconciler finishes.
const RECONCILED: &str =
    "('CREATE_CLUSTER', 'UPDATE_CLUSTER', 'DELETE_CLUSTER', 'CREATE_ENVIRONMENT', 'DELETE_ENVIRONMENT')";

/// Updates the open operations of a target from what the reconciler observed:
/// those whose generation has been reached finish (or fail), the rest show progress.
/// Only the reconciler's own kinds: `DIAGNOSTICS` operations are the diagnostics
/// worker's, and runbook operations (upgrade, rollback, restart) their runner's.
pub(crate) async fn progress(
    tx: &mut Transaction<'static, Any>,
    target_kind: &str,
    target_id: i64,
    observed_generation: i64,
    steps: &[Step],
    failure: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let steps = serde_json::to_string(steps).expect("steps serialise");
    if let Some(error) = failure {
        sqlx::query(&format!(
            "UPDATE operations SET state = 'FAILED', steps = ?, error = ?, updated_at = ? \
             WHERE target_kind = ? AND target_id = ? AND state IN ('PENDING', 'RUNNING') AND kind IN {RECONCILED}"
        ))
        .bind(&steps)
        .bind(error)
        .bind(now)
        .bind(target_kind)
        .bind(target_id)
        .execute(&mut **tx)
        .await
        .map_err(q("fail operations"))?;
        return Ok(());
    }
    sqlx::query(&format!(
        "UPDATE operations SET state = 'SUCCEEDED', steps = ?, updated_at = ? \
         WHERE target_kind = ? AND target_id = ? AND state IN ('PENDING', 'RUNNING') AND kind IN {RECONCILED} AND target_generation <= ?"
    ))
    .bind(&steps)
    .bind(now)
    .bind(target_kind)
    .bind(target_id)
    .bind(observed_generation)
    .execute(&mut **tx)
    .await
    .map_err(q("finish operations"))?;
    sqlx::query(&format!(
        "UPDATE operations SET state = 'RUNNING', steps = ?, updated_at = ? \
         WHERE target_kind = ? AND target_id = ? AND state IN ('PENDING', 'RUNNING') AND kind IN {RECONCILED}"
    ))
    .bind(&steps)
    .bind(now)
    .bind(target_kind)
    .bind(target_id)
    .execute(&mut **tx)
    .await
    .map_err(q("progress operations"))?;
    Ok(())
}

/// Runs a write, and runs it once more if it lost a race to a concurrent request
/// with the same idempotency key. The loser may see the race as the key's own
/// unique index, or (on MySQL, where it waited on the winner's row lock) as a
/// duplicate of the resource itself; either way the second run, in a fresh
/// snapshot, finds the winner's key and answers as a replay (or a conflict).
pub(crate) async fn with_key_retry<F, Fut>(ctx: &WriteCtx, f: F) -> Result<Submitted, StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Submitted, StoreError>>,
{
    match f().await {
        Err(StoreError::Conflict(_)) if ctx.idempotency.is_some() => f().await,
        other => other,
    }
}
