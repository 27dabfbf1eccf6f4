//! Runbooks: persisted step machines (upgrade by replacement, rollback, restart;
//! failover and drills to come). A runbook is an operation (same id) with a list
//! of steps. The API's writes submit one in the same transaction as its operation;
//! the runner (`workflows::runbook`) claims it with a lease and moves it on with
//! compare-and-set writes, so a runner that lost its lease, or a runbook that was
//! cancelled or rolled back meanwhile, changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use super::operations::{begin, record, with_key_retry, Begun, Change, Step, StepState};
use super::rows::{col, json, opt_text, text, ClusterRow};
use super::{q, Store, StoreError, Submitted, WriteCtx};
use crate::domain::ClusterStatus;
use crate::time::now_ms;

/// What a runbook does. Each kind has its own steps (`workflows::runbook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunbookKind {
    Upgrade,
    Rollback,
    Restart,
    /// The steps of a failover after the target's database took writes.
    Failover,
    /// A recovery drill in another region.
    Drill,
}

impl RunbookKind {
    /// The kinds that act on one cluster (the runbooks function runs them).
    pub const CLUSTER: [RunbookKind; 3] = [RunbookKind::Upgrade, RunbookKind::Rollback, RunbookKind::Restart];
    /// The kinds that act on a region (the failover function runs them).
    pub const REGION: [RunbookKind; 2] = [RunbookKind::Failover, RunbookKind::Drill];

    pub fn as_str(self) -> &'static str {
        match self {
            RunbookKind::Upgrade => "UPGRADE",
            RunbookKind::Rollback => "ROLLBACK",
            RunbookKind::Restart => "RESTART",
            RunbookKind::Failover => "FAILOVER",
            RunbookKind::Drill => "DRILL",
        }
    }

    /// The kind of the operation that carries the runbook.
    pub fn operation_kind(self) -> &'static str {
        match self {
            RunbookKind::Upgrade => "UPGRADE_CLUSTER",
            RunbookKind::Rollback => "ROLLBACK_CLUSTER",
            RunbookKind::Restart => "RESTART_CLUSTER",
            RunbookKind::Failover => "FAILOVER",
            RunbookKind::Drill => "DRILL",
        }
    }

    pub(crate) fn parse(raw: &str) -> Result<RunbookKind, StoreError> {
        match raw {
            "UPGRADE" => Ok(RunbookKind::Upgrade),
            "ROLLBACK" => Ok(RunbookKind::Rollback),
            "RESTART" => Ok(RunbookKind::Restart),
            "FAILOVER" => Ok(RunbookKind::Failover),
            "DRILL" => Ok(RunbookKind::Drill),
            other => Err(StoreError::Corrupt {
                what: "runbook kind",
                detail: other.to_owned(),
            }),
        }
    }
}

/// What was asked, fixed at submission. Fields that a kind does not use stay empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunbookParams {
    /// The cluster the runbook started from (the one being upgraded or restarted).
    pub original_id: i64,
    pub version: Option<String>,
    pub components: BTreeMap<String, String>,
    pub force: bool,
    pub ready_timeout_ms: i64,
    pub rollback_window_ms: i64,
    /// For a rollback: the upgrade it undoes, and the upgrade's replacement.
    pub upgrade_id: Option<i64>,
    pub replacement_id: Option<i64>,
    /// For a restart: the one service to restart (all when empty).
    pub service: Option<String>,
    /// For a failover: its request in the fence.
    pub failover_id: Option<String>,
    /// For a failover or a drill: the region it leaves (or copies) and the one
    /// it goes to.
    pub from_region: Option<String>,
    pub to_region: Option<String>,
    /// For a failover: a switchover with no data loss.
    pub planned: bool,
    /// For a failover: when its trigger happened (the RTO counts from here).
    pub requested_at: Option<i64>,
    /// For a failover: the replica lag at promotion, ms (the RPO estimate).
    pub lag_ms: Option<i64>,
}

/// A cluster a failover or a drill moves: the serving side and the cluster that
/// takes over from it (its partner, or a drill cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub from: i64,
    pub to: i64,
}

/// What the steps learned on the way; written in the same transaction as the
/// change that taught it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunbookContext {
    pub replacement_id: Option<i64>,
    /// When the endpoint moved to the replacement (the rollback window starts here).
    pub switched_at: Option<i64>,
    /// The rollback that ended this upgrade.
    pub rolled_back_by: Option<i64>,
    /// For a failover or a drill: the clusters it brought up, and from which.
    pub moves: Option<Vec<Move>>,
    /// For a failover or a drill: what it measured, once recorded.
    pub report: Option<serde_json::Value>,
}

/// One step of a runbook as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunbookStep {
    pub seq: i64,
    pub name: String,
    pub arg: String,
    /// PENDING, RUNNING, DONE, FAILED, SKIPPED or CANCELLED.
    pub state: String,
    pub attempts: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub result: Option<String>,
    pub error: Option<String>,
}

/// A runbook with its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookRow {
    pub id: i64,
    pub kind: RunbookKind,
    pub cluster_id: i64,
    /// RUNNING, SUCCEEDED, FAILED or CANCELLED.
    pub state: String,
    /// MAIN, or UNDO once undo steps were appended after a failure or a cancel.
    pub phase: String,
    pub next_seq: i64,
    pub params: RunbookParams,
    pub context: RunbookContext,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub wake_at: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub steps: Vec<RunbookStep>,
}

impl RunbookRow {
    /// The step to run next, if any is left.
    pub fn current(&self) -> Option<&RunbookStep> {
        self.steps.iter().find(|s| s.seq == self.next_seq)
    }

