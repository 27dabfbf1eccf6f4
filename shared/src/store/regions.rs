//! Regions and failover in the store (`docs/failover.md`): environment pairs
//! and their standby partners, the DM regions' health checks and heartbeats, the
//! replicated history of leadership, and the writes of failover and drill
//! runbooks (bring up the partners, move the pair's traffic, park the old side,
//! make drill clusters). Each write of a runbook step checks before it acts, so
//! running it again after a crash changes nothing.

use sqlx::{Any, Transaction};

use super::operations::{begin, record, Begun, Change};
use super::rows::{col, opt_text, text, ClusterRow, EnvironmentRow, CLUSTER_COLUMNS, ENVIRONMENT_COLUMNS};
use super::runbooks::{audit, conflict, insert_steps, load, sync_operation, to_json};
use super::{
    inserted_id, is_unique_violation, q, Move, NewStep, RunbookContext, RunbookKind, RunbookParams,
    RunbookRow, Store, StoreError, Submitted, WriteCtx,
};
use crate::domain::failover::{FailoverRequest, Leader};
use crate::domain::ClusterStatus;
use crate::time::now_ms;

/// A DM region as the active region keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionRow {
    pub region: String,
    /// The Route 53 health check that follows the region's serving alarm.
    pub health_check_id: Option<String>,
    /// When the region last said, as the active one, that it is alive.
    pub heartbeat_at: i64,
    pub clusters_ready: i64,
    pub clusters: i64,
}

/// One epoch a region held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadershipRow {
    pub epoch: i64,
    pub region: String,
    pub previous: Option<String>,
    pub at: i64,
    pub failover_id: Option<String>,
    pub operation_id: Option<i64>,
}

/// A step of a region runbook that already ran before its runbook was written
/// (a failover's claim and promotion): its times and result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneStep {
    pub name: &'static str,
    pub started_at: i64,
    pub finished_at: i64,
    pub result: String,
}

/// What a failover from one region to another would move.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailoverScope {
    /// The environments of the old region with live clusters, each with its
    /// partner in the target region, if any.
    pub environments: Vec<(EnvironmentRow, Option<EnvironmentRow>)>,
    /// The clusters serving in those environments, each with its standby
    /// partner (live, in the target region), if any.
    pub clusters: Vec<(ClusterRow, Option<ClusterRow>)>,
}

/// The cluster fields a partner must share with the cluster it stands in for
/// to be brought up as it is; otherwise a fresh one is made.
fn same_spec(a: &ClusterRow, b: &ClusterRow) -> bool {
    (
        &a.odas_version,
        &a.components,
        &a.instance_type,
        a.storage_gb,
        &a.cluster_type,
    ) == (
        &b.odas_version,
        &b.components,
        &b.instance_type,
        b.storage_gb,
        &b.cluster_type,
    )
}

/// Whether a cluster is the serving side of its environment (live, not parked,
/// not a drill's, not an upgrade's unfinished replacement).
fn serving(c: &ClusterRow) -> bool {
    !c.delete_requested && !c.parked && c.drill_id.is_none() && c.serves_endpoint
}

async fn clusters_where(
    tx: &mut Transaction<'static, Any>,
    condition: &str,
    id: i64,
) -> Result<Vec<ClusterRow>, StoreError> {
    let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE {condition} ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(id)
        .fetch_all(&mut **tx)
        .await
        .map_err(q("list clusters"))?;
    rows.iter().map(ClusterRow::from_row).collect()
}

async fn environment_in(
    tx: &mut Transaction<'static, Any>,
    id: i64,
) -> Result<Option<EnvironmentRow>, StoreError> {
    let sql = format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = ?");
    sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(q("get environment"))?
        .map(|r| EnvironmentRow::from_row(&r))
        .transpose()
}

