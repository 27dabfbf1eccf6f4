//! The DM's Aurora global database through the AWS SDK: who the writer is, and
//! its promotion (switchover when planned, failover with data loss when not).
//! The emulator's `rds_global_clusters` plugin implements both, which moto lacks.

use aws_sdk_rds::Client;

use super::{classify, AwsSettings, PerRegion};
use crate::cloud::{CloudError, CloudErrorKind, CloudResult, DbMember, GlobalDatabase, GlobalDb};

/// RDS clients, one per region.
pub struct RdsAdapter {
    clients: PerRegion<Client>,
}

/// The region of an RDS ARN (`arn:aws:rds:us-west-2:123456789012:cluster:dm`).
pub fn arn_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() >= 6 && parts[0] == "arn" && parts[2] == "rds").then(|| parts[3])
}

fn missing(op: &'static str, what: &str) -> CloudError {
    CloudError {
        op,
        kind: CloudErrorKind::Permanent,
        code: "UnexpectedAnswer".into(),
        message: format!("the answer has no {what}"),
        source: None,
    }
}

impl RdsAdapter {
    pub fn new(settings: AwsSettings) -> Self {
        RdsAdapter {
            clients: PerRegion::new(settings, |config, _| Client::new(config)),
        }
    }

    /// Makes the global database `global_id` with its writer in `regions[0]` and
    /// a secondary cluster in each other region (dm-local and tests do this; in
    /// AWS the template does). Clusters that exist are kept.
    pub async fn ensure_global(&self, global_id: &str, regions: &[String]) -> CloudResult<GlobalDb> {
        let Some((first, others)) = regions.split_first() else {
            return Err(missing("CreateGlobalCluster", "region"));
        };
        if let Ok(found) = self.describe(first, global_id).await {
            return Ok(found);
        }
        let cluster = |region: &str| format!("{global_id}-{region}");
        let created = self
            .clients
            .get(first)
            .await
            .create_global_cluster()
            .global_cluster_identifier(global_id)
            .engine("aurora-mysql")
            .send()
            .await;
        if let Err(e) = created {
            let e = classify("CreateGlobalCluster", e);
            if e.code != "GlobalClusterAlreadyExistsFault" {
                return Err(e);
            }
        }
        // The first member, with its credentials, is the writer; the others
        // are secondaries.
        for (i, region) in std::iter::once(first).chain(others).enumerate() {
            let mut create = self
                .clients
                .get(region)
                .await
                .create_db_cluster()
                .db_cluster_identifier(cluster(region))
                .engine("aurora-mysql")
                .global_cluster_identifier(global_id);
            if i == 0 {
                create = create
                    .master_username("okera")
                    .master_user_password("not-a-secret-emulated");
            }
            if let Err(e) = create.send().await {
                let e = classify("CreateDBCluster", e);
                if e.code != "DBClusterAlreadyExistsFault" {
                    return Err(e);
                }
            }
        }
        self.describe(first, global_id).await
    }
}

impl GlobalDatabase for RdsAdapter {
    async fn describe(&self, region: &str, global_id: &str) -> CloudResult<GlobalDb> {
        let out = self
            .clients
            .get(region)
            .await
            .describe_global_clusters()
            .global_cluster_identifier(global_id)
            .send()
            .await
            .map_err(|e| classify("DescribeGlobalClusters", e))?;
        let gc = out
            .global_clusters()
            .first()
            .ok_or_else(|| missing("DescribeGlobalClusters", "global cluster"))?;
        Ok(GlobalDb {
            id: gc.global_cluster_identifier().unwrap_or(global_id).to_owned(),
            status: gc.status().unwrap_or_default().to_owned(),
            members: gc
                .global_cluster_members()
                .iter()
                .filter_map(|m| {
                    let arn = m.db_cluster_arn()?.to_owned();
                    Some(DbMember {
                        region: arn_region(&arn)?.to_owned(),
                        writer: m.is_writer().unwrap_or(false),
                        synchronization: m.synchronization_status().map(|s| s.as_str().to_owned()),
                        arn,
                    })
                })
                .collect(),
            promoting: gc
                .failover_state()
                .and_then(|f| f.to_db_cluster_arn())
                .map(str::to_owned),
        })
    }

    async fn promote(&self, region: &str, global_id: &str, target: &str, planned: bool) -> CloudResult<()> {
        let client = self.clients.get(region).await;
        if planned {
            client
                .switchover_global_cluster()
                .global_cluster_identifier(global_id)
                .target_db_cluster_identifier(target)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("SwitchoverGlobalCluster", e))
        } else {
            client
                .failover_global_cluster()
                .global_cluster_identifier(global_id)
                .target_db_cluster_identifier(target)
                .allow_data_loss(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("FailoverGlobalCluster", e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::arn_region;

    #[test]
    fn the_region_of_a_cluster_arn() {
        assert_eq!(
            arn_region("arn:aws:rds:us-west-2:123456789012:cluster:okera-dm-us-west-2"),
            Some("us-west-2")
        );
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
        assert_eq!(arn_region("okera-dm"), None);
    }
}
