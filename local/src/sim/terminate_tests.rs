//! The terminate path of the lifecycle function against a simulated agent: a
//! leaving node's pending log lines are in the staging bucket (the emulator's)
//! before `CONTINUE` is sent, whether or not periodic uploads run meanwhile;
//! and a flush that hangs or fails holds the node no longer than the bound.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
use shared::cloud::aws::{AwsSettings, Ec2Adapter, S3Adapter};
use shared::cloud::{
    ActionResult, CloudResult, Group, GroupSpec, HookSpec, LifecycleAction, ObjectStore, Scaling,
};
use shared::config::S3Location;
use shared::domain::health::SERVICES;
use shared::domain::logs::{parse_log_key, LogClock, LogKey};
use shared::domain::{
    ClusterSpec, EnvironmentSpec, EnvironmentStatus, InstanceSize, ProposedCluster, ProposedEnvironment,
};
use shared::store::{EnvironmentObservation, JoiningNode, Store, WriteCtx};
use shared::workflows::lifecycle::{Lifecycle, Timing, TERMINATE_HOOK};

use super::agent::{lock, AgentServer, Identity, NodeMode};
use super::logs::{seq_of, LogSettings};

const REGION: &str = "us-west-2";

/// Each service's stored line numbers, from the parts under one node's folder.
async fn stored_lines(
    objects: &S3Adapter,
    staging: &S3Location,
    cluster: i64,
    instance: &str,
) -> BTreeMap<String, Vec<u64>> {
    let prefix = staging.key(&format!("logs/{cluster}/{instance}/"));
    let mut by_service: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for key in objects.list(&staging.bucket, &prefix).await.unwrap() {
        let relative = key.strip_prefix(&staging.key("")).unwrap();
        let Ok(LogKey::Part { hour, gzip: false }) = parse_log_key(relative) else {
            panic!("{key} is not a part in the layout");
        };
        let body = objects.get(&staging.bucket, &key).await.unwrap().unwrap();
        for line in String::from_utf8(body).unwrap().lines() {
            by_service
                .entry(hour.service.clone())
                .or_default()
                .push(seq_of(line).unwrap());
        }
    }
    for seqs in by_service.values_mut() {
        seqs.sort_unstable();
    }
    by_service
}

/// A completed action: the instance, the result, and its stored lines by service.
type Completed = (String, ActionResult, BTreeMap<String, Vec<u64>>);

/// Auto Scaling as far as the terminate path uses it: it records each completed
/// action with the node's log lines in the bucket at that moment.
struct Recorder {
    objects: S3Adapter,
    staging: S3Location,
    cluster: i64,
    completed: Mutex<Vec<Completed>>,
}

impl Scaling for Recorder {
    async fn complete_action(
        &self,
        _region: &str,
        action: &LifecycleAction,
        result: ActionResult,
    ) -> CloudResult<()> {
        let lines = stored_lines(&self.objects, &self.staging, self.cluster, &action.instance_id).await;
        self.completed
            .lock()
            .unwrap()
            .push((action.instance_id.clone(), result, lines));
        Ok(())
    }
    async fn groups_tagged(&self, _: &str, _: &str, _: &str) -> CloudResult<Vec<Group>> {
        unreachable!("the terminate path completes actions only")
    }
    async fn create_group(&self, _: &str, _: &GroupSpec) -> CloudResult<()> {
        unreachable!("the terminate path completes actions only")
    }
    async fn resize_group(&self, _: &str, _: &str, _: i32, _: i32, _: i32) -> CloudResult<()> {
        unreachable!("the terminate path completes actions only")
    }
    async fn delete_group(&self, _: &str, _: &str) -> CloudResult<()> {
        unreachable!("the terminate path completes actions only")
    }
    async fn groups_named(&self, _: &str, _: &[String]) -> CloudResult<Vec<Group>> {
        unreachable!("the terminate path completes actions only")
    }
    async fn hooks(&self, _: &str, _: &str) -> CloudResult<Vec<String>> {
        unreachable!("the terminate path completes actions only")
    }
    async fn put_hook(&self, _: &str, _: &str, _: &HookSpec) -> CloudResult<()> {
        unreachable!("the terminate path completes actions only")
    }
    async fn heartbeat(&self, _: &str, _: &LifecycleAction) -> CloudResult<()> {
        unreachable!("the terminate path completes actions only")
    }
    async fn set_unhealthy(&self, _: &str, _: &str) -> CloudResult<()> {
        unreachable!("the terminate path completes actions only")
    }
}