/// Inserts the partner of `src` in environment `env_id`: the same spec and
/// endpoint name, parked or not, naming `src` as its partner (and `src` it).
pub(crate) async fn insert_partner(
    tx: &mut Transaction<'static, Any>,
    src: &ClusterRow,
    env_id: i64,
    parked: bool,
    why: &str,
) -> Result<i64, StoreError> {
    let now = now_ms();
    let (status, message) = if parked {
        (
            ClusterStatus::Standby,
            format!("Standby partner of cluster {} ({why}).", src.id),
        )
    } else {
        (
            ClusterStatus::Provisioning,
            format!("Taking over from cluster {} ({why}).", src.id),
        )
    };
    let inserted = sqlx::query(
        "INSERT INTO clusters (environment_id, name, live_key, description, cluster_type, num_nodes, instance_type, \
         storage_gb, odas_version, owner, tags, termination_protection, auto_repair, status_code, status_message, \
         created_at, updated_at, status_since, endpoint, serves_endpoint, components, protection_allows_upgrade, \
         parked, partner_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
    )
    .bind(env_id)
    .bind(&src.name)
    .bind(format!("{env_id}/{}", src.name))
    .bind(&src.description)
    .bind(&src.cluster_type)
    .bind(src.num_nodes)
    .bind(&src.instance_type)
    .bind(src.storage_gb)
    .bind(&src.odas_version)
    .bind(&src.owner)
    .bind(to_json(&src.tags))
    .bind(src.termination_protection as i64)
    .bind(src.auto_repair as i64)
    .bind(status.as_str())
    .bind(message)
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(src.endpoint.clone())
    .bind(to_json(&src.components))
    .bind(src.protection_allows_upgrade as i64)
    .bind(parked as i64)
    .bind(src.id)
    .execute(&mut **tx)
    .await;
    let id = match inserted {
        Ok(r) => inserted_id(tx, &r).await?,
        Err(e) if is_unique_violation(&e) => {
            return Err(conflict(format!(
                "environment {env_id} already has a cluster named {:?}, so cluster {} cannot get a partner there; \
                 rename or delete that cluster",
                src.name, src.id
            )))
        }
        Err(e) => return Err(q("insert partner")(e)),
    };
    sqlx::query("UPDATE clusters SET partner_id = ?, row_version = row_version + 1 WHERE id = ?")
        .bind(id)
        .bind(src.id)
        .execute(&mut **tx)
        .await
        .map_err(q("note partner"))?;
    Ok(id)
}

/// Asks for a cluster to be removed on behalf of the DM (a stale partner, a
/// drill's cluster), whatever its protection. Asking twice changes nothing.
pub(crate) async fn retire(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    principal: &str,
    why: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE clusters SET delete_requested = 1, termination_protection = 0, parked = 0, generation = generation + 1, \
         status_code = ?, status_message = ?, status_since = ?, row_version = row_version + 1, updated_at = ? \
         WHERE id = ? AND delete_requested = 0",
    )
    .bind(ClusterStatus::Terminating.as_str())
    .bind(format!("Retired: {why}."))
    .bind(now_ms())
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(q("retire cluster"))?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit(tx, principal, "DELETE_CLUSTER", &format!("cluster/{id}"), why).await?;
    Ok(true)
}

/// Unparks a partner for a failover: it takes the serving side's size.
async fn unpark(
    tx: &mut Transaction<'static, Any>,
    partner: &ClusterRow,
    src: &ClusterRow,
    why: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE clusters SET parked = 0, num_nodes = ?, generation = generation + 1, status_code = ?, status_message = ?, \
         status_since = ?, row_version = row_version + 1, updated_at = ? WHERE id = ?",
    )
    .bind(src.num_nodes)
    .bind(ClusterStatus::Updating.as_str())
    .bind(format!("Taking over from cluster {} ({why}).", src.id))
    .bind(now_ms())
    .bind(now_ms())
    .bind(partner.id)
    .execute(&mut **tx)
    .await
    .map_err(q("unpark partner"))?;
    Ok(())
}

