//! The runbook steps of failovers (after the promotion) and drills. Each checks
//! before it acts: the bring-up and the drill clusters are noted in the runbook
//! in the transaction that makes them, the switch and the parking change
//! nothing when done already, and the alarm and metric calls are idempotent.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cloud::{Compute, Dns, Metrics, ObjectStore, Scaling};
use crate::config::S3Location;
use crate::domain::failover::{failed, preconditions, serving_alarm_name, Readiness};
use crate::domain::{tags, ClusterStatus};
use crate::metrics::{self, REGION_DIMENSION, REGION_SERVING};
use crate::store::{ClusterRow, Move, RunbookKind, RunbookRow, RunbookStep, StepEnd, Store};
use crate::time::{format_ms, now_ms};
use crate::workflows::reconcile::Target;
use crate::workflows::runbook::names::*;
use crate::workflows::runbook::{dns_matches, endpoint_record, DnsZone, Runner, StepError, Steps};
use crate::workflows::wake::Kick;

type StepResult = Result<StepEnd, StepError>;

fn done(msg: impl Into<String>) -> StepResult {
    Ok(StepEnd::Done(msg.into()))
}

/// How long a call to a region that may be down is given before the step goes
/// on without it.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(5);

/// The ports of the region runbooks: CloudWatch (serving alarms, the lag),
/// Route 53 (the UPSERT fallback), EC2, Auto Scaling and S3 (a drill's leak
/// check), the reconciler's wake-up, and, for a drill's check of the replica,
/// the read-only stores of other regions.
pub struct RegionSteps<M, D, C, S, O> {
    pub metrics: M,
    pub dns: D,
    pub compute: C,
    pub scaling: S,
    pub objects: O,
    pub zone: Option<DnsZone>,
    pub staging: S3Location,
    pub kick: Kick,
    pub dm_regions: Vec<String>,
    /// Each other region's database as that region sees it (a replica).
    pub replicas: BTreeMap<String, Store>,
}

impl<M, D, C, S, O> Steps for RegionSteps<M, D, C, S, O>
where
    M: Metrics,
    D: Dns,
    C: Compute,
    S: Scaling,
    O: ObjectStore,
{
    fn kinds() -> &'static [RunbookKind] {
        &RunbookKind::REGION
    }

    fn execute<'a>(
        runner: &'a Runner<Self>,
        rb: &'a RunbookRow,
        step: &'a RunbookStep,
    ) -> impl std::future::Future<Output = StepResult> + Send + 'a {
        runner.execute_region(rb, step)
    }

    fn timeout_ms(runner: &Runner<Self>, rb: &RunbookRow, step: &str) -> Option<i64> {
        let s = &runner.settings;
        match (rb.kind, step) {
            // A failover's wait-ready keeps its own deadline: at the deadline it
            // goes on with the clusters that made it.
            (RunbookKind::Drill, WAIT_READY) => Some(rb.params.ready_timeout_ms),
            (_, VERIFY_REPLICA) => Some(s.verify_timeout_ms),
            (_, WAIT_RETIRED) => Some(s.retire_timeout_ms),
            _ => None,
        }
    }
}

fn moves(rb: &RunbookRow) -> Result<Vec<Move>, StepError> {
    rb.context
        .moves
        .clone()
        .ok_or_else(|| StepError::Permanent("no clusters were brought up yet".into()))
}

