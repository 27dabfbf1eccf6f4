//! The triggers AWS would fire, run locally: the health sweep's EventBridge
//! schedule, the log-rotation schedule, and the EventBridge rule that delivers
//! Auto Scaling lifecycle actions. The sweep and the lifecycle handler get the
//! same JSON that AWS sends.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use log_rotation::Logs;
use serde_json::json;
use shared::cloud::aws::S3Adapter;
use shared::domain::logs::LogClock;
use shared::workflows::failover::Gate;
use shared::workflows::wake::Kick;
use tokio::sync::Notify;
use tracing::{error, info, warn};

/// The event an EventBridge schedule sends.
fn scheduled_event(rule: &str) -> serde_json::Value {
    json!({
        "version": "0",
        "id": format!("dm-local-{}", shared::time::now_ms()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": shared::time::format_ms(shared::time::now_ms()),
        "region": "local",
        "resources": [format!("arn:aws:events:local:000000000000:rule/{rule}")],
        "detail": {}
    })
}

/// Runs the reconciler on every tick of its schedule, through its handler (so
/// a standby region does nothing).
pub async fn reconcile_loop(reconciler: Arc<reconciler::AwsReconciler>, gate: Gate, every: Duration) {
    let event = scheduled_event("okera-dm-reconcile");
    loop {
        tokio::time::sleep(every).await;
        match reconciler::handle(&reconciler, &gate, &event).await {
            Ok(answer) => {
                for e in answer["errors"].as_array().into_iter().flatten() {
                    error!(error = %e, "reconcile");
                }
            }
            Err(e) => error!(error = %e, "reconcile run failed"),
        }
    }
}

/// Runs a health sweep every `every`. Its metric lines (CloudWatch Embedded
/// Metric Format) are appended to `metrics_log`, where Lambda would print them
/// for CloudWatch Logs.
pub async fn sweep_loop(
    sweeper: Arc<health_sweep::AwsSweeper>,
    gate: Gate,
    every: Duration,
    metrics_log: PathBuf,
) {
    loop {
        tokio::time::sleep(every).await;
        let lines = std::sync::Mutex::new(Vec::new());
        let emit = |line: &str| lines.lock().expect("metrics buffer").push(line.to_owned());
        match health_sweep::handle(&sweeper, &gate, &scheduled_event("okera-dm-health-sweep"), &emit).await {
            Ok(summary) => info!(%summary, "health sweep"),
            Err(e) => error!(error = %e, "health sweep failed"),
        }
        let lines = lines.into_inner().expect("metrics buffer");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_log)
            .and_then(|mut f| lines.iter().try_for_each(|l| writeln!(f, "{l}")));
        if let Err(e) = written {
            warn!(error = %e, path = %metrics_log.display(), "cannot write the metrics log");
        }
    }
}

/// The longest default period of log rotation.
const MAX_DEFAULT_ROTATION: Duration = Duration::from_secs(300);

/// How often log rotation runs when `--rotation-interval` is not given: once per
/// log hour, but at least every 5 minutes. So with real hours it runs every 5
/// minutes (an hour is compacted within minutes of closing, after its grace),
/// and with `--hour-seconds 60` every minute.
pub fn default_rotation_interval(clock: &LogClock) -> Duration {
    let hour = Duration::from_millis(clock.real_duration_ms(shared::domain::logs::HOUR_MS).max(1000) as u64);
    hour.min(MAX_DEFAULT_ROTATION)
}

/// Hands the log-rotation function its scheduled event every `every`, as its
/// EventBridge schedule does in AWS; appends each run's answer to `report_log`
/// and its metric line to `metrics_log`, each a JSON line.
pub async fn rotation_loop(
    logs: Arc<Logs<S3Adapter>>,
    gate: Gate,
    every: Duration,
    report_log: PathBuf,
    metrics_log: PathBuf,
) {
    let event = json!({ "detail-type": "Scheduled Event", "source": "aws.events", "detail": {} });
    loop {
        tokio::time::sleep(every).await;
        let emit = |line: &str| append_line(&metrics_log, line);
        let answer = match logs.handle(&gate, &event, &emit).await {
            Ok(answer) => answer,
            Err(e) => {
                error!(error = %e, "log rotation failed");
                json!({ "error": e.to_string() })
            }
        };
        let line = json!({
            "at": shared::time::format_ms(shared::time::now_ms()),
            "logTime": shared::time::format_ms(logs.rotation.clock.now()),
            "run": answer,
        });
        append_line(&report_log, &line.to_string());
    }
}

/// Appends one line to a log file of the runner (metrics, rotation answers).
pub fn append_line(path: &Path, line: &str) {
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        warn!(error = %e, path = %path.display(), "cannot append to the report log");
    }
}

