//! Failover, failback, stand-down and drills across regions, on both databases:
//! the real fence (DynamoDB MRSC), the real promotion (RDS global database),
//! CloudWatch, Route 53 and the reconciler against the emulator, with each
//! region's store read-only while another region's database is the writer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::cloud::aws::{
    AutoScalingAdapter, CloudWatchAdapter, DynamoFence, Ec2Adapter, RdsAdapter, Route53Adapter, S3Adapter,
};
use shared::cloud::{Dns, Fence};
use shared::config::S3Location;
use shared::domain::failover::{
    parse_alarm_event, FailoverRequest, FailoverSpec, FailoverState, Role, DEFAULT_READY_TIMEOUT_MS,
};
use shared::domain::{EnvironmentSpec, ProposedEnvironment};
use shared::store::{RunbookKind, Store, StoreError, WriteCtx, WriterWatch};
use shared::workflows::failover::{
    follow_writer, read_role, start_drill, Desk, Failover, FailoverError, FailoverSettings, FenceDesk,
    RegionSteps,
};
use shared::workflows::kill::KillSwitch;
use shared::workflows::reconcile::Reconciler;
use shared::workflows::runbook::{DnsZone, RunbookSettings, Runner};

use crate::support::{cluster_spec, converge_with_joins, ctx, settings, AwsReconciler, Fleet};

const A: &str = "us-east-1";
const B: &str = "us-west-2";
const C: &str = "eu-west-1";
const GLOBAL: &str = "okera-dm";
const TABLE: &str = "okera-dm-fence";

type TestFailover = Failover<
    DynamoFence,
    RdsAdapter,
    CloudWatchAdapter,
    Route53Adapter,
    Ec2Adapter,
    AutoScalingAdapter,
    S3Adapter,
>;

/// Two (or three) DM regions over one emulator account and one database.
struct World {
    backend: &'static str,
    acct: String,
    regions: Vec<&'static str>,
    stores: BTreeMap<&'static str, Store>,
    zone: DnsZone,
    staging: S3Location,
    fleet: Fleet,
    metric_lines: Arc<Mutex<Vec<String>>>,
    _follower: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self._follower.abort();
    }
}

fn environment(name: &str, region: &str, pair: Option<(i64, i64)>) -> EnvironmentSpec {
    EnvironmentSpec::parse(ProposedEnvironment {
        name: name.into(),
        region: region.into(),
        vpc_id: None,
        subnet_ids: None,
        vpc_cidr: Some("10.20.0.0/16".into()),
        admin_cidr: Some("203.0.113.0/24".into()),
        create_security_group: false,
        failover_for: pair.map(|p| p.0),
        warm_standby_nodes: pair.map(|p| p.1),
    })
    .unwrap()
}

