//! The logs of a simulated node, and the log clock of `dm-local`.
//!
//! Each service of a simulated node "writes" a plausible log line every few
//! seconds of log time ([`LogSettings::line_every_log_ms`]), stamped on the
//! [`LogClock`] and numbered per service:
//!
//! ```text
//! 2026-11-25 16:00:01.123 INFO planner [seq 42] Planned scan of sales.orders: 12 tasks in 41 ms
//! ```
//!
//! Lines wait in memory until they are uploaded, as a real agent's files wait on
//! its disk. The agent uploads them every [`LogSettings::upload_every`] (by
//! default a twelfth of a log hour: every 5 minutes, or every 5 s with
//! `--hour-seconds 60`), and on `POST /v1/logs/flush` (the final flush of a
//! leaving node). Each upload puts, per service, one part per log-clock hour
//! its pending lines belong to, at
//! `logs/<cluster>/<instance>/<service>/<yyyy>/<mm>/<dd>/<hh>/<first line's log ms>.log`;
//! so at an hour boundary the previous hour's lines go to the previous hour's
//! folder.
//!
//! **No line is uploaded twice or lost.** One lock ([`LogBook`]) serialises the
//! periodic upload and the flush; a line leaves the pending queue only once the
//! part that holds it is stored. A part that fails stays pending and goes up
//! again with the next upload, under the same key (it is named by its first
//! line), so a put that reached S3 but reported an error is overwritten, not
//! repeated. Pending lines are bounded ([`LogSettings::max_pending`] per
//! service); beyond that the oldest are dropped, with a warning.
//!
//! A node made `unreachable` (`dm-local sim fail-node`) is a dead node: it
//! writes and uploads nothing until it is restored. A `slow` node uploads as
//! usual (only its answers are slow).
//!
//! The log clock itself is kept in `<data-dir>/log-clock.json` ([`open_clock`]).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rand::Rng;
use serde::Serialize;
use shared::cloud::ObjectStore;
use shared::config::S3Location;
use shared::domain::health::{ServiceHealth, ServiceState, SERVICES};
use shared::domain::logs::{LogClock, LogHour, HOUR_MS};
use shared::time::{format_ms, now_ms};

/// The file, under the data directory, that holds the log clock.
pub const CLOCK_FILE: &str = "log-clock.json";

/// The shortest and longest `--hour-seconds`.
pub const HOUR_SECONDS: std::ops::RangeInclusive<u32> = 10..=3600;

/// Parses `--hour-seconds`.
pub fn parse_hour_seconds(raw: &str) -> Result<u32, String> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|s| HOUR_SECONDS.contains(s))
        .ok_or_else(|| {
            format!(
                "must be a whole number of seconds from {} to {} (3600 is a real hour), got {raw:?}",
                HOUR_SECONDS.start(),
                HOUR_SECONDS.end()
            )
        })
}

/// The log clock of a `dm-local up` over `data_dir`, continued from the one the
/// last run left in [`CLOCK_FILE`], so that log time never runs backwards:
///
/// - `--hour-seconds N`: hours last N seconds, from where the last clock is now;
/// - no flag, and no file (or a file with real hours that never ran ahead): the
///   wall clock;
/// - no flag after a shortened run: real-length hours, carrying on from where
///   the shortened clock is now, which is ahead of the wall clock. Going back to
///   the wall clock would make log time run backwards (new lines would land in
///   hours already rotated); delete the file, with the bucket's logs, to start
///   over on the wall clock.
///
/// The clock in use is written back to the file.
pub fn open_clock(data_dir: &Path, hour_seconds: Option<u32>, real_now_ms: i64) -> Result<LogClock> {
    let path = data_dir.join(CLOCK_FILE);
    let previous = match std::fs::read_to_string(&path) {
        Ok(raw) => {
            let clock: LogClock = serde_json::from_str(&raw).with_context(|| {
                format!(
                    "{} is not a log clock; remove it to start again on the wall clock",
                    path.display()
                )
            })?;
            if clock.hour_ms <= 0 {
                bail!(
                    "{} has an hour of {} ms; remove it to start again on the wall clock",
                    path.display(),
                    clock.hour_ms
                );
            }
            Some(clock)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let clock = next_clock(previous, hour_seconds, real_now_ms);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&clock)?)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(clock)
}

