//! Nodes joining and leaving through the lifecycle hooks, and the health sweep,
//! against the emulator with agents on loopback, on both databases.

use std::time::Duration;

use shared::cloud::aws::{AutoScalingAdapter, Ec2Adapter};
use shared::cloud::Scaling;
use shared::domain::ClusterUpdate;
use shared::store::Store;
use shared::workflows::lifecycle::{LifecycleEvent, Outcome as Lifecycle};
use shared::workflows::sweep::{SweepSettings, Sweeper};

use crate::support::{
    account, backends, cluster_spec, ctx, lifecycle, ready_environment, reconciler, settings, AgentMode,
    AwsReconciler, Fleet, REGION,
};

type AwsSweeper = Sweeper<Ec2Adapter, AutoScalingAdapter, shared::cloud::agents::HttpAgents>;

fn sweeper(store: &Store, account: &str, fleet: &Fleet, settings_: SweepSettings, owner: &str) -> AwsSweeper {
    let s = settings(account, None);
    Sweeper {
        store: store.clone(),
        compute: Ec2Adapter::new(s.clone()),
        scaling: AutoScalingAdapter::new(s),
        agents: fleet.agents(),
        settings: settings_,
        owner: owner.into(),
    }
}

/// A READY cluster of `nodes` nodes whose agents run in `fleet`.
async fn ready_cluster(r: &AwsReconciler, fleet: &Fleet, acct: &str, nodes: i64) -> i64 {
    let env = ready_environment(r, "prod", false).await;
    let id = r
        .store
        .create_cluster(&ctx(), &cluster_spec(env, "analytics", nodes))
        .await
        .unwrap()
        .target_id;
    crate::support::converge_with_joins(r, fleet, acct, id).await;
    let row = r.store.get_cluster(id).await.unwrap();
    assert_eq!(row.status_code, "READY", "{}", row.status_message);
    id
}

async fn status(store: &Store, id: i64) -> (String, String) {
    let row = store.get_cluster(id).await.unwrap();
    (row.status_code, row.status_message)
}

#[tokio::test]
async fn a_failed_service_is_concerning_within_one_sweep_and_restoring_it_makes_the_cluster_ready() {
    for (backend, store) in backends().await {
        let acct = account();
        let fleet = Fleet::default();
        let r = reconciler(&store, &acct, "r").await;
        let id = ready_cluster(&r, &fleet, &acct, 3).await;
        let sweep = sweeper(&store, &acct, &fleet, SweepSettings::default(), "s");
        let nodes = store.nodes_of(id).await.unwrap();
        assert_eq!(nodes.len(), 3);

        let report = sweep.sweep().await.unwrap();
        assert_eq!(
            (report.clusters, report.nodes, report.probes),
            (1, 3, 3),
            "{backend}"
        );
        assert_eq!(status(&store, id).await.0, "READY", "{backend}");

        fleet.set(&nodes[1].instance_id, AgentMode::Failing("planner"));
        sweep.sweep().await.unwrap();
        assert_eq!(
            status(&store, id).await,
            (
                "CONCERNING".to_owned(),
                format!(
                    "Health check unsuccessful. Unable to reach planner on node 1 ({}).",
                    nodes[1].instance_id
                )
            ),
            "{backend}"
        );
        assert_eq!(
            store.get_cluster(id).await.unwrap().running_services,
            3,
            "{backend}"
        );

        fleet.set(&nodes[1].instance_id, AgentMode::Ready);
        sweep.sweep().await.unwrap();
        assert_eq!(status(&store, id).await.0, "READY", "{backend}");
        let codes: Vec<String> = store
            .status_history(id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.code)
            .collect();
        assert_eq!(
            codes[..3],
            ["READY", "CONCERNING", "READY"],
            "{backend}: {codes:?}"
        );
    }
}

