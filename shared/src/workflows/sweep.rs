//! The health sweep: every minute, judge every cluster from its nodes' agents,
//! finish the joins the lifecycle function left, and repair broken nodes.
//!
//! It is built to stay cheap at thousands of clusters:
//! - the store is read with two queries and written in batches
//!   ([`crate::store::BATCH`] rows per statement);
//! - AWS is read per region with one `DescribeInstances` call per 1,000
//!   instances and one `DescribeAutoScalingGroups` call per 50 clusters;
//! - agents are probed concurrently, at most `concurrency` at once, each probe
//!   bounded in time and size, and the sweep stops starting probes at its
//!   deadline (a node not probed keeps its last probe).
//!
//! A named lease keeps sweeps from overlapping: a sweep that finds another
//! running does nothing. A sweep killed halfway leaves whole batches behind,
//! and its lease expires.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tracing::{info, warn};

use crate::cloud::{ActionResult, AgentTarget, Agents, CloudErrorKind, Compute, Group, Instance, Scaling};
use crate::domain::health::{evaluate, ClusterHealth, HealthCode, NodeView, Probe};
use crate::metrics::{ClusterSample, SweepSample};
use crate::store::{
    AuditEntry, HealthWrite, NodeRow, NodeUpdate, Store, StoreError, SweepCluster, SweepWrite, SWEEP_LEASE,
};
use crate::time::now_ms;
use crate::workflows::lifecycle::{abandon_audit, complete, join_step, probe_of, JoinStep, PRINCIPAL};

/// How the sweep behaves.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// Probes in flight at once.
    pub concurrency: usize,
    /// No probe starts after this much of the sweep has passed.
    pub deadline: Duration,
    /// A node unhealthy this long is replaced.
    pub repair_after_ms: i64,
    /// At most this share of a cluster's nodes is being replaced at once
    /// (at least one node).
    pub repair_max_share: f64,
    /// A joining node not ready this long after it launched is abandoned.
    pub bootstrap_timeout_ms: i64,
    /// How long the sweep's lease lasts; a killed sweep blocks the next for at
    /// most this long.
    pub lease_ms: i64,
}

