//! Benchmark of log rotation (`shared::workflows::rotation::LogRotation`) in the
//! emulator, beside a naive compaction that holds each hour in memory.
//!
//! ```text
//! DM_EMULATOR_PYTHON=target/emulator-venv/bin/python \
//! cargo run -p log-rotation --example rotation_bench -- \
//!     [--sizes 2000,5000,10000] [--part-kb 20] [--hours 2] [--gzip-every 4] \
//!     [--runs 3] [--concurrency 16] [--timeout-s 7200]
//! ```
//!
//! It starts its own emulator (`DM_EMULATOR_PYTHON`, else the venv in
//! `target/emulator-venv`) on loopback. For every size, every run and both
//! variants it makes a fresh account and bucket (`s3://bench-<account>/dm`)
//! and uploads the same input there, `--concurrency` PUTs at a time:
//!
//! - `--sizes` parts (default 2,000, 5,000 and 10,000), each about `--part-kb`
//!   KiB (default 20) of log lines in the agents' format
//!   (`2025-11-25 16:00:01.123 INFO planner [seq 42] Planned scan of …`),
//!   generated from a fixed seed, so every run of a size gets the same bytes;
//! - every `--gzip-every`th part of an hour (default 4th) is gzip
//!   (`<ms>.log.gz`), the others plain (`<ms>.log`);
//! - spread round-robin over `--hours` closed (cluster, instance, service,
//!   hour) groups (default 2, in November 2025). The number of groups is fixed,
//!   so an hour grows with the input: 10,000 parts make hours of 5,000 parts,
//!   about 103 MB of plain text each, which compact into about 16 MB of gzip,
//!   more than one 8 MiB multipart part.
//!
//! Then it runs one variant **in a child process** (this example again, with a
//! hidden `__child` subcommand), so that the child's peak RSS is the
//! compaction's alone:
//!
//! - `rotation`: `LogRotation::new(&objects, &staging, settings).run()` with
//!   `RotationSettings::default()`, except the time budget, which is the
//!   benchmark's remaining time (the default 600 s would stop a slow run in
//!   moto early and leave hours for a next run);
//! - `naive`: for each hour, GET every part into memory (gunzip the gzip ones),
//!   gzip the whole hour in memory, one PutObject of the object and one of its
//!   manifest (the same keys and manifest as rotation's generation 1), then
//!   DeleteObjects of the parts. No read-back. This is what grows with the
//!   input.
//!
//! The child builds its runtime and S3 client, makes one warm-up request,
//! resets its peak RSS (`/proc/self/clear_refs`), says READY and waits. The
//! parent then reads the emulator's request counts of the account
//! (`/_dm/requests?account=…&service=s3`), tells the child to go, and reads the
//! counts again when the child has printed its result: its wall time (of the
//! compaction alone), its `VmRSS` when ready and its `VmHWM` at the end.
//!
//! The two variants take turns going first, run after run.
//!
//! After each run the parent checks the bucket: every hour holds exactly one
//! compacted object and its manifest, no part is left, nothing was
//! quarantined, no multipart upload is pending, and each compacted object read
//! back (streamed) holds exactly the lines, bytes and CRC-32 of the hour's parts
//! in key order; the manifests agree. A wrong result stops the benchmark
//! (exit 1). It prints every run, then per size the medians (min-max) of both
//! variants and their ratio, peak RSS against the input, and a verdict on
//! "peak RSS does not grow with the input" (exit 2 when it fails).
//!
//! Only loopback is contacted. Every child is killed when the `--timeout-s`
//! bound (default 7,200 s) runs out, and so is the emulator.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use flate2::write::{GzEncoder, MultiGzDecoder};
use flate2::{Compression, Crc};
use serde_json::{json, Value};
use shared::cloud::aws::{AwsSettings, S3Adapter};
use shared::cloud::{ObjectMeta, ObjectStore};
use shared::config::S3Location;
use shared::domain::health::SERVICES;
use shared::domain::logs::{parse_log_key, LogHour, LogKey, HOUR_MS, LOGS};
use shared::time::format_ms;
use shared::workflows::rotation::{LogRotation, Manifest, RotationSettings, Source, QUARANTINE};

const REGION: &str = "us-west-2";
/// 2025-11-25 16:00 UTC: the first hour of the input, long closed.
const FIRST_HOUR_MS: i64 = 1_764_086_400_000;
/// The largest factor by which rotation's peak RSS may grow from the smallest
/// to the largest input and still count as "does not grow with the input".
/// The design lets rotation hold one 8 MiB multipart part and the gzip stream's
/// state whatever the input; in the debug build that is about half the process's
/// floor (about 19 MiB), and the smallest default input fills less of it.
const RSS_FACTOR: f64 = 1.5;
const CHILD: &str = "__child";

// ---------------------------------------------------------------------------
// Command line

#[derive(Debug, Clone)]
struct Args {
    sizes: Vec<usize>,
    part_bytes: usize,
    hours: usize,
    gzip_every: usize,
    runs: usize,
    concurrency: usize,
    timeout: Duration,
}

const USAGE: &str = "usage: rotation_bench [--sizes N,N,...] [--part-kb K] [--hours H] [--gzip-every G] \
[--runs R] [--concurrency C] [--timeout-s S]";

