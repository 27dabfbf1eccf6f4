//! The runbooks function's handler, called directly with the events Lambda
//! would deliver: the scheduled sample and a direct invoke from `events/`, and
//! malformed events, which are refused with a reason and change nothing. The
//! engine itself is tested in `shared/tests/integration/runbooks.rs`.

use std::sync::Arc;

use serde_json::{json, Value};
use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
use shared::cloud::aws::{AwsSettings, DynamoFence};
use shared::cloud::{Claimed, Fence};
use shared::domain::failover::Leader;
use shared::domain::{ClusterSpec, EnvironmentSpec, EnvironmentStatus, InstanceSize};
use shared::store::{EnvironmentObservation, RunbookKind, Store, UpgradeRequest, WriteCtx};
use shared::time::now_ms;
use shared::workflows::failover::Gate;

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn runner(store: &Store) -> runbooks::AwsRunner {
    runner_in(store, emulator::fresh_account())
}

fn settings(account: &str) -> AwsSettings {
    AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((account.to_owned(), "test".into())),
        max_attempts: None,
    }
}

fn runner_in(store: &Store, account: String) -> runbooks::AwsRunner {
    runbooks::build(
        store.clone(),
        settings(&account),
        "us-west-2",
        None,
        HttpAgents::new(Resolver::Directory(AgentDirectory::new())),
        "okera-dm-reconciler".into(),
        "handler-test".into(),
    )
}

/// The gate of us-west-2 in a DM whose fence, in `account`, names us-east-1
/// as active.
async fn standby_gate(account: &str, store: &Store) -> Gate {
    let fence = DynamoFence::new(settings(account), "us-west-2", "okera-dm-fence");
    fence.ensure_table(&[], None).await.unwrap();
    let first = Leader::first("us-east-1", now_ms());
    assert_eq!(fence.claim(None, &first).await.unwrap(), Claimed::Won);
    Gate::fenced(Arc::new(fence), store.clone(), "us-west-2")
}

/// An upgrade of a cluster, submitted and due now (forced: the cluster is
/// still PROVISIONING, and nothing exists in AWS).
async fn due_upgrade(store: &Store) -> i64 {
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
    // READY, as the reconciler would record it: clusters need one.
    assert!(store.claim_environment(env, "fixture", 60_000).await.unwrap());
    let ready = EnvironmentObservation {
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
    store.record_environment(env, "fixture", &ready).await.unwrap();
    store.release_environment(env, "fixture", true).await.unwrap();
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
    let req = UpgradeRequest {
        version: "2.1.0".into(),
        components: Default::default(),
        force: true,
        ready_timeout_ms: 60_000,
        rollback_window_ms: 60_000,
    };
    store
        .submit_upgrade(&ctx, id, &req, &shared::workflows::runbook::upgrade_steps())
        .await
        .unwrap()
        .operation_id
}

#[tokio::test]
async fn the_samples_are_handled_and_malformed_events_are_refused_on_both_backends() {
    for (backend, url) in testkit::all_backends().await {
        let store = Store::connect(&url).await.unwrap();
        let r = runner(&store);
        let gate = shared::workflows::failover::Gate::single("us-west-2");
        let scheduled = runbooks::handle(&r, &gate, &sample("schedule-runbooks.json"))
            .await
            .unwrap();
        assert_eq!(
            scheduled,
            json!({"runbooks": 0, "finished": 0, "errors": []}),
            "{backend}"
        );
        // The sample names runbook 7, which this store does not have: nothing to run.
        let one = runbooks::handle(&r, &gate, &sample("invoke-runbook.json"))
            .await
            .unwrap();
        assert_eq!(one, json!({"runbookId": 7, "outcome": "busy"}), "{backend}");
        for bad in [
            json!({}),
            json!({"runbookId": -1}),
            json!({"runbookId": 7, "clusterId": 1}),
            json!({"detail-type": "Scheduled Event", "source": "aws.s3"}),
            json!("run"),
        ] {
            let answer = runbooks::handle(&r, &gate, &bad).await.unwrap();
            let reason = answer["rejected"].as_str().unwrap_or_default();
            assert!(!reason.is_empty(), "{backend}: {bad} was not rejected: {answer}");
        }
        assert_eq!(
            store
                .due_runbooks(i64::MAX, &shared::store::RunbookKind::CLUSTER)
                .await
                .unwrap(),
            Vec::<i64>::new()
        );
    }
}

#[tokio::test]
async fn a_standby_region_runs_no_due_runbook_and_still_refuses_malformed_events() {
    for (backend, url) in testkit::all_backends().await {
        let store = Store::connect(&url).await.unwrap();
        let account = emulator::fresh_account();
        let r = runner_in(&store, account.clone());
        let op = due_upgrade(&store).await;
        assert_eq!(
            store.due_runbooks(now_ms(), &RunbookKind::CLUSTER).await.unwrap(),
            [op],
            "{backend}"
        );
        let before = store.get_runbook(op).await.unwrap().unwrap();
        let gate = standby_gate(&account, &store).await;
        for event in [sample("schedule-runbooks.json"), json!({"runbookId": op})] {
            let out = runbooks::handle(&r, &gate, &event).await.unwrap();
            let by = &out["standingBy"];
            assert_eq!(
                (&by["region"], &by["role"], &by["activeRegion"], &by["epoch"]),
                (
                    &json!("us-west-2"),
                    &json!("STANDBY"),
                    &json!("us-east-1"),
                    &json!(1)
                ),
                "{backend}: {event}: {out}"
            );
        }
        // Not claimed, not run: the runbook is as it was, and still due.
        assert_eq!(store.get_runbook(op).await.unwrap().unwrap(), before, "{backend}");
        assert_eq!(
            store.due_runbooks(now_ms(), &RunbookKind::CLUSTER).await.unwrap(),
            [op],
            "{backend}"
        );
        let refused = runbooks::handle(&r, &gate, &json!({"runbookId": -1}))
            .await
            .unwrap();
        assert!(
            refused["rejected"]
                .as_str()
                .is_some_and(|s| s.contains("unrecognised event")),
            "{backend}: {refused}"
        );
    }
}