/// Polls the emulator for lifecycle events every 200 ms and hands each to
/// the lifecycle handler, in its own task (a joining node may take a while).
/// Every region gets every event, as the EventBridge rules forward them to the
/// other DM regions; the active one acts.
pub async fn lifecycle_pump(
    lifecycle: Arc<lifecycle::AwsLifecycle>,
    gate: Gate,
    kick: Kick,
    endpoint: String,
    account: String,
) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (endpoint, account2) = (endpoint.clone(), account.clone());
        let events =
            tokio::task::spawn_blocking(move || emulator::lifecycle_events_at(&endpoint, &account2, seen))
                .await;
        let events = match events {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot read lifecycle events from the emulator");
                continue;
            }
            Err(e) => {
                error!(error = %e, "lifecycle event reader panicked");
                continue;
            }
        };
        for (seq, text) in events {
            seen = seq;
            let (lifecycle, kick, gate) = (lifecycle.clone(), kick.clone(), gate.clone());
            tokio::spawn(async move {
                let event: serde_json::Value = match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(e) => return warn!(error = %e, "lifecycle event is not JSON"),
                };
                match lifecycle::handle(&lifecycle, &gate, Some(&kick), &event).await {
                    Ok(outcome) => info!(%outcome, "lifecycle event"),
                    Err(e) => error!(error = %e, "lifecycle event failed"),
                }
            });
        }
    }
}

/// Runs the runbooks that are due, when the API submits one and every `every`.
/// Each runbook runs in its own task, so that one waiting runbook does not hold
/// up the others; the store's lease keeps two tasks off one runbook.
pub async fn runbook_loop<D, A>(
    runner: Arc<shared::workflows::runbook::ClusterRunner<D, A>>,
    gate: Gate,
    wake: Arc<Notify>,
    every: Duration,
) where
    D: shared::cloud::Dns + 'static,
    A: shared::cloud::Agents + 'static,
{
    use shared::workflows::runbook::Steps;
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
        if !gate.role().await.is_active() {
            continue;
        }
        let kinds = shared::workflows::runbook::ClusterSteps::<D, A>::kinds();
        let due = match runner.store.due_runbooks(shared::time::now_ms(), kinds).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "listing due runbooks");
                continue;
            }
        };
        for id in due {
            let runner = runner.clone();
            tokio::spawn(async move {
                match runner.run(id).await {
                    Ok(outcome) => tracing::debug!(runbook = id, ?outcome, "runbook run"),
                    Err(e) => tracing::error!(runbook = id, error = %e, "runbook run failed"),
                }
            });
        }
    }
}

/// The failover function's schedule: every `every`, its scheduled event.
pub async fn failover_loop(failover: Arc<failover::AwsFailover>, every: Duration) {
    let event = scheduled_event("okera-dm-failover");
    loop {
        tokio::time::sleep(every).await;
        match failover::handle(&failover, &event).await {
            Ok(answer) => tracing::debug!(%answer, "failover schedule"),
            Err(e) => error!(error = %e, "failover schedule failed"),
        }
    }
}

/// Polls the emulator for the CloudWatch alarm state changes of `region` every
/// half second and hands each to the region's failover function, as the
/// region's EventBridge rule for alarm state changes does.
pub async fn alarm_pump(
    failover: Arc<failover::AwsFailover>,
    region: String,
    endpoint: String,
    account: String,
) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (endpoint, account) = (endpoint.clone(), account.clone());
        let events =
            tokio::task::spawn_blocking(move || emulator::alarm_events_at(&endpoint, &account, seen)).await;
        let events = match events {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot read alarm events from the emulator");
                continue;
            }
            Err(e) => {
                error!(error = %e, "alarm event reader panicked");
                continue;
            }
        };
        for (seq, text) in events {
            seen = seq;
            let event: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    warn!(error = %e, "alarm event is not JSON");
                    continue;
                }
            };
            if event["region"].as_str() != Some(region.as_str()) {
                continue;
            }
            let failover = failover.clone();
            tokio::spawn(async move {
                match failover::handle(&failover, &event).await {
                    Ok(answer) => info!(%answer, "alarm event"),
                    Err(e) => error!(error = %e, "alarm event failed"),
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_runs_once_per_log_hour_at_most_every_five_minutes() {
        assert_eq!(
            default_rotation_interval(&LogClock::WALL),
            Duration::from_secs(300)
        );
        let now = shared::time::now_ms();
        for (hour, every) in [(60, 60), (10, 10), (600, 300), (3600, 300)] {
            let clock = LogClock::shortened(hour, LogClock::WALL, now);
            assert_eq!(
                default_rotation_interval(&clock),
                Duration::from_secs(every),
                "{hour}"
            );
        }
    }
}
