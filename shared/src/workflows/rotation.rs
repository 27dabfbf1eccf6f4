//! Log rotation: folds each closed hour of a node's service log, uploaded by its
//! agent as many small parts, into one gzip object, and deletes the parts once the
//! object is verified.
//!
//! An hour's folder (`logs/<cluster>/<instance>/<service>/<yyyy>/<mm>/<dd>/<hh>/`)
//! holds parts, and after rotation generation `n` of its compacted object with the
//! manifest that commits it (`compacted-<n>.log.gz`, `compacted-<n>.json`). One
//! run over an hour:
//!
//! 1. **Clean up.** The highest generation with a manifest is the committed one.
//!    Objects of other generations are leftovers of an earlier run: older ones
//!    are superseded, newer ones were never committed. Both are deleted.
//! 2. **Compact.** Parts the committed manifest does not name (with that ETag)
//!    are new. The committed object and the new parts, in key order, stream
//!    through gzip into generation `n + 1`, by multipart upload when large. A part
//!    that is not valid gzip is moved under `quarantine/` and left out.
//! 3. **Verify.** The new object is read back; its line and byte counts must
//!    equal those of its inputs. The hour is listed again: an input that changed
//!    or vanished meanwhile discards the new object, and the next run tries again.
//! 4. **Commit.** The manifest of `n + 1` names every object it supersedes, with
//!    its ETag.
//! 5. **Delete** what the manifest supersedes.
//!
//! A kill between any two steps leaves either an uncommitted object (thrown away
//! and redone) or a committed one whose superseded objects are still there
//! (deleted by the next run, which compacts nothing twice): no line is lost or
//! duplicated. Memory holds one hour's listing, one upload part and at most one
//! gzip part of up to [`RotationSettings::spool_limit`] bytes; a larger gzip part is
//! checked in a first pass and streamed in a second.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use flate2::write::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use crate::cloud::upload::{GzUpload, Upload, PART_SIZE};
use crate::cloud::{CloudError, ObjectBody, ObjectMeta, ObjectStore};
use crate::config::S3Location;
use crate::domain::logs::{parse_log_key, LogClock, LogHour, LogKey, HOUR_MS, LOGS};
use crate::workflows::kill::{KillSwitch, Killed};

/// Where corrupt parts are moved, keeping their key: `quarantine/logs/…`.
pub const QUARANTINE: &str = "quarantine/";

/// The steps a kill switch can stop rotation at, in order.
pub const STEPS: [&str; 6] = [
    "listed",
    "quarantined",
    "written",
    "compacted",
    "verified",
    "committed",
];

/// How rotation runs.
#[derive(Debug, Clone)]
pub struct RotationSettings {
    /// Which hour a part belongs to, and which hours are over.
    pub clock: LogClock,
    /// How long after its end (log-clock time) an hour still takes late parts
    /// before it is compacted.
    pub grace_ms: i64,
    /// Bytes per multipart part of a compacted object.
    pub part_size: usize,
    /// The largest gzip part (uncompressed) checked in memory; larger ones are read twice.
    pub spool_limit: usize,
    /// No new hour is started after this much wall time (the function's timeout
    /// less a margin); the next run carries on.
    pub budget: Duration,
    pub kill: KillSwitch,
}

impl Default for RotationSettings {
    fn default() -> Self {
        RotationSettings {
            clock: LogClock::WALL,
            grace_ms: 5 * 60_000,
            part_size: PART_SIZE,
            spool_limit: 16 << 20,
            budget: Duration::from_secs(600),
            kill: KillSwitch::off(),
        }
    }
}

