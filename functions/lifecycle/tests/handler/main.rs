//! The lifecycle handler, called with the events EventBridge would deliver: the
//! `events/` samples, and malformed events, which are refused with a reason and
//! change nothing.

use shared::workflows::failover::Gate;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
use shared::cloud::aws::{AwsSettings, DynamoFence};
use shared::cloud::{Claimed, Fence};
use shared::config::HealthConfig;
use shared::domain::failover::Leader;
use shared::domain::{
    ClusterSpec, EnvironmentSpec, EnvironmentStatus, InstanceSize, ProposedCluster, ProposedEnvironment,
};
use shared::store::{EnvironmentObservation, Store, WriteCtx};
use shared::time::now_ms;
use shared::workflows::wake::Kick;

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn setup() -> (lifecycle::AwsLifecycle, Store) {
    let (l, store, _) = setup_on(&testkit::sqlite_url()).await;
    (l, store)
}

/// The workflow over a store at `url`, in an emulator account of its own
/// (which it returns).
async fn setup_on(url: &str) -> (lifecycle::AwsLifecycle, Store, AwsSettings) {
    let store = Store::connect(url).await.unwrap();
    let settings = AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((emulator::fresh_account(), "test".into())),
        max_attempts: None,
    };
    let health = HealthConfig::from_env().unwrap();
    let agents = HttpAgents::new(Resolver::Directory(AgentDirectory::new()));
    (
        lifecycle::build(store.clone(), settings.clone(), &health, agents),
        store,
        settings,
    )
}

/// The gate of us-west-2 in a DM whose fence names us-east-1 as active.
async fn standby_gate(settings: &AwsSettings, store: &Store) -> Gate {
    let fence = DynamoFence::new(settings.clone(), "us-west-2", "okera-dm-fence");
    fence.ensure_table(&[], None).await.unwrap();
    let first = Leader::first("us-east-1", now_ms());
    assert_eq!(fence.claim(None, &first).await.unwrap(), Claimed::Won);
    Gate::fenced(Arc::new(fence), store.clone(), "us-west-2")
}

