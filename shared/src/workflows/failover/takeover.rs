//! Driving a failover in its target region, and the region's schedule.
//!
//! A request moves through its states with conditional writes on the fence
//! (`REQUESTED → CLAIMED → PROMOTING → PROMOTED → RUNNING → SUCCEEDED |
//! FAILED`). Each move checks the world before it acts, so that a driver killed
//! after any effect, a second driver, or a duplicate event ends the same way:
//! - the claim looks at the leader first (an epoch this request already holds
//!   counts as claimed);
//! - the promotion is asked for only while the target is neither the writer nor
//!   already being promoted;
//! - the runbook is written once per request (its id is the idempotency key).

use std::time::Duration;

use serde_json::{json, Value};
use tracing::{error, info, warn};

use super::steps::RegionSteps;
use super::{read_role, readiness, standing_by, FailoverError, FailoverSettings};
use crate::cloud::{Claimed, Compute, Dns, Fence, GlobalDatabase, Metrics, ObjectStore, Scaling};
use crate::domain::failover::{
    failed, preconditions, AlarmChange, FailoverRequest, FailoverState, Leader, Role,
};
use crate::metrics::{self, REGION_DIMENSION, REGION_SERVING};
use crate::store::{DoneStep, NewStep, RunbookKind};
use crate::time::{format_ms, now_ms};
use crate::workflows::runbook::names::*;
use crate::workflows::runbook::{RunOutcome, RunSummary, Runner};

/// The steps of a failover, in order: the two run here before the runbook
/// exists, then the runbook's.
pub const STEP_NAMES: [&str; 7] = [
    CLAIM_LEADERSHIP,
    PROMOTE_DATABASE,
    BRING_UP,
    WAIT_READY,
    SWITCH_TRAFFIC,
    FENCE_OLD_REGION,
    RECORD,
];

/// The runbook steps of a failover, after the promotion.
pub fn failover_steps() -> Vec<NewStep> {
    vec![
        NewStep::new(BRING_UP, ""),
        NewStep::new(WAIT_READY, PARTNERS),
        NewStep::new(SWITCH_TRAFFIC, ""),
        NewStep::new(FENCE_OLD_REGION, ""),
        NewStep::new(RECORD, ""),
    ]
}

/// The steps of a drill.
pub fn drill_steps() -> Vec<NewStep> {
    vec![
        NewStep::new(PREFLIGHT, ""),
        NewStep::new(BUILD_DRILL, ""),
        NewStep::new(WAIT_READY, DRILL),
        NewStep::new(VERIFY_REPLICA, ""),
        NewStep::new(TEARDOWN, ""),
        NewStep::new(WAIT_RETIRED, DRILL),
        NewStep::new(LEAK_CHECK, ""),
        NewStep::new(RECORD, ""),
    ]
}

/// The failover function's work in one region: its fence, its database, and the
/// runner of the region runbooks (whose steps hold the other ports).
pub struct Failover<F, G, M, D, C, S, O> {
    pub fence: F,
    pub db: G,
    pub runner: Runner<RegionSteps<M, D, C, S, O>>,
    pub settings: FailoverSettings,
    /// Where metric lines go (stdout in Lambda, `DIR/metrics.log` locally).
    pub emit: std::sync::Arc<dyn Fn(&str) + Send + Sync>,
}

/// What one scheduled run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickSummary {
    pub role: String,
    pub requests_driven: Vec<String>,
    pub runbooks: usize,
    pub standbys: Vec<String>,
    pub errors: Vec<String>,
}

