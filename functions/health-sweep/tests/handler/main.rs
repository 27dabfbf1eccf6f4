//! The health-sweep handler, called with the schedule's sample from `events/`:
//! it sweeps, hands out one metric line per cluster and one per region, and
//! refuses anything that is not its schedule.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
use shared::cloud::aws::{AwsSettings, DynamoFence};
use shared::cloud::{Claimed, Fence};
use shared::config::HealthConfig;
use shared::domain::failover::Leader;
use shared::domain::{ClusterSpec, ClusterStatus, EnvironmentSpec, EnvironmentStatus, InstanceSize};
use shared::store::{ClusterObservation, EnvironmentObservation, Store, WriteCtx};
use shared::time::now_ms;
use shared::workflows::failover::Gate;

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn setup() -> (health_sweep::AwsSweeper, Store) {
    let (sweeper, store, _) = setup_on(&testkit::sqlite_url()).await;
    (sweeper, store)
}

/// The sweep over a store at `url`, in an emulator account of its own (whose
/// settings it returns).
async fn setup_on(url: &str) -> (health_sweep::AwsSweeper, Store, AwsSettings) {
    let store = Store::connect(url).await.unwrap();
    let settings = AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((emulator::fresh_account(), "test".into())),
        max_attempts: None,
    };
    let health = HealthConfig::from_env().unwrap();
    let agents = HttpAgents::new(Resolver::Directory(AgentDirectory::new()));
    (
        health_sweep::build(store.clone(), settings.clone(), &health, agents, "test".into()),
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

/// A cluster the reconciler has recorded READY, whose group does not exist.
async fn steady_cluster_without_a_group(store: &Store) -> i64 {
    let ctx = WriteCtx {
        principal: "tester".into(),
        idempotency: None,
    };
    let env = store
        .create_environment(
            &ctx,
            &EnvironmentSpec::parse(
                serde_json::from_value(json!({"name": "dev", "region": "us-west-2"})).unwrap(),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .target_id;
    assert!(store.claim_environment(env, "fixture", 60_000).await.unwrap());
    let ready_env = EnvironmentObservation {
        vpc_id: Some("vpc-1".into()),
        subnet_ids: vec!["subnet-1".into()],
        vpc_cidr: None,
        security_group_id: None,
        status: EnvironmentStatus::Ready,
        message: "ready".into(),
        observed_generation: Some(1),
        steps: vec![],
        failure: None,
    };
    store
        .record_environment(env, "fixture", &ready_env)
        .await
        .unwrap();
    let proposed = serde_json::from_value(
        json!({"name": "a", "numNodes": 1, "type": "STANDALONE_CLUSTER", "environmentId": env}),
    )
    .unwrap();
    let size = |_: &str| {
        Some(InstanceSize {
            vcpus: 2,
            memory_mib: 8192,
        })
    };
    let spec = ClusterSpec::parse(proposed, 10, "2.0.0", size).unwrap();
    let id = store.create_cluster(&ctx, &spec).await.unwrap().target_id;
    assert!(store.claim_cluster(id, "fixture", 60_000).await.unwrap());
    let ready = ClusterObservation {
        status: ClusterStatus::Ready,
        message: "All services running.".into(),
        asg_name: Some(format!("okera-{id}-a")),
        launch_template_id: None,
        config_uri: None,
        nodes: vec![],
        running_services: Some(7),
        endpoint: None,
        observed_generation: Some(1),
        steps: vec![],
        failure: None,
    };
    store.record_cluster(id, "fixture", &ready).await.unwrap();
    store.release_cluster(id, "fixture", true).await.unwrap();
    id
}

#[tokio::test]
async fn the_scheduled_sample_runs_a_sweep_and_hands_out_its_metric_lines() {
    let (sweeper, store, settings) = setup_on(&testkit::sqlite_url()).await;
    let account = settings.credentials.clone().unwrap().0;
    let before = emulator::roles::snapshot(emulator::shared(), &account);
    let id = steady_cluster_without_a_group(&store).await;
    let lines = Mutex::new(Vec::new());
    let out = health_sweep::handle(
        &sweeper,
        &shared::workflows::failover::Gate::single("us-west-2"),
        &sample("schedule-health-sweep.json"),
        &|l| lines.lock().unwrap().push(l.to_owned()),
    )
    .await
    .unwrap();
    // Every AWS call it made is one the template's role grants.
    let after = emulator::roles::snapshot(emulator::shared(), &account);
    emulator::roles::assert_role_allows("HealthSweepFunction", &before, &after);
    assert_eq!(
        (&out["skipped"], &out["clusters"], &out["nodes"]),
        (&json!(false), &json!(1), &json!(0)),
        "{out}"
    );
    let row = store.get_cluster(id).await.unwrap();
    assert_eq!(
        (row.status_code.as_str(), row.status_message.as_str()),
        ("DOWN", "The cluster has no nodes.")
    );
    let lines: Vec<Value> = lines
        .into_inner()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "one line for the cluster, one for the region: {lines:?}"
    );
    assert_eq!(
        (&lines[0]["ClusterId"], &lines[0]["ClusterReady"]),
        (&json!(id.to_string()), &json!(0))
    );
    assert_eq!(
        (&lines[1]["Clusters"], &lines[1]["ClustersReady"]),
        (&json!(1), &json!(0))
    );
}

#[tokio::test]
async fn anything_but_the_schedule_is_refused_with_a_reason() {
    let (sweeper, _store) = setup().await;
    for event in [
        json!({}),
        json!([]),
        sample("lifecycle-launch.json"),
        json!({ "detail-type": "Scheduled Event", "source": "aws.ec2" }),
    ] {
        let out = health_sweep::handle(
            &sweeper,
            &shared::workflows::failover::Gate::single("us-west-2"),
            &event,
            &|_| panic!("no metrics for a refused event"),
        )
        .await
        .unwrap();
        let reason = out["rejected"].as_str().unwrap_or_default();
        assert!(
            reason.contains("expected an EventBridge \"Scheduled Event\""),
            "{event}: {out}"
        );
    }
}

#[tokio::test]
async fn a_standby_region_sweeps_nothing_and_still_refuses_malformed_events() {
    for (backend, url) in testkit::all_backends().await {
        let (sweeper, store, settings) = setup_on(&url).await;
        let id = steady_cluster_without_a_group(&store).await;
        let before = store.get_cluster(id).await.unwrap();
        let gate = standby_gate(&settings, &store).await;
        let out = health_sweep::handle(&sweeper, &gate, &sample("schedule-health-sweep.json"), &|_| {
            panic!("no metrics from a standby region")
        })
        .await
        .unwrap();
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
        // No status written: the cluster would be DOWN after a sweep.
        assert_eq!(store.get_cluster(id).await.unwrap(), before, "{backend}");
        let refused = health_sweep::handle(&sweeper, &gate, &json!({}), &|_| {
            panic!("no metrics for a refused event")
        })
        .await
        .unwrap();
        assert!(
            refused["rejected"]
                .as_str()
                .is_some_and(|s| s.contains("expected an EventBridge \"Scheduled Event\"")),
            "{backend}: {refused}"
        );
    }
}