/// The clock a run uses, given the last run's (see [`open_clock`]). Pure.
pub fn next_clock(previous: Option<LogClock>, hour_seconds: Option<u32>, real_now_ms: i64) -> LogClock {
    match (previous, hour_seconds) {
        (None, None) => LogClock::WALL,
        (None, Some(n)) => LogClock::shortened(n, LogClock::WALL, real_now_ms),
        (Some(p), Some(n)) => LogClock::shortened(n, p, real_now_ms),
        // The wall clock, or a clock that has fallen behind it: the wall clock.
        (Some(p), None) if p.at(real_now_ms) <= real_now_ms => LogClock::WALL,
        // Ahead of the wall clock: carry on at real speed.
        (Some(p), None) => LogClock::shortened(3600, p, real_now_ms),
    }
}

/// The default period of periodic uploads: a twelfth of a log hour (5 log
/// minutes).
pub fn default_upload_every(clock: &LogClock) -> Duration {
    Duration::from_millis(clock.real_duration_ms(HOUR_MS / 12).max(1) as u64)
}

/// How simulated agents write and upload their logs.
#[derive(Debug, Clone, Copy)]
pub struct LogSettings {
    pub clock: LogClock,
    /// Wall-clock time between two periodic uploads.
    pub upload_every: Duration,
    /// Log-clock milliseconds between two lines of one service, on average.
    pub line_every_log_ms: i64,
    /// The most lines one service keeps waiting for upload; the oldest go first.
    pub max_pending: usize,
}

impl LogSettings {
    /// A line every 10 log seconds per service (30 per part), uploads every 5
    /// log minutes, and at most 2,000 pending lines per service (about 5.5 log
    /// hours of failed uploads).
    pub fn new(clock: LogClock) -> LogSettings {
        LogSettings {
            clock,
            upload_every: default_upload_every(&clock),
            line_every_log_ms: 10_000,
            max_pending: 2_000,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings::new(LogClock::WALL)
    }
}

/// Where parts go. The staging bucket in `dm-local` ([`Staged`]); a map in tests.
pub trait PartSink: Send + Sync {
    /// Stores a part under `key` (relative to the staging prefix), replacing
    /// whatever is there.
    fn put_part(&self, key: &str, body: Vec<u8>) -> impl Future<Output = Result<(), String>> + Send;
}

/// The staging bucket, through an object store.
pub struct Staged<O> {
    pub objects: Arc<O>,
    pub staging: S3Location,
}

impl<O: ObjectStore> PartSink for Staged<O> {
    async fn put_part(&self, key: &str, body: Vec<u8>) -> Result<(), String> {
        let key = self.staging.key(key);
        self.objects
            .put(&self.staging.bucket, &key, body)
            .await
            .map_err(|e| format!("uploading {key}: {e}"))
    }
}

/// One line a service wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub log_ms: i64,
    pub seq: u64,
    pub text: String,
}

/// What one upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadReport {
    /// Parts stored.
    pub uploaded: usize,
    /// Lines in them.
    pub lines: usize,
    /// Why parts failed; their lines stay pending.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

struct ServiceLog {
    name: &'static str,
    next_seq: u64,
    next_line_ms: i64,
    pending: VecDeque<Line>,
    /// The part that failed last: its first line's sequence number and its
    /// line count. Its retry sends the same lines, so that if the failed put
    /// did reach S3, the retry rewrites the same bytes (same ETag) and rotation
    /// never sees one key with two contents.
    failed: Option<(u64, usize)>,
}

/// Counters of a node's logs, for tests.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Lines written, per service, in [`SERVICES`] order.
    pub written: Vec<u64>,
    /// Lines waiting for upload, per service.
    pub pending: Vec<usize>,
    /// Lines dropped because too many were pending.
    pub dropped: u64,
}

struct Book {
    services: Vec<ServiceLog>,
    dropped: u64,
}

/// A node's log lines, written and not yet uploaded. Its lock serialises
/// uploads: the periodic one and the flush never overlap.
pub struct LogBook {
    cluster_id: i64,
    instance_id: String,
    line_every_log_ms: i64,
    max_pending: usize,
    book: tokio::sync::Mutex<Book>,
}

