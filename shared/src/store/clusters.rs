//! Clusters and their nodes. A cluster row holds the desired spec (what the API
//! wrote, with a `generation` bumped on every change) and what the reconciler last
//! observed (`observed_generation`, status, resource names, nodes).

use super::environments::{claim, lock_environment, release};
use super::operations::{begin, finish, latest_operation, progress, with_key_retry, Begun, Change, Step};
use super::rows::{text, ClusterRow, NodeRow, CLUSTER_COLUMNS, NODE_COLUMNS};
use super::{inserted_id, is_unique_violation, q, Backend, Store, StoreError, Submitted, WriteCtx};
use crate::domain::{ClusterSpec, ClusterStatus, ClusterUpdate, EnvironmentStatus};
use crate::time::now_ms;

/// Refuses a change to a cluster that an upgrade or a rollback is replacing.
async fn refuse_during_replacement(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    cluster: &ClusterRow,
    verb: &str,
) -> Result<(), StoreError> {
    match super::runbooks::active_runbook_of(tx, cluster).await? {
        Some((op, kind)) if kind != super::RunbookKind::Restart => Err(StoreError::Conflict(format!(
            "cluster {} is under {} operation {op}; it cannot be {verb} until that ends (ocadm operations get {op} --wait)",
            cluster.id,
            kind.as_str().to_lowercase()
        ))),
        _ => Ok(()),
    }
}

/// Refuses a user's change to a cluster the DM keeps for itself: a parked
/// standby partner (changed through the cluster it stands by for) or a drill's.
pub(crate) fn refuse_if_kept(cluster: &ClusterRow, verb: &str) -> Result<(), StoreError> {
    if let Some(drill) = cluster.drill_id {
        return Err(StoreError::Conflict(format!(
            "cluster {} belongs to drill {drill} and goes when the drill ends; it cannot be {verb}",
            cluster.id
        )));
    }
    if cluster.parked {
        let partner = cluster
            .partner_id
            .map_or_else(|| "its partner".to_owned(), |p| format!("cluster {p}"));
        return Err(StoreError::Conflict(format!(
            "cluster {} is the parked standby of {partner}; it cannot be {verb}. Change {partner} instead: its standby follows",
            cluster.id
        )));
    }
    Ok(())
}

/// A node as the reconciler saw it in its Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNode {
    pub instance_id: String,
    pub lifecycle_state: String,
    pub availability_zone: String,
}

/// What the reconciler found and did for a cluster.
#[derive(Debug, Clone)]
pub struct ClusterObservation {
    pub status: ClusterStatus,
    pub message: String,
    pub asg_name: Option<String>,
    pub launch_template_id: Option<String>,
    pub config_uri: Option<String>,
    pub nodes: Vec<NewNode>,
    /// Services running on every node, when the status is a health code.
    pub running_services: Option<i64>,
    /// The cluster's DNS name; kept once set.
    pub endpoint: Option<String>,
    /// Set when desired state was reached at this generation.
    pub observed_generation: Option<i64>,
    pub steps: Vec<Step>,
    /// A permanent failure: the open operations fail with it.
    pub failure: Option<String>,
}

