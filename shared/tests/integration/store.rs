//! The store's guarantees, on SQLite and on MariaDB.

use futures_util::future::join_all;
use shared::domain::{ClusterStatus, ClusterUpdate};
use shared::store::{ClusterObservation, Store, StoreError};

use crate::support::{cluster_spec, ctx, environment_spec, keyed, mark_ready};

async fn each_backend<F, Fut>(test: F)
where
    F: Fn(&'static str, Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for (backend, url) in testkit::all_backends().await {
        let store = Store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e:?}"));
        test(backend, store).await;
    }
}

#[tokio::test]
async fn migrations_run_once_and_a_second_connect_changes_nothing() {
    for (backend, url) in testkit::all_backends().await {
        let first = Store::connect(&url).await.unwrap();
        first
            .create_environment(&ctx(), &environment_spec("a", false))
            .await
            .unwrap();
        let second = Store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e:?}"));
        assert_eq!(second.list_environments().await.unwrap().len(), 1, "{backend}");
    }
}

#[tokio::test]
async fn a_write_records_desired_state_an_operation_and_an_audit_row_together() {
    each_backend(|backend, store| async move {
        let s = store
            .create_environment(&ctx(), &environment_spec("prod", true))
            .await
            .unwrap();
        let env = store.get_environment(s.target_id).await.unwrap();
        assert_eq!(
            (env.name.as_str(), env.status_code.as_str()),
            ("prod", "PROVISIONING"),
            "{backend}"
        );
        assert_eq!(env.admin_cidr.as_deref(), Some("203.0.113.0/24"), "{backend}");
        let op = store.get_operation(s.operation_id).await.unwrap();
        assert_eq!(
            (op.kind.as_str(), op.state.as_str(), op.principal.as_str()),
            ("CREATE_ENVIRONMENT", "PENDING", "tester"),
            "{backend}"
        );
        let audit = store
            .audit_of(&format!("environment/{}", s.target_id))
            .await
            .unwrap();
        assert_eq!(audit.len(), 1, "{backend}");
        assert_eq!(audit[0].principal, "tester", "{backend}");
    })
    .await;
}

