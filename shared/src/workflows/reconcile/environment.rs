//! Reconciling an environment: resolve its network, cache what the region offers,
//! and keep the `OkeraOdasServices` security group equal to the rule table.

use std::collections::BTreeSet;

use tracing::{info, instrument, warn};

use super::{Outcome, ReconcileError, Reconciler, LEASE_MS, MAX_RUNS_PER_LEASE};
use crate::cloud::{CloudError, CloudErrorKind, Compute, Dns, IngressRule, Metrics, ObjectStore, Scaling};
use crate::domain::security_group::{self, Peer, RULES};
use crate::domain::{tags, EnvironmentStatus};
use crate::store::{EnvironmentObservation, EnvironmentRow, Step, StepState, StoreError};

fn done(name: &str, message: String) -> Step {
    Step {
        name: name.into(),
        state: StepState::Done,
        message,
    }
}

/// Why a pass over an environment stopped.
enum Stop {
    /// The environment cannot become ready by waiting (a missing VPC, say).
    Permanent(String),
    /// AWS answered with an error; its kind says whether to try again.
    Cloud(CloudError),
    /// The store failed; the next run tries again.
    Store(StoreError),
}

impl<C: Compute, S: Scaling, O: ObjectStore, M: Metrics, D: Dns> Reconciler<C, S, O, M, D> {
    /// Converges one environment. Returns `Busy` when another run holds it
    /// (that run then goes again: the claim asked it to).
    #[instrument(skip_all, fields(environment_id = id))]
    pub async fn reconcile_environment(&self, id: i64) -> Result<Outcome, ReconcileError> {
        let owner = self.run_owner();
        if !self.store.claim_environment(id, &owner, LEASE_MS).await? {
            return Ok(Outcome::Busy);
        }
        for pass in 1.. {
            let result = Box::pin(self.converge_environment(id, &owner)).await;
            let finally = result.is_err() || pass == MAX_RUNS_PER_LEASE;
            if self.store.release_environment(id, &owner, finally).await? || finally {
                return result.map(|_| Outcome::Reconciled);
            }
        }
        unreachable!("the runs end at MAX_RUNS_PER_LEASE")
    }

    async fn converge_environment(&self, id: i64, owner: &str) -> Result<(), ReconcileError> {
        let env = self.store.get_environment(id).await?;
        let failed = |reason: String| {
            warn!(%reason, "environment failed");
            EnvironmentObservation {
                vpc_id: env.vpc_id.clone(),
                subnet_ids: env.subnet_ids.clone(),
                vpc_cidr: env.vpc_cidr.clone(),
                security_group_id: env.security_group_id.clone(),
                status: EnvironmentStatus::Failed,
                message: reason.clone(),
                observed_generation: None,
                steps: vec![],
                failure: Some(reason),
            }
        };
        let obs = match self.environment_pass(&env).await {
            Ok(obs) => obs,
            Err(Stop::Permanent(reason)) => failed(reason),
            Err(Stop::Cloud(e)) if e.kind == CloudErrorKind::Permanent => failed(e.to_string()),
            // Transient: leave the operation running; the next run tries again.
            Err(Stop::Cloud(e)) => return Err(e.into()),
            Err(Stop::Store(e)) => return Err(e.into()),
        };
        self.store.record_environment(id, owner, &obs).await?;
        info!(status = obs.status.as_str(), "environment reconciled");
        Ok(())
    }

