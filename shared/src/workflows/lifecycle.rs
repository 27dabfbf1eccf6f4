//! Nodes joining and leaving: the Auto Scaling lifecycle hooks.
//!
//! Every group the DM makes has two hooks ([`node_hooks`]). A launching instance
//! waits in `Pending:Wait` until its agent reports every service running; then the
//! DM sends `CONTINUE` and the node joins. While it is still starting, the DM
//! sends heartbeats, and after the bootstrap timeout it sends `ABANDON` (the group
//! replaces the instance). A terminating instance waits in `Terminating:Wait`
//! while its agent flushes its logs to the staging bucket.
//!
//! The lifecycle function acts on each event at once and, for a slow node, keeps
//! checking for a little while; the health sweep carries on from the store
//! (`nodes.action_token`) every minute after that. Both use [`join_step`], and
//! both treat an action that is already over as done, so a duplicate event, a
//! second function and the sweep can all act on one node safely.

use std::time::Duration;

use serde_json::Value;
use tracing::{info, warn};

use crate::cloud::{
    ActionResult, AgentTarget, Agents, CloudError, CloudErrorKind, Compute, HookSpec, LifecycleAction,
    ProbeError, Scaling, Transition,
};
use crate::domain::health::Probe;
use crate::store::{AuditEntry, ClusterRow, JoiningNode, Store, StoreError};
use crate::time::now_ms;
use crate::workflows::reconcile::resource_name;

/// The hook that holds a launching node until its agent is ready.
pub const LAUNCH_HOOK: &str = "okera-node-launch";
/// The hook that holds a leaving node while its agent flushes its logs.
pub const TERMINATE_HOOK: &str = "okera-node-terminate";
/// Who the audit log names for what the lifecycle function and the sweep do.
pub const PRINCIPAL: &str = "dm:health";

/// The hooks every cluster group has. A launch that nobody completes (the DM is
/// down) is abandoned, so that no unchecked node ever serves; a termination
/// nobody completes goes on, so that scale-in never sticks.
pub fn node_hooks() -> Vec<HookSpec> {
    vec![
        HookSpec {
            name: LAUNCH_HOOK.into(),
            transition: Transition::Launching,
            heartbeat_timeout_s: 300,
            default_result: "ABANDON",
        },
        HookSpec {
            name: TERMINATE_HOOK.into(),
            transition: Transition::Terminating,
            heartbeat_timeout_s: 120,
            default_result: "CONTINUE",
        },
    ]
}

/// How long things may take.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A node whose agent is not ready this long after it launched is abandoned.
    pub bootstrap_timeout_ms: i64,
    /// How long the lifecycle function itself keeps checking a starting node
    /// before it leaves it to the sweep.
    pub join_wait: Duration,
    /// The pause between those checks.
    pub join_poll: Duration,
    /// The most a leaving node's log flush may take.
    pub flush_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            bootstrap_timeout_ms: 15 * 60 * 1000,
            join_wait: Duration::from_secs(20),
            join_poll: Duration::from_secs(1),
            flush_timeout: Duration::from_secs(60),
        }
    }
}

/// A lifecycle action, as EventBridge delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub region: String,
    pub transition: Transition,
    pub action: LifecycleAction,
}