    pub fn finished(&self) -> bool {
        self.state != "RUNNING"
    }
}

/// A step to append: its name and argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStep {
    pub name: &'static str,
    pub arg: String,
}

impl NewStep {
    pub fn new(name: &'static str, arg: impl Into<String>) -> NewStep {
        NewStep {
            name,
            arg: arg.into(),
        }
    }
}

/// How the runner leaves the current step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnd {
    /// It took effect; go on with the next step.
    Done(String),
    /// Not yet; look again at `until` (the step stays RUNNING).
    Wait { until: i64, note: String },
    /// Failed this attempt; try again at `until`.
    Retry { until: i64, error: String },
    /// Failed for good (or timed out, or was cancelled): mark it, skip the
    /// remaining main steps, and run `undo` (may be empty).
    Fail {
        error: String,
        undo: Vec<NewStep>,
        cancelled: bool,
    },
}

const RUNBOOK_COLUMNS: &str =
    "id, kind, cluster_id, state, phase, next_seq, params, context, cancel_requested, \
    error, lease_owner, lease_until, wake_at, version, created_at, updated_at";

pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("runbook json serialises")
}

pub(crate) fn conflict(msg: String) -> StoreError {
    StoreError::Conflict(msg)
}

/// The operation-step view of runbook steps (what `GET /v1/operations/{id}` has
/// always shown), so every client sees runbook progress without knowing runbooks.
fn operation_steps(steps: &[RunbookStep]) -> Vec<Step> {
    steps
        .iter()
        .map(|s| Step {
            name: if s.arg.is_empty() {
                s.name.clone()
            } else {
                format!("{} {}", s.name, s.arg)
            },
            state: match s.state.as_str() {
                "RUNNING" => StepState::Running,
                "DONE" => StepState::Done,
                "FAILED" => StepState::Failed,
                "SKIPPED" => StepState::Skipped,
                "CANCELLED" => StepState::Cancelled,
                _ => StepState::Pending,
            },
            message: s.error.clone().or_else(|| s.result.clone()).unwrap_or_default(),
        })
        .collect()
}

async fn load_steps(tx: &mut Transaction<'static, Any>, id: i64) -> Result<Vec<RunbookStep>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, name, arg, state, attempts, started_at, finished_at, result, error \
         FROM runbook_steps WHERE runbook_id = ? ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await
    .map_err(q("read runbook steps"))?;
    rows.iter()
        .map(|r| {
            Ok(RunbookStep {
                seq: col(r, "seq")?,
                name: text(r, "name")?,
                arg: text(r, "arg")?,
                state: text(r, "state")?,
                attempts: col(r, "attempts")?,
                started_at: col(r, "started_at")?,
                finished_at: col(r, "finished_at")?,
                result: opt_text(r, "result")?,
                error: opt_text(r, "error")?,
            })
        })
        .collect()
}

pub(crate) async fn load(
    tx: &mut Transaction<'static, Any>,
    id: i64,
) -> Result<Option<RunbookRow>, StoreError> {
    let sql = format!("SELECT {RUNBOOK_COLUMNS} FROM runbooks WHERE id = ?");
    let Some(r) = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(q("read runbook"))?
    else {
        return Ok(None);
    };
    let steps = load_steps(tx, id).await?;
    Ok(Some(RunbookRow {
        id: col(&r, "id")?,
        kind: RunbookKind::parse(&text(&r, "kind")?)?,
        cluster_id: col(&r, "cluster_id")?,
        state: text(&r, "state")?,
        phase: text(&r, "phase")?,
        next_seq: col(&r, "next_seq")?,
        params: json("runbook params", &text(&r, "params")?)?,
        context: json("runbook context", &text(&r, "context")?)?,
        cancel_requested: col::<i64>(&r, "cancel_requested")? != 0,
        error: opt_text(&r, "error")?,
        lease_owner: opt_text(&r, "lease_owner")?,
        lease_until: col(&r, "lease_until")?,
        wake_at: col(&r, "wake_at")?,
        version: col(&r, "version")?,
        created_at: col(&r, "created_at")?,
        updated_at: col(&r, "updated_at")?,
        steps,
    }))
}

pub(crate) async fn insert_steps(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    first_seq: i64,
    steps: &[NewStep],
) -> Result<(), StoreError> {
    for (i, s) in steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO runbook_steps (runbook_id, seq, name, arg, state) VALUES (?, ?, ?, ?, 'PENDING')",
        )
        .bind(id)
        .bind(first_seq + i as i64)
        .bind(s.name)
        .bind(&s.arg)
        .execute(&mut **tx)
        .await
        .map_err(q("insert runbook step"))?;
    }
    Ok(())
}

/// Writes the runbook's steps and state into its operation row.
pub(crate) async fn sync_operation(tx: &mut Transaction<'static, Any>, id: i64) -> Result<(), StoreError> {
    let Some(rb) = load(tx, id).await? else {
        return Ok(());
    };
    let state = match rb.state.as_str() {
        "RUNNING" if rb.steps.iter().all(|s| s.state == "PENDING") => "PENDING",
        other => other,
    };
    sqlx::query("UPDATE operations SET state = ?, steps = ?, error = ?, updated_at = ? WHERE id = ?")
        .bind(state)
        .bind(to_json(&operation_steps(&rb.steps)))
        .bind(rb.error.clone())
        .bind(now_ms())
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(q("sync runbook operation"))?;
    Ok(())
}

