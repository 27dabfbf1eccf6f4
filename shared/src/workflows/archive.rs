//! The history archive: status history, finished operations and audit rows older
//! than the retention go to the staging bucket as gzip JSON Lines, and only then
//! leave the database.
//!
//! Each table is archived in batches of its oldest eligible rows, by id. A batch
//! is journalled in `archive_batches` ([`crate::store::archive`]) and goes
//! through these steps, each named by the kill point in front of it:
//!
//! 1. `archive-pick`: in one transaction, pick the rows and record the batch
//!    `PENDING`, with its key, row count and the SHA-256 of its JSON Lines (or
//!    resume the table's open batch);
//! 2. `archive-put`: put the gzip object (a resumed batch renders its rows again
//!    and must find them unchanged);
//! 3. `archive-uploaded`: record the batch `UPLOADED`;
//! 4. `archive-verify`: GET the object back and check that it unzips to exactly
//!    the recorded lines (count, SHA-256, first and last id). A failure sends the
//!    batch back to `PENDING`, leaves its rows, and fails the run; the next run
//!    puts the object again;
//! 5. `archive-delete`: in one transaction, mark the batch `DONE` and delete its
//!    rows, only if they are still exactly the rows archived.
//!
//! Rows that changed between the steps make the batch `STALE`: its object is
//! deleted (`archive-discard`), then the batch is forgotten (`archive-forget`),
//! and its rows are picked again. So, killed between any two steps and run again,
//! the archive loses no row, deletes none unarchived, and holds each archived row
//! under one key only.
//!
//! Keys are deterministic: `history/<table>/<first id>-<last id>.jsonl.gz` under
//! the staging prefix, ids zero-padded to 12 digits so that keys sort by id.
//!
//! A named lease keeps runs from overlapping. A run that is killed keeps its
//! lease until it expires; the same owner may take it again at once.

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::cloud::{CloudError, ObjectStore};
use crate::config::S3Location;
use crate::store::archive::{
    ArchiveBatch, BatchState, FinishOutcome, HistoryTable, RenderedRows, ARCHIVE_LEASE,
};
use crate::store::{Store, StoreError};
use crate::workflows::kill::{KillSwitch, Killed};

/// The kill points of a batch's steps, in order (see the module's documentation).
pub const STEPS: [&str; 5] = [
    "archive-pick",
    "archive-put",
    "archive-uploaded",
    "archive-verify",
    "archive-delete",
];
/// The kill points of discarding a stale batch.
pub const DISCARD_STEPS: [&str; 2] = ["archive-discard", "archive-forget"];

/// The folder of history archives under the staging prefix.
pub const HISTORY_PREFIX: &str = "history/";

/// The longest line verification accepts (a corrupt object may have none).
const MAX_LINE: usize = 16 << 20;

/// How a run behaves.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSettings {
    /// Rows per batch (and so per object).
    pub batch_rows: usize,
    /// A run stops after this many batches; the next run goes on.
    pub max_batches: usize,
    /// How long the lease lasts; it is renewed before every batch.
    pub lease_ms: i64,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings {
            batch_rows: 5000,
            max_batches: 200,
            lease_ms: 5 * 60 * 1000,
        }
    }
}

/// One batch a run archived and deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedBatch {
    pub table: HistoryTable,
    pub key: String,
    pub first_id: i64,
    pub last_id: i64,
    pub rows: u64,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Another run held the lease; this one did nothing.
    pub skipped: bool,
    pub batches: Vec<ArchivedBatch>,
    /// Rows deleted from the database, all archived.
    pub rows: u64,
    /// Stale batches whose object was deleted and which were forgotten.
    pub discarded: usize,
    /// The run stopped at `max_batches` (or lost its lease): rows may be left
    /// for the next run.
    pub more: bool,
    /// Idempotency keys older than the cutoff, forgotten: a retry that late is
    /// a new request.
    pub keys_expired: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Killed(#[from] Killed),
    /// The object did not read back as the batch: its rows stay, and the next
    /// run puts it again.
    #[error(
        "archive object s3://{bucket}/{key} failed verification: {detail}; its rows stay in the database"
    )]
    Verify {
        bucket: String,
        key: String,
        detail: String,
    },
}

impl ArchiveError {
    /// Whether running again later may succeed. Every failure leaves the archive
    /// consistent, so only a permanent S3 error needs a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            ArchiveError::Store(e) => e.is_retryable(),
            ArchiveError::Cloud(e) => e.is_retryable(),
            ArchiveError::Killed(_) | ArchiveError::Verify { .. } => true,
        }
    }
}