impl<F, G, M, D, C, S, O> Failover<F, G, M, D, C, S, O>
where
    F: Fence,
    G: GlobalDatabase,
    M: Metrics,
    D: Dns,
    C: Compute,
    S: Scaling,
    O: ObjectStore,
{
    fn region(&self) -> &str {
        &self.settings.region
    }

    fn store(&self) -> &crate::store::Store {
        &self.runner.store
    }

    /// A CloudWatch alarm changed state. Only a configured region-health alarm
    /// going to ALARM, in this region, about the active region, starts a
    /// failover here; the event's id names the request, so a duplicate event
    /// drives the same request.
    pub async fn on_alarm(&self, alarm: &AlarmChange) -> Result<Value, FailoverError> {
        let ignore = |why: String| {
            tracing::debug!(alarm = %alarm.alarm, state = %alarm.state, %why, "alarm ignored");
            Ok(json!({ "ignored": why }))
        };
        let Some(watched) = self.settings.health_alarms.get(&alarm.alarm) else {
            return ignore(format!(
                "{} is not a region-health alarm of {}",
                alarm.alarm,
                self.region()
            ));
        };
        if alarm.region != self.region() {
            return ignore(format!(
                "the alarm is in {}, and this failover function serves {}",
                alarm.region,
                self.region()
            ));
        }
        if alarm.state != "ALARM" {
            return ignore(format!(
                "{} went to {}; only ALARM fails over, and failback is always deliberate (ocadm failover --planned)",
                alarm.alarm, alarm.state
            ));
        }
        if !self.settings.automatic {
            return ignore(
                "automated failover is off (OKERA_FAILOVER_AUTOMATIC=false); fail over with ocadm failover"
                    .into(),
            );
        }
        let leader = self.fence.leader().await.map_err(FailoverError::Fence)?;
        if let Some(existing) = self
            .fence
            .request(&alarm.event_id)
            .await
            .map_err(FailoverError::Fence)?
        {
            // The same event again: drive what it started (or report its end).
            return Ok(request_answer(&self.drive(&existing.id).await?));
        }
        match &leader {
            Some(l) if l.region != *watched => {
                return ignore(format!(
                    "{} watches {watched}, which is not the active region ({} is, epoch {})",
                    alarm.alarm, l.region, l.epoch
                ))
            }
            None => return ignore("no region holds leadership yet".into()),
            Some(l) => {
                // One automated failover, then people decide: no ping-pong
                // between two sick regions.
                if let Some(id) = &l.failover_id {
                    let last = self.fence.request(id).await.map_err(FailoverError::Fence)?;
                    if last.is_some_and(|r| r.trigger.starts_with("alarm ")) {
                        return ignore(format!(
                            "{watched} became active through the automated failover {id}; automated failover \
                             stays off until an operator fails over (ocadm failover --to REGION)"
                        ));
                    }
                }
            }
        }
        let now = now_ms();
        let request = FailoverRequest {
            id: alarm.event_id.clone(),
            to: self.region().to_owned(),
            from: None,
            planned: false,
            force: false,
            trigger: format!(
                "alarm {} ({} at {})",
                alarm.alarm,
                alarm.state,
                format_ms(alarm.at)
            ),
            requested_at: alarm.at.min(now),
            ready_timeout_ms: crate::domain::failover::DEFAULT_READY_TIMEOUT_MS,
            state: FailoverState::Requested,
            epoch: None,
            claimed_at: None,
            promote_started_at: None,
            promoted_at: None,
            lag_ms: None,
            operation_id: None,
            error: None,
            preconditions: vec![],
            fingerprint: None,
            updated_at: now,
        };
        self.fence
            .create_request(&request)
            .await
            .map_err(FailoverError::Fence)?;
        warn!(failover = %request.id, from = %watched, to = %request.to, alarm = %alarm.alarm, "automated failover");
        Ok(request_answer(&self.drive(&request.id).await?))
    }

    /// Moves a request as far as it goes now: to its end, or to a runbook that
    /// waits (the schedule carries it on).
    pub async fn drive(&self, id: &str) -> Result<FailoverRequest, FailoverError> {
        let mut req = self
            .fence
            .request(id)
            .await
            .map_err(FailoverError::Fence)?
            .ok_or_else(|| FailoverError::NotFound(format!("no failover request {id}")))?;
        if req.to != self.region() {
            return Err(FailoverError::Refused(format!(
                "failover {id} goes to {}; its failover function runs there, not in {}",
                req.to,
                self.region()
            )));
        }
        loop {
            let kill = &self.runner.kill;
            let next = match req.state {
                FailoverState::Requested => {
                    kill.reached(&format!("{CLAIM_LEADERSHIP}:before")).await?;
                    self.claim(&req).await?
                }
                FailoverState::Claimed => {
                    kill.reached(&format!("{PROMOTE_DATABASE}:before")).await?;
                    self.start_promotion(&req).await?
                }
                FailoverState::Promoting => self.await_promotion(&req).await?,
                FailoverState::Promoted => {
                    kill.reached(&format!("{PROMOTE_DATABASE}:acted")).await?;
                    self.write_runbook(&req).await?
                }
                FailoverState::Running => {
                    let op = req.operation_id.unwrap_or_default();
                    match self.runner.run(op).await {
                        Ok(RunOutcome::Finished(_)) | Ok(RunOutcome::Lost) => {
                            match self.settle(&req).await? {
                                Some(next) => next,
                                None => return Ok(req),
                            }
                        }
                        Ok(_) => return Ok(req),
                        Err(crate::workflows::runbook::RunError::Killed(k)) => return Err(k.into()),
                        Err(crate::workflows::runbook::RunError::Store(e)) => return Err(e.into()),
                    }
                }
                _ => return Ok(req),
            };
            if !self
                .fence
                .update_request(&next, req.state)
                .await
                .map_err(FailoverError::Fence)?
            {
                // Another driver moved it meanwhile: carry on from where it is.
                req = self
                    .fence
                    .request(id)
                    .await
                    .map_err(FailoverError::Fence)?
                    .ok_or_else(|| FailoverError::NotFound(format!("failover request {id} vanished")))?;
                continue;
            }
            info!(failover = %id, from = req.state.as_str(), to = next.state.as_str(), "failover moved");
            if next.state == FailoverState::Failed {
                error!(failover = %id, error = next.error.as_deref().unwrap_or(""), "failover failed");
                (self.emit)(&metrics::failover_emf_line(
                    now_ms(),
                    self.region(),
                    &[(metrics::FAILOVER_FAILED, 1.0)],
                ));
            }
            req = next;
        }
    }

    fn moved(&self, req: &FailoverRequest, state: FailoverState) -> FailoverRequest {
        FailoverRequest {
            state,
            updated_at: now_ms(),
            ..req.clone()
        }
    }

    /// Step 0: the preconditions, then the conditional write of epoch N+1.
    async fn claim(&self, req: &FailoverRequest) -> Result<FailoverRequest, FailoverError> {
        let leader = self.fence.leader().await.map_err(FailoverError::Fence)?;
        if let Some(l) = leader
            .as_ref()
            .filter(|l| l.failover_id.as_deref() == Some(req.id.as_str()))
        {
            // Claimed by this request before a crash: go on from there.
            return Ok(FailoverRequest {
                from: l.previous.clone(),
                epoch: Some(l.epoch),
                claimed_at: Some(l.since),
                ..self.moved(req, FailoverState::Claimed)
            });
        }
        let (r, _) = readiness(
            &self.fence,
            &self.runner.steps.metrics,
            self.store(),
            &self.settings,
            Some(&req.id),
        )
        .await?;
        let manual = !req.trigger.starts_with("alarm ");
        let checks = preconditions(&req.to, &r, manual, true);
        let hard = checks.iter().any(|c| {
            !c.ok
                && matches!(
                    c.name.as_str(),
                    "target-region" | "not-active" | "no-failover-in-flight"
                )
        });
        if let Some(why) = failed(&checks).filter(|_| hard || !req.force) {
            warn!(failover = %req.id, %why, "failover refused");
            return Ok(FailoverRequest {
                error: Some(format!("refused: {why}")),
                preconditions: checks,
                ..self.moved(req, FailoverState::Refused)
            });
        }
        let Some(current) = leader else {
            return Ok(FailoverRequest {
                error: Some("refused: no region holds leadership yet".into()),
                ..self.moved(req, FailoverState::Refused)
            });
        };
        let next = current.next(&req.to, Some(&req.id), now_ms());
        match self
            .fence
            .claim(Some(current.epoch), &next)
            .await
            .map_err(FailoverError::Fence)?
        {
            Claimed::Won => {
                self.runner
                    .kill
                    .reached(&format!("{CLAIM_LEADERSHIP}:acted"))
                    .await?;
                warn!(failover = %req.id, epoch = next.epoch, from = %current.region, to = %req.to, "claimed leadership");
                Ok(FailoverRequest {
                    from: Some(current.region.clone()),
                    epoch: Some(next.epoch),
                    claimed_at: Some(next.since),
                    preconditions: checks,
                    ..self.moved(req, FailoverState::Claimed)
                })
            }
            Claimed::Lost(winner) => {
                let winner = winner.map_or_else(
                    || "another contender".to_owned(),
                    |w| {
                        format!(
                            "{} (epoch {}, failover {})",
                            w.region,
                            w.epoch,
                            w.failover_id.unwrap_or_default()
                        )
                    },
                );
                warn!(failover = %req.id, %winner, "lost the claim");
                Ok(FailoverRequest {
                    error: Some(format!("lost: {winner} claimed leadership first")),
                    ..self.moved(req, FailoverState::Lost)
                })
            }
        }
    }

    /// Step 1, first half: notes the replica lag and the start, before asking.
    async fn start_promotion(&self, req: &FailoverRequest) -> Result<FailoverRequest, FailoverError> {
        let lag = self
            .runner
            .steps
            .metrics
            .latest(
                self.region(),
                "AWS/RDS",
                "AuroraGlobalDBReplicationLag",
                &[("DBClusterIdentifier".to_owned(), self.settings.db_cluster.clone())],
                now_ms() - 300_000,
            )
            .await
            .unwrap_or_else(|e| {
                warn!(error = %e, "could not read the replica lag");
                None
            });
        Ok(FailoverRequest {
            promote_started_at: Some(now_ms()),
            lag_ms: lag.map(|l| l.round() as i64),
            ..self.moved(req, FailoverState::Promoting)
        })
    }

    /// Step 1, second half: asks for the promotion unless the target is the
    /// writer or being promoted already, then waits until the target is the
    /// writer and the local store takes writes. A promotion refused, or not
    /// done within the timeout, hands the epoch back to the old writer.
    async fn await_promotion(&self, req: &FailoverRequest) -> Result<FailoverRequest, FailoverError> {
        let started = req.promote_started_at.unwrap_or_else(now_ms);
        let deadline = started + self.settings.promotion_timeout_ms;
        let mut asked = false;
        loop {
            let gdb = match self.db.describe(self.region(), &self.settings.global_db).await {
                Ok(g) => Some(g),
                Err(e) if e.is_retryable() => {
                    warn!(error = %e, "could not read the global database; trying again");
                    None
                }
                Err(e) => {
                    return self
                        .hand_back(req, format!("the global database cannot be read: {e}"))
                        .await
                }
            };
            if let Some(gdb) = gdb {
                let Some(target) = gdb.member_in(self.region()).cloned() else {
                    return self
                        .hand_back(
                            req,
                            format!(
                                "global database {} has no member in {}",
                                self.settings.global_db,
                                self.region()
                            ),
                        )
                        .await;
                };
                if target.writer {
                    if self.store().is_writer().await? {
                        return Ok(FailoverRequest {
                            promoted_at: Some(now_ms()),
                            ..self.moved(req, FailoverState::Promoted)
                        });
                    }
                } else if gdb.promoting.as_deref() != Some(target.arn.as_str()) && !asked {
                    self.runner
                        .kill
                        .reached(&format!("{PROMOTE_DATABASE}:asking"))
                        .await?;
                    match self
                        .db
                        .promote(self.region(), &self.settings.global_db, &target.arn, req.planned)
                        .await
                    {
                        Ok(()) => {
                            asked = true;
                            info!(failover = %req.id, target = %target.arn, planned = req.planned, "promotion asked");
                        }
                        Err(e) if e.is_retryable() => {
                            warn!(error = %e, "promotion not asked yet; trying again")
                        }
                        Err(e) => {
                            // Another driver of this request may have asked
                            // first (and RDS refuses a second ask): refused
                            // only if the target is still not on its way.
                            let moving = self
                                .db
                                .describe(self.region(), &self.settings.global_db)
                                .await
                                .ok()
                                .and_then(|g| {
                                    let m = g.member_in(self.region())?.clone();
                                    Some(m.writer || g.promoting.as_deref() == Some(m.arn.as_str()))
                                })
                                .unwrap_or(false);
                            if !moving {
                                return self
                                    .hand_back(req, format!("the promotion was refused: {e}"))
                                    .await;
                            }
                            asked = true;
                        }
                    }
                }
            }
            if now_ms() >= deadline {
                return self
                    .hand_back(
                        req,
                        format!(
                            "the promotion did not complete within {} s",
                            self.settings.promotion_timeout_ms / 1000
                        ),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(self.settings.poll_ms)).await;
        }
    }

    /// The promotion failed: the old writer stays. The epoch goes back to the
    /// old region (N+2, so that everyone sees the change), and the request ends
    /// FAILED with the reason; nothing else was changed.
    async fn hand_back(&self, req: &FailoverRequest, why: String) -> Result<FailoverRequest, FailoverError> {
        let from = req.from.clone().unwrap_or_default();
        let leader = self.fence.leader().await.map_err(FailoverError::Fence)?;
        let mut note = format!("{why}; the writer stays in {from}");
        if let Some(l) = leader.filter(|l| l.failover_id.as_deref() == Some(req.id.as_str())) {
            let back = Leader {
                failover_id: None,
                ..l.next(&from, None, now_ms())
            };
            match self
                .fence
                .claim(Some(l.epoch), &back)
                .await
                .map_err(FailoverError::Fence)?
            {
                Claimed::Won => note.push_str(&format!(" and leads again at epoch {}", back.epoch)),
                Claimed::Lost(_) => note.push_str("; leadership had moved on meanwhile"),
            }
        }
        error!(failover = %req.id, %note, "promotion failed: alert");
        Ok(FailoverRequest {
            error: Some(format!("promotion failed: {note}. Nothing else was changed.")),
            ..self.moved(req, FailoverState::Failed)
        })
    }

    /// Writes the runbook (once per request), with the claim and the promotion
    /// done, and the epoch in the replicated history.
    async fn write_runbook(&self, req: &FailoverRequest) -> Result<FailoverRequest, FailoverError> {
        let claimed = req.claimed_at.unwrap_or(req.requested_at);
        let started = req.promote_started_at.unwrap_or(claimed);
        let done = [
            DoneStep {
                name: CLAIM_LEADERSHIP,
                started_at: claimed,
                finished_at: claimed,
                result: format!(
                    "epoch {}: {} takes over from {}",
                    req.epoch.unwrap_or_default(),
                    req.to,
                    req.from.as_deref().unwrap_or("-")
                ),
            },
            DoneStep {
                name: PROMOTE_DATABASE,
                started_at: started,
                finished_at: req.promoted_at.unwrap_or(started),
                result: format!(
                    "{} the writer of {} ({}); replica lag at promotion: {}",
                    self.settings.db_cluster,
                    self.settings.global_db,
                    if req.planned {
                        "switchover"
                    } else {
                        "failover, data loss allowed"
                    },
                    req.lag_ms.map_or("unknown".to_owned(), |l| format!("{l} ms"))
                ),
            },
        ];
        // The first time only (the runbook is written once): the old region's
        // leases go before the new region's runs take theirs.
        if self.store().failover_runbook(&req.id).await?.is_none() {
            let freed = self.store().take_over_leases().await?;
            if freed > 0 {
                info!(failover = %req.id, freed, "took over the old region's leases");
            }
        }
        let submitted = self
            .store()
            .submit_failover(req, &done, &failover_steps())
            .await?;
        if let Some(l) = self.fence.leader().await.map_err(FailoverError::Fence)? {
            if l.failover_id.as_deref() == Some(req.id.as_str()) {
                self.store()
                    .record_leadership(&l, Some(submitted.operation_id))
                    .await?;
            }
        }
        Ok(FailoverRequest {
            operation_id: Some(submitted.operation_id),
            ..self.moved(req, FailoverState::Running)
        })
    }

    /// The runbook of a RUNNING request ended: the request ends with it, and
    /// its metric line is written. None while it still runs.
    async fn settle(&self, req: &FailoverRequest) -> Result<Option<FailoverRequest>, FailoverError> {
        let Some(rb) = self
            .store()
            .get_runbook(req.operation_id.unwrap_or_default())
            .await?
        else {
            return Ok(None);
        };
        if !rb.finished() {
            return Ok(None);
        }
        let report = rb.context.report.clone().unwrap_or_default();
        let number = |k: &str| report.get(k).and_then(Value::as_f64);
        let mut values = vec![if rb.state == "SUCCEEDED" {
            (metrics::FAILOVER_SUCCEEDED, 1.0)
        } else {
            (metrics::FAILOVER_FAILED, 1.0)
        }];
        values.extend(number("rtoMs").map(|v| (metrics::FAILOVER_RTO, v)));
        values.extend(number("rpoEstimateMs").map(|v| (metrics::FAILOVER_RPO_ESTIMATE, v)));
        (self.emit)(&metrics::failover_emf_line(now_ms(), self.region(), &values));
        let state = if rb.state == "SUCCEEDED" {
            FailoverState::Succeeded
        } else {
            FailoverState::Failed
        };
        Ok(Some(FailoverRequest {
            error: rb.error.clone(),
            ..self.moved(req, state)
        }))
    }

    /// Runs one region runbook now (the API's wake-up after a drill is
    /// submitted), and settles its request if it is a failover's.
    pub async fn run_runbook(&self, id: i64) -> Result<Value, FailoverError> {
        let outcome = self.runner.run(id).await.map_err(|e| match e {
            crate::workflows::runbook::RunError::Killed(k) => FailoverError::Killed(k),
            crate::workflows::runbook::RunError::Store(e) => FailoverError::Store(e),
        })?;
        self.settle_all().await?;
        Ok(json!({ "runbookId": id, "outcome": format!("{outcome:?}") }))
    }

    /// Settles every RUNNING request of this region whose runbook ended, and
    /// writes the metric line of every drill that ended since.
    async fn settle_all(&self) -> Result<(), FailoverError> {
        for req in self.fence.requests().await.map_err(FailoverError::Fence)? {
            if req.to == self.region() && req.state == FailoverState::Running {
                if let Some(next) = self.settle(&req).await? {
                    self.fence
                        .update_request(&next, FailoverState::Running)
                        .await
                        .map_err(FailoverError::Fence)?;
                }
            }
        }
        Ok(())
    }

    /// The region's schedule (every minute in AWS):
    /// - every request of this region still in flight is driven on (a driver
    ///   that was killed, a lost wake-up);
    /// - the active region publishes that it serves, writes its heartbeat, keeps
    ///   the serving alarms and health checks of every DM region, keeps the warm
    ///   standby partners, and runs its due region runbooks;
    /// - a standby region publishes that it does not serve, and the age of the
    ///   active region's heartbeat as its replica shows it.
    pub async fn tick(&self) -> Result<Value, FailoverError> {
        let mut summary = TickSummary::default();
        // Signs of life first: driving a request or a runbook below may wait
        // for minutes, and the standbys watch the heartbeat's age.
        let was_active = read_role(&self.fence, self.store(), self.region())
            .await
            .is_active();
        if was_active {
            self.beat(&mut summary).await?;
        }
        for req in self.fence.requests().await.map_err(FailoverError::Fence)? {
            if req.to == self.region() && (req.state.in_flight() || req.state == FailoverState::Running) {
                match self.drive(&req.id).await {
                    Ok(r) => summary
                        .requests_driven
                        .push(format!("{} {}", r.id, r.state.as_str())),
                    Err(FailoverError::Killed(k)) => return Err(k.into()),
                    Err(e) => summary.errors.push(format!("failover {}: {e}", req.id)),
                }
            }
        }
        let role = read_role(&self.fence, self.store(), self.region()).await;
        summary.role = role.as_str().to_owned();
        if !role.is_active() {
            if let Err(e) = self.publish_heartbeat_age(&role).await {
                summary.errors.push(format!("heartbeat age: {e}"));
            }
            let mut answer = standing_by(&role, self.region());
            answer["requestsDriven"] = json!(summary.requests_driven);
            answer["errors"] = json!(summary.errors);
            return Ok(answer);
        }
        if !was_active {
            // A request driven above made this region active.
            self.beat(&mut summary).await?;
        }
        self.fence_peers(&mut summary).await;
        if let Err(e) = self.keep_health_checks().await {
            summary.errors.push(format!("health checks: {e}"));
        }
        match self
            .store()
            .sync_standbys(&format!("failover-{}", self.region()))
            .await
        {
            Ok(changes) => {
                for (id, change) in changes {
                    info!(%change, "standby partners");
                    (self.runner.steps.kick)(crate::workflows::reconcile::Target::Cluster(id)).await;
                    summary.standbys.push(change);
                }
            }
            Err(e) => summary.errors.push(format!("standby partners: {e}")),
        }
        match self.runner.run_due().await {
            Ok(RunSummary { runbooks, errors, .. }) => {
                summary.runbooks = runbooks;
                summary.errors.extend(errors);
            }
            Err(e) => summary.errors.push(format!("runbooks: {e}")),
        }
        self.settle_all().await?;
        self.emit_drills().await?;
        Ok(json!({
            "role": summary.role,
            "region": self.region(),
            "requestsDriven": summary.requests_driven,
            "runbooks": summary.runbooks,
            "standbys": summary.standbys,
            "errors": summary.errors,
        }))
    }

    /// What the active region publishes every run: `RegionServing=1`, and its
    /// heartbeat (with how many clusters are READY) in the database.
    async fn beat(&self, summary: &mut TickSummary) -> Result<(), FailoverError> {
        if let Err(e) = self.publish_serving().await {
            summary.errors.push(format!("serving metric: {e}"));
        }
        let (ready, total) = self.clusters_ready().await?;
        self.store()
            .heartbeat(self.region(), now_ms(), ready, total)
            .await?;
        Ok(())
    }

    async fn clusters_ready(&self) -> Result<(i64, i64), FailoverError> {
        let clusters = self.store().list_clusters(None).await?;
        let live: Vec<_> = clusters
            .iter()
            .filter(|c| !c.delete_requested && !c.parked && c.drill_id.is_none())
            .collect();
        let ready = live.iter().filter(|c| c.status_code == "READY").count();
        Ok((ready as i64, live.len() as i64))
    }

    /// `RegionServing=1` for this region, which holds the epoch.
    async fn publish_serving(&self) -> Result<(), FailoverError> {
        self.runner
            .steps
            .metrics
            .put_metric(
                self.region(),
                metrics::NAMESPACE,
                REGION_SERVING,
                &[(REGION_DIMENSION.to_owned(), self.region().to_owned())],
                1.0,
            )
            .await
            .map_err(FailoverError::Cloud)
    }

    /// Every other DM region whose serving alarm is not ALARM (a fence step
    /// that could not reach it, or a stale region that published) is stood
    /// down again: only the active region is served.
    async fn fence_peers(&self, summary: &mut TickSummary) {
        let m = &self.runner.steps.metrics;
        for peer in self.settings.peers() {
            let alarm = crate::domain::failover::serving_alarm_name(peer);
            let state = tokio::time::timeout(Duration::from_secs(5), m.alarm_state(peer, &alarm)).await;
            if let Ok(Ok(Some(s))) = &state {
                if s == "OK" {
                    let reason = format!("{} is the active region", self.region());
                    let note = super::steps::stand_down(m, peer, &reason).await;
                    warn!(%peer, %note, "stood a serving peer down");
                    summary.standbys.push(note);
                }
            }
        }
    }

    /// A standby region publishes how old the active region's heartbeat is in
    /// its replica: what the region-health alarm watches.
    async fn publish_heartbeat_age(&self, role: &Role) -> Result<(), FailoverError> {
        let Some(active) = role.leader().map(|l| l.region.clone()) else {
            return Ok(());
        };
        let Some(beat) = self
            .store()
            .dm_regions()
            .await?
            .into_iter()
            .find(|r| r.region == active)
            .map(|r| r.heartbeat_at)
            .filter(|at| *at > 0)
        else {
            return Ok(());
        };
        let age_s = ((now_ms() - beat).max(0) as f64) / 1000.0;
        self.runner
            .steps
            .metrics
            .put_metric(
                self.region(),
                metrics::NAMESPACE,
                metrics::ACTIVE_REGION_HEARTBEAT_AGE,
                &[(REGION_DIMENSION.to_owned(), active)],
                age_s,
            )
            .await
            .map_err(FailoverError::Cloud)
    }

    /// Every DM region has its serving alarm, and, with an endpoint zone, a
    /// Route 53 health check that follows it (noted in the store: the
    /// reconciler writes failover records once both sides of a pair have one).
    async fn keep_health_checks(&self) -> Result<(), FailoverError> {
        let steps = &self.runner.steps;
        let known = self.store().dm_regions().await?;
        for region in &self.settings.dm_regions {
            let alarm = metrics::serving_alarm(region);
            let exists = !steps
                .metrics
                .alarms_with_prefix(region, &alarm.name)
                .await
                .map_err(FailoverError::Cloud)?
                .is_empty();
            if !exists {
                steps
                    .metrics
                    .put_alarm(region, &alarm)
                    .await
                    .map_err(FailoverError::Cloud)?;
            }
            if steps.zone.is_none()
                || known
                    .iter()
                    .any(|r| r.region == *region && r.health_check_id.is_some())
            {
                continue;
            }
            let id = steps
                .dns
                .ensure_health_check(&format!("{}-v1", alarm.name), region, &alarm.name)
                .await
                .map_err(FailoverError::Cloud)?;
            self.store().set_health_check(region, &id).await?;
            info!(%region, health_check = %id, "health check of the serving alarm");
        }
        Ok(())
    }

    /// The metric line of each drill that ended and was not reported yet.
    async fn emit_drills(&self) -> Result<(), FailoverError> {
        for rb in self.store().region_runbooks(RunbookKind::Drill, 5).await? {
            let Some(report) = rb.context.report.as_ref() else {
                continue;
            };
            if !rb.finished() || report.get("emitted").is_some() {
                continue;
            }
            let mut values = vec![(
                metrics::DRILL_LEAKS,
                report
                    .get("leaks")
                    .and_then(Value::as_array)
                    .map_or(0, |l| l.len()) as f64,
            )];
            if let Some(rto) = report.get("rtoMs").and_then(Value::as_f64) {
                values.push((metrics::DRILL_RTO, rto));
            }
            if rb.state != "SUCCEEDED" {
                values.push((metrics::DRILL_FAILED, 1.0));
            }
            (self.emit)(&metrics::failover_emf_line(now_ms(), self.region(), &values));
            let mut marked = report.clone();
            marked["emitted"] = json!(true);
            self.store().mark_report(rb.id, marked).await?;
        }
        Ok(())
    }
}

/// What the function answers about a request.
pub fn request_answer(req: &FailoverRequest) -> Value {
    json!({
        "failoverId": req.id,
        "state": req.state.as_str(),
        "to": req.to,
        "from": req.from,
        "epoch": req.epoch,
        "operationId": req.operation_id,
        "error": req.error,
    })
}
