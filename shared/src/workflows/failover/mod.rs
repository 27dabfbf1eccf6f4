//! Failover, failback and recovery drills across the DM's regions
//! (`docs/failover.md`).
//!
//! - [`gate`]: who is active. Every scheduled run and API write asks it first;
//!   a region that does not hold the current epoch stands by.
//! - [`Desk`]: what the API does with failovers: dry runs, requests, status.
//! - [`Failover`] (`takeover.rs`): drives a failover request in its target
//!   region: claim the epoch, promote the database, write the runbook, run it;
//!   and the region's schedule (`tick`).
//! - [`RegionSteps`] (`steps.rs`): the runbook steps of failovers (after the
//!   promotion) and drills, on the one runbook engine.

mod steps;
mod takeover;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use steps::RegionSteps;
pub use takeover::{drill_steps, failover_steps, request_answer, Failover, TickSummary, STEP_NAMES};

use crate::cloud::{Claimed, CloudError, Fence, Metrics};
use crate::domain::failover::{
    failed, parse_health_alarms, preconditions, FailoverRequest, FailoverSpec, FailoverState, Leader,
    Precondition, Readiness, Role,
};
use crate::store::{RunbookKind, Store, StoreError, WriteCtx};
use crate::time::now_ms;
use crate::workflows::kill::Killed;

/// A boxed future, for the object-safe handles the API holds.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The failover settings of one region's functions, read once at start.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverSettings {
    /// This region (`OKERA_REGION`, else `AWS_REGION`).
    pub region: String,
    /// Every DM region, this one included (`OKERA_DM_REGIONS`).
    pub dm_regions: Vec<String>,
    /// The fence's DynamoDB table (`OKERA_FENCE_TABLE`).
    pub fence_table: String,
    /// The Aurora global database (`OKERA_GLOBAL_DATABASE`).
    pub global_db: String,
    /// This region's DB cluster in it (`OKERA_DB_CLUSTER`): whose replica lag counts.
    pub db_cluster: String,
    /// Region-health alarms this region acts on: name to the region each
    /// watches (`OKERA_REGION_HEALTH_ALARMS`, `name=region,...`).
    pub health_alarms: BTreeMap<String, String>,
    /// Whether an alarm may start a failover (`OKERA_FAILOVER_AUTOMATIC`,
    /// default true); `ocadm failover` works either way.
    pub automatic: bool,
    /// The most replica lag a failover accepts without `--force`
    /// (`OKERA_FAILOVER_MAX_LAG_SECONDS`, default 60).
    pub max_lag_ms: i64,
    /// How long the promotion may take before the epoch is handed back
    /// (`OKERA_PROMOTION_TIMEOUT_SECONDS`, default 300).
    pub promotion_timeout_ms: i64,
    /// How often the promotion is looked at (1 s; dm-local and tests less).
    pub poll_ms: u64,
    /// The heartbeat age above which the region-health alarm fires (180 s).
    pub heartbeat_max_age_s: f64,
}