fn parse_args(raw: &[String]) -> Result<Args> {
    let mut args = Args {
        sizes: vec![2000, 5000, 10_000],
        part_bytes: 20 << 10,
        hours: 2,
        gzip_every: 4,
        runs: 3,
        concurrency: 16,
        timeout: Duration::from_secs(7200),
    };
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        let number = |text: &str, min: usize, max: usize| -> Result<usize> {
            text.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| anyhow!("{flag} takes whole numbers from {min} to {max}, got {text:?}"))
        };
        match flag.as_str() {
            "--sizes" => {
                args.sizes = value
                    .split(',')
                    .map(|s| number(s, 1, 50_000))
                    .collect::<Result<_>>()?
            }
            "--part-kb" => args.part_bytes = number(value, 1, 1024)? << 10,
            "--hours" => args.hours = number(value, 1, 100)?,
            "--gzip-every" => args.gzip_every = number(value, 0, 1000)?,
            "--runs" => args.runs = number(value, 1, 20)?,
            "--concurrency" => args.concurrency = number(value, 1, 128)?,
            "--timeout-s" => args.timeout = Duration::from_secs(number(value, 1, 6 * 3600)? as u64),
            _ => bail!("unknown flag {flag:?}\n{USAGE}"),
        }
    }
    if let Some(&small) = args.sizes.iter().min() {
        ensure!(
            small >= args.hours,
            "every size must have at least one part per hour (--hours {})",
            args.hours
        );
    }
    // Part keys are `<hour start + 1 s + index>` ms: they stay within the hour.
    let largest_hour = args.sizes.iter().max().copied().unwrap_or(0).div_ceil(args.hours);
    ensure!((largest_hour as i64) < HOUR_MS - 1000, "too many parts per hour");
    Ok(args)
}