impl LogBook {
    /// A node whose services start writing at `start_log_ms`.
    pub fn new(cluster_id: i64, instance_id: &str, settings: &LogSettings, start_log_ms: i64) -> LogBook {
        LogBook {
            cluster_id,
            instance_id: instance_id.to_owned(),
            line_every_log_ms: settings.line_every_log_ms.max(1),
            max_pending: settings.max_pending.max(1),
            book: tokio::sync::Mutex::new(Book {
                services: SERVICES
                    .iter()
                    .map(|name| ServiceLog {
                        name,
                        next_seq: 1,
                        next_line_ms: start_log_ms,
                        pending: VecDeque::new(),
                        failed: None,
                    })
                    .collect(),
                dropped: 0,
            }),
        }
    }

    /// Writes the lines the services wrote up to `now_log_ms`, their messages
    /// following `health` (what the agent reports now).
    #[cfg(test)]
    pub async fn write_until(&self, now_log_ms: i64, health: &[ServiceHealth]) {
        let mut book = self.book.lock().await;
        self.write(&mut book, now_log_ms, health);
    }

    /// A dead node writes nothing: its services' next lines come after `now_log_ms`.
    pub async fn skip_until(&self, now_log_ms: i64) {
        let mut book = self.book.lock().await;
        for s in &mut book.services {
            s.next_line_ms = s.next_line_ms.max(now_log_ms + 1);
        }
    }