/// The running runbook that involves `cluster` (as its subject, or as an
/// upgrade's replacement), if any.
pub(crate) async fn active_runbook_of(
    tx: &mut Transaction<'static, Any>,
    cluster: &ClusterRow,
) -> Result<Option<(i64, RunbookKind)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, kind FROM runbooks WHERE state = 'RUNNING' AND (cluster_id = ? OR cluster_id = ?) ORDER BY id LIMIT 1",
    )
    .bind(cluster.id)
    .bind(cluster.replaces_id.unwrap_or(cluster.id))
    .fetch_optional(&mut **tx)
    .await
    .map_err(q("find active runbook"))?;
    row.map(|r| Ok((col(&r, "id")?, RunbookKind::parse(&text(&r, "kind")?)?)))
        .transpose()
}

/// A runbook to submit.
struct Submission<'a> {
    kind: RunbookKind,
    cluster: &'a ClusterRow,
    params: RunbookParams,
    context: RunbookContext,
    steps: Vec<NewStep>,
    audit: String,
}

/// What an upgrade asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub version: String,
    pub components: BTreeMap<String, String>,
    pub force: bool,
    pub ready_timeout_ms: i64,
    pub rollback_window_ms: i64,
}

impl Store {
    /// Records the runbook and its operation, and bumps the cluster's
    /// `row_version` so that two submissions racing on one cluster conflict.
    async fn submit(
        &self,
        mut tx: Transaction<'static, Any>,
        ctx: &WriteCtx,
        sub: Submission<'_>,
    ) -> Result<Submitted, StoreError> {
        let bumped = sqlx::query(
            "UPDATE clusters SET row_version = row_version + 1, updated_at = ? WHERE id = ? AND row_version = ?",
        )
        .bind(now_ms())
        .bind(sub.cluster.id)
        .bind(sub.cluster.row_version)
        .execute(&mut *tx)
        .await
        .map_err(q("lock cluster for runbook"))?;
        if bumped.rows_affected() == 0 {
            return Err(conflict(format!(
                "cluster {} changed while this request was being made; try again",
                sub.cluster.id
            )));
        }
        let submitted = record(
            &mut tx,
            ctx,
            Change {
                kind: sub.kind.operation_kind(),
                target_kind: "cluster",
                target_id: sub.cluster.id,
                target_generation: 0,
                steps: vec![],
                audit_detail: &sub.audit,
            },
        )
        .await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO runbooks (id, kind, cluster_id, state, phase, next_seq, params, context, created_at, updated_at) \
             VALUES (?, ?, ?, 'RUNNING', 'MAIN', 0, ?, ?, ?, ?)",
        )
        .bind(submitted.operation_id)
        .bind(sub.kind.as_str())
        .bind(sub.cluster.id)
        .bind(to_json(&sub.params))
        .bind(to_json(&sub.context))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(q("insert runbook"))?;
        insert_steps(&mut tx, submitted.operation_id, 0, &sub.steps).await?;
        sync_operation(&mut tx, submitted.operation_id).await?;
        tx.commit().await.map_err(q("commit runbook"))?;
        Ok(submitted)
    }

    /// Starts an upgrade by replacement of `id`, with the steps `steps`.
    /// Refused (409) while another runbook involves the cluster, unless the
    /// cluster is READY (or `force`), and for a protected cluster whose protection
    /// does not allow upgrades.
    pub async fn submit_upgrade(
        &self,
        ctx: &WriteCtx,
        id: i64,
        req: &UpgradeRequest,
        steps: &[NewStep],
    ) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || async {
            let mut tx = self.begin_tx().await?;
            if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
                return Ok(s);
            }
            let cluster = self.get_cluster_in(&mut tx, id).await?;
            check_runbook_target(&mut tx, &cluster, "upgraded").await?;
            if !cluster.serves_endpoint {
                return Err(conflict(format!(
                    "cluster {id} is the replacement built by an upgrade of cluster {}; it cannot be upgraded itself",
                    cluster.replaces_id.unwrap_or_default()
                )));
            }
            if cluster.termination_protection && !cluster.protection_allows_upgrade {
                return Err(conflict(format!(
                    "cluster {id} is protected, and its protection does not allow upgrades (an upgrade retires its nodes); \
                     allow them with ocadm clusters update --protectionAllowsUpgrade true {id}"
                )));
            }
            if !req.force && cluster.status_code != ClusterStatus::Ready.as_str() {
                return Err(conflict(format!(
                    "cluster {id} is {}, not READY; an upgrade replaces a healthy cluster. Fix it first, or pass --force",
                    cluster.status_code
                )));
            }
            if !req.force && cluster.odas_version == req.version && cluster.components == req.components {
                return Err(conflict(format!(
                    "cluster {id} already runs version {}{}; pass --force to replace it anyway",
                    req.version,
                    if req.components.is_empty() { "" } else { " with these components" }
                )));
            }
            let audit = format!(
                "upgrade cluster {} from {} to {}{}",
                cluster.name,
                cluster.odas_version,
                req.version,
                if req.components.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", components_text(&req.components))
                }
            );
            let params = RunbookParams {
                original_id: id,
                version: Some(req.version.clone()),
                components: req.components.clone(),
                force: req.force,
                ready_timeout_ms: req.ready_timeout_ms,
                rollback_window_ms: req.rollback_window_ms,
                ..Default::default()
            };
            self.submit(
                tx,
                ctx,
                Submission {
                    kind: RunbookKind::Upgrade,
                    cluster: &cluster,
                    params,
                    context: RunbookContext::default(),
                    steps: steps.to_vec(),
                    audit,
                },
            )
            .await
        })
        .await
    }

    /// Rolls back the upgrade of `id` (the original or its replacement) that is
    /// inside its rollback window: the upgrade stops (CANCELLED), and a rollback
    /// runbook with `steps` moves the endpoint back and retires the replacement.
    /// `window_step` is the name of the upgrade's waiting step.
    pub async fn submit_rollback(
        &self,
        ctx: &WriteCtx,
        id: i64,
        window_step: &str,
        steps: &[NewStep],
    ) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || async {
            let mut tx = self.begin_tx().await?;
            if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
                return Ok(s);
            }
            let cluster = self.get_cluster_in(&mut tx, id).await?;
            let original_id = cluster.replaces_id.unwrap_or(id);
            let upgrade_id: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(id) FROM runbooks WHERE kind = 'UPGRADE' AND cluster_id = ?",
            )
            .bind(original_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(q("find upgrade"))?;
            let Some(upgrade) = (match upgrade_id {
                Some(u) => load(&mut tx, u).await?,
                None => None,
            }) else {
                return Err(conflict(format!("cluster {id} has no upgrade to roll back")));
            };
            if upgrade.state != "RUNNING" {
                return Err(conflict(format!(
                    "the last upgrade of cluster {original_id} (operation {}) is {}; only an upgrade inside its \
                     rollback window can be rolled back",
                    upgrade.id, upgrade.state
                )));
            }
            let at_window = upgrade.current().is_some_and(|s| s.name == window_step) && upgrade.phase == "MAIN";
            let (Some(switched_at), true) = (upgrade.context.switched_at, at_window) else {
                return Err(conflict(format!(
                    "upgrade {} of cluster {original_id} has not finished moving the endpoint yet (step {}); \
                     cancel it instead: ocadm operations cancel {}",
                    upgrade.id,
                    upgrade.current().map_or("-", |s| s.name.as_str()),
                    upgrade.id
                )));
            };
            let closes = switched_at + upgrade.params.rollback_window_ms;
            if now_ms() >= closes {
                return Err(conflict(format!(
                    "the rollback window of upgrade {} closed at {}; the original cluster {original_id} is being retired",
                    upgrade.id,
                    crate::time::format_ms(closes)
                )));
            }
            let replacement = upgrade.context.replacement_id.ok_or_else(|| StoreError::Corrupt {
                what: "upgrade context",
                detail: format!("upgrade {} switched without a replacement", upgrade.id),
            })?;
            // The upgrade stops where it is: a runner still holding it loses its
            // next compare-and-set.
            let now = now_ms();
            let stopped = sqlx::query(
                "UPDATE runbooks SET state = 'CANCELLED', error = ?, lease_owner = NULL, lease_until = 0, \
                 version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
            )
            .bind("rolled back")
            .bind(now)
            .bind(upgrade.id)
            .bind(upgrade.version)
            .execute(&mut *tx)
            .await
            .map_err(q("stop upgrade"))?;
            if stopped.rows_affected() == 0 {
                return Err(conflict(format!(
                    "upgrade {} moved on while this rollback was being made; try again",
                    upgrade.id
                )));
            }
            sqlx::query(
                "UPDATE runbook_steps SET state = 'CANCELLED', finished_at = ? WHERE runbook_id = ? AND seq >= ? \
                 AND state IN ('PENDING', 'RUNNING')",
            )
            .bind(now)
            .bind(upgrade.id)
            .bind(upgrade.next_seq)
            .execute(&mut *tx)
            .await
            .map_err(q("cancel upgrade steps"))?;
            let original = self.get_cluster_in(&mut tx, original_id).await?;
            let params = RunbookParams {
                original_id,
                upgrade_id: Some(upgrade.id),
                replacement_id: Some(replacement),
                ..Default::default()
            };
            let audit = format!(
                "roll back upgrade {} of cluster {}: endpoint back to cluster {original_id}, retire cluster {replacement}",
                upgrade.id, original.name
            );
            // The original is the subject: it is no longer under a running upgrade.
            let submitted = self
                .submit(
                    tx,
                    ctx,
                    Submission {
                        kind: RunbookKind::Rollback,
                        cluster: &original,
                        params,
                        context: RunbookContext {
                            replacement_id: Some(replacement),
                            ..Default::default()
                        },
                        steps: steps.to_vec(),
                        audit,
                    },
                )
                .await?;
            // Note the rollback on the upgrade (its own transaction: the
            // rollback exists either way, and this is only for display).
            let mut tx = self.begin_tx().await?;
            let mut context = upgrade.context.clone();
            context.rolled_back_by = Some(submitted.operation_id);
            sqlx::query("UPDATE runbooks SET context = ?, error = ? WHERE id = ?")
                .bind(to_json(&context))
                .bind(format!("rolled back by operation {}", submitted.operation_id))
                .bind(upgrade.id)
                .execute(&mut *tx)
                .await
                .map_err(q("note rollback"))?;
            sync_operation(&mut tx, upgrade.id).await?;
            tx.commit().await.map_err(q("commit rollback note"))?;
            Ok(submitted)
        })
        .await
    }

    /// Restarts the services of `id` node by node, with `steps`.
    pub async fn submit_restart(
        &self,
        ctx: &WriteCtx,
        id: i64,
        service: Option<&str>,
        steps: impl Fn(&[String]) -> Vec<NewStep>,
    ) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || async {
            let mut tx = self.begin_tx().await?;
            if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
                return Ok(s);
            }
            let cluster = self.get_cluster_in(&mut tx, id).await?;
            check_runbook_target(&mut tx, &cluster, "restarted").await?;
            let lifecycle = ["PROVISIONING", "UPDATING", "TERMINATING", "TERMINATED"];
            if lifecycle.contains(&cluster.status_code.as_str()) {
                return Err(conflict(format!(
                    "cluster {id} is {}; restart it once it is running",
                    cluster.status_code
                )));
            }
            let nodes: Vec<String> = sqlx::query_scalar(
                "SELECT instance_id FROM nodes WHERE cluster_id = ? AND lifecycle_state = 'InService' \
                 ORDER BY launched_at, instance_id",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(q("list nodes to restart"))?;
            if nodes.is_empty() {
                return Err(conflict(format!(
                    "cluster {id} has no node in service to restart"
                )));
            }
            let audit = format!(
                "restart {} on the {} node(s) of cluster {}, one at a time",
                service.unwrap_or("every service"),
                nodes.len(),
                cluster.name
            );
            let params = RunbookParams {
                original_id: id,
                service: service.map(str::to_owned),
                ..Default::default()
            };
            self.submit(
                tx,
                ctx,
                Submission {
                    kind: RunbookKind::Restart,
                    cluster: &cluster,
                    params,
                    context: RunbookContext::default(),
                    steps: steps(&nodes),
                    audit,
                },
            )
            .await
        })
        .await
    }

    /// Asks a running runbook to stop at its next step boundary; `check` says
    /// whether the runbook may still be cancelled where it is.
    pub async fn request_cancel(
        &self,
        ctx: &WriteCtx,
        id: i64,
        check: impl Fn(&RunbookRow) -> Result<(), String>,
    ) -> Result<Submitted, StoreError> {
        let mut tx = self.begin_tx().await?;
        let rb = load(&mut tx, id).await?.ok_or(StoreError::NotFound {
            kind: "runbook operation",
            id,
        })?;
        if rb.finished() {
            return Err(conflict(format!("operation {id} already ended ({})", rb.state)));
        }
        check(&rb).map_err(conflict)?;
        sqlx::query("UPDATE runbooks SET cancel_requested = 1, wake_at = 0, version = version + 1, updated_at = ? WHERE id = ?")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(q("request cancel"))?;
        audit(
            &mut tx,
            &ctx.principal,
            "CANCEL_OPERATION",
            &format!("cluster/{}", rb.cluster_id),
            &format!("cancel {} operation {id}", rb.kind.as_str()),
        )
        .await?;
        tx.commit().await.map_err(q("commit cancel"))?;
        Ok(Submitted {
            operation_id: id,
            target_id: rb.cluster_id,
            replayed: false,
        })
    }

    pub async fn get_runbook(&self, id: i64) -> Result<Option<RunbookRow>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(q("begin read"))?;
        let rb = load(&mut tx, id).await?;
        tx.commit().await.map_err(q("end read"))?;
        Ok(rb)
    }

    /// Running runbooks of `kinds` that are due (their wake time passed) and
    /// not held.
    pub async fn due_runbooks(&self, now: i64, kinds: &[RunbookKind]) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind FROM runbooks WHERE state = 'RUNNING' AND wake_at <= ? AND lease_until < ? ORDER BY id",
        )
        .bind(now)
        .bind(now)
        .fetch_all(self.pool())
        .await
        .map_err(q("due runbooks"))?;
        let mut out = Vec::new();
        for r in &rows {
            if kinds.contains(&RunbookKind::parse(&text(r, "kind")?)?) {
                out.push(col(r, "id")?);
            }
        }
        Ok(out)
    }

    /// Writes what a step learned into the runbook's context, if the runner
    /// still holds it. Context notes leave `version` alone: the runner makes the
    /// next compare-and-set itself, with the version it read.
    pub(crate) async fn note_context(
        tx: &mut Transaction<'static, Any>,
        rb_id: i64,
        owner: &str,
        context: &RunbookContext,
    ) -> Result<(), StoreError> {
        let noted = sqlx::query(
            "UPDATE runbooks SET context = ? WHERE id = ? AND lease_owner = ? AND state = 'RUNNING'",
        )
        .bind(to_json(context))
        .bind(rb_id)
        .bind(owner)
        .execute(&mut **tx)
        .await
        .map_err(q("note runbook context"))?;
        if noted.rows_affected() == 0 {
            return Err(conflict(format!(
                "lost runbook {rb_id} while noting its progress"
            )));
        }
        Ok(())
    }

    /// Takes the runbook for `ttl_ms` if it is of one of `kinds`, running and
    /// free, expired or already ours; returns it as claimed.
    pub async fn claim_runbook(
        &self,
        id: i64,
        owner: &str,
        ttl_ms: i64,
        kinds: &[RunbookKind],
    ) -> Result<Option<RunbookRow>, StoreError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let mut tx = self.begin_tx().await?;
        let now = now_ms();
        let before: Option<(Option<String>, i64)> =
            sqlx::query("SELECT lease_owner, lease_until FROM runbooks WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(q("read runbook lease"))?
                .map(|r| Ok::<_, StoreError>((opt_text(&r, "lease_owner")?, col(&r, "lease_until")?)))
                .transpose()?;
        let sql = format!(
            "UPDATE runbooks SET lease_owner = ?, lease_until = ?, version = version + 1 \
             WHERE id = ? AND state = 'RUNNING' AND (lease_until < ? OR lease_owner = ?) AND kind IN ({})",
            vec!["?"; kinds.len()].join(", ")
        );
        let mut claim = sqlx::query(&sql)
            .bind(owner)
            .bind(now + ttl_ms)
            .bind(id)
            .bind(now)
            .bind(owner);
        for k in kinds {
            claim = claim.bind(k.as_str());
        }
        let claimed = claim.execute(&mut *tx).await.map_err(q("claim runbook"))?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
        // A lease that ran out without being given back: its runner died. The
        // step it was in runs again, as a new attempt, and says why.
        if let Some((Some(dead), _)) = before.filter(|(o, until)| o.as_deref() != Some(owner) && *until > 0) {
            sqlx::query(
                "UPDATE runbook_steps SET attempts = attempts + 1, error = ? \
                 WHERE runbook_id = ? AND state = 'RUNNING' AND seq = (SELECT next_seq FROM runbooks WHERE id = ?)",
            )
            .bind(format!("runner {dead} stopped during this step; running it again"))
            .bind(id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(q("note takeover"))?;
        }
        let rb = load(&mut tx, id).await?;
        tx.commit().await.map_err(q("commit claim"))?;
        Ok(rb)
    }

    /// Gives the runbook back (its lease ends now).
    pub async fn release_runbook(&self, id: i64, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runbooks SET lease_owner = NULL, lease_until = 0 WHERE id = ? AND lease_owner = ?",
        )
        .bind(id)
        .bind(owner)
        .execute(self.pool())
        .await
        .map(|_| ())
        .map_err(q("release runbook"))
    }

    /// Marks the current step started (another attempt) and renews the lease.
    /// Returns the runbook as it now is, or a conflict when someone else moved it.
    pub async fn start_step(
        &self,
        rb: &RunbookRow,
        owner: &str,
        ttl_ms: i64,
    ) -> Result<RunbookRow, StoreError> {
        let mut tx = self.begin_tx().await?;
        let now = now_ms();
        cas(&mut tx, rb, owner, now, ttl_ms, "", &[]).await?;
        sqlx::query(
            "UPDATE runbook_steps SET attempts = attempts + CASE WHEN state = 'RUNNING' AND (error IS NULL OR error LIKE 'runner % stopped during this step%') THEN 0 ELSE 1 END, \
             state = 'RUNNING', error = NULL, started_at = COALESCE(started_at, ?) WHERE runbook_id = ? AND seq = ?",
        )
        .bind(now)
        .bind(rb.id)
        .bind(rb.next_seq)
        .execute(&mut *tx)
        .await
        .map_err(q("start step"))?;
        sync_operation(&mut tx, rb.id).await?;
        let fresh = load(&mut tx, rb.id).await?.expect("runbook exists");
        tx.commit().await.map_err(q("commit step start"))?;
        Ok(fresh)
    }

    /// Records how the current step ended and moves the runbook on. When the
    /// last step is done, the runbook and its operation end.
    pub async fn end_step(
        &self,
        rb: &RunbookRow,
        owner: &str,
        ttl_ms: i64,
        end: &StepEnd,
    ) -> Result<RunbookRow, StoreError> {
        let mut tx = self.begin_tx().await?;
        let now = now_ms();
        let seq = rb.next_seq;
        let step_sql = "UPDATE runbook_steps SET state = ?, finished_at = ?, result = ?, error = ? \
                        WHERE runbook_id = ? AND seq = ?";
        match end {
            StepEnd::Done(result) => {
                cas(
                    &mut tx,
                    rb,
                    owner,
                    now,
                    ttl_ms,
                    ", next_seq = next_seq + 1, wake_at = 0",
                    &[],
                )
                .await?;
                sqlx::query(step_sql)
                    .bind("DONE")
                    .bind(now)
                    .bind(result)
                    .bind(None::<String>)
                    .bind(rb.id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("finish step"))?;
                if !rb.steps.iter().any(|s| s.seq > seq) {
                    let state = match (rb.phase.as_str(), rb.cancel_requested) {
                        ("MAIN", _) => "SUCCEEDED",
                        (_, true) => "CANCELLED",
                        _ => "FAILED",
                    };
                    sqlx::query(
                        "UPDATE runbooks SET state = ?, lease_owner = NULL, lease_until = 0 WHERE id = ?",
                    )
                    .bind(state)
                    .bind(rb.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("end runbook"))?;
                }
            }
            StepEnd::Wait { until, note } => {
                cas(&mut tx, rb, owner, now, ttl_ms, ", wake_at = ?", &[*until]).await?;
                sqlx::query(
                    "UPDATE runbook_steps SET result = ?, error = NULL WHERE runbook_id = ? AND seq = ?",
                )
                .bind(note)
                .bind(rb.id)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(q("note step"))?;
            }
            StepEnd::Retry { until, error } => {
                cas(&mut tx, rb, owner, now, ttl_ms, ", wake_at = ?", &[*until]).await?;
                sqlx::query("UPDATE runbook_steps SET error = ? WHERE runbook_id = ? AND seq = ?")
                    .bind(error)
                    .bind(rb.id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("note step error"))?;
            }
            StepEnd::Fail {
                error,
                undo,
                cancelled,
            } => {
                let undoing = rb.phase != "MAIN";
                let first_undo = rb.steps.iter().map(|s| s.seq).max().unwrap_or(-1) + 1;
                let step_state = if *cancelled { "CANCELLED" } else { "FAILED" };
                sqlx::query(step_sql)
                    .bind(step_state)
                    .bind(now)
                    .bind(None::<String>)
                    .bind(error)
                    .bind(rb.id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("fail step"))?;
                sqlx::query(
                    "UPDATE runbook_steps SET state = ? WHERE runbook_id = ? AND seq > ? AND state = 'PENDING'",
                )
                .bind(if *cancelled { "CANCELLED" } else { "SKIPPED" })
                .bind(rb.id)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(q("skip steps"))?;
                let message = if undoing {
                    format!("{}; then {error}", rb.error.clone().unwrap_or_default())
                } else {
                    error.clone()
                };
                if undo.is_empty() || undoing {
                    let state = if *cancelled && !undoing {
                        "CANCELLED"
                    } else {
                        "FAILED"
                    };
                    cas(&mut tx, rb, owner, now, ttl_ms, "", &[]).await?;
                    sqlx::query(
                        "UPDATE runbooks SET state = ?, error = ?, lease_owner = NULL, lease_until = 0 WHERE id = ?",
                    )
                    .bind(state)
                    .bind(&message)
                    .bind(rb.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("end runbook"))?;
                } else {
                    cas(
                        &mut tx,
                        rb,
                        owner,
                        now,
                        ttl_ms,
                        ", phase = 'UNDO', wake_at = 0",
                        &[],
                    )
                    .await?;
                    sqlx::query("UPDATE runbooks SET next_seq = ?, error = ? WHERE id = ?")
                        .bind(first_undo)
                        .bind(&message)
                        .bind(rb.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(q("start undo"))?;
                    insert_steps(&mut tx, rb.id, first_undo, undo).await?;
                }
            }
        }
        sync_operation(&mut tx, rb.id).await?;
        let fresh = load(&mut tx, rb.id).await?.expect("runbook exists");
        tx.commit().await.map_err(q("commit step end"))?;
        Ok(fresh)
    }

    /// Builds the upgrade's replacement: a new cluster row with the original's
    /// spec, the new version and components, not serving the endpoint, and notes
    /// its id in the runbook, in one transaction. Returns the replacement's id;
    /// when the runbook already has one, returns it and builds nothing.
    pub async fn create_replacement(&self, rb: &RunbookRow, owner: &str) -> Result<i64, StoreError> {
        let mut tx = self.begin_tx().await?;
        let fresh = load(&mut tx, rb.id).await?.expect("runbook exists");
        if let Some(id) = fresh.context.replacement_id {
            return Ok(id);
        }
        let o = self.get_cluster_in(&mut tx, rb.params.original_id).await?;
        let version = rb
            .params
            .version
            .clone()
            .unwrap_or_else(|| o.odas_version.clone());
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO clusters (environment_id, name, live_key, description, cluster_type, num_nodes, instance_type, \
             storage_gb, odas_version, owner, tags, termination_protection, auto_repair, status_code, status_message, \
             created_at, updated_at, status_since, endpoint, serves_endpoint, components, replaces_id, protection_allows_upgrade) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        )
        .bind(o.environment_id)
        .bind(&o.name)
        .bind(format!("{}/{}#{}", o.environment_id, o.name, rb.id))
        .bind(&o.description)
        .bind(&o.cluster_type)
        .bind(o.num_nodes)
        .bind(&o.instance_type)
        .bind(o.storage_gb)
        .bind(&version)
        .bind(&o.owner)
        .bind(to_json(&o.tags))
        .bind(o.termination_protection as i64)
        .bind(o.auto_repair as i64)
        .bind(ClusterStatus::Provisioning.as_str())
        .bind(format!("Replacement for cluster {} (upgrade {}).", o.id, rb.id))
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(o.endpoint.clone())
        .bind(to_json(&rb.params.components))
        .bind(o.id)
        .bind(o.protection_allows_upgrade as i64)
        .execute(&mut *tx)
        .await
        .map_err(q("insert replacement"))?;
        let id = super::inserted_id(&mut tx, &inserted).await?;
        let mut context = fresh.context.clone();
        context.replacement_id = Some(id);
        Store::note_context(&mut tx, rb.id, owner, &context).await?;
        audit(
            &mut tx,
            &format!("runbook/{}", rb.id),
            "CREATE_CLUSTER",
            &format!("cluster/{id}"),
            &format!("replacement of cluster {} at version {version}", o.id),
        )
        .await?;
        tx.commit().await.map_err(q("commit replacement"))?;
        Ok(id)
    }

    /// Makes `to` the cluster the endpoint serves, and `from` not, in one
    /// transaction; the serving cluster also takes the live name. The first time
    /// the endpoint moves to an upgrade's replacement, the runbook notes when.
    /// Doing it again changes nothing.
    pub async fn move_endpoint(
        &self,
        rb: &RunbookRow,
        owner: &str,
        from: i64,
        to: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let fresh = load(&mut tx, rb.id).await?.expect("runbook exists");
        if fresh.lease_owner.as_deref() != Some(owner) || fresh.state != "RUNNING" {
            return Err(conflict(format!(
                "lost runbook {} while moving its endpoint",
                rb.id
            )));
        }
        let target = self.get_cluster_in(&mut tx, to).await?;
        if !target.serves_endpoint {
            // The serving cluster holds the live name ("<env>/<name>"); the other
            // side holds the one the target had. Unique: free it first.
            let target_key: Option<String> = sqlx::query_scalar("SELECT live_key FROM clusters WHERE id = ?")
                .bind(to)
                .fetch_one(&mut *tx)
                .await
                .map_err(q("read live key"))?;
            let base = format!("{}/{}", target.environment_id, target.name);
            for (id, serves, key) in [(to, 0, None), (from, 0, target_key), (to, 1, Some(base))] {
                sqlx::query(
                    "UPDATE clusters SET serves_endpoint = ?, live_key = ?, row_version = row_version + 1 WHERE id = ?",
                )
                .bind(serves)
                .bind(key)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(q("move live name"))?;
            }
            audit(
                &mut tx,
                &format!("runbook/{}", rb.id),
                "MOVE_ENDPOINT",
                &format!("cluster/{to}"),
                &format!(
                    "endpoint {} moves from cluster {from} to cluster {to}",
                    target.endpoint.unwrap_or_default()
                ),
            )
            .await?;
        }
        if rb.kind == RunbookKind::Upgrade && fresh.context.switched_at.is_none() {
            let mut context = fresh.context.clone();
            context.switched_at = Some(now_ms());
            sqlx::query("UPDATE runbooks SET context = ? WHERE id = ?")
                .bind(to_json(&context))
                .bind(rb.id)
                .execute(&mut *tx)
                .await
                .map_err(q("note switch"))?;
        }
        tx.commit().await.map_err(q("commit endpoint move"))
    }

    /// Asks for cluster `id` to be removed on behalf of a runbook, whatever its
    /// protection (the runbook's submission checked it). Asking twice changes nothing.
    pub async fn retire_cluster(&self, rb: &RunbookRow, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_tx().await?;
        let c = self.get_cluster_in(&mut tx, id).await?;
        if c.delete_requested {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE clusters SET delete_requested = 1, termination_protection = 0, generation = generation + 1, \
             status_code = ?, status_message = ?, status_since = ?, row_version = row_version + 1, updated_at = ? WHERE id = ?",
        )
        .bind(ClusterStatus::Terminating.as_str())
        .bind(format!("Retired by {} operation {}.", rb.kind.as_str().to_lowercase(), rb.id))
        .bind(now_ms())
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(q("retire cluster"))?;
        audit(
            &mut tx,
            &format!("runbook/{}", rb.id),
            "DELETE_CLUSTER",
            &format!("cluster/{id}"),
            &format!("retire cluster {} ({})", c.name, c.odas_version),
        )
        .await?;
        tx.commit().await.map_err(q("commit retire"))?;
        Ok(true)
    }

    /// Runbooks, newest first: of one cluster (as subject or as replacement) or
    /// all, optionally in one state.
    pub async fn list_operations(
        &self,
        cluster_id: Option<i64>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<super::OperationRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM operations WHERE (? IS NULL OR (target_kind = 'cluster' AND target_id = ?) \
             OR id IN (SELECT id FROM runbooks WHERE cluster_id IN (SELECT replaces_id FROM clusters WHERE id = ?))) \
             AND (? IS NULL OR state = ?) ORDER BY id DESC LIMIT ?",
            super::rows::OPERATION_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(cluster_id)
            .bind(cluster_id)
            .bind(cluster_id)
            .bind(state)
            .bind(state)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(q("list operations"))?;
        rows.iter().map(super::OperationRow::from_row).collect()
    }

    /// The version new clusters get when a create names none: what
    /// `set_default_version` stored, or `fallback` (the configured default).
    pub async fn default_version(&self, fallback: &str) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = 'default_version'")
            .fetch_optional(self.pool())
            .await
            .map_err(q("read default version"))?;
        let v = row.map(|r| text(&r, "value")).transpose()?;
        Ok(v.unwrap_or_else(|| fallback.to_owned()))
    }

    /// Stores the version new clusters get by default.
    pub async fn set_default_version(&self, principal: &str, version: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let sql = match self.backend() {
            super::Backend::Sqlite => {
                "INSERT INTO settings (name, value) VALUES ('default_version', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            }
            super::Backend::MySql => {
                "INSERT INTO settings (name, value) VALUES ('default_version', ?) ON DUPLICATE KEY UPDATE value = VALUES(value)"
            }
        };
        sqlx::query(sql)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(q("set default version"))?;
        audit(
            &mut tx,
            principal,
            "SET_DEFAULT_VERSION",
            "settings/default_version",
            &format!("default version of new clusters: {version}"),
        )
        .await?;
        tx.commit().await.map_err(q("commit default version"))
    }
}

