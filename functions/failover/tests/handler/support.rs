//! Two DM regions over one emulator account and one database: us-east-1, whose
//! database is the writer, and us-west-2, whose store is read-only until a
//! promotion makes its cluster the writer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use shared::cloud::aws::{
    AwsSettings, CloudWatchAdapter, DynamoFence, RdsAdapter, Route53Adapter, S3Adapter,
};
use shared::cloud::{Dns, Fence, Metrics};
use shared::config::S3Location;
use shared::domain::failover::{FailoverRequest, Leader};
use shared::domain::{
    ClusterSpec, ClusterStatus, EnvironmentSpec, EnvironmentStatus, InstanceSize, ProposedCluster,
    ProposedEnvironment,
};
use shared::store::{
    ClusterObservation, EnvironmentObservation, RunbookKind, RunbookRow, Store, WriteCtx, WriterWatch,
};
use shared::workflows::failover::{follow_writer, FailoverSettings};
use shared::workflows::kill::KillSwitch;
use shared::workflows::runbook::{DnsZone, RunbookSettings};

pub const A: &str = "us-east-1";
pub const B: &str = "us-west-2";
const GLOBAL: &str = "okera-dm";
const TABLE: &str = "okera-dm-fence";

pub fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub struct World {
    pub backend: &'static str,
    aws: AwsSettings,
    stores: BTreeMap<&'static str, Store>,
    zone: DnsZone,
    staging: S3Location,
    /// The metric lines the functions emitted.
    pub lines: Arc<Mutex<Vec<String>>>,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// A world on each backend, each in its own emulator account.
pub async fn worlds() -> Vec<World> {
    let mut out = Vec::new();
    for (backend, url) in testkit::all_backends().await {
        out.push(World::new(backend, &url).await);
    }
    out
}

impl World {
    /// Every request of this world's emulator account so far, by action.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let account = &self.aws.credentials.as_ref().unwrap().0;
        emulator::roles::snapshot(emulator::shared(), account)
    }

    async fn new(backend: &'static str, url: &str) -> World {
        let account = emulator::fresh_account();
        let aws = AwsSettings {
            endpoint: Some(emulator::shared().endpoint().to_owned()),
            credentials: Some((account.clone(), "test".into())),
            max_attempts: None,
        };
        // MRSC: a replica in each DM region and a witness.
        DynamoFence::new(aws.clone(), A, TABLE)
            .ensure_table(&[B.into()], Some("us-east-2"))
            .await
            .unwrap();
        let rds = RdsAdapter::new(aws.clone());
        let gdb = rds.ensure_global(GLOBAL, &[A.into(), B.into()]).await.unwrap();
        assert_eq!(gdb.writer().map(|w| w.region.as_str()), Some(A));
        let watch = WriterWatch::new(Some(A));
        let follower = tokio::spawn(follow_writer(
            rds,
            A.to_owned(),
            GLOBAL.into(),
            watch.clone(),
            Duration::from_millis(25),
        ));
        let mut stores = BTreeMap::new();
        for r in [A, B] {
            stores.insert(r, Store::connect_regional(url, r, watch.clone()).await.unwrap());
        }
        let zone = DnsZone {
            id: Route53Adapter::new(aws.clone())
                .ensure_zone("failover.test")
                .await
                .unwrap(),
            name: "failover.test".into(),
        };
        let staging = S3Location::parse(&format!("s3://dm-{account}/staging")).unwrap();
        S3Adapter::new(aws.clone(), A)
            .ensure_bucket(&staging.bucket)
            .await
            .unwrap();
        World {
            backend,
            aws,
            stores,
            zone,
            staging,
            lines: Arc::default(),
            follower,
        }
    }

    pub fn store(&self, region: &str) -> &Store {
        &self.stores[region]
    }

    fn settings(&self, region: &str) -> FailoverSettings {
        let other = if region == A { B } else { A };
        FailoverSettings {
            region: region.to_owned(),
            dm_regions: vec![A.into(), B.into()],
            fence_table: TABLE.into(),
            global_db: GLOBAL.into(),
            db_cluster: format!("{GLOBAL}-{region}"),
            health_alarms: [(format!("okera-dm-region-health-{other}"), other.to_owned())].into(),
            automatic: true,
            max_lag_ms: 60_000,
            promotion_timeout_ms: 20_000,
            poll_ms: 20,
            heartbeat_max_age_s: 30.0,
        }
    }

    /// The failover function of `region`, as its `main` builds it, with runs
    /// that give a runbook back at its first wait.
    pub fn function(&self, region: &str) -> failover::AwsFailover {
        let lines = self.lines.clone();
        failover::build(failover::Parts {
            store: self.store(region).clone(),
            aws: self.aws.clone(),
            settings: self.settings(region),
            zone: Some(self.zone.clone()),
            staging: self.staging.clone(),
            kick: Arc::new(|_| Box::pin(async {})),
            replicas: self
                .stores
                .iter()
                .filter(|(r, _)| **r != region)
                .map(|(r, s)| ((*r).to_owned(), s.clone()))
                .collect(),
            runbook_settings: RunbookSettings {
                lease_ms: 300,
                budget: Duration::ZERO,
                poll_ms: 20,
                ..Default::default()
            },
            owner: format!("handler-test-{region}"),
            kill: KillSwitch::off(),
            emit: Arc::new(move |line| lines.lock().unwrap().push(line.to_owned())),
        })
    }

    pub fn fence(&self) -> DynamoFence {
        DynamoFence::new(self.aws.clone(), A, TABLE)
    }

    pub async fn leader(&self) -> Option<Leader> {
        self.fence().leader().await.unwrap()
    }

    pub async fn requests(&self) -> Vec<FailoverRequest> {
        self.fence().requests().await.unwrap()
    }

    /// Every failover and drill runbook, newest first.
    pub async fn region_runbooks(&self) -> Vec<RunbookRow> {
        let mut out = Vec::new();
        for kind in RunbookKind::REGION {
            out.extend(self.store(A).region_runbooks(kind, 10).await.unwrap());
        }
        out
    }

    /// The serving alarms in `region`, as CloudWatch lists them.
    pub async fn serving_alarms(&self, region: &str) -> Vec<String> {
        CloudWatchAdapter::new(self.aws.clone())
            .alarms_with_prefix(region, "okera-dm-serving-")
            .await
            .unwrap()
    }
}