    fn write(&self, book: &mut Book, now_log_ms: i64, health: &[ServiceHealth]) {
        let mut rng = rand::rng();
        let mut dropped = 0;
        // After a long pause, only the last `max_pending` lines could be kept:
        // write no more than the last span that holds them (jitter included).
        let span = self
            .line_every_log_ms
            .saturating_mul(self.max_pending as i64 + 1)
            .saturating_mul(3)
            / 2;
        for s in &mut book.services {
            if now_log_ms - s.next_line_ms > span {
                let skipped = (now_log_ms - span - s.next_line_ms) / self.line_every_log_ms;
                s.next_seq += skipped as u64;
                dropped += skipped as u64;
                s.next_line_ms += skipped * self.line_every_log_ms;
            }
            let state = health.iter().find(|h| h.name == s.name);
            while s.next_line_ms <= now_log_ms {
                let (level, message) = message(s.name, state, &mut rng);
                let text = format!(
                    "{} {level} {} [seq {}] {message}",
                    format_ms(s.next_line_ms),
                    s.name,
                    s.next_seq
                );
                s.pending.push_back(Line {
                    log_ms: s.next_line_ms,
                    seq: s.next_seq,
                    text,
                });
                s.next_seq += 1;
                // Jitter of ±30 %, never less than a millisecond.
                let jitter = self.line_every_log_ms * 3 / 10;
                s.next_line_ms += (self.line_every_log_ms + rng.random_range(-jitter..=jitter)).max(1);
                if s.pending.len() > self.max_pending {
                    s.pending.pop_front();
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            book.dropped += dropped;
            tracing::warn!(
                instance = %self.instance_id,
                dropped,
                max_pending = self.max_pending,
                "simulated agent: too many log lines waiting for upload; dropped the oldest"
            );
        }
    }

    /// Writes up to `now_log_ms`, then uploads every pending line: per service,
    /// one part per hour. A part that fails keeps its lines (and the lines after
    /// them) pending for the next upload.
    pub async fn upload(
        &self,
        sink: &impl PartSink,
        now_log_ms: i64,
        health: &[ServiceHealth],
    ) -> UploadReport {
        let mut book = self.book.lock().await;
        self.write(&mut book, now_log_ms, health);
        let mut report = UploadReport::default();
        for s in &mut book.services {
            while let Some(first) = s.pending.front() {
                let hour = LogHour::containing(self.cluster_id, &self.instance_id, s.name, first.log_ms);
                let key = hour.part_key(first.log_ms);
                let end = hour.start_ms + HOUR_MS;
                let in_hour = s.pending.iter().take_while(|l| l.log_ms < end).count();
                let n = match s.failed {
                    Some((seq, n)) if seq == first.seq => n.min(in_hour),
                    _ => in_hour,
                };
                let mut body = String::new();
                for line in s.pending.iter().take(n) {
                    let _ = writeln!(body, "{}", line.text);
                }
                match sink.put_part(&key, body.into_bytes()).await {
                    Ok(()) => {
                        s.failed = None;
                        s.pending.drain(..n);
                        report.uploaded += 1;
                        report.lines += n;
                    }
                    Err(e) => {
                        s.failed = s.pending.front().map(|l| (l.seq, n));
                        report.errors.push(e);
                        break;
                    }
                }
            }
        }
        report
    }

    #[cfg(test)]
    pub async fn stats(&self) -> LogStats {
        let book = self.book.lock().await;
        LogStats {
            written: book.services.iter().map(|s| s.next_seq - 1).collect(),
            pending: book.services.iter().map(|s| s.pending.len()).collect(),
            dropped: book.dropped,
        }
    }
}

/// A plausible line of `service` in the state `health` reports.
fn message(service: &str, health: Option<&ServiceHealth>, rng: &mut impl Rng) -> (&'static str, String) {
    match health.map(|h| h.state) {
        Some(ServiceState::Failed) => {
            let why = health.map(|h| h.message.as_str()).unwrap_or_default();
            return ("ERROR", format!("{why}; restarting in 10 s"));
        }
        Some(ServiceState::Starting) => return ("INFO", format!("{service} starting")),
        Some(ServiceState::Unknown) => {
            let why = health.map(|h| h.message.as_str()).unwrap_or_default();
            let why = why.strip_prefix("Not checked: ").unwrap_or(why);
            return ("WARN", format!("waiting for dependencies: {why}"));
        }
        _ => {}
    }
    let ms = rng.random_range(2..400);
    let tables = ["sales.orders", "sales.customers", "hr.employees", "web.clicks"];
    let table = tables[rng.random_range(0..tables.len())];
    if rng.random_range(0..25) == 0 {
        return (
            "WARN",
            format!("JVM pause of {} ms (G1 Young Generation)", ms + 200),
        );
    }
    let text = match service {
        "canary" => format!("canary check passed in {ms} ms"),
        "zookeeper" => format!(
            "Processed session heartbeat for 0x{:012x}",
            rng.random_range(0..1u64 << 48)
        ),
        "catalog" => format!("get_table({table}) served in {ms} ms"),
        "planner" => format!(
            "Planned scan of {table}: {} tasks in {ms} ms",
            rng.random_range(1..64)
        ),
        "worker" => format!(
            "Task {:08x} finished: {} rows in {ms} ms",
            rng.random::<u32>(),
            rng.random_range(1..2_000_000)
        ),
        "rest-server" => format!("GET /api/scan/{table} 200 ({ms} ms)"),
        "webui" => format!("GET /ui/datasets/{table} 200 ({ms} ms)"),
        other => format!("{other} heartbeat"),
    };
    ("INFO", text)
}

/// The sequence number of a line this module wrote.
#[cfg(test)]
pub fn seq_of(line: &str) -> Option<u64> {
    let rest = &line[line.find("[seq ")? + 5..];
    rest[..rest.find(']')?].parse().ok()
}

/// Wall-clock now on the log clock.
pub fn log_now(clock: &LogClock) -> i64 {
    clock.at(now_ms())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use shared::domain::logs::{parse_log_key, LogKey};

    use super::*;

    const HOUR: i64 = 1_764_086_400_000; // 2025-11-25 16:00 UTC

    /// Parts in memory. Every `fail_every`-th put fails; with `lost_answers`,
    /// a failing put still stores the part (the answer was lost on the way back).
    #[derive(Default)]
    struct Sink {
        parts: Mutex<BTreeMap<String, String>>,
        puts: AtomicUsize,
        fail_every: usize,
        lost_answers: bool,
        /// Keys stored again with other bytes: rotation would see them change.
        rewritten: Mutex<Vec<String>>,
    }

    impl PartSink for Sink {
        async fn put_part(&self, key: &str, body: Vec<u8>) -> Result<(), String> {
            let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::task::yield_now().await;
            let fail = self.fail_every > 0 && n.is_multiple_of(self.fail_every);
            if !fail || self.lost_answers {
                let body = String::from_utf8(body).unwrap();
                let before = self.parts.lock().unwrap().insert(key.to_owned(), body.clone());
                if before.is_some_and(|b| b != body) {
                    self.rewritten.lock().unwrap().push(key.to_owned());
                }
            }
            if fail {
                Err(format!("put {n} of {key}: injected failure"))
            } else {
                Ok(())
            }
        }
    }

    impl Sink {
        /// Every stored line by service: (key, seq) pairs, checked against the layout.
        fn lines(&self) -> BTreeMap<String, Vec<u64>> {
            let mut by_service: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for (key, body) in self.parts.lock().unwrap().iter() {
                let Ok(LogKey::Part { hour, gzip: false }) = parse_log_key(key) else {
                    panic!("{key} is not a plain part");
                };
                for line in body.lines() {
                    let stamp = &line[..23];
                    assert_eq!(
                        &format_ms(hour.start_ms)[..13],
                        &stamp[..13],
                        "{line} is in the folder of its hour ({key})"
                    );
                    by_service
                        .entry(hour.service.clone())
                        .or_default()
                        .push(seq_of(line).unwrap());
                }
            }
            by_service
        }
    }

    fn running() -> Vec<ServiceHealth> {
        crate::sim::agent::services(SERVICES.len(), None)
    }

    fn settings() -> LogSettings {
        LogSettings {
            line_every_log_ms: 10_000,
            ..LogSettings::default()
        }
    }

    /// Every service holds exactly the lines 1..=written[i], once each.
    async fn assert_all_once(book: &LogBook, sink: &Sink) {
        let stats = book.stats().await;
        let lines = sink.lines();
        for (i, service) in SERVICES.iter().enumerate() {
            let mut seqs = lines.get(*service).cloned().unwrap_or_default();
            seqs.sort_unstable();
            let expected: Vec<u64> = (1..=stats.written[i]).collect();
            assert_eq!(seqs, expected, "{service}: every line once, none lost");
        }
    }

    #[test]
    fn hour_seconds_are_checked_with_a_clear_error() {
        assert_eq!(parse_hour_seconds("60"), Ok(60));
        assert_eq!(parse_hour_seconds("3600"), Ok(3600));
        let err = parse_hour_seconds("5").unwrap_err();
        assert_eq!(
            err,
            "must be a whole number of seconds from 10 to 3600 (3600 is a real hour), got \"5\""
        );
        assert!(parse_hour_seconds("3601").is_err());
        assert!(parse_hour_seconds("1.5").is_err());
    }

    #[test]
    fn the_clock_continues_and_never_runs_backwards() {
        let t0 = HOUR;
        assert_eq!(next_clock(None, None, t0), LogClock::WALL);
        let fast = next_clock(None, Some(60), t0);
        assert_eq!(fast.at(t0 + 60_000), t0 + HOUR_MS);
        // Restarted 30 s later with another hour: it carries on from there.
        let t1 = t0 + 30_000;
        let slower = next_clock(Some(fast), Some(120), t1);
        assert_eq!(slower.at(t1), fast.at(t1));
        assert_eq!(slower.at(t1 + 120_000), fast.at(t1) + HOUR_MS);
        // Then without the flag: real hours, still ahead of the wall clock.
        let t2 = t1 + 60_000;
        let real = next_clock(Some(slower), None, t2);
        assert_eq!(real.at(t2), slower.at(t2));
        assert_eq!(real.at(t2 + 1000), slower.at(t2) + 1000);
        assert!(real.at(t2) > t2);
        // And again without it: unchanged speed, no jump.
        let t3 = t2 + 5_000;
        assert_eq!(next_clock(Some(real), None, t3).at(t3), real.at(t3));
        // A clock that never ran ahead comes back to the wall clock.
        assert_eq!(next_clock(Some(LogClock::WALL), None, t3), LogClock::WALL);
    }

    #[test]
    fn the_clock_is_kept_in_the_data_dir() {
        let dir = std::env::temp_dir().join(format!("dm-local-clock-{}-{}", std::process::id(), now_ms()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = open_clock(&dir, Some(60), HOUR).unwrap();
        let saved: LogClock =
            serde_json::from_str(&std::fs::read_to_string(dir.join(CLOCK_FILE)).unwrap()).unwrap();
        assert_eq!(saved, first);
        let second = open_clock(&dir, Some(30), HOUR + 10_000).unwrap();
        assert_eq!(second.at(HOUR + 10_000), first.at(HOUR + 10_000));
        let third = open_clock(&dir, None, HOUR + 20_000).unwrap();
        assert_eq!(third.at(HOUR + 20_000), second.at(HOUR + 20_000));
        std::fs::write(dir.join(CLOCK_FILE), "{").unwrap();
        let err = format!("{:#}", open_clock(&dir, None, HOUR).unwrap_err());
        assert!(err.contains("is not a log clock; remove it"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uploads_come_every_twelfth_of_a_log_hour() {
        assert_eq!(default_upload_every(&LogClock::WALL), Duration::from_secs(300));
        let fast = LogClock::shortened(60, LogClock::WALL, HOUR);
        assert_eq!(default_upload_every(&fast), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn lines_look_like_service_logs_on_the_log_clock() {
        let book = LogBook::new(3, "i-0abc", &settings(), HOUR);
        book.write_until(HOUR + 60_000, &running()).await;
        let sink = Sink::default();
        let report = book.upload(&sink, HOUR + 60_000, &running()).await;
        assert_eq!(report.uploaded, SERVICES.len());
        assert!(report.errors.is_empty());
        let parts = sink.parts.lock().unwrap().clone();
        let planner = &parts[&format!("logs/3/i-0abc/planner/2025/11/25/16/{HOUR}.log")];
        let first = planner.lines().next().unwrap();
        assert!(
            first.starts_with("2025-11-25 16:00:00.000 INFO planner [seq 1] ")
                || first.starts_with("2025-11-25 16:00:00.000 WARN planner [seq 1] "),
            "{first}"
        );
        // About one line per 10 log seconds.
        let n = planner.lines().count();
        assert!((5..=10).contains(&n), "{n} lines in a log minute");

        // The planner fails: its lines are errors, and the services after it wait.
        let health =
            crate::sim::agent::services(SERVICES.len(), Some(&crate::sim::agent::FailedService::killed(3)));
        book.write_until(HOUR + 120_000, &health).await;
        let sink = Sink::default();
        book.upload(&sink, HOUR + 120_000, &health).await;
        let parts = sink.parts.lock().unwrap().clone();
        let body = parts
            .iter()
            .find(|(k, _)| k.contains("/planner/"))
            .map(|(_, b)| b.clone())
            .unwrap();
        assert!(
            body.lines().all(|l| l.contains(" ERROR planner ")
                && l.ends_with("planner exited with status 137; restarting in 10 s")),
            "{body}"
        );
        let worker = parts.iter().find(|(k, _)| k.contains("/worker/")).unwrap().1;
        assert!(worker.contains("WARN worker"), "{worker}");
        assert!(
            worker.contains("waiting for dependencies: planner is not running."),
            "{worker}"
        );
    }

    #[tokio::test]
    async fn lines_of_the_previous_hour_go_to_its_folder() {
        let book = LogBook::new(3, "i-0abc", &settings(), HOUR - 125_000);
        let sink = Sink::default();
        let report = book.upload(&sink, HOUR + 95_000, &running()).await;
        assert_eq!(report.uploaded, 2 * SERVICES.len(), "{report:?}");
        let keys: BTreeSet<String> = sink.parts.lock().unwrap().keys().cloned().collect();
        let planner: Vec<&String> = keys.iter().filter(|k| k.contains("/planner/")).collect();
        assert_eq!(planner.len(), 2, "{planner:?}");
        assert!(
            planner[0].starts_with("logs/3/i-0abc/planner/2025/11/25/15/"),
            "{planner:?}"
        );
        assert!(
            planner[1].starts_with("logs/3/i-0abc/planner/2025/11/25/16/"),
            "{planner:?}"
        );
        assert_all_once(&book, &sink).await;
        assert_eq!(book.stats().await.pending, vec![0; SERVICES.len()]);
    }

    #[tokio::test]
    async fn a_failed_part_stays_pending_and_goes_up_with_the_next_upload() {
        // Every second put fails; with lost answers, the failed puts reached the
        // store anyway.
        for lost_answers in [false, true] {
            let book = LogBook::new(3, "i-0abc", &settings(), HOUR);
            let sink = Sink {
                fail_every: 2,
                lost_answers,
                ..Sink::default()
            };
            let mut failures = 0;
            for step in 1..=20 {
                let report = book.upload(&sink, HOUR + step * 47_000, &running()).await;
                failures += report.errors.len();
            }
            assert!(failures > 0);
            assert!(
                sink.rewritten.lock().unwrap().is_empty(),
                "a retry sends the failed part's bytes again: {:?}",
                sink.rewritten.lock().unwrap()
            );
            // Then the store recovers.
            let healthy = Sink::default();
            for (k, v) in sink.parts.lock().unwrap().iter() {
                healthy.parts.lock().unwrap().insert(k.clone(), v.clone());
            }
            let report = book.upload(&healthy, HOUR + 21 * 47_000, &running()).await;
            assert!(report.errors.is_empty(), "{report:?}");
            assert_eq!(book.stats().await.pending, vec![0; SERVICES.len()]);
            assert_all_once(&book, &healthy).await;
        }
    }

    #[tokio::test]
    async fn pending_lines_are_bounded_and_the_oldest_go_first() {
        let s = LogSettings {
            max_pending: 50,
            ..settings()
        };
        let book = LogBook::new(3, "i-0abc", &s, HOUR);
        book.write_until(HOUR + 1_000_000, &running()).await;
        let stats = book.stats().await;
        assert_eq!(stats.pending, vec![50; SERVICES.len()]);
        assert!(stats.dropped > 0);
        // After a long pause too, without writing every line first.
        book.write_until(HOUR + 100 * HOUR_MS, &running()).await;
        let stats = book.stats().await;
        assert_eq!(stats.pending, vec![50; SERVICES.len()]);
        let sink = Sink::default();
        book.upload(&sink, HOUR + 100 * HOUR_MS, &running()).await;
        let lines = sink.lines();
        let planner = &lines["planner"];
        assert_eq!(planner.len(), 50);
        assert_eq!(
            *planner.last().unwrap(),
            book.stats().await.written[3],
            "the newest are kept"
        );
    }

    #[tokio::test]
    async fn a_dead_node_writes_nothing() {
        let book = LogBook::new(3, "i-0abc", &settings(), HOUR);
        book.write_until(HOUR + 30_000, &running()).await;
        let before = book.stats().await.written;
        book.skip_until(HOUR + HOUR_MS).await;
        book.write_until(HOUR + HOUR_MS, &running()).await;
        assert_eq!(book.stats().await.written, before);
        book.write_until(HOUR + HOUR_MS + 30_000, &running()).await;
        assert!(book.stats().await.written[0] > before[0]);
    }

    /// Periodic uploads and flushes race, over a store that fails often and
    /// sometimes stores a part whose answer is lost: in the end every line is
    /// stored exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_uploads_and_flushes_lose_and_repeat_nothing() {
        let clock = LogClock::shortened(10, LogClock::WALL, now_ms());
        let s = LogSettings {
            line_every_log_ms: 2_000,
            ..LogSettings::new(clock)
        };
        let book = Arc::new(LogBook::new(3, "i-0abc", &s, clock.at(now_ms())));
        let sink = Arc::new(Sink {
            fail_every: 3,
            lost_answers: true,
            ..Sink::default()
        });
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (book, sink) = (book.clone(), sink.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..40 {
                    book.upload(sink.as_ref(), log_now(&clock), &running()).await;
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // The final flush, until it succeeds.
        let healthy = Sink::default();
        *healthy.parts.lock().unwrap() = sink.parts.lock().unwrap().clone();
        let report = book.upload(&healthy, log_now(&clock), &running()).await;
        assert!(report.errors.is_empty());
        let stats = book.stats().await;
        assert!(stats.written.iter().all(|w| *w > 20), "{stats:?}");
        assert_eq!(stats.dropped, 0);
        assert_all_once(&book, &healthy).await;
    }
}