#[tokio::test]
async fn the_same_idempotency_key_replays_and_a_different_request_under_it_conflicts() {
    each_backend(|backend, store| async move {
        let first = store
            .create_environment(&keyed("k1", "hash-a"), &environment_spec("a", false))
            .await
            .unwrap();
        let again = store
            .create_environment(&keyed("k1", "hash-a"), &environment_spec("a", false))
            .await
            .unwrap();
        assert!(!first.replayed && again.replayed, "{backend}");
        assert_eq!(first.operation_id, again.operation_id, "{backend}");
        let other = store
            .create_environment(&keyed("k1", "hash-b"), &environment_spec("b", false))
            .await;
        assert!(
            matches!(other, Err(StoreError::Conflict(ref m)) if m.contains("Idempotency-Key")),
            "{backend}: {other:?}"
        );
        assert_eq!(
            store.list_environments().await.unwrap().len(),
            1,
            "{backend}: nothing more was written"
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_do_the_work_once() {
    each_backend(|backend, store| async move {
        let spec = environment_spec("race", false);
        let key = keyed("same-key", "same-hash");
        let results = join_all((0..6).map(|_| store.create_environment(&key, &spec))).await;
        let ops: std::collections::BTreeSet<i64> =
            results.iter().map(|r| r.as_ref().unwrap().operation_id).collect();
        assert_eq!(ops.len(), 1, "{backend}: {results:?}");
        assert_eq!(store.list_environments().await.unwrap().len(), 1, "{backend}");
    })
    .await;
}

#[tokio::test]
async fn cluster_names_are_unique_per_environment_until_the_cluster_is_gone() {
    each_backend(|backend, store| async move {
        let e1 = store
            .create_environment(&ctx(), &environment_spec("e1", false))
            .await
            .unwrap()
            .target_id;
        let e2 = store
            .create_environment(&ctx(), &environment_spec("e2", false))
            .await
            .unwrap()
            .target_id;
        let not_ready = store.create_cluster(&ctx(), &cluster_spec(e1, "a", 1)).await;
        assert!(
            matches!(not_ready, Err(StoreError::Conflict(ref m)) if m.contains("READY")),
            "{backend}: {not_ready:?}"
        );
        mark_ready(&store, e1).await;
        mark_ready(&store, e2).await;
        let c = store
            .create_cluster(&ctx(), &cluster_spec(e1, "a", 1))
            .await
            .unwrap()
            .target_id;
        let dup = store.create_cluster(&ctx(), &cluster_spec(e1, "a", 1)).await;
        assert!(
            matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already exists")),
            "{backend}: {dup:?}"
        );
        store
            .create_cluster(&ctx(), &cluster_spec(e2, "a", 1))
            .await
            .unwrap();
        // Once terminated, the name is free again.
        assert!(store.claim_cluster(c, "r", 60_000).await.unwrap());
        store.record_cluster(c, "r", &terminated()).await.unwrap();
        store
            .create_cluster(&ctx(), &cluster_spec(e1, "a", 1))
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e:?}"));
    })
    .await;
}

/// An environment named "e", marked READY as the reconciler would.
async fn ready_environment(store: &Store) -> i64 {
    let env = store
        .create_environment(&ctx(), &environment_spec("e", false))
        .await
        .unwrap()
        .target_id;
    mark_ready(store, env).await;
    env
}

fn terminated() -> ClusterObservation {
    ClusterObservation {
        status: ClusterStatus::Terminated,
        message: "gone".into(),
        asg_name: None,
        launch_template_id: None,
        config_uri: None,
        nodes: vec![],
        running_services: None,
        endpoint: None,
        observed_generation: Some(99),
        steps: vec![],
        failure: None,
    }
}

#[tokio::test]
async fn a_claim_that_finds_the_lease_held_makes_the_holder_go_again() {
    each_backend(|backend, store| async move {
        let env = store
            .create_environment(&ctx(), &environment_spec("e", false))
            .await
            .unwrap()
            .target_id;
        assert!(store.claim_environment(env, "a", 60_000).await.unwrap());
        assert!(
            store.release_environment(env, "a", false).await.unwrap(),
            "{backend}: nobody asked"
        );
        assert!(store.claim_environment(env, "a", 60_000).await.unwrap());
        assert!(
            !store.claim_environment(env, "b", 60_000).await.unwrap(),
            "{backend}"
        );
        assert!(
            !store.release_environment(env, "a", false).await.unwrap(),
            "{backend}: b asked for another pass; a keeps the lease"
        );
        assert!(
            !store.claim_environment(env, "c", 60_000).await.unwrap(),
            "{backend}: a still holds it"
        );
        assert!(
            store.release_environment(env, "a", true).await.unwrap(),
            "{backend}: finally ends the lease whatever was asked"
        );
        assert!(
            store.claim_environment(env, "b", 60_000).await.unwrap(),
            "{backend}"
        );
        assert!(
            store.release_environment(env, "b", false).await.unwrap(),
            "{backend}: taking the lease answered the ask before it"
        );
        // A run whose lease expired and was taken releases nothing.
        assert!(store.claim_environment(env, "d", 1).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(store.claim_environment(env, "e", 60_000).await.unwrap());
        assert!(
            store.release_environment(env, "d", false).await.unwrap(),
            "{backend}"
        );
        assert!(
            !store.claim_environment(env, "f", 60_000).await.unwrap(),
            "{backend}: e still holds it"
        );
    })
    .await;
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires() {
    each_backend(|backend, store| async move {
        let env = store
            .create_environment(&ctx(), &environment_spec("e", false))
            .await
            .unwrap()
            .target_id;
        assert!(
            store.claim_environment(env, "a", 60_000).await.unwrap(),
            "{backend}"
        );
        assert!(
            !store.claim_environment(env, "b", 60_000).await.unwrap(),
            "{backend}: b must wait"
        );
        assert!(
            store.claim_environment(env, "a", 60_000).await.unwrap(),
            "{backend}: the holder may renew"
        );
        store.release_environment(env, "a", true).await.unwrap();
        assert!(
            store.claim_environment(env, "b", 1).await.unwrap(),
            "{backend}: released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            store.claim_environment(env, "c", 60_000).await.unwrap(),
            "{backend}: b's lease expired"
        );
    })
    .await;
}

#[tokio::test]
async fn only_the_lease_holder_may_record_an_observation() {
    each_backend(|backend, store| async move {
        let env = ready_environment(&store).await;
        let c = store
            .create_cluster(&ctx(), &cluster_spec(env, "a", 1))
            .await
            .unwrap()
            .target_id;
        let lost = store.record_cluster(c, "nobody", &terminated()).await;
        assert!(
            matches!(lost, Err(StoreError::Conflict(ref m)) if m.contains("lease")),
            "{backend}: {lost:?}"
        );
        assert_eq!(
            store.get_cluster(c).await.unwrap().status_code,
            "PROVISIONING",
            "{backend}"
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_updates_of_one_cluster_never_lose_a_write() {
    each_backend(|backend, store| async move {
        let env = ready_environment(&store).await;
        let c = store
            .create_cluster(&ctx(), &cluster_spec(env, "a", 1))
            .await
            .unwrap()
            .target_id;
        let updates: Vec<ClusterUpdate> = (2..8)
            .map(|n| ClusterUpdate {
                num_nodes: Some(n),
                termination_protection_enabled: None,
                auto_repair_enabled: None,
                protection_allows_upgrade: None,
            })
            .collect();
        let writer = ctx();
        let results = join_all(updates.iter().map(|u| store.update_cluster(&writer, c, u))).await;
        let accepted = results.iter().filter(|r| r.is_ok()).count() as i64;
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, StoreError::Conflict(m) if m.contains("try again")),
                    "{backend}: {e:?}"
                );
            }
        }
        let row = store.get_cluster(c).await.unwrap();
        // Every accepted update moved the generation exactly once.
        assert_eq!(row.generation, 1 + accepted, "{backend}: {results:?}");
        assert!(accepted >= 1, "{backend}");
    })
    .await;
}

#[tokio::test]
async fn protection_refuses_delete_and_scale_to_zero_but_not_other_sizes() {
    each_backend(|backend, store| async move {
        let env = ready_environment(&store).await;
        let mut spec = cluster_spec(env, "a", 2);
        spec.termination_protection = true;
        let c = store.create_cluster(&ctx(), &spec).await.unwrap().target_id;
        let delete = store.delete_cluster(&ctx(), c).await;
        assert!(
            matches!(delete, Err(StoreError::Conflict(ref m)) if m.contains("termination protection")),
            "{backend}"
        );
        let zero = ClusterUpdate {
            num_nodes: Some(0),
            termination_protection_enabled: None,
            auto_repair_enabled: None,
            protection_allows_upgrade: None,
        };
        assert!(
            matches!(
                store.update_cluster(&ctx(), c, &zero).await,
                Err(StoreError::Conflict(_))
            ),
            "{backend}"
        );
        let three = ClusterUpdate {
            num_nodes: Some(3),
            termination_protection_enabled: None,
            auto_repair_enabled: None,
            protection_allows_upgrade: None,
        };
        store.update_cluster(&ctx(), c, &three).await.unwrap();
        assert!(!store.get_cluster(c).await.unwrap().delete_requested, "{backend}");
    })
    .await;
}

#[tokio::test]
async fn an_environment_with_clusters_cannot_be_deleted() {
    each_backend(|backend, store| async move {
        let env = ready_environment(&store).await;
        store
            .create_cluster(&ctx(), &cluster_spec(env, "a", 1))
            .await
            .unwrap();
        let refused = store.delete_environment(&ctx(), env).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(ref m)) if m.contains("still has 1 cluster")),
            "{backend}: {refused:?}"
        );
        assert_eq!(
            store.get_environment(env).await.unwrap().status_code,
            "READY",
            "{backend}"
        );
    })
    .await;
}