impl Store {
    /// Every epoch is written once, by the region that held it.
    pub async fn record_leadership(
        &self,
        leader: &Leader,
        operation_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO leadership_history (epoch, region, previous, at, failover_id, operation_id) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(leader.epoch)
        .bind(&leader.region)
        .bind(leader.previous.clone())
        .bind(leader.since)
        .bind(leader.failover_id.clone())
        .bind(operation_id)
        .execute(self.pool())
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(q("record leadership")(e)),
        }
    }

    /// The epochs held, newest first.
    pub async fn leadership_history(&self, limit: i64) -> Result<Vec<LeadershipRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT epoch, region, previous, at, failover_id, operation_id FROM leadership_history ORDER BY epoch DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(q("read leadership history"))?;
        rows.iter()
            .map(|r| {
                Ok(LeadershipRow {
                    epoch: col(r, "epoch")?,
                    region: text(r, "region")?,
                    previous: opt_text(r, "previous")?,
                    at: col(r, "at")?,
                    failover_id: opt_text(r, "failover_id")?,
                    operation_id: col(r, "operation_id")?,
                })
            })
            .collect()
    }

    pub async fn dm_regions(&self) -> Result<Vec<RegionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT region, health_check_id, heartbeat_at, clusters_ready, clusters FROM dm_regions ORDER BY region",
        )
        .fetch_all(self.pool())
        .await
        .map_err(q("read regions"))?;
        rows.iter()
            .map(|r| {
                Ok(RegionRow {
                    region: text(r, "region")?,
                    health_check_id: opt_text(r, "health_check_id")?,
                    heartbeat_at: col(r, "heartbeat_at")?,
                    clusters_ready: col(r, "clusters_ready")?,
                    clusters: col(r, "clusters")?,
                })
            })
            .collect()
    }

    /// Adds the region's row if it is missing, then applies `update` (an UPDATE
    /// of `dm_regions` whose last parameter is the region), in one transaction.
    async fn update_region<'q>(
        &self,
        region: &str,
        update: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        sqlx::query("INSERT INTO dm_regions (region, updated_at) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM dm_regions WHERE region = ?)")
            .bind(region)
            .bind(now_ms())
            .bind(region)
            .execute(&mut *tx)
            .await
            .map_err(q("add region"))?;
        update
            .bind(region.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(q("update region"))?;
        tx.commit().await.map_err(q("commit region"))
    }

    /// Notes the Route 53 health check of a region's serving alarm.
    pub async fn set_health_check(&self, region: &str, id: &str) -> Result<(), StoreError> {
        let update =
            sqlx::query("UPDATE dm_regions SET health_check_id = ?, updated_at = ? WHERE region = ?")
                .bind(id.to_owned())
                .bind(now_ms());
        self.update_region(region, update).await
    }

    /// The active region says it is alive, with how many clusters are READY.
    pub async fn heartbeat(&self, region: &str, at: i64, ready: i64, total: i64) -> Result<(), StoreError> {
        let update = sqlx::query(
            "UPDATE dm_regions SET heartbeat_at = ?, clusters_ready = ?, clusters = ?, updated_at = ? WHERE region = ?",
        )
        .bind(at)
        .bind(ready)
        .bind(total)
        .bind(now_ms());
        self.update_region(region, update).await
    }

    /// Pairs `env` (just inserted, in `tx`) with `partner`: the partner is the
    /// primary and serves, `env` the secondary. The warm standby partners come
    /// with the next [`Store::sync_standbys`].
    pub(crate) async fn pair_environment(
        tx: &mut Transaction<'static, Any>,
        env_id: i64,
        env_region: &str,
        partner_id: i64,
        warm: i64,
    ) -> Result<(), StoreError> {
        let partner = super::environments::lock_environment(tx, partner_id).await?;
        if partner.delete_requested {
            return Err(conflict(format!(
                "environment {partner_id} is being deleted; it cannot get a failover partner"
            )));
        }
        if let Some(other) = partner.pair_id {
            return Err(conflict(format!(
                "environment {partner_id} is already paired with environment {other}; an environment has one partner"
            )));
        }
        if partner.region == env_region {
            return Err(StoreError::Conflict(format!(
                "environment {partner_id} is in {env_region} too; a failover partner must be in another region"
            )));
        }
        for (id, other, role, serving) in [
            (partner_id, env_id, "PRIMARY", 1),
            (env_id, partner_id, "SECONDARY", 0),
        ] {
            sqlx::query(
                "UPDATE environments SET pair_id = ?, failover_role = ?, warm_standby_nodes = ?, pair_serving = ?, \
                 row_version = row_version + 1 WHERE id = ?",
            )
            .bind(other)
            .bind(role)
            .bind(warm)
            .bind(serving)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(q("pair environments"))?;
        }
        Ok(())
    }

    /// Keeps the standby partners of every pair as its warm-standby size asks:
    /// each serving cluster of a warm pair has a parked partner of the same spec
    /// and size; a parked cluster whose partner is gone, or whose spec moved on
    /// (an upgrade), is retired. Run by the active region on its schedule.
    /// Returns what it changed: the cluster, and a line saying how.
    pub async fn sync_standbys(&self, principal: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let mut tx = self.begin_tx().await?;
        let envs: Vec<EnvironmentRow> = {
            let sql = format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE pair_id IS NOT NULL AND delete_requested = 0");
            let rows = sqlx::query(&sql)
                .fetch_all(&mut *tx)
                .await
                .map_err(q("list paired environments"))?;
            rows.iter()
                .map(EnvironmentRow::from_row)
                .collect::<Result<_, _>>()?
        };
        let mut changes = Vec::new();
        for env in envs.iter().filter(|e| e.pair_serving) {
            let Some(standby_env) = env.pair_id.and_then(|id| envs.iter().find(|e| e.id == id)) else {
                continue;
            };
            let serving_side = clusters_where(&mut tx, "environment_id = ?", env.id).await?;
            let standby_side = clusters_where(&mut tx, "environment_id = ?", standby_env.id).await?;
            for c in serving_side.iter().filter(|c| serving(c)) {
                let partner = c
                    .partner_id
                    .and_then(|p| standby_side.iter().find(|s| s.id == p && !s.delete_requested));
                match partner {
                    Some(p) if p.parked && !same_spec(p, c) => {
                        retire(
                            &mut tx,
                            p.id,
                            principal,
                            &format!("standby partner of cluster {} is out of date", c.id),
                        )
                        .await?;
                        sqlx::query("UPDATE clusters SET partner_id = NULL, row_version = row_version + 1 WHERE id = ?")
                            .bind(c.id)
                            .execute(&mut *tx)
                            .await
                            .map_err(q("forget partner"))?;
                        changes.push((
                            p.id,
                            format!(
                                "retired cluster {}: its spec no longer matches cluster {}",
                                p.id, c.id
                            ),
                        ));
                    }
                    Some(p) if p.parked && p.num_nodes != c.num_nodes => {
                        sqlx::query(
                            "UPDATE clusters SET num_nodes = ?, generation = generation + 1, row_version = row_version + 1 WHERE id = ?",
                        )
                        .bind(c.num_nodes)
                        .bind(p.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(q("resize partner"))?;
                        changes.push((
                            p.id,
                            format!(
                                "cluster {} follows cluster {} to {} node(s)",
                                p.id, c.id, c.num_nodes
                            ),
                        ));
                    }
                    Some(_) => {}
                    None if env.warm_standby_nodes > 0 => {
                        let id = insert_partner(
                            &mut tx,
                            c,
                            standby_env.id,
                            true,
                            &format!("warm standby in {}", standby_env.region),
                        )
                        .await?;
                        changes.push((
                            id,
                            format!("made cluster {id}, the warm standby of cluster {}", c.id),
                        ));
                    }
                    None => {}
                }
            }
            for p in standby_side
                .iter()
                .filter(|p| p.parked && !p.delete_requested && p.drill_id.is_none())
            {
                let owner = p
                    .partner_id
                    .and_then(|id| serving_side.iter().find(|c| c.id == id && serving(c)));
                if owner.is_none_or(|c| c.partner_id != Some(p.id)) {
                    retire(
                        &mut tx,
                        p.id,
                        principal,
                        "standby partner of a cluster that is gone",
                    )
                    .await?;
                    changes.push((
                        p.id,
                        format!("retired cluster {}: the cluster it stood by for is gone", p.id),
                    ));
                }
            }
        }
        tx.commit().await.map_err(q("commit standby sync"))?;
        Ok(changes)
    }

    /// What a failover from `from` to `to` would move.
    pub async fn failover_scope(&self, from: &str, to: &str) -> Result<FailoverScope, StoreError> {
        let mut tx = self.pool().begin().await.map_err(q("begin read"))?;
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE region = ? AND delete_requested = 0 ORDER BY id"
        );
        let envs: Vec<EnvironmentRow> = sqlx::query(&sql)
            .bind(from)
            .fetch_all(&mut *tx)
            .await
            .map_err(q("list environments"))?
            .iter()
            .map(EnvironmentRow::from_row)
            .collect::<Result<_, _>>()?;
        let mut scope = FailoverScope::default();
        for env in envs {
            let clusters: Vec<ClusterRow> = clusters_where(&mut tx, "environment_id = ?", env.id)
                .await?
                .into_iter()
                .filter(serving)
                .collect();
            if clusters.is_empty() {
                continue;
            }
            let partner = match env.pair_id {
                Some(id) => environment_in(&mut tx, id)
                    .await?
                    .filter(|p| p.region == to && !p.delete_requested),
                None => None,
            };
            for c in clusters {
                let p = match (c.partner_id, &partner) {
                    (Some(id), Some(penv)) => clusters_where(&mut tx, "id = ?", id)
                        .await?
                        .into_iter()
                        .find(|p| p.environment_id == penv.id && !p.delete_requested),
                    _ => None,
                };
                scope.clusters.push((c, p));
            }
            scope.environments.push((env, partner));
        }
        tx.commit().await.map_err(q("end read"))?;
        Ok(scope)
    }

    /// The running region runbook of `kind`, if any.
    pub async fn running_region_runbook(&self, kind: RunbookKind) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT MIN(id) FROM runbooks WHERE kind = ? AND state = 'RUNNING'")
            .bind(kind.as_str())
            .fetch_one(self.pool())
            .await
            .map_err(q("find running runbook"))
    }

    /// Records a region runbook (a failover's or a drill's) and its operation.
    /// `done` steps ran before the runbook could be written; they are recorded
    /// as DONE with their times, and the runbook starts after them.
    #[allow(clippy::too_many_arguments)]
    async fn submit_region(
        &self,
        mut tx: Transaction<'static, Any>,
        ctx: &WriteCtx,
        kind: RunbookKind,
        params: RunbookParams,
        done: &[DoneStep],
        steps: &[NewStep],
        audit_detail: &str,
    ) -> Result<Submitted, StoreError> {
        let submitted = record(
            &mut tx,
            ctx,
            Change {
                kind: kind.operation_kind(),
                target_kind: "region",
                target_id: 0,
                target_generation: 0,
                steps: vec![],
                audit_detail,
            },
        )
        .await?;
        let id = submitted.operation_id;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO runbooks (id, kind, cluster_id, state, phase, next_seq, params, context, created_at, updated_at) \
             VALUES (?, ?, 0, 'RUNNING', 'MAIN', ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(kind.as_str())
        .bind(done.len() as i64)
        .bind(to_json(&params))
        .bind(to_json(&RunbookContext::default()))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(q("insert runbook"))?;
        for (seq, d) in done.iter().enumerate() {
            sqlx::query(
                "INSERT INTO runbook_steps (runbook_id, seq, name, arg, state, attempts, started_at, finished_at, result) \
                 VALUES (?, ?, ?, '', 'DONE', 1, ?, ?, ?)",
            )
            .bind(id)
            .bind(seq as i64)
            .bind(d.name)
            .bind(d.started_at)
            .bind(d.finished_at)
            .bind(&d.result)
            .execute(&mut *tx)
            .await
            .map_err(q("insert done step"))?;
        }
        insert_steps(&mut tx, id, done.len() as i64, steps).await?;
        sync_operation(&mut tx, id).await?;
        tx.commit().await.map_err(q("commit region runbook"))?;
        Ok(submitted)
    }

    /// Writes the runbook of a failover whose target took writes: once per
    /// request (its id is the idempotency key, so a second call answers with
    /// the first runbook).
    pub async fn submit_failover(
        &self,
        request: &FailoverRequest,
        done: &[DoneStep],
        steps: &[NewStep],
    ) -> Result<Submitted, StoreError> {
        let ctx = WriteCtx {
            principal: "failover".into(),
            idempotency: Some((
                format!("failover:{}", request.id),
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(request.id.as_bytes())),
            )),
        };
        let mut tx = self.begin_tx().await?;
        if let Begun::Replay(s) = begin(&mut tx, &ctx).await? {
            return Ok(s);
        }
        let params = RunbookParams {
            failover_id: Some(request.id.clone()),
            from_region: request.from.clone(),
            to_region: Some(request.to.clone()),
            planned: request.planned,
            ready_timeout_ms: request.ready_timeout_ms,
            requested_at: Some(request.requested_at),
            lag_ms: request.lag_ms,
            ..Default::default()
        };
        let detail = format!(
            "{} from {} to {} ({}), epoch {}",
            if request.planned { "switchover" } else { "failover" },
            request.from.as_deref().unwrap_or("-"),
            request.to,
            request.trigger,
            request.epoch.unwrap_or_default()
        );
        self.submit_region(tx, &ctx, RunbookKind::Failover, params, done, steps, &detail)
            .await
    }

    /// Records a drill to `to` from the active region `from`. Refused while a
    /// drill or a failover runs.
    pub async fn submit_drill(
        &self,
        ctx: &WriteCtx,
        from: &str,
        to: &str,
        ready_timeout_ms: i64,
        steps: &[NewStep],
    ) -> Result<Submitted, StoreError> {
        super::operations::with_key_retry(ctx, || async {
            let mut tx = self.begin_tx().await?;
            if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
                return Ok(s);
            }
            let running: Option<(i64, String)> = sqlx::query(
                "SELECT id, kind FROM runbooks WHERE kind IN ('FAILOVER', 'DRILL') AND state = 'RUNNING' ORDER BY id LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(q("find running region runbook"))?
            .map(|r| Ok::<_, StoreError>((col(&r, "id")?, text(&r, "kind")?)))
            .transpose()?;
            if let Some((op, kind)) = running {
                return Err(conflict(format!(
                    "{} {op} is running; a drill waits for it (ocadm operations get {op} --wait)",
                    kind.to_lowercase()
                )));
            }
            let params = RunbookParams {
                from_region: Some(from.to_owned()),
                to_region: Some(to.to_owned()),
                ready_timeout_ms,
                ..Default::default()
            };
            let detail = format!("recovery drill from {from} to {to}");
            self.submit_region(tx, ctx, RunbookKind::Drill, params, &[], steps, &detail)
                .await
        })
        .await
    }

    /// Brings up, in the target region, the partner of every cluster serving in
    /// the old region's paired environments: a parked partner of the same spec
    /// is unparked (a warm standby scales up), any other is retired and a fresh
    /// one made from the replicated spec. The old side's runbooks stop, and an
    /// unfinished upgrade's replacement or a drill's clusters there are retired.
    /// Notes the moves in the runbook; when they are noted already, returns them
    /// and changes nothing.
    pub async fn bring_up(&self, rb: &RunbookRow, owner: &str) -> Result<Vec<Move>, StoreError> {
        let from = rb.params.from_region.clone().unwrap_or_default();
        let to = rb.params.to_region.clone().unwrap_or_default();
        let scope = self.failover_scope(&from, &to).await?;
        let mut tx = self.begin_tx().await?;
        let fresh = load(&mut tx, rb.id).await?.expect("runbook exists");
        if let Some(moves) = fresh.context.moves.clone() {
            return Ok(moves);
        }
        let principal = format!("runbook/{}", rb.id);
        let why = format!("failover {} from {from}", rb.id);
        let mut moves = Vec::new();
        for (src, partner) in &scope.clusters {
            let Some(env) = scope
                .environments
                .iter()
                .find(|(e, _)| e.id == src.environment_id)
                .and_then(|(_, p)| p.as_ref())
            else {
                continue;
            };
            let to_id = match partner {
                Some(p) if same_spec(p, src) => {
                    unpark(&mut tx, p, src, &why).await?;
                    p.id
                }
                stale => {
                    if let Some(p) = stale {
                        retire(
                            &mut tx,
                            p.id,
                            &principal,
                            &format!("out-of-date partner replaced by {why}"),
                        )
                        .await?;
                    }
                    insert_partner(&mut tx, src, env.id, false, &why).await?
                }
            };
            moves.push(Move {
                from: src.id,
                to: to_id,
            });
            // The old side's runbooks stop where they are; an upgrade's
            // replacement there, never serving, goes.
            for c in clusters_where(&mut tx, "replaces_id = ? AND delete_requested = 0", src.id).await? {
                retire(
                    &mut tx,
                    c.id,
                    &principal,
                    &format!("upgrade replacement left behind by {why}"),
                )
                .await?;
            }
            let stopped: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM runbooks WHERE state = 'RUNNING' AND cluster_id = ? AND id <> ?",
            )
            .bind(src.id)
            .bind(rb.id)
            .fetch_all(&mut *tx)
            .await
            .map_err(q("find runbooks to stop"))?;
            for id in stopped {
                self.stop_runbook(&mut tx, id, &format!("stopped by {why}"))
                    .await?;
            }
        }
        // A drill cannot go on once its region is being left.
        let drills: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM runbooks WHERE state = 'RUNNING' AND kind = 'DRILL'")
                .fetch_all(&mut *tx)
                .await
                .map_err(q("find drills"))?;
        for id in drills {
            self.stop_runbook(&mut tx, id, &format!("stopped by {why}"))
                .await?;
            for c in clusters_where(&mut tx, "drill_id = ? AND delete_requested = 0", id).await? {
                retire(&mut tx, c.id, &principal, &format!("drill {id} stopped by {why}")).await?;
            }
        }
        let mut context = fresh.context.clone();
        context.moves = Some(moves.clone());
        Store::note_context(&mut tx, rb.id, owner, &context).await?;
        audit(
            &mut tx,
            &principal,
            "FAILOVER_BRING_UP",
            &format!("region/{to}"),
            &format!(
                "{} cluster(s) brought up in {to}: {}",
                moves.len(),
                moves
                    .iter()
                    .map(|m| format!("{} -> {}", m.from, m.to))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .await?;
        tx.commit().await.map_err(q("commit bring-up"))?;
        Ok(moves)
    }

    /// Stops a running runbook where it is (CANCELLED, with `why`); its runner
    /// loses its next compare-and-set.
    async fn stop_runbook(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: i64,
        why: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE runbooks SET state = 'CANCELLED', error = ?, lease_owner = NULL, lease_until = 0, \
             version = version + 1, updated_at = ? WHERE id = ? AND state = 'RUNNING'",
        )
        .bind(why)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(q("stop runbook"))?;
        sqlx::query(
            "UPDATE runbook_steps SET state = 'CANCELLED', finished_at = ? WHERE runbook_id = ? AND state IN ('PENDING', 'RUNNING')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(q("cancel steps"))?;
        sync_operation(tx, id).await
    }

    /// Moves the traffic of every pair the failover touched to the target's
    /// side (`pair_serving`), in one transaction. Doing it again changes nothing.
    pub async fn switch_pairs(&self, rb: &RunbookRow, moves: &[Move]) -> Result<usize, StoreError> {
        let mut tx = self.begin_tx().await?;
        let mut switched = 0;
        for m in moves {
            let targets = clusters_where(&mut tx, "id = ?", m.to).await?;
            let Some(target) = targets.first() else { continue };
            let env = environment_in(&mut tx, target.environment_id)
                .await?
                .ok_or(StoreError::NotFound {
                    kind: "environment",
                    id: target.environment_id,
                })?;
            if env.pair_serving {
                continue;
            }
            for (id, serves) in [(env.id, 1), (env.pair_id.unwrap_or_default(), 0)] {
                sqlx::query(
                    "UPDATE environments SET pair_serving = ?, row_version = row_version + 1 WHERE id = ?",
                )
                .bind(serves)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(q("switch pair"))?;
            }
            audit(
                &mut tx,
                &format!("runbook/{}", rb.id),
                "SWITCH_TRAFFIC",
                &format!("environment/{}", env.id),
                &format!("environment {} ({}) serves its pair now", env.name, env.region),
            )
            .await?;
            switched += 1;
        }
        tx.commit().await.map_err(q("commit switch"))?;
        Ok(switched)
    }

    /// Parks the clusters a failover left: they keep their environment's warm
    /// standby size (or nothing) and stand by for their partners. Parking twice
    /// changes nothing; returns how many were parked now.
    pub async fn park(&self, rb: &RunbookRow, ids: &[i64]) -> Result<usize, StoreError> {
        let mut tx = self.begin_tx().await?;
        let mut parked = 0;
        for id in ids {
            let r = sqlx::query(
                "UPDATE clusters SET parked = 1, generation = generation + 1, status_code = ?, status_message = ?, \
                 status_since = ?, row_version = row_version + 1, updated_at = ? \
                 WHERE id = ? AND parked = 0 AND delete_requested = 0",
            )
            .bind(ClusterStatus::Standby.as_str())
            .bind(format!("Parked by failover {}; its partner serves.", rb.id))
            .bind(now_ms())
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(q("park cluster"))?;
            if r.rows_affected() > 0 {
                audit(
                    &mut tx,
                    &format!("runbook/{}", rb.id),
                    "PARK_CLUSTER",
                    &format!("cluster/{id}"),
                    "parked: its partner in the new active region serves",
                )
                .await?;
                parked += 1;
            }
        }
        tx.commit().await.map_err(q("commit park"))?;
        Ok(parked)
    }

    /// Makes a drill cluster in the target region for every cluster serving in
    /// the active region's paired environments: the same spec, no endpoint, not
    /// serving. Notes them in the runbook; when noted already, returns them.
    pub async fn create_drill_clusters(&self, rb: &RunbookRow, owner: &str) -> Result<Vec<Move>, StoreError> {
        let from = rb.params.from_region.clone().unwrap_or_default();
        let to = rb.params.to_region.clone().unwrap_or_default();
        let scope = self.failover_scope(&from, &to).await?;
        let mut tx = self.begin_tx().await?;
        let fresh = load(&mut tx, rb.id).await?.expect("runbook exists");
        if let Some(moves) = fresh.context.moves.clone() {
            return Ok(moves);
        }
        let now = now_ms();
        let mut moves = Vec::new();
        for (src, _) in &scope.clusters {
            let Some(env) = scope
                .environments
                .iter()
                .find(|(e, _)| e.id == src.environment_id)
                .and_then(|(_, p)| p.as_ref())
            else {
                continue;
            };
            let inserted = sqlx::query(
                "INSERT INTO clusters (environment_id, name, live_key, description, cluster_type, num_nodes, instance_type, \
                 storage_gb, odas_version, owner, tags, termination_protection, auto_repair, status_code, status_message, \
                 created_at, updated_at, status_since, serves_endpoint, components, drill_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, 0, ?, ?)",
            )
            .bind(env.id)
            .bind(&src.name)
            .bind(format!("{}/{}#drill{}", env.id, src.name, rb.id))
            .bind(format!("Drill {} copy of cluster {}", rb.id, src.id))
            .bind(&src.cluster_type)
            .bind(src.num_nodes)
            .bind(&src.instance_type)
            .bind(src.storage_gb)
            .bind(&src.odas_version)
            .bind(&src.owner)
            .bind(to_json(&src.tags))
            .bind(ClusterStatus::Provisioning.as_str())
            .bind(format!("Drill {} from {from}: copy of cluster {}.", rb.id, src.id))
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(to_json(&src.components))
            .bind(rb.id)
            .execute(&mut *tx)
            .await
            .map_err(q("insert drill cluster"))?;
            let id = inserted_id(&mut tx, &inserted).await?;
            moves.push(Move { from: src.id, to: id });
        }
        let mut context = fresh.context.clone();
        context.moves = Some(moves.clone());
        Store::note_context(&mut tx, rb.id, owner, &context).await?;
        audit(
            &mut tx,
            &format!("runbook/{}", rb.id),
            "CREATE_CLUSTER",
            &format!("region/{to}"),
            &format!("{} drill cluster(s) in {to}", moves.len()),
        )
        .await?;
        tx.commit().await.map_err(q("commit drill clusters"))?;
        Ok(moves)
    }

    /// Retires the clusters of a drill. Returns how many were asked now.
    pub async fn retire_drill_clusters(&self, rb: &RunbookRow) -> Result<usize, StoreError> {
        let mut tx = self.begin_tx().await?;
        let mut n = 0;
        for c in clusters_where(&mut tx, "drill_id = ?", rb.id).await? {
            if retire(
                &mut tx,
                c.id,
                &format!("runbook/{}", rb.id),
                &format!("drill {} is over", rb.id),
            )
            .await?
            {
                n += 1;
            }
        }
        tx.commit().await.map_err(q("commit drill teardown"))?;
        Ok(n)
    }

    /// Writes what a region runbook measured into its context.
    pub async fn note_report(
        &self,
        rb: &RunbookRow,
        owner: &str,
        report: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let fresh = load(&mut tx, rb.id).await?.expect("runbook exists");
        let mut context = fresh.context.clone();
        context.report = Some(report);
        Store::note_context(&mut tx, rb.id, owner, &context).await?;
        tx.commit().await.map_err(q("commit report"))
    }

    /// A region that took over owns every lease. The old region's runs cannot
    /// write any more (its database is a replica now), so a lease one of them
    /// held when the writer moved would only keep the new region's runs off
    /// that cluster, environment or runbook until it expires. Called once the
    /// new region's database takes writes, before its own runs start.
    pub async fn take_over_leases(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin_tx().await?;
        let mut freed = 0;
        for sql in [
            "UPDATE clusters SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL",
            "UPDATE environments SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL",
            "UPDATE runbooks SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL AND state = 'RUNNING'",
            "UPDATE diagnostics_requests SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL",
            "UPDATE leases SET owner = '', until_ms = 0 WHERE until_ms > 0",
        ] {
            freed += sqlx::query(sql)
                .execute(&mut *tx)
                .await
                .map_err(q("free leases"))?
                .rows_affected();
        }
        tx.commit().await.map_err(q("commit lease takeover"))?;
        Ok(freed)
    }

    /// Replaces the report of a runbook that ended (no lease is held then).
    pub async fn mark_report(&self, id: i64, report: serde_json::Value) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let Some(rb) = load(&mut tx, id).await? else {
            return Ok(());
        };
        let mut context = rb.context.clone();
        context.report = Some(report);
        sqlx::query("UPDATE runbooks SET context = ? WHERE id = ?")
            .bind(to_json(&context))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(q("mark report"))?;
        tx.commit().await.map_err(q("commit report mark"))
    }

    /// Region runbooks of `kind`, newest first, at most `limit`.
    pub async fn region_runbooks(
        &self,
        kind: RunbookKind,
        limit: i64,
    ) -> Result<Vec<RunbookRow>, StoreError> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM runbooks WHERE kind = ? ORDER BY id DESC LIMIT ?")
                .bind(kind.as_str())
                .bind(limit)
                .fetch_all(self.pool())
                .await
                .map_err(q("list region runbooks"))?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(rb) = self.get_runbook(id).await? {
                out.push(rb);
            }
        }
        Ok(out)
    }

    /// The runbook of a failover request, if it was written.
    pub async fn failover_runbook(&self, failover_id: &str) -> Result<Option<RunbookRow>, StoreError> {
        let op: Option<i64> = sqlx::query_scalar(
            "SELECT operation_id FROM idempotency_keys WHERE principal = 'failover' AND idem_key = ?",
        )
        .bind(format!("failover:{failover_id}"))
        .fetch_optional(self.pool())
        .await
        .map_err(q("find failover runbook"))?;
        match op {
            Some(id) => self.get_runbook(id).await,
            None => Ok(None),
        }
    }
}