impl FailoverSettings {
    /// Reads the settings; `Ok(None)` when no fence table is configured (the
    /// DM runs in one region).
    pub fn from_env() -> Result<Option<FailoverSettings>, String> {
        FailoverSettings::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`FailoverSettings::from_env`] through `lookup` (the environment, or a
    /// test's table).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<FailoverSettings>, String> {
        let Some(fence_table) = lookup("OKERA_FENCE_TABLE") else {
            return Ok(None);
        };
        let need =
            |name: &str| lookup(name).ok_or_else(|| format!("{name} must be set with OKERA_FENCE_TABLE"));
        let region = lookup("OKERA_REGION")
            .or_else(|| lookup("AWS_REGION"))
            .ok_or("set OKERA_REGION (or AWS_REGION): the region this DM runs in")?;
        let dm_regions: Vec<String> = need("OKERA_DM_REGIONS")?
            .split(',')
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
        for r in &dm_regions {
            crate::domain::Region::parse("OKERA_DM_REGIONS", r).map_err(|e| e.message)?;
        }
        if dm_regions.len() < 2 || !dm_regions.contains(&region) {
            return Err(format!(
                "OKERA_DM_REGIONS must name two or more regions, {region} among them; got {dm_regions:?}"
            ));
        }
        let seconds = |name: &str, default: i64| -> Result<i64, String> {
            match lookup(name) {
                None => Ok(default),
                Some(raw) => raw
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .ok_or_else(|| {
                        format!("{name} must be a whole number of seconds from 1 to 86400, got {raw:?}")
                    }),
            }
        };
        let automatic = match lookup("OKERA_FAILOVER_AUTOMATIC").as_deref().map(str::trim) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(format!(
                    "OKERA_FAILOVER_AUTOMATIC must be true or false, got {other:?}"
                ))
            }
        };
        Ok(Some(FailoverSettings {
            health_alarms: parse_health_alarms(&lookup("OKERA_REGION_HEALTH_ALARMS").unwrap_or_default())
                .map_err(|e| format!("OKERA_REGION_HEALTH_ALARMS: {e}"))?,
            region,
            dm_regions,
            fence_table,
            global_db: need("OKERA_GLOBAL_DATABASE")?,
            db_cluster: need("OKERA_DB_CLUSTER")?,
            automatic,
            max_lag_ms: seconds("OKERA_FAILOVER_MAX_LAG_SECONDS", 60)? * 1000,
            promotion_timeout_ms: seconds("OKERA_PROMOTION_TIMEOUT_SECONDS", 300)? * 1000,
            poll_ms: 1000,
            heartbeat_max_age_s: 180.0,
        }))
    }

    /// The other DM regions.
    pub fn peers(&self) -> impl Iterator<Item = &String> {
        self.dm_regions.iter().filter(move |r| **r != self.region)
    }
}

/// Why a failover call failed.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("the fence: {0}")]
    Fence(#[source] CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Cloud(#[source] CloudError),
    /// Not done, and why; the message says what to do.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// An Idempotency-Key sent again with a different request.
    #[error("{0}")]
    KeyReused(String),
    #[error(transparent)]
    Killed(#[from] Killed),
}

impl FailoverError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            FailoverError::Fence(e) | FailoverError::Cloud(e) => e.is_retryable(),
            FailoverError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Who is active, read from the fence: this region, another, or nobody yet.
/// With no leader item, the region whose database is the writer claims epoch 1
/// (a conditional write: of two racing, one wins) and writes it to its history.
pub async fn read_role<F: Fence>(fence: &F, store: &Store, region: &str) -> Role {
    let leader = match fence.leader().await {
        Ok(l) => l,
        Err(e) => return Role::Unknown(e.to_string()),
    };
    match leader {
        Some(l) if l.region == region => Role::Active(l),
        Some(l) => Role::Standby(Some(l)),
        None => match store.is_writer().await {
            Ok(false) => Role::Standby(None),
            Err(e) => Role::Unknown(e.to_string()),
            Ok(true) => {
                let first = Leader::first(region, now_ms());
                match fence.claim(None, &first).await {
                    Ok(Claimed::Won) => {
                        if let Err(e) = store.record_leadership(&first, None).await {
                            tracing::warn!(error = %e, "could not write the first epoch to the history");
                        }
                        tracing::info!(region, "claimed the first epoch");
                        Role::Active(first)
                    }
                    Ok(Claimed::Lost(Some(l))) if l.region == region => Role::Active(l),
                    Ok(Claimed::Lost(l)) => Role::Standby(l),
                    Err(e) => Role::Unknown(e.to_string()),
                }
            }
        },
    }
}

/// The gate every function asks before a scheduled run or a write: who is
/// active. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    pub region: String,
    check: Arc<dyn Fn() -> BoxFut<Role> + Send + Sync>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("region", &self.region).finish()
    }
}