/// A cluster named `analytics` of a READY environment, as the reconciler
/// records them (no AWS resources).
async fn dm_cluster(store: &Store) -> i64 {
    let ctx = WriteCtx {
        principal: "tester".into(),
        idempotency: None,
    };
    let env = store
        .create_environment(
            &ctx,
            &EnvironmentSpec::parse(ProposedEnvironment {
                name: "dev".into(),
                region: "us-west-2".into(),
                vpc_id: None,
                subnet_ids: None,
                vpc_cidr: None,
                admin_cidr: None,
                create_security_group: false,
                failover_for: None,
                warm_standby_nodes: None,
            })
            .unwrap(),
        )
        .await
        .unwrap()
        .target_id;
    // READY, as the reconciler would record it.
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
    store.release_environment(env, "fixture", true).await.unwrap();
    let spec = ClusterSpec::parse(
        ProposedCluster {
            name: "analytics".into(),
            num_nodes: 1,
            cluster_type: "STANDALONE_CLUSTER".into(),
            environment_id: env,
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
    store.create_cluster(&ctx, &spec).await.unwrap().target_id
}

/// A kick that counts the wake-ups it is asked for.
fn counting() -> (Kick, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    (
        Arc::new(move |_| {
            m.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }),
        n,
    )
}

#[tokio::test]
async fn the_samples_for_a_group_the_dm_does_not_own_are_ignored() {
    let (l, store) = setup().await;
    let (kick, kicks) = counting();
    for name in ["lifecycle-launch.json", "lifecycle-terminate.json"] {
        let out = lifecycle::handle(&l, &Gate::single("us-west-2"), Some(&kick), &sample(name))
            .await
            .unwrap();
        assert_eq!(out["outcome"], "not-ours", "{name}: {out}");
    }
    assert_eq!(kicks.load(Ordering::SeqCst), 0);
    assert!(store.all_nodes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_launch_of_an_instance_that_is_gone_is_already_done_and_wakes_the_reconciler() {
    let (l, store, settings) = setup_on(&testkit::sqlite_url()).await;
    let account = settings.credentials.clone().unwrap().0;
    let before = emulator::roles::snapshot(emulator::shared(), &account);
    let id = dm_cluster(&store).await;
    let mut event = sample("lifecycle-launch.json");
    event["detail"]["AutoScalingGroupName"] = format!("okera-{id}-analytics").into();
    let (kick, kicks) = counting();
    let out = lifecycle::handle(&l, &Gate::single("us-west-2"), Some(&kick), &event)
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({ "outcome": "already-done", "clusterId": id, "instanceId": "i-1234567890abcdef0" })
    );
    // Every AWS call it made is one the template's role grants.
    let after = emulator::roles::snapshot(emulator::shared(), &account);
    emulator::roles::assert_role_allows("LifecycleFunction", &before, &after);
    assert_eq!(kicks.load(Ordering::SeqCst), 1);
    assert!(store.all_nodes().await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_events_are_refused_with_a_reason_and_change_nothing() {
    let (l, store) = setup().await;
    let good = sample("lifecycle-launch.json");
    let mut no_token = good.clone();
    no_token["detail"]
        .as_object_mut()
        .unwrap()
        .remove("LifecycleActionToken");
    let mut test_notification = good.clone();
    test_notification["detail"]["LifecycleTransition"] = "autoscaling:TEST_NOTIFICATION".into();
    let cases = [
        (json!({}), "source is missing"),
        (json!([1, 2]), "source is missing"),
        (
            sample("schedule-health-sweep.json"),
            "source must be aws.autoscaling",
        ),
        (no_token, "detail.LifecycleActionToken is missing"),
        (test_notification, "is not a lifecycle transition"),
    ];
    for (event, reason) in cases {
        let out = lifecycle::handle(&l, &Gate::single("us-west-2"), None, &event)
            .await
            .unwrap();
        let got = out["rejected"].as_str().unwrap_or_default();
        assert!(got.contains(reason), "{event}: {out}");
    }
    assert!(store.all_nodes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_standby_region_completes_no_action_and_still_refuses_malformed_events() {
    for (backend, url) in testkit::all_backends().await {
        let (l, store, settings) = setup_on(&url).await;
        let account = settings.credentials.clone().unwrap().0;
        let id = dm_cluster(&store).await;
        let mut event = sample("lifecycle-launch.json");
        event["detail"]["AutoScalingGroupName"] = format!("okera-{id}-analytics").into();
        let gate = standby_gate(&settings, &store).await;
        let (kick, kicks) = counting();
        let out = lifecycle::handle(&l, &gate, Some(&kick), &event).await.unwrap();
        let by = &out["standingBy"];
        assert_eq!(
            (&by["region"], &by["role"], &by["activeRegion"], &by["epoch"]),
            (
                &json!("us-west-2"),
                &json!("STANDBY"),
                &json!("us-east-1"),
                &json!(1)
            ),
            "{backend}: {out}"
        );
        let completions = || {
            emulator::shared()
                .request_count(Some(&account), "autoscaling", "CompleteLifecycleAction")
                .unwrap()
        };
        assert_eq!(completions(), 0, "{backend}: the action was not completed");
        assert_eq!(kicks.load(Ordering::SeqCst), 0, "{backend}");
        assert!(store.all_nodes().await.unwrap().is_empty(), "{backend}");
        let mut no_token = event.clone();
        no_token["detail"]
            .as_object_mut()
            .unwrap()
            .remove("LifecycleActionToken");
        let refused = lifecycle::handle(&l, &gate, Some(&kick), &no_token)
            .await
            .unwrap();
        assert!(
            refused["rejected"]
                .as_str()
                .is_some_and(|s| s.contains("detail.LifecycleActionToken is missing")),
            "{backend}: {refused}"
        );
        // The active region's function completes it.
        let out = lifecycle::handle(&l, &Gate::single("us-west-2"), Some(&kick), &event)
            .await
            .unwrap();
        assert_eq!(out["outcome"], "already-done", "{backend}: {out}");
        assert_eq!(completions(), 1, "{backend}");
    }
}
