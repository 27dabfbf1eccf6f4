//! What a failover costs the control plane: the time from the region-health
//! alarm's event to the traffic switch, measured end to end against `dm-local
//! up --regions us-east-1,us-west-2` and the emulator, which answers at once
//! (promotion included: the emulator's takes no time, as if Aurora were
//! instant), with node agents that start at once.
//!
//! Per run: an environment in us-east-1 with `--clusters` clusters of
//! `--nodes` nodes, READY; its partner in us-west-2, three ways (hot: a parked
//! standby partner per cluster at full size; warm: one of one node; cold: none,
//! made from the spec at failover time); then `dm-local event --now` delivers the
//! alarm sample to us-west-2, and the failover's runbook gives each step's
//! times and the RTO (alarm to traffic switch).
//!
//! The baseline, in the same run: the same clusters created by hand in the
//! target region (`ocadm clusters create` each, then waiting until all are
//! READY), which a manual recovery needs at least.
//!
//! ```sh
//! cargo build --bins && DM_EMULATOR_PYTHON=target/emulator-venv/bin/python \
//!   cargo run -p cli --example failover_bench -- --clusters 10 --nodes 2 --runs 3
//! ```

#[path = "../tests/e2e/dm.rs"]
#[allow(dead_code)]
mod dm;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use dm::{bin, json, start_dm_with, Dm};

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn clusters_in(dm: &Dm, env: &str) -> Vec<serde_json::Value> {
    json(&dm.ok(&["--json", "clusters", "list", "--environmentid", env]))["clusters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Creates `n` clusters of `nodes` in environment `env` and returns how long
/// they took to be READY, from the first request.
fn create_ready(dm: &Dm, env: &str, n: u32, nodes: u32) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        dm.ok(&[
            "clusters",
            "create",
            "--name",
            &format!("c{i}"),
            "--numNodes",
            &nodes.to_string(),
            "--type",
            "STANDALONE_CLUSTER",
            "--environmentid",
            env,
        ]);
    }
    wait_for("clusters READY", || {
        let list = clusters_in(dm, env);
        list.len() == n as usize && list.iter().all(|c| c["statusCode"] == "READY")
    });
    started.elapsed().as_secs_f64()
}

/// The standby kinds each run fails over with.
const MODES: [(&str, &str); 3] = [
    ("hot", "warm standby at full size"),
    ("warm", "warm standby of 1 node"),
    ("cold", "cold standby (made at failover)"),
];

struct Sample {
    rto_ms: f64,
    steps: Vec<(String, f64)>,
}

/// dm-local with agents that start at once, and the schedules at their
/// default pace (writes and steps wake the reconciler for their targets).
fn start(extra: &[&str]) -> Dm {
    let mut args = vec![
        "--agent-startup-ms",
        "0",
        "--sweep-interval",
        "60",
        "--reconcile-interval",
        "15",
    ];
    args.extend_from_slice(extra);
    start_dm_with(&args)
}

/// One failover; `warm` standby partners keep that many nodes (0: cold).
fn failover_run(clusters: u32, nodes: u32, warm: u32) -> Sample {
    let dm = start(&["--regions", "us-east-1,us-west-2", "--failover-interval", "1"]);
    dm.ok(&[
        "environments",
        "create",
        "--name",
        "prod",
        "--region",
        "us-east-1",
        "--wait",
    ]);
    let mut pair = vec![
        "environments",
        "create",
        "--name",
        "prod-west",
        "--region",
        "us-west-2",
        "--failover-for",
        "1",
        "--wait",
    ];
    let warm_nodes = warm.to_string();
    if warm > 0 {
        pair.extend(["--warm-standby-nodes", &warm_nodes]);
    }
    dm.ok(&pair);
    create_ready(&dm, "1", clusters, nodes);
    if warm > 0 {
        wait_for("warm standby partners", || {
            let list = clusters_in(&dm, "2");
            list.len() == clusters as usize
                && list
                    .iter()
                    .all(|c| c["statusCode"] == "STANDBY" && c["numRunningNodes"] == warm)
        });
    }
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/alarm-region-health.json");
    let out = Command::new(bin("dm-local"))
        .args(["event", "--now", "--region", "us-west-2", "--data-dir"])
        .arg(&dm.dir)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = json(&String::from_utf8(out.stdout).unwrap())["failoverId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut done = serde_json::Value::Null;
    wait_for("the failover", || {
        done = json(&dm.ok(&["--json", "failover", "status", &id]));
        done["state"] == "SUCCEEDED" || done["state"] == "FAILED"
    });
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    let steps = done["operation"]["runbook"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["durationMs"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    Sample {
        rto_ms: done["report"]["rtoMs"].as_f64().unwrap(),
        steps,
    }
}

fn baseline_run(clusters: u32, nodes: u32) -> f64 {
    let dm = start(&["--region", "us-west-2"]);
    dm.ok(&[
        "environments",
        "create",
        "--name",
        "west",
        "--region",
        "us-west-2",
        "--wait",
    ]);
    create_ready(&dm, "1", clusters, nodes) * 1000.0
}

fn main() {
    let clusters = arg("--clusters", 10);
    let nodes = arg("--nodes", 2);
    let runs = arg("--runs", 3);
    let mut rows: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    let mut baseline = Vec::new();
    for run in 1..=runs {
        for (mode, warm) in [("hot", nodes), ("warm", 1), ("cold", 0)] {
            let s = failover_run(clusters, nodes, warm);
            eprintln!("run {run} {mode}: RTO {:.2} s", s.rto_ms / 1000.0);
            rows.entry(mode).or_default().push(s);
        }
        let b = baseline_run(clusters, nodes);
        eprintln!("run {run} baseline: {:.2} s", b / 1000.0);
        baseline.push(b);
    }
    let base = median(baseline.clone());
    println!(
        "failover of {clusters} clusters x {nodes} nodes, {runs} run(s), medians; alarm event to traffic switch\n"
    );
    println!("| | control-plane time | ratio to the baseline |");
    println!("|---|---|---|");
    for (mode, what) in MODES {
        let rto = median(rows[mode].iter().map(|s| s.rto_ms).collect());
        println!(
            "| failover, {what} | {:.2} s | {:.2}x |",
            rto / 1000.0,
            rto / base
        );
    }
    println!(
        "| baseline: create the clusters in the target region by hand, until READY | {:.2} s | 1.00x |",
        base / 1000.0
    );
    println!("\nper step (median ms):\n");
    let names: Vec<String> = rows["warm"][0].steps.iter().map(|(n, _)| n.clone()).collect();
    println!("| step | hot | warm | cold |");
    println!("|---|---|---|---|");
    for name in names {
        let of = |mode: &str| {
            median(
                rows[mode]
                    .iter()
                    .map(|s| s.steps.iter().find(|(n, _)| *n == name).map_or(0.0, |(_, d)| *d))
                    .collect(),
            )
        };
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            of("hot"),
            of("warm"),
            of("cold")
        );
    }
}