// ---------------------------------------------------------------------------
// Entry point

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some(CHILD) {
        return match child_main(&raw[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rotation_bench child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args(&raw) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(64);
        }
    };
    let emulator = match emulator::start_own("rotation-bench") {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot start the emulator: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let timeout = args.timeout;
    let deadline = Instant::now() + timeout;
    let outcome = rt.block_on(async {
        tokio::time::timeout(timeout, run(args, emulator.endpoint().to_owned(), deadline)).await
    });
    rt.shutdown_background();
    drop(emulator);
    match outcome {
        Err(_) => {
            eprintln!("the benchmark did not finish within {} s", timeout.as_secs());
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::from(2),
    }
}

// ---------------------------------------------------------------------------
// The input

/// Where the parts go and what each one holds.
struct Layout {
    parts: usize,
    part_bytes: usize,
    gzip_every: usize,
    hours: Vec<LogHour>,
}

/// What one part holds, as generated.
#[derive(Debug)]
struct PartStat {
    stored: u64,
    plain: u64,
    lines: u64,
    /// Of the plain text; combined in key order into the hour's.
    crc: Crc,
    gzip: bool,
}

/// What an hour must hold after compaction.
#[derive(Debug, Clone)]
struct HourExpect {
    hour: LogHour,
    parts: u64,
    lines: u64,
    bytes: u64,
    crc: u32,
}

#[derive(Debug, Clone)]
struct Input {
    parts: u64,
    gzip_parts: u64,
    stored: u64,
    plain: u64,
    lines: u64,
    hours: Vec<HourExpect>,
}

impl Layout {
    fn new(parts: usize, args: &Args) -> Layout {
        let hours = (0..args.hours)
            .map(|g| LogHour {
                cluster_id: 7 + (g / 14) as i64,
                instance_id: format!("i-0be4c0{:011x}", g % 2),
                service: SERVICES[(g / 2) % SERVICES.len()].to_owned(),
                start_ms: FIRST_HOUR_MS + ((g / 2) / SERVICES.len()) as i64 * HOUR_MS,
            })
            .collect();
        Layout {
            parts,
            part_bytes: args.part_bytes,
            gzip_every: args.gzip_every,
            hours,
        }
    }

    /// Parts of group `g`: part `i` belongs to group `i % groups`.
    fn per_hour(&self, g: usize) -> usize {
        let groups = self.hours.len();
        (self.parts + groups - 1 - g) / groups
    }

    /// Part `i`: its key (relative to the staging prefix), body and figures.
    fn part(&self, i: usize) -> (String, Vec<u8>, PartStat) {
        let groups = self.hours.len();
        let (g, j) = (i % groups, i / groups);
        let hour = &self.hours[g];
        let per_hour = self.per_hour(g);
        let (text, lines) = log_text(hour, g, j, per_hour, self.part_bytes);
        let mut crc = Crc::new();
        crc.update(&text);
        let gzip = self.gzip_every > 0 && j % self.gzip_every == self.gzip_every - 1;
        let mut key = hour.part_key(hour.start_ms + 1000 + j as i64);
        let plain = text.len() as u64;
        let body = if gzip {
            key.push_str(".gz");
            let mut enc = GzEncoder::new(Vec::new(), Compression::default());
            enc.write_all(&text).expect("writing to a Vec");
            enc.finish().expect("writing to a Vec")
        } else {
            text
        };
        let stat = PartStat {
            stored: body.len() as u64,
            plain,
            lines,
            crc,
            gzip,
        };
        (key, body, stat)
    }

    /// The totals, and each hour's parts in key order.
    fn expect(&self, stats: &[PartStat]) -> Input {
        let groups = self.hours.len();
        let mut hours = Vec::new();
        for (g, hour) in self.hours.iter().enumerate() {
            let mut crc = Crc::new();
            let (mut lines, mut bytes, mut parts) = (0, 0, 0);
            for j in 0..self.per_hour(g) {
                let s = &stats[j * groups + g];
                crc.combine(&s.crc);
                lines += s.lines;
                bytes += s.plain;
                parts += 1;
            }
            hours.push(HourExpect {
                hour: hour.clone(),
                parts,
                lines,
                bytes,
                crc: crc.sum(),
            });
        }
        Input {
            parts: stats.len() as u64,
            gzip_parts: stats.iter().filter(|s| s.gzip).count() as u64,
            stored: stats.iter().map(|s| s.stored).sum(),
            plain: stats.iter().map(|s| s.plain).sum(),
            lines: stats.iter().map(|s| s.lines).sum(),
            hours,
        }
    }
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

const DBS: [&str; 6] = ["sales", "marketing", "finance", "hr", "ops", "web"];
const TABLES: [&str; 8] = [
    "orders",
    "customers",
    "events",
    "clicks",
    "invoices",
    "payments",
    "sessions",
    "inventory",
];
const USERS: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
const ROLES: [&str; 4] = ["analyst", "admin", "etl", "viewer"];

/// About `target` bytes of log lines of part `j` of group `g`, as an agent
/// writes them: timestamps rising through the part's share of the hour.
fn log_text(hour: &LogHour, g: usize, j: usize, per_hour: usize, target: usize) -> (Vec<u8>, u64) {
    let mut rng = Rng(((g as u64) << 40) ^ (j as u64) ^ 0x5eed_0000_0000);
    let span = (HOUR_MS - 1000) / per_hour.max(1) as i64;
    let start = hour.start_ms + j as i64 * span;
    let service = hour.service.as_str();
    let mut text = String::with_capacity(target + 256);
    let mut lines = 0u64;
    let mut seq = (j as u64) * 200;
    while text.len() < target {
        let ts = start + (text.len() as i64 * span) / target as i64;
        let (db, table, user) = (rng.pick(&DBS), rng.pick(&TABLES), rng.pick(&USERS));
        let level = match rng.below(100) {
            0 => "ERROR",
            1..=5 => "WARN",
            6..=15 => "DEBUG",
            _ => "INFO",
        };
        let _ = write!(text, "{} {level} {service} [seq {seq}] ", format_ms(ts));
        let _ = match level {
            "ERROR" => write!(
                text,
                "Task {:016x}-{} failed: java.io.IOException: Connection reset by peer (worker 10.{}.{}.{}:13050)",
                rng.next(),
                rng.below(64),
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
            "WARN" => write!(
                text,
                "Retrying fetch of s3://okera-data-{db}/{table}/part-{:05}.parquet (attempt {} of 5): read timed out after {} ms",
                rng.below(4096),
                1 + rng.below(4),
                1000 + rng.below(9000)
            ),
            _ => match rng.below(8) {
                0 => write!(
                    text,
                    "Planned scan of {db}.{table}: {} tasks in {} ms",
                    1 + rng.below(64),
                    rng.below(500)
                ),
                1 => write!(
                    text,
                    "Query {:016x} by {user} finished in {} ms, {} rows returned",
                    rng.next(),
                    rng.below(30_000),
                    rng.below(1_000_000)
                ),
                2 => write!(
                    text,
                    "Heartbeat: {} tasks running, heap {}/8192 MiB, gc {} ms",
                    rng.below(32),
                    512 + rng.below(7000),
                    rng.below(200)
                ),
                3 => write!(
                    text,
                    "Authorized {user} for SELECT on {db}.{table} (role {})",
                    rng.pick(&ROLES)
                ),
                4 => write!(
                    text,
                    "GET /api/v2/datasets/{db}.{table}/schema from 10.{}.{}.{} -> 200 in {} ms",
                    rng.below(256),
                    rng.below(256),
                    rng.below(256),
                    rng.below(900)
                ),
                5 => write!(
                    text,
                    "Fetched s3://okera-data-{db}/{table}/part-{:05}.parquet: {} KiB in {} ms",
                    rng.below(4096),
                    rng.below(65_536),
                    rng.below(2000)
                ),
                6 => write!(
                    text,
                    "Cache {} for {db}.{table} partition dt=2025-11-{:02}",
                    if rng.below(4) == 0 { "miss" } else { "hit" },
                    1 + rng.below(30)
                ),
                _ => write!(
                    text,
                    "Session {:08x} closed by {user} after {} requests",
                    rng.next() as u32,
                    1 + rng.below(500)
                ),
            },
        };
        text.push('\n');
        lines += 1;
        seq += 1;
    }
    (text.into_bytes(), lines)
}

/// Uploads every part of `layout`, `concurrency` PUTs at a time.
async fn upload(
    objects: &Arc<S3Adapter>,
    staging: &S3Location,
    layout: &Arc<Layout>,
    concurrency: usize,
) -> Result<Input> {
    let next = Arc::new(AtomicUsize::new(0));
    let stats: Arc<Mutex<Vec<Option<PartStat>>>> =
        Arc::new(Mutex::new((0..layout.parts).map(|_| None).collect()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(layout.parts) {
        let (objects, layout, next, stats) = (objects.clone(), layout.clone(), next.clone(), stats.clone());
        let staging = staging.clone();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= layout.parts {
                    return Ok::<(), anyhow::Error>(());
                }
                let (key, body, stat) = layout.part(i);
                objects
                    .put(&staging.bucket, &staging.key(&key), body)
                    .await
                    .with_context(|| format!("uploading {key}"))?;
                stats.lock().expect("stats")[i] = Some(stat);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.context("an upload worker panicked")??;
    }
    let stats: Vec<PartStat> = std::mem::take(&mut *stats.lock().expect("stats"))
        .into_iter()
        .map(|s| s.ok_or_else(|| anyhow!("a part was not uploaded")))
        .collect::<Result<_>>()?;
    Ok(layout.expect(&stats))
}

// ---------------------------------------------------------------------------
// The child: one compaction, measured

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Rotation,
    Naive,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Rotation => "rotation",
            Variant::Naive => "naive",
        }
    }
}

/// `__child rotation|naive <endpoint> <account> <bucket> <prefix> <budget-s>`
fn child_main(raw: &[String]) -> Result<()> {
    let [variant, endpoint, account, bucket, prefix, budget] = raw else {
        bail!("expected: {CHILD} rotation|naive ENDPOINT ACCOUNT BUCKET PREFIX BUDGET_S");
    };
    let variant = match variant.as_str() {
        "rotation" => Variant::Rotation,
        "naive" => Variant::Naive,
        _ => bail!("unknown variant {variant:?}"),
    };
    ensure!(
        endpoint.starts_with("http://127.0.0.1:"),
        "the endpoint must be on loopback"
    );
    let budget = Duration::from_secs(budget.parse().context("budget")?);
    // The function's runtime: `#[tokio::main]`, a worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let objects = S3Adapter::new(
        AwsSettings {
            endpoint: Some(endpoint.clone()),
            credentials: Some((account.clone(), "test".into())),
            max_attempts: None,
        },
        REGION,
    );
    let staging = S3Location {
        bucket: bucket.clone(),
        prefix: prefix.clone(),
    };
    // Warm up the client (credentials, connection pool), outside the measure.
    rt.block_on(objects.list_page(bucket, &staging.key("bench-warm-up/"), None))
        .context("the warm-up request")?;
    let rss_ready = vm_kb("VmRSS");
    let hwm_setup = vm_kb("VmHWM");
    reset_peak_rss();
    let hwm_reset = vm_kb("VmHWM");
    println!(
        "READY {}",
        json!({"rssReadyKb": rss_ready, "hwmSetupKb": hwm_setup, "hwmAfterResetKb": hwm_reset})
    );
    std::io::stdout().flush()?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    ensure!(go.trim() == "GO", "the parent did not say GO");

    let started = Instant::now();
    let report = rt.block_on(async {
        match variant {
            Variant::Rotation => {
                let settings = RotationSettings {
                    budget,
                    ..RotationSettings::default()
                };
                let report = LogRotation::new(&objects, &staging, settings)
                    .run()
                    .await
                    .map_err(|e| anyhow!("rotation failed: {e}"))?;
                Ok::<Value, anyhow::Error>(serde_json::to_value(&report)?)
            }
            Variant::Naive => naive(&objects, &staging).await,
        }
    })?;
    let wall = started.elapsed();
    let hwm = vm_kb("VmHWM");
    println!(
        "RESULT {}",
        json!({
            "wallMs": wall.as_secs_f64() * 1000.0,
            "hwmKb": hwm,
            "rssEndKb": vm_kb("VmRSS"),
            "report": report,
        })
    );
    std::io::stdout().flush()?;
    rt.shutdown_background();
    Ok(())
}

/// The baseline: each hour read whole into memory, gzipped in memory, written
/// with one PutObject (and its manifest), then its parts deleted.
async fn naive(objects: &S3Adapter, staging: &S3Location) -> Result<Value> {
    let root = staging.key("");
    let mut hours: BTreeMap<LogHour, Vec<(ObjectMeta, bool)>> = BTreeMap::new();
    let mut next = None;
    loop {
        let page = objects
            .list_page(&staging.bucket, &staging.key(LOGS), next)
            .await?;
        for meta in page.objects {
            let rel = meta.key.strip_prefix(&root).unwrap_or(&meta.key);
            if let Ok(LogKey::Part { hour, gzip }) = parse_log_key(rel) {
                hours.entry(hour).or_default().push((meta, gzip));
            }
        }
        match page.next {
            Some(token) => next = Some(token),
            None => break,
        }
    }
    let (mut parts_done, mut part_bytes, mut lines, mut plain_bytes, mut compacted) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let hours_done = hours.len() as u64;
    for (hour, parts) in hours {
        let mut plain = Vec::new();
        for (meta, gzip) in &parts {
            let body = objects
                .get(&staging.bucket, &meta.key)
                .await?
                .ok_or_else(|| anyhow!("{} vanished", meta.key))?;
            part_bytes += body.len() as u64;
            if *gzip {
                let mut dec = MultiGzDecoder::new(Vec::new());
                dec.write_all(&body)?;
                plain.extend_from_slice(&dec.finish()?);
            } else {
                plain.extend_from_slice(&body);
            }
            if plain.last().is_some_and(|&b| b != b'\n') {
                plain.push(b'\n');
            }
        }
        let hour_lines = plain.iter().filter(|&&b| b == b'\n').count() as u64;
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&plain)?;
        let gz = enc.finish()?;
        let object_size = gz.len() as u64;
        objects
            .put(&staging.bucket, &staging.key(&hour.compacted_key(1)), gz)
            .await?;
        let manifest = Manifest {
            generation: 1,
            object: hour.compacted_key(1),
            object_size,
            lines: hour_lines,
            bytes: plain.len() as u64,
            parts: parts.len() as u64,
            supersedes: parts
                .iter()
                .map(|(m, _)| Source {
                    key: m.key.strip_prefix(&root).unwrap_or(&m.key).to_owned(),
                    etag: m.etag.clone(),
                })
                .collect(),
            compacted_at_ms: shared::time::now_ms(),
        };
        objects
            .put(
                &staging.bucket,
                &staging.key(&hour.manifest_key(1)),
                serde_json::to_vec_pretty(&manifest)?,
            )
            .await?;
        let keys: Vec<String> = parts.iter().map(|(m, _)| m.key.clone()).collect();
        objects.delete(&staging.bucket, &keys).await?;
        parts_done += parts.len() as u64;
        lines += hour_lines;
        plain_bytes += plain.len() as u64;
        compacted += object_size;
    }
    Ok(json!({
        "hoursCompacted": hours_done,
        "partsCompacted": parts_done,
        "partBytes": part_bytes,
        "lines": lines,
        "plainBytes": plain_bytes,
        "compactedBytes": compacted,
    }))
}

/// Resets the process's peak RSS (Linux 4.0+), so that `VmHWM` is the peak
/// since now.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), 0 if unknown.
fn vm_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A running child, killed (by its own handle) if it is dropped unfinished.
struct ChildGuard {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl ChildGuard {
    fn spawn(args: &[String]) -> Result<ChildGuard> {
        let exe = std::env::current_exe().context("finding this program")?;
        let mut child = Command::new(exe)
            .arg(CHILD)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the child")?;
        let stdout = child.stdout.take().context("the child's stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ChildGuard { child, lines: rx })
    }

    /// The JSON of the next line that starts with `tag`, before `deadline`.
    fn expect(&mut self, tag: &str, deadline: Instant) -> Result<Value> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(tag) {
                        return serde_json::from_str(rest.trim())
                            .with_context(|| format!("the child's {tag} line {line:?}"));
                    }
                    eprintln!("child: {line}");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("the child did not say {tag} within the time left; it is killed")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!("the child exited ({status}) before it said {tag}");
                }
            }
        }
    }

    fn go(&mut self) -> Result<()> {
        let stdin = self.child.stdin.as_mut().context("the child's stdin")?;
        stdin.write_all(b"GO\n")?;
        stdin.flush()?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The emulator's request counts

/// `{operation: count}` of the account's S3 requests, from `/_dm/requests`.
fn s3_requests(endpoint: &str, account: &str) -> Result<BTreeMap<String, u64>> {
    let addr: SocketAddr = endpoint
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("cannot read the emulator's address from {endpoint:?}"))?;
    ensure!(addr.ip().is_loopback(), "refusing to contact non-loopback {addr}");
    let timeout = Duration::from_secs(30);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /_dm/requests?account={account}&service=s3 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("a truncated answer from /_dm/requests"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    ensure!(
        head.split_whitespace().nth(1) == Some("200"),
        "/_dm/requests answered {head:?}"
    );
    ensure!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "/_dm/requests answered in chunks"
    );
    let counts: BTreeMap<String, u64> =
        serde_json::from_slice(&raw[split + 4..]).context("the answer of /_dm/requests")?;
    Ok(counts
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("s3:").unwrap_or(&k).to_owned(), v))
        .collect())
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