#[tokio::test]
async fn a_duplicate_launch_event_keeps_one_node_and_counts_as_done() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let env = ready_environment(&r, "prod", false).await;
    let id = store
        .create_cluster(&ctx(), &cluster_spec(env, "a", 1))
        .await
        .unwrap()
        .target_id;
    r.reconcile_cluster(id).await.unwrap();
    let events = emulator::shared().lifecycle_events(&acct, 0).unwrap();
    assert_eq!(events.len(), 1);
    let event = LifecycleEvent::parse(&serde_json::from_str(&events[0].1).unwrap()).unwrap();
    fleet.serve(&event.action.instance_id, AgentMode::Ready).await;
    let l = lifecycle(&store, &acct, &fleet);
    assert_eq!(
        l.handle(&event).await.unwrap(),
        Lifecycle::Joined { cluster_id: id }
    );
    assert_eq!(
        l.handle(&event).await.unwrap(),
        Lifecycle::AlreadyDone { cluster_id: id }
    );
    assert_eq!(store.nodes_of(id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_slow_node_is_joined_by_the_sweep_and_a_node_that_never_starts_is_abandoned() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let env = ready_environment(&r, "prod", false).await;
    let id = store
        .create_cluster(&ctx(), &cluster_spec(env, "a", 2))
        .await
        .unwrap()
        .target_id;
    r.reconcile_cluster(id).await.unwrap();
    let l = lifecycle(&store, &acct, &fleet);
    let first = fleet.deliver(&l, &acct, AgentMode::Starting).await;
    assert_eq!(first, vec![Lifecycle::Starting { cluster_id: id }; 2]);
    let nodes = store.nodes_of(id).await.unwrap();
    assert!(nodes
        .iter()
        .all(|n| n.action.is_some() && n.joining_since.is_some()));

    // One node comes up; the other never does.
    fleet.set(&nodes[0].instance_id, AgentMode::Ready);
    let sweep = sweeper(&store, &acct, &fleet, SweepSettings::default(), "s");
    let report = sweep.sweep().await.unwrap();
    assert_eq!((report.joined, report.abandoned), (1, 0), "{report:?}");

    let impatient = sweeper(
        &store,
        &acct,
        &fleet,
        SweepSettings {
            bootstrap_timeout_ms: 0,
            ..SweepSettings::default()
        },
        "s2",
    );
    let report = impatient.sweep().await.unwrap();
    assert_eq!(report.abandoned, 1, "{report:?}");
    let audit = store.audit_of(&format!("cluster/{id}")).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "NODE_ABANDONED" && a.detail.contains(&nodes[1].instance_id)),
        "{audit:?}"
    );
    // The group replaced the abandoned node with a new one, waiting at the hook.
    let g = &r
        .scaling
        .groups_tagged(REGION, "okera:cluster-id", &id.to_string())
        .await
        .unwrap()[0];
    let states: Vec<&str> = g.instances.iter().map(|i| i.lifecycle_state.as_str()).collect();
    assert!(
        states.contains(&"InService") && states.contains(&"Pending:Wait"),
        "{states:?}"
    );
}

#[tokio::test]
async fn a_leaving_node_flushes_its_logs_and_is_forgotten() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let id = ready_cluster(&r, &fleet, &acct, 2).await;
    store
        .update_cluster(
            &ctx(),
            id,
            &ClusterUpdate {
                num_nodes: Some(1),
                ..ClusterUpdate::default()
            },
        )
        .await
        .unwrap();
    r.reconcile_cluster(id).await.unwrap();
    let l = lifecycle(&store, &acct, &fleet);
    let outcomes = fleet.deliver(&l, &acct, AgentMode::Ready).await;
    assert_eq!(outcomes, vec![Lifecycle::Left { cluster_id: id }]);
    r.reconcile_cluster(id).await.unwrap();
    let row = store.get_cluster(id).await.unwrap();
    assert_eq!(row.status_code, "READY", "{}", row.status_message);
    assert_eq!(store.nodes_of(id).await.unwrap().len(), 1);
    let audit = store.audit_of(&format!("cluster/{id}")).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "NODE_LEFT" && a.detail.contains("flushed")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn events_for_groups_the_dm_does_not_own_are_ignored() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let l = lifecycle(&store, &acct, &Fleet::default());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/lifecycle-launch.json"
    ))
    .unwrap();
    let mut event = LifecycleEvent::parse(&serde_json::from_str(&text).unwrap()).unwrap();
    for group in ["someone-elses-group", "okera-1-analytics", "okera-x-y"] {
        event.action.group = group.into();
        assert_eq!(l.handle(&event).await.unwrap(), Lifecycle::NotOurs, "{group}");
    }
}