impl World {
    async fn new(backend: &'static str, url: &str, regions: &[&'static str]) -> World {
        let acct = crate::support::account();
        let s = settings(&acct, None);
        let fence = DynamoFence::new(s.clone(), regions[0], TABLE);
        let others: Vec<String> = regions[1..].iter().map(|r| (*r).to_owned()).collect();
        let witness = (regions.len() == 2).then_some("us-east-2");
        fence.ensure_table(&others, witness).await.unwrap();
        let owned: Vec<String> = regions.iter().map(|r| (*r).to_owned()).collect();
        let rds = RdsAdapter::new(s.clone());
        let gdb = rds.ensure_global(GLOBAL, &owned).await.unwrap();
        assert_eq!(gdb.writer().map(|w| w.region.as_str()), Some(regions[0]));
        let watch = WriterWatch::new(Some(regions[0]));
        let follower = tokio::spawn(follow_writer(
            rds,
            regions[0].to_owned(),
            GLOBAL.into(),
            watch.clone(),
            Duration::from_millis(25),
        ));
        let mut stores = BTreeMap::new();
        for r in regions {
            stores.insert(*r, Store::connect_regional(url, r, watch.clone()).await.unwrap());
        }
        let zone_id = Route53Adapter::new(s.clone())
            .ensure_zone("failover.test")
            .await
            .unwrap();
        let staging = S3Location::parse(&format!("s3://dm-{acct}/staging")).unwrap();
        S3Adapter::new(s, B).ensure_bucket(&staging.bucket).await.unwrap();
        World {
            backend,
            acct,
            regions: regions.to_vec(),
            stores,
            zone: DnsZone {
                id: zone_id,
                name: "failover.test".into(),
            },
            staging,
            fleet: Fleet::default(),
            metric_lines: Arc::default(),
            _follower: follower,
        }
    }

    fn store(&self, region: &str) -> &Store {
        &self.stores[region]
    }

    fn settings(&self, region: &str) -> FailoverSettings {
        FailoverSettings {
            region: region.to_owned(),
            dm_regions: self.regions.iter().map(|r| (*r).to_owned()).collect(),
            fence_table: TABLE.into(),
            global_db: GLOBAL.into(),
            db_cluster: format!("{GLOBAL}-{region}"),
            health_alarms: self
                .regions
                .iter()
                .filter(|r| **r != region)
                .map(|r| (format!("okera-dm-region-health-{r}"), (*r).to_owned()))
                .collect(),
            automatic: true,
            max_lag_ms: 60_000,
            promotion_timeout_ms: 20_000,
            poll_ms: 20,
            heartbeat_max_age_s: 30.0,
        }
    }

    fn fence(&self, region: &str) -> DynamoFence {
        DynamoFence::new(settings(&self.acct, None), region, TABLE)
    }

    fn failover_with(
        &self,
        region: &str,
        owner: &str,
        kill: KillSwitch,
        s: FailoverSettings,
    ) -> TestFailover {
        let aws = settings(&self.acct, None);
        let lines = self.metric_lines.clone();
        Failover {
            fence: self.fence(region),
            db: RdsAdapter::new(aws.clone()),
            runner: Runner {
                store: self.store(region).clone(),
                steps: RegionSteps {
                    metrics: CloudWatchAdapter::new(aws.clone()),
                    dns: Route53Adapter::new(aws.clone()),
                    compute: Ec2Adapter::new(aws.clone()),
                    scaling: AutoScalingAdapter::new(aws.clone()),
                    objects: S3Adapter::new(aws, B),
                    zone: Some(self.zone.clone()),
                    staging: self.staging.clone(),
                    kick: Arc::new(|_| Box::pin(async {})),
                    dm_regions: s.dm_regions.clone(),
                    replicas: self
                        .stores
                        .iter()
                        .filter(|(r, _)| **r != region)
                        .map(|(r, st)| ((*r).to_owned(), st.clone()))
                        .collect(),
                },
                settings: RunbookSettings {
                    lease_ms: 300,
                    budget: Duration::ZERO,
                    poll_ms: 20,
                    ..Default::default()
                },
                owner: owner.into(),
                kill,
            },
            settings: s,
            emit: Arc::new(move |line| lines.lock().unwrap().push(line.to_owned())),
        }
    }

    fn failover(&self, region: &str) -> TestFailover {
        self.failover_with(
            region,
            &format!("fo-{region}"),
            KillSwitch::off(),
            self.settings(region),
        )
    }

    fn desk(&self, region: &str) -> FenceDesk<DynamoFence, CloudWatchAdapter> {
        FenceDesk::new(
            Arc::new(self.fence(region)),
            CloudWatchAdapter::new(settings(&self.acct, None)),
            self.store(region).clone(),
            self.settings(region),
            Arc::new(|_| Box::pin(async {})),
        )
    }

    /// A failover request to `region`'s desk, as `principal`, without a key.
    async fn ask(
        &self,
        region: &str,
        spec: FailoverSpec,
        principal: &str,
    ) -> Result<FailoverRequest, FailoverError> {
        let ctx = WriteCtx {
            principal: principal.into(),
            idempotency: None,
        };
        Ok(self.desk(region).request(spec, ctx).await?.request)
    }

    /// The reconciler of `region`'s DM (it manages every region's resources).
    fn reconciler(&self, region: &str) -> AwsReconciler {
        let s = settings(&self.acct, None);
        Reconciler {
            store: self.store(region).clone(),
            compute: Ec2Adapter::new(s.clone()),
            scaling: AutoScalingAdapter::new(s.clone()),
            objects: S3Adapter::new(s.clone(), B),
            metrics: CloudWatchAdapter::new(s.clone()),
            dns: Route53Adapter::new(s),
            zone: Some(self.zone.clone()),
            staging: self.staging.clone(),
            node_ami: "ami-12c6146b".into(),
            node_instance_profile: None,
            owner: format!("reconciler-{region}"),
        }
    }

    /// The active region is A: an environment there with `clusters` READY
    /// clusters of 2 nodes, its partner in B (warm standby `warm`), and A's
    /// schedule run once (serving alarm, health checks, standby partners).
    async fn pair(&self, warm: i64, clusters: usize) -> (i64, i64, Vec<i64>) {
        let r = self.reconciler(A);
        let store = self.store(A);
        assert!(read_role(&self.fence(A), store, A).await.is_active());
        let env_a = store
            .create_environment(&ctx(), &environment("prod", A, None))
            .await
            .unwrap()
            .target_id;
        r.reconcile_environment(env_a).await.unwrap();
        let env_b = store
            .create_environment(&ctx(), &environment("prod-b", B, Some((env_a, warm))))
            .await
            .unwrap()
            .target_id;
        r.reconcile_environment(env_b).await.unwrap();
        self.failover(A).tick().await.unwrap();
        let mut ids = Vec::new();
        for i in 0..clusters {
            let id = store
                .create_cluster(&ctx(), &cluster_spec(env_a, &format!("c{i}"), 2))
                .await
                .unwrap()
                .target_id;
            converge_with_joins(&r, &self.fleet, &self.acct, id).await;
            assert_eq!(
                store.get_cluster(id).await.unwrap().status_code,
                "READY",
                "[{}]",
                self.backend
            );
            ids.push(id);
        }
        // The standby partners of a warm pair, made and brought to their size.
        self.failover(A).tick().await.unwrap();
        for c in store.list_clusters(Some(env_b)).await.unwrap() {
            converge_with_joins(&r, &self.fleet, &self.acct, c.id).await;
        }
        (env_a, env_b, ids)
    }

    fn resolve(&self, cluster_name: &str) -> emulator::Resolved {
        emulator::shared()
            .resolve(
                &self.acct,
                &self.zone.id,
                &format!("{cluster_name}.prod.failover.test"),
            )
            .unwrap()
    }

    /// The addresses of a cluster's nodes in service.
    async fn ips(&self, region: &str, id: i64) -> Vec<String> {
        let mut ips: Vec<String> = self
            .store(region)
            .nodes_of(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.lifecycle_state == "InService")
            .filter_map(|n| n.private_ip)
            .collect();
        ips.sort();
        ips
    }

    /// Drives `id` with `f` to its end, doing what the rest of the DM does
    /// meanwhile: the active region reconciles the clusters that move.
    async fn finish(&self, f: &TestFailover, id: &str) -> FailoverRequest {
        for _ in 0..60 {
            let req = f.drive(id).await.unwrap();
            if req.state.ended() {
                return req;
            }
            self.converge_moving(f).await;
        }
        panic!("[{}] failover {id} did not end", self.backend);
    }

    /// Reconciles (with joins) every cluster of the region runbooks that run.
    async fn converge_moving(&self, f: &TestFailover) {
        let region = &f.settings.region;
        let store = self.store(region);
        if !store.is_writer().await.unwrap() {
            return;
        }
        let r = self.reconciler(region);
        for kind in RunbookKind::REGION {
            for rb in store.region_runbooks(kind, 5).await.unwrap() {
                for m in rb.context.moves.clone().unwrap_or_default() {
                    converge_with_joins(&r, &self.fleet, &self.acct, m.to).await;
                    converge_with_joins(&r, &self.fleet, &self.acct, m.from).await;
                }
            }
        }
    }

    fn spec(&self, to: &str, planned: bool) -> FailoverSpec {
        FailoverSpec {
            to: to.into(),
            planned,
            dry_run: false,
            force: false,
            ready_timeout_ms: DEFAULT_READY_TIMEOUT_MS,
        }
    }

    fn alarm(
        &self,
        id: &str,
        state: &str,
        watched: &str,
        target: &str,
    ) -> shared::domain::failover::AlarmChange {
        let event = serde_json::json!({
            "version": "0", "id": id, "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": self.acct, "time": "2026-12-01T10:00:05Z",
            "region": target, "resources": [],
            "detail": {"alarmName": format!("okera-dm-region-health-{watched}"),
                "state": {"value": state, "reason": "test", "timestamp": format_now()},
                "previousState": {"value": "OK"}}
        });
        parse_alarm_event(&event).unwrap()
    }

    async fn leader(&self) -> shared::domain::failover::Leader {
        self.fence(A).leader().await.unwrap().unwrap()
    }
}

