//! The runbook engine against the emulator and both databases: upgrades by
//! replacement (killed after every step, then resumed), a replacement that never
//! becomes READY, and a rollback inside the window. Clusters become READY the
//! way they do in production: the reconciler makes the group, nodes join at the
//! launch hook once their (loopback) agent answers, and the endpoint record is
//! Route 53's, in the emulator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::cloud::aws::{AutoScalingAdapter, Route53Adapter};
use shared::cloud::{Dns, RecordSet, Scaling};
use shared::domain::tags;
use shared::store::{RunbookRow, Store, UpgradeRequest};
use shared::workflows::commands;
use shared::workflows::kill::KillSwitch;
use shared::workflows::reconcile::Target;
use shared::workflows::runbook::{self, ClusterSteps, DnsZone, RunError, RunbookSettings, Runner};

use crate::support::{
    account, backends, cluster_spec, converge_with_joins, ctx, lifecycle, ready_environment, reconciler,
    settings, AgentMode, AwsReconciler, Fleet, REGION,
};

type TestRunner = Runner<ClusterSteps<Route53Adapter, shared::cloud::agents::HttpAgents>>;

struct World {
    store: Store,
    acct: String,
    fleet: Fleet,
    r: AwsReconciler,
    zone: DnsZone,
    original: i64,
    endpoint: String,
    /// The AWS calls the runbook runner made in `drive` (not the reconciler's
    /// nor the lifecycle's), by action: the runbooks function's role must
    /// grant them.
    runner_calls: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// A READY cluster of two nodes with its endpoint record in a zone of the account's own.
async fn world(store: &Store) -> World {
    let acct = account();
    let fleet = Fleet::default();
    let mut r = reconciler(store, &acct, "reconciler").await;
    let dns = Route53Adapter::new(settings(&acct, None));
    let zone_name = format!("{}.it.test", acct.to_lowercase());
    let zone = DnsZone {
        id: dns.ensure_zone(&zone_name).await.unwrap(),
        name: zone_name,
    };
    r.zone = Some(zone.clone());
    // Environment names are unique per store, and one store serves several worlds.
    let env_name = format!("prod-{acct}");
    let env = ready_environment(&r, &env_name, false).await;
    let original = store
        .create_cluster(&ctx(), &cluster_spec(env, "sales", 2))
        .await
        .unwrap()
        .target_id;
    converge_with_joins(&r, &fleet, &acct, original).await;
    let row = store.get_cluster(original).await.unwrap();
    assert_eq!(row.status_code, "READY", "{}", row.status_message);
    let endpoint = row.endpoint.clone().expect("the reconciler names the endpoint");
    assert_eq!(endpoint, format!("sales.{env_name}.{}", zone.name));
    World {
        store: store.clone(),
        acct,
        fleet,
        r,
        zone,
        original,
        endpoint,
        runner_calls: Mutex::default(),
    }
}

impl World {
    fn runner(&self, owner: &str, kill: KillSwitch) -> TestRunner {
        let kicked: Arc<Mutex<Vec<Target>>> = Arc::default();
        Runner {
            store: self.store.clone(),
            steps: ClusterSteps {
                dns: Route53Adapter::new(settings(&self.acct, None)),
                agents: self.fleet.agents(),
                zone: Some(self.zone.clone()),
                kick: Arc::new(move |t| {
                    kicked.lock().unwrap().push(t);
                    Box::pin(async {})
                }),
            },
            settings: RunbookSettings {
                lease_ms: 300,
                budget: Duration::ZERO,
                poll_ms: 20,
                ..Default::default()
            },
            owner: owner.into(),
            kill,
        }
    }

    /// The endpoint's A record sets, values sorted.
    async fn records(&self) -> Vec<Vec<String>> {
        let dns = Route53Adapter::new(settings(&self.acct, None));
        let mut sets: Vec<Vec<String>> = dns
            .records(&self.zone.id, &self.endpoint)
            .await
            .unwrap()
            .into_iter()
            .filter(|r: &RecordSet| r.kind == "A")
            .map(|r| {
                let mut v = r.values;
                v.sort();
                v
            })
            .collect();
        sets.sort();
        sets
    }

