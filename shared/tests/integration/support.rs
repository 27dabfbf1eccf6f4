//! Shared set-up: a store per test, AWS settings for a fresh emulator account, a
//! reconciler over the real adapters, and a READY environment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
use shared::cloud::aws::{
    AutoScalingAdapter, AwsSettings, CloudWatchAdapter, Ec2Adapter, Route53Adapter, S3Adapter,
};
use shared::config::S3Location;
use shared::domain::health::{ServiceState, SERVICES};
use shared::domain::{ClusterSpec, EnvironmentSpec, InstanceSize, ProposedCluster, ProposedEnvironment};
use shared::store::{Store, WriteCtx};
use shared::workflows::lifecycle::{Lifecycle, LifecycleEvent, Outcome as LifecycleOutcome, Timing};
use shared::workflows::reconcile::Reconciler;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub type AwsReconciler =
    Reconciler<Ec2Adapter, AutoScalingAdapter, S3Adapter, CloudWatchAdapter, Route53Adapter>;
pub type AwsLifecycle = Lifecycle<Ec2Adapter, AutoScalingAdapter, HttpAgents>;

pub const REGION: &str = "us-west-2";

pub fn ctx() -> WriteCtx {
    WriteCtx {
        principal: "tester".into(),
        idempotency: None,
    }
}

pub fn keyed(key: &str, hash: &str) -> WriteCtx {
    WriteCtx {
        principal: "tester".into(),
        idempotency: Some((key.into(), hash.into())),
    }
}

/// A test's own emulator account: its AWS state is invisible to other tests.
pub fn account() -> String {
    emulator::fresh_account()
}

pub fn settings(account: &str, max_attempts: Option<u32>) -> AwsSettings {
    AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((account.to_owned(), "test".into())),
        max_attempts,
    }
}

/// A reconciler over the real adapters for `account`, with its staging bucket made.
pub async fn reconciler(store: &Store, account: &str, owner: &str) -> AwsReconciler {
    reconciler_with(store, account, owner, None).await
}

pub async fn reconciler_with(
    store: &Store,
    account: &str,
    owner: &str,
    max_attempts: Option<u32>,
) -> AwsReconciler {
    let s = settings(account, max_attempts);
    let objects = S3Adapter::new(s.clone(), REGION);
    // Bucket names are global in the emulator, as in AWS: one per account.
    let staging = S3Location::parse(&format!("s3://dm-{account}/staging")).unwrap();
    objects.ensure_bucket(&staging.bucket).await.unwrap();
    Reconciler {
        store: store.clone(),
        compute: Ec2Adapter::new(s.clone()),
        scaling: AutoScalingAdapter::new(s.clone()),
        objects,
        metrics: CloudWatchAdapter::new(s.clone()),
        dns: Route53Adapter::new(s),
        zone: None,
        staging,
        node_ami: "ami-12c6146b".into(),
        node_instance_profile: None,
        owner: owner.into(),
    }
}

/// A store on each backend: SQLite, and MariaDB.
pub async fn backends() -> Vec<(&'static str, Store)> {
    let mut out = Vec::new();
    for (name, url) in testkit::all_backends().await {
        out.push((name, Store::connect(&url).await.unwrap()));
    }
    out
}

pub fn environment_spec(name: &str, security_group: bool) -> EnvironmentSpec {
    EnvironmentSpec::parse(ProposedEnvironment {
        name: name.into(),
        region: REGION.into(),
        vpc_id: None,
        subnet_ids: None,
        vpc_cidr: Some("10.20.0.0/16".into()),
        admin_cidr: Some("203.0.113.0/24".into()),
        create_security_group: security_group,
        failover_for: None,
        warm_standby_nodes: None,
    })
    .unwrap()
}

/// An environment made READY by the reconciler against the emulator.
pub async fn ready_environment(r: &AwsReconciler, name: &str, security_group: bool) -> i64 {
    let env = r
        .store
        .create_environment(&ctx(), &environment_spec(name, security_group))
        .await
        .unwrap()
        .target_id;
    r.reconcile_environment(env).await.unwrap();
    let row = r.store.get_environment(env).await.unwrap();
    assert_eq!(row.status_code, "READY", "{}", row.status_message);
    env
}

