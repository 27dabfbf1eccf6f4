//! The health-sweep function: on its schedule, judge every cluster's health
//! from its nodes' agents, finish joins the lifecycle function left to it, and
//! repair broken nodes. The work is `shared::workflows::sweep`; this crate
//! parses the event, writes the metrics and maps the result.

use serde_json::{json, Value};
use shared::cloud::aws::{AutoScalingAdapter, AwsSettings, Ec2Adapter};
use shared::cloud::{agents::HttpAgents, Agents, Compute, Scaling};
use shared::config::HealthConfig;
use shared::metrics::emf_lines;
use shared::store::Store;
use shared::workflows::failover::Gate;
use shared::workflows::sweep::Sweeper;
use tracing::warn;

/// The sweep over the real AWS adapters.
pub type AwsSweeper = Sweeper<Ec2Adapter, AutoScalingAdapter, HttpAgents>;

pub fn build(
    store: Store,
    settings: AwsSettings,
    health: &HealthConfig,
    agents: HttpAgents,
    owner: String,
) -> AwsSweeper {
    Sweeper {
        store,
        compute: Ec2Adapter::new(settings.clone()),
        scaling: AutoScalingAdapter::new(settings),
        agents,
        settings: health.sweep,
        owner,
    }
}

/// Accepts only the schedule's event: an EventBridge `Scheduled Event`.
pub fn parse_event(event: &Value) -> Result<(), String> {
    match (
        event.get("detail-type").and_then(Value::as_str),
        event.get("source").and_then(Value::as_str),
    ) {
        (Some("Scheduled Event"), Some("aws.events")) => Ok(()),
        _ => Err(format!(
            "expected an EventBridge \"Scheduled Event\" from aws.events, got detail-type {} and source {}",
            event.get("detail-type").unwrap_or(&Value::Null),
            event.get("source").unwrap_or(&Value::Null)
        )),
    }
}

/// Handles one event: runs a sweep, hands each metric line (CloudWatch
/// Embedded Metric Format) to `emit`, and answers a summary. A malformed event
/// is refused with the reason.
pub async fn handle<C: Compute, S: Scaling, A: Agents>(
    sweeper: &Sweeper<C, S, A>,
    gate: &Gate,
    event: &Value,
    emit: &(dyn Fn(&str) + Sync),
) -> Result<Value, anyhow::Error> {
    if let Err(reason) = parse_event(event) {
        warn!(%reason, "rejected event");
        return Ok(json!({ "rejected": reason }));
    }
    if let Some(answer) = gate.standing_by().await {
        return Ok(answer);
    }
    let report = sweeper.sweep().await?;
    for sample in &report.samples {
        for line in emf_lines(sample) {
            emit(&line);
        }
    }
    Ok(json!({
        "skipped": report.skipped,
        "clusters": report.clusters,
        "nodes": report.nodes,
        "probes": report.probes,
        "probeFailures": report.probe_failures,
        "unprobed": report.unprobed,
        "changed": report.changed,
        "joined": report.joined,
        "abandoned": report.abandoned,
        "repairs": report.repairs,
        "durationMs": report.duration_ms,
        "errors": report.errors,
    }))
}