impl Gate {
    /// The gate of a multi-region DM: reads the fence each time (strongly
    /// consistent, a few milliseconds), so that a region stands down as soon
    /// as another claims a newer epoch.
    pub fn fenced<F: Fence + 'static>(fence: Arc<F>, store: Store, region: &str) -> Gate {
        let owned = region.to_owned();
        Gate {
            region: region.to_owned(),
            check: Arc::new(move || {
                let (fence, store, region) = (fence.clone(), store.clone(), owned.clone());
                Box::pin(async move { read_role(fence.as_ref(), &store, &region).await })
            }),
        }
    }

    /// The gate of a DM in one region: always active.
    pub fn single(region: &str) -> Gate {
        Gate {
            region: region.to_owned(),
            check: Arc::new(|| Box::pin(async { Role::Single })),
        }
    }

    pub async fn role(&self) -> Role {
        (self.check)().await
    }

    /// None while this region is active; otherwise what a scheduled run or an
    /// invoke answers instead of acting (and it is logged).
    pub async fn standing_by(&self) -> Option<serde_json::Value> {
        let role = self.role().await;
        if role.is_active() {
            return None;
        }
        tracing::debug!(region = %self.region, role = role.as_str(), message = %role.describe(&self.region), "standing by");
        Some(standing_by(&role, &self.region))
    }
}

/// What a scheduled run answers when the gate says this region stands by.
pub fn standing_by(role: &Role, region: &str) -> serde_json::Value {
    serde_json::json!({
        "standingBy": {
            "region": region,
            "role": role.as_str(),
            "activeRegion": role.leader().map(|l| l.region.clone()),
            "epoch": role.leader().map(|l| l.epoch),
            "message": role.describe(region),
        }
    })
}

/// The preconditions of a failover to this region (`s.region`) from the active
/// one, and the leader they were read against. `exclude` is the request being
/// checked (it is in flight itself).
pub async fn readiness<F: Fence, M: Metrics>(
    fence: &F,
    metrics: &M,
    store: &Store,
    s: &FailoverSettings,
    exclude: Option<&str>,
) -> Result<(Readiness, Option<Leader>), FailoverError> {
    let leader = fence.leader().await.map_err(FailoverError::Fence)?;
    let requests = fence.requests().await.map_err(FailoverError::Fence)?;
    // A request that claimed and has not ended holds the region; requests
    // that have not claimed yet race on the claim instead (one wins).
    let in_flight = requests
        .iter()
        .find(|r| Some(r.id.as_str()) != exclude && r.state != FailoverState::Requested && !r.state.ended())
        .map(|r| (r.id.clone(), r.to.clone()));
    let lag_ms = metrics
        .latest(
            &s.region,
            "AWS/RDS",
            "AuroraGlobalDBReplicationLag",
            &[("DBClusterIdentifier".to_owned(), s.db_cluster.clone())],
            now_ms() - 300_000,
        )
        .await
        .map_err(FailoverError::Cloud)?;
    let active = leader.as_ref().map(|l| l.region.clone());
    let scope = match &active {
        Some(from) if *from != s.region => store.failover_scope(from, &s.region).await?,
        _ => Default::default(),
    };
    let mut types: Vec<String> = scope
        .clusters
        .iter()
        .map(|(c, _)| c.instance_type.clone())
        .collect();
    types.sort();
    types.dedup();
    // An empty catalog (no environment ever made in the region) cannot tell;
    // the reconciler fills it, and launching tells for sure.
    let known = store.has_instance_types(&s.region).await?;
    let mut instance_types = Vec::new();
    for t in types {
        let offered = !known || store.instance_size(&s.region, &t).await?.is_some();
        instance_types.push((t, offered));
    }
    Ok((
        Readiness {
            dm_regions: s.dm_regions.clone(),
            active,
            in_flight,
            drill_running: store.running_region_runbook(RunbookKind::Drill).await?,
            lag_ms,
            max_lag_ms: s.max_lag_ms as f64,
            environments: scope
                .environments
                .iter()
                .map(|(e, p)| (e.id, e.name.clone(), p.as_ref().map(|p| p.id)))
                .collect(),
            instance_types,
        },
        leader,
    ))
}