/// What a run did. Lists are capped at [`REPORT_CAP`] entries; the counts are exact.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationReport {
    pub hours_compacted: u64,
    pub parts_compacted: u64,
    /// Bytes of the parts as stored (compressed or not).
    pub part_bytes: u64,
    /// Lines and uncompressed bytes added to compacted objects.
    pub lines: u64,
    pub plain_bytes: u64,
    /// Size of the compacted objects written.
    pub compacted_bytes: u64,
    /// Hours not over yet (or in their grace period).
    pub hours_open: u64,
    /// Objects of earlier, interrupted runs that were cleaned up.
    pub leftovers_deleted: u64,
    pub uploads_aborted: u64,
    pub outside_layout_count: u64,
    pub outside_layout: Vec<String>,
    pub quarantined_count: u64,
    pub quarantined: Vec<String>,
    /// Hours left for the next run, and why.
    pub retry_count: u64,
    pub retry: Vec<String>,
    /// The run stopped at its time budget with hours still to do.
    pub stopped_early: bool,
}

pub const REPORT_CAP: usize = 100;

fn note(list: &mut Vec<String>, count: &mut u64, entry: String) {
    *count += 1;
    if list.len() < REPORT_CAP {
        list.push(entry);
    }
}

impl RotationReport {
    /// One line for the log.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "compacted {} hour(s) from {} part(s) ({} lines, {} B of parts into {} B of gzip); {} hour(s) still open",
            self.hours_compacted,
            self.parts_compacted,
            self.lines,
            self.part_bytes,
            self.compacted_bytes,
            self.hours_open
        );
        for (n, what) in [
            (self.outside_layout_count, "key(s) outside the layout left alone"),
            (self.quarantined_count, "corrupt part(s) quarantined"),
            (self.retry_count, "hour(s) left for the next run"),
            (
                self.leftovers_deleted,
                "leftover(s) of an interrupted run deleted",
            ),
            (self.uploads_aborted, "unfinished upload(s) aborted"),
        ] {
            if n > 0 {
                s.push_str(&format!("; {n} {what}"));
            }
        }
        if self.stopped_early {
            s.push_str("; stopped at its time budget");
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Killed(#[from] Killed),
}

/// The record that commits a generation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub generation: u32,
    /// The compacted object, relative to the staging prefix.
    pub object: String,
    pub object_size: u64,
    pub lines: u64,
    pub bytes: u64,
    /// Parts whose lines it holds, over all generations.
    pub parts: u64,
    /// Objects whose content it holds, and which may go: keys relative to the
    /// staging prefix, with the ETag that was read.
    pub supersedes: Vec<Source>,
    pub compacted_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Source {
    pub key: String,
    pub etag: String,
}

/// Why an hour was left for the next run.
enum HourError {
    Retry(String),
    Cloud(CloudError),
    Killed(Killed),
}

impl From<CloudError> for HourError {
    fn from(e: CloudError) -> Self {
        HourError::Cloud(e)
    }
}

impl From<Killed> for HourError {
    fn from(e: Killed) -> Self {
        HourError::Killed(e)
    }
}

/// Why one part could not be added.
enum PartError {
    /// Not valid gzip: quarantine it, go on with the rest.
    Corrupt(String),
    /// Its ETag is not the listed one any more: the hour waits for the next run.
    Changed,
    /// Deleted since the listing: nothing to add.
    Gone,
    Cloud(CloudError),
}

impl From<CloudError> for PartError {
    fn from(e: CloudError) -> Self {
        PartError::Cloud(e)
    }
}

/// Lines and bytes of plain text, and its last byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    lines: u64,
    bytes: u64,
    last: Option<u8>,
}

impl Counts {
    fn add(&mut self, data: &[u8]) {
        self.lines += data.iter().filter(|&&b| b == b'\n').count() as u64;
        self.bytes += data.len() as u64;
        if let Some(&b) = data.last() {
            self.last = Some(b);
        }
    }
}

impl Write for Counts {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.add(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A part or compacted object being read into an hour's new generation.
struct Input {
    meta: ObjectMeta,
    gzip: bool,
}

pub struct LogRotation<'a, O: ObjectStore> {
    objects: &'a O,
    staging: &'a S3Location,
    settings: RotationSettings,
}

impl<'a, O: ObjectStore> LogRotation<'a, O> {
    pub fn new(objects: &'a O, staging: &'a S3Location, settings: RotationSettings) -> Self {
        LogRotation {
            objects,
            staging,
            settings,
        }
    }

