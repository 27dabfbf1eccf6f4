//! The history archive's side of the store: which history rows may leave the
//! database, the journal of archive batches (`archive_batches`), and the
//! transactions that record a batch and delete its rows.
//!
//! A batch's rows are rendered here, as JSON Lines (one row per line, every
//! column by name), so that recording a batch, resuming it and finishing it all
//! produce the same bytes: the workflow ([`crate::workflows::archive`]) compares
//! their SHA-256 at each step, and a batch's rows are deleted only in the
//! transaction that finds them still exactly as archived.
//!
//! The newest row of a table is never archived. MySQL before 8.0 sets a table's
//! `AUTO_INCREMENT` from `MAX(id)` when the server restarts; with the newest row
//! kept, an archived id is never handed out again, so an archive key (which names
//! its id range) is never reused.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Column, Row, ValueRef};

use super::rows::{col, text};
use super::{inserted_id, is_unique_violation, q, Backend, Store, StoreError};
use crate::time::now_ms;

/// The lease an archive run holds, so that runs never overlap.
pub const ARCHIVE_LEASE: &str = "history-archive";

/// A table whose old rows go to the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HistoryTable {
    /// `cluster_status_history`: rows older than the cutoff (`at`).
    StatusHistory,
    /// `operations`: finished ones (`SUCCEEDED`, `FAILED`) last changed before the
    /// cutoff (`updated_at`). Pending and running operations never leave.
    Operations,
    /// `audit_log`: rows older than the cutoff (`at`).
    Audit,
}

impl HistoryTable {
    /// Every archived table, in the order a run archives them.
    pub const ALL: [HistoryTable; 3] = [
        HistoryTable::StatusHistory,
        HistoryTable::Operations,
        HistoryTable::Audit,
    ];

    /// The table's name in the schema, and in archive keys.
    pub fn name(self) -> &'static str {
        match self {
            HistoryTable::StatusHistory => "cluster_status_history",
            HistoryTable::Operations => "operations",
            HistoryTable::Audit => "audit_log",
        }
    }

    pub fn parse(name: &str) -> Option<HistoryTable> {
        HistoryTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The condition of the rows that may leave; it binds the cutoff once.
    fn eligible(self) -> &'static str {
        match self {
            HistoryTable::StatusHistory | HistoryTable::Audit => "at < ?",
            HistoryTable::Operations => "state IN ('SUCCEEDED', 'FAILED') AND updated_at < ?",
        }
    }
}

/// Where a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchState {
    /// Recorded; its object may or may not exist yet.
    Pending,
    /// Its object was put, and is not yet verified.
    Uploaded,
    /// Verified; its rows were deleted in the transaction that set this state.
    Done,
    /// Its rows changed before they were deleted: its object is to be deleted,
    /// and then the batch forgotten.
    Stale,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Pending => "PENDING",
            BatchState::Uploaded => "UPLOADED",
            BatchState::Done => "DONE",
            BatchState::Stale => "STALE",
        }
    }

    pub fn parse(raw: &str) -> Option<BatchState> {
        [
            BatchState::Pending,
            BatchState::Uploaded,
            BatchState::Done,
            BatchState::Stale,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// One batch of the archive journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveBatch {
    pub id: i64,
    pub table: HistoryTable,
    /// The ids of its first and last rows; the batch is the eligible rows between.
    pub first_id: i64,
    pub last_id: i64,
    /// The cutoff the rows were picked with: eligibility is judged with it again.
    pub cutoff_ms: i64,
    /// The object's key in the staging bucket.
    pub object_key: String,
    pub row_count: i64,
    /// Hex SHA-256 of the uncompressed JSON Lines.
    pub sha256: String,
    pub state: BatchState,
    pub created_at: i64,
    pub updated_at: i64,
}

const BATCH_COLUMNS: &str = "id, table_name, first_id, last_id, cutoff_ms, object_key, row_count, sha256, \
    state, created_at, updated_at";

impl ArchiveBatch {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "archive batch",
            detail,
        };
        let table = text(r, "table_name")?;
        let state = text(r, "state")?;
        Ok(ArchiveBatch {
            id: col(r, "id")?,
            table: HistoryTable::parse(&table).ok_or_else(|| corrupt(format!("unknown table {table:?}")))?,
            first_id: col(r, "first_id")?,
            last_id: col(r, "last_id")?,
            cutoff_ms: col(r, "cutoff_ms")?,
            object_key: text(r, "object_key")?,
            row_count: col(r, "row_count")?,
            sha256: text(r, "sha256")?,
            state: BatchState::parse(&state).ok_or_else(|| corrupt(format!("unknown state {state:?}")))?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

/// Rows rendered as JSON Lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedRows {
    /// One JSON object per row, each line ending in `\n`.
    pub jsonl: Vec<u8>,
    pub count: i64,
    /// 0 when there are no rows.
    pub first_id: i64,
    pub last_id: i64,
    /// Hex SHA-256 of `jsonl`.
    pub sha256: String,
}

impl RenderedRows {
    /// Whether these are exactly the rows the batch recorded.
    pub fn matches(&self, batch: &ArchiveBatch) -> bool {
        self.count == batch.row_count
            && self.first_id == batch.first_id
            && self.last_id == batch.last_id
            && self.sha256 == batch.sha256
    }
}

/// What finishing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The rows were deleted (this many) and the batch is `DONE`.
    Deleted(u64),
    /// The rows are no longer the ones archived: nothing was deleted.
    Changed,
    /// The batch was not `UPLOADED` any more (another run moved it): nothing was
    /// deleted.
    NotOpen,
}

/// One column's value as JSON. Integers stay integers; text (which MySQL's
/// `TEXT` hands over as bytes through the `Any` driver) is a string.
fn value(row: &AnyRow, i: usize) -> Result<Value, StoreError> {
    let decode = |source| StoreError::Query {
        op: "decode history row",
        source,
    };
    if row.try_get_raw(i).map_err(decode)?.is_null() {
        return Ok(Value::Null);
    }
    if let Ok(v) = row.try_get::<i64, _>(i) {
        return Ok(Value::from(v));
    }
    if let Ok(v) = row.try_get::<bool, _>(i) {
        return Ok(Value::from(v));
    }
    if let Ok(v) = row.try_get::<f64, _>(i) {
        return Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number));
    }
    if let Ok(v) = row.try_get::<String, _>(i) {
        return Ok(Value::from(v));
    }
    let bytes: Vec<u8> = row.try_get(i).map_err(decode)?;
    String::from_utf8(bytes)
        .map(Value::from)
        .map_err(|e| StoreError::Corrupt {
            what: "history row",
            detail: format!("column {} is not UTF-8: {e}", row.columns()[i].name()),
        })
}