fn ctx() -> WriteCtx {
    WriteCtx {
        principal: "tester".into(),
        idempotency: None,
    }
}

impl World {
    /// A READY environment in us-east-1 with a READY cluster of one node, and
    /// its partner environment in us-west-2 (cold standby), as the reconciler
    /// would record them (no AWS resources): what a drill copies.
    pub async fn serving_cluster(&self) -> i64 {
        let store = self.store(A);
        let environment = |name: &str, region: &str, partner: Option<i64>| {
            EnvironmentSpec::parse(ProposedEnvironment {
                name: name.into(),
                region: region.into(),
                vpc_id: None,
                subnet_ids: None,
                vpc_cidr: Some("10.20.0.0/16".into()),
                admin_cidr: None,
                create_security_group: false,
                failover_for: partner,
                warm_standby_nodes: partner.map(|_| 0),
            })
            .unwrap()
        };
        let ready = |id: i64| async move {
            assert!(store.claim_environment(id, "fixture", 60_000).await.unwrap());
            let observed = EnvironmentObservation {
                vpc_id: Some(format!("vpc-{id}")),
                subnet_ids: vec![format!("subnet-{id}")],
                vpc_cidr: Some("10.20.0.0/16".into()),
                security_group_id: None,
                status: EnvironmentStatus::Ready,
                message: "ready".into(),
                observed_generation: Some(1),
                steps: vec![],
                failure: None,
            };
            store.record_environment(id, "fixture", &observed).await.unwrap();
            store.release_environment(id, "fixture", true).await.unwrap();
        };
        let prod = store
            .create_environment(&ctx(), &environment("prod", A, None))
            .await
            .unwrap()
            .target_id;
        ready(prod).await;
        let standby = store
            .create_environment(&ctx(), &environment("prod-b", B, Some(prod)))
            .await
            .unwrap()
            .target_id;
        ready(standby).await;
        let spec = ClusterSpec::parse(
            ProposedCluster {
                name: "sales".into(),
                num_nodes: 1,
                cluster_type: "STANDALONE_CLUSTER".into(),
                environment_id: prod,
                instance_type: None,
                storage_gb: None,
                tags: Default::default(),
                description: None,
                termination_protection_enabled: false,
                auto_repair_enabled: None,
                version: None,
            },
            10,
            "2.0.0",
            |_| {
                Some(InstanceSize {
                    vcpus: 2,
                    memory_mib: 8192,
                })
            },
        )
        .unwrap();
        let id = store.create_cluster(&ctx(), &spec).await.unwrap().target_id;
        assert!(store.claim_cluster(id, "fixture", 60_000).await.unwrap());
        let observed = ClusterObservation {
            status: ClusterStatus::Ready,
            message: "All services running.".into(),
            asg_name: Some(format!("okera-{id}-sales")),
            launch_template_id: None,
            config_uri: None,
            nodes: vec![],
            running_services: Some(7),
            endpoint: None,
            observed_generation: Some(1),
            steps: vec![],
            failure: None,
        };
        store.record_cluster(id, "fixture", &observed).await.unwrap();
        store.release_cluster(id, "fixture", true).await.unwrap();
        id
    }
}
