//! The runbook engine: persisted step machines for upgrades by replacement,
//! rollbacks and restarts ([`ClusterSteps`]), and failovers and drills
//! (`workflows::failover`): one engine, several kinds of steps.
//!
//! A runbook is a list of steps in the store (`store::runbooks`). A [`Runner`]
//! claims a due runbook with a lease and runs its current step:
//! - every step is idempotent or checks before it acts, so running a step again
//!   after a crash (it took effect, but was not yet recorded) changes nothing;
//! - a step that has to wait (for READY, for the rollback window) says until
//!   when, and the runbook sleeps in the store, not in a process: the runner
//!   gives it back and the schedule (or an in-process wait, when short) picks it
//!   up again;
//! - each step is time-boxed; transient errors are retried with a pause, up to
//!   a number of attempts; a failure, a timeout or a cancel appends the kind's
//!   undo steps (tearing down a replacement, moving the endpoint back), which
//!   run like any other;
//! - every write is a compare-and-set on the runbook's version and lease, so a
//!   runner that lost its lease, or a runbook cancelled or rolled back under it,
//!   stops without writing.

mod steps;

use std::time::Duration;

use tracing::{info, warn};

use crate::cloud::{Agents, Dns, RecordSet};
use crate::store::{ClusterRow, NewStep, RunbookKind, RunbookRow, RunbookStep, StepEnd, Store, StoreError};
use crate::time::now_ms;
use crate::workflows::kill::{KillSwitch, Killed};
use crate::workflows::wake::Kick;

/// Step names. Arguments name a cluster (`original`, `replacement`) or a node.
pub mod names {
    pub const BUILD_REPLACEMENT: &str = "build-replacement";
    pub const WAIT_READY: &str = "wait-ready";
    pub const SWITCH_ENDPOINT: &str = "switch-endpoint";
    pub const VERIFY: &str = "verify";
    pub const ROLLBACK_WINDOW: &str = "rollback-window";
    pub const RETIRE: &str = "retire";
    pub const WAIT_RETIRED: &str = "wait-retired";
    pub const RESTART_NODE: &str = "restart-node";
    pub const WAIT_NODE_HEALTHY: &str = "wait-node-healthy";
    pub const ORIGINAL: &str = "original";
    pub const REPLACEMENT: &str = "replacement";
    // Failover and drill steps (`workflows::failover`).
    pub const CLAIM_LEADERSHIP: &str = "claim-leadership";
    pub const PROMOTE_DATABASE: &str = "promote-database";
    pub const BRING_UP: &str = "bring-up-clusters";
    pub const SWITCH_TRAFFIC: &str = "switch-traffic";
    pub const FENCE_OLD_REGION: &str = "fence-old-region";
    pub const RECORD: &str = "record";
    pub const PREFLIGHT: &str = "preflight";
    pub const BUILD_DRILL: &str = "build-drill-clusters";
    pub const VERIFY_REPLICA: &str = "verify-replica";
    pub const TEARDOWN: &str = "teardown";
    pub const LEAK_CHECK: &str = "leak-check";
    /// The argument of region steps that act on the drill's clusters, or on a
    /// failover's partners.
    pub const DRILL: &str = "drill";
    pub const PARTNERS: &str = "partners";
}

use names::*;

/// The configured Route 53 zone cluster endpoints live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsZone {
    pub id: String,
    /// Without the final dot, such as `clusters.example.com`.
    pub name: String,
}

impl DnsZone {
    /// A cluster's endpoint: `<cluster>.<environment>.<zone>`.
    pub fn endpoint(&self, cluster: &str, environment: &str) -> String {
        format!("{cluster}.{environment}.{}", self.name)
    }
}

/// Runbooks one scheduled run drives at once.
pub const CONCURRENCY: usize = 16;

/// TTL of endpoint records: what a switch costs clients at most, on top of
/// Route 53's own propagation.
pub const ENDPOINT_TTL: i64 = 30;

/// The engine's timings.
#[derive(Debug, Clone)]
pub struct RunbookSettings {
    /// How long a runner holds a runbook without writing before another may take it.
    pub lease_ms: i64,
    /// How long one run may wait in-process for a step before it gives the
    /// runbook back (a Lambda invocation has minutes, not hours).
    pub budget: Duration,
    /// How often a waiting step looks again.
    pub poll_ms: i64,
    /// Attempts of a step that fails transiently, the first included.
    pub max_attempts: i64,
    pub verify_timeout_ms: i64,
    pub retire_timeout_ms: i64,
    pub node_timeout_ms: i64,
}

