//! What each step does. Each one checks before it acts, so that running it
//! again after a crash changes nothing that already took effect.

use super::names::*;
use super::{dns_matches, endpoint_record, ClusterSteps, Runner, StepError};
use crate::cloud::{AgentTarget, Agents, Dns};
use crate::domain::ClusterStatus;
use crate::store::{NodeRow, RunbookRow, RunbookStep, StepEnd};
use crate::time::{format_ms, now_ms};
use crate::workflows::reconcile::Target;

type StepResult = Result<StepEnd, StepError>;

fn done(msg: impl Into<String>) -> StepResult {
    Ok(StepEnd::Done(msg.into()))
}

impl<D: Dns, A: Agents> Runner<ClusterSteps<D, A>> {
    /// The cluster a step's argument names.
    fn cluster_of(&self, rb: &RunbookRow, arg: &str) -> Result<i64, StepError> {
        match arg {
            ORIGINAL => Ok(rb.params.original_id),
            REPLACEMENT => rb
                .context
                .replacement_id
                .or(rb.params.replacement_id)
                .ok_or_else(|| StepError::Permanent("the upgrade has no replacement cluster yet".into())),
            other => other
                .parse()
                .map_err(|_| StepError::Permanent(format!("step argument {other:?} names no cluster"))),
        }
    }

    pub(super) async fn execute(&self, rb: &RunbookRow, step: &RunbookStep) -> StepResult {
        match step.name.as_str() {
            BUILD_REPLACEMENT => {
                let id = self.store.create_replacement(rb, &self.owner).await?;
                (self.steps.kick)(Target::Cluster(id)).await;
                let version = rb.params.version.clone().unwrap_or_default();
                done(format!("cluster {id} at version {version}"))
            }
            WAIT_READY => {
                let c = self.store.get_cluster(self.cluster_of(rb, &step.arg)?).await?;
                match c.status_code.as_str() {
                    "READY" => done(format!("cluster {} is READY: {}", c.id, c.status_message)),
                    "FAILED" => Err(StepError::Permanent(format!(
                        "replacement cluster {} FAILED: {}",
                        c.id, c.status_message
                    ))),
                    code => self.wait(format!("cluster {} is {code}: {}", c.id, c.status_message)),
                }
            }
            SWITCH_ENDPOINT => self.switch(rb, step).await,
            VERIFY => self.verify(rb, step).await,
            ROLLBACK_WINDOW => {
                let switched = rb.context.switched_at.unwrap_or(rb.created_at);
                let closes = switched + rb.params.rollback_window_ms;
                if now_ms() >= closes {
                    done(format!("window closed at {}", format_ms(closes)))
                } else {
                    Ok(StepEnd::Wait {
                        until: closes,
                        note: format!(
                            "rollback possible until {} (ocadm clusters rollback {})",
                            format_ms(closes),
                            rb.params.original_id
                        ),
                    })
                }
            }
            RETIRE => {
                let id = self.cluster_of(rb, &step.arg)?;
                let asked = self.store.retire_cluster(rb, id).await?;
                (self.steps.kick)(Target::Cluster(id)).await;
                done(if asked {
                    format!("cluster {id} is being removed")
                } else {
                    format!("cluster {id} was already being removed")
                })
            }
            WAIT_RETIRED => {
                let c = self.store.get_cluster(self.cluster_of(rb, &step.arg)?).await?;
                if c.status_code == ClusterStatus::Terminated.as_str() {
                    done(format!("cluster {} is TERMINATED", c.id))
                } else {
                    self.wait(format!(
                        "cluster {} is {}: {}",
                        c.id, c.status_code, c.status_message
                    ))
                }
            }
            RESTART_NODE => {
                let Some(node) = self.node(rb, &step.arg).await? else {
                    return done(format!("node {} left the cluster; nothing to restart", step.arg));
                };
                let service = rb.params.service.as_deref();
                // Ran before (a runner died after asking, or the answer was
                // lost): a node whose services are coming back up is restarting
                // already, and is not asked again.
                if step.attempts > 1 {
                    if let Ok(report) = self.steps.agents.health(&target(&node)).await {
                        if !report.ready() {
                            return done(format!("{} was already restarting", node.instance_id));
                        }
                    }
                }
                self.steps
                    .agents
                    .restart(&target(&node), service)
                    .await
                    .map_err(|e| StepError::Transient(format!("restart on {}: {e}", node.instance_id)))?;
                done(format!(
                    "restarting {} on {}",
                    service.unwrap_or("every service"),
                    node.instance_id
                ))
            }
            WAIT_NODE_HEALTHY => {
                let Some(node) = self.node(rb, &step.arg).await? else {
                    return done(format!("node {} left the cluster", step.arg));
                };
                match self.steps.agents.health(&target(&node)).await {
                    Ok(report) if report.ready() => {
                        done(format!("{}: all services running", node.instance_id))
                    }
                    Ok(report) => {
                        let down: Vec<String> = report
                            .normalized()
                            .into_iter()
                            .filter(|s| s.state != crate::domain::health::ServiceState::Running)
                            .map(|s| format!("{} {}", s.name, s.state.as_str()))
                            .collect();
                        self.wait(format!("{}: {}", node.instance_id, down.join(", ")))
                    }
                    Err(e) => self.wait(format!("{}: agent not answering: {e}", node.instance_id)),
                }
            }
            other => Err(StepError::Permanent(format!("unknown step {other:?}"))),
        }
    }

