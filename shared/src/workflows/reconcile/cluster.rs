//! Reconciling a cluster: observe by tags, plan, apply, and record the result.

use tracing::{info, instrument, warn};

use super::plan::{assess, endpoint_routing, plan, Change, DesiredCluster, ObservedCluster};
use super::{Outcome, ReconcileError, Reconciler, LEASE_MS, MAX_PASSES, MAX_RUNS_PER_LEASE};
use crate::cloud::{
    CloudError, CloudErrorKind, Compute, Dns, GroupSpec, LaunchTemplateSpec, Metrics, ObjectStore, Scaling,
};
use crate::domain::{tags, ClusterStatus};
use crate::metrics;
use crate::store::{ClusterObservation, ClusterRow, EnvironmentRow, NewNode};
use crate::workflows::lifecycle::node_hooks;

/// The names of a cluster's resources: `okera-<id>-<name>`, the same on every run,
/// so that two runs that both create collide instead of making two.
pub fn resource_name(cluster: &ClusterRow) -> String {
    format!("okera-{}-{}", cluster.id, cluster.name)
}

impl<C: Compute, S: Scaling, O: ObjectStore, M: Metrics, D: Dns> Reconciler<C, S, O, M, D> {
    /// What the cluster should have in AWS. `pair` is its environment's
    /// partner, if paired; `health_checks` the DM regions' Route 53 health
    /// checks, `(region, id)`.
    pub fn desired(
        &self,
        cluster: &ClusterRow,
        env: &EnvironmentRow,
        pair: Option<&EnvironmentRow>,
        health_checks: &[(String, String)],
    ) -> DesiredCluster {
        let name = resource_name(cluster);
        let all_tags = tags::cluster_tags(cluster.id, &cluster.name, cluster.environment_id, &cluster.tags);
        let size = if cluster.delete_requested {
            0
        } else if cluster.parked {
            cluster.num_nodes.min(env.warm_standby_nodes) as i32
        } else {
            cluster.num_nodes as i32
        };
        let (routing, keeps_record) = endpoint_routing(
            &env.region,
            env.is_primary(),
            pair.map(|p| p.region.as_str()),
            env.pair_serving,
            health_checks,
        );
        // Both sides of a pair answer to one name: the primary environment's.
        let endpoint_env = match pair {
            Some(p) if !env.is_primary() => p.name.as_str(),
            _ => env.name.as_str(),
        };
        let config_path = format!("config/{}/{}/cluster.json", cluster.id, cluster.config_generation);
        let config_uri = self.staging.uri(&config_path);
        let config = serde_json::json!({
            "clusterId": cluster.id,
            "name": cluster.name,
            "type": cluster.cluster_type,
            "environmentId": cluster.environment_id,
            "region": env.region,
            "version": cluster.odas_version,
            "components": cluster.components,
            "instanceType": cluster.instance_type,
            "storageGb": cluster.storage_gb,
            "configGeneration": cluster.config_generation,
            "stagingDir": self.staging.uri(""),
        });
        let user_data = format!(
            "#!/bin/bash\n# ODAS node bootstrap, written by the Okera Deployment Manager.\n\
             export OKERA_CLUSTER_ID={}\nexport OKERA_CLUSTER_CONFIG={config_uri}\nexport OKERA_S3_STAGING_DIR={}\n\
             exec /opt/okera/bin/node-bootstrap\n",
            cluster.id,
            self.staging.uri("")
        );
        let alarm = metrics::cluster_alarm(&env.region, cluster.id, &name, &all_tags);
        DesiredCluster {
            delete: cluster.delete_requested,
            num_nodes: size,
            group: GroupSpec {
                name: name.clone(),
                launch_template_id: String::new(),
                min: size,
                max: size,
                desired: size,
                subnet_ids: env.subnet_ids.clone(),
                tags: all_tags.clone(),
                hooks: node_hooks(),
            },
            template: LaunchTemplateSpec {
                name,
                image_id: self.node_ami.clone(),
                instance_type: cluster.instance_type.clone(),
                storage_gb: cluster.storage_gb as i32,
                security_group_ids: env.security_group_id.iter().cloned().collect(),
                instance_profile: self.node_instance_profile.clone(),
                user_data,
                tags: all_tags,
            },
            config_key: self.staging.key(&config_path),
            config_body: serde_json::to_vec_pretty(&config).expect("json serialises"),
            config_prefix: self.staging.key(&format!("config/{}/", cluster.id)),
            alarm,
            alarm_prefix: format!("okera-{}-", cluster.id),
            // A drill's clusters answer to no name.
            endpoint: self
                .zone
                .as_ref()
                .filter(|_| cluster.drill_id.is_none())
                .map(|z| {
                    let name = cluster
                        .endpoint
                        .clone()
                        .unwrap_or_else(|| z.endpoint(&cluster.name, endpoint_env));
                    (z.id.clone(), name)
                }),
            serves_endpoint: cluster.serves_endpoint && keeps_record,
            routing,
            parked: cluster.parked,
        }
    }