impl Default for RunbookSettings {
    fn default() -> Self {
        RunbookSettings {
            lease_ms: 120_000,
            budget: Duration::from_secs(40),
            poll_ms: 5_000,
            max_attempts: 5,
            verify_timeout_ms: 300_000,
            retire_timeout_ms: 1_800_000,
            node_timeout_ms: 600_000,
        }
    }
}

/// The steps of an upgrade by replacement.
pub fn upgrade_steps() -> Vec<NewStep> {
    vec![
        NewStep::new(BUILD_REPLACEMENT, ""),
        NewStep::new(WAIT_READY, REPLACEMENT),
        NewStep::new(SWITCH_ENDPOINT, REPLACEMENT),
        NewStep::new(VERIFY, REPLACEMENT),
        NewStep::new(ROLLBACK_WINDOW, ""),
        NewStep::new(RETIRE, ORIGINAL),
        NewStep::new(WAIT_RETIRED, ORIGINAL),
    ]
}

/// The steps of a rollback: the same steps as an upgrade's, the other way.
pub fn rollback_steps() -> Vec<NewStep> {
    vec![
        NewStep::new(SWITCH_ENDPOINT, ORIGINAL),
        NewStep::new(VERIFY, ORIGINAL),
        NewStep::new(RETIRE, REPLACEMENT),
        NewStep::new(WAIT_RETIRED, REPLACEMENT),
    ]
}

/// The steps of a restart: each node in turn, waiting for it to be healthy
/// before the next.
pub fn restart_steps(nodes: &[String]) -> Vec<NewStep> {
    nodes
        .iter()
        .flat_map(|n| {
            [
                NewStep::new(RESTART_NODE, n.clone()),
                NewStep::new(WAIT_NODE_HEALTHY, n.clone()),
            ]
        })
        .collect()
}

/// What undoes a runbook whose step `failed` failed (or was cancelled there).
pub fn undo_steps(rb: &RunbookRow, failed: &str) -> Vec<NewStep> {
    match rb.kind {
        RunbookKind::Upgrade => match failed {
            // Traffic never moved: remove the replacement, if one was made.
            BUILD_REPLACEMENT | WAIT_READY if rb.context.replacement_id.is_some() => vec![
                NewStep::new(RETIRE, REPLACEMENT),
                NewStep::new(WAIT_RETIRED, REPLACEMENT),
            ],
            // Traffic may have moved: move it back first.
            SWITCH_ENDPOINT | VERIFY => vec![
                NewStep::new(SWITCH_ENDPOINT, ORIGINAL),
                NewStep::new(RETIRE, REPLACEMENT),
                NewStep::new(WAIT_RETIRED, REPLACEMENT),
            ],
            _ => vec![],
        },
        // A drill that stops anywhere before its teardown still tears down.
        RunbookKind::Drill => match failed {
            TEARDOWN | WAIT_RETIRED | LEAK_CHECK | RECORD => vec![],
            _ => vec![
                NewStep::new(TEARDOWN, ""),
                NewStep::new(WAIT_RETIRED, DRILL),
                NewStep::new(LEAK_CHECK, ""),
            ],
        },
        // Past the promotion there is no going back: a failover that stops is
        // finished by hand (or by a failback), and says where it stopped.
        RunbookKind::Rollback | RunbookKind::Restart | RunbookKind::Failover => vec![],
    }
}

/// Whether a runbook may still be cancelled where it is; the error says why not
/// and what to do instead.
pub fn cancellable(rb: &RunbookRow) -> Result<(), String> {
    if rb.phase != "MAIN" {
        return Err(format!(
            "operation {} is already undoing its changes after: {}",
            rb.id,
            rb.error.clone().unwrap_or_default()
        ));
    }
    let started = |name: &str| rb.steps.iter().any(|s| s.name == name && s.started_at.is_some());
    match rb.kind {
        RunbookKind::Upgrade if started(SWITCH_ENDPOINT) => Err(format!(
            "upgrade {} has moved the endpoint to the replacement; roll it back instead (ocadm clusters rollback {})",
            rb.id, rb.params.original_id
        )),
        RunbookKind::Rollback if started(SWITCH_ENDPOINT) => Err(format!(
            "rollback {} has started moving the endpoint back; it cannot be cancelled",
            rb.id
        )),
        RunbookKind::Failover => Err(format!(
            "failover {} has promoted the database; it cannot be cancelled. Fail back with ocadm failover --planned --to {}",
            rb.id,
            rb.params.from_region.as_deref().unwrap_or("<old region>")
        )),
        _ => Ok(()),
    }
}

