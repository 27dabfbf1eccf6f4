//! The reconciler: converges AWS toward the desired state in the store.
//!
//! Like a Kubernetes controller, it is level-triggered and idempotent. It runs after
//! every write and on a schedule, it finds what it made by tags (never by memory
//! alone), and it is safe to run twice, to kill at any step, and to run twice at
//! once:
//! - a lease with an expiry on each row keeps two runs off the same target, and an
//!   expired lease (a killed run) is taken over;
//! - resource names are deterministic, so two creates collide in AWS
//!   (`AlreadyExists`) rather than making two of anything, and the loser adopts the
//!   winner's resource on its next look.

mod cluster;
mod environment;
pub mod plan;

use crate::cloud::{CloudError, Compute, Dns, Metrics, ObjectStore, Scaling};
use crate::config::S3Location;
use crate::store::{Store, StoreError};
use crate::workflows::runbook::DnsZone;

pub use cluster::resource_name;
pub use plan::{assess, plan, Assessment, Change, DesiredCluster, ObservedCluster};

/// How long a reconcile may hold a target before another run may take over.
pub const LEASE_MS: i64 = 120_000;
/// Clusters one scheduled run reconciles at once.
pub const CONCURRENCY: usize = 8;
/// The most times one run converges a target that claims keep asking to go
/// over again; after them the schedule's next run picks up what is left.
pub const MAX_RUNS_PER_LEASE: u32 = 4;
/// Plan-apply passes per target per run; each pass waits for nothing, so a few
/// passes finish what AWS does at once, and the schedule finishes the rest.
const MAX_PASSES: usize = 4;

/// Why one target could not be reconciled this time.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

/// The reconciler's dependencies: the store, one adapter per AWS system, and the
/// settings resources are made from.
pub struct Reconciler<C, S, O, M, D> {
    pub store: Store,
    pub compute: C,
    pub scaling: S,
    pub objects: O,
    /// CloudWatch: each cluster's health alarm.
    pub metrics: M,
    /// Route 53: each cluster's endpoint record, in `zone` when one is configured.
    pub dns: D,
    pub zone: Option<DnsZone>,
    pub staging: S3Location,
    pub node_ami: String,
    /// The instance profile (ARN) nodes run with, if any.
    pub node_instance_profile: Option<String>,
    /// Who holds leases taken by this reconciler (unique per process); each
    /// run of one target holds its lease as `owner#N`, so that two runs in one
    /// process keep off each other's target as runs in two processes do.
    pub owner: String,
}

/// One thing to reconcile, as named in a direct invoke of the reconciler:
/// `{"clusterId": N}` or `{"environmentId": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Cluster(i64),
    Environment(i64),
}

impl Target {
    /// The event that asks the reconciler function for this target.
    pub fn event(self) -> serde_json::Value {
        match self {
            Target::Cluster(id) => serde_json::json!({ "clusterId": id }),
            Target::Environment(id) => serde_json::json!({ "environmentId": id }),
        }
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub environments: usize,
    pub clusters: usize,
    /// Targets another run held; they are left to it.
    pub skipped: usize,
    /// Targets that failed this time, with the reason.
    pub errors: Vec<String>,
}

/// What happened to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Reconciled,
    /// Another run holds the lease.
    Busy,
}

impl<C: Compute, S: Scaling, O: ObjectStore, M: Metrics, D: Dns> Reconciler<C, S, O, M, D> {
    fn run_owner(&self) -> String {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}#{n}", self.owner)
    }

    /// Reconciles every environment, then every cluster, [`CONCURRENCY`] at a
    /// time (each waits mostly on AWS; the leases keep two runs off one target).
    /// One target's failure does not stop the others.
    pub async fn reconcile_all(&self) -> Result<Summary, StoreError> {
        use futures_util::stream::{self, StreamExt};
        let mut summary = Summary::default();
        for id in self.store.environments_to_reconcile().await? {
            match self.reconcile_environment(id).await {
                Ok(Outcome::Reconciled) => summary.environments += 1,
                Ok(Outcome::Busy) => summary.skipped += 1,
                Err(e) => summary.errors.push(format!("environment {id}: {e}")),
            }
        }
        let ids = self.store.clusters_to_reconcile().await?;
        let mut runs = stream::iter(ids)
            .map(|id| async move { (id, self.reconcile_cluster(id).await) })
            .buffer_unordered(CONCURRENCY);
        while let Some((id, outcome)) = runs.next().await {
            match outcome {
                Ok(Outcome::Reconciled) => summary.clusters += 1,
                Ok(Outcome::Busy) => summary.skipped += 1,
                Err(e) => summary.errors.push(format!("cluster {id}: {e}")),
            }
        }
        Ok(summary)
    }
}