    async fn addresses(&self, cluster: i64) -> Vec<String> {
        let mut ips: Vec<String> = self
            .store
            .nodes_of(cluster)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.lifecycle_state == "InService")
            .filter_map(|n| n.private_ip)
            .collect();
        ips.sort();
        ips
    }

    /// Plays the rest of the control plane for one round: reconciles every
    /// live cluster and lets launching nodes join with agents in `mode`.
    async fn round(&self, mode: AgentMode) {
        let l = lifecycle(&self.store, &self.acct, &self.fleet);
        for c in self.store.list_clusters(None).await.unwrap() {
            self.r.reconcile_cluster(c.id).await.unwrap();
        }
        self.fleet.deliver(&l, &self.acct, mode).await;
        for c in self.store.list_clusters(None).await.unwrap() {
            self.r.reconcile_cluster(c.id).await.unwrap();
        }
    }

    /// Runs the runbook (and the rest of the control plane) until it ends.
    async fn drive(&self, runner: &TestRunner, id: i64, mode: AgentMode) -> RunbookRow {
        for _ in 0..200 {
            let before = emulator::roles::snapshot(emulator::shared(), &self.acct);
            let _ = runner.run(id).await.unwrap();
            let after = emulator::roles::snapshot(emulator::shared(), &self.acct);
            {
                let mut calls = self.runner_calls.lock().unwrap();
                for call in emulator::roles::calls_between(&before, &after) {
                    *calls.entry(call).or_default() += 1;
                }
            }
            let rb = self.store.get_runbook(id).await.unwrap().unwrap();
            if rb.finished() {
                return rb;
            }
            self.round(mode).await;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "runbook {id} did not end: {:?}",
            self.store.get_runbook(id).await.unwrap()
        );
    }

    /// Auto Scaling groups tagged with `cluster` (that are not being deleted).
    async fn groups_of(&self, cluster: i64) -> usize {
        AutoScalingAdapter::new(settings(&self.acct, None))
            .groups_tagged(REGION, tags::CLUSTER_ID, &cluster.to_string())
            .await
            .unwrap()
            .into_iter()
            .filter(|g| !g.deleting)
            .count()
    }

    async fn upgrade(&self, window_ms: i64, ready_timeout_ms: i64) -> i64 {
        let req = UpgradeRequest {
            version: "2.1.0".into(),
            components: Default::default(),
            force: false,
            ready_timeout_ms,
            rollback_window_ms: window_ms,
        };
        self.store
            .submit_upgrade(&ctx(), self.original, &req, &runbook::upgrade_steps())
            .await
            .unwrap()
            .operation_id
    }

    /// The end state of a successful upgrade, whatever happened on the way:
    /// one replacement, serving under the live name, the endpoint on its nodes
    /// only, and nothing of the original left in AWS.
    async fn assert_upgraded(&self, rb: &RunbookRow) {
        assert_eq!(rb.state, "SUCCEEDED", "{:?}", rb);
        let replacements: Vec<_> = self
            .store
            .list_clusters(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.replaces_id == Some(self.original))
            .collect();
        assert_eq!(replacements.len(), 1, "exactly one replacement: {replacements:?}");
        let new = &replacements[0];
        assert_eq!(Some(new.id), rb.context.replacement_id);
        assert_eq!(
            (new.status_code.as_str(), new.odas_version.as_str()),
            ("READY", "2.1.0")
        );
        assert!(new.serves_endpoint);
        let old = self.store.get_cluster(self.original).await.unwrap();
        assert_eq!(old.status_code, "TERMINATED");
        assert!(!old.serves_endpoint);
        assert_eq!(self.records().await, vec![self.addresses(new.id).await]);
        assert_eq!(self.groups_of(self.original).await, 0);
        assert_eq!(self.groups_of(new.id).await, 1);
        let op = self.store.get_operation(rb.id).await.unwrap();
        assert_eq!(op.state, "SUCCEEDED");
        assert_eq!(op.steps.len(), 7);
    }
}