impl Store {
    pub async fn create_cluster(&self, ctx: &WriteCtx, spec: &ClusterSpec) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || self.create_cluster_once(ctx, spec)).await
    }

    async fn create_cluster_once(&self, ctx: &WriteCtx, spec: &ClusterSpec) -> Result<Submitted, StoreError> {
        let mut tx = self.begin_tx().await?;
        if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
            return Ok(s);
        }
        let env = lock_environment(&mut tx, spec.environment_id).await?;
        if env.delete_requested || env.status_code != EnvironmentStatus::Ready.as_str() {
            return Err(StoreError::Conflict(format!(
                "environment {} is {}; clusters can only be created in a READY environment (ocadm environments get {})",
                env.id, env.status_code, env.id
            )));
        }
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO clusters (environment_id, name, live_key, description, cluster_type, num_nodes, instance_type, \
             storage_gb, odas_version, owner, tags, termination_protection, auto_repair, status_code, status_message, created_at, updated_at, \
             status_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(spec.environment_id)
        .bind(spec.name.as_str())
        .bind(format!("{}/{}", spec.environment_id, spec.name))
        .bind(&spec.description)
        .bind(spec.cluster_type.as_str())
        .bind(spec.num_nodes)
        .bind(&spec.instance_type)
        .bind(spec.storage_gb)
        .bind(&spec.version)
        .bind(&ctx.principal)
        .bind(serde_json::to_string(&spec.tags).expect("tags serialise"))
        .bind(spec.termination_protection as i64)
        .bind(spec.auto_repair as i64)
        .bind(ClusterStatus::Provisioning.as_str())
        .bind("Waiting for the reconciler.")
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        let id = match inserted {
            Ok(r) => inserted_id(&mut tx, &r).await?,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a cluster named {:?} already exists in environment {}",
                    spec.name.as_str(),
                    spec.environment_id
                )))
            }
            Err(e) => return Err(q("insert cluster")(e)),
        };
        let detail = format!(
            "create cluster {} ({}, {} x {})",
            spec.name,
            spec.cluster_type.as_str(),
            spec.num_nodes,
            spec.instance_type
        );
        finish(
            tx,
            ctx,
            Change {
                kind: "CREATE_CLUSTER",
                target_kind: "cluster",
                target_id: id,
                target_generation: 1,
                steps: vec![],
                audit_detail: &detail,
            },
        )
        .await
    }

    /// Changes the size or the termination protection of a cluster. Protection
    /// forbids scaling to zero.
    pub async fn update_cluster(
        &self,
        ctx: &WriteCtx,
        id: i64,
        update: &ClusterUpdate,
    ) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || self.update_cluster_once(ctx, id, update)).await
    }

    async fn update_cluster_once(
        &self,
        ctx: &WriteCtx,
        id: i64,
        update: &ClusterUpdate,
    ) -> Result<Submitted, StoreError> {
        let mut tx = self.begin_tx().await?;
        if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
            return Ok(s);
        }
        let current = self.get_cluster_in(&mut tx, id).await?;
        if current.delete_requested {
            return Err(StoreError::Conflict(format!(
                "cluster {id} is {}; it can no longer be updated",
                current.status_code
            )));
        }
        refuse_if_kept(&current, "updated")?;
        // An upgrade copies the spec into its replacement; a size changed under
        // it would be lost when traffic moves.
        if update.num_nodes.is_some() {
            refuse_during_replacement(&mut tx, &current, "resized").await?;
        }
        if current.termination_protection && update.num_nodes == Some(0) {
            return Err(StoreError::Conflict(format!(
                "cluster {id} has termination protection, which forbids scaling to zero; \
                 disable it first (ocadm clusters update --terminationProtectionEnabled false {id})"
            )));
        }
        let num_nodes = update.num_nodes.unwrap_or(current.num_nodes);
        let protection = update
            .termination_protection_enabled
            .unwrap_or(current.termination_protection);
        let auto_repair = update.auto_repair_enabled.unwrap_or(current.auto_repair);
        let allows_upgrade = update
            .protection_allows_upgrade
            .unwrap_or(current.protection_allows_upgrade);
        let generation = current.generation + 1;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE clusters SET status_since = CASE WHEN status_code = ? THEN status_since ELSE ? END, \
             num_nodes = ?, termination_protection = ?, auto_repair = ?, protection_allows_upgrade = ?, generation = ?, status_code = ?, \
             status_message = ?, row_version = row_version + 1, updated_at = ? WHERE id = ? AND row_version = ?",
        )
        .bind(ClusterStatus::Updating.as_str())
        .bind(now)
        .bind(num_nodes)
        .bind(protection as i64)
        .bind(auto_repair as i64)
        .bind(allows_upgrade as i64)
        .bind(generation)
        .bind(ClusterStatus::Updating.as_str())
        .bind("Waiting for the reconciler.")
        .bind(now)
        .bind(id)
        .bind(current.row_version)
        .execute(&mut *tx)
        .await
        .map_err(q("update cluster"))?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "cluster {id} changed while this update was being made; try again"
            )));
        }
        let detail = format!(
            "update cluster {}: numNodes {} -> {num_nodes}, terminationProtection {} -> {protection}, \
             autoRepair {} -> {auto_repair}, protectionAllowsUpgrade {} -> {allows_upgrade}",
            current.name,
            current.num_nodes,
            current.termination_protection,
            current.auto_repair,
            current.protection_allows_upgrade
        );
        finish(
            tx,
            ctx,
            Change {
                kind: "UPDATE_CLUSTER",
                target_kind: "cluster",
                target_id: id,
                target_generation: generation,
                steps: vec![],
                audit_detail: &detail,
            },
        )
        .await
    }

    /// Asks for a cluster and everything it owns to be removed. Refused while the
    /// cluster has termination protection.
    pub async fn delete_cluster(&self, ctx: &WriteCtx, id: i64) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || self.delete_cluster_once(ctx, id)).await
    }

    async fn delete_cluster_once(&self, ctx: &WriteCtx, id: i64) -> Result<Submitted, StoreError> {
        let mut tx = self.begin_tx().await?;
        if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
            return Ok(s);
        }
        let current = self.get_cluster_in(&mut tx, id).await?;
        if !current.delete_requested {
            refuse_if_kept(&current, "deleted")?;
        }
        if current.termination_protection {
            return Err(StoreError::Conflict(format!(
                "cluster {id} has termination protection; disable it first (ocadm clusters update --terminationProtectionEnabled false {id})"
            )));
        }
        if current.delete_requested {
            if let Some(first) = latest_operation(&mut tx, "DELETE_CLUSTER", "cluster", id).await? {
                return Ok(first);
            }
        }
        refuse_during_replacement(&mut tx, &current, "deleted").await?;
        let generation = current.generation + 1;
        let changed = sqlx::query(
            "UPDATE clusters SET delete_requested = 1, generation = ?, status_code = ?, status_message = ?, \
             row_version = row_version + 1, updated_at = ? WHERE id = ? AND row_version = ?",
        )
        .bind(generation)
        .bind(ClusterStatus::Terminating.as_str())
        .bind("Deleting the cluster's resources.")
        .bind(now_ms())
        .bind(id)
        .bind(current.row_version)
        .execute(&mut *tx)
        .await
        .map_err(q("delete cluster"))?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "cluster {id} changed while this delete was being made; try again"
            )));
        }
        let detail = format!("delete cluster {}", current.name);
        finish(
            tx,
            ctx,
            Change {
                kind: "DELETE_CLUSTER",
                target_kind: "cluster",
                target_id: id,
                target_generation: generation,
                steps: vec![],
                audit_detail: &detail,
            },
        )
        .await
    }

    pub(crate) async fn get_cluster_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: i64,
    ) -> Result<ClusterRow, StoreError> {
        let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(q("get cluster"))?;
        match row {
            Some(r) => ClusterRow::from_row(&r),
            None => Err(StoreError::NotFound { kind: "cluster", id }),
        }
    }

    pub async fn get_cluster(&self, id: i64) -> Result<ClusterRow, StoreError> {
        let sql = format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(q("get cluster"))?;
        match row {
            Some(r) => ClusterRow::from_row(&r),
            None => Err(StoreError::NotFound { kind: "cluster", id }),
        }
    }

    /// Clusters that are not yet terminated, optionally of one environment, by id.
    pub async fn list_clusters(&self, environment_id: Option<i64>) -> Result<Vec<ClusterRow>, StoreError> {
        let sql = format!(
            "SELECT {CLUSTER_COLUMNS} FROM clusters WHERE status_code <> 'TERMINATED' AND (? IS NULL OR environment_id = ?) ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(environment_id)
            .bind(environment_id)
            .fetch_all(self.pool())
            .await
            .map_err(q("list clusters"))?;
        rows.iter().map(ClusterRow::from_row).collect()
    }

    pub async fn nodes_of(&self, cluster_id: i64) -> Result<Vec<NodeRow>, StoreError> {
        let sql = format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE cluster_id = ? ORDER BY launched_at, instance_id"
        );
        let rows = sqlx::query(&sql)
            .bind(cluster_id)
            .fetch_all(self.pool())
            .await
            .map_err(q("list nodes"))?;
        rows.iter().map(NodeRow::from_row).collect()
    }

    pub async fn claim_cluster(&self, id: i64, owner: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        claim("clusters", self, id, owner, ttl_ms).await
    }

    /// Ends a reconcile run's lease; `Ok(false)`: a claim asked for another pass
    /// meanwhile, and the lease is still the run's (`finally` ends it anyway).
    pub async fn release_cluster(&self, id: i64, owner: &str, finally: bool) -> Result<bool, StoreError> {
        release("clusters", self, id, owner, finally).await
    }

    /// Records what the reconciler saw, in one transaction: the cluster's status
    /// (with a history row when it changed), its nodes (what the reconciler knows
    /// of them: the set and their lifecycle states; their health stays) and its
    /// operations' progress.
    /// Notes, under the reconciler's lease, why nothing is built yet.
    pub async fn note_waiting(&self, id: i64, owner: &str, message: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE clusters SET status_message = ?, updated_at = ? WHERE id = ? AND lease_owner = ?")
            .bind(message)
            .bind(now_ms())
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await
            .map(|_| ())
            .map_err(q("note waiting cluster"))
    }

    pub async fn record_cluster(
        &self,
        id: i64,
        owner: &str,
        obs: &ClusterObservation,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let terminated = obs.status == ClusterStatus::Terminated;
        let now = now_ms();
        let before: Option<(String, String)> = {
            let row = sqlx::query("SELECT status_code, status_message FROM clusters WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(q("read cluster status"))?;
            row.map(|r| Ok::<_, StoreError>((text(&r, "status_code")?, text(&r, "status_message")?)))
                .transpose()?
        };
        // status_since first: MySQL evaluates SET left to right.
        let updated = sqlx::query(
            "UPDATE clusters SET status_since = CASE WHEN status_code = ? THEN status_since ELSE ? END, \
             status_code = ?, status_message = ?, asg_name = ?, launch_template_id = ?, config_uri = ?, \
             running_services = COALESCE(?, running_services), endpoint = COALESCE(endpoint, ?), \
             observed_generation = COALESCE(?, observed_generation), \
             live_key = CASE WHEN ? = 1 THEN NULL ELSE live_key END, \
             row_version = row_version + 1, updated_at = ? WHERE id = ? AND lease_owner = ?",
        )
        .bind(obs.status.as_str())
        .bind(now)
        .bind(obs.status.as_str())
        .bind(&obs.message)
        .bind(obs.asg_name.clone())
        .bind(obs.launch_template_id.clone())
        .bind(obs.config_uri.clone())
        .bind(obs.running_services)
        .bind(obs.endpoint.clone())
        .bind(obs.observed_generation)
        .bind(terminated as i64)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(q("record cluster"))?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("lost the lease on cluster {id}")));
        }
        if before
            .as_ref()
            .is_some_and(|(c, m)| c != obs.status.as_str() || m != &obs.message)
        {
            sqlx::query(
                "INSERT INTO cluster_status_history (cluster_id, at, code, message) VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(now)
            .bind(obs.status.as_str())
            .bind(&obs.message)
            .execute(&mut *tx)
            .await
            .map_err(q("append status history"))?;
        }
        let keep = if obs.nodes.is_empty() {
            String::new()
        } else {
            format!(
                " AND instance_id NOT IN ({})",
                vec!["?"; obs.nodes.len()].join(", ")
            )
        };
        let sql = format!("DELETE FROM nodes WHERE cluster_id = ?{keep}");
        let mut delete = sqlx::query(&sql).bind(id);
        for n in &obs.nodes {
            delete = delete.bind(n.instance_id.clone());
        }
        delete.execute(&mut *tx).await.map_err(q("clear nodes"))?;
        if !obs.nodes.is_empty() {
            let values = vec!["(?, ?, ?, ?, ?)"; obs.nodes.len()].join(", ");
            let update = match self.backend() {
                Backend::Sqlite => "ON CONFLICT (instance_id) DO UPDATE SET cluster_id = excluded.cluster_id, \
                    lifecycle_state = excluded.lifecycle_state, availability_zone = excluded.availability_zone, \
                    updated_at = excluded.updated_at",
                Backend::MySql => "ON DUPLICATE KEY UPDATE cluster_id = VALUES(cluster_id), \
                    lifecycle_state = VALUES(lifecycle_state), availability_zone = VALUES(availability_zone), \
                    updated_at = VALUES(updated_at)",
            };
            let sql = format!(
                "INSERT INTO nodes (instance_id, cluster_id, lifecycle_state, availability_zone, updated_at) \
                 VALUES {values} {update}"
            );
            let mut insert = sqlx::query(&sql);
            for n in &obs.nodes {
                insert = insert
                    .bind(n.instance_id.clone())
                    .bind(id)
                    .bind(n.lifecycle_state.clone())
                    .bind(n.availability_zone.clone())
                    .bind(now);
            }
            insert.execute(&mut *tx).await.map_err(q("upsert nodes"))?;
        }
        let generation = obs.observed_generation.unwrap_or(0);
        progress(
            &mut tx,
            "cluster",
            id,
            generation,
            &obs.steps,
            obs.failure.as_deref(),
        )
        .await?;
        tx.commit().await.map_err(q("commit cluster"))
    }

    /// Ids of the clusters the reconciler should look at: all but the terminated.
    pub async fn clusters_to_reconcile(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar("SELECT id FROM clusters WHERE status_code <> 'TERMINATED' ORDER BY id")
            .fetch_all(self.pool())
            .await
            .map_err(q("clusters to reconcile"))
    }
}
