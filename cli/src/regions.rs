//! `ocadm regions`, `ocadm failover` and `ocadm drill`: who is active, failing
//! over (or back) to a region, and recovery drills. A failover goes to the API
//! of the region that takes over (`OCADM_ENDPOINT_<REGION>`, which `dm-local up
//! --regions` exports); `--wait` follows it to its end.

use std::io::{IsTerminal, Write};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::render::{self, text};
use crate::{list, say, Out, WaitArgs};

/// `ocadm failover`: `--to REGION` starts one; `list` and `status` show them.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FailoverArgs {
    #[command(subcommand)]
    pub command: Option<FailoverCommand>,
    #[command(flatten)]
    pub start: FailoverStart,
}

#[derive(Subcommand)]
pub enum FailoverCommand {
    /// The latest failovers, newest first
    List,
    /// One failover: its state, steps, RTO and RPO estimate
    Status {
        /// The failover's id, as `ocadm failover` printed it
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Args)]
pub struct FailoverStart {
    /// The region that takes over; the request goes to its API
    #[arg(long, value_name = "REGION")]
    pub to: Option<String>,
    /// A switchover with no data loss, for when both regions are up (and for
    /// failing back); without it, the database fails over with data loss allowed
    #[arg(long)]
    pub planned: bool,
    /// Print the plan and the preconditions that fail, and change nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Go on although a precondition (lag, environments, capacity, drill) fails
    #[arg(long)]
    pub force: bool,
    /// How long the target's clusters may take to become READY, in seconds
    /// (server default: 900)
    #[arg(long = "ready-timeout", value_name = "SECONDS", allow_negative_numbers = true)]
    pub ready_timeout: Option<i64>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `ocadm drill`: `--to REGION` starts one; `list` shows them.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub command: Option<DrillCommand>,
    /// The region to stand the replacement clusters up in (from the active region)
    #[arg(long, value_name = "REGION")]
    pub to: Option<String>,
    /// How long the drill's clusters may take to become READY, in seconds
    /// (server default: 900)
    #[arg(long = "ready-timeout", value_name = "SECONDS", allow_negative_numbers = true)]
    pub ready_timeout: Option<i64>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Subcommand)]
pub enum DrillCommand {
    /// The drills, newest first, with their RTO and leaks
    List,
}

/// The region a command addresses, when it names one: `failover --to R`.
pub fn target_region(args: &FailoverArgs) -> Option<&str> {
    match &args.command {
        None => args.start.to.as_deref(),
        Some(_) => None,
    }
}

pub fn failover_body(a: &FailoverStart, to: &str) -> Value {
    let mut body = Map::new();
    body.insert("to".into(), json!(to));
    if a.planned {
        body.insert("planned".into(), json!(true));
    }
    if a.dry_run {
        body.insert("dryRun".into(), json!(true));
    }
    if a.force {
        body.insert("force".into(), json!(true));
    }
    if let Some(s) = a.ready_timeout {
        body.insert("readyTimeoutSeconds".into(), json!(s));
    }
    Value::Object(body)
}

pub fn regions(client: &Client, out: &Out) -> Result<i32> {
    let v = client.get("/v1/regions")?;
    out.print(&v, render_regions)?;
    Ok(0)
}

fn render_regions(v: &Value) -> String {
    let mut s = format!("{}\n\n", text(&v["message"]));
    let rows: Vec<Vec<String>> = list(v, "regions")
        .iter()
        .map(|r| {
            vec![
                text(&r["region"]),
                if r["active"] == true { "ACTIVE" } else { "standby" }.to_owned(),
                text(&r["heartbeatAt"]),
                format!("{}/{}", text(&r["clustersReady"]), text(&r["clusters"])),
                text(&r["healthCheckId"]),
            ]
        })
        .collect();
    s.push_str(&render::table(
        &["region", "role", "heartbeat", "ready/clusters", "healthCheck"],
        &rows,
    ));
    let history = list(v, "leadershipHistory");
    if !history.is_empty() {
        s.push_str("\nleadership:\n");
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|h| {
                vec![
                    text(&h["epoch"]),
                    text(&h["region"]),
                    text(&h["previous"]),
                    text(&h["at"]),
                    text(&h["operationId"]),
                ]
            })
            .collect();
        s.push_str(&render::table(
            &["epoch", "region", "from", "since", "operation"],
            &rows,
        ));
    }
    s
}

