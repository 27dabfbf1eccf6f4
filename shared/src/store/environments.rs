//! Environments: where clusters live (a region, a VPC and its subnets, and the
//! optional `OkeraOdasServices` security group).

use super::operations::{begin, finish, latest_operation, progress, with_key_retry, Begun, Change, Step};
use super::rows::{EnvironmentRow, ENVIRONMENT_COLUMNS};
use super::{inserted_id, is_unique_violation, q, Store, StoreError, Submitted, WriteCtx};
use crate::domain::{EnvironmentSpec, EnvironmentStatus};
use crate::time::now_ms;

/// What the reconciler found and did for an environment.
#[derive(Debug, Clone)]
pub struct EnvironmentObservation {
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub vpc_cidr: Option<String>,
    pub security_group_id: Option<String>,
    pub status: EnvironmentStatus,
    pub message: String,
    /// Set when desired state was reached at this generation.
    pub observed_generation: Option<i64>,
    pub steps: Vec<Step>,
    /// A permanent failure: the open operations fail with it.
    pub failure: Option<String>,
}

impl Store {
    pub async fn create_environment(
        &self,
        ctx: &WriteCtx,
        spec: &EnvironmentSpec,
    ) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || self.create_environment_once(ctx, spec)).await
    }

    async fn create_environment_once(
        &self,
        ctx: &WriteCtx,
        spec: &EnvironmentSpec,
    ) -> Result<Submitted, StoreError> {
        let mut tx = self.begin_tx().await?;
        if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
            return Ok(s);
        }
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO environments (name, live_name, region, vpc_id, subnet_ids, vpc_cidr, admin_cidr, \
             create_security_group, status_code, status_message, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(spec.name.as_str())
        .bind(spec.name.as_str())
        .bind(spec.region.as_str())
        .bind(spec.vpc_id.clone())
        .bind(serde_json::to_string(&spec.subnet_ids).expect("strings serialise"))
        .bind(spec.vpc_cidr.as_ref().map(|c| c.as_str().to_owned()))
        .bind(spec.admin_cidr.as_ref().map(|c| c.as_str().to_owned()))
        .bind(spec.create_security_group as i64)
        .bind(EnvironmentStatus::Provisioning.as_str())
        .bind("Waiting for the reconciler.")
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        let id = match inserted {
            Ok(r) => inserted_id(&mut tx, &r).await?,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "an environment named {:?} already exists",
                    spec.name.as_str()
                )))
            }
            Err(e) => return Err(q("insert environment")(e)),
        };
        if let Some((partner, warm)) = spec.pair {
            Store::pair_environment(&mut tx, id, spec.region.as_str(), partner, warm).await?;
        }
        let detail = match spec.pair {
            Some((partner, warm)) => format!(
                "create environment {} in {}, failover partner of environment {partner} ({})",
                spec.name,
                spec.region.as_str(),
                if warm > 0 {
                    format!("warm standby of {warm} node(s)")
                } else {
                    "cold standby".into()
                }
            ),
            None => format!("create environment {} in {}", spec.name, spec.region.as_str()),
        };
        finish(
            tx,
            ctx,
            Change {
                kind: "CREATE_ENVIRONMENT",
                target_kind: "environment",
                target_id: id,
                target_generation: 1,
                steps: vec![],
                audit_detail: &detail,
            },
        )
        .await
    }

    pub async fn delete_environment(&self, ctx: &WriteCtx, id: i64) -> Result<Submitted, StoreError> {
        with_key_retry(ctx, || self.delete_environment_once(ctx, id)).await
    }

    async fn delete_environment_once(&self, ctx: &WriteCtx, id: i64) -> Result<Submitted, StoreError> {
        let mut tx = self.begin_tx().await?;
        if let Begun::Replay(s) = begin(&mut tx, ctx).await? {
            return Ok(s);
        }
        // Lock the row first, so a concurrent cluster create either commits before
        // we count or sees the deletion and refuses.
        let env = lock_environment(&mut tx, id).await?;
        if env.delete_requested {
            // Deleting twice is not an error: answer with the delete in flight.
            if let Some(first) = latest_operation(&mut tx, "DELETE_ENVIRONMENT", "environment", id).await? {
                return Ok(first);
            }
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM clusters WHERE environment_id = ? AND live_key IS NOT NULL",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(q("count clusters"))?;
        if live > 0 {
            return Err(StoreError::Conflict(format!(
                "environment {id} still has {live} cluster(s); delete them first (ocadm clusters list --environmentid {id})"
            )));
        }
        let generation = env.generation + 1;
        sqlx::query(
            "UPDATE environments SET delete_requested = 1, generation = ?, status_code = ?, status_message = ?, \
             row_version = row_version + 1, updated_at = ? WHERE id = ?",
        )
        .bind(generation)
        .bind(EnvironmentStatus::Deleting.as_str())
        .bind("Deleting the environment's resources.")
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(q("mark environment deleted"))?;
        // Its partner stands alone from now on.
        sqlx::query(
            "UPDATE environments SET pair_id = NULL, failover_role = NULL, pair_serving = 1, row_version = row_version + 1 \
             WHERE pair_id = ?",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(q("unpair environment"))?;
        let detail = format!("delete environment {}", env.name);
        finish(
            tx,
            ctx,
            Change {
                kind: "DELETE_ENVIRONMENT",
                target_kind: "environment",
                target_id: id,
                target_generation: generation,
                steps: vec![],
                audit_detail: &detail,
            },
        )
        .await
    }

    pub async fn get_environment(&self, id: i64) -> Result<EnvironmentRow, StoreError> {
        let sql = format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(q("get environment"))?;
        match row {
            Some(r) => EnvironmentRow::from_row(&r),
            None => Err(StoreError::NotFound {
                kind: "environment",
                id,
            }),
        }
    }

    /// Every environment that is not deleted, by id.
    pub async fn list_environments(&self) -> Result<Vec<EnvironmentRow>, StoreError> {
        let sql =
            format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE live_name IS NOT NULL ORDER BY id");
        let rows = sqlx::query(&sql)
            .fetch_all(self.pool())
            .await
            .map_err(q("list environments"))?;
        rows.iter().map(EnvironmentRow::from_row).collect()
    }

    /// Claims an environment for reconciling until `now + ttl_ms`. Only one holder
    /// at a time; an expired lease may be taken over.
    pub async fn claim_environment(&self, id: i64, owner: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        claim("environments", self, id, owner, ttl_ms).await
    }

    /// Ends a reconcile run's lease; `Ok(false)`: a claim asked for another pass
    /// meanwhile, and the lease is still the run's (`finally` ends it anyway).
    pub async fn release_environment(&self, id: i64, owner: &str, finally: bool) -> Result<bool, StoreError> {
        release("environments", self, id, owner, finally).await
    }

    /// Records what the reconciler saw, while it still holds the lease.
    pub async fn record_environment(
        &self,
        id: i64,
        owner: &str,
        obs: &EnvironmentObservation,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let deleted = obs.status == EnvironmentStatus::Deleted;
        let updated = sqlx::query(
            "UPDATE environments SET vpc_id = ?, subnet_ids = ?, vpc_cidr = ?, security_group_id = ?, \
             status_code = ?, status_message = ?, observed_generation = COALESCE(?, observed_generation), \
             live_name = CASE WHEN ? = 1 THEN NULL ELSE live_name END, \
             row_version = row_version + 1, updated_at = ? WHERE id = ? AND lease_owner = ?",
        )
        .bind(obs.vpc_id.clone())
        .bind(serde_json::to_string(&obs.subnet_ids).expect("strings serialise"))
        .bind(obs.vpc_cidr.clone())
        .bind(obs.security_group_id.clone())
        .bind(obs.status.as_str())
        .bind(&obs.message)
        .bind(obs.observed_generation)
        .bind(deleted as i64)
        .bind(now_ms())
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(q("record environment"))?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "lost the lease on environment {id}"
            )));
        }
        let generation = obs.observed_generation.unwrap_or(0);
        progress(
            &mut tx,
            "environment",
            id,
            generation,
            &obs.steps,
            obs.failure.as_deref(),
        )
        .await?;
        tx.commit().await.map_err(q("commit environment"))
    }

    /// Ids of environments the reconciler should look at: all but the deleted.
    pub async fn environments_to_reconcile(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar("SELECT id FROM environments WHERE status_code <> 'DELETED' ORDER BY id")
            .fetch_all(self.pool())
            .await
            .map_err(q("environments to reconcile"))
    }
}