    async fn node(&self, rb: &RunbookRow, instance: &str) -> Result<Option<NodeRow>, StepError> {
        Ok(self
            .store
            .nodes_of(rb.params.original_id)
            .await?
            .into_iter()
            .find(|n| n.instance_id == instance && n.lifecycle_state == "InService"))
    }

    async fn switch(&self, rb: &RunbookRow, step: &RunbookStep) -> StepResult {
        let to = self.cluster_of(rb, &step.arg)?;
        let from = if step.arg == REPLACEMENT {
            rb.params.original_id
        } else {
            self.cluster_of(rb, REPLACEMENT)?
        };
        let target = self.store.get_cluster(to).await?;
        // Never move traffic to a replacement that is not READY now.
        if step.arg == REPLACEMENT && target.status_code != ClusterStatus::Ready.as_str() {
            return Err(StepError::Permanent(format!(
                "replacement cluster {to} is {}, not READY; the endpoint stays on cluster {from}",
                target.status_code
            )));
        }
        self.store.move_endpoint(rb, &self.owner, from, to).await?;
        let (Some(zone), Some(record)) = (&self.steps.zone, endpoint_record(&self.store, &target).await?)
        else {
            return done(format!("cluster {to} serves (no DNS zone is configured)"));
        };
        if record.values.is_empty() {
            return Err(StepError::Transient(format!(
                "cluster {to} has no node in service with an address"
            )));
        }
        // UPSERT, then read back: the emulator duplicates on CREATE, and any
        // writer may have raced us.
        self.steps.dns.upsert(&zone.id, &record).await?;
        match dns_matches(&self.steps.dns, &zone.id, &record).await? {
            Ok(()) => done(format!(
                "{} -> {} (cluster {to})",
                record.name,
                record.values.join(", ")
            )),
            Err(mismatch) => Err(StepError::Transient(format!("after UPSERT, {mismatch}"))),
        }
    }

    async fn verify(&self, rb: &RunbookRow, step: &RunbookStep) -> StepResult {
        let id = self.cluster_of(rb, &step.arg)?;
        let c = self.store.get_cluster(id).await?;
        if c.status_code != ClusterStatus::Ready.as_str() {
            return self.wait(format!("cluster {id} is {}: {}", c.status_code, c.status_message));
        }
        if let (Some(zone), Some(record)) = (&self.steps.zone, endpoint_record(&self.store, &c).await?) {
            if let Err(mismatch) = dns_matches(&self.steps.dns, &zone.id, &record).await? {
                return self.wait(mismatch);
            }
        }
        let nodes: Vec<NodeRow> = self
            .store
            .nodes_of(id)
            .await?
            .into_iter()
            .filter(|n| n.lifecycle_state == "InService")
            .collect();
        for n in &nodes {
            match self.steps.agents.health(&target(n)).await {
                Ok(r) if r.ready() => {}
                Ok(_) => return self.wait(format!("{} is not running every service", n.instance_id)),
                Err(e) => return self.wait(format!("{}: agent not answering: {e}", n.instance_id)),
            }
        }
        done(format!(
            "cluster {id} serves{}: {} node(s), every service running",
            c.endpoint.map(|e| format!(" {e}")).unwrap_or_default(),
            nodes.len()
        ))
    }
}

fn target(n: &NodeRow) -> AgentTarget {
    AgentTarget {
        instance_id: n.instance_id.clone(),
        private_ip: n.private_ip.clone(),
    }
}