/// The key of a batch's object.
pub fn archive_key(staging: &S3Location, table: HistoryTable, first_id: i64, last_id: i64) -> String {
    staging.key(&format!(
        "{HISTORY_PREFIX}{}/{first_id:012}-{last_id:012}.jsonl.gz",
        table.name()
    ))
}

/// Compresses JSON Lines for the archive.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::default());
    out.write_all(data).expect("writing to memory");
    out.finish().expect("writing to memory")
}

/// What an archive object unzips to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unzipped {
    lines: i64,
    sha256: String,
    first: Option<Vec<u8>>,
    last: Option<Vec<u8>>,
}

/// Unzips a whole object, a chunk at a time, keeping only the first and last lines.
fn unzip(gz: &[u8]) -> Result<Unzipped, String> {
    let mut decoder = MultiGzDecoder::new(gz);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut first, mut last, mut current) = (0i64, None, None, Vec::new());
    loop {
        let n = decoder
            .read(&mut buf)
            .map_err(|e| format!("it is not gzip: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        let mut chunk = &buf[..n];
        while let Some(end) = chunk.iter().position(|b| *b == b'\n') {
            current.extend_from_slice(&chunk[..end]);
            let line = std::mem::take(&mut current);
            if first.is_none() {
                first = Some(line.clone());
            }
            last = Some(line);
            lines += 1;
            chunk = &chunk[end + 1..];
        }
        current.extend_from_slice(chunk);
        if current.len() > MAX_LINE {
            return Err(format!("it holds a line longer than {MAX_LINE} bytes"));
        }
    }
    if !current.is_empty() {
        return Err("its last line does not end with a newline".into());
    }
    Ok(Unzipped {
        lines,
        sha256: hex::encode(hasher.finalize()),
        first,
        last,
    })
}

fn line_id(line: Option<&[u8]>) -> Option<i64> {
    let row: serde_json::Value = serde_json::from_slice(line?).ok()?;
    row.get("id")?.as_i64()
}

/// Checks that a gzip object holds exactly the batch's lines: their count, the
/// SHA-256 of the uncompressed bytes, and the ids of the first and last lines.
pub fn verify_archive(gz: &[u8], batch: &ArchiveBatch) -> Result<(), String> {
    let got = unzip(gz)?;
    if got.lines != batch.row_count {
        return Err(format!("it holds {} lines, not {}", got.lines, batch.row_count));
    }
    let ids = (line_id(got.first.as_deref()), line_id(got.last.as_deref()));
    if ids != (Some(batch.first_id), Some(batch.last_id)) {
        return Err(format!(
            "its lines run from id {:?} to {:?}, not {} to {}",
            ids.0, ids.1, batch.first_id, batch.last_id
        ));
    }
    if got.sha256 != batch.sha256 {
        return Err(format!("its SHA-256 is {}, not {}", got.sha256, batch.sha256));
    }
    Ok(())
}

/// Reads an archive object back: one JSON object per row.
pub fn read_archive(gz: &[u8]) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    let mut raw = Vec::new();
    MultiGzDecoder::new(gz)
        .read_to_end(&mut raw)
        .map_err(|e| format!("it is not gzip: {e}"))?;
    raw.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| format!("a line is not a JSON object: {e}")))
        .collect()
}

/// The archive over the store and the staging bucket.
pub struct Archiver<O> {
    pub store: Store,
    pub objects: O,
    pub staging: S3Location,
    pub settings: ArchiveSettings,
    /// Who holds the lease (unique per process and run).
    pub owner: String,
    /// Off, except in tests that kill the run at a step.
    pub kill: KillSwitch,
}

impl<O: ObjectStore> Archiver<O> {
    /// Archives, then deletes, the history rows older than `cutoff_ms` (the
    /// caller's now minus the retention), unless another run holds the lease.
    pub async fn archive(&self, cutoff_ms: i64) -> Result<ArchiveReport, ArchiveError> {
        let mut report = ArchiveReport::default();
        if !self.claim().await? {
            info!("another history archive run is going on; this one does nothing");
            report.skipped = true;
            return Ok(report);
        }
        let result = Box::pin(self.run(cutoff_ms, &mut report)).await;
        // A killed run is a crash: it does not clean up, and its lease expires.
        if matches!(result, Err(ArchiveError::Killed(_))) {
            return result.map(|_| report);
        }
        let released = self.store.release_lease(ARCHIVE_LEASE, &self.owner).await;
        result?;
        released?;
        info!(
            batches = report.batches.len(),
            rows = report.rows,
            discarded = report.discarded,
            more = report.more,
            "history archived"
        );
        Ok(report)
    }