fn format_now() -> String {
    let ms = shared::time::now_ms();
    let s = shared::time::format_ms(ms);
    format!("{}T{}+0000", &s[..10], &s[11..])
}

async fn worlds(regions: &[&'static str]) -> Vec<World> {
    let mut out = Vec::new();
    for (backend, url) in testkit::all_backends().await {
        out.push(World::new(backend, &url, regions).await);
    }
    out
}

#[tokio::test]
async fn an_unplanned_failover_moves_leadership_database_clusters_and_traffic_and_fails_back() {
    for w in worlds(&[A, B]).await {
        let (env_a, env_b, ids) = w.pair(1, 2).await;
        let partners: Vec<i64> = w
            .store(A)
            .list_clusters(Some(env_b))
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(partners.len(), 2, "[{}] warm partners", w.backend);
        assert_eq!(w.resolve("c0").values, w.ips(A, ids[0]).await, "[{}]", w.backend);

        let req = w.ask(B, w.spec(B, false), "tester").await.unwrap();
        let fb = w.failover(B);
        let done = w.finish(&fb, &req.id).await;
        assert_eq!(
            done.state,
            FailoverState::Succeeded,
            "[{}] {:?}",
            w.backend,
            done.error
        );
        assert_eq!((w.leader().await.epoch, w.leader().await.region.as_str()), (2, B));
        assert!(w.store(B).is_writer().await.unwrap() && !w.store(A).is_writer().await.unwrap());
        // The old region stands by, knows it lost, and its writes are refused.
        match read_role(&w.fence(A), w.store(A), A).await {
            r @ Role::Standby(Some(_)) => assert!(r.describe(A).contains("lost leadership to us-west-2")),
            other => panic!("[{}] {other:?}", w.backend),
        }
        let refused = w
            .store(A)
            .create_environment(&ctx(), &environment("late", A, None))
            .await;
        assert!(
            matches!(refused, Err(StoreError::ReadOnly { .. })),
            "[{}] {refused:?}",
            w.backend
        );
        // Traffic: each name answers with its partner's nodes, through the
        // failover records; the old side is parked.
        for (name, partner) in [("c0", partners[0]), ("c1", partners[1])] {
            let answer = w.resolve(name);
            assert_eq!(
                answer.failover.as_deref(),
                Some("SECONDARY"),
                "[{}] {name}",
                w.backend
            );
            assert_eq!(answer.values, w.ips(B, partner).await, "[{}] {name}", w.backend);
        }
        for id in &ids {
            assert!(
                w.store(B).get_cluster(*id).await.unwrap().parked,
                "[{}]",
                w.backend
            );
        }
        let rb = w
            .store(B)
            .get_runbook(done.operation_id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rb.state, "SUCCEEDED");
        let report = rb.context.report.clone().unwrap();
        assert!(report["rtoMs"].as_i64().is_some_and(|r| r >= 0), "{report}");
        assert_eq!(
            rb.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            shared::workflows::failover::STEP_NAMES,
        );
        assert_eq!(w.store(B).leadership_history(5).await.unwrap()[0].epoch, 2);
        assert!(w
            .metric_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("FailoverSucceeded")));

        // Failback, planned: the original clusters take the traffic again.
        let back = w.ask(A, w.spec(A, true), "tester").await.unwrap();
        let done = w.finish(&w.failover(A), &back.id).await;
        assert_eq!(
            done.state,
            FailoverState::Succeeded,
            "[{}] {:?}",
            w.backend,
            done.error
        );
        assert_eq!((w.leader().await.epoch, w.leader().await.region.as_str()), (3, A));
        assert!(w.store(A).is_writer().await.unwrap());
        let answer = w.resolve("c0");
        assert_eq!(answer.failover.as_deref(), Some("PRIMARY"), "[{}]", w.backend);
        assert_eq!(answer.values, w.ips(A, ids[0]).await, "[{}]", w.backend);
        assert!(w.store(A).get_cluster(partners[0]).await.unwrap().parked);
        let env = w.store(A).get_environment(env_a).await.unwrap();
        assert!(env.pair_serving, "[{}]", w.backend);
    }
}