// ---------------------------------------------------------------------------
// Checking the result

/// Lines, bytes and CRC-32 of what is written to it.
#[derive(Default)]
struct Tally {
    lines: u64,
    bytes: u64,
    crc: Crc,
}

impl Write for Tally {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        self.bytes += buf.len() as u64;
        self.crc.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn list_all(objects: &S3Adapter, staging: &S3Location) -> Result<Vec<ObjectMeta>> {
    let mut all = Vec::new();
    let mut next = None;
    loop {
        let page = objects.list_page(&staging.bucket, &staging.key(""), next).await?;
        all.extend(page.objects);
        match page.next {
            Some(token) => next = Some(token),
            None => return Ok(all),
        }
    }
}

/// Objects of an hour, by generation.
type Generations = Vec<(u32, ObjectMeta)>;

/// Fails unless every hour holds exactly one compacted object and its
/// manifest, with the lines, bytes and CRC of its parts, and nothing else is
/// left. Returns the compacted objects' total size.
async fn check(
    objects: &S3Adapter,
    staging: &S3Location,
    input: &Input,
    variant: Variant,
    report: &Value,
) -> Result<u64> {
    let num = |k: &str| report.get(k).and_then(Value::as_u64);
    let expected = [
        ("hoursCompacted", input.hours.len() as u64),
        ("partsCompacted", input.parts),
        ("partBytes", input.stored),
        ("lines", input.lines),
        ("plainBytes", input.plain),
    ];
    for (k, want) in expected {
        ensure!(
            num(k) == Some(want),
            "{}: the report says {k} = {:?}, expected {want}: {report}",
            variant.name(),
            num(k)
        );
    }
    if variant == Variant::Rotation {
        for k in [
            "hoursOpen",
            "retryCount",
            "quarantinedCount",
            "outsideLayoutCount",
            "leftoversDeleted",
            "uploadsAborted",
        ] {
            ensure!(num(k) == Some(0), "rotation reports {k} = {:?}: {report}", num(k));
        }
        ensure!(
            report.get("stoppedEarly") == Some(&Value::Bool(false)),
            "rotation stopped early: {report}"
        );
    }

    let root = staging.key("");
    let mut found: BTreeMap<LogHour, (Generations, Generations)> = BTreeMap::new();
    for meta in list_all(objects, staging).await? {
        let rel = meta.key.strip_prefix(&root).unwrap_or(&meta.key).to_owned();
        ensure!(
            !rel.starts_with(QUARANTINE),
            "{}: {rel} was quarantined",
            variant.name()
        );
        match parse_log_key(&rel) {
            Ok(LogKey::Part { .. }) => bail!("{}: part {rel} is left", variant.name()),
            Ok(LogKey::Compacted { hour, generation }) => {
                found.entry(hour).or_default().0.push((generation, meta))
            }
            Ok(LogKey::Manifest { hour, generation }) => {
                found.entry(hour).or_default().1.push((generation, meta))
            }
            Err(why) => bail!("{}: an unexpected object: {why}", variant.name()),
        }
    }
    ensure!(
        found.len() == input.hours.len(),
        "{}: {} hours hold compacted objects, expected {}",
        variant.name(),
        found.len(),
        input.hours.len()
    );
    let mut compacted = 0;
    for want in &input.hours {
        let label = want.hour.label();
        let (objs, manifests) = found
            .get(&want.hour)
            .ok_or_else(|| anyhow!("{}: {label} has no compacted object", variant.name()))?;
        let ([(generation, object)], [(m_generation, manifest)]) = (&objs[..], &manifests[..]) else {
            bail!(
                "{}: {label} holds {} compacted objects and {} manifests, expected one each",
                variant.name(),
                objs.len(),
                manifests.len()
            );
        };
        ensure!(generation == m_generation, "{label}: generations differ");
        let body = objects
            .get(&staging.bucket, &manifest.key)
            .await?
            .ok_or_else(|| anyhow!("{label}: the manifest vanished"))?;
        let m: Manifest = serde_json::from_slice(&body).with_context(|| format!("{label}: the manifest"))?;
        ensure!(
            (m.lines, m.bytes, m.parts, m.object_size) == (want.lines, want.bytes, want.parts, object.size)
                && m.object == want.hour.compacted_key(*generation),
            "{}: {label}: the manifest says {} lines, {} bytes, {} parts, {} ({} bytes); expected {}, {}, {}, {} ({} bytes)",
            variant.name(),
            m.lines,
            m.bytes,
            m.parts,
            m.object,
            m.object_size,
            want.lines,
            want.bytes,
            want.parts,
            want.hour.compacted_key(*generation),
            object.size
        );
        let mut body = objects
            .get_body(&staging.bucket, &object.key)
            .await?
            .ok_or_else(|| anyhow!("{label}: the compacted object vanished"))?;
        let mut dec = MultiGzDecoder::new(Tally::default());
        while let Some(chunk) = body.next_chunk().await? {
            dec.write_all(&chunk)
                .with_context(|| format!("{label}: the compacted object is not gzip"))?;
        }
        let tally = dec.finish()?;
        ensure!(
            (tally.lines, tally.bytes, tally.crc.sum()) == (want.lines, want.bytes, want.crc),
            "{}: {label}: the compacted object holds {} lines, {} bytes, CRC {:08x}; its parts held {}, {}, {:08x}",
            variant.name(),
            tally.lines,
            tally.bytes,
            tally.crc.sum(),
            want.lines,
            want.bytes,
            want.crc
        );
        compacted += object.size;
    }
    let pending = objects.pending_uploads(&staging.bucket, &root).await?;
    ensure!(
        pending.is_empty(),
        "{}: {} multipart uploads are pending",
        variant.name(),
        pending.len()
    );
    Ok(compacted)
}

// ---------------------------------------------------------------------------
// Measuring

struct Figures {
    size: usize,
    variant: Variant,
    input: Input,
    upload: Duration,
    wall_ms: f64,
    compacted: u64,
    requests: BTreeMap<String, u64>,
    rss_ready_kb: u64,
    hwm_kb: u64,
}

impl Figures {
    fn secs(&self) -> f64 {
        self.wall_ms / 1000.0
    }