    fn bucket(&self) -> &str {
        &self.staging.bucket
    }

    fn abs(&self, rel: &str) -> String {
        self.staging.key(rel)
    }

    /// Compacts every closed hour under `logs/`.
    pub async fn run(&self) -> Result<RotationReport, RotationError> {
        let started = Instant::now();
        let now = self.settings.clock.now();
        let mut report = RotationReport::default();
        self.abort_unfinished(&mut report).await?;
        let root = self.abs("");
        let mut next = None;
        let mut current: Option<(LogHour, Vec<(LogKey, ObjectMeta)>)> = None;
        loop {
            let page = self
                .objects
                .list_page(self.bucket(), &self.abs(LOGS), next)
                .await?;
            for meta in page.objects {
                let rel = meta.key.strip_prefix(&root).unwrap_or(&meta.key).to_owned();
                let key = match parse_log_key(&rel) {
                    Ok(key) => key,
                    Err(why) => {
                        tracing::warn!(key = %meta.key, "left alone: {why}");
                        note(&mut report.outside_layout, &mut report.outside_layout_count, why);
                        continue;
                    }
                };
                if current.as_ref().is_some_and(|(hour, _)| hour != key.hour()) {
                    let (hour, keys) = current.take().expect("checked");
                    self.hour(hour, keys, now, started, &mut report).await?;
                }
                let hour = key.hour().clone();
                current
                    .get_or_insert_with(|| (hour, Vec::new()))
                    .1
                    .push((key, meta));
            }
            match page.next {
                Some(token) if !report.stopped_early => next = Some(token),
                _ => break,
            }
        }
        if let Some((hour, keys)) = current {
            self.hour(hour, keys, now, started, &mut report).await?;
        }
        Ok(report)
    }

    /// Aborts the multipart uploads of compacted objects that an interrupted run
    /// left (rotation runs one at a time, so none is in progress).
    async fn abort_unfinished(&self, report: &mut RotationReport) -> Result<(), CloudError> {
        let root = self.abs("");
        for upload in self
            .objects
            .pending_uploads(self.bucket(), &self.abs(LOGS))
            .await?
        {
            let rel = upload.key.strip_prefix(&root).unwrap_or(&upload.key);
            if matches!(parse_log_key(rel), Ok(LogKey::Compacted { .. })) {
                self.objects
                    .abort_multipart(self.bucket(), &upload.key, &upload.upload_id)
                    .await?;
                report.uploads_aborted += 1;
            }
        }
        Ok(())
    }

    /// One hour, if it is over: an error in it leaves it for the next run, and
    /// the run goes on; a kill stops the run.
    async fn hour(
        &self,
        hour: LogHour,
        keys: Vec<(LogKey, ObjectMeta)>,
        now: i64,
        started: Instant,
        report: &mut RotationReport,
    ) -> Result<(), RotationError> {
        if hour.start_ms + HOUR_MS + self.settings.grace_ms > now {
            report.hours_open += 1;
            return Ok(());
        }
        if started.elapsed() > self.settings.budget {
            report.stopped_early = true;
            return Ok(());
        }
        match self.compact(&hour, keys, report).await {
            Ok(()) => Ok(()),
            Err(HourError::Killed(k)) => Err(k.into()),
            Err(HourError::Retry(why)) => {
                tracing::warn!(hour = %hour.label(), "left for the next run: {why}");
                note(
                    &mut report.retry,
                    &mut report.retry_count,
                    format!("{}: {why}", hour.label()),
                );
                Ok(())
            }
            Err(HourError::Cloud(e)) => {
                tracing::warn!(hour = %hour.label(), error = %e, "left for the next run");
                note(
                    &mut report.retry,
                    &mut report.retry_count,
                    format!("{}: {e}", hour.label()),
                );
                Ok(())
            }
        }
    }