/// How one run of a runbook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// It ended (SUCCEEDED, FAILED or CANCELLED).
    Finished(String),
    /// It waits; it is due again at this time.
    Waiting(i64),
    /// Another runner holds it, or it is not running.
    Busy,
    /// It changed under this runner (cancelled, rolled back, taken over).
    Lost,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Killed(#[from] Killed),
}

/// What a scheduled run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub runbooks: usize,
    pub finished: usize,
    pub errors: Vec<String>,
}

/// What the steps of some runbook kinds do: the engine ([`Runner`]) claims,
/// times, retries, undoes and records; a `Steps` acts. The cluster kinds
/// (upgrade, rollback, restart) are [`ClusterSteps`]; the region kinds
/// (failover, drill) live in `workflows::failover`.
pub trait Steps: Send + Sync + Sized {
    /// The kinds this runs; a runner drives only runbooks of these.
    fn kinds() -> &'static [RunbookKind];
    /// Runs one attempt of `step`.
    fn execute<'a>(
        runner: &'a Runner<Self>,
        rb: &'a RunbookRow,
        step: &'a RunbookStep,
    ) -> impl std::future::Future<Output = Result<StepEnd, StepError>> + Send + 'a;
    /// How long a step may take, from its first start; none: a number of
    /// attempts bounds it instead.
    fn timeout_ms(runner: &Runner<Self>, rb: &RunbookRow, step: &str) -> Option<i64>;
}

/// The ports of the cluster runbooks: Route 53, the node agents, and the
/// reconciler's wake-up.
pub struct ClusterSteps<D, A> {
    pub dns: D,
    pub agents: A,
    pub zone: Option<DnsZone>,
    pub kick: Kick,
}

impl<D: Dns, A: Agents> Steps for ClusterSteps<D, A> {
    fn kinds() -> &'static [RunbookKind] {
        &RunbookKind::CLUSTER
    }

    fn execute<'a>(
        runner: &'a Runner<Self>,
        rb: &'a RunbookRow,
        step: &'a RunbookStep,
    ) -> impl std::future::Future<Output = Result<StepEnd, StepError>> + Send + 'a {
        runner.execute(rb, step)
    }

    fn timeout_ms(runner: &Runner<Self>, rb: &RunbookRow, step: &str) -> Option<i64> {
        let s = &runner.settings;
        match step {
            WAIT_READY => Some(rb.params.ready_timeout_ms),
            VERIFY => Some(s.verify_timeout_ms),
            WAIT_RETIRED => Some(s.retire_timeout_ms),
            WAIT_NODE_HEALTHY => Some(s.node_timeout_ms),
            // Steps that act retry a bounded number of times instead.
            _ => None,
        }
    }
}

/// The runner of upgrades, rollbacks and restarts.
pub type ClusterRunner<D, A> = Runner<ClusterSteps<D, A>>;

/// Runs runbooks of the kinds its [`Steps`] know, over the store.
pub struct Runner<X> {
    pub store: Store,
    pub steps: X,
    pub settings: RunbookSettings,
    /// Who holds leases taken by this runner (unique per process).
    pub owner: String,
    pub kill: KillSwitch,
}

impl<X> Runner<X> {
    /// A step's answer for "not yet": look again after the poll interval.
    pub(crate) fn wait(&self, note: String) -> Result<StepEnd, StepError> {
        Ok(StepEnd::Wait {
            until: now_ms() + self.settings.poll_ms,
            note,
        })
    }
}