impl<M, D, C, S, O> Runner<RegionSteps<M, D, C, S, O>>
where
    M: Metrics,
    D: Dns,
    C: Compute,
    S: Scaling,
    O: ObjectStore,
{
    fn from_region(rb: &RunbookRow) -> String {
        rb.params.from_region.clone().unwrap_or_default()
    }

    fn to_region(rb: &RunbookRow) -> String {
        rb.params.to_region.clone().unwrap_or_default()
    }

    async fn kick_all(&self, ids: Vec<i64>) {
        for id in ids {
            (self.steps.kick)(Target::Cluster(id)).await;
        }
    }

    async fn execute_region(&self, rb: &RunbookRow, step: &RunbookStep) -> StepResult {
        match (rb.kind, step.name.as_str()) {
            (RunbookKind::Failover, BRING_UP) => {
                let moves = self.store.bring_up(rb, &self.owner).await?;
                self.kick_all(moves.iter().map(|m| m.to).collect()).await;
                done(if moves.is_empty() {
                    format!(
                        "no cluster serves in {}'s paired environments",
                        Self::from_region(rb)
                    )
                } else {
                    format!(
                        "{} cluster(s) brought up in {}: {}",
                        moves.len(),
                        Self::to_region(rb),
                        moves
                            .iter()
                            .map(|m| format!("{} -> {}", m.from, m.to))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            }
            (RunbookKind::Failover, WAIT_READY) => self.wait_partners(rb, step).await,
            (RunbookKind::Failover, SWITCH_TRAFFIC) => self.switch_traffic(rb).await,
            (RunbookKind::Failover, FENCE_OLD_REGION) => self.fence_old_region(rb).await,
            (RunbookKind::Failover, RECORD) => self.record_failover(rb).await,
            (RunbookKind::Drill, PREFLIGHT) => self.preflight(rb).await,
            (RunbookKind::Drill, BUILD_DRILL) => {
                let moves = self.store.create_drill_clusters(rb, &self.owner).await?;
                self.kick_all(moves.iter().map(|m| m.to).collect()).await;
                done(format!(
                    "{} drill cluster(s) in {}: {}",
                    moves.len(),
                    Self::to_region(rb),
                    moves
                        .iter()
                        .map(|m| format!("copy of {} as {}", m.from, m.to))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
            (RunbookKind::Drill, WAIT_READY) => {
                let waiting = self.not_ready(&moves(rb)?).await?;
                match waiting.first() {
                    None => done(format!("{} drill cluster(s) READY", moves(rb)?.len())),
                    Some(c) if c.status_code == ClusterStatus::Failed.as_str() => Err(StepError::Permanent(
                        format!("drill cluster {} FAILED: {}", c.id, c.status_message),
                    )),
                    Some(c) => self.wait(format!(
                        "cluster {} is {}: {}",
                        c.id, c.status_code, c.status_message
                    )),
                }
            }
            (RunbookKind::Drill, VERIFY_REPLICA) => self.verify_replica(rb).await,
            (RunbookKind::Drill, TEARDOWN) => {
                let asked = self.store.retire_drill_clusters(rb).await?;
                let ids = rb.context.moves.clone().unwrap_or_default();
                self.kick_all(ids.iter().map(|m| m.to).collect()).await;
                done(format!("{asked} drill cluster(s) being removed"))
            }
            (RunbookKind::Drill, WAIT_RETIRED) => {
                for m in rb.context.moves.clone().unwrap_or_default() {
                    let c = self.store.get_cluster(m.to).await?;
                    if c.status_code != ClusterStatus::Terminated.as_str() {
                        return self.wait(format!(
                            "cluster {} is {}: {}",
                            c.id, c.status_code, c.status_message
                        ));
                    }
                }
                done("every drill cluster is TERMINATED")
            }
            (RunbookKind::Drill, LEAK_CHECK) => self.leak_check(rb).await,
            (RunbookKind::Drill, RECORD) => self.record_drill(rb).await,
            (kind, other) => Err(StepError::Permanent(format!(
                "unknown step {other:?} of a {} runbook",
                kind.as_str()
            ))),
        }
    }

    /// The clusters of `moves` that are not READY yet, in order.
    async fn not_ready(&self, moves: &[Move]) -> Result<Vec<ClusterRow>, StepError> {
        let mut out = Vec::new();
        for m in moves {
            let c = self.store.get_cluster(m.to).await?;
            if c.status_code != ClusterStatus::Ready.as_str() {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Waits for the partners; at the deadline, goes on with those that are
    /// READY (the others are reported by `record`), or fails if none is.
    async fn wait_partners(&self, rb: &RunbookRow, step: &RunbookStep) -> StepResult {
        let moves = moves(rb)?;
        let waiting = self.not_ready(&moves).await?;
        if waiting.is_empty() {
            return done(format!(
                "{} partner(s) READY in {}",
                moves.len(),
                Self::to_region(rb)
            ));
        }
        let deadline = step.started_at.unwrap_or_else(now_ms) + rb.params.ready_timeout_ms;
        let describe =
            |c: &ClusterRow| format!("cluster {} is {}: {}", c.id, c.status_code, c.status_message);
        if now_ms() < deadline {
            return self.wait(describe(&waiting[0]));
        }
        let ready = moves.len() - waiting.len();
        let not_ready = waiting.iter().map(describe).collect::<Vec<_>>().join("; ");
        if ready == 0 {
            return Err(StepError::Permanent(format!(
                "no partner became READY in {} within {} s: {not_ready}",
                Self::to_region(rb),
                rb.params.ready_timeout_ms / 1000
            )));
        }
        done(format!(
            "deadline passed: {ready} of {} partner(s) READY; not READY: {not_ready}",
            moves.len()
        ))
    }

    /// The target serves: its `RegionServing` goes to 1 and its serving alarm
    /// to OK (the Route 53 health check of its failover records follows). Pairs
    /// with no failover records get their endpoint UPSERTed onto the partner's
    /// nodes and read back. Only READY partners take traffic.
    async fn switch_traffic(&self, rb: &RunbookRow) -> StepResult {
        let to = Self::to_region(rb);
        let all = moves(rb)?;
        let not_ready = self.not_ready(&all).await?;
        let ready: Vec<Move> = all
            .iter()
            .copied()
            .filter(|m| !not_ready.iter().any(|c| c.id == m.to))
            .collect();
        self.store.switch_pairs(rb, &ready).await?;
        let m = &self.steps.metrics;
        m.put_metric(
            &to,
            metrics::NAMESPACE,
            REGION_SERVING,
            &[(REGION_DIMENSION.to_owned(), to.clone())],
            1.0,
        )
        .await?;
        let alarm = serving_alarm_name(&to);
        let reason = format!("failover {} made {to} the serving region", rb.id);
        if let Err(e) = m.set_alarm_state(&to, &alarm, "OK", &reason).await {
            if e.kind != crate::cloud::CloudErrorKind::NotFound {
                return Err(e.into());
            }
            m.put_alarm(&to, &metrics::serving_alarm(&to)).await?;
            m.set_alarm_state(&to, &alarm, "OK", &reason).await?;
        }
        let mut by_records = 0;
        let mut upserted = Vec::new();
        if let Some(zone) = &self.steps.zone {
            for mv in &ready {
                let c = self.store.get_cluster(mv.to).await?;
                let Some(record) = endpoint_record(&self.store, &c).await? else {
                    continue;
                };
                if record.failover.is_some() {
                    by_records += 1;
                    continue;
                }
                if record.values.is_empty() {
                    return Err(StepError::Transient(format!(
                        "cluster {} has no node in service with an address",
                        c.id
                    )));
                }
                self.steps.dns.upsert(&zone.id, &record).await?;
                if let Err(mismatch) = dns_matches(&self.steps.dns, &zone.id, &record).await? {
                    return Err(StepError::Transient(format!("after UPSERT, {mismatch}")));
                }
                upserted.push(format!("{} -> {}", record.name, record.values.join(", ")));
            }
        }
        done(format!(
            "{to} serves (RegionServing=1, alarm {alarm} OK): {by_records} endpoint(s) follow their failover records{}",
            if upserted.is_empty() {
                String::new()
            } else {
                format!("; UPSERTed {}", upserted.join("; "))
            }
        ))
    }

    /// The old side stands down: its clusters are parked (their groups shrink
    /// once its region answers), and its serving alarm goes to ALARM with
    /// `RegionServing=0`, if its CloudWatch answers; if not, its alarm fails
    /// closed on its own (no data counts as not serving).
    async fn fence_old_region(&self, rb: &RunbookRow) -> StepResult {
        let from = Self::from_region(rb);
        let all = moves(rb)?;
        let parked = self
            .store
            .park(rb, &all.iter().map(|m| m.from).collect::<Vec<_>>())
            .await?;
        self.kick_all(all.iter().map(|m| m.from).collect()).await;
        let reason = format!("failover {} moved the traffic to {}", rb.id, Self::to_region(rb));
        let note = stand_down(&self.steps.metrics, &from, &reason).await;
        done(format!("{parked} cluster(s) of {from} parked; {note}"))
    }

    /// Per-step timings, the RTO (trigger to traffic switch) and the RPO
    /// estimate, into the runbook; a failover that left clusters behind fails
    /// here, after everything else was done.
    async fn record_failover(&self, rb: &RunbookRow) -> StepResult {
        let switched = rb
            .steps
            .iter()
            .find(|s| s.name == SWITCH_TRAFFIC)
            .and_then(|s| s.finished_at);
        let start = rb.params.requested_at.unwrap_or(rb.created_at);
        let not_ready = self.not_ready(&moves(rb)?).await?;
        let report = json!({
            "rtoMs": switched.map(|s| s - start),
            "rpoEstimateMs": rb.params.lag_ms,
            "steps": step_timings(rb),
            "notReady": not_ready.iter().map(|c| c.id).collect::<Vec<_>>(),
            "planned": rb.params.planned,
        });
        self.store.note_report(rb, &self.owner, report).await?;
        let rto = switched.map_or("-".to_owned(), |s| {
            format!("{:.1} s", (s - start) as f64 / 1000.0)
        });
        let rpo = rb
            .params
            .lag_ms
            .map_or("unknown".to_owned(), |l| format!("{l} ms"));
        if !not_ready.is_empty() {
            return Err(StepError::Permanent(format!(
                "traffic moved for the READY partners (RTO {rto}); not READY in {}: {}",
                Self::to_region(rb),
                not_ready
                    .iter()
                    .map(|c| format!("cluster {} ({}: {})", c.id, c.status_code, c.status_message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        done(format!(
            "RTO {rto} (trigger to traffic switch), RPO estimate {rpo}"
        ))
    }

    /// The failover preconditions a drill needs: a partner environment for
    /// every environment with clusters, the instance types offered.
    async fn preflight(&self, rb: &RunbookRow) -> StepResult {
        let (from, to) = (Self::from_region(rb), Self::to_region(rb));
        let scope = self.store.failover_scope(&from, &to).await?;
        let known = self.store.has_instance_types(&to).await?;
        let mut types: Vec<(String, bool)> = Vec::new();
        for (c, _) in &scope.clusters {
            if !types.iter().any(|(t, _)| *t == c.instance_type) {
                let offered = !known || self.store.instance_size(&to, &c.instance_type).await?.is_some();
                types.push((c.instance_type.clone(), offered));
            }
        }
        let r = Readiness {
            dm_regions: self.steps.dm_regions.clone(),
            active: Some(from.clone()),
            environments: scope
                .environments
                .iter()
                .map(|(e, p)| (e.id, e.name.clone(), p.as_ref().map(|p| p.id)))
                .collect(),
            instance_types: types,
            ..Default::default()
        };
        let checks = preconditions(&to, &r, false, false);
        if let Some(why) = failed(&checks) {
            return Err(StepError::Permanent(format!("drill to {to} cannot run: {why}")));
        }
        if scope.clusters.is_empty() {
            return Err(StepError::Permanent(format!(
                "drill to {to} has nothing to copy: no cluster serves in {from}'s environments"
            )));
        }
        done(format!(
            "{} cluster(s) in {} environment(s) have partners in {to}",
            scope.clusters.len(),
            scope.environments.len()
        ))
    }

    /// The target region's replica shows the drill and its clusters READY.
    async fn verify_replica(&self, rb: &RunbookRow) -> StepResult {
        let to = Self::to_region(rb);
        let Some(replica) = self.steps.replicas.get(&to) else {
            return done(format!(
                "no read-only store of {to} is configured here; the replica was not read (OKERA_REPLICA_DB_URLS)"
            ));
        };
        if replica.is_writer().await? {
            return Err(StepError::Permanent(format!(
                "the store of {to} takes writes: it is not a replica, and a drill must not touch the writer"
            )));
        }
        let Some(seen) = replica.get_runbook(rb.id).await? else {
            return self.wait(format!("{to}'s replica does not show drill {} yet", rb.id));
        };
        for m in moves(rb)? {
            let c = replica.get_cluster(m.to).await?;
            if c.status_code != ClusterStatus::Ready.as_str() {
                return self.wait(format!("{to}'s replica shows cluster {} {}", c.id, c.status_code));
            }
        }
        done(format!(
            "{to}'s replica shows drill {} (step {}) and its {} cluster(s) READY",
            seen.id,
            seen.next_seq,
            moves(rb)?.len()
        ))
    }

    /// Everything in the target region that carries a drill cluster's tag, and
    /// its staged configuration: it must be nothing.
    async fn leak_check(&self, rb: &RunbookRow) -> StepResult {
        let to = Self::to_region(rb);
        let mut leaks: Vec<String> = Vec::new();
        for m in rb.context.moves.clone().unwrap_or_default() {
            let id = m.to.to_string();
            let s = &self.steps;
            for i in s.compute.instances_tagged(&to, tags::CLUSTER_ID, &id).await? {
                leaks.push(format!("instance {} ({}) of cluster {id}", i.id, i.state));
            }
            for g in s.scaling.groups_tagged(&to, tags::CLUSTER_ID, &id).await? {
                leaks.push(format!("auto scaling group {} of cluster {id}", g.name));
            }
            for t in s
                .compute
                .launch_templates_tagged(&to, tags::CLUSTER_ID, &id)
                .await?
            {
                leaks.push(format!("launch template {} of cluster {id}", t.name));
            }
            for a in s.metrics.alarms_with_prefix(&to, &format!("okera-{id}-")).await? {
                leaks.push(format!("alarm {a} of cluster {id}"));
            }
            let prefix = s.staging.key(&format!("config/{id}/"));
            for k in s.objects.list(&s.staging.bucket, &prefix).await? {
                leaks.push(format!("s3://{}/{k}", s.staging.bucket));
            }
        }
        let mut report = rb.context.report.clone().unwrap_or_else(|| json!({}));
        report["leaks"] = json!(leaks);
        self.store.note_report(rb, &self.owner, report).await?;
        if leaks.is_empty() {
            done(format!("nothing left in {to}"))
        } else {
            Err(StepError::Permanent(format!(
                "{} leaked: {}",
                leaks.len(),
                leaks.join("; ")
            )))
        }
    }

    async fn record_drill(&self, rb: &RunbookRow) -> StepResult {
        let at = |name: &str, arg: &str| rb.steps.iter().find(|s| s.name == name && s.arg == arg).cloned();
        let built = at(BUILD_DRILL, "").and_then(|s| s.started_at);
        let ready = at(WAIT_READY, DRILL).and_then(|s| s.finished_at);
        let rto = built.zip(ready).map(|(b, r)| r - b);
        let mut report = rb.context.report.clone().unwrap_or_else(|| json!({}));
        let leaks = report
            .get("leaks")
            .and_then(Value::as_array)
            .map_or(0, |l| l.len());
        report["rtoMs"] = json!(rto);
        report["steps"] = step_timings(rb);
        report["to"] = json!(Self::to_region(rb));
        self.store.note_report(rb, &self.owner, report).await?;
        done(format!(
            "measured RTO {} (clusters READY in {} from the start of the build; a failover adds the promotion, about a minute); {leaks} leaked",
            rto.map_or("-".to_owned(), |r| format!("{:.1} s", r as f64 / 1000.0)),
            Self::to_region(rb)
        ))
    }
}

/// Stops `region` from being served: publishes `RegionServing=0` for it and
/// sets its serving alarm to ALARM, in its own CloudWatch, giving it
/// [`UNREACHABLE_AFTER`]. Returns what happened; a region that does not answer
/// is fenced again by the active region's schedule until it does (and a
/// CloudWatch that cannot be read at all makes its health check unhealthy).
pub(crate) async fn stand_down<M: Metrics>(metrics: &M, region: &str, reason: &str) -> String {
    let alarm = serving_alarm_name(region);
    let reached = tokio::time::timeout(UNREACHABLE_AFTER, async {
        metrics
            .put_metric(
                region,
                metrics::NAMESPACE,
                REGION_SERVING,
                &[(REGION_DIMENSION.to_owned(), region.to_owned())],
                0.0,
            )
            .await?;
        metrics.set_alarm_state(region, &alarm, "ALARM", reason).await
    })
    .await;
    match reached {
        Ok(Ok(())) => format!("{region} no longer serves (alarm {alarm} ALARM)"),
        Ok(Err(e)) => format!("{region}'s CloudWatch refused ({e}); the schedule tries again"),
        Err(_) => format!(
            "{region}'s CloudWatch did not answer within {} s; the schedule tries again",
            UNREACHABLE_AFTER.as_secs()
        ),
    }
}

/// Each step's name, argument, start, end and duration.
fn step_timings(rb: &RunbookRow) -> Value {
    Value::Array(
        rb.steps
            .iter()
            .map(|s| {
                json!({
                    "step": s.name,
                    "arg": s.arg,
                    "state": s.state,
                    "startedAt": s.started_at.map(format_ms),
                    "ms": s.started_at.zip(s.finished_at).map(|(a, b)| b - a),
                })
            })
            .collect(),
    )
}