pub fn failover(client: &Client, out: &Out, args: FailoverArgs) -> Result<i32> {
    match args.command {
        Some(FailoverCommand::List) => {
            let v = client.get("/v1/failovers")?;
            out.print(&v, |v| failover_table(list(v, "failovers")))?;
            Ok(0)
        }
        Some(FailoverCommand::Status { id, wait }) => {
            if wait.wait {
                return follow_failover(client, out, &id, &wait);
            }
            let v = client.get(&format!("/v1/failovers/{id}"))?;
            out.print(&v, render_failover)?;
            Ok(exit_code(&v))
        }
        None => {
            let a = args.start;
            let to = a.to.clone().context(
                "name the region that takes over: ocadm failover --to REGION (or ocadm failover list)",
            )?;
            let reply = client.post("/v1/failover", &failover_body(&a, &to))?;
            if a.dry_run {
                out.print(&reply, render_plan)?;
                let ok = reply["plan"]["preconditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().all(|p| p["ok"] == true));
                return Ok(if ok { 0 } else { 1 });
            }
            let id = text(&reply["failoverId"]);
            if out.json && !a.wait.wait {
                say(&format!("{}\n", serde_json::to_string_pretty(&reply)?))?;
                return Ok(0);
            }
            if !out.json {
                say(&format!(
                    "Failover {id} to {to} accepted ({}).\n",
                    if a.planned {
                        "planned switchover"
                    } else {
                        "failover, data loss allowed"
                    }
                ))?;
            }
            if a.wait.wait {
                follow_failover(client, out, &id, &a.wait)
            } else {
                say(&format!("Follow it with: ocadm failover status {id} --wait\n"))?;
                Ok(0)
            }
        }
    }
}

fn failover_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|f| {
            vec![
                text(&f["id"]),
                text(&f["from"]),
                text(&f["to"]),
                if f["planned"] == true {
                    "planned"
                } else {
                    "unplanned"
                }
                .to_owned(),
                text(&f["state"]),
                text(&f["epoch"]),
                text(&f["requestedAt"]),
                text(&f["trigger"]),
            ]
        })
        .collect();
    render::table(
        &[
            "id",
            "from",
            "to",
            "kind",
            "state",
            "epoch",
            "requestedAt",
            "trigger",
        ],
        &rows,
    )
}

fn render_plan(v: &Value) -> String {
    let p = &v["plan"];
    let mut s = format!(
        "Dry run: failover to {} from {} ({}).\nPromotion: {}\nReplica lag: {}\n\npreconditions:\n",
        text(&p["to"]),
        text(&p["from"]),
        if p["planned"] == true {
            "planned switchover"
        } else {
            "unplanned, data loss allowed"
        },
        text(&p["promotion"]),
        p["replicaLagMs"]
            .as_i64()
            .map_or("unknown".to_owned(), |l| format!("{l} ms")),
    );
    for c in p["preconditions"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  [{}] {}: {}\n",
            if c["ok"] == true { "ok" } else { "FAILS" },
            text(&c["name"]),
            text(&c["detail"])
        ));
    }
    let clusters = list(p, "clusters");
    s.push_str(&format!("\nclusters ({}):\n", clusters.len()));
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            vec![
                text(&c["clusterId"]),
                text(&c["name"]),
                text(&c["environmentId"]),
                text(&c["nodes"]),
                text(&c["action"]),
            ]
        })
        .collect();
    s.push_str(&render::table(
        &["id", "name", "environment", "nodes", "takes over"],
        &rows,
    ));
    s.push_str(&format!(
        "\nsteps: {}\n",
        p["steps"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    ));
    s
}

fn render_failover(v: &Value) -> String {
    let mut s = String::new();
    for key in [
        "id",
        "state",
        "from",
        "to",
        "planned",
        "trigger",
        "epoch",
        "requestedAt",
        "claimedAt",
        "promotionStartedAt",
        "promotedAt",
        "replicaLagMs",
        "operationId",
        "error",
    ] {
        s.push_str(&format!("{key}: {}\n", text(&v[key])));
    }
    if let Some(steps) = v["operation"]["runbook"]["steps"].as_array() {
        s.push_str("steps:\n");
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|st| {
                vec![
                    text(&st["name"]),
                    text(&st["state"]),
                    text(&st["durationMs"]).replace('-', ""),
                    st["error"]
                        .as_str()
                        .or(st["result"].as_str())
                        .unwrap_or("-")
                        .to_owned(),
                ]
            })
            .collect();
        s.push_str(&render::table(&["step", "state", "ms", "result"], &rows));
    }
    if let Some(rto) = v["report"]["rtoMs"].as_i64() {
        s.push_str(&format!(
            "RTO: {:.1} s (trigger to traffic switch); RPO estimate: {}\n",
            rto as f64 / 1000.0,
            v["report"]["rpoEstimateMs"]
                .as_i64()
                .map_or("unknown".to_owned(), |l| format!("{l} ms of writes"))
        ));
    }
    s
}