impl<X: Steps> Runner<X> {
    /// Runs every runbook that is due and free, at most [`CONCURRENCY`] at once:
    /// each may wait in-process up to the budget, and one after another they
    /// would outlast the function's timeout.
    pub async fn run_due(&self) -> Result<RunSummary, StoreError> {
        use futures_util::stream::{self, StreamExt};
        let due = self.store.due_runbooks(now_ms(), X::kinds()).await?;
        let mut summary = RunSummary {
            runbooks: due.len(),
            ..Default::default()
        };
        let mut runs = stream::iter(due)
            .map(|id| async move { (id, self.run(id).await) })
            .buffer_unordered(CONCURRENCY);
        while let Some((id, outcome)) = runs.next().await {
            match outcome {
                Ok(RunOutcome::Finished(_)) => summary.finished += 1,
                Ok(_) => {}
                Err(e) => summary.errors.push(format!("runbook {id}: {e}")),
            }
        }
        Ok(summary)
    }

    /// Runs one runbook until it ends, waits past this run's budget, or is lost.
    pub async fn run(&self, id: i64) -> Result<RunOutcome, RunError> {
        // Only the kinds this runner runs: a drill's steps are not a restart's.
        let Some(mut rb) = self
            .store
            .claim_runbook(id, &self.owner, self.settings.lease_ms, X::kinds())
            .await?
        else {
            return Ok(RunOutcome::Busy);
        };
        let give_back_after = tokio::time::Instant::now() + self.settings.budget;
        loop {
            if rb.finished() {
                info!(runbook = id, state = %rb.state, "runbook ended");
                return Ok(RunOutcome::Finished(rb.state));
            }
            let end = match self.next(&rb).await {
                Ok(r) => r,
                Err(RunError::Store(StoreError::Conflict(m))) => {
                    warn!(runbook = id, reason = %m, "runbook changed under this runner");
                    // Still ours (it moved on in a way this run did not expect):
                    // give it back so the next run need not wait for the lease.
                    self.store.release_runbook(id, &self.owner).await?;
                    return Ok(RunOutcome::Lost);
                }
                Err(e) => return Err(e),
            };
            match end {
                Next::Moved(fresh) => rb = fresh,
                Next::Sleep(fresh, until) => {
                    let now = now_ms();
                    let pause = Duration::from_millis((until - now).max(0) as u64);
                    if tokio::time::Instant::now() + pause > give_back_after {
                        self.store.release_runbook(id, &self.owner).await?;
                        return Ok(RunOutcome::Waiting(until));
                    }
                    tokio::time::sleep(pause).await;
                    rb = fresh;
                }
            }
        }
    }

    /// Runs the current step once and records how it ended.
    async fn next(&self, rb: &RunbookRow) -> Result<Next, RunError> {
        let step = rb.current().cloned().ok_or_else(|| StoreError::Corrupt {
            what: "runbook",
            detail: format!("runbook {} is running with no step {}", rb.id, rb.next_seq),
        })?;
        let point = format!("{}-{}", step.seq, step.name);
        let now = now_ms();
        let fail = |error: String, cancelled: bool| StepEnd::Fail {
            undo: if rb.phase == "MAIN" {
                undo_steps(rb, &step.name)
            } else {
                vec![]
            },
            error,
            cancelled,
        };
        // A cancel takes effect between steps, and while a step waits.
        let end = if rb.cancel_requested && rb.phase == "MAIN" {
            fail(format!("cancelled at step {}", step.name), true)
        } else if let Some(limit) = step
            .started_at
            .zip(X::timeout_ms(self, rb, &step.name))
            .map(|(s, t)| s + t)
            .filter(|limit| now >= *limit)
        {
            let last = step.result.clone().or(step.error.clone()).unwrap_or_default();
            fail(
                format!(
                    "{} timed out: not done {} s after it started at {}; last: {last}",
                    step.name,
                    (limit - step.started_at.unwrap_or(limit)) / 1000,
                    crate::time::format_ms(step.started_at.unwrap_or(0)),
                ),
                false,
            )
        } else {
            self.kill.reached(&format!("{point}:before")).await?;
            let rb = self
                .store
                .start_step(rb, &self.owner, self.settings.lease_ms)
                .await?;
            let step = rb.current().cloned().expect("the step just started");
            let end = match X::execute(self, &rb, &step).await {
                Ok(end) => end,
                Err(StepError::Permanent(e)) => fail(e, false),
                Err(StepError::Transient(e)) if step.attempts >= self.settings.max_attempts => {
                    fail(format!("{e} (after {} attempts)", step.attempts), false)
                }
                Err(StepError::Transient(error)) => StepEnd::Retry {
                    until: now_ms() + self.settings.poll_ms,
                    error,
                },
            };
            self.kill.reached(&format!("{point}:acted")).await?;
            let fresh = self
                .store
                .end_step(&rb, &self.owner, self.settings.lease_ms, &end)
                .await?;
            info!(runbook = rb.id, step = %point, end = ?end, "runbook step");
            return Ok(match end {
                StepEnd::Wait { until, .. } | StepEnd::Retry { until, .. } => Next::Sleep(fresh, until),
                _ => Next::Moved(fresh),
            });
        };
        let fresh = self
            .store
            .end_step(rb, &self.owner, self.settings.lease_ms, &end)
            .await?;
        info!(runbook = rb.id, step = %point, end = ?end, "runbook step");
        Ok(Next::Moved(fresh))
    }
}