    async fn compact(
        &self,
        hour: &LogHour,
        keys: Vec<(LogKey, ObjectMeta)>,
        report: &mut RotationReport,
    ) -> Result<(), HourError> {
        self.settings.kill.reached("listed").await?;
        let mut parts = Vec::new();
        let mut compacted = BTreeMap::new();
        let mut manifests = BTreeMap::new();
        for (key, meta) in keys {
            match key {
                LogKey::Part { gzip, .. } => parts.push(Input { meta, gzip }),
                LogKey::Compacted { generation, .. } => {
                    compacted.insert(generation, meta);
                }
                LogKey::Manifest { generation, .. } => {
                    manifests.insert(generation, meta);
                }
            }
        }
        // An hour that rotation already finished: one object and its manifest,
        // nothing else. Most hours are like this; they cost no request.
        if parts.is_empty()
            && compacted.len() == 1
            && manifests.len() == 1
            && compacted.keys().eq(manifests.keys())
        {
            return Ok(());
        }
        let committed = match manifests.last_key_value() {
            None => None,
            Some((&generation, meta)) => Some(self.manifest(generation, meta).await?),
        };
        if let Some(m) = &committed {
            if !compacted.contains_key(&m.generation) {
                return Err(HourError::Retry(format!(
                    "manifest {} names {}, which is missing; the hour is left as it is",
                    m.generation, m.object
                )));
            }
        }
        let generation = committed.as_ref().map_or(0, |m| m.generation);
        let last_seen = compacted
            .keys()
            .chain(manifests.keys())
            .copied()
            .max()
            .unwrap_or(0);

        // 1. Leftovers of other generations.
        let leftovers: Vec<String> = compacted
            .iter()
            .chain(manifests.iter())
            .filter(|(g, _)| **g != generation)
            .map(|(_, meta)| meta.key.clone())
            .collect();
        if !leftovers.is_empty() {
            self.objects.delete(self.bucket(), &leftovers).await?;
            report.leftovers_deleted += leftovers.len() as u64;
        }

        // Parts the committed generation already holds are only left to delete.
        let held: HashMap<String, String> = committed
            .iter()
            .flat_map(|m| m.supersedes.iter())
            .map(|s| (self.abs(&s.key), s.etag.clone()))
            .collect();
        let (done, new): (Vec<Input>, Vec<Input>) = parts
            .into_iter()
            .partition(|p| held.get(&p.meta.key) == Some(&p.meta.etag));
        if new.is_empty() {
            let done: Vec<String> = done.into_iter().map(|p| p.meta.key).collect();
            if !done.is_empty() {
                self.objects.delete(self.bucket(), &done).await?;
                report.leftovers_deleted += done.len() as u64;
            }
            return Ok(());
        }

        // 2. Compact the committed object and the new parts into the next generation.
        let next = last_seen + 1;
        let key = self.abs(&hour.compacted_key(next));
        let upload = Upload::new(self.objects, self.bucket(), &key).with_part_size(self.settings.part_size);
        let mut out = GzUpload::new(upload);
        let mut inputs: Vec<Source> = Vec::new();
        let mut total = Counts::default();
        let mut parts_held = 0;
        if let (Some(m), Some(meta)) = (&committed, compacted.get(&generation)) {
            let input = Input {
                meta: meta.clone(),
                gzip: true,
            };
            let counts = match self.append(&mut out, &input, true).await {
                Ok(c) => c,
                Err(e) => {
                    out.abort().await;
                    return Err(part_failure(&input.meta.key, e));
                }
            };
            if (counts.lines, counts.bytes) != (m.lines, m.bytes) {
                out.abort().await;
                return Err(HourError::Retry(format!(
                    "{} holds {} lines and {} bytes, but its manifest says {} and {}",
                    m.object, counts.lines, counts.bytes, m.lines, m.bytes
                )));
            }
            total.lines += counts.lines;
            total.bytes += counts.bytes;
            parts_held = m.parts;
            inputs.push(Source {
                key: m.object.clone(),
                etag: input.meta.etag.clone(),
            });
        }
        let mut added = Vec::new();
        for part in &new {
            match self.append(&mut out, part, false).await {
                Ok(counts) => {
                    total.lines += counts.lines;
                    total.bytes += counts.bytes;
                    inputs.push(self.source(&part.meta));
                    added.push(part.meta.size);
                }
                Err(PartError::Corrupt(why)) => {
                    if let Err(e) = self.quarantine(&part.meta, &why, report).await {
                        out.abort().await;
                        return Err(e);
                    }
                }
                Err(PartError::Gone) => {}
                Err(e) => {
                    out.abort().await;
                    return Err(part_failure(&part.meta.key, e));
                }
            }
        }
        if added.is_empty() {
            // Every new part was corrupt or gone: nothing to add to the hour.
            out.abort().await;
            return Ok(());
        }
        if let Err(killed) = self.settings.kill.reached("written").await {
            // As a crash would: the multipart upload stays unfinished.
            return Err(killed.into());
        }
        let plain = out.plain_bytes();
        debug_assert_eq!(plain, total.bytes);
        let object_size = out.finish().await?;
        self.settings.kill.reached("compacted").await?;

        // 3. Verify the object, and that no input changed meanwhile.
        let found = self.count_gzip(&key).await?;
        if (found.lines, found.bytes) != (total.lines, total.bytes) {
            self.objects
                .delete(self.bucket(), std::slice::from_ref(&key))
                .await?;
            return Err(HourError::Retry(format!(
                "the compacted object read back {} lines and {} bytes, not {} and {}; it was discarded",
                found.lines, found.bytes, total.lines, total.bytes
            )));
        }
        let now_listed = self.listing(&self.abs(&hour.prefix())).await?;
        if let Some(changed) = inputs
            .iter()
            .find(|s| now_listed.get(&self.abs(&s.key)) != Some(&s.etag))
        {
            self.objects
                .delete(self.bucket(), std::slice::from_ref(&key))
                .await?;
            return Err(HourError::Retry(format!(
                "{} changed while the hour was compacted; the new object was discarded",
                changed.key
            )));
        }
        self.settings.kill.reached("verified").await?;

        // 4. Commit.
        let mut supersedes = inputs;
        supersedes.extend(done.iter().map(|p| self.source(&p.meta)));
        if let Some(meta) = manifests.get(&generation) {
            supersedes.push(self.source(meta));
        }
        let manifest = Manifest {
            generation: next,
            object: hour.compacted_key(next),
            object_size,
            lines: total.lines,
            bytes: total.bytes,
            parts: parts_held + added.len() as u64,
            supersedes,
            compacted_at_ms: crate::time::now_ms(),
        };
        let body = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        self.objects
            .put(self.bucket(), &self.abs(&hour.manifest_key(next)), body)
            .await?;
        self.settings.kill.reached("committed").await?;

        // 5. Delete what it supersedes.
        let gone: Vec<String> = manifest.supersedes.iter().map(|s| self.abs(&s.key)).collect();
        self.objects.delete(self.bucket(), &gone).await?;
        report.hours_compacted += 1;
        report.parts_compacted += added.len() as u64;
        report.part_bytes += added.iter().sum::<u64>();
        let (old_lines, old_bytes) = committed.as_ref().map_or((0, 0), |m| (m.lines, m.bytes));
        report.lines += total.lines - old_lines;
        report.plain_bytes += total.bytes - old_bytes;
        report.compacted_bytes += object_size;
        Ok(())
    }