pub(crate) async fn lock_environment(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
) -> Result<EnvironmentRow, StoreError> {
    // A no-op write takes the row lock on MySQL and the write lock on SQLite.
    let touched = sqlx::query("UPDATE environments SET row_version = row_version WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(q("lock environment"))?;
    if touched.rows_affected() == 0 {
        // MySQL reports 0 changed rows for a no-op; check that the row exists.
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM environments WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(q("find environment"))?;
        if exists.is_none() {
            return Err(StoreError::NotFound {
                kind: "environment",
                id,
            });
        }
    }
    let sql = format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = ?");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(q("read environment"))?;
    EnvironmentRow::from_row(&row)
}

/// Takes the reconcile lease of a row in `table` (`environments` or `clusters`):
/// `Ok(false)` when another run holds it, `NotFound` when there is no such row.
///
/// A claim that finds the row held asks the holder for another pass (the change
/// that made this claim is then not lost: the holder started before it), then
/// tries once more, in case the holder released in between. A run that takes
/// the lease sees the row as it is now, which answers any ask before it.
pub(crate) async fn claim(
    table: &'static str,
    store: &Store,
    id: i64,
    owner: &str,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    if take(table, store, id, owner, ttl_ms).await? {
        return Ok(true);
    }
    sqlx::query(&format!("UPDATE {table} SET reconcile_again = 1 WHERE id = ?"))
        .bind(id)
        .execute(store.pool())
        .await
        .map_err(q("ask for another pass"))?;
    take(table, store, id, owner, ttl_ms).await
}

async fn take(
    table: &'static str,
    store: &Store,
    id: i64,
    owner: &str,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let sql = format!(
        "UPDATE {table} SET lease_owner = ?, lease_until = ?, reconcile_again = 0 \
         WHERE id = ? AND (lease_owner IS NULL OR lease_until < ? OR lease_owner = ?)"
    );
    let r = sqlx::query(&sql)
        .bind(owner)
        .bind(now + ttl_ms)
        .bind(id)
        .bind(now)
        .bind(owner)
        .execute(store.pool())
        .await
        .map_err(q("claim lease"))?;
    if r.rows_affected() == 1 {
        return Ok(true);
    }
    // MySQL counts changed rows, not matched ones: a holder renewing within the
    // same millisecond changes nothing. Read who holds it.
    let holder: Option<Option<String>> =
        sqlx::query_scalar(&format!("SELECT lease_owner FROM {table} WHERE id = ?"))
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(q("find leased row"))?;
    match holder {
        Some(holder) => Ok(holder.as_deref() == Some(owner)),
        None => Err(StoreError::NotFound {
            kind: if table == "clusters" {
                "cluster"
            } else {
                "environment"
            },
            id,
        }),
    }
}

/// Ends a run's lease. `Ok(false)`: a claim asked for another pass while the
/// run held it; the lease is still the run's, the ask is cleared, and the run
/// goes again. With `finally`, the lease ends whatever was asked (a failed run,
/// or one that went again often enough: the schedule comes next).
pub(crate) async fn release(
    table: &'static str,
    store: &Store,
    id: i64,
    owner: &str,
    finally: bool,
) -> Result<bool, StoreError> {
    let unless_asked = if finally { "" } else { " AND reconcile_again = 0" };
    let sql = format!(
        "UPDATE {table} SET lease_owner = NULL, lease_until = 0 WHERE id = ? AND lease_owner = ?{unless_asked}"
    );
    let released = sqlx::query(&sql)
        .bind(id)
        .bind(owner)
        .execute(store.pool())
        .await
        .map_err(q("release lease"))?;
    if released.rows_affected() == 1 {
        return Ok(true);
    }
    // Asked again, or the lease is not ours any more (it expired and was taken).
    let kept = sqlx::query(&format!(
        "UPDATE {table} SET reconcile_again = 0 WHERE id = ? AND lease_owner = ?"
    ))
    .bind(id)
    .bind(owner)
    .execute(store.pool())
    .await
    .map_err(q("take an ask for another pass"))?;
    Ok(kept.rows_affected() == 0)
}