enum Next {
    Moved(RunbookRow),
    Sleep(RunbookRow, i64),
}

/// Why a step's attempt failed.
#[derive(Debug)]
pub enum StepError {
    /// Trying again later may work (throttling, a lost connection).
    Transient(String),
    Permanent(String),
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            StepError::Transient(e.to_string())
        } else if let StoreError::Conflict(_) = e {
            // The runbook changed under us: the caller's compare-and-set reports it.
            StepError::Transient(e.to_string())
        } else {
            StepError::Permanent(e.to_string())
        }
    }
}

impl From<crate::cloud::CloudError> for StepError {
    fn from(e: crate::cloud::CloudError) -> Self {
        if e.is_retryable() {
            StepError::Transient(e.to_string())
        } else {
            StepError::Permanent(e.to_string())
        }
    }
}

/// The endpoint record a cluster should have: its in-service nodes' addresses,
/// as its side's failover record or a simple one (see
/// [`crate::workflows::reconcile::plan::endpoint_routing`]); none without an
/// endpoint name.
pub(crate) async fn endpoint_record(store: &Store, c: &ClusterRow) -> Result<Option<RecordSet>, StepError> {
    let Some(name) = &c.endpoint else {
        return Ok(None);
    };
    let env = store.get_environment(c.environment_id).await?;
    let pair_region = match env.pair_id {
        Some(p) => Some(store.get_environment(p).await?.region),
        None => None,
    };
    let checks: Vec<(String, String)> = store
        .dm_regions()
        .await?
        .into_iter()
        .filter_map(|r| r.health_check_id.map(|id| (r.region, id)))
        .collect();
    let (routing, _) = crate::workflows::reconcile::plan::endpoint_routing(
        &env.region,
        env.is_primary(),
        pair_region.as_deref(),
        env.pair_serving,
        &checks,
    );
    let mut values: Vec<String> = store
        .nodes_of(c.id)
        .await?
        .into_iter()
        .filter(|n| n.lifecycle_state == "InService")
        .filter_map(|n| n.private_ip)
        .collect();
    values.sort();
    Ok(Some(RecordSet {
        failover: routing,
        ..RecordSet::a(name.clone(), ENDPOINT_TTL, values)
    }))
}

/// Whether the zone holds exactly `want` for its set (name, type and set
/// identifier): one such set, with the same values.
pub(crate) async fn dns_matches<D: Dns>(
    dns: &D,
    zone: &str,
    want: &RecordSet,
) -> Result<Result<(), String>, StepError> {
    let sets: Vec<RecordSet> = dns
        .records(zone, &want.name)
        .await?
        .into_iter()
        .filter(|r| r.same_set(want))
        .collect();
    Ok(match sets.as_slice() {
        [one] => {
            let mut got = one.values.clone();
            got.sort();
            if got == want.values {
                Ok(())
            } else {
                Err(format!("{} resolves to {}", want.name, got.join(", ")))
            }
        }
        [] => Err(format!("{} has no {} record", want.name, want.kind)),
        many => Err(format!(
            "{} has {} {} record sets",
            want.name,
            many.len(),
            want.kind
        )),
    })
}

/// The event that asks the runbooks function to run one runbook now.
pub fn event(runbook_id: i64) -> serde_json::Value {
    serde_json::json!({ "runbookId": runbook_id })
}

/// Parses a direct invoke of the runbooks function: `{"runbookId": N}`.
pub fn parse_event(event: &serde_json::Value) -> Option<i64> {
    let obj = event.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.get("runbookId")?.as_i64().filter(|id| *id > 0)
}
