//! Peak memory of building a diagnostics bundle (`shared::workflows::diagnostics`)
//! against the bundle's size, in the emulator.
//!
//! ```text
//! DM_EMULATOR_PYTHON=target/emulator-venv/bin/python \
//! cargo run --release -p log-rotation --example diagnostics_memory -- \
//!     [--sizes-mb 10,50,100,200] [--object-kb 1024] [--text]
//! ```
//!
//! For each size it makes a fresh emulated account and staging bucket, a cluster
//! in a fresh SQLite store, and puts `--sizes-mb` MiB of node logs under the
//! cluster's `logs/` prefix in the current hour, in objects of `--object-kb` KiB
//! spread over 4 instances and 7 services. By default the bytes do not compress
//! (xorshift noise): the worst case for the bundle's buffers, and a bundle as big
//! as its logs; `--text` writes log lines instead. Then it resets the process's
//! peak RSS (`/proc/self/clear_refs`), records a diagnostics request and runs the
//! worker once (`Worker::run`: list, GET each object chunk by chunk, tar, gzip,
//! multipart upload), checks that it succeeded with every object in it, and
//! reads `VmHWM`: the peak during the build. A bundle whose peak grows with its
//! size would show here.
//!
//! Only loopback is contacted.

use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use shared::cloud::aws::{AwsSettings, S3Adapter};
use shared::cloud::ObjectStore;
use shared::config::S3Location;
use shared::domain::logs::{LogClock, LogHour};
use shared::domain::{
    ClusterSpec, ClusterStatus, EnvironmentSpec, EnvironmentStatus, InstanceSize, ProposedCluster,
    ProposedEnvironment,
};
use shared::store::{ClusterObservation, EnvironmentObservation, Store, WriteCtx};
use shared::workflows::diagnostics::{request, ProposedDiagnostics, RunOutcome, Worker};

const MIB: u64 = 1 << 20;
const REGION: &str = "us-west-2";
const SERVICES: [&str; 7] = [
    "canary",
    "zookeeper",
    "catalog",
    "planner",
    "worker",
    "rest-server",
    "webui",
];

struct Args {
    sizes_mb: Vec<u64>,
    object_kb: u64,
    text: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        sizes_mb: vec![10, 50, 100, 200],
        object_kb: 1024,
        text: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--sizes-mb" => {
                a.sizes_mb = it
                    .next()
                    .context("--sizes-mb needs a value")?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .context("--sizes-mb takes whole MiB, comma-separated")
                    })
                    .collect::<Result<_>>()?;
            }
            "--object-kb" => {
                a.object_kb = it
                    .next()
                    .context("--object-kb needs a value")?
                    .parse()
                    .context("--object-kb takes whole KiB")?;
            }
            "--text" => a.text = true,
            other => bail!("unknown argument {other:?}; see the example's documentation"),
        }
    }
    ensure!(a.object_kb >= 1, "--object-kb must be at least 1");
    Ok(a)
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