fn exit_code(v: &Value) -> i32 {
    match v["state"].as_str() {
        Some("FAILED") | Some("REFUSED") | Some("LOST") => 1,
        _ => 0,
    }
}

/// Follows a failover until it ends, printing each change of state (and of
/// step, once its runbook runs) on stderr.
fn follow_failover(client: &Client, out: &Out, id: &str, wait: &WaitArgs) -> Result<i32> {
    let started = Instant::now();
    let poll = crate::wait::poll_interval();
    let mut stderr = std::io::stderr();
    let terminal = stderr.is_terminal();
    let mut shown = String::new();
    loop {
        let v = client.get(&format!("/v1/failovers/{id}"))?;
        let state = text(&v["state"]);
        let step = v["operation"]["runbook"]["steps"]
            .as_array()
            .and_then(|steps| {
                steps
                    .iter()
                    .find(|s| s["state"] == "RUNNING" || s["state"] == "PENDING")
            })
            .map(|s| format!(" {}: {}", text(&s["name"]), text(&s["result"])))
            .unwrap_or_default();
        let line = format!("failover {id}: {state}{step}");
        if line != shown {
            let _ = if terminal {
                write!(stderr, "\r{line}\x1b[K")
            } else {
                writeln!(stderr, "{line}")
            };
            shown = line;
        }
        let ended = matches!(state.as_str(), "SUCCEEDED" | "FAILED" | "REFUSED" | "LOST");
        if ended || started.elapsed() >= Duration::from_secs(wait.timeout) {
            if terminal {
                let _ = writeln!(stderr);
            }
            out.print(&v, render_failover)?;
            if !ended {
                eprintln!(
                    "error: gave up waiting for failover {id} after {} s; it is still {state}\n\
                     Follow it with: ocadm failover status {id} --wait",
                    wait.timeout
                );
                return Ok(2);
            }
            if exit_code(&v) != 0 {
                eprintln!(
                    "error: failover {id} {}: {}",
                    state.to_lowercase(),
                    text(&v["error"])
                );
            }
            return Ok(exit_code(&v));
        }
        sleep(poll);
    }
}

pub fn drill(client: &Client, out: &Out, args: DrillArgs) -> Result<i32> {
    match args.command {
        Some(DrillCommand::List) => {
            let v = client.get("/v1/drills")?;
            out.print(&v, |v| {
                let rows: Vec<Vec<String>> = list(v, "drills")
                    .iter()
                    .map(|d| {
                        vec![
                            text(&d["operationId"]),
                            text(&d["from"]),
                            text(&d["to"]),
                            text(&d["state"]),
                            text(&d["startedAt"]),
                            d["rtoMs"]
                                .as_i64()
                                .map_or("-".to_owned(), |r| format!("{:.1} s", r as f64 / 1000.0)),
                            d["leaks"].as_array().map_or(0, |l| l.len()).to_string(),
                            text(&d["error"]),
                        ]
                    })
                    .collect();
                render::table(
                    &[
                        "operation",
                        "from",
                        "to",
                        "state",
                        "startedAt",
                        "RTO",
                        "leaks",
                        "error",
                    ],
                    &rows,
                )
            })?;
            Ok(0)
        }
        None => {
            let to = args
                .to
                .clone()
                .context("name the region to drill: ocadm drill --to REGION (or ocadm drill list)")?;
            let mut body = Map::new();
            body.insert("to".into(), json!(to));
            if let Some(s) = args.ready_timeout {
                body.insert("readyTimeoutSeconds".into(), json!(s));
            }
            let reply = client.post("/v1/drills", &Value::Object(body))?;
            let code = crate::accepted(client, out, &format!("Drill to {to}"), &reply, &args.wait)?;
            if args.wait.wait && !out.json {
                let op = text(&reply["operationId"]);
                if let Ok(v) = client.get("/v1/drills") {
                    if let Some(d) = list(&v, "drills").iter().find(|d| text(&d["operationId"]) == op) {
                        say(&format!(
                            "Drill {op}: RTO {}, {} leaked resource(s).\n",
                            d["rtoMs"]
                                .as_i64()
                                .map_or("-".to_owned(), |r| format!("{:.1} s", r as f64 / 1000.0)),
                            d["leaks"].as_array().map_or(0, |l| l.len())
                        ))?;
                    }
                }
            }
            Ok(code)
        }
    }
}
