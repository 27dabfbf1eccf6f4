//! The reconciler's handler, called directly with the events Lambda would deliver:
//! the scheduled sample from `events/` converges what the store asks for, a direct
//! invoke converges one target, and malformed events are refused with a reason
//! and change nothing.

use serde_json::{json, Value};
use shared::cloud::aws::{AwsSettings, S3Adapter};
use shared::config::{Config, S3Location};
use shared::domain::{ClusterSpec, EnvironmentSpec, InstanceSize, ProposedCluster, ProposedEnvironment};
use shared::store::{Store, WriteCtx};

const REGION: &str = "us-west-2";

async fn setup() -> (reconciler::AwsReconciler, Store) {
    let account = emulator::fresh_account();
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let settings = AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((account.clone(), "test".into())),
        max_attempts: None,
    };
    let staging = S3Location::parse(&format!("s3://dm-{account}/staging")).unwrap();
    S3Adapter::new(settings.clone(), REGION)
        .ensure_bucket(&staging.bucket)
        .await
        .unwrap();
    let config = Config {
        db_url: String::new(),
        staging,
        max_nodes: 10,
        default_version: "2.0.0".into(),
        node_ami: "ami-12c6146b".into(),
        node_instance_profile: None,
        aws_endpoint: settings.endpoint.clone(),
        dns_zone: None,
    };
    (
        reconciler::build(store.clone(), &config, settings, REGION, "handler-test".into()),
        store,
    )
}

fn ctx() -> WriteCtx {
    WriteCtx {
        principal: "tester".into(),
        idempotency: None,
    }
}

fn dev_environment() -> EnvironmentSpec {
    EnvironmentSpec::parse(ProposedEnvironment {
        name: "dev".into(),
        region: REGION.into(),
        vpc_id: None,
        subnet_ids: None,
        vpc_cidr: None,
        admin_cidr: None,
        create_security_group: false,
        failover_for: None,
        warm_standby_nodes: None,
    })
    .unwrap()
}

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_scheduled_event_converges_environments_then_clusters() {
    let (r, store) = setup().await;
    let env_id = store
        .create_environment(&ctx(), &dev_environment())
        .await
        .unwrap()
        .target_id;

    let out = reconciler::handle(
        &r,
        &shared::workflows::failover::Gate::single("us-west-2"),
        &sample("schedule-reconcile.json"),
    )
    .await
    .unwrap();
    assert_eq!(out["environments"], 1, "{out}");
    assert_eq!(store.get_environment(env_id).await.unwrap().status_code, "READY");

    let spec = ClusterSpec::parse(
        ProposedCluster {
            name: "a".into(),
            num_nodes: 2,
            cluster_type: "STANDALONE_CLUSTER".into(),
            environment_id: env_id,
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
    let cluster = store.create_cluster(&ctx(), &spec).await.unwrap();
    // The API's wake-up for one cluster.
    let out = reconciler::handle(
        &r,
        &shared::workflows::failover::Gate::single("us-west-2"),
        &json!({ "clusterId": cluster.target_id }),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({ "clusterId": cluster.target_id, "outcome": "reconciled" })
    );
    // Its nodes now wait at the launch hook until their agents are ready (the
    // lifecycle function's part).
    let row = store.get_cluster(cluster.target_id).await.unwrap();
    assert_eq!(
        (row.status_code.as_str(), row.status_message.as_str()),
        ("PROVISIONING", "0 of 2 nodes in service.")
    );
    assert_eq!(
        store.get_operation(cluster.operation_id).await.unwrap().state,
        "RUNNING"
    );
}

#[tokio::test]
async fn malformed_events_are_refused_with_a_reason_and_change_nothing() {
    let (r, store) = setup().await;
    let env_id = store
        .create_environment(&ctx(), &dev_environment())
        .await
        .unwrap()
        .target_id;
    let mut wrong_source = sample("schedule-reconcile.json");
    wrong_source["source"] = json!("aws.ec2");
    for (event, reason) in [
        (json!({}), "unrecognised event"),
        (json!(null), "unrecognised event"),
        (
            json!({ "clusterId": "1" }),
            "clusterId must be a positive whole number",
        ),
        (
            json!({ "environmentId": -4 }),
            "environmentId must be a positive whole number",
        ),
        (json!({ "clusterId": 1, "environmentId": 1 }), "not both"),
        (wrong_source, "Scheduled Event"),
    ] {
        let out = reconciler::handle(
            &r,
            &shared::workflows::failover::Gate::single("us-west-2"),
            &event,
        )
        .await
        .unwrap();
        let got = out["rejected"]
            .as_str()
            .unwrap_or_else(|| panic!("{event}: {out}"));
        assert!(got.contains(reason), "{event}: {got}");
    }
    // Nothing was reconciled: the environment is still waiting.
    assert_eq!(
        store.get_environment(env_id).await.unwrap().status_code,
        "PROVISIONING"
    );
    // A target that does not exist is an error the runtime reports, not a crash.
    assert!(reconciler::handle(
        &r,
        &shared::workflows::failover::Gate::single("us-west-2"),
        &json!({ "clusterId": 999 })
    )
    .await
    .is_err());
}