/// Resets the process's peak RSS (Linux 4.0+): `VmHWM` is then the peak since now.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `len` bytes from a xorshift generator: noise, or log lines made of it.
fn body(len: usize, mut seed: u64, text: bool) -> Vec<u8> {
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = Vec::with_capacity(len + 128);
    while out.len() < len {
        if text {
            let n = next();
            out.extend_from_slice(
                format!(
                    "2026-11-25 16:00:{:02}.{:03} INFO planner [seq {}] planned scan of table t{} in {} ms\n",
                    n % 60,
                    n % 1000,
                    n >> 40,
                    n % 97,
                    n % 5000
                )
                .as_bytes(),
            );
        } else {
            out.extend_from_slice(&next().to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

async fn cluster(store: &Store) -> Result<i64> {
    let ctx = WriteCtx {
        principal: "bench".into(),
        idempotency: None,
    };
    let env = EnvironmentSpec::parse(ProposedEnvironment {
        name: "bench".into(),
        region: REGION.into(),
        vpc_id: None,
        subnet_ids: None,
        vpc_cidr: None,
        admin_cidr: None,
        create_security_group: false,
        failover_for: None,
        warm_standby_nodes: None,
    })
    .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
    let env = store.create_environment(&ctx, &env).await?.target_id;
    ensure!(store.claim_environment(env, "bench", 60_000).await?);
    store
        .record_environment(
            env,
            "bench",
            &EnvironmentObservation {
                vpc_id: Some("vpc-1".into()),
                subnet_ids: vec!["subnet-1".into()],
                vpc_cidr: Some("10.0.0.0/16".into()),
                security_group_id: None,
                status: EnvironmentStatus::Ready,
                message: "ready".into(),
                observed_generation: Some(1),
                steps: vec![],
                failure: None,
            },
        )
        .await?;
    let spec = ClusterSpec::parse(
        ProposedCluster {
            name: "analytics".into(),
            num_nodes: 4,
            cluster_type: "STANDALONE_CLUSTER".into(),
            environment_id: env,
            instance_type: None,
            storage_gb: None,
            tags: Default::default(),
            description: None,
            termination_protection_enabled: false,
            auto_repair_enabled: None,
            version: None,
        },
        100,
        "2.0.0",
        |_| {
            Some(InstanceSize {
                vcpus: 2,
                memory_mib: 8192,
            })
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
    let id = store.create_cluster(&ctx, &spec).await?.target_id;
    ensure!(store.claim_cluster(id, "bench", 60_000).await?);
    let obs = ClusterObservation {
        status: ClusterStatus::Ready,
        message: "All services running.".into(),
        asg_name: None,
        launch_template_id: None,
        config_uri: None,
        nodes: vec![],
        running_services: Some(7),
        endpoint: None,
        observed_generation: Some(1),
        steps: vec![],
        failure: None,
    };
    store.record_cluster(id, "bench", &obs).await?;
    store.release_cluster(id, "bench", true).await?;
    Ok(id)
}

struct Run {
    logs_mb: f64,
    objects: u64,
    bundle_mb: f64,
    parts: usize,
    seconds: f64,
    rss_before_mib: f64,
    peak_mib: f64,
}

async fn run(endpoint: &str, size_mb: u64, object_kb: u64, text: bool) -> Result<Run> {
    let account = emulator::fresh_account();
    let settings = AwsSettings {
        endpoint: Some(endpoint.to_owned()),
        credentials: Some((account.clone(), "bench".into())),
        max_attempts: None,
    };
    let objects = S3Adapter::new(settings, REGION);
    let staging = S3Location::parse(&format!("s3://bench-{account}/dm")).map_err(anyhow::Error::msg)?;
    objects.ensure_bucket(&staging.bucket).await?;
    let store = Store::connect(&testkit::sqlite_url()).await?;
    let id = cluster(&store).await?;

    let now = LogClock::WALL.now();
    let total = size_mb * MIB;
    let each = object_kb * 1024;
    let mut written = 0u64;
    let mut n = 0u64;
    while written < total {
        let len = each.min(total - written);
        let instance = format!("i-0{:016x}", n % 4);
        let service = SERVICES[(n / 4 % 7) as usize];
        let key = LogHour::containing(id, &instance, service, now).part_key(now - n as i64 - 1);
        objects
            .put(
                &staging.bucket,
                &staging.key(&key),
                body(len as usize, n + 1, text),
            )
            .await?;
        written += len;
        n += 1;
    }

    let ctx = WriteCtx {
        principal: "bench".into(),
        idempotency: None,
    };
    let requested = request(&store, &staging, &ctx, id, ProposedDiagnostics::default()).await?;
    let worker = Worker::new(&store, &objects, &staging, LogClock::WALL, "bench");
    reset_peak();
    let rss_before = vm_kb("VmRSS");
    let started = Instant::now();
    let outcome = worker.run(requested.submitted.operation_id).await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = vm_kb("VmHWM");
    let RunOutcome::Succeeded { stats, .. } = outcome else {
        bail!("the bundle of {size_mb} MiB was not built: {outcome:?}")
    };
    ensure!(
        stats.log_objects == n && stats.log_bytes == total,
        "the bundle holds {} objects of {} bytes, not {n} of {total}",
        stats.log_objects,
        stats.log_bytes
    );
    Ok(Run {
        logs_mb: total as f64 / MIB as f64,
        objects: n,
        bundle_mb: stats.bundle_bytes as f64 / MIB as f64,
        parts: stats.parts,
        seconds,
        rss_before_mib: rss_before as f64 / 1024.0,
        peak_mib: peak as f64 / 1024.0,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let endpoint = tokio::task::spawn_blocking(|| emulator::shared().endpoint().to_owned()).await?;
    println!(
        "# diagnostics bundle: peak RSS while building, against the bundle's size ({}, objects of {} KiB)",
        if args.text {
            "log text"
        } else {
            "incompressible bytes"
        },
        args.object_kb
    );
    println!("logs MiB  objects  bundle MiB  parts  seconds  MiB/s  RSS before MiB  peak RSS MiB");
    let mut peaks = Vec::new();
    for size in &args.sizes_mb {
        let r = run(&endpoint, *size, args.object_kb, args.text).await?;
        println!(
            "{:>8.0}  {:>7}  {:>10.1}  {:>5}  {:>7.2}  {:>5.1}  {:>14.1}  {:>12.1}",
            r.logs_mb,
            r.objects,
            r.bundle_mb,
            r.parts,
            r.seconds,
            r.logs_mb / r.seconds,
            r.rss_before_mib,
            r.peak_mib
        );
        peaks.push((r.logs_mb, r.peak_mib));
    }
    if let (Some(first), Some(last)) = (peaks.first(), peaks.last()) {
        println!(
            "peak RSS {:.1} MiB at {:.0} MiB of logs, {:.1} MiB at {:.0} MiB ({:.0}x the logs, {:.2}x the peak)",
            first.1,
            first.0,
            last.1,
            last.0,
            last.0 / first.0,
            last.1 / first.1
        );
    }
    Ok(())
}