#[tokio::test]
async fn a_failover_killed_after_each_step_resumes_to_the_same_end() {
    let points = [
        "claim-leadership:acted",
        "promote-database:before",
        "promote-database:asking",
        "promote-database:acted",
        "2-bring-up-clusters:acted",
        "3-wait-ready:acted",
        "4-switch-traffic:acted",
        "5-fence-old-region:acted",
        "6-record:acted",
    ];
    for point in points {
        for (backend, url) in testkit::all_backends().await {
            let w = World::new(backend, &url, &[A, B]).await;
            let (_, env_b, ids) = w.pair(0, 1).await;
            let req = w.ask(B, w.spec(B, false), "tester").await.unwrap();
            let killed = w.failover_with(B, "first", KillSwitch::at(point), w.settings(B));
            let mut stopped = false;
            for _ in 0..60 {
                match killed.drive(&req.id).await {
                    Err(FailoverError::Killed(_)) => {
                        stopped = true;
                        break;
                    }
                    Ok(r) if r.state.ended() => break,
                    Ok(_) => w.converge_moving(&killed).await,
                    Err(e) => panic!("[{backend}] {point}: {e}"),
                }
            }
            assert!(stopped, "[{backend}] the kill at {point} was never reached");
            // Another runner takes over once the lease of the dead one ran out.
            tokio::time::sleep(Duration::from_millis(400)).await;
            let done = w
                .finish(
                    &w.failover_with(B, "second", KillSwitch::off(), w.settings(B)),
                    &req.id,
                )
                .await;
            assert_eq!(
                done.state,
                FailoverState::Succeeded,
                "[{backend}] {point}: {:?}",
                done.error
            );
            let l = w.leader().await;
            assert_eq!(
                (l.epoch, l.region.as_str()),
                (2, B),
                "[{backend}] {point}: one claim"
            );
            let partners = w.store(B).list_clusters(Some(env_b)).await.unwrap();
            assert_eq!(partners.len(), 1, "[{backend}] {point}: one partner, not two");
            assert_eq!(
                w.resolve("c0").values,
                w.ips(B, partners[0].id).await,
                "[{backend}] {point}"
            );
            assert!(
                w.store(B).get_cluster(ids[0]).await.unwrap().parked,
                "[{backend}] {point}"
            );
            let runbooks = w
                .store(B)
                .region_runbooks(RunbookKind::Failover, 5)
                .await
                .unwrap();
            assert_eq!(runbooks.len(), 1, "[{backend}] {point}: one runbook");
        }
    }
}