#[tokio::test]
async fn a_node_unhealthy_past_the_threshold_is_replaced_through_the_hooks() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let id = ready_cluster(&r, &fleet, &acct, 3).await;
    let nodes = store.nodes_of(id).await.unwrap();
    fleet.set(&nodes[0].instance_id, AgentMode::Down);
    fleet.set(&nodes[1].instance_id, AgentMode::Down);
    let repairing = SweepSettings {
        repair_after_ms: 0,
        ..SweepSettings::default()
    };
    let sweep = sweeper(&store, &acct, &fleet, repairing, "s");
    let report = sweep.sweep().await.unwrap();
    // Two broken nodes of three: one is replaced at a time (a third of the cluster).
    assert_eq!(report.repairs, 1, "{report:?}");
    assert_eq!(status(&store, id).await.0, "DEGRADED", "one of three healthy");
    let audit = store.audit_of(&format!("cluster/{id}")).await.unwrap();
    assert_eq!(
        audit.iter().filter(|a| a.action == "NODE_REPAIR").count(),
        1,
        "{audit:?}"
    );
    assert_eq!(
        sweep.sweep().await.unwrap().repairs,
        0,
        "the first repair is still in flight"
    );

    // The old node leaves through the terminate hook, its replacement joins.
    let l = lifecycle(&store, &acct, &fleet);
    let outcomes = fleet.deliver(&l, &acct, AgentMode::Ready).await;
    assert!(
        outcomes.contains(&Lifecycle::Left { cluster_id: id }),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&Lifecycle::Joined { cluster_id: id }),
        "{outcomes:?}"
    );
    let report = sweep.sweep().await.unwrap();
    assert_eq!(report.repairs, 1, "now the second: {report:?}");
    fleet.deliver(&l, &acct, AgentMode::Ready).await;
    sweep.sweep().await.unwrap();
    assert_eq!(status(&store, id).await.0, "READY");
    let ids: Vec<String> = store
        .nodes_of(id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.instance_id)
        .collect();
    assert!(
        !ids.contains(&nodes[0].instance_id) && !ids.contains(&nodes[1].instance_id),
        "{ids:?}"
    );
}

#[tokio::test]
async fn nothing_is_repaired_when_the_policy_says_so_or_while_the_cluster_updates() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let id = ready_cluster(&r, &fleet, &acct, 2).await;
    let nodes = store.nodes_of(id).await.unwrap();
    fleet.set(&nodes[0].instance_id, AgentMode::Down);
    let sweep = sweeper(
        &store,
        &acct,
        &fleet,
        SweepSettings {
            repair_after_ms: 0,
            ..SweepSettings::default()
        },
        "s",
    );
    // An update is in progress (not yet reconciled): no repair.
    store
        .update_cluster(
            &ctx(),
            id,
            &ClusterUpdate {
                auto_repair_enabled: Some(false),
                ..ClusterUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(sweep.sweep().await.unwrap().repairs, 0);
    assert_eq!(
        status(&store, id).await.0,
        "UPDATING",
        "the sweep leaves an updating cluster's code"
    );
    // Reconciled, but the policy forbids repairs.
    r.reconcile_cluster(id).await.unwrap();
    assert_eq!(sweep.sweep().await.unwrap().repairs, 0);
    assert_eq!(status(&store, id).await.0, "CONCERNING");
}

#[tokio::test]
async fn sweeps_never_overlap_and_a_killed_sweep_is_taken_over_after_its_lease() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let id = ready_cluster(&r, &fleet, &acct, 2).await;
    let short = SweepSettings {
        lease_ms: 300,
        ..SweepSettings::default()
    };
    // A sweep killed halfway: it holds the lease and never releases it.
    assert!(store
        .claim_lease(shared::store::SWEEP_LEASE, "killed", short.lease_ms)
        .await
        .unwrap());
    let other = sweeper(&store, &acct, &fleet, short, "other");
    assert!(other.sweep().await.unwrap().skipped);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let report = other.sweep().await.unwrap();
    assert!(!report.skipped);
    assert_eq!(report.probes, 2);
    assert_eq!(status(&store, id).await.0, "READY");
}