impl Default for SweepSettings {
    fn default() -> Self {
        SweepSettings {
            concurrency: 64,
            deadline: Duration::from_secs(40),
            repair_after_ms: 5 * 60 * 1000,
            repair_max_share: 0.34,
            bootstrap_timeout_ms: 15 * 60 * 1000,
            lease_ms: 110_000,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepReport {
    /// Another sweep held the lease; this one did nothing.
    pub skipped: bool,
    pub clusters: usize,
    pub nodes: usize,
    pub probes: usize,
    pub probe_failures: usize,
    /// Nodes whose probe did not start before the deadline.
    pub unprobed: usize,
    /// Clusters whose code or message changed.
    pub changed: usize,
    pub joined: usize,
    pub abandoned: usize,
    pub repairs: usize,
    pub db_round_trips: usize,
    pub duration_ms: u64,
    /// One per region, for the metrics.
    pub samples: Vec<SweepSample>,
    /// Regions or nodes that could not be handled this time.
    pub errors: Vec<String>,
}

/// One node of a cluster as this sweep sees it.
#[derive(Debug, Clone)]
struct SweptNode {
    instance: Instance,
    lifecycle_state: String,
    stored: Option<NodeRow>,
    /// This sweep's probe, if it made one.
    probe: Option<Probe>,
}

impl SweptNode {
    fn last_probe(&self) -> Option<&Probe> {
        self.probe
            .as_ref()
            .or_else(|| self.stored.as_ref().and_then(|s| s.probe.as_ref()))
    }

    fn view(&self) -> NodeView {
        NodeView {
            instance_id: self.instance.id.clone(),
            lifecycle_state: self.lifecycle_state.clone(),
            probe: self.last_probe().cloned(),
        }
    }

    fn probe_due(&self) -> bool {
        self.instance.state == "running" && !self.lifecycle_state.starts_with("Terminating")
    }
}

/// Which nodes of a steady cluster to replace now: those unhealthy for
/// `repair_after_ms`, oldest first, as long as the nodes already being replaced
/// and these stay within the cluster's share. Pure.
/// A node as repairs see it: instance id, lifecycle state, unhealthy since,
/// repair requested at.
type RepairState = (String, String, Option<i64>, Option<i64>);

fn plan_repairs(num_nodes: i64, nodes: &[RepairState], now: i64, s: &SweepSettings) -> Vec<String> {
    let cap = ((num_nodes as f64 * s.repair_max_share).floor() as usize).max(1);
    let in_flight = nodes
        .iter()
        .filter(|(_, state, _, requested)| state != "InService" || requested.is_some())
        .count();
    let mut due: Vec<(&String, i64)> = nodes
        .iter()
        .filter(|(_, state, _, requested)| state == "InService" && requested.is_none())
        .filter_map(|(id, _, since, _)| since.filter(|t| now - t >= s.repair_after_ms).map(|t| (id, t)))
        .collect();
    due.sort_by_key(|(id, t)| (*t, (*id).clone()));
    due.into_iter()
        .take(cap.saturating_sub(in_flight))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The sweep's dependencies.
pub struct Sweeper<C, S, A> {
    pub store: Store,
    pub compute: C,
    pub scaling: S,
    pub agents: A,
    pub settings: SweepSettings,
    /// Who holds the lease (unique per process and run).
    pub owner: String,
}

impl<C: Compute, S: Scaling, A: Agents> Sweeper<C, S, A> {
    /// Runs one sweep, unless another holds the lease.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let started = tokio::time::Instant::now();
        if !self
            .store
            .claim_lease(SWEEP_LEASE, &self.owner, self.settings.lease_ms)
            .await?
        {
            info!("another health sweep is running; this one does nothing");
            return Ok(SweepReport {
                skipped: true,
                db_round_trips: 1,
                ..SweepReport::default()
            });
        }
        let result = Box::pin(self.run(started)).await;
        self.store.release_lease(SWEEP_LEASE, &self.owner).await?;
        let mut report = result?;
        report.db_round_trips += 2;
        report.duration_ms = started.elapsed().as_millis() as u64;
        for s in &mut report.samples {
            s.duration_ms = report.duration_ms;
        }
        Ok(report)
    }

    async fn run(&self, started: tokio::time::Instant) -> Result<SweepReport, StoreError> {
        let at = now_ms();
        let (clusters, stored) = tokio::join!(self.store.sweep_clusters(), self.store.all_nodes());
        let (clusters, stored) = (clusters?, stored?);
        let mut report = SweepReport {
            clusters: clusters.len(),
            db_round_trips: 2,
            ..SweepReport::default()
        };
        let mut stored: HashMap<String, NodeRow> =
            stored.into_iter().map(|n| (n.instance_id.clone(), n)).collect();
        let mut by_region: BTreeMap<&str, Vec<&SweepCluster>> = BTreeMap::new();
        for c in &clusters {
            by_region.entry(c.region.as_str()).or_default().push(c);
        }

        // Observe, region by region, in batched calls.
        let mut members: Vec<(&SweepCluster, Vec<SweptNode>)> = Vec::new();
        let mut observed_clusters = HashSet::new();
        for (region, list) in &by_region {
            let names: Vec<String> = list.iter().filter_map(|c| c.asg_name.clone()).collect();
            let (instances, groups) = tokio::join!(
                self.compute.managed_instances(region),
                self.scaling.groups_named(region, &names)
            );
            let (instances, groups) = match (instances, groups) {
                (Ok(i), Ok(g)) => (i, g),
                (Err(e), _) | (_, Err(e)) => {
                    warn!(region, error = %e, "cannot observe the region; its clusters keep their status");
                    report.errors.push(format!("region {region}: {e}"));
                    continue;
                }
            };
            let instances: HashMap<String, Instance> =
                instances.into_iter().map(|i| (i.id.clone(), i)).collect();
            let groups: HashMap<&str, &Group> = groups.iter().map(|g| (g.name.as_str(), g)).collect();
            for c in list {
                // A cluster whose group is not yet recorded may have joining
                // nodes in a group this sweep did not ask for: keep them.
                if c.asg_name.is_some() {
                    observed_clusters.insert(c.id);
                }
                let group = c.asg_name.as_deref().and_then(|n| groups.get(n));
                let mut nodes: Vec<SweptNode> = group
                    .map(|g| {
                        g.instances
                            .iter()
                            .map(|gi| SweptNode {
                                instance: instances.get(&gi.id).cloned().unwrap_or_else(|| Instance {
                                    id: gi.id.clone(),
                                    state: "pending".into(),
                                    availability_zone: gi.availability_zone.clone(),
                                    ..Instance::default()
                                }),
                                lifecycle_state: gi.lifecycle_state.clone(),
                                stored: stored.remove(&gi.id),
                                probe: None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                nodes.sort_by(|a, b| {
                    (a.instance.launched_at, &a.instance.id).cmp(&(b.instance.launched_at, &b.instance.id))
                });
                members.push((c, nodes));
            }
        }
        // What is left in `stored` belongs to no observed group: those nodes are gone.
        let gone: Vec<String> = stored
            .values()
            .filter(|n| {
                observed_clusters.contains(&n.cluster_id) || !clusters.iter().any(|c| c.id == n.cluster_id)
            })
            .map(|n| n.instance_id.clone())
            .collect();

        self.probe_all(&mut members, started, &mut report).await;

        let mut write = SweepWrite {
            gone,
            ..SweepWrite::default()
        };
        let mut samples: BTreeMap<String, SweepSample> = BTreeMap::new();
        for (cluster, nodes) in &mut members {
            report.nodes += nodes.len();
            let abandoned = self.finish_joins(cluster, nodes, at, &mut report).await?;
            nodes.retain(|n| !abandoned.contains(&n.instance.id));
            let views: Vec<NodeView> = nodes.iter().map(SweptNode::view).collect();
            let health = evaluate(cluster.num_nodes as usize, &views);
            let repairs = if cluster.steady && cluster.auto_repair {
                self.repair(cluster, nodes, at, &mut write, &mut report).await
            } else {
                HashMap::new()
            };
            for n in nodes.iter() {
                write
                    .nodes
                    .push(self.node_update(cluster.id, n, at, repairs.get(&n.instance.id).copied()));
            }
            if cluster.steady {
                write.health.push(HealthWrite {
                    cluster_id: cluster.id,
                    code: health.code.as_str().to_owned(),
                    message: health.message.clone(),
                    running_services: health.running_services as i64,
                });
            }
            if cluster.parked {
                continue;
            }
            let sample = samples
                .entry(cluster.region.clone())
                .or_insert_with(|| SweepSample {
                    region: cluster.region.clone(),
                    at_ms: at,
                    clusters: Vec::new(),
                    duration_ms: 0,
                    probe_failures: 0,
                    repairs: 0,
                });
            sample.clusters.push(cluster_sample(cluster, &health));
        }
        let stats = self.store.record_sweep(at, &write).await?;
        report.db_round_trips += stats.round_trips;
        report.changed = stats.changed;
        for s in samples.values_mut() {
            s.probe_failures = report.probe_failures;
            s.repairs = report.repairs;
        }
        report.samples = samples.into_values().collect();
        info!(
            clusters = report.clusters,
            nodes = report.nodes,
            probes = report.probes,
            probe_failures = report.probe_failures,
            changed = report.changed,
            repairs = report.repairs,
            "health sweep done"
        );
        Ok(report)
    }

    /// Probes every node that should answer, `concurrency` at a time, starting
    /// none after the deadline.
    async fn probe_all(
        &self,
        members: &mut [(&SweepCluster, Vec<SweptNode>)],
        started: tokio::time::Instant,
        report: &mut SweepReport,
    ) {
        let targets: Vec<(usize, usize, AgentTarget)> = members
            .iter()
            .enumerate()
            .flat_map(|(ci, (_, nodes))| {
                nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.probe_due())
                    .map(move |(ni, n)| {
                        (
                            ci,
                            ni,
                            AgentTarget {
                                instance_id: n.instance.id.clone(),
                                private_ip: n.instance.private_ip.clone(),
                            },
                        )
                    })
            })
            .collect();
        let deadline = started + self.settings.deadline;
        let results: Vec<(usize, usize, Option<Probe>)> = stream::iter(targets)
            .map(|(ci, ni, target)| async move {
                if tokio::time::Instant::now() >= deadline {
                    return (ci, ni, None);
                }
                (ci, ni, Some(probe_of(self.agents.health(&target).await)))
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for (ci, ni, probe) in results {
            match probe {
                None => report.unprobed += 1,
                Some(p) => {
                    report.probes += 1;
                    if matches!(p, Probe::Failed { .. }) {
                        report.probe_failures += 1;
                    }
                    members[ci].1[ni].probe = Some(p);
                }
            }
        }
    }

    /// Completes, keeps alive or abandons the launch actions of joining nodes.
    async fn finish_joins(
        &self,
        cluster: &SweepCluster,
        nodes: &mut [SweptNode],
        at: i64,
        report: &mut SweepReport,
    ) -> Result<HashSet<String>, StoreError> {
        let mut abandoned = HashSet::new();
        for n in nodes.iter_mut() {
            let Some(stored) = &n.stored else { continue };
            let (Some((hook, token)), Some(probe)) = (stored.action.clone(), n.probe.clone()) else {
                continue;
            };
            if n.lifecycle_state == "InService" {
                // Joined, but whoever sent CONTINUE did not get to record it.
                self.store.record_probe(&n.instance.id, &probe, true, at).await?;
                report.db_round_trips += 1;
                continue;
            }
            if n.lifecycle_state != "Pending:Wait" {
                continue;
            }
            let action = crate::cloud::LifecycleAction {
                group: cluster.asg_name.clone().unwrap_or_default(),
                hook,
                token,
                instance_id: n.instance.id.clone(),
            };
            let since = stored.joining_since.unwrap_or(n.instance.launched_at);
            let region = cluster.region.as_str();
            let outcome = match join_step(probe, since, at, self.settings.bootstrap_timeout_ms) {
                JoinStep::Continue(p) => {
                    match complete(&self.scaling, region, &action, ActionResult::Continue).await {
                        Ok(_) => {
                            self.store.record_probe(&n.instance.id, &p, true, at).await?;
                            report.db_round_trips += 1;
                            report.joined += 1;
                            n.lifecycle_state = "Pending:Proceed".into();
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                JoinStep::Abandon(p) => {
                    match complete(&self.scaling, region, &action, ActionResult::Abandon).await {
                        Ok(_) => {
                            self.store
                                .remove_node(&n.instance.id, &abandon_audit(cluster.id, &n.instance.id, &p))
                                .await?;
                            report.db_round_trips += 1;
                            report.abandoned += 1;
                            abandoned.insert(n.instance.id.clone());
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                JoinStep::Wait(_) => match self.scaling.heartbeat(region, &action).await {
                    Err(e) if e.kind != CloudErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            };
            if let Err(e) = outcome {
                report.errors.push(format!("node {}: {e}", n.instance.id));
            }
        }
        Ok(abandoned)
    }

    /// Marks the nodes due for repair unhealthy in their group, within the
    /// cluster's share. Returns when each was asked for.
    async fn repair(
        &self,
        cluster: &SweepCluster,
        nodes: &[SweptNode],
        at: i64,
        write: &mut SweepWrite,
        report: &mut SweepReport,
    ) -> HashMap<String, i64> {
        let state: Vec<RepairState> = nodes
            .iter()
            .map(|n| {
                (
                    n.instance.id.clone(),
                    n.lifecycle_state.clone(),
                    unhealthy_since(n, at),
                    n.stored.as_ref().and_then(|s| s.repair_requested_at),
                )
            })
            .collect();
        let mut asked = HashMap::new();
        for id in plan_repairs(cluster.num_nodes, &state, at, &self.settings) {
            let node = nodes
                .iter()
                .find(|n| n.instance.id == id)
                .expect("planned from these nodes");
            let why = node.view().probe.map(|p| describe(&p)).unwrap_or_default();
            match self.scaling.set_unhealthy(&cluster.region, &id).await {
                Ok(()) => {
                    warn!(cluster_id = cluster.id, instance = %id, "replacing an unhealthy node");
                    report.repairs += 1;
                    asked.insert(id.clone(), at);
                    write.audit.push(AuditEntry {
                        principal: PRINCIPAL.into(),
                        action: "NODE_REPAIR".into(),
                        target: format!("cluster/{}", cluster.id),
                        detail: format!(
                            "node {id} unhealthy for over {} s ({why}); marked Unhealthy so that its group replaces it",
                            self.settings.repair_after_ms / 1000
                        ),
                    });
                }
                Err(e) => report.errors.push(format!("repair of {id}: {e}")),
            }
        }
        asked
    }

    fn node_update(&self, cluster_id: i64, n: &SweptNode, at: i64, repaired: Option<i64>) -> NodeUpdate {
        NodeUpdate {
            instance_id: n.instance.id.clone(),
            cluster_id,
            lifecycle_state: n.lifecycle_state.clone(),
            availability_zone: n.instance.availability_zone.clone(),
            private_ip: n.instance.private_ip.clone(),
            launched_at: n.instance.launched_at,
            probe: n.probe.clone(),
            unhealthy_since: unhealthy_since(n, at),
            repair_requested_at: repaired.or_else(|| n.stored.as_ref().and_then(|s| s.repair_requested_at)),
            action: None,
            joining_since: None,
        }
    }
}

/// Since when a node in service has been failing its checks, `None` while
/// healthy or not in service.
fn unhealthy_since(n: &SweptNode, at: i64) -> Option<i64> {
    let failing = n.lifecycle_state == "InService" && n.last_probe().is_some_and(|p| !p.healthy());
    failing.then(|| n.stored.as_ref().and_then(|s| s.unhealthy_since).unwrap_or(at))
}

fn describe(p: &Probe) -> String {
    match p {
        Probe::Failed { reason } => reason.clone(),
        Probe::Answered { services } => services
            .iter()
            .find(|s| s.state != crate::domain::health::ServiceState::Running)
            .map(|s| format!("{} {}", s.name, s.state.as_str()))
            .unwrap_or_else(|| "healthy".into()),
    }
}

fn cluster_sample(cluster: &SweepCluster, health: &ClusterHealth) -> ClusterSample {
    ClusterSample {
        cluster_id: cluster.id,
        ready: cluster.steady && health.code == HealthCode::Ready,
        ready_nodes: health.healthy_nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, state: &str, since: Option<i64>, requested: Option<i64>) -> RepairState {
        (id.into(), state.into(), since, requested)
    }

    #[test]
    fn repairs_respect_the_threshold_and_the_share() {
        let s = SweepSettings {
            repair_after_ms: 100,
            repair_max_share: 0.4,
            ..SweepSettings::default()
        };
        let cases: Vec<(&str, i64, Vec<RepairState>, Vec<&str>)> = vec![
            ("healthy", 3, vec![node("a", "InService", None, None)], vec![]),
            (
                "too recent",
                3,
                vec![node("a", "InService", Some(950), None)],
                vec![],
            ),
            ("due", 3, vec![node("a", "InService", Some(900), None)], vec!["a"]),
            (
                "one at a time in a small cluster, oldest first",
                3,
                vec![
                    node("b", "InService", Some(800), None),
                    node("a", "InService", Some(500), None),
                ],
                vec!["a"],
            ),
            (
                "two of five",
                5,
                vec![
                    node("a", "InService", Some(1), None),
                    node("b", "InService", Some(2), None),
                    node("c", "InService", Some(3), None),
                ],
                vec!["a", "b"],
            ),
            (
                "a replacement in flight counts",
                3,
                vec![
                    node("a", "InService", Some(1), None),
                    node("n", "Pending:Wait", None, None),
                ],
                vec![],
            ),
            (
                "a repair already asked for counts and is not asked again",
                5,
                vec![
                    node("a", "InService", Some(1), Some(900)),
                    node("b", "InService", Some(1), None),
                ],
                vec!["b"],
            ),
        ];
        for (name, n, nodes, want) in cases {
            assert_eq!(plan_repairs(n, &nodes, 1000, &s), want, "{name}");
        }
    }
}