    /// Everything in AWS that carries the cluster's tag, and the last probe of
    /// each of its nodes.
    pub async fn observe(
        &self,
        region: &str,
        desired: &DesiredCluster,
        cluster_id: i64,
    ) -> Result<ObservedCluster, ReconcileError> {
        let id = cluster_id.to_string();
        let (groups, templates, instances, config_keys, nodes, alarms) = tokio::join!(
            self.scaling.groups_tagged(region, tags::CLUSTER_ID, &id),
            self.compute
                .launch_templates_tagged(region, tags::CLUSTER_ID, &id),
            self.compute.instances_tagged(region, tags::CLUSTER_ID, &id),
            self.objects.list(&self.staging.bucket, &desired.config_prefix),
            self.store.nodes_of(cluster_id),
            self.metrics.alarms_with_prefix(region, &desired.alarm_prefix),
        );
        let groups = groups?;
        let endpoint_records = match &desired.endpoint {
            Some((zone, name)) if desired.serves_endpoint => self.dns.records(zone, name).await?,
            _ => Vec::new(),
        };
        let hooks = match groups
            .iter()
            .find(|g| g.name == desired.group.name && !g.deleting)
        {
            Some(g) if !desired.delete => self.scaling.hooks(region, &g.name).await?,
            _ => Vec::new(),
        };
        Ok(ObservedCluster {
            groups,
            templates: templates?,
            instances: instances?,
            config_keys: config_keys?,
            hooks,
            probes: nodes?
                .into_iter()
                .filter_map(|n| n.probe.map(|p| (n.instance_id, p)))
                .collect(),
            alarms: alarms?,
            endpoint_records,
        })
    }

    /// Applies one change. Creating what exists and deleting what is gone both
    /// succeed: the next observation shows the resource either way.
    pub async fn apply(&self, region: &str, change: &Change) -> Result<(), CloudError> {
        let result = match change {
            Change::PutConfig { key, body } => {
                self.objects.put(&self.staging.bucket, key, body.clone()).await
            }
            Change::CreateLaunchTemplate(spec) => self
                .compute
                .create_launch_template(region, spec)
                .await
                .map(|_| ()),
            Change::CreateGroup(spec) => self.scaling.create_group(region, spec).await,
            Change::PutHook { group, hook } => self.scaling.put_hook(region, group, hook).await,
            Change::ResizeGroup { name, size } => {
                self.scaling.resize_group(region, name, *size, *size, *size).await
            }
            Change::DeleteGroup { name } => self.scaling.delete_group(region, name).await,
            Change::DeleteLaunchTemplate { id } => self.compute.delete_launch_template(region, id).await,
            Change::TerminateInstances { ids } => self.compute.terminate_instances(region, ids).await,
            Change::DeleteConfig { keys } => self.objects.delete(&self.staging.bucket, keys).await,
            Change::PutAlarm(alarm) => self.metrics.put_alarm(region, alarm).await,
            Change::DeleteAlarms { names } => self.metrics.delete_alarms(region, names).await,
            Change::UpsertEndpoint { zone, record } => self.dns.upsert(zone, record).await,
            Change::DeleteEndpoint { zone, record } => self.dns.delete(zone, record).await,
        };
        match result {
            Err(e) if matches!(e.kind, CloudErrorKind::AlreadyExists | CloudErrorKind::NotFound) => {
                info!(change = %change.describe(), code = %e.code, "already done by another run");
                Ok(())
            }
            other => other,
        }
    }