    fn source(&self, meta: &ObjectMeta) -> Source {
        let root = self.abs("");
        Source {
            key: meta.key.strip_prefix(&root).unwrap_or(&meta.key).to_owned(),
            etag: meta.etag.clone(),
        }
    }

    async fn manifest(&self, generation: u32, meta: &ObjectMeta) -> Result<Manifest, HourError> {
        let body = self
            .objects
            .get(self.bucket(), &meta.key)
            .await?
            .ok_or_else(|| HourError::Retry(format!("{} vanished while it was read", meta.key)))?;
        match serde_json::from_slice::<Manifest>(&body) {
            Ok(m) if m.generation == generation => Ok(m),
            Ok(m) => Err(HourError::Retry(format!(
                "{} says it is generation {}, not {generation}; the hour is left as it is",
                meta.key, m.generation
            ))),
            Err(e) => Err(HourError::Retry(format!(
                "{} is not a manifest ({e}); the hour is left as it is",
                meta.key
            ))),
        }
    }

    /// Key → ETag of everything under a prefix.
    async fn listing(&self, prefix: &str) -> Result<HashMap<String, String>, CloudError> {
        let mut out = HashMap::new();
        let mut next = None;
        loop {
            let page = self.objects.list_page(self.bucket(), prefix, next).await?;
            out.extend(page.objects.into_iter().map(|o| (o.key, o.etag)));
            match page.next {
                Some(token) => next = Some(token),
                None => return Ok(out),
            }
        }
    }