#[tokio::test]
async fn duplicate_and_flapping_alarms_fail_over_once_and_never_back() {
    for w in worlds(&[A, B]).await {
        let (_, _, ids) = w.pair(0, 1).await;
        let fb = w.failover(B);
        // The alarm fires; the run stops at its first wait (budget zero).
        let first = fb.on_alarm(&w.alarm("evt-1", "ALARM", A, B)).await.unwrap();
        assert_eq!(first["state"], "RUNNING", "[{}] {first}", w.backend);
        // Mid-run: the same event again, the alarm going back to OK, and
        // firing again as a new event: none starts a second failover or a failback.
        let again = fb.on_alarm(&w.alarm("evt-1", "ALARM", A, B)).await.unwrap();
        assert_eq!(again["failoverId"], "evt-1", "[{}]", w.backend);
        let ok = fb.on_alarm(&w.alarm("evt-2", "OK", A, B)).await.unwrap();
        assert!(ok["ignored"]
            .as_str()
            .unwrap()
            .contains("failback is always deliberate"));
        let flapped = fb.on_alarm(&w.alarm("evt-3", "ALARM", A, B)).await.unwrap();
        assert!(
            flapped["ignored"]
                .as_str()
                .unwrap()
                .contains("not the active region"),
            "{flapped}"
        );
        // An alarm in A about B (B is active now, by an automated failover)
        // does not fail back: automation waits for an operator.
        let back = w
            .failover(A)
            .on_alarm(&w.alarm("evt-4", "ALARM", B, A))
            .await
            .unwrap();
        assert!(
            back["ignored"]
                .as_str()
                .unwrap_or_default()
                .contains("stays off until an operator"),
            "{back}"
        );
        let done = w.finish(&fb, "evt-1").await;
        assert_eq!(
            done.state,
            FailoverState::Succeeded,
            "[{}] {:?}",
            w.backend,
            done.error
        );
        let after = fb.on_alarm(&w.alarm("evt-5", "OK", A, B)).await.unwrap();
        assert!(after.get("ignored").is_some());
        let l = w.leader().await;
        assert_eq!(
            (l.epoch, l.region.as_str()),
            (2, B),
            "[{}] exactly one failover",
            w.backend
        );
        assert_eq!(w.fence(B).requests().await.unwrap().len(), 1, "[{}]", w.backend);
        assert_eq!(
            w.store(B)
                .region_runbooks(RunbookKind::Failover, 5)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(w.store(B).get_cluster(ids[0]).await.unwrap().parked);
    }
}

#[tokio::test]
async fn a_failed_promotion_keeps_the_old_writer_hands_the_epoch_back_and_alerts() {
    for w in worlds(&[A, B]).await {
        let (_, env_b, ids) = w.pair(0, 1).await;
        emulator::shared()
            .inject_fault(
                &emulator::FaultRule::new(
                    "rds",
                    "FailoverGlobalCluster",
                    400,
                    "InvalidGlobalClusterStateFault",
                    1,
                )
                .account(&w.acct),
            )
            .unwrap();
        let req = w.ask(B, w.spec(B, false), "tester").await.unwrap();
        let done = w.finish(&w.failover(B), &req.id).await;
        assert_eq!(done.state, FailoverState::Failed, "[{}]", w.backend);
        let error = done.error.unwrap();
        assert!(
            error.contains("promotion failed") && error.contains("the writer stays in us-east-1"),
            "{error}"
        );
        let l = w.leader().await;
        assert_eq!(
            (l.epoch, l.region.as_str()),
            (3, A),
            "[{}] the epoch went back",
            w.backend
        );
        assert!(w.store(A).is_writer().await.unwrap() && !w.store(B).is_writer().await.unwrap());
        assert!(read_role(&w.fence(A), w.store(A), A).await.is_active());
        // Nothing else changed: no partner, no runbook, A's cluster serves.
        assert!(w.store(A).list_clusters(Some(env_b)).await.unwrap().is_empty());
        assert!(!w.store(A).get_cluster(ids[0]).await.unwrap().parked);
        assert!(w
            .store(A)
            .region_runbooks(RunbookKind::Failover, 5)
            .await
            .unwrap()
            .is_empty());
        assert!(w
            .metric_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("FailoverFailed")));

        // A promotion that never completes (the emulator's answers fail) ends
        // the same way once the promotion timeout passes.
        emulator::shared()
            .inject_fault(
                &emulator::FaultRule::new("rds", "FailoverGlobalCluster", 503, "ServiceUnavailable", 1000)
                    .account(&w.acct),
            )
            .unwrap();
        let req = w.ask(B, w.spec(B, false), "tester").await.unwrap();
        let s = FailoverSettings {
            promotion_timeout_ms: 1_000,
            ..w.settings(B)
        };
        let slow = w.failover_with(B, "slow", KillSwitch::off(), s);
        let done = w.finish(&slow, &req.id).await;
        assert_eq!(done.state, FailoverState::Failed, "[{}]", w.backend);
        assert!(done.error.unwrap().contains("did not complete within 1 s"));
        assert_eq!(w.leader().await.region, A);
    }
}