    /// Converges one cluster. Returns `Busy` when another run holds it (that run
    /// then goes again: the claim asked it to).
    #[instrument(skip_all, fields(cluster_id = id))]
    pub async fn reconcile_cluster(&self, id: i64) -> Result<Outcome, ReconcileError> {
        let owner = self.run_owner();
        if !self.store.claim_cluster(id, &owner, LEASE_MS).await? {
            return Ok(Outcome::Busy);
        }
        for pass in 1.. {
            // Boxed: the future is large, and it would otherwise live on the caller's stack.
            let result = Box::pin(self.converge_cluster(id, &owner)).await;
            let finally = result.is_err() || pass == MAX_RUNS_PER_LEASE;
            if self.store.release_cluster(id, &owner, finally).await? || finally {
                return result.map(|_| Outcome::Reconciled);
            }
        }
        unreachable!("the runs end at MAX_RUNS_PER_LEASE")
    }

    async fn converge_cluster(&self, id: i64, owner: &str) -> Result<(), ReconcileError> {
        let cluster = self.store.get_cluster(id).await?;
        let env = self.store.get_environment(cluster.environment_id).await?;
        let region = env.region.as_str();
        if env.status_code != crate::domain::EnvironmentStatus::Ready.as_str() && !cluster.delete_requested {
            // A partner or a drill cluster may be written before its environment
            // has its security group: build nothing until it is READY.
            self.store
                .note_waiting(
                    id,
                    owner,
                    &format!("Waiting for environment {} to be READY.", env.id),
                )
                .await?;
            return Ok(());
        }
        let pair = match env.pair_id {
            Some(p) => Some(self.store.get_environment(p).await?),
            None => None,
        };
        let health_checks: Vec<(String, String)> = self
            .store
            .dm_regions()
            .await?
            .into_iter()
            .filter_map(|r| r.health_check_id.map(|id| (r.region, id)))
            .collect();
        let desired = self.desired(&cluster, &env, pair.as_ref(), &health_checks);
        let mut failure = None;
        let mut observed = self.observe(region, &desired, id).await?;
        for _ in 0..MAX_PASSES {
            let changes = plan(&desired, &observed);
            if changes.is_empty() {
                break;
            }
            for change in &changes {
                info!(change = %change.describe(), "applying");
                if let Err(e) = self.apply(region, change).await {
                    if e.is_retryable() {
                        // Leave the operation running; the next run goes on from here.
                        warn!(error = %e, "transient failure; will retry");
                        return Err(e.into());
                    }
                    warn!(error = %e, "permanent failure");
                    failure = Some(format!("{}: {e}", change.describe()));
                    break;
                }
            }
            observed = self.observe(region, &desired, id).await?;
            if failure.is_some() {
                break;
            }
        }
        let ever_ready = cluster.observed_generation > 0;
        let a = assess(&desired, &observed, ever_ready);
        let group = observed.groups.iter().find(|g| g.name == desired.group.name);
        let obs = ClusterObservation {
            status: if failure.is_some() {
                ClusterStatus::Failed
            } else {
                a.status
            },
            message: failure.clone().unwrap_or(a.message),
            asg_name: group.map(|g| g.name.clone()),
            launch_template_id: observed
                .templates
                .iter()
                .find(|t| t.name == desired.template.name)
                .map(|t| t.id.clone()),
            config_uri: observed
                .config_keys
                .contains(&desired.config_key)
                .then(|| format!("s3://{}/{}", self.staging.bucket, desired.config_key)),
            nodes: group
                .map(|g| {
                    g.instances
                        .iter()
                        .map(|i| NewNode {
                            instance_id: i.id.clone(),
                            lifecycle_state: i.lifecycle_state.clone(),
                            availability_zone: i.availability_zone.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            running_services: a.running_services,
            endpoint: desired.endpoint.as_ref().map(|(_, name)| name.clone()),
            observed_generation: a.converged.then_some(cluster.generation),
            steps: a.steps,
            failure,
        };
        self.store.record_cluster(id, owner, &obs).await?;
        info!(status = obs.status.as_str(), "cluster reconciled");
        Ok(())
    }
}
