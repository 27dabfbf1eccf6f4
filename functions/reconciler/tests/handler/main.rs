//! The reconciler's handler, called directly with the events Lambda would deliver:
//! the scheduled sample from `events/` converges what the store asks for, a direct
//! invoke converges one target, and malformed events are refused with a reason
//! and change nothing.

use std::sync::Arc;

use serde_json::{json, Value};
use shared::cloud::aws::{AwsSettings, DynamoFence, S3Adapter};
use shared::cloud::{Claimed, Fence, Scaling};
use shared::config::{Config, S3Location};
use shared::domain::failover::Leader;
use shared::domain::{ClusterSpec, EnvironmentSpec, InstanceSize, ProposedCluster, ProposedEnvironment};
use shared::store::{Store, WriteCtx};
use shared::time::now_ms;
use shared::workflows::failover::Gate;

const REGION: &str = "us-west-2";

async fn setup() -> (reconciler::AwsReconciler, Store) {
    let (r, store, _) = setup_on(&testkit::sqlite_url()).await;
    (r, store)
}

/// The reconciler over a store at `url`, in an emulator account of its own
/// (whose settings it returns).
async fn setup_on(url: &str) -> (reconciler::AwsReconciler, Store, AwsSettings) {
    let account = emulator::fresh_account();
    let store = Store::connect(url).await.unwrap();
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
        reconciler::build(
            store.clone(),
            &config,
            settings.clone(),
            REGION,
            "handler-test".into(),
        ),
        store,
        settings,
    )
}

/// The gate of us-west-2 in a DM whose fence names us-east-1 as active.
async fn standby_gate(settings: &AwsSettings, store: &Store) -> Gate {
    let fence = DynamoFence::new(settings.clone(), REGION, "okera-dm-fence");
    fence.ensure_table(&[], None).await.unwrap();
    let first = Leader::first("us-east-1", now_ms());
    assert_eq!(fence.claim(None, &first).await.unwrap(), Claimed::Won);
    Gate::fenced(Arc::new(fence), store.clone(), REGION)
}

fn assert_standing_by(out: &Value, what: &str) {
    let by = &out["standingBy"];
    assert_eq!(
        (&by["region"], &by["role"], &by["activeRegion"], &by["epoch"]),
        (&json!(REGION), &json!("STANDBY"), &json!("us-east-1"), &json!(1)),
        "{what}: {out}"
    );
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

/// A cluster of two nodes named `a` in `env_id`.
fn cluster_spec(env_id: i64) -> ClusterSpec {
    ClusterSpec::parse(
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
    .unwrap()
}

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_scheduled_event_converges_environments_then_clusters() {
    let (r, store, settings) = setup_on(&testkit::sqlite_url()).await;
    // Every AWS call from here on must be one the template's role grants.
    let account = settings.credentials.clone().unwrap().0;
    let calls = || emulator::roles::snapshot(emulator::shared(), &account);
    let before = calls();
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

    let spec = cluster_spec(env_id);
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
    emulator::roles::assert_role_allows("ReconcilerFunction", &before, &calls());
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

#[tokio::test]
async fn a_standby_region_converges_nothing_and_still_refuses_malformed_events() {
    for (backend, url) in testkit::all_backends().await {
        let (r, store, settings) = setup_on(&url).await;
        let env_id = store
            .create_environment(&ctx(), &dev_environment())
            .await
            .unwrap()
            .target_id;
        r.reconcile_environment(env_id).await.unwrap();
        let cluster = store
            .create_cluster(&ctx(), &cluster_spec(env_id))
            .await
            .unwrap()
            .target_id;
        let before = store.get_cluster(cluster).await.unwrap();
        let gate = standby_gate(&settings, &store).await;
        for event in [sample("schedule-reconcile.json"), json!({ "clusterId": cluster })] {
            let out = reconciler::handle(&r, &gate, &event).await.unwrap();
            assert_standing_by(&out, &format!("{backend}: {event}"));
        }
        let refused = reconciler::handle(&r, &gate, &json!({ "clusterId": "1" }))
            .await
            .unwrap();
        assert!(
            refused["rejected"]
                .as_str()
                .is_some_and(|s| s.contains("clusterId must be a positive whole number")),
            "{backend}: {refused}"
        );
        // Nothing was built: the cluster is as it was, and has no group.
        assert_eq!(store.get_cluster(cluster).await.unwrap(), before, "{backend}");
        let group = vec![format!("okera-{cluster}-a")];
        assert!(
            r.scaling.groups_named(REGION, &group).await.unwrap().is_empty(),
            "{backend}"
        );
        // The same schedule in the active region builds it.
        let out = reconciler::handle(&r, &Gate::single(REGION), &sample("schedule-reconcile.json"))
            .await
            .unwrap();
        assert_eq!(out["clusters"], 1, "{backend}: {out}");
        assert_eq!(
            r.scaling.groups_named(REGION, &group).await.unwrap().len(),
            1,
            "{backend}: {out}"
        );
    }
}