#[tokio::test]
async fn a_target_short_of_capacity_moves_what_fits_and_names_what_did_not() {
    for w in worlds(&[A, B]).await {
        let (_, env_b, ids) = w.pair(0, 2).await;
        // Room in B for one cluster of two nodes.
        emulator::shared()
            .set_capacity(&w.acct, B, "t2.large", Some(2))
            .unwrap();
        let spec = FailoverSpec {
            ready_timeout_ms: 1_500,
            ..w.spec(B, false)
        };
        let req = w.ask(B, spec, "tester").await.unwrap();
        let done = w.finish(&w.failover(B), &req.id).await;
        assert_eq!(done.state, FailoverState::Failed, "[{}]", w.backend);
        let error = done.error.unwrap();
        assert!(error.contains("not READY in us-west-2"), "{error}");
        // The region moved; the cluster that came up serves from B.
        assert_eq!(w.leader().await.region, B);
        let partners = w.store(B).list_clusters(Some(env_b)).await.unwrap();
        let ready: Vec<_> = partners.iter().filter(|c| c.status_code == "READY").collect();
        assert_eq!(ready.len(), 1, "[{}] {partners:?}", w.backend);
        let moved = &ready[0].name;
        assert_eq!(w.resolve(moved).values, w.ips(B, ready[0].id).await);
        assert!(error.contains(&format!(
            "cluster {}",
            partners.iter().find(|c| c.status_code != "READY").unwrap().id
        )));
        assert_eq!(ids.len(), 2);
        emulator::shared()
            .set_capacity(&w.acct, B, "t2.large", None)
            .unwrap();
    }
}

#[tokio::test]
async fn a_failover_and_a_drill_refuse_each_other() {
    for w in worlds(&[A, B]).await {
        w.pair(0, 1).await;
        let role_a = read_role(&w.fence(A), w.store(A), A).await;
        let drill_spec = shared::domain::failover::DrillSpec {
            to: B.into(),
            ready_timeout_ms: 60_000,
        };
        let drill = start_drill(
            w.store(A),
            &role_a,
            A,
            &w.settings(A).dm_regions,
            &ctx(),
            &drill_spec,
        )
        .await
        .unwrap();
        let refused = w.ask(B, w.spec(B, false), "tester").await.unwrap_err();
        assert!(
            refused.to_string().contains("no-drill-running"),
            "[{}] {refused}",
            w.backend
        );
        let again = start_drill(
            w.store(A),
            &role_a,
            A,
            &w.settings(A).dm_regions,
            &ctx(),
            &drill_spec,
        )
        .await
        .unwrap_err();
        assert!(again.to_string().contains("drill"), "{again}");
        // With the drill cancelled and ended, a failover goes; a drill then is
        // refused by the new standby, and by a running failover in the writer.
        w.store(A)
            .request_cancel(&ctx(), drill.operation_id, |_| Ok(()))
            .await
            .unwrap();
        let fa = w.failover(A);
        for _ in 0..40 {
            let _ = fa.run_runbook(drill.operation_id).await;
            w.converge_moving(&fa).await;
            if w.store(A)
                .get_runbook(drill.operation_id)
                .await
                .unwrap()
                .unwrap()
                .finished()
            {
                break;
            }
        }
        let req = w.ask(B, w.spec(B, false), "tester").await.unwrap();
        let fb = w.failover(B);
        let running = fb.drive(&req.id).await.unwrap();
        assert_eq!(running.state, FailoverState::Running, "[{}]", w.backend);
        let role_b = read_role(&w.fence(B), w.store(B), B).await;
        let during = start_drill(
            w.store(B),
            &role_b,
            B,
            &w.settings(B).dm_regions,
            &ctx(),
            &shared::domain::failover::DrillSpec {
                to: A.into(),
                ready_timeout_ms: 60_000,
            },
        )
        .await
        .unwrap_err();
        assert!(
            during.to_string().contains("failover"),
            "[{}] {during}",
            w.backend
        );
        let old = start_drill(
            w.store(A),
            &read_role(&w.fence(A), w.store(A), A).await,
            A,
            &w.settings(A).dm_regions,
            &ctx(),
            &drill_spec,
        )
        .await
        .unwrap_err();
        assert!(old.to_string().contains("active region"), "{old}");
        w.finish(&fb, &req.id).await;
    }
}

