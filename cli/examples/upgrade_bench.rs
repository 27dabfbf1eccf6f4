//! What an upgrade by replacement costs the control plane, measured end to end
//! against `dm-local` and the emulator (which answers at once):
//! - wall time from `ocadm clusters upgrade` to the operation's end, with a
//!   rollback window of 0;
//! - the waits for health in it (`wait-ready`: the replacement's nodes booting
//!   and joining; `verify`: their agents answering), and the rest: the
//!   control-plane overhead;
//! - AWS calls, counted by the emulator for this run's account, less what the
//!   idle DM (sweeps, reconciles) makes in the same time.
//!
//! The baseline, in the same run: creating a cluster of the same size, then
//! deleting it (what an upgrade must do at least: build one cluster, remove one).
//!
//! ```sh
//! cargo build --bins && DM_EMULATOR_PYTHON=target/emulator-venv/bin/python \
//!   cargo run -p cli --example upgrade_bench -- --nodes 3 --runs 5
//! ```

#[path = "../tests/e2e/dm.rs"]
#[allow(dead_code)]
mod dm;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use dm::{json, start_dm_with, Dm};

/// `service:Action -> calls` the emulator saw for `account`.
fn aws_calls(account: &str) -> BTreeMap<String, u64> {
    let endpoint = emulator::shared()
        .endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let mut conn = std::net::TcpStream::connect(&endpoint).unwrap();
    write!(
        conn,
        "GET /_dm/requests?account={account} HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("/_dm/requests: {e}: {answer}"))
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn total(calls: &BTreeMap<String, u64>) -> u64 {
    calls.values().sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

struct Sample {
    wall: f64,
    health_waits: f64,
    calls: BTreeMap<String, u64>,
    /// Calls the idle DM would have made in the same time.
    idle_calls: f64,
    steps: Vec<(String, f64)>,
}

/// Runs `f` and measures its wall time and AWS calls.
fn measure(dm: &Dm, idle_per_s: f64, f: impl FnOnce()) -> (f64, BTreeMap<String, u64>, f64) {
    let before = aws_calls(&dm.account);
    let started = Instant::now();
    f();
    let wall = started.elapsed().as_secs_f64();
    (wall, delta(&aws_calls(&dm.account), &before), idle_per_s * wall)
}

fn main() {
    let nodes = arg("--nodes", 3);
    let runs = arg("--runs", 3);
    // Agents upload no logs (their S3 calls are not the control plane's).
    let dm = start_dm_with(&["--log-upload-interval", "3600"]);
    let n = nodes.to_string();
    dm.ok(&[
        "environments",
        "create",
        "--name",
        "bench",
        "--region",
        "us-west-2",
        "--wait",
    ]);
    dm.ok(&[
        "clusters",
        "create",
        "--name",
        "sales",
        "--numNodes",
        &n,
        "--type",
        "STANDALONE_CLUSTER",
        "--environmentid",
        "1",
        "--wait",
    ]);

    // What the DM calls when nothing happens (sweeps every second, reconciles).
    let before = aws_calls(&dm.account);
    let idle_window = Duration::from_secs(10);
    std::thread::sleep(idle_window);
    let idle = delta(&aws_calls(&dm.account), &before);
    let idle_per_s = total(&idle) as f64 / idle_window.as_secs_f64();

    let mut baseline = Vec::new();
    let mut upgrades = Vec::new();
    // Cluster 1 is sales; each run's baseline cluster takes the next id, then
    // the upgrade's replacement the one after.
    let mut serving = 1_i64;
    let mut next_id = 2_i64;
    for run in 0..runs {
        // Baseline: one cluster of the same size, built and removed.
        let id = next_id.to_string();
        let (wall, calls, idle_calls) = measure(&dm, idle_per_s, || {
            dm.ok(&[
                "clusters",
                "create",
                "--name",
                &format!("base-{run}"),
                "--numNodes",
                &n,
                "--type",
                "STANDALONE_CLUSTER",
                "--environmentid",
                "1",
                "--wait",
            ]);
            dm.ok(&["clusters", "delete", &id, "--wait"]);
        });
        baseline.push((wall, total(&calls) as f64 - idle_calls));

        // The upgrade of sales, to a new version each run.
        let current = serving;
        let version = format!("2.{}.0", run + 1);
        let mut op_id = String::new();
        let (wall, calls, idle_calls) = measure(&dm, idle_per_s, || {
            let out = dm.ok(&[
                "--json",
                "clusters",
                "upgrade",
                "--version",
                &version,
                "--rollback-window",
                "0",
                &current.to_string(),
            ]);
            op_id = json(&out)["operationId"].to_string();
            dm.ok(&["operations", "get", &op_id, "--wait", "--timeout", "300"]);
        });
        let op = json(&dm.ok(&["--json", "operations", "get", &op_id]));
        assert_eq!(op["state"], "SUCCEEDED", "{op}");
        serving = op["runbook"]["context"]["replacementId"].as_i64().unwrap();
        next_id = serving + 1;
        let steps: Vec<(String, f64)> = op["runbook"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["durationMs"].as_f64().unwrap_or(0.0) / 1000.0,
                )
            })
            .collect();
        let health_waits = steps
            .iter()
            .filter(|(name, _)| name == "wait-ready" || name == "verify")
            .map(|(_, s)| s)
            .sum();
        upgrades.push(Sample {
            wall,
            health_waits,
            calls,
            idle_calls,
            steps,
        });
        eprintln!(
            "run {run}: upgrade {wall:.2} s, baseline {:.2} s",
            baseline.last().unwrap().0
        );
    }

    println!("upgrade by replacement, {nodes} node(s), {runs} run(s), medians; idle DM: {idle_per_s:.1} AWS calls/s");
    let m = |f: &dyn Fn(&Sample) -> f64| median(upgrades.iter().map(f).collect());
    let wall = m(&|s| s.wall);
    let waits = m(&|s| s.health_waits);
    let overhead = m(&|s| s.wall - s.health_waits);
    let calls = m(&|s| total(&s.calls) as f64 - s.idle_calls);
    let base_wall = median(baseline.iter().map(|b| b.0).collect());
    let base_calls = median(baseline.iter().map(|b| b.1).collect());
    println!("| | upgrade | create + delete (baseline) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| wall time | {wall:.2} s | {base_wall:.2} s | {:.2}x |",
        wall / base_wall
    );
    println!("| waits for health | {waits:.2} s | | |");
    println!("| control-plane overhead | {overhead:.2} s | | |");
    println!(
        "| AWS calls (idle DM's subtracted) | {calls:.0} | {base_calls:.0} | {:.2}x |",
        calls / base_calls
    );
    println!("\nsteps of the median-wall upgrade:");
    let mut by_wall: Vec<&Sample> = upgrades.iter().collect();
    by_wall.sort_by(|a, b| a.wall.partial_cmp(&b.wall).unwrap());
    let mid = by_wall[by_wall.len() / 2];
    for (name, secs) in &mid.steps {
        println!("  {name:<18} {secs:>7.3} s");
    }
    println!("\nAWS calls of that upgrade (raw, idle DM included):");
    for (call, count) in &mid.calls {
        println!("  {call:<48} {count}");
    }
}
