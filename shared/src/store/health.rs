//! Health state: nodes as the lifecycle function and the health sweep see them,
//! cluster health codes, the status history, and named leases.
//!
//! The sweep reads and writes in batches: two queries load every live cluster
//! and node, and each batch of [`BATCH`] clusters or nodes is one statement, so
//! that its round trips grow with the number of batches, not of clusters.

use sqlx::{Any, Transaction};

use super::rows::{col, NodeRow, NODE_COLUMNS};
use super::{q, Backend, Store, StoreError};
use crate::domain::health::Probe;

/// Rows per statement in the sweep's batched writes.
pub const BATCH: usize = 200;

/// The lease the health sweep holds, so that sweeps never overlap.
pub const SWEEP_LEASE: &str = "health-sweep";

/// A live cluster as the sweep needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepCluster {
    pub id: i64,
    pub name: String,
    pub region: String,
    pub num_nodes: i64,
    pub asg_name: Option<String>,
    /// No operation is in progress: the cluster's code is its health.
    pub steady: bool,
    /// A parked standby partner: its joins are finished, but it is not judged,
    /// repaired or counted.
    pub parked: bool,
    pub auto_repair: bool,
    pub status_code: String,
    pub status_message: String,
}

/// What the sweep learnt about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUpdate {
    pub instance_id: String,
    pub cluster_id: i64,
    pub lifecycle_state: String,
    pub availability_zone: String,
    pub private_ip: Option<String>,
    pub launched_at: i64,
    /// `None` when the node was not probed this time (it keeps its last probe).
    pub probe: Option<Probe>,
    pub unhealthy_since: Option<i64>,
    pub repair_requested_at: Option<i64>,
    /// The lifecycle action still holding the node, if any.
    pub action: Option<(String, String)>,
    pub joining_since: Option<i64>,
}

/// A cluster's judged health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthWrite {
    pub cluster_id: i64,
    pub code: String,
    pub message: String,
    pub running_services: i64,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub principal: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Everything one sweep writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepWrite {
    pub nodes: Vec<NodeUpdate>,
    /// Nodes no group holds any more.
    pub gone: Vec<String>,
    pub health: Vec<HealthWrite>,
    pub audit: Vec<AuditEntry>,
}

/// What a batched write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// SQL statements run, transactions' begin and commit included.
    pub round_trips: usize,
    /// Clusters whose code or message changed (each has a history row).
    pub changed: usize,
}

/// One entry of a cluster's status history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusChange {
    pub at: i64,
    pub code: String,
    pub message: String,
}

/// A node held at its launch hook while its agent starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoiningNode {
    pub instance_id: String,
    pub cluster_id: i64,
    pub availability_zone: String,
    pub private_ip: Option<String>,
    pub launched_at: i64,
    pub hook: String,
    pub token: String,
}

fn placeholders(row: &str, n: usize) -> String {
    vec![row; n].join(", ")
}

fn probe_json(p: &Option<Probe>) -> Option<String> {
    p.as_ref()
        .map(|p| serde_json::to_string(p).expect("probe serialises"))
}

impl Store {
    /// Takes the named lease for `ttl_ms` if it is free, expired or already ours.
    /// A lease is made the first time its name is claimed.
    pub async fn claim_lease(&self, name: &str, owner: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = crate::time::now_ms();
        let insert = match self.backend() {
            super::Backend::Sqlite => {
                "INSERT OR IGNORE INTO leases (name, owner, until_ms) VALUES (?, '', 0)"
            }
            super::Backend::MySql => "INSERT IGNORE INTO leases (name, owner, until_ms) VALUES (?, '', 0)",
        };
        sqlx::query(insert)
            .bind(name)
            .execute(self.pool())
            .await
            .map_err(q("make lease"))?;
        let done = sqlx::query(
            "UPDATE leases SET owner = ?, until_ms = ? WHERE name = ? AND (until_ms < ? OR owner = ?)",
        )
        .bind(owner)
        .bind(now + ttl_ms)
        .bind(name)
        .bind(now)
        .bind(owner)
        .execute(self.pool())
        .await
        .map_err(q("claim lease"))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE leases SET until_ms = 0 WHERE name = ? AND owner = ?")
            .bind(name)
            .bind(owner)
            .execute(self.pool())
            .await
            .map(|_| ())
            .map_err(q("release lease"))
    }