/// Starts a drill from this (active) region to `spec.to`; the runbook does the
/// rest. Refused unless this region is active and `to` is another DM region,
/// and while a drill or a failover runs.
pub async fn start_drill(
    store: &Store,
    role: &Role,
    region: &str,
    dm_regions: &[String],
    ctx: &crate::store::WriteCtx,
    spec: &crate::domain::failover::DrillSpec,
) -> Result<crate::store::Submitted, FailoverError> {
    if !matches!(role, Role::Active(_)) {
        return Err(FailoverError::Refused(match role {
            Role::Single => {
                "this DM runs in one region: a drill needs a second DM region (dm-local: --regions)".into()
            }
            other => format!("drills run from the active region: {}", other.describe(region)),
        }));
    }
    if spec.to == region || !dm_regions.contains(&spec.to) {
        return Err(FailoverError::Refused(format!(
            "a drill goes to another DM region ({}), not to {}",
            dm_regions
                .iter()
                .filter(|r| *r != region)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            spec.to
        )));
    }
    Ok(store
        .submit_drill(ctx, region, &spec.to, spec.ready_timeout_ms, &drill_steps())
        .await?)
}

/// The local stand-in of Aurora's writer role (dm-local and tests): every
/// `every`, sets `watch` to the region whose DB cluster the global database
/// names as its writer, so that the regional stores that follow it take
/// writes only there, as an Aurora secondary refuses writes until promoted.
pub async fn follow_writer<G: crate::cloud::GlobalDatabase>(
    db: G,
    region: String,
    global_db: String,
    watch: crate::store::WriterWatch,
    every: std::time::Duration,
) {
    loop {
        match db.describe(&region, &global_db).await {
            Ok(g) => {
                let writer = g.writer().map(|w| w.region.clone());
                if writer != watch.get() {
                    tracing::info!(writer = ?writer, "the global database's writer changed");
                    watch.set(writer.as_deref());
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the global database"),
        }
        tokio::time::sleep(every).await;
    }
}

/// A failover as a dry run shows it: what would be checked and moved.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverPlan {
    pub to: String,
    pub from: Option<String>,
    pub planned: bool,
    /// The promotion it would ask for.
    pub promotion: String,
    pub preconditions: Vec<Precondition>,
    /// Each serving cluster of the old region, and what would take over from it.
    pub clusters: Vec<PlannedMove>,
    pub steps: Vec<&'static str>,
    pub replica_lag_ms: Option<i64>,
}

/// One cluster a failover would move.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedMove {
    pub cluster_id: i64,
    pub name: String,
    pub environment_id: i64,
    pub nodes: i64,
    /// `unpark warm standby N`, `replace out-of-date standby N`, `create from spec`,
    /// or `none: no partner environment`.
    pub action: String,
}

/// What the API does with failovers, object-safe so that the router holds it
/// without knowing the fence's adapter.
pub trait Desk: Send + Sync {
    /// This region.
    fn region(&self) -> &str;
    /// Every DM region (just this one without a fence).
    fn dm_regions(&self) -> Vec<String>;
    fn role(&self) -> BoxFut<Role>;
    /// A failover to this region as it would run now; changes nothing.
    fn plan(&self, spec: FailoverSpec) -> BoxFut<Result<FailoverPlan, FailoverError>>;
    /// Records a failover request and wakes the failover function. With an
    /// Idempotency-Key, the same request sent again answers the first one.
    fn request(&self, spec: FailoverSpec, ctx: WriteCtx) -> BoxFut<Result<Requested, FailoverError>>;
    fn status(&self, id: String) -> BoxFut<Result<Option<FailoverRequest>, FailoverError>>;
    fn list(&self) -> BoxFut<Result<Vec<FailoverRequest>, FailoverError>>;
}

/// A request the desk took.
#[derive(Debug, Clone)]
pub struct Requested {
    pub request: FailoverRequest,
    /// The same Idempotency-Key and request were sent before; this is that answer.
    pub replayed: bool,
}

