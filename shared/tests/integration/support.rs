//! Shared set-up: a store per test, AWS settings for a fresh emulator account, a
//! reconciler over the real adapters, and a READY environment.

use shared::cloud::aws::{AutoScalingAdapter, AwsSettings, Ec2Adapter, S3Adapter};
use shared::config::S3Location;
use shared::domain::{ClusterSpec, EnvironmentSpec, InstanceSize, ProposedCluster, ProposedEnvironment};
use shared::store::{Store, WriteCtx};
use shared::workflows::reconcile::Reconciler;

pub type AwsReconciler = Reconciler<Ec2Adapter, AutoScalingAdapter, S3Adapter>;

pub const REGION: &str = "us-west-2";

pub fn ctx() -> WriteCtx {
    WriteCtx {
        principal: "tester".into(),
        idempotency: None,
    }
}

pub fn keyed(key: &str, hash: &str) -> WriteCtx {
    WriteCtx {
        principal: "tester".into(),
        idempotency: Some((key.into(), hash.into())),
    }
}

/// A test's own emulator account: its AWS state is invisible to other tests.
pub fn account() -> String {
    emulator::fresh_account()
}

pub fn settings(account: &str, max_attempts: Option<u32>) -> AwsSettings {
    AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((account.to_owned(), "test".into())),
        max_attempts,
    }
}

/// A reconciler over the real adapters for `account`, with its staging bucket made.
pub async fn reconciler(store: &Store, account: &str, owner: &str) -> AwsReconciler {
    reconciler_with(store, account, owner, None).await
}

pub async fn reconciler_with(
    store: &Store,
    account: &str,
    owner: &str,
    max_attempts: Option<u32>,
) -> AwsReconciler {
    let s = settings(account, max_attempts);
    let objects = S3Adapter::new(s.clone(), REGION);
    // Bucket names are global in the emulator, as in AWS: one per account.
    let staging = S3Location::parse(&format!("s3://dm-{account}/staging")).unwrap();
    objects.ensure_bucket(&staging.bucket).await.unwrap();
    Reconciler {
        store: store.clone(),
        compute: Ec2Adapter::new(s.clone()),
        scaling: AutoScalingAdapter::new(s),
        objects,
        staging,
        node_ami: "ami-12c6146b".into(),
        node_instance_profile: None,
        owner: owner.into(),
    }
}

pub fn environment_spec(name: &str, security_group: bool) -> EnvironmentSpec {
    EnvironmentSpec::parse(ProposedEnvironment {
        name: name.into(),
        region: REGION.into(),
        vpc_id: None,
        subnet_ids: None,
        vpc_cidr: Some("10.20.0.0/16".into()),
        admin_cidr: Some("203.0.113.0/24".into()),
        create_security_group: security_group,
    })
    .unwrap()
}

/// An environment made READY by the reconciler against the emulator.
pub async fn ready_environment(r: &AwsReconciler, name: &str, security_group: bool) -> i64 {
    let env = r
        .store
        .create_environment(&ctx(), &environment_spec(name, security_group))
        .await
        .unwrap()
        .target_id;
    r.reconcile_environment(env).await.unwrap();
    let row = r.store.get_environment(env).await.unwrap();
    assert_eq!(row.status_code, "READY", "{}", row.status_message);
    env
}

pub fn cluster_spec(env: i64, name: &str, nodes: i64) -> ClusterSpec {
    ClusterSpec::parse(
        ProposedCluster {
            name: name.into(),
            num_nodes: nodes,
            cluster_type: "STANDALONE_CLUSTER".into(),
            environment_id: env,
            instance_type: None,
            storage_gb: None,
            tags: [("team".to_owned(), "data".to_owned())].into(),
            description: None,
            termination_protection_enabled: false,
            version: None,
        },
        100,
        "2.0.0",
        |_| {
            Some(InstanceSize {
                vcpus: 2,
                memory_mib: 8192,
            })
        },
    )
    .unwrap()
}

/// Marks an environment READY as the reconciler would, without AWS (store tests).
pub async fn mark_ready(store: &Store, env: i64) {
    use shared::domain::EnvironmentStatus;
    use shared::store::EnvironmentObservation;
    assert!(store.claim_environment(env, "fixture", 60_000).await.unwrap());
    store
        .record_environment(
            env,
            "fixture",
            &EnvironmentObservation {
                vpc_id: Some("vpc-1".into()),
                subnet_ids: vec!["subnet-1".into()],
                vpc_cidr: Some("10.0.0.0/16".into()),
                security_group_id: None,
                status: EnvironmentStatus::Ready,
                message: "ready".into(),
                observed_generation: Some(1),
                steps: vec![],
                failure: None,
            },
        )
        .await
        .unwrap();
    store.release_environment(env, "fixture").await.unwrap();
}
