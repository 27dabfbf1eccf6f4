//! The lifecycle function: Auto Scaling lifecycle actions, delivered by
//! EventBridge. A launching node joins once its agent reports every service
//! running; a terminating node leaves once its agent has flushed its logs. The
//! work is `shared::workflows::lifecycle`; this crate parses the event and maps
//! the result.

use serde_json::{json, Value};
use shared::cloud::aws::{AutoScalingAdapter, AwsSettings, Ec2Adapter};
use shared::cloud::{agents::HttpAgents, Agents, Compute, Scaling};
use shared::config::HealthConfig;
use shared::store::Store;
use shared::workflows::failover::Gate;
use shared::workflows::lifecycle::{Lifecycle, LifecycleEvent, Outcome};
use shared::workflows::reconcile::Target;
use shared::workflows::wake::Kick;
use tracing::warn;

/// The workflow over the real AWS adapters.
pub type AwsLifecycle = Lifecycle<Ec2Adapter, AutoScalingAdapter, HttpAgents>;

pub fn build(store: Store, settings: AwsSettings, health: &HealthConfig, agents: HttpAgents) -> AwsLifecycle {
    Lifecycle {
        store,
        compute: Ec2Adapter::new(settings.clone()),
        scaling: AutoScalingAdapter::new(settings),
        agents,
        timing: health.timing,
    }
}

/// Handles one event. A malformed event is logged and answered with the reason
/// (a retry would fail the same way); a transient failure is an error, so that
/// Lambda delivers the event again.
pub async fn handle<C: Compute, S: Scaling, A: Agents>(
    lifecycle: &Lifecycle<C, S, A>,
    gate: &Gate,
    kick: Option<&Kick>,
    event: &Value,
) -> Result<Value, anyhow::Error> {
    let event = match LifecycleEvent::parse(event) {
        Ok(e) => e,
        Err(reason) => {
            warn!(%reason, "rejected event");
            return Ok(json!({ "rejected": reason }));
        }
    };
    // Every region gets every lifecycle event (the EventBridge rules forward
    // them to the other DM regions): the active one acts.
    if let Some(answer) = gate.standing_by().await {
        return Ok(answer);
    }
    let outcome = lifecycle.handle(&event).await?;
    let (name, cluster) = match outcome {
        Outcome::NotOurs => ("not-ours", None),
        Outcome::Joined { cluster_id } => ("joined", Some(cluster_id)),
        Outcome::Starting { cluster_id } => ("starting", Some(cluster_id)),
        Outcome::Abandoned { cluster_id } => ("abandoned", Some(cluster_id)),
        Outcome::Left { cluster_id } => ("left", Some(cluster_id)),
        Outcome::AlreadyDone { cluster_id } => ("already-done", Some(cluster_id)),
    };
    // A node joined or left: the reconciler may now finish the cluster's operation.
    if let (Some(kick), Some(id), false) = (kick, cluster, matches!(outcome, Outcome::Starting { .. })) {
        kick(Target::Cluster(id)).await;
    }
    Ok(json!({
        "outcome": name,
        "clusterId": cluster,
        "instanceId": event.action.instance_id,
    }))
}