/// Compare-and-set on the runbook: it is still as `rb` was read (same version),
/// held by `owner` and running. Renews the lease and applies `extra` (a SET
/// fragment starting with a comma; its `?`s take `binds`).
async fn cas(
    tx: &mut Transaction<'static, Any>,
    rb: &RunbookRow,
    owner: &str,
    now: i64,
    ttl_ms: i64,
    extra: &str,
    binds: &[i64],
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE runbooks SET version = version + 1, lease_until = ?, updated_at = ?{extra} \
         WHERE id = ? AND version = ? AND lease_owner = ? AND state = 'RUNNING'"
    );
    let mut update = sqlx::query(&sql).bind(now + ttl_ms).bind(now);
    for b in binds {
        update = update.bind(*b);
    }
    let r = update
        .bind(rb.id)
        .bind(rb.version)
        .bind(owner)
        .execute(&mut **tx)
        .await
        .map_err(q("move runbook"))?;
    if r.rows_affected() == 0 {
        return Err(conflict(format!(
            "runbook {} changed under this runner (cancelled, rolled back, or taken over)",
            rb.id
        )));
    }
    Ok(())
}

/// Appends an audit row (`target` such as `cluster/3`) in the caller's transaction.
pub(crate) async fn audit(
    tx: &mut Transaction<'static, Any>,
    principal: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (at, principal, action, target, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(now_ms())
        .bind(principal)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(q("append audit log"))
}

/// Refuses a runbook on a cluster that is going away or already under one.
async fn check_runbook_target(
    tx: &mut Transaction<'static, Any>,
    cluster: &ClusterRow,
    verb: &str,
) -> Result<(), StoreError> {
    if cluster.delete_requested {
        return Err(conflict(format!(
            "cluster {} is {}; it can no longer be {verb}",
            cluster.id, cluster.status_code
        )));
    }
    super::clusters::refuse_if_kept(cluster, verb)?;
    if let Some((op, kind)) = active_runbook_of(tx, cluster).await? {
        return Err(conflict(format!(
            "cluster {} is already under {} operation {op}; wait for it (ocadm operations get {op} --wait){}",
            cluster.id,
            kind.as_str().to_lowercase(),
            if kind == RunbookKind::Upgrade {
                format!(", or roll it back (ocadm clusters rollback {})", cluster.id)
            } else {
                String::new()
            }
        )));
    }
    Ok(())
}

/// `planner:2.1.1,worker:2.1.1`
pub fn components_text(components: &BTreeMap<String, String>) -> String {
    components
        .iter()
        .map(|(c, v)| format!("{c}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}