/// The id of the failover an Idempotency-Key names: one per caller and key, so
/// that a retry finds the request its first attempt wrote.
pub fn keyed_request_id(principal: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(principal.as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    format!("fo-k{}", &hex::encode(h.finalize())[..24])
}

/// Wakes the failover function of this region for a request, or a region
/// runbook. Like a `Kick`, it never fails: a lost wake-up waits for the
/// function's schedule.
pub type FailoverWake = Arc<dyn Fn(serde_json::Value) -> BoxFut<()> + Send + Sync>;

/// The event that asks the failover function to drive a request now.
pub fn request_event(id: &str) -> serde_json::Value {
    serde_json::json!({ "failoverId": id })
}

/// The desk of a DM in one region: it has nothing to fail over to.
pub struct SingleRegionDesk {
    pub region: String,
}

const SINGLE: &str = "this DM runs in one region: failover needs OKERA_FENCE_TABLE, OKERA_DM_REGIONS, \
                      OKERA_GLOBAL_DATABASE and OKERA_DB_CLUSTER (dm-local: --regions)";

impl Desk for SingleRegionDesk {
    fn region(&self) -> &str {
        &self.region
    }
    fn dm_regions(&self) -> Vec<String> {
        vec![self.region.clone()]
    }
    fn role(&self) -> BoxFut<Role> {
        Box::pin(async { Role::Single })
    }
    fn plan(&self, _: FailoverSpec) -> BoxFut<Result<FailoverPlan, FailoverError>> {
        Box::pin(async { Err(FailoverError::Refused(SINGLE.into())) })
    }
    fn request(&self, _: FailoverSpec, _: WriteCtx) -> BoxFut<Result<Requested, FailoverError>> {
        Box::pin(async { Err(FailoverError::Refused(SINGLE.into())) })
    }
    fn status(&self, id: String) -> BoxFut<Result<Option<FailoverRequest>, FailoverError>> {
        Box::pin(async move { Err(FailoverError::NotFound(format!("no failover {id}: {SINGLE}"))) })
    }
    fn list(&self) -> BoxFut<Result<Vec<FailoverRequest>, FailoverError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// The desk of a multi-region DM, over the fence and CloudWatch (the lag).
pub struct FenceDesk<F, M> {
    inner: Arc<DeskInner<F, M>>,
}

struct DeskInner<F, M> {
    fence: Arc<F>,
    metrics: M,
    store: Store,
    settings: FailoverSettings,
    wake: FailoverWake,
}

impl<F: Fence + 'static, M: Metrics + 'static> FenceDesk<F, M> {
    pub fn new(
        fence: Arc<F>,
        metrics: M,
        store: Store,
        settings: FailoverSettings,
        wake: FailoverWake,
    ) -> Self {
        FenceDesk {
            inner: Arc::new(DeskInner {
                fence,
                metrics,
                store,
                settings,
                wake,
            }),
        }
    }
}

impl<F: Fence, M: Metrics> DeskInner<F, M> {
    fn check_target(&self, spec: &FailoverSpec) -> Result<(), FailoverError> {
        if spec.to != self.settings.region {
            return Err(FailoverError::Refused(format!(
                "a failover runs in its target region: send it to the API of {} (OCADM_ENDPOINT_{}), not to {}'s",
                spec.to,
                spec.to.to_uppercase().replace('-', "_"),
                self.settings.region
            )));
        }
        Ok(())
    }

    async fn plan(&self, spec: &FailoverSpec) -> Result<FailoverPlan, FailoverError> {
        self.check_target(spec)?;
        let (r, leader) = readiness(
            self.fence.as_ref(),
            &self.metrics,
            &self.store,
            &self.settings,
            None,
        )
        .await?;
        let checks = preconditions(&spec.to, &r, true, true);
        let from = leader.map(|l| l.region);
        let scope = match &from {
            Some(f) if *f != spec.to => self.store.failover_scope(f, &spec.to).await?,
            _ => Default::default(),
        };
        let clusters = scope
            .clusters
            .iter()
            .map(|(c, partner)| {
                let has_env = scope
                    .environments
                    .iter()
                    .any(|(e, p)| e.id == c.environment_id && p.is_some());
                let action = match partner {
                    _ if !has_env => "none: its environment has no partner in the target region".to_owned(),
                    Some(p) if p.odas_version == c.odas_version && p.components == c.components => {
                        format!(
                            "unpark standby cluster {} ({} node(s) warm)",
                            p.id, p.running_nodes
                        )
                    }
                    Some(p) => format!("replace out-of-date standby cluster {} with a new one", p.id),
                    None => "create from the replicated spec".to_owned(),
                };
                PlannedMove {
                    cluster_id: c.id,
                    name: c.name.clone(),
                    environment_id: c.environment_id,
                    nodes: c.num_nodes,
                    action,
                }
            })
            .collect();
        Ok(FailoverPlan {
            promotion: format!(
                "{} of global database {} to {} ({})",
                if spec.planned {
                    "SwitchoverGlobalCluster"
                } else {
                    "FailoverGlobalCluster with AllowDataLoss"
                },
                self.settings.global_db,
                self.settings.db_cluster,
                spec.to
            ),
            to: spec.to.clone(),
            from,
            planned: spec.planned,
            preconditions: checks,
            clusters,
            steps: takeover::STEP_NAMES.to_vec(),
            replica_lag_ms: r.lag_ms.map(|l| l as i64),
        })
    }

    async fn request(&self, spec: FailoverSpec, ctx: WriteCtx) -> Result<Requested, FailoverError> {
        self.check_target(&spec)?;
        let principal = ctx.principal;
        // A retry of a request that went through answers that request, before
        // the preconditions (the first attempt is the failover now in flight).
        let keyed = ctx
            .idempotency
            .map(|(key, fingerprint)| (keyed_request_id(&principal, &key), key, fingerprint));
        if let Some((id, key, fingerprint)) = &keyed {
            if let Some(replay) = self.replay(id, key, fingerprint).await? {
                return Ok(replay);
            }
        }
        let (r, _) = readiness(
            self.fence.as_ref(),
            &self.metrics,
            &self.store,
            &self.settings,
            None,
        )
        .await?;
        let checks = preconditions(&spec.to, &r, true, true);
        if let Some(why) = failed(&checks) {
            let skippable = checks.iter().filter(|c| !c.ok).all(|c| {
                !matches!(
                    c.name.as_str(),
                    "target-region" | "not-active" | "no-failover-in-flight"
                )
            });
            if !spec.force || !skippable {
                return Err(FailoverError::Refused(format!(
                    "failover to {} refused: {why}{}",
                    spec.to,
                    if skippable {
                        " (--force goes on anyway)"
                    } else {
                        ""
                    }
                )));
            }
        }
        let now = now_ms();
        let request = FailoverRequest {
            id: match &keyed {
                Some((id, ..)) => id.clone(),
                None => format!("fo-{now}-{:08x}", rand::random::<u32>()),
            },
            to: spec.to.clone(),
            from: None,
            planned: spec.planned,
            force: spec.force,
            trigger: format!("ocadm ({principal})"),
            requested_at: now,
            ready_timeout_ms: spec.ready_timeout_ms,
            state: FailoverState::Requested,
            epoch: None,
            claimed_at: None,
            promote_started_at: None,
            promoted_at: None,
            lag_ms: None,
            operation_id: None,
            error: None,
            preconditions: checks,
            fingerprint: keyed.as_ref().map(|(_, _, f)| f.clone()),
            updated_at: now,
        };
        if !self
            .fence
            .create_request(&request)
            .await
            .map_err(FailoverError::Fence)?
        {
            // Two attempts with one key raced, and the other one wrote first.
            if let Some((id, key, fingerprint)) = &keyed {
                if let Some(replay) = self.replay(id, key, fingerprint).await? {
                    return Ok(replay);
                }
            }
            return Err(FailoverError::Refused(format!(
                "failover {} exists already; try again",
                request.id
            )));
        }
        tracing::info!(failover = %request.id, to = %request.to, planned = request.planned, %principal, "failover requested");
        (self.wake)(request_event(&request.id)).await;
        Ok(Requested {
            request,
            replayed: false,
        })
    }

    /// The request an Idempotency-Key wrote before, if it did.
    async fn replay(
        &self,
        id: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<Requested>, FailoverError> {
        let Some(request) = self.fence.request(id).await.map_err(FailoverError::Fence)? else {
            return Ok(None);
        };
        if request.fingerprint.as_deref() != Some(fingerprint) {
            return Err(FailoverError::KeyReused(format!(
                "Idempotency-Key {key:?} was already used with a different request (failover {id}); \
                 use a new key for a new request"
            )));
        }
        Ok(Some(Requested {
            request,
            replayed: true,
        }))
    }
}

impl<F: Fence + 'static, M: Metrics + 'static> Desk for FenceDesk<F, M> {
    fn region(&self) -> &str {
        &self.inner.settings.region
    }

    fn dm_regions(&self) -> Vec<String> {
        self.inner.settings.dm_regions.clone()
    }

    fn role(&self) -> BoxFut<Role> {
        let inner = self.inner.clone();
        Box::pin(async move { read_role(inner.fence.as_ref(), &inner.store, &inner.settings.region).await })
    }

    fn plan(&self, spec: FailoverSpec) -> BoxFut<Result<FailoverPlan, FailoverError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.plan(&spec).await })
    }

    fn request(&self, spec: FailoverSpec, ctx: WriteCtx) -> BoxFut<Result<Requested, FailoverError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.request(spec, ctx).await })
    }

    fn status(&self, id: String) -> BoxFut<Result<Option<FailoverRequest>, FailoverError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.fence.request(&id).await.map_err(FailoverError::Fence) })
    }

    fn list(&self) -> BoxFut<Result<Vec<FailoverRequest>, FailoverError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.fence.requests().await.map_err(FailoverError::Fence) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn settings_are_read_once_and_name_what_is_wrong() {
        assert_eq!(FailoverSettings::from_lookup(lookup(&[])), Ok(None));
        let full = [
            ("OKERA_FENCE_TABLE", "okera-dm-fence"),
            ("AWS_REGION", "us-west-2"),
            ("OKERA_DM_REGIONS", "us-east-1, us-west-2"),
            ("OKERA_GLOBAL_DATABASE", "okera-dm"),
            ("OKERA_DB_CLUSTER", "okera-dm-us-west-2"),
            (
                "OKERA_REGION_HEALTH_ALARMS",
                "okera-dm-region-health-us-east-1=us-east-1",
            ),
        ];
        let s = FailoverSettings::from_lookup(lookup(&full)).unwrap().unwrap();
        assert_eq!(s.region, "us-west-2");
        assert_eq!(s.peers().collect::<Vec<_>>(), ["us-east-1"]);
        assert_eq!(
            (s.max_lag_ms, s.promotion_timeout_ms, s.automatic),
            (60_000, 300_000, true)
        );
        assert_eq!(
            s.health_alarms
                .get("okera-dm-region-health-us-east-1")
                .map(String::as_str),
            Some("us-east-1")
        );
        for (name, bad, want) in [
            ("OKERA_DM_REGIONS", "us-west-2", "two or more"),
            ("OKERA_DM_REGIONS", "us-east-1,eu-west-1", "us-west-2 among them"),
            (
                "OKERA_FAILOVER_MAX_LAG_SECONDS",
                "0",
                "OKERA_FAILOVER_MAX_LAG_SECONDS",
            ),
            ("OKERA_FAILOVER_AUTOMATIC", "yes", "true or false"),
            ("OKERA_REGION_HEALTH_ALARMS", "x", "OKERA_REGION_HEALTH_ALARMS"),
        ] {
            let mut pairs: Vec<(&str, &str)> = full.iter().filter(|(k, _)| *k != name).copied().collect();
            pairs.push((name, bad));
            let err = FailoverSettings::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(err.contains(want), "{name}={bad}: {err}");
        }
        let missing: Vec<(&str, &str)> = full
            .iter()
            .filter(|(k, _)| *k != "OKERA_DB_CLUSTER")
            .copied()
            .collect();
        assert!(FailoverSettings::from_lookup(lookup(&missing))
            .unwrap_err()
            .contains("OKERA_DB_CLUSTER"));
    }
}