/// Renders rows (read with `SELECT *`, by id) as JSON Lines: every column by
/// name, keys in alphabetical order.
pub(crate) fn render(rows: &[AnyRow]) -> Result<RenderedRows, StoreError> {
    let mut jsonl = Vec::new();
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let mut line = Map::new();
        for (i, column) in row.columns().iter().enumerate() {
            line.insert(column.name().to_owned(), value(row, i)?);
        }
        ids.push(col::<i64>(row, "id")?);
        serde_json::to_writer(&mut jsonl, &line).expect("a JSON map serialises");
        jsonl.push(b'\n');
    }
    let sha256 = hex::encode(Sha256::digest(&jsonl));
    Ok(RenderedRows {
        jsonl,
        count: ids.len() as i64,
        first_id: ids.first().copied().unwrap_or(0),
        last_id: ids.last().copied().unwrap_or(0),
        sha256,
    })
}

impl Store {
    /// The batch of `table` that is not `DONE` yet, if any (a run keeps at most
    /// one per table open).
    pub async fn open_archive_batch(&self, table: HistoryTable) -> Result<Option<ArchiveBatch>, StoreError> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM archive_batches WHERE table_name = ? AND state <> 'DONE' ORDER BY id LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(table.name())
            .fetch_optional(self.pool())
            .await
            .map_err(q("open archive batch"))?;
        row.as_ref().map(ArchiveBatch::from_row).transpose()
    }

    /// The journal, oldest batch first; one table's, or every table's.
    pub async fn archive_batches(
        &self,
        table: Option<HistoryTable>,
    ) -> Result<Vec<ArchiveBatch>, StoreError> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM archive_batches WHERE (? IS NULL OR table_name = ?) ORDER BY id"
        );
        let name = table.map(HistoryTable::name);
        let rows = sqlx::query(&sql)
            .bind(name)
            .bind(name)
            .fetch_all(self.pool())
            .await
            .map_err(q("list archive batches"))?;
        rows.iter().map(ArchiveBatch::from_row).collect()
    }

    /// In one transaction: picks the oldest rows of `table` that may leave (older
    /// than `cutoff_ms`; never the table's newest row), up to `limit`, renders
    /// them, and records them as a `PENDING` batch whose object key is
    /// `key(first_id, last_id)`. None when no row may leave.
    pub async fn begin_archive_batch(
        &self,
        table: HistoryTable,
        cutoff_ms: i64,
        limit: usize,
        key: impl FnOnce(i64, i64) -> String,
    ) -> Result<Option<(ArchiveBatch, RenderedRows)>, StoreError> {
        let mut tx = self.begin_tx().await?;
        let newest: Option<i64> = sqlx::query_scalar(&format!("SELECT MAX(id) FROM {}", table.name()))
            .fetch_one(&mut *tx)
            .await
            .map_err(q("newest history row"))?;
        let Some(newest) = newest else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT * FROM {} WHERE id < ? AND {} ORDER BY id LIMIT ?",
            table.name(),
            table.eligible()
        );
        let rows = sqlx::query(&sql)
            .bind(newest)
            .bind(cutoff_ms)
            .bind(limit.max(1) as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(q("pick history rows"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let rendered = render(&rows)?;
        let now = now_ms();
        let mut batch = ArchiveBatch {
            id: 0,
            table,
            first_id: rendered.first_id,
            last_id: rendered.last_id,
            cutoff_ms,
            object_key: key(rendered.first_id, rendered.last_id),
            row_count: rendered.count,
            sha256: rendered.sha256.clone(),
            state: BatchState::Pending,
            created_at: now,
            updated_at: now,
        };
        let inserted = sqlx::query(
            "INSERT INTO archive_batches (table_name, first_id, last_id, cutoff_ms, object_key, row_count, \
             sha256, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(table.name())
        .bind(batch.first_id)
        .bind(batch.last_id)
        .bind(cutoff_ms)
        .bind(&batch.object_key)
        .bind(batch.row_count)
        .bind(&batch.sha256)
        .bind(BatchState::Pending.as_str())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            Ok(done) => done,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "{} ids {} to {} were archived before, yet rows with those ids exist again; \
                     archiving {} stops until that is resolved",
                    table.name(),
                    batch.first_id,
                    batch.last_id,
                    table.name()
                )))
            }
            Err(e) => return Err(q("record archive batch")(e)),
        };
        batch.id = inserted_id(&mut tx, &inserted).await?;
        tx.commit().await.map_err(q("commit archive batch"))?;
        Ok(Some((batch, rendered)))
    }

    /// The batch's rows as they are now, rendered as when the batch was recorded.
    pub async fn render_archive_batch(&self, batch: &ArchiveBatch) -> Result<RenderedRows, StoreError> {
        let sql = format!(
            "SELECT * FROM {} WHERE id BETWEEN ? AND ? AND {} ORDER BY id",
            batch.table.name(),
            batch.table.eligible()
        );
        let rows = sqlx::query(&sql)
            .bind(batch.first_id)
            .bind(batch.last_id)
            .bind(batch.cutoff_ms)
            .fetch_all(self.pool())
            .await
            .map_err(q("read archive batch rows"))?;
        render(&rows)
    }

    /// Moves a batch to `to` if it is in one of `from`; false when it was not.
    pub async fn move_archive_batch(
        &self,
        id: i64,
        from: &[BatchState],
        to: BatchState,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE archive_batches SET state = ?, updated_at = ? WHERE id = ? AND state IN ({})",
            vec!["?"; from.len().max(1)].join(", ")
        );
        let mut update = sqlx::query(&sql).bind(to.as_str()).bind(now_ms()).bind(id);
        for s in from {
            update = update.bind(s.as_str());
        }
        if from.is_empty() {
            update = update.bind("");
        }
        let done = update
            .execute(self.pool())
            .await
            .map_err(q("move archive batch"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets a `STALE` batch (once its object is deleted); false when there was
    /// no such batch.
    pub async fn forget_archive_batch(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM archive_batches WHERE id = ? AND state = 'STALE'")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(q("forget archive batch"))?;
        Ok(done.rows_affected() == 1)
    }

    /// In one transaction: marks an `UPLOADED` batch `DONE`, reads its rows again
    /// (locked), and deletes them only if they are exactly the rows archived
    /// (same count, ids and SHA-256). Anything else rolls back.
    pub async fn finish_archive_batch(&self, batch: &ArchiveBatch) -> Result<FinishOutcome, StoreError> {
        let mut tx = self.begin_tx().await?;
        let moved = sqlx::query(
            "UPDATE archive_batches SET state = 'DONE', updated_at = ? WHERE id = ? AND state = 'UPLOADED'",
        )
        .bind(now_ms())
        .bind(batch.id)
        .execute(&mut *tx)
        .await
        .map_err(q("finish archive batch"))?;
        if moved.rows_affected() != 1 {
            return Ok(FinishOutcome::NotOpen);
        }
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::MySql => " FOR UPDATE",
        };
        let (table, eligible) = (batch.table.name(), batch.table.eligible());
        let sql = format!("SELECT * FROM {table} WHERE id BETWEEN ? AND ? AND {eligible} ORDER BY id{lock}");
        let rows = sqlx::query(&sql)
            .bind(batch.first_id)
            .bind(batch.last_id)
            .bind(batch.cutoff_ms)
            .fetch_all(&mut *tx)
            .await
            .map_err(q("lock archive batch rows"))?;
        if !render(&rows)?.matches(batch) {
            return Ok(FinishOutcome::Changed);
        }
        let sql = format!("DELETE FROM {table} WHERE id BETWEEN ? AND ? AND {eligible}");
        let deleted = sqlx::query(&sql)
            .bind(batch.first_id)
            .bind(batch.last_id)
            .bind(batch.cutoff_ms)
            .execute(&mut *tx)
            .await
            .map_err(q("delete archived rows"))?
            .rows_affected();
        if deleted != batch.row_count as u64 {
            return Ok(FinishOutcome::Changed);
        }
        tx.commit().await.map_err(q("commit archive batch"))?;
        Ok(FinishOutcome::Deleted(deleted))
    }
}