    /// Every cluster that is not terminated, with its region, in one query.
    pub async fn sweep_clusters(&self) -> Result<Vec<SweepCluster>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.name, e.region, c.num_nodes, c.asg_name, c.generation, c.observed_generation, \
             c.delete_requested, c.auto_repair, c.status_code, c.status_message, c.parked \
             FROM clusters c JOIN environments e ON e.id = c.environment_id \
             WHERE c.status_code <> 'TERMINATED' ORDER BY c.id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(q("sweep clusters"))?;
        rows.iter()
            .map(|r| {
                let generation: i64 = col(r, "generation")?;
                let observed: i64 = col(r, "observed_generation")?;
                let deleting = col::<i64>(r, "delete_requested")? != 0;
                let code = super::rows::text(r, "status_code")?;
                let parked = col::<i64>(r, "parked")? != 0;
                Ok(SweepCluster {
                    id: col(r, "id")?,
                    name: super::rows::text(r, "name")?,
                    region: super::rows::text(r, "region")?,
                    num_nodes: col(r, "num_nodes")?,
                    asg_name: super::rows::opt_text(r, "asg_name")?,
                    steady: generation == observed && !deleting && code != "FAILED" && !parked,
                    parked,
                    auto_repair: col::<i64>(r, "auto_repair")? != 0,
                    status_code: code,
                    status_message: super::rows::text(r, "status_message")?,
                })
            })
            .collect()
    }

    /// Every node of every cluster, in one query.
    pub async fn all_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY cluster_id, launched_at, instance_id");
        let rows = sqlx::query(&sql)
            .fetch_all(self.pool())
            .await
            .map_err(q("all nodes"))?;
        rows.iter().map(NodeRow::from_row).collect()
    }

    pub async fn node(&self, instance_id: &str) -> Result<Option<NodeRow>, StoreError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE instance_id = ?");
        let row = sqlx::query(&sql)
            .bind(instance_id)
            .fetch_optional(self.pool())
            .await
            .map_err(q("get node"))?;
        row.as_ref().map(NodeRow::from_row).transpose()
    }

    /// Writes one sweep's findings, one transaction per batch.
    pub async fn record_sweep(&self, at: i64, write: &SweepWrite) -> Result<WriteStats, StoreError> {
        let mut stats = WriteStats::default();
        for chunk in write.nodes.chunks(BATCH) {
            let mut tx = self.begin_tx().await?;
            self.upsert_nodes(&mut tx, at, chunk).await?;
            tx.commit().await.map_err(q("commit nodes"))?;
            stats.round_trips += 3;
        }
        for chunk in write.gone.chunks(BATCH) {
            // A node written since the sweep began (a lifecycle event) was not
            // in the groups the sweep read; it is not gone.
            let sql = format!(
                "DELETE FROM nodes WHERE instance_id IN ({}) AND updated_at < ?",
                placeholders("?", chunk.len())
            );
            let mut del = sqlx::query(&sql);
            for id in chunk {
                del = del.bind(id.clone());
            }
            del = del.bind(at);
            del.execute(self.pool()).await.map_err(q("delete gone nodes"))?;
            stats.round_trips += 1;
        }
        for chunk in write.health.chunks(BATCH) {
            let (trips, changed) = self.write_health(at, chunk).await?;
            stats.round_trips += trips;
            stats.changed += changed;
        }
        for chunk in write.audit.chunks(BATCH) {
            let sql = format!(
                "INSERT INTO audit_log (at, principal, action, target, detail) VALUES {}",
                placeholders("(?, ?, ?, ?, ?)", chunk.len())
            );
            let mut insert = sqlx::query(&sql);
            for a in chunk {
                insert = insert
                    .bind(at)
                    .bind(a.principal.clone())
                    .bind(a.action.clone())
                    .bind(a.target.clone())
                    .bind(a.detail.clone());
            }
            insert.execute(self.pool()).await.map_err(q("append audit log"))?;
            stats.round_trips += 1;
        }
        Ok(stats)
    }

    async fn upsert_nodes(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        nodes: &[NodeUpdate],
    ) -> Result<(), StoreError> {
        // An existing node takes the new values, except that a node not probed
        // this time keeps its last probe, and a lifecycle action is only ever
        // cleared by `record_probe` (the sweep must not undo a lifecycle event
        // that arrived while it ran).
        type Assign = fn(&str) -> String;
        let (set, keep_unprobed, keep_null): (Assign, Assign, Assign) = match self.backend() {
            Backend::Sqlite => (
                |c| format!("{c} = excluded.{c}"),
                |c| format!("{c} = CASE WHEN excluded.probe IS NULL THEN nodes.{c} ELSE excluded.{c} END"),
                |c| format!("{c} = COALESCE(excluded.{c}, nodes.{c})"),
            ),
            Backend::MySql => (
                |c| format!("{c} = VALUES({c})"),
                |c| format!("{c} = IF(VALUES(probe) IS NULL, {c}, VALUES({c}))"),
                |c| format!("{c} = COALESCE(VALUES({c}), {c})"),
            ),
        };
        let mut updates: Vec<String> = [
            "cluster_id",
            "lifecycle_state",
            "availability_zone",
            "private_ip",
            "launched_at",
            "unhealthy_since",
            "repair_requested_at",
            "updated_at",
        ]
        .iter()
        .map(|c| set(c))
        .collect();
        updates.extend(["checked_at", "probe"].iter().map(|c| keep_unprobed(c)));
        updates.extend(
            ["action_hook", "action_token", "joining_since"]
                .iter()
                .map(|c| keep_null(c)),
        );
        let conflict = match self.backend() {
            Backend::Sqlite => "ON CONFLICT (instance_id) DO UPDATE SET",
            Backend::MySql => "ON DUPLICATE KEY UPDATE",
        };
        let sql = format!(
            "INSERT INTO nodes (instance_id, cluster_id, lifecycle_state, availability_zone, private_ip, \
             launched_at, probe, checked_at, unhealthy_since, repair_requested_at, action_hook, action_token, \
             joining_since, updated_at) VALUES {} {conflict} {}",
            placeholders("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", nodes.len()),
            updates.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for n in nodes {
            let (hook, token) = n.action.clone().unzip();
            insert = insert
                .bind(n.instance_id.clone())
                .bind(n.cluster_id)
                .bind(n.lifecycle_state.clone())
                .bind(n.availability_zone.clone())
                .bind(n.private_ip.clone())
                .bind(n.launched_at)
                .bind(probe_json(&n.probe))
                .bind(if n.probe.is_some() { at } else { 0 })
                .bind(n.unhealthy_since)
                .bind(n.repair_requested_at)
                .bind(hook)
                .bind(token)
                .bind(n.joining_since)
                .bind(at);
        }
        insert.execute(&mut **tx).await.map_err(q("upsert nodes"))?;
        Ok(())
    }

    /// Writes one batch of health codes: in one transaction, reads which of the
    /// clusters are still steady and not judged by a newer sweep, updates those
    /// with one statement, and appends a history row for each that changed.
    async fn write_health(&self, at: i64, batch: &[HealthWrite]) -> Result<(usize, usize), StoreError> {
        let mut tx = self.begin_tx().await?;
        let ids = placeholders("?", batch.len());
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::MySql => " FOR UPDATE",
        };
        let sql = format!(
            "SELECT id, status_code, status_message FROM clusters WHERE id IN ({ids}) \
             AND generation = observed_generation AND delete_requested = 0 \
             AND status_code NOT IN ('FAILED', 'TERMINATED') AND health_checked_at < ?{lock}"
        );
        let mut select = sqlx::query(&sql);
        for h in batch {
            select = select.bind(h.cluster_id);
        }
        let rows = select
            .bind(at)
            .fetch_all(&mut *tx)
            .await
            .map_err(q("read cluster health"))?;
        let mut eligible = Vec::new();
        let mut changed = Vec::new();
        for r in &rows {
            let id: i64 = col(r, "id")?;
            let Some(h) = batch.iter().find(|h| h.cluster_id == id) else {
                continue;
            };
            let code = super::rows::text(r, "status_code")?;
            let message = super::rows::text(r, "status_message")?;
            if code != h.code || message != h.message {
                changed.push((h, code != h.code));
            }
            eligible.push(h);
        }
        let mut trips = 3;
        if !eligible.is_empty() {
            let cases = |what: &str| {
                format!(
                    "CASE id {} END",
                    vec![format!("WHEN ? THEN {what}"); eligible.len()].join(" ")
                )
            };
            // status_since first: MySQL evaluates SET left to right.
            let sql = format!(
                "UPDATE clusters SET status_since = {}, status_code = {}, status_message = {}, \
                 running_services = {}, health_checked_at = ? WHERE id IN ({})",
                cases("CASE WHEN status_code = ? THEN status_since ELSE ? END"),
                cases("?"),
                cases("?"),
                cases("?"),
                placeholders("?", eligible.len())
            );
            let mut update = sqlx::query(&sql);
            for h in &eligible {
                update = update.bind(h.cluster_id).bind(h.code.clone()).bind(at);
            }
            for h in &eligible {
                update = update.bind(h.cluster_id).bind(h.code.clone());
            }
            for h in &eligible {
                update = update.bind(h.cluster_id).bind(h.message.clone());
            }
            for h in &eligible {
                update = update.bind(h.cluster_id).bind(h.running_services);
            }
            update = update.bind(at);
            for h in &eligible {
                update = update.bind(h.cluster_id);
            }
            update
                .execute(&mut *tx)
                .await
                .map_err(q("write cluster health"))?;
            trips += 1;
        }
        if !changed.is_empty() {
            let sql = format!(
                "INSERT INTO cluster_status_history (cluster_id, at, code, message) VALUES {}",
                placeholders("(?, ?, ?, ?)", changed.len())
            );
            let mut insert = sqlx::query(&sql);
            for (h, _) in &changed {
                insert = insert
                    .bind(h.cluster_id)
                    .bind(at)
                    .bind(h.code.clone())
                    .bind(h.message.clone());
            }
            insert
                .execute(&mut *tx)
                .await
                .map_err(q("append status history"))?;
            trips += 1;
        }
        tx.commit().await.map_err(q("commit cluster health"))?;
        Ok((trips, changed.len()))
    }

    /// A cluster's status history, newest first.
    pub async fn status_history(&self, cluster_id: i64, limit: i64) -> Result<Vec<StatusChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, code, message FROM cluster_status_history WHERE cluster_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(cluster_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(q("status history"))?;
        rows.iter()
            .map(|r| {
                Ok(StatusChange {
                    at: col(r, "at")?,
                    code: super::rows::text(r, "code")?,
                    message: super::rows::text(r, "message")?,
                })
            })
            .collect()
    }

    /// Records a node held at its launch hook. Running it twice (a duplicate
    /// event) keeps one row and the first `joining_since`, which it returns.
    pub async fn record_joining(&self, node: &JoiningNode, at: i64) -> Result<i64, StoreError> {
        let existing = self.node(&node.instance_id).await?;
        let since = existing.as_ref().and_then(|n| n.joining_since).unwrap_or(at);
        let update = NodeUpdate {
            instance_id: node.instance_id.clone(),
            cluster_id: node.cluster_id,
            lifecycle_state: "Pending:Wait".into(),
            availability_zone: node.availability_zone.clone(),
            private_ip: node.private_ip.clone(),
            launched_at: node.launched_at,
            probe: None,
            unhealthy_since: None,
            repair_requested_at: None,
            action: Some((node.hook.clone(), node.token.clone())),
            joining_since: Some(since),
        };
        let mut tx = self.begin_tx().await?;
        self.upsert_nodes(&mut tx, at, std::slice::from_ref(&update))
            .await?;
        tx.commit().await.map_err(q("commit joining node"))?;
        Ok(since)
    }

    /// Records a probe of one node and, when `joined`, that its launch action is
    /// over (the node may now serve).
    pub async fn record_probe(
        &self,
        instance_id: &str,
        probe: &Probe,
        joined: bool,
        at: i64,
    ) -> Result<(), StoreError> {
        let sql = if joined {
            "UPDATE nodes SET probe = ?, checked_at = ?, updated_at = ?, action_hook = NULL, \
             action_token = NULL, joining_since = NULL, lifecycle_state = 'Pending:Proceed' WHERE instance_id = ?"
        } else {
            "UPDATE nodes SET probe = ?, checked_at = ?, updated_at = ? WHERE instance_id = ?"
        };
        sqlx::query(sql)
            .bind(probe_json(&Some(probe.clone())))
            .bind(at)
            .bind(at)
            .bind(instance_id)
            .execute(self.pool())
            .await
            .map(|_| ())
            .map_err(q("record probe"))
    }

    /// Forgets a node that left its cluster, with an audit row. False when it
    /// was already gone.
    pub async fn remove_node(&self, instance_id: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.begin_tx().await?;
        let removed = sqlx::query("DELETE FROM nodes WHERE instance_id = ?")
            .bind(instance_id)
            .execute(&mut *tx)
            .await
            .map_err(q("remove node"))?
            .rows_affected()
            > 0;
        if removed {
            sqlx::query(
                "INSERT INTO audit_log (at, principal, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(crate::time::now_ms())
            .bind(&audit.principal)
            .bind(&audit.action)
            .bind(&audit.target)
            .bind(&audit.detail)
            .execute(&mut *tx)
            .await
            .map_err(q("append audit log"))?;
        }
        tx.commit().await.map_err(q("commit node removal"))?;
        Ok(removed)
    }
}