    /// Starts reading an input, if it is still the version that was listed.
    async fn open(&self, input: &ObjectMeta) -> Result<ObjectBody, PartError> {
        let body = self
            .objects
            .get_body(self.bucket(), &input.key)
            .await?
            .ok_or(PartError::Gone)?;
        if body.meta.etag != input.etag {
            return Err(PartError::Changed);
        }
        Ok(body)
    }

    /// Adds one input's lines to `out`, ending them with a newline. A gzip part
    /// is checked whole before any of it is written (`trusted` skips that for the
    /// DM's own compacted object).
    async fn append(
        &self,
        out: &mut GzUpload<'_, O>,
        input: &Input,
        trusted: bool,
    ) -> Result<Counts, PartError> {
        let mut counts = Counts::default();
        if !input.gzip {
            let mut body = self.open(&input.meta).await?;
            while let Some(chunk) = body.next_chunk().await? {
                counts.add(&chunk);
                out.write(&chunk).await?;
            }
        } else {
            let held = if trusted {
                None
            } else {
                self.check_gzip(&input.meta).await?
            };
            match held {
                Some(plain) => {
                    counts.add(&plain);
                    out.write(&plain).await?;
                }
                None => {
                    let body = self.open(&input.meta).await?;
                    self.decode_into(body, out, &mut counts).await?;
                }
            }
        }
        if counts.last.is_some_and(|b| b != b'\n') {
            counts.add(b"\n");
            out.write(b"\n").await?;
        }
        Ok(counts)
    }

    /// Reads a gzip part through: its plain text if it fits the spool limit, none
    /// if it is valid but larger; `Corrupt` if it is not gzip.
    async fn check_gzip(&self, meta: &ObjectMeta) -> Result<Option<Vec<u8>>, PartError> {
        let mut body = self.open(meta).await?;
        let mut decoder = MultiGzDecoder::new(Vec::new());
        let mut held = Vec::new();
        let mut fits = true;
        while let Some(chunk) = body.next_chunk().await? {
            decoder.write_all(&chunk).map_err(|e| corrupt(&e))?;
            let plain = std::mem::take(decoder.get_mut());
            if fits && held.len() + plain.len() <= self.settings.spool_limit {
                held.extend_from_slice(&plain);
            } else {
                fits = false;
                held = Vec::new();
            }
        }
        decoder.try_finish().map_err(|e| corrupt(&e))?;
        let rest = std::mem::take(decoder.get_mut());
        if fits && held.len() + rest.len() <= self.settings.spool_limit {
            held.extend_from_slice(&rest);
            return Ok(Some(held));
        }
        Ok(None)
    }