    async fn claim(&self) -> Result<bool, StoreError> {
        self.store
            .claim_lease(ARCHIVE_LEASE, &self.owner, self.settings.lease_ms)
            .await
    }

    async fn run(&self, cutoff_ms: i64, report: &mut ArchiveReport) -> Result<(), ArchiveError> {
        let mut rounds = 0;
        for table in HistoryTable::ALL {
            loop {
                if rounds >= self.settings.max_batches || (rounds > 0 && !self.claim().await?) {
                    report.more = true;
                    return Ok(());
                }
                self.kill.check(STEPS[0])?;
                let (batch, rendered) = match self.store.open_archive_batch(table).await? {
                    Some(batch) => (batch, None),
                    None => {
                        let picked = self
                            .store
                            .begin_archive_batch(table, cutoff_ms, self.settings.batch_rows, |first, last| {
                                archive_key(&self.staging, table, first, last)
                            })
                            .await?;
                        match picked {
                            Some((batch, rendered)) => (batch, Some(rendered)),
                            None => break,
                        }
                    }
                };
                rounds += 1;
                self.advance(batch, rendered, report).await?;
            }
        }
        report.keys_expired = self.store.expire_idempotency_keys(cutoff_ms).await?;
        Ok(())
    }

    /// Takes one batch from where it is to `DONE`, or to forgotten.
    async fn advance(
        &self,
        batch: ArchiveBatch,
        rendered: Option<RenderedRows>,
        report: &mut ArchiveReport,
    ) -> Result<(), ArchiveError> {
        match batch.state {
            BatchState::Stale => self.discard(&batch, report).await,
            BatchState::Done => Ok(()),
            BatchState::Uploaded => self.verify_and_delete(&batch, report).await,
            BatchState::Pending => {
                let rendered = match rendered {
                    Some(r) => r,
                    None => self.store.render_archive_batch(&batch).await?,
                };
                if !rendered.matches(&batch) {
                    return self.stale(&batch, report).await;
                }
                self.kill.check(STEPS[1])?;
                self.objects
                    .put(&self.staging.bucket, &batch.object_key, gzip(&rendered.jsonl))
                    .await?;
                drop(rendered);
                self.kill.check(STEPS[2])?;
                if !self
                    .store
                    .move_archive_batch(batch.id, &[BatchState::Pending], BatchState::Uploaded)
                    .await?
                {
                    // Another run moved it meanwhile; the caller reads it again.
                    return Ok(());
                }
                self.verify_and_delete(&batch, report).await
            }
        }
    }

    async fn verify_and_delete(
        &self,
        batch: &ArchiveBatch,
        report: &mut ArchiveReport,
    ) -> Result<(), ArchiveError> {
        self.kill.check(STEPS[3])?;
        let object = self.objects.get(&self.staging.bucket, &batch.object_key).await?;
        let checked = match object {
            None => Err("it does not exist".to_owned()),
            Some(gz) => verify_archive(&gz, batch),
        };
        if let Err(detail) = checked {
            warn!(key = %batch.object_key, %detail, "an archive object failed verification; it will be put again");
            self.store
                .move_archive_batch(batch.id, &[BatchState::Uploaded], BatchState::Pending)
                .await?;
            return Err(ArchiveError::Verify {
                bucket: self.staging.bucket.clone(),
                key: batch.object_key.clone(),
                detail,
            });
        }
        self.kill.check(STEPS[4])?;
        match self.store.finish_archive_batch(batch).await? {
            FinishOutcome::Deleted(rows) => {
                report.rows += rows;
                report.batches.push(ArchivedBatch {
                    table: batch.table,
                    key: batch.object_key.clone(),
                    first_id: batch.first_id,
                    last_id: batch.last_id,
                    rows,
                });
                Ok(())
            }
            FinishOutcome::Changed => self.stale(batch, report).await,
            FinishOutcome::NotOpen => Ok(()),
        }
    }

    /// The batch's rows changed before they were deleted: its object must go, so
    /// that the rows, picked again, are archived under one key only.
    async fn stale(&self, batch: &ArchiveBatch, report: &mut ArchiveReport) -> Result<(), ArchiveError> {
        warn!(
            table = batch.table.name(),
            first_id = batch.first_id,
            last_id = batch.last_id,
            "the rows of an archive batch changed before they were deleted; archiving them again"
        );
        if self
            .store
            .move_archive_batch(
                batch.id,
                &[BatchState::Pending, BatchState::Uploaded],
                BatchState::Stale,
            )
            .await?
        {
            self.discard(batch, report).await?;
        }
        Ok(())
    }