struct World {
    settings: AwsSettings,
    staging: S3Location,
    store: Store,
    cluster: i64,
    directory: AgentDirectory,
}

/// A fresh emulated account with a staging bucket, and a store with a READY
/// environment and a cluster `analytics`.
async fn world() -> World {
    let settings = AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((emulator::fresh_account(), "test".into())),
        max_attempts: None,
    };
    // Bucket names are global, in the emulator too.
    let staging = S3Location::parse(&format!(
        "s3://okera-dm-local-{}/staging",
        rand::random_range(0..u64::MAX)
    ))
    .unwrap();
    S3Adapter::new(settings.clone(), REGION)
        .ensure_bucket(&staging.bucket)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join("dm-local-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join(format!(
        "terminate-{}-{}.sqlite",
        std::process::id(),
        shared::time::now_ms() + rand::random_range(0..1_000_000)
    ));
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let ctx = WriteCtx {
        principal: "tester".into(),
        idempotency: None,
    };
    let env = store
        .create_environment(
            &ctx,
            &EnvironmentSpec::parse(ProposedEnvironment {
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
            .unwrap(),
        )
        .await
        .unwrap()
        .target_id;
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
            num_nodes: 4,
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
    let cluster = store.create_cluster(&ctx, &spec).await.unwrap().target_id;
    World {
        settings,
        staging,
        store,
        cluster,
        directory: AgentDirectory::new(),
    }
}

impl World {
    fn objects(&self) -> S3Adapter {
        S3Adapter::new(self.settings.clone(), REGION)
    }

    /// A node of the cluster, in the store, with its simulated agent running.
    async fn node(&self, instance_id: &str, logs: LogSettings) -> AgentServer {
        let identity = Identity {
            instance_id: instance_id.into(),
            cluster_id: self.cluster,
            version: "2.0.0".into(),
            staging: self.staging.clone(),
        };
        let agent = AgentServer::start(identity, Duration::ZERO, Arc::new(self.objects()), logs)
            .await
            .unwrap();
        self.directory.insert(instance_id, agent.addr);
        self.store
            .record_joining(
                &JoiningNode {
                    instance_id: instance_id.into(),
                    cluster_id: self.cluster,
                    availability_zone: "us-west-2a".into(),
                    private_ip: Some("10.0.0.10".into()),
                    launched_at: shared::time::now_ms(),
                    hook: "okera-node-launch".into(),
                    token: format!("launch-{instance_id}"),
                },
                shared::time::now_ms(),
            )
            .await
            .unwrap();
        agent
    }

    fn lifecycle(&self, flush_timeout: Duration) -> Lifecycle<Ec2Adapter, Recorder, HttpAgents> {
        Lifecycle {
            store: self.store.clone(),
            compute: Ec2Adapter::new(self.settings.clone()),
            scaling: Recorder {
                objects: self.objects(),
                staging: self.staging.clone(),
                cluster: self.cluster,
                completed: Mutex::new(Vec::new()),
            },
            agents: HttpAgents::new(Resolver::Directory(self.directory.clone())),
            timing: Timing {
                flush_timeout,
                ..Timing::default()
            },
        }
    }

    /// The terminate event of the sample, for `instance_id` of this cluster.
    fn terminate_event(&self, instance_id: &str) -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/lifecycle-terminate.json");
        let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        event["detail"]["AutoScalingGroupName"] = format!("okera-{}-analytics", self.cluster).into();
        event["detail"]["EC2InstanceId"] = instance_id.into();
        event["detail"]["LifecycleHookName"] = TERMINATE_HOOK.into();
        event
    }

    async fn left_audit(&self, instance_id: &str) -> String {
        let audit = self
            .store
            .audit_of(&format!("cluster/{}", self.cluster))
            .await
            .unwrap();
        audit
            .into_iter()
            .find(|a| a.action == "NODE_LEFT" && a.detail.contains(instance_id))
            .map(|a| a.detail)
            .unwrap_or_else(|| panic!("no NODE_LEFT row for {instance_id}"))
    }
}