pub fn cluster_spec(env: i64, name: &str, nodes: i64) -> ClusterSpec {
    ClusterSpec::parse(
        ProposedCluster {
            name: name.into(),
            num_nodes: nodes,
            cluster_type: "STANDALONE_CLUSTER".into(),
            environment_id: env,
            instance_type: None,
            storage_gb: None,
            tags: [("team".to_owned(), "data".to_owned())].into(),
            description: None,
            termination_protection_enabled: false,
            auto_repair_enabled: None,
            version: None,
        },
        100,
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

/// Marks an environment READY as the reconciler would, without AWS (store tests).
pub async fn mark_ready(store: &Store, env: i64) {
    use shared::domain::EnvironmentStatus;
    use shared::store::EnvironmentObservation;
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
}

/// What a test agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentMode {
    Ready,
    Starting,
    /// This service failed (the ones above it are then unknown).
    Failing(&'static str),
    /// Accepts the connection and closes it at once.
    Down,
}

/// Node agents on loopback, one listener per instance, as the local runner
/// simulates them: the real prober (`HttpAgents`) reaches them through an
/// `AgentDirectory`.
#[derive(Clone, Default)]
pub struct Fleet {
    dir: AgentDirectory,
    modes: Arc<Mutex<HashMap<String, AgentMode>>>,
    seen: Arc<AtomicU64>,
}

impl Fleet {
    pub fn agents(&self) -> HttpAgents {
        HttpAgents::new(Resolver::Directory(self.dir.clone())).with_timeout(Duration::from_millis(500))
    }

    pub fn set(&self, instance_id: &str, mode: AgentMode) {
        self.modes.lock().unwrap().insert(instance_id.to_owned(), mode);
    }

    /// Starts the agent of an instance (once), in `mode` if it has none yet.
    pub async fn serve(&self, instance_id: &str, mode: AgentMode) {
        if self.dir.get(instance_id).is_some() {
            return;
        }
        self.modes
            .lock()
            .unwrap()
            .entry(instance_id.to_owned())
            .or_insert(mode);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.dir.insert(instance_id, listener.local_addr().unwrap());
        let (id, modes) = (instance_id.to_owned(), self.modes.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mode = modes
                    .lock()
                    .unwrap()
                    .get(&id)
                    .copied()
                    .unwrap_or(AgentMode::Ready);
                let id = id.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    if mode == AgentMode::Down {
                        return;
                    }
                    let body = if buf.starts_with(b"POST /v1/logs/flush") {
                        r#"{"uploaded":0}"#.to_owned()
                    } else {
                        agent_report(&id, mode)
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body.as_bytes()).await;
                });
            }
        });
    }

    /// Delivers the lifecycle events the emulator recorded for `account` since the
    /// last call, as EventBridge would, starting each launching node's agent in
    /// `mode` first.
    pub async fn deliver(
        &self,
        lifecycle: &AwsLifecycle,
        account: &str,
        mode: AgentMode,
    ) -> Vec<LifecycleOutcome> {
        let since = self.seen.load(Ordering::SeqCst);
        let events = emulator::shared().lifecycle_events(account, since).unwrap();
        let mut out = Vec::new();
        for (seq, json) in events {
            self.seen.store(seq, Ordering::SeqCst);
            let event = LifecycleEvent::parse(&serde_json::from_str(&json).unwrap()).unwrap();
            self.serve(&event.action.instance_id, mode).await;
            out.push(lifecycle.handle(&event).await.unwrap());
        }
        out
    }
}

fn agent_report(instance_id: &str, mode: AgentMode) -> String {
    let mut blocked = false;
    let services: Vec<serde_json::Value> = SERVICES
        .iter()
        .map(|name| {
            let state = match mode {
                _ if blocked => ServiceState::Unknown,
                AgentMode::Starting => ServiceState::Starting,
                AgentMode::Failing(s) if s == *name => ServiceState::Failed,
                _ => ServiceState::Running,
            };
            blocked |= state != ServiceState::Running;
            serde_json::json!({ "name": name, "state": state, "message": "" })
        })
        .collect();
    serde_json::json!({ "instanceId": instance_id, "version": "2.0.0", "services": services }).to_string()
}

/// The lifecycle workflow over the real adapters for `account`, probing `fleet`.
/// It checks a starting node once and leaves the rest to the sweep.
pub fn lifecycle(store: &Store, account: &str, fleet: &Fleet) -> AwsLifecycle {
    let s = settings(account, None);
    Lifecycle {
        store: store.clone(),
        compute: Ec2Adapter::new(s.clone()),
        scaling: AutoScalingAdapter::new(s),
        agents: fleet.agents(),
        timing: Timing {
            join_wait: Duration::ZERO,
            ..Timing::default()
        },
    }
}

/// Reconciles a cluster until its nodes wait at the launch hook, lets them join
/// through the lifecycle workflow, and reconciles again: the path a new
/// cluster takes in production.
pub async fn converge_with_joins(r: &AwsReconciler, fleet: &Fleet, account: &str, id: i64) {
    let l = lifecycle(&r.store, account, fleet);
    r.reconcile_cluster(id).await.unwrap();
    fleet.deliver(&l, account, AgentMode::Ready).await;
    r.reconcile_cluster(id).await.unwrap();
}
