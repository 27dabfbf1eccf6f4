//! `--wait`: polls `GET /v1/operations/{id}` until the operation is `SUCCEEDED`,
//! `FAILED` or `CANCELLED`, or until the timeout, and shows its progress on
//! stderr (a progress bar for a runbook: upgrade, rollback, restart). On a
//! terminal the progress line is rewritten in place; otherwise (a log, a pipe)
//! a line is printed each time it changes.

use std::io::{IsTerminal, Write};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::client::Client;
use crate::render;

/// The default time between two polls; `OCADM_POLL_MS` overrides it.
const DEFAULT_POLL: Duration = Duration::from_secs(1);

pub enum Outcome {
    Succeeded(Value),
    Failed(Value),
    Cancelled(Value),
    /// Still `PENDING` or `RUNNING` when the time was up; holds the last state seen.
    TimedOut(Value),
    /// An upgrade that moved traffic and now waits out its rollback window
    /// (only when the caller asked to stop there).
    InWindow(Value),
}

/// Whether `op` is an upgrade waiting out its rollback window.
fn in_window(op: &Value) -> bool {
    let rb = &op["runbook"];
    rb["kind"] == "UPGRADE"
        && rb["steps"].as_array().is_some_and(|steps| {
            steps
                .iter()
                .any(|s| s["name"] == "rollback-window" && s["state"] == "RUNNING")
        })
}

/// The time between polls: `OCADM_POLL_MS` milliseconds if set, else 1 s.
pub fn poll_interval() -> Duration {
    std::env::var("OCADM_POLL_MS")
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_POLL)
}

/// Follows operation `id`. With `stop_at_window`, an upgrade counts as done once
/// the endpoint moved and was verified: its rollback window may last hours.
pub fn wait(
    client: &Client,
    id: u64,
    timeout: Duration,
    poll: Duration,
    stop_at_window: bool,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut stderr = std::io::stderr();
    let terminal = stderr.is_terminal();
    let mut shown = String::new();
    let finish_line = |stderr: &mut std::io::Stderr, shown: &str| {
        if terminal && !shown.is_empty() {
            let _ = writeln!(stderr);
        }
    };
    loop {
        let op = match client.get(&format!("/v1/operations/{id}")) {
            Ok(op) => op,
            Err(e) => {
                finish_line(&mut stderr, &shown);
                return Err(e);
            }
        };
        let line = render::progress(&op);
        if line != shown {
            // On a terminal: back to the line's start, the line, erase what is left.
            let _ = if terminal {
                write!(stderr, "\r{line}\x1b[K")
            } else {
                writeln!(stderr, "{line}")
            };
            let _ = stderr.flush();
            shown = line;
        }
        let state = op["state"].as_str().unwrap_or_default();
        let ended = match state {
            "SUCCEEDED" => Some(Outcome::Succeeded as fn(Value) -> Outcome),
            "FAILED" => Some(Outcome::Failed as fn(Value) -> Outcome),
            "CANCELLED" => Some(Outcome::Cancelled as fn(Value) -> Outcome),
            _ => None,
        };
        if let Some(outcome) = ended {
            finish_line(&mut stderr, &shown);
            return Ok(outcome(op));
        }
        if stop_at_window && in_window(&op) {
            finish_line(&mut stderr, &shown);
            return Ok(Outcome::InWindow(op));
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            finish_line(&mut stderr, &shown);
            return Ok(Outcome::TimedOut(op));
        }
        sleep(poll.min(left));
    }
}