impl LifecycleEvent {
    /// Parses an `EC2 Instance-launch Lifecycle Action` or `EC2
    /// Instance-terminate Lifecycle Action` event; the error says what is wrong.
    pub fn parse(event: &Value) -> Result<LifecycleEvent, String> {
        let text = |v: &Value, field: &str| -> Result<String, String> {
            match v.get(field) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(format!("{field} must be a non-empty string")),
                None => Err(format!("{field} is missing")),
            }
        };
        if text(event, "source")? != "aws.autoscaling" {
            return Err("source must be aws.autoscaling".into());
        }
        let detail = event
            .get("detail")
            .filter(|d| d.is_object())
            .ok_or("detail is missing")?;
        let transition = match text(detail, "LifecycleTransition")?.as_str() {
            "autoscaling:EC2_INSTANCE_LAUNCHING" => Transition::Launching,
            "autoscaling:EC2_INSTANCE_TERMINATING" => Transition::Terminating,
            other => {
                return Err(format!(
                    "detail.LifecycleTransition {other:?} is not a lifecycle transition"
                ))
            }
        };
        let field = |name: &str| text(detail, name).map_err(|e| format!("detail.{e}"));
        Ok(LifecycleEvent {
            region: text(event, "region")?,
            transition,
            action: LifecycleAction {
                group: field("AutoScalingGroupName")?,
                hook: field("LifecycleHookName")?,
                token: field("LifecycleActionToken")?,
                instance_id: field("EC2InstanceId")?,
            },
        })
    }
}

/// What handling one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The group is not one of the DM's clusters; nothing was done.
    NotOurs,
    /// The node's agent is ready and the node joined.
    Joined { cluster_id: i64 },
    /// The agent is still starting; the sweep will check again.
    Starting { cluster_id: i64 },
    /// The node did not become ready in time and was abandoned.
    Abandoned { cluster_id: i64 },
    /// The node left, after its logs were flushed (or the flush gave up).
    Left { cluster_id: i64 },
    /// The action was already over (a duplicate event, or the sweep got there).
    AlreadyDone { cluster_id: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

/// What to do with a joining node after a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinStep {
    /// Every service runs: complete the action with `CONTINUE`.
    Continue(Probe),
    /// Not yet: keep the action alive.
    Wait(Probe),
    /// Too late: complete the action with `ABANDON`.
    Abandon(Probe),
}

/// Decides a joining node's fate from a probe. Pure.
pub fn join_step(probe: Probe, joining_since: i64, now: i64, bootstrap_timeout_ms: i64) -> JoinStep {
    if probe.healthy() {
        JoinStep::Continue(probe)
    } else if now - joining_since >= bootstrap_timeout_ms {
        JoinStep::Abandon(probe)
    } else {
        JoinStep::Wait(probe)
    }
}

/// A probe's result as the store keeps it.
pub fn probe_of(result: Result<crate::domain::health::AgentReport, ProbeError>) -> Probe {
    match result {
        Ok(report) => Probe::from_report(&report),
        Err(e) => Probe::Failed {
            reason: e.to_string(),
        },
    }
}