#[tokio::test]
async fn an_upgrade_replaces_the_cluster_and_moves_the_endpoint_only_once_the_replacement_is_ready() {
    for (backend, store) in backends().await {
        let w = world(&store).await;
        let before = w.records().await;
        assert_eq!(before, vec![w.addresses(w.original).await], "{backend}");
        let id = w.upgrade(0, 600_000).await;
        let runner = w.runner("runner", KillSwitch::off());
        // Until the replacement is READY, traffic stays where it was.
        for _ in 0..3 {
            runner.run(id).await.unwrap();
            let rb = store.get_runbook(id).await.unwrap().unwrap();
            assert!(rb.context.switched_at.is_none(), "{backend}: switched too early");
            assert_eq!(w.records().await, before, "{backend}");
        }
        let rb = w.drive(&runner, id, AgentMode::Ready).await;
        w.assert_upgraded(&rb).await;
        for s in &rb.steps {
            assert_eq!(
                s.attempts, 1,
                "{backend}: nothing failed, yet {} ran {} times",
                s.name, s.attempts
            );
        }
        let switch = &rb.steps[2];
        let ready = &rb.steps[1];
        assert!(
            switch.started_at >= ready.finished_at,
            "{backend}: switched before READY"
        );
        // The runner's own AWS calls (the endpoint's records) are ones the
        // runbooks function's role grants.
        let calls = w.runner_calls.lock().unwrap().clone();
        emulator::roles::assert_role_allows("RunbooksFunction", &Default::default(), &calls);
    }
}

#[tokio::test]
async fn an_upgrade_killed_after_any_step_resumes_to_the_same_end_state() {
    for (backend, store) in backends().await {
        for (seq, step) in runbook::upgrade_steps().iter().enumerate() {
            let w = world(&store).await;
            let id = w.upgrade(0, 600_000).await;
            let point = format!("{seq}-{}:acted", step.name);
            let doomed = w.runner("doomed", KillSwitch::at(&point));
            let killed = loop {
                match doomed.run(id).await {
                    Err(RunError::Killed(k)) => break k,
                    Ok(_) => w.round(AgentMode::Ready).await,
                    Err(e) => panic!("{backend} {point}: {e}"),
                }
            };
            assert_eq!(killed.0, point);
            // A new process, once the dead one's lease has run out.
            tokio::time::sleep(Duration::from_millis(350)).await;
            let rb = w
                .drive(&w.runner("heir", KillSwitch::off()), id, AgentMode::Ready)
                .await;
            w.assert_upgraded(&rb).await;
            let step = &rb.steps[seq];
            assert_eq!(step.state, "DONE", "{backend} {point}");
            assert!(
                step.attempts >= 2,
                "{backend} {point}: the step ran again ({})",
                step.attempts
            );
        }
    }
}