#[tokio::test]
async fn racing_failovers_to_one_target_or_two_end_with_exactly_one_active_region() {
    for w in worlds(&[A, B, C]).await {
        w.pair(0, 0).await;
        // Two requests to B at once, and one to C: one claim wins.
        let r1 = w.ask(B, w.spec(B, false), "one").await.unwrap();
        let r2 = FailoverRequest {
            id: "second-to-b".into(),
            ..r1.clone()
        };
        let r3 = FailoverRequest {
            id: "third-to-c".into(),
            to: C.into(),
            ..r1.clone()
        };
        for r in [&r2, &r3] {
            assert!(w.fence(r.to.as_str()).create_request(r).await.unwrap());
        }
        let (fb1, fb2, fc) = (
            w.failover(B),
            w.failover_with(B, "b2", KillSwitch::off(), w.settings(B)),
            w.failover(C),
        );
        let (a, b, c) = tokio::join!(fb1.drive(&r1.id), fb2.drive(&r2.id), fc.drive(&r3.id));
        let states = [a.unwrap().state, b.unwrap().state, c.unwrap().state];
        let winners = states
            .iter()
            .filter(|s| !matches!(s, FailoverState::Lost | FailoverState::Refused))
            .count();
        assert_eq!(winners, 1, "[{}] {states:?}", w.backend);
        let l = w.leader().await;
        assert_eq!(l.epoch, 2, "[{}]", w.backend);
        let active: Vec<&str> = w.regions.iter().copied().filter(|r| l.region == *r).collect();
        assert_eq!(active.len(), 1);
        for r in &w.regions {
            let role = read_role(&w.fence(r), w.store(r), r).await;
            assert_eq!(role.is_active(), *r == l.region, "[{}] {r}: {role:?}", w.backend);
        }
    }
}