#[tokio::test]
async fn throttling_during_a_sweep_is_retried_and_a_region_it_cannot_read_keeps_its_status() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let id = ready_cluster(&r, &fleet, &acct, 1).await;
    let sweep = sweeper(&store, &acct, &fleet, SweepSettings::default(), "s");
    let throttle = |count| emulator::FaultRule {
        service: "ec2".into(),
        action: "DescribeInstances".into(),
        status: 400,
        code: "RequestLimitExceeded".into(),
        count,
        account: Some(acct.clone()),
        ..Default::default()
    };
    emulator::shared().inject_fault(&throttle(2)).unwrap();
    let report = sweep.sweep().await.unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.probes, 1);

    let nodes = store.nodes_of(id).await.unwrap();
    fleet.set(&nodes[0].instance_id, AgentMode::Failing("canary"));
    emulator::shared().inject_fault(&throttle(50)).unwrap();
    let report = sweep.sweep().await.unwrap();
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.errors[0].contains(REGION), "{report:?}");
    assert_eq!(status(&store, id).await.0, "READY", "unobserved: kept");
    assert_eq!(store.nodes_of(id).await.unwrap().len(), 1, "no node forgotten");
}

#[tokio::test]
async fn sweeps_read_aws_in_batches() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let env = ready_environment(&r, "prod", false).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = store
            .create_cluster(&ctx(), &cluster_spec(env, &format!("c{i}"), 2))
            .await
            .unwrap()
            .target_id;
        crate::support::converge_with_joins(&r, &fleet, &acct, id).await;
        ids.push(id);
    }
    let em = emulator::shared();
    let count = |svc: &str, action: &str| em.request_count(Some(&acct), svc, action).unwrap();
    let (di, dg) = (
        count("ec2", "DescribeInstances"),
        count("autoscaling", "DescribeAutoScalingGroups"),
    );
    let report = sweeper(&store, &acct, &fleet, SweepSettings::default(), "s")
        .sweep()
        .await
        .unwrap();
    assert_eq!((report.clusters, report.nodes, report.probes), (3, 6, 6));
    assert_eq!(count("ec2", "DescribeInstances") - di, 1, "one page of instances");
    assert_eq!(
        count("autoscaling", "DescribeAutoScalingGroups") - dg,
        1,
        "one call for three groups"
    );
    for id in ids {
        assert_eq!(status(&store, id).await.0, "READY");
    }
}

#[tokio::test]
async fn a_join_completed_but_not_recorded_is_recorded_by_the_sweep() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let fleet = Fleet::default();
    let r = reconciler(&store, &acct, "r").await;
    let env = ready_environment(&r, "prod", false).await;
    let id = store
        .create_cluster(&ctx(), &cluster_spec(env, "a", 1))
        .await
        .unwrap()
        .target_id;
    r.reconcile_cluster(id).await.unwrap();
    let l = lifecycle(&store, &acct, &fleet);
    assert_eq!(
        fleet.deliver(&l, &acct, AgentMode::Starting).await,
        vec![Lifecycle::Starting { cluster_id: id }]
    );
    let node = store.nodes_of(id).await.unwrap().remove(0);
    let (hook, token) = node.action.clone().unwrap();
    // Someone sent CONTINUE and died before recording it.
    fleet.set(&node.instance_id, AgentMode::Ready);
    let action = shared::cloud::LifecycleAction {
        group: format!("okera-{id}-a"),
        hook,
        token,
        instance_id: node.instance_id.clone(),
    };
    r.scaling
        .complete_action(REGION, &action, shared::cloud::ActionResult::Continue)
        .await
        .unwrap();
    sweeper(&store, &acct, &fleet, SweepSettings::default(), "s")
        .sweep()
        .await
        .unwrap();
    let node = store.nodes_of(id).await.unwrap().remove(0);
    assert_eq!((node.action, node.joining_since), (None, None));
    assert_eq!(node.lifecycle_state, "InService");
}