#[tokio::test]
async fn a_replacement_that_never_becomes_ready_is_removed_and_traffic_stays() {
    for (backend, store) in backends().await {
        let w = world(&store).await;
        let before = w.records().await;
        let id = w.upgrade(0, 1_500).await;
        let rb = w
            .drive(
                &w.runner("runner", KillSwitch::off()),
                id,
                AgentMode::Failing("planner"),
            )
            .await;
        assert_eq!(rb.state, "FAILED", "{backend}: {rb:?}");
        let error = rb.error.clone().unwrap();
        assert!(error.contains("wait-ready timed out"), "{backend}: {error}");
        let replacement = rb.context.replacement_id.unwrap();
        let names: Vec<(&str, &str)> = rb
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.state.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("build-replacement", "DONE"),
                ("wait-ready", "FAILED"),
                ("switch-endpoint", "SKIPPED"),
                ("verify", "SKIPPED"),
                ("rollback-window", "SKIPPED"),
                ("retire", "SKIPPED"),
                ("wait-retired", "SKIPPED"),
                ("retire", "DONE"),
                ("wait-retired", "DONE"),
            ],
            "{backend}"
        );
        assert_eq!(
            store.get_cluster(replacement).await.unwrap().status_code,
            "TERMINATED"
        );
        let original = store.get_cluster(w.original).await.unwrap();
        assert!(
            original.serves_endpoint && original.status_code == "READY",
            "{backend}"
        );
        assert_eq!(w.records().await, before, "{backend}: traffic moved");
        assert_eq!(
            w.groups_of(replacement).await,
            0,
            "{backend}: the replacement's group leaked"
        );
        assert_eq!(store.get_operation(id).await.unwrap().state, "FAILED");
    }
}

#[tokio::test]
async fn a_rollback_inside_the_window_moves_the_endpoint_back_and_retires_the_replacement() {
    for (backend, store) in backends().await {
        let w = world(&store).await;
        let before = w.records().await;
        let id = w.upgrade(600_000, 600_000).await;
        let runner = w.runner("runner", KillSwitch::off());
        // Run until the upgrade waits out its window.
        for _ in 0..200 {
            runner.run(id).await.unwrap();
            let rb = store.get_runbook(id).await.unwrap().unwrap();
            if rb.current().is_some_and(|s| s.name == "rollback-window") {
                break;
            }
            w.round(AgentMode::Ready).await;
        }
        let replacement = store
            .get_runbook(id)
            .await
            .unwrap()
            .unwrap()
            .context
            .replacement_id
            .unwrap();
        assert_eq!(
            w.records().await,
            vec![w.addresses(replacement).await],
            "{backend}"
        );
        // Neither side may be resized or deleted under the upgrade.
        for id in [w.original, replacement] {
            let resize = shared::domain::ClusterUpdate {
                num_nodes: Some(3),
                ..Default::default()
            };
            let e = store.update_cluster(&ctx(), id, &resize).await.unwrap_err();
            assert!(
                e.to_string().contains("under upgrade operation"),
                "{backend}: {e}"
            );
            let e = store.delete_cluster(&ctx(), id).await.unwrap_err();
            assert!(
                e.to_string().contains("under upgrade operation"),
                "{backend}: {e}"
            );
        }
        // Cancel is refused once traffic moved: rollback is the way back.
        let refused = commands::cancel_operation(&store, &ctx(), id).await.unwrap_err();
        assert!(
            refused.to_string().contains("roll it back"),
            "{backend}: {refused}"
        );
        let rollback = commands::rollback_cluster(&store, &ctx(), replacement)
            .await
            .unwrap()
            .operation_id;
        let again = commands::rollback_cluster(&store, &ctx(), w.original)
            .await
            .unwrap_err();
        assert!(again.to_string().contains("CANCELLED"), "{backend}: {again}");
        let rb = w.drive(&runner, rollback, AgentMode::Ready).await;
        assert_eq!(rb.state, "SUCCEEDED", "{backend}: {rb:?}");
        let upgrade = store.get_runbook(id).await.unwrap().unwrap();
        assert_eq!(upgrade.state, "CANCELLED");
        assert_eq!(upgrade.context.rolled_back_by, Some(rollback));
        assert_eq!(w.records().await, before, "{backend}: the endpoint is back");
        let original = store.get_cluster(w.original).await.unwrap();
        assert!(
            original.serves_endpoint && original.status_code == "READY",
            "{backend}"
        );
        assert_eq!(
            store.get_cluster(replacement).await.unwrap().status_code,
            "TERMINATED"
        );
        assert_eq!(w.groups_of(replacement).await, 0);
        // A new upgrade may start again.
        w.upgrade(0, 600_000).await;
    }
}