#[tokio::test]
async fn a_drill_stands_up_copies_reads_the_replica_tears_down_and_leaves_nothing() {
    for w in worlds(&[A, B]).await {
        let (_, env_b, ids) = w.pair(0, 1).await;
        let before = w.resolve("c0");
        let role = read_role(&w.fence(A), w.store(A), A).await;
        let drill = start_drill(
            w.store(A),
            &role,
            A,
            &w.settings(A).dm_regions,
            &ctx(),
            &shared::domain::failover::DrillSpec {
                to: B.into(),
                ready_timeout_ms: 60_000,
            },
        )
        .await
        .unwrap();
        let fa = w.failover(A);
        let mut rb = None;
        for _ in 0..80 {
            fa.run_runbook(drill.operation_id).await.unwrap();
            w.converge_moving(&fa).await;
            let now = w.store(A).get_runbook(drill.operation_id).await.unwrap().unwrap();
            if now.finished() {
                rb = Some(now);
                break;
            }
        }
        let rb = rb.expect("the drill ended");
        assert_eq!(rb.state, "SUCCEEDED", "[{}] {:?}", w.backend, rb.error);
        let report = rb.context.report.clone().unwrap();
        assert!(report["rtoMs"].as_i64().is_some_and(|r| r > 0), "{report}");
        assert_eq!(report["leaks"], serde_json::json!([]), "[{}]", w.backend);
        let verify = rb.steps.iter().find(|s| s.name == "verify-replica").unwrap();
        assert!(
            verify.result.as_deref().unwrap().contains("replica shows drill"),
            "{verify:?}"
        );
        // Nothing moved: the leader, the writer, the endpoint, the clusters.
        assert_eq!(w.leader().await.epoch, 1);
        assert!(w.store(A).is_writer().await.unwrap());
        assert_eq!(w.resolve("c0"), before);
        assert!(!w.store(A).get_cluster(ids[0]).await.unwrap().parked);
        let left = w.store(A).list_clusters(Some(env_b)).await.unwrap();
        assert!(
            left.iter().all(|c| c.status_code == "TERMINATED"),
            "[{}] {left:?}",
            w.backend
        );
        assert_eq!(
            w.store(A)
                .region_runbooks(RunbookKind::Drill, 5)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn a_dry_run_names_what_would_move_and_changes_nothing() {
    for w in worlds(&[A, B]).await {
        let (_, _, ids) = w.pair(1, 1).await;
        let plan = w
            .desk(B)
            .plan(FailoverSpec {
                dry_run: true,
                ..w.spec(B, false)
            })
            .await
            .unwrap();
        assert_eq!(plan.from.as_deref(), Some(A));
        assert!(
            plan.preconditions.iter().all(|c| c.ok),
            "{:?}",
            plan.preconditions
        );
        assert_eq!(plan.clusters.len(), 1);
        assert!(
            plan.clusters[0].action.starts_with("unpark standby cluster"),
            "{:?}",
            plan.clusters
        );
        assert!(w.fence(B).requests().await.unwrap().is_empty());
        assert_eq!(w.leader().await.epoch, 1);
        // Sent to the wrong region, it says where to send it.
        let wrong = w.desk(A).plan(w.spec(B, false)).await.unwrap_err();
        assert!(wrong.to_string().contains("OCADM_ENDPOINT_US_WEST_2"), "{wrong}");
        let _ = ids;
    }
}

#[tokio::test]
async fn leases_the_old_region_held_do_not_hold_the_new_region_up() {
    for w in worlds(&[A, B]).await {
        let (env_a, _, ids) = w.pair(0, 1).await;
        // A's reconciler is in the middle of a run when the writer moves: its
        // lease would block B for two minutes, and A can no longer give it back.
        assert!(w
            .store(A)
            .claim_cluster(ids[0], "old-region-run", 120_000)
            .await
            .unwrap());
        assert!(w
            .store(A)
            .claim_environment(env_a, "old-region-run", 120_000)
            .await
            .unwrap());
        let req = w.ask(B, w.spec(B, false), "tester").await.unwrap();
        let done = w.finish(&w.failover(B), &req.id).await;
        assert_eq!(
            done.state,
            FailoverState::Succeeded,
            "[{}] {:?}",
            w.backend,
            done.error
        );
        assert!(
            w.store(B)
                .claim_cluster(ids[0], "new-region-run", 1_000)
                .await
                .unwrap(),
            "[{}] the old lease is gone",
            w.backend
        );
        assert!(w
            .store(B)
            .claim_environment(env_a, "new-region-run", 1_000)
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn two_drivers_of_one_request_end_with_one_claim_and_one_runbook() {
    for w in worlds(&[A, B]).await {
        let (_, env_b, _) = w.pair(0, 1).await;
        // The API's wake-up and the schedule drive the same request at once.
        let req = w.ask(B, w.spec(B, true), "tester").await.unwrap();
        let (one, two) = (
            w.failover_with(B, "one", KillSwitch::off(), w.settings(B)),
            w.failover_with(B, "two", KillSwitch::off(), w.settings(B)),
        );
        let (a, b) = tokio::join!(one.drive(&req.id), two.drive(&req.id));
        for r in [a, b] {
            let r = r.unwrap();
            assert!(
                !matches!(r.state, FailoverState::Failed | FailoverState::Lost),
                "[{}] {r:?}",
                w.backend
            );
        }
        let done = w.finish(&one, &req.id).await;
        assert_eq!(
            done.state,
            FailoverState::Succeeded,
            "[{}] {:?}",
            w.backend,
            done.error
        );
        assert_eq!(w.leader().await.epoch, 2, "[{}] one claim", w.backend);
        assert_eq!(
            w.store(B)
                .region_runbooks(RunbookKind::Failover, 5)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(w.store(B).list_clusters(Some(env_b)).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_request_sent_again_with_its_idempotency_key_is_one_failover() {
    for w in worlds(&[A, B]).await {
        w.pair(0, 1).await;
        let keyed = |fingerprint: &str| WriteCtx {
            principal: "tester".into(),
            idempotency: Some(("retry-1".into(), fingerprint.into())),
        };
        let first = w.desk(B).request(w.spec(B, true), keyed("f1")).await.unwrap();
        assert!(!first.replayed);
        // The retry comes while the first is in flight, which the preconditions
        // would refuse as a new request: it answers the first one instead.
        let again = w.desk(B).request(w.spec(B, true), keyed("f1")).await.unwrap();
        assert!(again.replayed, "[{}]", w.backend);
        assert_eq!(again.request.id, first.request.id);
        let reused = w.desk(B).request(w.spec(B, true), keyed("f2")).await.unwrap_err();
        assert!(
            matches!(&reused, FailoverError::KeyReused(m) if m.contains("retry-1")),
            "[{}] {reused}",
            w.backend
        );
        let done = w.finish(&w.failover(B), &first.request.id).await;
        assert_eq!(
            done.state,
            FailoverState::Succeeded,
            "[{}] {:?}",
            w.backend,
            done.error
        );
        let late = w.desk(B).request(w.spec(B, true), keyed("f1")).await.unwrap();
        assert!(late.replayed);
        assert_eq!(late.request.state, FailoverState::Succeeded);
        assert_eq!(w.leader().await.epoch, 2, "[{}] one claim", w.backend);
        assert_eq!(w.fence(B).requests().await.unwrap().len(), 1);
    }
}