    async fn decode_into(
        &self,
        mut body: ObjectBody,
        out: &mut GzUpload<'_, O>,
        counts: &mut Counts,
    ) -> Result<(), PartError> {
        let mut decoder = MultiGzDecoder::new(Vec::new());
        while let Some(chunk) = body.next_chunk().await? {
            decoder.write_all(&chunk).map_err(|e| corrupt(&e))?;
            let plain = std::mem::take(decoder.get_mut());
            counts.add(&plain);
            out.write(&plain).await?;
        }
        decoder.try_finish().map_err(|e| corrupt(&e))?;
        let rest = std::mem::take(decoder.get_mut());
        counts.add(&rest);
        out.write(&rest).await?;
        Ok(())
    }

    /// Lines and bytes of a gzip object, read as a stream.
    async fn count_gzip(&self, key: &str) -> Result<Counts, HourError> {
        let mut body = self
            .objects
            .get_body(self.bucket(), key)
            .await?
            .ok_or_else(|| HourError::Retry(format!("{key} vanished before it was verified")))?;
        let mut decoder = MultiGzDecoder::new(Counts::default());
        while let Some(chunk) = body.next_chunk().await? {
            decoder
                .write_all(&chunk)
                .map_err(|e| HourError::Retry(format!("{key} does not read back as gzip: {e}")))?;
        }
        decoder
            .try_finish()
            .map_err(|e| HourError::Retry(format!("{key} does not read back as gzip: {e}")))?;
        Ok(*decoder.get_ref())
    }

    /// Moves a corrupt part under `quarantine/`, keeping its key.
    async fn quarantine(
        &self,
        meta: &ObjectMeta,
        why: &str,
        report: &mut RotationReport,
    ) -> Result<(), HourError> {
        let rel = self.source(meta).key;
        let to = self.abs(&format!("{QUARANTINE}{rel}"));
        self.objects.copy(self.bucket(), &meta.key, &to).await?;
        self.settings.kill.reached("quarantined").await?;
        self.objects
            .delete(self.bucket(), std::slice::from_ref(&meta.key))
            .await?;
        tracing::warn!(key = %meta.key, to = %to, "quarantined a corrupt log part: {why}");
        note(
            &mut report.quarantined,
            &mut report.quarantined_count,
            format!("{rel}: {why}; moved to {QUARANTINE}{rel}"),
        );
        Ok(())
    }
}

fn corrupt(e: &std::io::Error) -> PartError {
    PartError::Corrupt(format!("not valid gzip ({e})"))
}

fn part_failure(key: &str, e: PartError) -> HourError {
    match e {
        PartError::Cloud(e) => HourError::Cloud(e),
        PartError::Changed => HourError::Retry(format!("{key} changed while it was read")),
        PartError::Gone => HourError::Retry(format!("{key} vanished while it was read")),
        PartError::Corrupt(why) => HourError::Retry(format!("{key} is {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_bytes_and_the_last_byte() {
        let mut c = Counts::default();
        c.add(b"a\nb");
        c.add(b"");
        c.add(b"c\n");
        assert_eq!(
            c,
            Counts {
                lines: 2,
                bytes: 5,
                last: Some(b'\n')
            }
        );
    }

    #[test]
    fn a_truncated_gzip_stream_does_not_finish() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&b"line\n".repeat(1000)).unwrap();
        let whole = enc.finish().unwrap();
        let mut dec = MultiGzDecoder::new(Vec::new());
        dec.write_all(&whole[..whole.len() / 2]).unwrap();
        assert!(dec.try_finish().is_err());
        let mut dec = MultiGzDecoder::new(Vec::new());
        assert!(dec.write_all(b"plain text, not gzip\n").is_err() || dec.try_finish().is_err());
    }

    #[test]
    fn the_summary_names_what_needs_attention() {
        let report = RotationReport {
            hours_compacted: 2,
            parts_compacted: 24,
            quarantined_count: 1,
            retry_count: 1,
            ..Default::default()
        };
        let s = report.summary();
        assert!(s.starts_with("compacted 2 hour(s) from 24 part(s)"), "{s}");
        assert!(s.contains("1 corrupt part(s) quarantined"), "{s}");
        assert!(s.contains("1 hour(s) left for the next run"), "{s}");
        assert!(!s.contains("outside"), "{s}");
    }
}