/// Runs `id` with a runner that dies after `point`'s effect, then with a new
/// one after the dead one's lease ran out, to the end.
async fn killed_then_resumed(w: &World, id: i64, point: &str) -> RunbookRow {
    let doomed = w.runner("doomed", KillSwitch::at(point));
    for _ in 0..200 {
        match doomed.run(id).await {
            Err(RunError::Killed(k)) => {
                assert_eq!(k.0, point);
                tokio::time::sleep(Duration::from_millis(350)).await;
                return w
                    .drive(&w.runner("heir", KillSwitch::off()), id, AgentMode::Ready)
                    .await;
            }
            Ok(_) => w.round(AgentMode::Ready).await,
            Err(e) => panic!("{point}: {e}"),
        }
    }
    panic!("{point} was never reached");
}

#[tokio::test]
async fn a_rollback_or_a_restart_killed_after_any_step_resumes_to_the_same_end_state() {
    for (backend, store) in backends().await {
        for (seq, step) in runbook::rollback_steps().iter().enumerate() {
            let w = world(&store).await;
            let before = w.records().await;
            let upgrade = w.upgrade(600_000, 600_000).await;
            let runner = w.runner("runner", KillSwitch::off());
            for _ in 0..200 {
                runner.run(upgrade).await.unwrap();
                let rb = store.get_runbook(upgrade).await.unwrap().unwrap();
                if rb.current().is_some_and(|s| s.name == "rollback-window") {
                    break;
                }
                w.round(AgentMode::Ready).await;
            }
            let rollback = commands::rollback_cluster(&store, &ctx(), w.original)
                .await
                .unwrap()
                .operation_id;
            let point = format!("{seq}-{}:acted", step.name);
            let rb = killed_then_resumed(&w, rollback, &point).await;
            assert_eq!(rb.state, "SUCCEEDED", "{backend} {point}: {rb:?}");
            assert_eq!(w.records().await, before, "{backend} {point}");
            let replacement = rb.params.replacement_id.unwrap();
            assert_eq!(
                store.get_cluster(replacement).await.unwrap().status_code,
                "TERMINATED"
            );
            assert_eq!(w.groups_of(replacement).await, 0, "{backend} {point}");
            assert_eq!(w.groups_of(w.original).await, 1, "{backend} {point}");
        }
        for point in [
            "0-restart-node:acted",
            "1-wait-node-healthy:acted",
            "2-restart-node:acted",
        ] {
            let w = world(&store).await;
            let restart = commands::restart_cluster(&store, &ctx(), w.original, Default::default())
                .await
                .unwrap()
                .operation_id;
            let rb = killed_then_resumed(&w, restart, point).await;
            assert_eq!(rb.state, "SUCCEEDED", "{backend} {point}: {rb:?}");
            assert_eq!(rb.steps.len(), 4, "{backend} {point}");
            assert!(
                rb.steps.iter().all(|s| s.state == "DONE"),
                "{backend} {point}: {rb:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_scheduled_run_drives_every_due_runbook() {
    for (backend, store) in backends().await {
        let w = world(&store).await;
        let env = store.get_cluster(w.original).await.unwrap().environment_id;
        let other = store
            .create_cluster(&ctx(), &cluster_spec(env, "billing", 1))
            .await
            .unwrap()
            .target_id;
        converge_with_joins(&w.r, &w.fleet, &w.acct, other).await;
        let mut ops = Vec::new();
        for id in [w.original, other] {
            let op = commands::restart_cluster(&store, &ctx(), id, Default::default())
                .await
                .unwrap()
                .operation_id;
            ops.push(op);
        }
        let summary = w.runner("scheduled", KillSwitch::off()).run_due().await.unwrap();
        assert_eq!(
            (summary.runbooks, summary.finished),
            (2, 2),
            "{backend}: {summary:?}"
        );
        for op in ops {
            assert_eq!(
                store.get_operation(op).await.unwrap().state,
                "SUCCEEDED",
                "{backend}"
            );
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