    async fn discard(&self, batch: &ArchiveBatch, report: &mut ArchiveReport) -> Result<(), ArchiveError> {
        self.kill.check(DISCARD_STEPS[0])?;
        self.objects
            .delete(&self.staging.bucket, std::slice::from_ref(&batch.object_key))
            .await?;
        self.kill.check(DISCARD_STEPS[1])?;
        if self.store.forget_archive_batch(batch.id).await? {
            report.discarded += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: &[&str]) -> (ArchiveBatch, Vec<u8>) {
        let jsonl: Vec<u8> = rows.iter().flat_map(|r| format!("{r}\n").into_bytes()).collect();
        let id = |r: &str| {
            serde_json::from_str::<serde_json::Value>(r).unwrap()["id"]
                .as_i64()
                .unwrap()
        };
        let b = ArchiveBatch {
            id: 1,
            table: HistoryTable::Audit,
            first_id: id(rows[0]),
            last_id: id(rows[rows.len() - 1]),
            cutoff_ms: 0,
            object_key: "k".into(),
            row_count: rows.len() as i64,
            sha256: hex::encode(Sha256::digest(&jsonl)),
            state: BatchState::Uploaded,
            created_at: 0,
            updated_at: 0,
        };
        (b, jsonl)
    }

    #[test]
    fn keys_name_the_table_and_the_padded_id_range_under_the_staging_prefix() {
        let staging = S3Location::parse("s3://okera-staging/dm").unwrap();
        assert_eq!(
            archive_key(&staging, HistoryTable::Audit, 1, 5000),
            "dm/history/audit_log/000000000001-000000005000.jsonl.gz"
        );
        let bare = S3Location::parse("s3://okera-staging").unwrap();
        assert_eq!(
            archive_key(&bare, HistoryTable::StatusHistory, 12, 13),
            "history/cluster_status_history/000000000012-000000000013.jsonl.gz"
        );
        assert_eq!(
            archive_key(&bare, HistoryTable::Operations, 7, 1_000_000_000_000),
            "history/operations/000000000007-1000000000000.jsonl.gz"
        );
    }

    #[test]
    fn an_object_verifies_only_when_it_holds_exactly_the_batch() {
        let (b, jsonl) = batch(&[
            r#"{"id":3,"x":"a"}"#,
            r#"{"id":4,"x":"b"}"#,
            r#"{"id":9,"x":"c"}"#,
        ]);
        assert_eq!(verify_archive(&gzip(&jsonl), &b), Ok(()));
        // Two gzip members read as one stream, as gunzip reads them.
        let mut two = gzip(&jsonl[..16]);
        two.extend(gzip(&jsonl[16..]));
        assert_eq!(verify_archive(&two, &b), Ok(()));

        let err = verify_archive(b"not gzip at all", &b).unwrap_err();
        assert!(err.contains("not gzip"), "{err}");
        let fewer = &jsonl[..jsonl.len() - r#"{"id":9,"x":"c"}"#.len() - 1];
        assert!(verify_archive(&gzip(fewer), &b)
            .unwrap_err()
            .contains("2 lines, not 3"));
        let changed = String::from_utf8(jsonl.clone())
            .unwrap()
            .replace("\"b\"", "\"B\"");
        assert!(verify_archive(&gzip(changed.as_bytes()), &b)
            .unwrap_err()
            .contains("SHA-256"));
        let shifted = String::from_utf8(jsonl.clone())
            .unwrap()
            .replace("\"id\":9", "\"id\":8");
        assert!(verify_archive(&gzip(shifted.as_bytes()), &b)
            .unwrap_err()
            .contains("to Some(8), not 3 to 9"));
        let unterminated = &jsonl[..jsonl.len() - 1];
        assert!(verify_archive(&gzip(unterminated), &b)
            .unwrap_err()
            .contains("newline"));
        assert!(verify_archive(&gzip(b""), &b).unwrap_err().contains("0 lines"));
    }

    #[test]
    fn archives_read_back_as_rows() {
        let (_, jsonl) = batch(&[r#"{"id":1,"detail":"x"}"#, r#"{"id":2,"detail":null}"#]);
        let rows = read_archive(&gzip(&jsonl)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["id"], 2);
        assert!(rows[1]["detail"].is_null());
        assert!(read_archive(b"\x1f\x8b junk").is_err());
    }

    #[test]
    fn steps_are_distinct() {
        let mut all: Vec<&str> = STEPS.iter().chain(DISCARD_STEPS.iter()).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), STEPS.len() + DISCARD_STEPS.len());
    }
}