    async fn environment_pass(&self, env: &EnvironmentRow) -> Result<EnvironmentObservation, Stop> {
        let region = env.region.as_str();
        let env_tag = env.id.to_string();
        if env.delete_requested {
            if let Some(vpc) = &env.vpc_id {
                for g in self
                    .compute
                    .security_groups_tagged(region, vpc, tags::ENVIRONMENT_ID, &env_tag)
                    .await
                    .map_err(Stop::Cloud)?
                {
                    match self.compute.delete_security_group(region, &g.id).await {
                        Ok(()) => {}
                        Err(e) if e.kind == CloudErrorKind::NotFound => {}
                        Err(e) => return Err(Stop::Cloud(e)),
                    }
                }
            }
            return Ok(EnvironmentObservation {
                vpc_id: env.vpc_id.clone(),
                subnet_ids: env.subnet_ids.clone(),
                vpc_cidr: env.vpc_cidr.clone(),
                security_group_id: None,
                status: EnvironmentStatus::Deleted,
                message: "Environment deleted.".into(),
                observed_generation: Some(env.generation),
                steps: vec![done("security group", "deleted".into())],
                failure: None,
            });
        }
        let vpc = match &env.vpc_id {
            Some(id) => self
                .compute
                .vpc(region, id)
                .await
                .map_err(Stop::Cloud)?
                .ok_or_else(|| Stop::Permanent(format!("VPC {id} does not exist in {region}")))?,
            None => self
                .compute
                .default_vpc(region)
                .await
                .map_err(Stop::Cloud)?
                .ok_or_else(|| {
                    Stop::Permanent(format!(
                        "{region} has no default VPC; create the environment again with --vpc and --subnets"
                    ))
                })?,
        };
        let available = self.compute.subnets(region, &vpc.id).await.map_err(Stop::Cloud)?;
        let subnets = if env.subnet_ids.is_empty() {
            available
        } else {
            if let Some(missing) = env.subnet_ids.iter().find(|s| !available.contains(s)) {
                return Err(Stop::Permanent(format!(
                    "subnet {missing} is not in VPC {}",
                    vpc.id
                )));
            }
            env.subnet_ids.clone()
        };
        if subnets.is_empty() {
            return Err(Stop::Permanent(format!("VPC {} has no subnets", vpc.id)));
        }
        let vpc_cidr = env.vpc_cidr.clone().unwrap_or(vpc.cidr.clone());
        let mut steps = vec![done(
            "network",
            format!("{} with {} subnet(s)", vpc.id, subnets.len()),
        )];

        if !self.store.has_instance_types(region).await.map_err(Stop::Store)? {
            let types = self.compute.instance_types(region).await.map_err(Stop::Cloud)?;
            self.store
                .put_instance_types(region, &types)
                .await
                .map_err(Stop::Store)?;
        }
        steps.push(done("instance types", format!("offered in {region} cached")));

        let mut security_group_id = None;
        if env.create_security_group {
            let admin = env.admin_cidr.clone().unwrap_or_default();
            let id = self
                .ensure_security_group(env, &vpc.id, &admin, &vpc_cidr)
                .await?;
            steps.push(done("security group", format!("{id} with {} rules", RULES.len())));
            security_group_id = Some(id);
        }
        Ok(EnvironmentObservation {
            vpc_id: Some(vpc.id),
            subnet_ids: subnets,
            vpc_cidr: Some(vpc_cidr),
            security_group_id,
            status: EnvironmentStatus::Ready,
            message: "Environment ready.".into(),
            observed_generation: Some(env.generation),
            steps,
            failure: None,
        })
    }

    /// Finds the environment's group by its tag (or makes it), then makes its rules
    /// exactly the table's: missing rules are added, others revoked.
    async fn ensure_security_group(
        &self,
        env: &EnvironmentRow,
        vpc_id: &str,
        admin_cidr: &str,
        vpc_cidr: &str,
    ) -> Result<String, Stop> {
        let region = env.region.as_str();
        let env_tag = env.id.to_string();
        let name = security_group::group_name(&env.name);
        let find = || {
            self.compute
                .security_groups_tagged(region, vpc_id, tags::ENVIRONMENT_ID, &env_tag)
        };
        let group = match find().await.map_err(Stop::Cloud)?.into_iter().next() {
            Some(g) => g,
            None => {
                let description = format!("Okera ODAS services of DM environment {}", env.name);
                match self
                    .compute
                    .create_security_group(
                        region,
                        vpc_id,
                        &name,
                        &description,
                        &tags::environment_tags(env.id),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.kind == CloudErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Stop::Cloud(e)),
                }
                find().await.map_err(Stop::Cloud)?.into_iter().next().ok_or_else(|| {
                    Stop::Permanent(format!(
                        "a security group named {name} exists in {vpc_id} but was not made by the DM; rename or remove it"
                    ))
                })?
            }
        };
        let desired: BTreeSet<(u16, Peer)> = security_group::resolved(admin_cidr, vpc_cidr, &group.id)
            .into_iter()
            .collect();
        let observed: BTreeSet<(u16, Peer)> = group.rules.iter().cloned().collect();
        let add: Vec<IngressRule> = desired
            .difference(&observed)
            .map(|(port, peer)| {
                let d = RULES
                    .iter()
                    .find(|r| r.port == *port)
                    .map(|r| r.description)
                    .unwrap_or("");
                (*port, peer.clone(), d.to_owned())
            })
            .collect();
        let remove: Vec<(u16, Peer)> = observed.difference(&desired).cloned().collect();
        // A concurrent run may have added or removed the same rules first.
        match self.compute.authorize_ingress(region, &group.id, &add).await {
            Err(e) if e.kind != CloudErrorKind::AlreadyExists => return Err(Stop::Cloud(e)),
            _ => {}
        }
        match self.compute.revoke_ingress(region, &group.id, &remove).await {
            Err(e) if e.kind != CloudErrorKind::NotFound => return Err(Stop::Cloud(e)),
            _ => {}
        }
        Ok(group.id)
    }
}