    fn objects_per_s(&self) -> f64 {
        self.input.parts as f64 / self.secs()
    }

    fn mb_per_s(&self) -> f64 {
        mb(self.input.stored) / self.secs()
    }

    fn plain_mb_per_s(&self) -> f64 {
        mb(self.input.plain) / self.secs()
    }

    fn requests_total(&self) -> u64 {
        self.requests.values().sum()
    }

    fn requests_brief(&self) -> String {
        let mut ops: Vec<(&String, &u64)> = self.requests.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        ops.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One run of one variant on a fresh bucket.
async fn measure(
    layout: &Arc<Layout>,
    variant: Variant,
    args: &Args,
    endpoint: &str,
    deadline: Instant,
) -> Result<Figures> {
    let account = emulator::fresh_account();
    let objects = Arc::new(S3Adapter::new(
        AwsSettings {
            endpoint: Some(endpoint.to_owned()),
            credentials: Some((account.clone(), "test".into())),
            max_attempts: None,
        },
        REGION,
    ));
    let staging = S3Location::parse(&format!("s3://bench-{account}/dm")).map_err(anyhow::Error::msg)?;
    objects.ensure_bucket(&staging.bucket).await?;
    let started = Instant::now();
    let input = upload(&objects, &staging, layout, args.concurrency).await?;
    let upload_took = started.elapsed();

    let budget = deadline
        .saturating_duration_since(Instant::now())
        .as_secs()
        .max(1);
    let mut child = ChildGuard::spawn(&[
        variant.name().to_owned(),
        endpoint.to_owned(),
        account.clone(),
        staging.bucket.clone(),
        staging.prefix.clone(),
        budget.to_string(),
    ])?;
    let (ready, before, result, after) = tokio::task::block_in_place(|| -> Result<_> {
        let ready = child.expect("READY", deadline)?;
        let before = s3_requests(endpoint, &account)?;
        child.go()?;
        let result = child.expect("RESULT", deadline)?;
        let after = s3_requests(endpoint, &account)?;
        child.finish(deadline)?;
        Ok((ready, before, result, after))
    })?;
    let field = |v: &Value, k: &str| -> Result<f64> {
        v.get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| anyhow!("the child's answer lacks {k}: {v}"))
    };
    let report = result.get("report").cloned().unwrap_or(Value::Null);
    let compacted = check(&objects, &staging, &input, variant, &report).await?;
    // Leave moto lighter for the next run.
    let left: Vec<String> = list_all(&objects, &staging)
        .await?
        .into_iter()
        .map(|m| m.key)
        .collect();
    objects.delete(&staging.bucket, &left).await?;
    Ok(Figures {
        size: layout.parts,
        variant,
        input,
        upload: upload_took,
        wall_ms: field(&result, "wallMs")?,
        compacted,
        requests: delta(&before, &after),
        rss_ready_kb: field(&ready, "rssReadyKb")? as u64,
        hwm_kb: field(&result, "hwmKb")? as u64,
    })
}

impl ChildGuard {
    /// Waits for the child to exit by itself (it has printed its result).
    fn finish(&mut self, deadline: Instant) -> Result<()> {
        let until = (Instant::now() + Duration::from_secs(30)).min(deadline);
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "the child exited with {status}");
                return Ok(());
            }
            if Instant::now() >= until {
                bail!("the child did not exit after its result; it is killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------
// Reporting

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Median, min and max.
fn stat_of(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some((median, v[0], v[v.len() - 1]))
}

fn num(x: f64) -> String {
    if x >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn show(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((m, lo, hi)) if lo == hi => num(m),
        Some((m, lo, hi)) => format!("{} ({}-{})", num(m), num(lo), num(hi)),
        None => "-".into(),
    }
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures: other work on the machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

type Metric = dyn Fn(&Figures) -> f64;

async fn run(args: Args, endpoint: String, deadline: Instant) -> Result<bool> {
    let started = Instant::now();
    println!(
        "# log rotation benchmark: {} parts of {} KiB of log lines (every {} gzip), over {} closed hours; {} run(s) each",
        args.sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" / "),
        args.part_bytes >> 10,
        match args.gzip_every {
            0 => "none".to_owned(),
            1 => "one".to_owned(),
            n => format!("{n}th part of an hour"),
        },
        args.hours,
        args.runs
    );
    println!(
        "machine: {} cores, {} build; emulator (moto) on loopback at {endpoint}; {} uploads at a time",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if cfg!(debug_assertions) {
            "debug (dev profile)"
        } else {
            "release"
        },
        args.concurrency
    );
    println!("load average before the runs: {}", loadavg());
    println!();
    println!("## Runs");
    println!();
    println!(
        "| parts | variant | upload s | wall s | objects/s | MB/s | compacted MB | S3 requests | RSS ready / peak MiB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---|---:|");
    let mut all: Vec<Figures> = Vec::new();
    for &size in &args.sizes {
        let layout = Arc::new(Layout::new(size, &args));
        for run in 0..args.runs {
            // Alternate which goes first, so neither always meets a fresher emulator.
            let order = if run % 2 == 0 {
                [Variant::Rotation, Variant::Naive]
            } else {
                [Variant::Naive, Variant::Rotation]
            };
            for variant in order {
                let f = measure(&layout, variant, &args, &endpoint, deadline)
                    .await
                    .with_context(|| format!("{size} parts, {}", variant.name()))?;
                println!(
                    "| {} | {} | {:.1} | {:.2} | {:.0} | {:.2} | {:.2} | {} ({}) | {:.0} / {:.0} |",
                    f.size,
                    f.variant.name(),
                    f.upload.as_secs_f64(),
                    f.secs(),
                    f.objects_per_s(),
                    f.mb_per_s(),
                    mb(f.compacted),
                    f.requests_total(),
                    f.requests_brief(),
                    mib(f.rss_ready_kb),
                    mib(f.hwm_kb)
                );
                std::io::stdout().flush()?;
                all.push(f);
            }
        }
    }
    println!();

    let pick = |size: usize, v: Variant| -> Vec<&Figures> {
        all.iter().filter(|f| f.size == size && f.variant == v).collect()
    };
    let stat = |list: &[&Figures], f: &Metric| stat_of(list.iter().map(|x| f(x)).collect());
    let metrics: [(&str, &Metric); 8] = [
        ("wall time, s", &|f| f.secs()),
        ("objects/s", &|f| f.objects_per_s()),
        ("MB/s (stored input)", &|f| f.mb_per_s()),
        ("MB/s (plain text)", &|f| f.plain_mb_per_s()),
        ("compacted, MB", &|f| mb(f.compacted)),
        ("S3 requests", &|f| f.requests_total() as f64),
        ("peak RSS, MiB", &|f| mib(f.hwm_kb)),
        ("peak RSS over ready, MiB", &|f| {
            mib(f.hwm_kb.saturating_sub(f.rss_ready_kb))
        }),
    ];
    println!("## Summary (median, min-max)");
    println!();
    println!("| parts | input | metric | rotation | naive | naive / rotation |");
    println!("|---:|---|---|---:|---:|---:|");
    for &size in &args.sizes {
        let (rot, nai) = (pick(size, Variant::Rotation), pick(size, Variant::Naive));
        let Some(first) = rot.first() else { continue };
        let input = &first.input;
        for (i, (name, f)) in metrics.iter().enumerate() {
            let (r, n) = (stat(&rot, f), stat(&nai, f));
            let ratio = match (r, n) {
                (Some((r, _, _)), Some((n, _, _))) if r > 0.0 => format!("{:.2}x", n / r),
                _ => "-".into(),
            };
            let (parts, what) = match i {
                0 => (
                    size.to_string(),
                    format!(
                        "{:.1} MB stored, {:.1} MB plain",
                        mb(input.stored),
                        mb(input.plain)
                    ),
                ),
                1 => (
                    String::new(),
                    format!(
                        "{} hours of {:.1} MB plain",
                        input.hours.len(),
                        mb(input.plain) / input.hours.len() as f64
                    ),
                ),
                2 => (
                    String::new(),
                    format!("{} gzip parts, {} lines", input.gzip_parts, input.lines),
                ),
                _ => (String::new(), String::new()),
            };
            println!(
                "| {parts} | {what} | {name} | {} | {} | {ratio} |",
                show(r),
                show(n)
            );
        }
    }
    println!();
    println!("S3 requests by operation (first run of each):");
    println!();
    for &size in &args.sizes {
        for v in [Variant::Rotation, Variant::Naive] {
            if let Some(f) = pick(size, v).first() {
                println!("- {size} parts, {}: {}", v.name(), f.requests_brief());
            }
        }
    }
    println!();

    println!("## Peak RSS against the input (medians)");
    println!();
    println!(
        "| parts | MB stored | MB plain per hour | rotation peak MiB | naive peak MiB | naive / rotation |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let peak = |size: usize, v: Variant| stat(&pick(size, v), &|f| mib(f.hwm_kb)).map(|s| s.0);
    for &size in &args.sizes {
        let Some(first) = pick(size, Variant::Rotation).first().copied() else {
            continue;
        };
        let (r, n) = (peak(size, Variant::Rotation), peak(size, Variant::Naive));
        println!(
            "| {size} | {:.1} | {:.1} | {} | {} | {} |",
            mb(first.input.stored),
            mb(first.input.plain) / first.input.hours.len() as f64,
            r.map_or("-".into(), num),
            n.map_or("-".into(), num),
            r.zip(n).map_or("-".into(), |(r, n)| format!("{:.2}x", n / r))
        );
    }
    println!();
    println!("load average after the runs: {}", loadavg());
    println!(
        "total time {:.0} s (uploads and checks included)",
        started.elapsed().as_secs_f64()
    );
    println!();

    println!("## Verdict");
    println!();
    let smallest = args.sizes.iter().copied().min().unwrap_or(0);
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    if smallest == largest {
        println!("- peak RSS against the input: needs two sizes (--sizes)");
        return Ok(true);
    }
    let stored = |size: usize| {
        pick(size, Variant::Rotation)
            .first()
            .map_or(0.0, |f| mb(f.input.stored))
    };
    let growth = stored(largest) / stored(smallest);
    let (r0, r1) = (
        peak(smallest, Variant::Rotation).unwrap_or(0.0),
        peak(largest, Variant::Rotation).unwrap_or(0.0),
    );
    let (n0, n1) = (
        peak(smallest, Variant::Naive).unwrap_or(0.0),
        peak(largest, Variant::Naive).unwrap_or(0.0),
    );
    let pass = r0 > 0.0 && r1 <= r0 * RSS_FACTOR;
    println!(
        "- {}: peak RSS does not grow with the input: rotation's median peak is {} MiB at {largest} parts \
         and {} MiB at {smallest} parts ({:.2}x, +{} MiB; at most {RSS_FACTOR}x allowed) while the input grew \
         {growth:.1}x ({:.1} to {:.1} MB stored); the naive baseline went from {} to {} MiB ({:.2}x, +{} MiB)",
        if pass { "PASS" } else { "FAIL" },
        num(r1),
        num(r0),
        r1 / r0,
        num(r1 - r0),
        stored(smallest),
        stored(largest),
        num(n0),
        num(n1),
        n1 / n0,
        num(n1 - n0)
    );
    let mut sorted = args.sizes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if let [.., a, b] = sorted[..] {
        if a != smallest {
            let (ra, rb) = (
                peak(a, Variant::Rotation).unwrap_or(0.0),
                peak(b, Variant::Rotation).unwrap_or(0.0),
            );
            let (na, nb) = (
                peak(a, Variant::Naive).unwrap_or(0.0),
                peak(b, Variant::Naive).unwrap_or(0.0),
            );
            let more = stored(b) - stored(a);
            println!(
                "- between the two largest sizes ({a} and {b} parts, +{more:.1} MB stored): rotation {} to {} MiB \
                 ({:.3} MiB per MB of input), naive {} to {} MiB ({:.3} MiB per MB)",
                num(ra),
                num(rb),
                (rb - ra) / more,
                num(na),
                num(nb),
                (nb - na) / more
            );
        }
    }
    Ok(pass)
}