/// Log hours of 10 s, so that lines come every 28 ms of wall time.
fn fast_logs(upload_every: Duration) -> LogSettings {
    let clock = LogClock::shortened(10, LogClock::WALL, shared::time::now_ms());
    LogSettings {
        upload_every,
        ..LogSettings::new(clock)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaving_nodes_pending_lines_are_in_the_bucket_before_continue() {
    let w = world().await;
    // One node that uploads only when flushed, one whose periodic uploads race
    // with the final flush.
    let cases = [
        ("i-0aaa000000000001", Duration::from_secs(3600)),
        ("i-0bbb000000000002", Duration::from_millis(15)),
    ];
    for (instance, upload_every) in cases {
        let agent = w.node(instance, fast_logs(upload_every)).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let periodic = stored_lines(&w.objects(), &w.staging, w.cluster, instance).await;
        let before = agent.logs.stats().await;
        let lifecycle = w.lifecycle(Duration::from_secs(20));

        let out = lifecycle::handle(
            &lifecycle,
            &shared::workflows::failover::Gate::single("us-west-2"),
            None,
            &w.terminate_event(instance),
        )
        .await
        .unwrap();
        assert_eq!(out["outcome"], "left", "{out}");
        let completed = lifecycle.scaling.completed.lock().unwrap().clone();
        assert_eq!(completed.len(), 1, "one CONTINUE");
        let (who, result, at_continue) = &completed[0];
        assert_eq!((who.as_str(), *result), (instance, ActionResult::Continue));
        for (i, service) in SERVICES.iter().enumerate() {
            let seqs = at_continue.get(*service).cloned().unwrap_or_default();
            let last = seqs.last().copied().unwrap_or(0);
            assert!(
                last >= before.written[i] && last > 0,
                "{instance} {service}: lines up to {} were written before the terminate, {last} stored",
                before.written[i]
            );
            assert_eq!(
                seqs,
                (1..=last).collect::<Vec<u64>>(),
                "{instance} {service}: every line once before CONTINUE"
            );
        }
        if upload_every < Duration::from_secs(1) {
            assert!(
                !periodic.is_empty(),
                "{instance}: periodic parts arrived before the terminate"
            );
        } else {
            assert!(
                periodic.is_empty(),
                "{instance}: no periodic upload yet: {periodic:?}"
            );
            // Nothing was written after the flush: it left nothing pending.
            let after = agent.logs.stats().await;
            assert_eq!(after.pending, vec![0; SERVICES.len()]);
            let written: Vec<u64> = SERVICES
                .iter()
                .map(|s| at_continue[*s].last().copied().unwrap_or(0))
                .collect();
            assert_eq!(after.written, written);
        }
        assert!(
            w.left_audit(instance).await.contains("its logs were flushed"),
            "{instance}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_or_failed_flush_holds_the_node_no_longer_than_the_bound() {
    let w = world().await;
    let bound = Duration::from_secs(1);
    let cases = [
        ("i-0ccc000000000003", NodeMode::Slow, "did not finish within 1 s"),
        (
            "i-0ddd000000000004",
            NodeMode::Unreachable,
            "its log flush failed",
        ),
    ];
    for (instance, mode, why) in cases {
        let agent = w.node(instance, fast_logs(Duration::from_secs(3600))).await;
        lock(&agent.state).knobs.mode = mode;
        let lifecycle = w.lifecycle(bound);
        let started = Instant::now();
        let out = lifecycle::handle(
            &lifecycle,
            &shared::workflows::failover::Gate::single("us-west-2"),
            None,
            &w.terminate_event(instance),
        )
        .await
        .unwrap();
        let took = started.elapsed();
        assert_eq!(out["outcome"], "left", "{instance}: {out}");
        // The slow agent answers after 30 s; the bound cut it short.
        assert!(took < Duration::from_secs(10), "{instance}: took {took:?}");
        let completed = lifecycle.scaling.completed.lock().unwrap().clone();
        assert_eq!(completed.len(), 1, "{instance}");
        assert_eq!(completed[0].1, ActionResult::Continue, "{instance}");
        let detail = w.left_audit(instance).await;
        assert!(detail.contains(why), "{instance}: {detail}");
    }
}