/// Completes a lifecycle action; one that is already over counts as done.
pub async fn complete<S: Scaling>(
    scaling: &S,
    region: &str,
    action: &LifecycleAction,
    result: ActionResult,
) -> Result<bool, CloudError> {
    match scaling.complete_action(region, action, result).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind == CloudErrorKind::NotFound => {
            info!(instance = %action.instance_id, "lifecycle action already over");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The cluster a group belongs to, if the DM made it: `okera-<id>-<name>` with
/// a live cluster of that id and name.
pub async fn cluster_of_group(store: &Store, group: &str) -> Result<Option<ClusterRow>, StoreError> {
    let Some(id) = group
        .strip_prefix("okera-")
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(id, _)| id.parse::<i64>().ok())
    else {
        return Ok(None);
    };
    match store.get_cluster(id).await {
        Ok(c) if resource_name(&c) == group => Ok(Some(c)),
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The lifecycle function's workflow.
pub struct Lifecycle<C, S, A> {
    pub store: Store,
    pub compute: C,
    pub scaling: S,
    pub agents: A,
    pub timing: Timing,
}

impl<C: Compute, S: Scaling, A: Agents> Lifecycle<C, S, A> {
    pub async fn handle(&self, event: &LifecycleEvent) -> Result<Outcome, LifecycleError> {
        let Some(cluster) = cluster_of_group(&self.store, &event.action.group).await? else {
            info!(group = %event.action.group, "lifecycle event for a group the DM does not own; ignored");
            return Ok(Outcome::NotOurs);
        };
        match event.transition {
            Transition::Launching => Box::pin(self.launch(event, cluster.id)).await,
            Transition::Terminating => Box::pin(self.terminate(event, cluster.id)).await,
        }
    }

    async fn launch(&self, event: &LifecycleEvent, cluster_id: i64) -> Result<Outcome, LifecycleError> {
        let (region, action) = (&event.region, &event.action);
        let Some(instance) = self.compute.instance(region, &action.instance_id).await? else {
            complete(&self.scaling, region, action, ActionResult::Abandon).await?;
            return Ok(Outcome::AlreadyDone { cluster_id });
        };
        let since = self
            .store
            .record_joining(
                &JoiningNode {
                    instance_id: instance.id.clone(),
                    cluster_id,
                    availability_zone: instance.availability_zone.clone(),
                    private_ip: instance.private_ip.clone(),
                    launched_at: instance.launched_at,
                    hook: action.hook.clone(),
                    token: action.token.clone(),
                },
                now_ms(),
            )
            .await?;
        let target = AgentTarget {
            instance_id: instance.id.clone(),
            private_ip: instance.private_ip.clone(),
        };
        let started = tokio::time::Instant::now();
        loop {
            let probe = probe_of(self.agents.health(&target).await);
            match join_step(probe, since, now_ms(), self.timing.bootstrap_timeout_ms) {
                JoinStep::Continue(p) => {
                    let done = complete(&self.scaling, region, action, ActionResult::Continue).await?;
                    self.store.record_probe(&instance.id, &p, true, now_ms()).await?;
                    info!(instance = %instance.id, cluster_id, "node ready; joined");
                    return Ok(if done {
                        Outcome::Joined { cluster_id }
                    } else {
                        Outcome::AlreadyDone { cluster_id }
                    });
                }
                JoinStep::Abandon(p) => {
                    warn!(instance = %instance.id, cluster_id, probe = ?p, "node not ready in time; abandoning");
                    complete(&self.scaling, region, action, ActionResult::Abandon).await?;
                    self.store
                        .remove_node(&instance.id, &abandon_audit(cluster_id, &instance.id, &p))
                        .await?;
                    return Ok(Outcome::Abandoned { cluster_id });
                }
                JoinStep::Wait(p) => {
                    self.store.record_probe(&instance.id, &p, false, now_ms()).await?;
                    if started.elapsed() >= self.timing.join_wait {
                        return match self.scaling.heartbeat(region, action).await {
                            Ok(()) => Ok(Outcome::Starting { cluster_id }),
                            Err(e) if e.kind == CloudErrorKind::NotFound => {
                                Ok(Outcome::AlreadyDone { cluster_id })
                            }
                            Err(e) => Err(e.into()),
                        };
                    }
                    tokio::time::sleep(self.timing.join_poll).await;
                }
            }
        }
    }

    async fn terminate(&self, event: &LifecycleEvent, cluster_id: i64) -> Result<Outcome, LifecycleError> {
        let (region, action) = (&event.region, &event.action);
        let private_ip = match self.store.node(&action.instance_id).await? {
            Some(n) if n.private_ip.is_some() => n.private_ip,
            _ => self
                .compute
                .instance(region, &action.instance_id)
                .await?
                .and_then(|i| i.private_ip),
        };
        let target = AgentTarget {
            instance_id: action.instance_id.clone(),
            private_ip,
        };
        let flushed =
            match tokio::time::timeout(self.timing.flush_timeout, self.agents.flush_logs(&target)).await {
                Ok(Ok(())) => "its logs were flushed to the staging bucket".to_owned(),
                Ok(Err(e)) => format!("its log flush failed: {e}"),
                Err(_) => format!(
                    "its log flush did not finish within {} s",
                    self.timing.flush_timeout.as_secs()
                ),
            };
        info!(instance = %action.instance_id, cluster_id, "{flushed}");
        self.store
            .remove_node(
                &action.instance_id,
                &AuditEntry {
                    principal: PRINCIPAL.into(),
                    action: "NODE_LEFT".into(),
                    target: format!("cluster/{cluster_id}"),
                    detail: format!("node {} left; {flushed}", action.instance_id),
                },
            )
            .await?;
        complete(&self.scaling, region, action, ActionResult::Continue).await?;
        Ok(Outcome::Left { cluster_id })
    }
}

/// The audit row of a node abandoned at launch.
pub fn abandon_audit(cluster_id: i64, instance_id: &str, probe: &Probe) -> AuditEntry {
    let why = match probe {
        Probe::Failed { reason } => reason.clone(),
        Probe::Answered { services } => services
            .iter()
            .filter(|s| s.state != crate::domain::health::ServiceState::Running)
            .map(|s| format!("{} {}", s.name, s.state.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
    };
    AuditEntry {
        principal: PRINCIPAL.into(),
        action: "NODE_ABANDONED".into(),
        target: format!("cluster/{cluster_id}"),
        detail: format!("node {instance_id} was not ready before the bootstrap timeout ({why}); abandoned"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::health::{ServiceHealth, ServiceState, SERVICES};

    fn sample(name: &str) -> Value {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect("sample event")).expect("sample is JSON")
    }

    #[test]
    fn parses_the_samples() {
        let launch = LifecycleEvent::parse(&sample("lifecycle-launch.json")).unwrap();
        assert_eq!(launch.transition, Transition::Launching);
        assert_eq!(launch.action.hook, LAUNCH_HOOK);
        let terminate = LifecycleEvent::parse(&sample("lifecycle-terminate.json")).unwrap();
        assert_eq!(terminate.transition, Transition::Terminating);
        assert_eq!(terminate.action.hook, TERMINATE_HOOK);
    }

    #[test]
    fn bad_events_name_what_is_wrong() {
        let good = sample("lifecycle-launch.json");
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "wrong source",
                Box::new(|v| v["source"] = "aws.ec2".into()),
                "source must be aws.autoscaling",
            ),
            (
                "no detail",
                Box::new(|v| v["detail"] = Value::Null),
                "detail is missing",
            ),
            (
                "no token",
                Box::new(|v| {
                    v["detail"]
                        .as_object_mut()
                        .unwrap()
                        .remove("LifecycleActionToken");
                }),
                "detail.LifecycleActionToken is missing",
            ),
            (
                "numeric instance",
                Box::new(|v| v["detail"]["EC2InstanceId"] = 5.into()),
                "detail.EC2InstanceId must be a non-empty string",
            ),
            (
                "test notification",
                Box::new(|v| v["detail"]["LifecycleTransition"] = "autoscaling:TEST_NOTIFICATION".into()),
                "is not a lifecycle transition",
            ),
            (
                "no region",
                Box::new(|v| v["region"] = "".into()),
                "region must be a non-empty string",
            ),
        ];
        for (name, edit, want) in cases {
            let mut v = good.clone();
            edit(&mut v);
            let err = LifecycleEvent::parse(&v).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
        assert!(LifecycleEvent::parse(&Value::Array(vec![])).is_err());
    }

    fn answered(state: ServiceState) -> Probe {
        Probe::Answered {
            services: SERVICES
                .iter()
                .map(|s| ServiceHealth {
                    name: (*s).into(),
                    state,
                    message: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn join_steps() {
        let ready = answered(ServiceState::Running);
        let starting = answered(ServiceState::Starting);
        let down = Probe::Failed {
            reason: "refused".into(),
        };
        assert_eq!(
            join_step(ready.clone(), 0, 10_000_000, 1000),
            JoinStep::Continue(ready)
        );
        assert_eq!(
            join_step(starting.clone(), 0, 999, 1000),
            JoinStep::Wait(starting.clone())
        );
        assert_eq!(
            join_step(starting.clone(), 0, 1000, 1000),
            JoinStep::Abandon(starting)
        );
        assert_eq!(join_step(down.clone(), 0, 5, 1000), JoinStep::Wait(down));
    }
}
