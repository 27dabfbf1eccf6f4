//! Benchmark of the health sweep (`shared::workflows::sweep::Sweeper`) at fleet
//! scale, beside a naive per-cluster sweep.
//!
//! ```text
//! cargo run -p health-sweep --example sweep_bench -- \
//!     [--clusters 1000] [--nodes 5] [--runs 5] [--baseline-runs R] \
//!     [--mode memory|emulator] [--db sqlite|mysql] [--concurrency 64] [--timeout-s 900]
//! ```
//!
//! What it sets up, in this process:
//! - a fresh store (a new SQLite file, or with `--db mysql` a new database on
//!   `DM_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`), with one READY
//!   environment and `--clusters` clusters of `--nodes` nodes, created through the
//!   store's public API and made steady (READY at generation 1, with their group
//!   name and nodes) as the reconciler would leave them;
//! - the AWS side: `--mode memory` (default) is an in-memory cloud port that pages
//!   like AWS (1,000 instances per `DescribeInstances` page, 50 names per
//!   `DescribeAutoScalingGroups` call) and counts every request; `--mode emulator`
//!   starts the emulator (`DM_EMULATOR_PYTHON`, else the venv in
//!   `target/emulator-venv`), creates one Auto Scaling group per cluster there
//!   (tagged as the DM tags them, no lifecycle hooks) and counts the sweep's
//!   requests with the emulator's request counter;
//! - one agent per node: an HTTP/1.1 responder on its own `127.0.0.1:0` port
//!   (answering `GET /v1/health` with all seven services `RUNNING`), registered
//!   in an `AgentDirectory` that the real prober (`HttpAgents`) resolves through.
//!   The agents run on their own Tokio runtime, on the same cores.
//!
//! Then it runs `Sweeper::sweep()` `--runs` times and the naive sweep
//! `--baseline-runs` times (default: `--runs`), checks after every run that every
//! cluster is READY, every node was probed and answered, and nothing else was
//! done (no repair, no error); a wrong sweep stops the program with an error
//! (exit 1). It prints per-run figures, medians, baseline/sweep ratios, peak
//! memory and one verdict per target of issue 3, and exits 2 when a target is
//! missed. For reading the wall time, it also times the probes alone (same
//! prober, same concurrency, one thread as in the sweep) and each AWS read alone.
//!
//! The naive sweep does, for each cluster in turn: one `instances_tagged` call
//! for that cluster (one `DescribeInstances`), one `groups_named` call for its
//! one group, a probe of each node one after the other with the same prober,
//! and one `Store::record_sweep` carrying that cluster's node rows and its health
//! (a batch of one cluster): the same reads and writes as the sweep, per cluster.
//!
//! Memory: `VmRSS` before and after setup, the peak (`VmHWM`) during each run
//! (the peak is reset before each run through `/proc/self/clear_refs`), and the
//! process's peak at the end. The agents live in this process, so their buffers
//! count too.
//!
//! Only loopback is contacted. Every probe has the prober's 2 s limit, every
//! sweep its 40 s deadline, and the whole program `--timeout-s` (default 900 s).

#![recursion_limit = "256"]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
use shared::cloud::aws::{AutoScalingAdapter, AwsSettings, Ec2Adapter};
use shared::cloud::{
    ActionResult, AgentTarget, Agents, CloudError, CloudErrorKind, CloudResult, Compute, Group,
    GroupInstance, GroupSpec, HookSpec, IngressRule, Instance, LaunchTemplate, LaunchTemplateSpec,
    LifecycleAction, Scaling, SecurityGroup, Vpc, GROUPS_PER_DESCRIBE, INSTANCES_PER_PAGE,
};
use shared::domain::health::{
    evaluate, AgentReport, HealthCode, NodeView, ServiceHealth, ServiceState, SERVICES,
};
use shared::domain::security_group::Peer;
use shared::domain::{
    tags, ClusterSpec, ClusterStatus, EnvironmentSpec, EnvironmentStatus, InstanceSize, ProposedCluster,
    ProposedEnvironment,
};
use shared::store::{
    ClusterObservation, EnvironmentObservation, HealthWrite, NewNode, NodeUpdate, Store, SweepWrite,
    WriteCtx, BATCH,
};
use shared::workflows::lifecycle::probe_of;
use shared::workflows::sweep::{SweepReport, SweepSettings, Sweeper};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

const REGION: &str = "us-west-2";
const OWNER: &str = "sweep-bench";
/// AWS calls a sweep may make beyond one per instance page and one per 50 groups.
const AWS_SLACK: u64 = 2;
/// The wall-time target of a 1,000 x 5 sweep.
const WALL_TARGET: Duration = Duration::from_secs(5);
/// The AWS requests the sweep can make, as the emulator names them.
const EMULATOR_OPS: [(&str, &str); 5] = [
    ("ec2", "DescribeInstances"),
    ("autoscaling", "DescribeAutoScalingGroups"),
    ("autoscaling", "CompleteLifecycleAction"),
    ("autoscaling", "RecordLifecycleActionHeartbeat"),
    ("autoscaling", "SetInstanceHealth"),
];

// ---------------------------------------------------------------------------
// Command line

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Memory,
    Emulator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    MySql,
}

#[derive(Debug, Clone)]
struct Args {
    clusters: usize,
    nodes: usize,
    runs: usize,
    baseline_runs: usize,
    mode: Mode,
    db: Db,
    concurrency: usize,
    timeout: Duration,
}

const USAGE: &str = "usage: sweep_bench [--clusters N] [--nodes M] [--runs R] [--baseline-runs R] \
[--mode memory|emulator] [--db sqlite|mysql] [--concurrency C] [--timeout-s S]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        clusters: 1000,
        nodes: 5,
        runs: 5,
        baseline_runs: usize::MAX,
        mode: Mode::Memory,
        db: Db::Sqlite,
        concurrency: SweepSettings::default().concurrency,
        timeout: Duration::from_secs(900),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        let number = |max: usize| -> Result<usize> {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| anyhow!("{flag} must be a whole number from 1 to {max}, got {value:?}"))
        };
        match flag.as_str() {
            "--clusters" => args.clusters = number(10_000)?,
            "--nodes" => args.nodes = number(20)?,
            "--runs" => args.runs = number(100)?,
            "--baseline-runs" => args.baseline_runs = number(100)?,
            "--concurrency" => args.concurrency = number(1024)?,
            "--timeout-s" => args.timeout = Duration::from_secs(number(3600)? as u64),
            "--mode" => {
                args.mode = match value.as_str() {
                    "memory" => Mode::Memory,
                    "emulator" => Mode::Emulator,
                    _ => bail!("--mode must be memory or emulator, got {value:?}"),
                }
            }
            "--db" => {
                args.db = match value.as_str() {
                    "sqlite" => Db::Sqlite,
                    "mysql" => Db::MySql,
                    _ => bail!("--db must be sqlite or mysql, got {value:?}"),
                }
            }
            _ => bail!("unknown flag {flag:?}\n{USAGE}"),
        }
    }
    if args.baseline_runs == usize::MAX {
        args.baseline_runs = args.runs;
    }
    if args.clusters * args.nodes > 15_000 {
        bail!("at most 15,000 nodes (one listening socket each)");
    }
    Ok(args)
}

// ---------------------------------------------------------------------------
// Entry point

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(64);
        }
    };
    let rss_at_start = vm_kb("VmRSS");
    let emulator = match args.mode {
        Mode::Memory => None,
        Mode::Emulator => match emulator::start_own("sweep-bench") {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("cannot start the emulator: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    let agent_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-agents")
        .enable_all()
        .build()
        .expect("agents' runtime");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let timeout = args.timeout;
    let outcome = rt.block_on(async {
        tokio::time::timeout(
            timeout,
            run(args, emulator.as_ref(), agent_rt.handle().clone(), rss_at_start),
        )
        .await
    });
    rt.shutdown_background();
    agent_rt.shutdown_background();
    drop(emulator);
    match outcome {
        Err(_) => {
            eprintln!("the benchmark did not finish within {} s", timeout.as_secs());
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::from(2),
    }
}

/// Sets up, measures, prints. Ok(false) when a target is missed.
async fn run(
    args: Args,
    emulator: Option<&emulator::Emulator>,
    agents_rt: Handle,
    rss_at_start: u64,
) -> Result<bool> {
    check_fd_limit(args.clusters * args.nodes)?;
    let setup_started = Instant::now();
    let (url, cleanup) = match args.db {
        Db::Sqlite => {
            let url = testkit::sqlite_url();
            let path = url.trim_start_matches("sqlite://").to_owned();
            (url, Some(path))
        }
        Db::MySql => (testkit::mysql_url().await, None),
    };
    let store = Store::connect(&url).await.context("connecting to the store")?;
    let env = create_environment(&store).await?;
    let clusters = create_clusters(&store, env, &args).await?;
    let directory = AgentDirectory::new();
    let served = Arc::new(AtomicU64::new(0));
    let agents = HttpAgents::new(Resolver::Directory(directory.clone())).allow_remote(false);
    let settings = SweepSettings {
        concurrency: args.concurrency,
        ..SweepSettings::default()
    };
    let expect = Expect {
        clusters: args.clusters,
        nodes: args.clusters * args.nodes,
    };

    let ok = match (args.mode, emulator) {
        (Mode::Memory, _) => {
            let cloud = MemoryCloud::new(&clusters, args.nodes);
            let groups = cloud.world.groups.clone();
            make_steady(&store, &clusters, |name| groups.get(name).cloned()).await?;
            start_agents(
                &agents_rt,
                &directory,
                &served,
                cloud.world.instances.iter().map(|i| i.id.clone()),
            )
            .await?;
            let setup = setup_started.elapsed();
            let sweeper = Sweeper {
                store: store.clone(),
                compute: cloud.clone(),
                scaling: cloud.clone(),
                agents,
                settings,
                owner: OWNER.into(),
            };
            let counts = || cloud.counters.snapshot();
            bench(
                &args,
                &sweeper,
                &counts,
                &expect,
                &directory,
                &served,
                setup,
                rss_at_start,
            )
            .await?
        }
        (Mode::Emulator, Some(emu)) => {
            let account = emulator::fresh_account();
            let aws = AwsSettings {
                endpoint: Some(emu.endpoint().to_owned()),
                credentials: Some((account.clone(), "test".into())),
                max_attempts: None,
            };
            let compute = Ec2Adapter::new(aws.clone());
            let scaling = AutoScalingAdapter::new(aws);
            let groups = create_groups(&compute, &scaling, env, &clusters, args.nodes).await?;
            make_steady(&store, &clusters, |name| groups.get(name).cloned()).await?;
            let ids = groups
                .values()
                .flat_map(|g| g.instances.iter().map(|i| i.id.clone()));
            start_agents(&agents_rt, &directory, &served, ids).await?;
            let setup = setup_started.elapsed();
            let sweeper = Sweeper {
                store: store.clone(),
                compute,
                scaling,
                agents,
                settings,
                owner: OWNER.into(),
            };
            let counts = || {
                tokio::task::block_in_place(|| {
                    EMULATOR_OPS
                        .iter()
                        .map(|(service, action)| {
                            let n = emu
                                .request_count(Some(&account), service, action)
                                .expect("the emulator's request count");
                            (format!("{service}:{action}"), n)
                        })
                        .collect()
                })
            };
            bench(
                &args,
                &sweeper,
                &counts,
                &expect,
                &directory,
                &served,
                setup,
                rss_at_start,
            )
            .await?
        }
        (Mode::Emulator, None) => unreachable!("the emulator is started for --mode emulator"),
    };
    drop(store);
    if let Some(path) = cleanup {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    Ok(ok)
}

/// Enough file descriptors for one listening socket per agent, and the probes.
fn check_fd_limit(agents: usize) -> Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft {
        let need = agents + 2 * 1024;
        ensure!(
            soft >= need,
            "{agents} agents need about {need} open files, but the limit is {soft}: raise it (ulimit -n {need})"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The store

fn ctx() -> WriteCtx {
    WriteCtx {
        principal: OWNER.into(),
        idempotency: None,
    }
}

/// A cluster as set up: id, name and Auto Scaling group name.
#[derive(Debug, Clone)]
struct BenchCluster {
    id: i64,
    name: String,
    asg: String,
}

async fn create_environment(store: &Store) -> Result<i64> {
    let spec = EnvironmentSpec::parse(ProposedEnvironment {
        name: "bench".into(),
        region: REGION.into(),
        vpc_id: None,
        subnet_ids: None,
        vpc_cidr: Some("10.20.0.0/16".into()),
        admin_cidr: Some("203.0.113.0/24".into()),
        create_security_group: false,
        failover_for: None,
        warm_standby_nodes: None,
    })
    .map_err(|e| anyhow!("environment spec: {e}"))?;
    let env = store.create_environment(&ctx(), &spec).await?.target_id;
    ensure!(
        store.claim_environment(env, OWNER, 60_000).await?,
        "environment lease"
    );
    store
        .record_environment(
            env,
            OWNER,
            &EnvironmentObservation {
                vpc_id: Some("vpc-1".into()),
                subnet_ids: vec!["subnet-1".into()],
                vpc_cidr: Some("10.20.0.0/16".into()),
                security_group_id: None,
                status: EnvironmentStatus::Ready,
                message: "ready".into(),
                observed_generation: Some(1),
                steps: vec![],
                failure: None,
            },
        )
        .await?;
    store.release_environment(env, OWNER, true).await?;
    Ok(env)
}

async fn create_clusters(store: &Store, env: i64, args: &Args) -> Result<Vec<BenchCluster>> {
    let mut out = Vec::with_capacity(args.clusters);
    for i in 0..args.clusters {
        let name = format!("bench-{i:05}");
        let spec = ClusterSpec::parse(
            ProposedCluster {
                name: name.clone(),
                num_nodes: args.nodes as i64,
                cluster_type: "STANDALONE_CLUSTER".into(),
                environment_id: env,
                instance_type: None,
                storage_gb: None,
                tags: BTreeMap::new(),
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
        .map_err(|e| anyhow!("cluster spec: {e}"))?;
        let id = store.create_cluster(&ctx(), &spec).await?.target_id;
        out.push(BenchCluster {
            id,
            asg: format!("okera-{id}-{name}"),
            name,
        });
    }
    Ok(out)
}

/// Leaves every cluster as the reconciler does once it converged: READY at
/// generation 1, with its group's name and nodes.
async fn make_steady(
    store: &Store,
    clusters: &[BenchCluster],
    group_of: impl Fn(&str) -> Option<Group>,
) -> Result<()> {
    for c in clusters {
        let group = group_of(&c.asg).ok_or_else(|| anyhow!("no group {} was made", c.asg))?;
        ensure!(
            store.claim_cluster(c.id, OWNER, 60_000).await?,
            "cluster {} lease",
            c.id
        );
        let obs = ClusterObservation {
            status: ClusterStatus::Ready,
            message: "Every node is in service.".into(),
            asg_name: Some(c.asg.clone()),
            launch_template_id: None,
            config_uri: None,
            nodes: group
                .instances
                .iter()
                .map(|i| NewNode {
                    instance_id: i.id.clone(),
                    lifecycle_state: i.lifecycle_state.clone(),
                    availability_zone: i.availability_zone.clone(),
                })
                .collect(),
            running_services: None,
            endpoint: None,
            observed_generation: Some(1),
            steps: vec![],
            failure: None,
        };
        store.record_cluster(c.id, OWNER, &obs).await?;
        store.release_cluster(c.id, OWNER, true).await?;
    }
    let swept = store.sweep_clusters().await?;
    ensure!(
        swept.len() == clusters.len() && swept.iter().all(|c| c.steady && c.status_code == "READY"),
        "set-up left clusters that are not steady and READY"
    );
    Ok(())
}

/// Every cluster is READY in the store.
async fn check_ready(store: &Store, expect: &Expect, who: &str) -> Result<()> {
    let swept = store.sweep_clusters().await?;
    ensure!(
        swept.len() == expect.clusters,
        "{who}: {} clusters in the store",
        swept.len()
    );
    if let Some(bad) = swept.iter().find(|c| c.status_code != "READY") {
        bail!(
            "{who}: cluster {} is {}: {}",
            bad.id,
            bad.status_code,
            bad.status_message
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The in-memory cloud

/// Requests and port calls, counted as they happen.
#[derive(Default)]
struct Counters {
    /// `DescribeInstances` requests: one per page of 1,000.
    describe_instances: AtomicU64,
    /// `DescribeAutoScalingGroups` requests: one per 50 names.
    describe_groups: AtomicU64,
    /// Calls of the port's methods.
    managed_instances: AtomicU64,
    groups_named: AtomicU64,
    instances_tagged: AtomicU64,
    /// Anything else the sweep asked for (none expected): by operation.
    other: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        out.insert(
            "ec2:DescribeInstances".to_owned(),
            self.describe_instances.load(Ordering::SeqCst),
        );
        out.insert(
            "autoscaling:DescribeAutoScalingGroups".to_owned(),
            self.describe_groups.load(Ordering::SeqCst),
        );
        out.insert(
            "port:managed_instances".to_owned(),
            self.managed_instances.load(Ordering::SeqCst),
        );
        out.insert(
            "port:groups_named".to_owned(),
            self.groups_named.load(Ordering::SeqCst),
        );
        out.insert(
            "port:instances_tagged".to_owned(),
            self.instances_tagged.load(Ordering::SeqCst),
        );
        for (op, n) in self.other.lock().unwrap().iter() {
            out.insert(format!("other:{op}"), *n);
        }
        out
    }
}

/// The fleet, fixed once set up.
struct World {
    /// In launch order, as `DescribeInstances` pages them.
    instances: Vec<Instance>,
    groups: HashMap<String, Group>,
}

/// A [`Compute`] and [`Scaling`] port over [`World`] that answers the sweep's
/// reads as AWS pages them, and refuses (and counts) everything else.
#[derive(Clone)]
struct MemoryCloud {
    world: Arc<World>,
    counters: Arc<Counters>,
}

impl MemoryCloud {
    fn new(clusters: &[BenchCluster], nodes: usize) -> MemoryCloud {
        let now = shared::time::now_ms();
        let mut instances = Vec::with_capacity(clusters.len() * nodes);
        let mut groups = HashMap::with_capacity(clusters.len());
        for c in clusters {
            let mut members = Vec::with_capacity(nodes);
            for _ in 0..nodes {
                let k = instances.len();
                let az = ["us-west-2a", "us-west-2b", "us-west-2c"][k % 3];
                let id = format!("i-{:017x}", 0x0bad_0000_0000u64 + k as u64);
                instances.push(Instance {
                    id: id.clone(),
                    state: "running".into(),
                    availability_zone: az.into(),
                    private_ip: Some(format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255)),
                    cluster_id: Some(c.id),
                    launched_at: now - 3_600_000 + k as i64,
                });
                members.push(GroupInstance {
                    id,
                    lifecycle_state: "InService".into(),
                    availability_zone: az.into(),
                    health_status: "Healthy".into(),
                });
            }
            groups.insert(
                c.asg.clone(),
                Group {
                    name: c.asg.clone(),
                    min: nodes as i32,
                    max: nodes as i32,
                    desired: nodes as i32,
                    instances: members,
                    deleting: false,
                },
            );
        }
        MemoryCloud {
            world: Arc::new(World { instances, groups }),
            counters: Arc::new(Counters::default()),
        }
    }

    /// Pages `matching` as `DescribeInstances` does, counting each page.
    fn pages(&self, matching: Vec<Instance>) -> Vec<Instance> {
        let pages = matching.len().div_ceil(INSTANCES_PER_PAGE as usize).max(1);
        self.counters
            .describe_instances
            .fetch_add(pages as u64, Ordering::SeqCst);
        matching
    }

    fn unsupported<T>(&self, op: &'static str) -> CloudResult<T> {
        *self.counters.other.lock().unwrap().entry(op).or_default() += 1;
        Err(CloudError {
            op,
            kind: CloudErrorKind::Permanent,
            code: "Unsupported".into(),
            message: "the benchmark's in-memory cloud only answers the sweep's reads".into(),
            source: None,
        })
    }
}

impl Compute for MemoryCloud {
    async fn default_vpc(&self, _region: &str) -> CloudResult<Option<Vpc>> {
        self.unsupported("DescribeVpcs")
    }
    async fn vpc(&self, _region: &str, _vpc_id: &str) -> CloudResult<Option<Vpc>> {
        self.unsupported("DescribeVpcs")
    }
    async fn subnets(&self, _region: &str, _vpc_id: &str) -> CloudResult<Vec<String>> {
        self.unsupported("DescribeSubnets")
    }
    async fn instance_types(&self, _region: &str) -> CloudResult<Vec<(String, InstanceSize)>> {
        self.unsupported("DescribeInstanceTypes")
    }
    async fn security_groups_tagged(
        &self,
        _region: &str,
        _vpc_id: &str,
        _key: &str,
        _value: &str,
    ) -> CloudResult<Vec<SecurityGroup>> {
        self.unsupported("DescribeSecurityGroups")
    }
    async fn create_security_group(
        &self,
        _region: &str,
        _vpc_id: &str,
        _name: &str,
        _description: &str,
        _tags: &[(String, String)],
    ) -> CloudResult<String> {
        self.unsupported("CreateSecurityGroup")
    }
    async fn authorize_ingress(
        &self,
        _region: &str,
        _group_id: &str,
        _rules: &[IngressRule],
    ) -> CloudResult<()> {
        self.unsupported("AuthorizeSecurityGroupIngress")
    }
    async fn revoke_ingress(
        &self,
        _region: &str,
        _group_id: &str,
        _rules: &[(u16, Peer)],
    ) -> CloudResult<()> {
        self.unsupported("RevokeSecurityGroupIngress")
    }
    async fn delete_security_group(&self, _region: &str, _group_id: &str) -> CloudResult<()> {
        self.unsupported("DeleteSecurityGroup")
    }
    async fn launch_templates_tagged(
        &self,
        _region: &str,
        _key: &str,
        _value: &str,
    ) -> CloudResult<Vec<LaunchTemplate>> {
        self.unsupported("DescribeLaunchTemplates")
    }
    async fn create_launch_template(
        &self,
        _region: &str,
        _spec: &LaunchTemplateSpec,
    ) -> CloudResult<LaunchTemplate> {
        self.unsupported("CreateLaunchTemplate")
    }
    async fn delete_launch_template(&self, _region: &str, _id: &str) -> CloudResult<()> {
        self.unsupported("DeleteLaunchTemplate")
    }
    async fn instances_tagged(&self, _region: &str, key: &str, value: &str) -> CloudResult<Vec<Instance>> {
        self.counters.instances_tagged.fetch_add(1, Ordering::SeqCst);
        let matching = self
            .world
            .instances
            .iter()
            .filter(|i| match key {
                tags::CLUSTER_ID => i.cluster_id.map(|c| c.to_string()).as_deref() == Some(value),
                k if k == tags::LAUNCHED_BY.0 => value == tags::LAUNCHED_BY.1,
                _ => false,
            })
            .cloned()
            .collect();
        Ok(self.pages(matching))
    }
    async fn terminate_instances(&self, _region: &str, _ids: &[String]) -> CloudResult<()> {
        self.unsupported("TerminateInstances")
    }
    async fn managed_instances(&self, _region: &str) -> CloudResult<Vec<Instance>> {
        self.counters.managed_instances.fetch_add(1, Ordering::SeqCst);
        Ok(self.pages(self.world.instances.clone()))
    }
    async fn instance(&self, _region: &str, _id: &str) -> CloudResult<Option<Instance>> {
        self.unsupported("DescribeInstances(id)")
    }
}

impl Scaling for MemoryCloud {
    async fn groups_tagged(&self, _region: &str, _key: &str, _value: &str) -> CloudResult<Vec<Group>> {
        self.unsupported("DescribeAutoScalingGroups(tag)")
    }
    async fn create_group(&self, _region: &str, _spec: &GroupSpec) -> CloudResult<()> {
        self.unsupported("CreateAutoScalingGroup")
    }
    async fn resize_group(
        &self,
        _region: &str,
        _name: &str,
        _min: i32,
        _max: i32,
        _desired: i32,
    ) -> CloudResult<()> {
        self.unsupported("UpdateAutoScalingGroup")
    }
    async fn delete_group(&self, _region: &str, _name: &str) -> CloudResult<()> {
        self.unsupported("DeleteAutoScalingGroup")
    }
    async fn groups_named(&self, _region: &str, names: &[String]) -> CloudResult<Vec<Group>> {
        self.counters.groups_named.fetch_add(1, Ordering::SeqCst);
        let mut out = Vec::new();
        for chunk in names.chunks(GROUPS_PER_DESCRIBE) {
            self.counters.describe_groups.fetch_add(1, Ordering::SeqCst);
            out.extend(chunk.iter().filter_map(|n| self.world.groups.get(n).cloned()));
        }
        Ok(out)
    }
    async fn hooks(&self, _region: &str, _group: &str) -> CloudResult<Vec<String>> {
        self.unsupported("DescribeLifecycleHooks")
    }
    async fn put_hook(&self, _region: &str, _group: &str, _hook: &HookSpec) -> CloudResult<()> {
        self.unsupported("PutLifecycleHook")
    }
    async fn complete_action(
        &self,
        _region: &str,
        _action: &LifecycleAction,
        _result: ActionResult,
    ) -> CloudResult<()> {
        self.unsupported("CompleteLifecycleAction")
    }
    async fn heartbeat(&self, _region: &str, _action: &LifecycleAction) -> CloudResult<()> {
        self.unsupported("RecordLifecycleActionHeartbeat")
    }
    async fn set_unhealthy(&self, _region: &str, _instance_id: &str) -> CloudResult<()> {
        self.unsupported("SetInstanceHealth")
    }
}

// ---------------------------------------------------------------------------
// The emulator's groups

/// One group per cluster in the emulator, tagged as the DM tags them, without
/// lifecycle hooks (so that nodes go straight in service). Returns them by name.
async fn create_groups(
    compute: &Ec2Adapter,
    scaling: &AutoScalingAdapter,
    env: i64,
    clusters: &[BenchCluster],
    nodes: usize,
) -> Result<HashMap<String, Group>> {
    let vpc = compute
        .default_vpc(REGION)
        .await?
        .ok_or_else(|| anyhow!("the emulator has no default VPC"))?;
    let subnets = compute.subnets(REGION, &vpc.id).await?;
    let template = compute
        .create_launch_template(
            REGION,
            &LaunchTemplateSpec {
                name: "okera-bench".into(),
                image_id: "ami-12c6146b".into(),
                instance_type: "t2.large".into(),
                storage_gb: 40,
                security_group_ids: vec![],
                instance_profile: None,
                user_data: "#!/bin/bash".into(),
                tags: vec![(tags::LAUNCHED_BY.0.into(), tags::LAUNCHED_BY.1.into())],
            },
        )
        .await?;
    for c in clusters {
        scaling
            .create_group(
                REGION,
                &GroupSpec {
                    name: c.asg.clone(),
                    launch_template_id: template.id.clone(),
                    min: nodes as i32,
                    max: nodes as i32,
                    desired: nodes as i32,
                    subnet_ids: subnets.clone(),
                    tags: tags::cluster_tags(c.id, &c.name, env, &BTreeMap::new()),
                    hooks: vec![],
                },
            )
            .await
            .with_context(|| format!("creating group {}", c.asg))?;
    }
    let names: Vec<String> = clusters.iter().map(|c| c.asg.clone()).collect();
    let groups: HashMap<String, Group> = scaling
        .groups_named(REGION, &names)
        .await?
        .into_iter()
        .map(|g| (g.name.clone(), g))
        .collect();
    for c in clusters {
        let g = groups
            .get(&c.asg)
            .ok_or_else(|| anyhow!("group {} is missing", c.asg))?;
        ensure!(
            g.instances.len() == nodes && g.instances.iter().all(|i| i.lifecycle_state == "InService"),
            "group {} has {:?}",
            c.asg,
            g.instances
        );
    }
    Ok(groups)
}

// ---------------------------------------------------------------------------
// The agents

/// Starts one agent per instance on its own loopback port and registers it.
async fn start_agents(
    rt: &Handle,
    directory: &AgentDirectory,
    served: &Arc<AtomicU64>,
    ids: impl Iterator<Item = String>,
) -> Result<()> {
    for id in ids {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding an agent")?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        let report = AgentReport {
            instance_id: id.clone(),
            version: "2.0.0".into(),
            services: SERVICES
                .iter()
                .map(|s| ServiceHealth {
                    name: (*s).into(),
                    state: ServiceState::Running,
                    message: String::new(),
                })
                .collect(),
        };
        let body = serde_json::to_vec(&report)?;
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        let answer: Arc<[u8]> = answer.into();
        let served = served.clone();
        rt.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("agent listener");
            serve_agent(listener, answer, served).await;
        });
        directory.insert(id, addr);
    }
    Ok(())
}

async fn serve_agent(listener: TcpListener, answer: Arc<[u8]>, served: Arc<AtomicU64>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer_one(stream, answer.clone(), served.clone()));
            }
            // Out of descriptors, most likely: let the prober time out.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Reads one request's head and answers it: the health report for
/// `GET /v1/health`, 404 otherwise.
async fn answer_one(mut stream: TcpStream, answer: Arc<[u8]>, served: Arc<AtomicU64>) {
    let mut buf = [0u8; 4096];
    let mut len = 0;
    let head = async {
        while len < buf.len() {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), head).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let reply: &[u8] = if buf[..len].starts_with(b"GET /v1/health ") {
        served.fetch_add(1, Ordering::Relaxed);
        &answer
    } else {
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    };
    let _ = stream.write_all(reply).await;
    let _ = stream.shutdown().await;
}

// ---------------------------------------------------------------------------
// The naive per-cluster sweep

/// What one naive sweep did.
struct NaiveReport {
    db_round_trips: usize,
    probes: usize,
}

/// For each cluster in turn: its instances, its group, its nodes probed one by
/// one, and its own `record_sweep` (node rows and health).
async fn naive_sweep<C: Compute, S: Scaling, A: Agents>(
    store: &Store,
    compute: &C,
    scaling: &S,
    agents: &A,
) -> Result<NaiveReport> {
    let clusters = store.sweep_clusters().await?;
    let mut report = NaiveReport {
        db_round_trips: 1,
        probes: 0,
    };
    for c in &clusters {
        let asg = c
            .asg_name
            .clone()
            .ok_or_else(|| anyhow!("cluster {} has no group", c.id))?;
        let instances = compute
            .instances_tagged(&c.region, tags::CLUSTER_ID, &c.id.to_string())
            .await?;
        let groups = scaling
            .groups_named(&c.region, std::slice::from_ref(&asg))
            .await?;
        let group = groups.first().ok_or_else(|| anyhow!("group {asg} is missing"))?;
        let at = shared::time::now_ms();
        let mut views = Vec::new();
        let mut write = SweepWrite::default();
        for gi in &group.instances {
            let instance = instances
                .iter()
                .find(|i| i.id == gi.id)
                .ok_or_else(|| anyhow!("instance {} of {asg} is not tagged with its cluster", gi.id))?;
            let probe = probe_of(
                agents
                    .health(&AgentTarget {
                        instance_id: instance.id.clone(),
                        private_ip: instance.private_ip.clone(),
                    })
                    .await,
            );
            report.probes += 1;
            let unhealthy = (!probe.healthy()).then_some(at);
            views.push(NodeView {
                instance_id: instance.id.clone(),
                lifecycle_state: gi.lifecycle_state.clone(),
                probe: Some(probe.clone()),
            });
            write.nodes.push(NodeUpdate {
                instance_id: instance.id.clone(),
                cluster_id: c.id,
                lifecycle_state: gi.lifecycle_state.clone(),
                availability_zone: instance.availability_zone.clone(),
                private_ip: instance.private_ip.clone(),
                launched_at: instance.launched_at,
                probe: Some(probe),
                unhealthy_since: unhealthy,
                repair_requested_at: None,
                action: None,
                joining_since: None,
            });
        }
        let health = evaluate(c.num_nodes as usize, &views);
        assert_eq!(
            health.code,
            HealthCode::Ready,
            "naive sweep: cluster {} is {}: {}",
            c.id,
            health.code.as_str(),
            health.message
        );
        write.health.push(HealthWrite {
            cluster_id: c.id,
            code: health.code.as_str().to_owned(),
            message: health.message.clone(),
            running_services: health.running_services as i64,
        });
        report.db_round_trips += store.record_sweep(at, &write).await?.round_trips;
    }
    Ok(report)
}

// ---------------------------------------------------------------------------
// Measuring

/// One figure of a run, as a number.
type Metric = dyn Fn(&Figures) -> f64;

/// What a correct sweep must show.
struct Expect {
    clusters: usize,
    nodes: usize,
}

/// One run of either sweep.
#[derive(Debug, Clone, Default)]
struct Figures {
    wall: Duration,
    /// Requests by `service:Action`; `port:*` entries are port calls, not requests.
    aws: BTreeMap<String, u64>,
    db_round_trips: usize,
    probes: usize,
    changed: usize,
    rss_before_kb: u64,
    rss_peak_kb: u64,
}

impl Figures {
    fn aws_total(&self) -> u64 {
        self.aws
            .iter()
            .filter(|(k, _)| !k.starts_with("port:"))
            .map(|(_, v)| v)
            .sum()
    }

    fn aws_brief(&self) -> String {
        let short = |k: &str| match k {
            "ec2:DescribeInstances" => "DI".to_owned(),
            "autoscaling:DescribeAutoScalingGroups" => "DASG".to_owned(),
            other => other.to_owned(),
        };
        self.aws
            .iter()
            .filter(|(k, v)| **v > 0 && !k.starts_with("port:"))
            .map(|(k, v)| format!("{}={v}", short(k)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

/// Checks a sweep's report against what a healthy fleet must give.
fn check_report(r: &SweepReport, expect: &Expect) -> Result<()> {
    ensure!(!r.skipped, "the sweep was skipped: another held the lease");
    ensure!(r.errors.is_empty(), "the sweep reported errors: {:?}", r.errors);
    ensure!(
        r.clusters == expect.clusters && r.nodes == expect.nodes,
        "the sweep saw {} clusters and {} nodes, expected {} and {}",
        r.clusters,
        r.nodes,
        expect.clusters,
        expect.nodes
    );
    ensure!(
        r.probes == expect.nodes && r.probe_failures == 0 && r.unprobed == 0,
        "probes: {} made, {} failed, {} not made; expected {} successful",
        r.probes,
        r.probe_failures,
        r.unprobed,
        expect.nodes
    );
    ensure!(
        r.joined == 0 && r.abandoned == 0 && r.repairs == 0,
        "a healthy fleet needs no joins, abandons or repairs: {r:?}"
    );
    let ready = r
        .samples
        .iter()
        .flat_map(|s| &s.clusters)
        .filter(|c| c.ready)
        .count();
    ensure!(
        ready == expect.clusters,
        "{ready} of {} clusters READY in the sweep's samples",
        expect.clusters
    );
    Ok(())
}

/// Resets the process's peak RSS (Linux 4.0+), so that `VmHWM` is the peak
/// since now.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), 0 if unknown.
fn vm_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
async fn bench<C: Compute, S: Scaling>(
    args: &Args,
    sweeper: &Sweeper<C, S, HttpAgents>,
    counts: &dyn Fn() -> BTreeMap<String, u64>,
    expect: &Expect,
    directory: &AgentDirectory,
    served: &AtomicU64,
    setup: Duration,
    rss_at_start: u64,
) -> Result<bool> {
    let rss_after_setup = vm_kb("VmRSS");
    // Before any reset: the peak of the set-up.
    let peak_setup = vm_kb("VmHWM");
    let mode = match args.mode {
        Mode::Memory => "memory (in-memory cloud port)",
        Mode::Emulator => "emulator (moto, real SDK adapters)",
    };
    let db = match args.db {
        Db::Sqlite => "SQLite (file, WAL)",
        Db::MySql => "MariaDB",
    };
    println!(
        "# health sweep benchmark: {} clusters x {} nodes = {} nodes; {mode}; {db}",
        args.clusters, args.nodes, expect.nodes
    );
    println!(
        "machine: {} cores, {} build; probe concurrency {}; setup {:.1} s",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if cfg!(debug_assertions) {
            "debug (dev profile)"
        } else {
            "release"
        },
        args.concurrency,
        setup.as_secs_f64()
    );
    println!("load average before the runs: {}", loadavg());
    println!();

    let mut sweeps = Vec::new();
    for _ in 0..args.runs {
        let before = counts();
        let served_before = served.load(Ordering::SeqCst);
        let rss_before_kb = vm_kb("VmRSS");
        reset_peak_rss();
        let started = Instant::now();
        let report = sweeper.sweep().await?;
        let wall = started.elapsed();
        let rss_peak_kb = vm_kb("VmHWM");
        let aws = delta(&before, &counts());
        check_report(&report, expect)?;
        check_ready(&sweeper.store, expect, "sweep").await?;
        let answered = served.load(Ordering::SeqCst) - served_before;
        ensure!(
            answered == expect.nodes as u64,
            "the agents answered {answered} probes"
        );
        sweeps.push(Figures {
            wall,
            aws,
            db_round_trips: report.db_round_trips,
            probes: report.probes,
            changed: report.changed,
            rss_before_kb,
            rss_peak_kb,
        });
    }
    // The probes alone, as the sweep makes them: on one thread (the sweep's
    // task), `concurrency` at a time, with the same prober.
    let targets: Vec<String> = directory.list().into_iter().map(|(id, _)| id).collect();
    let mut probing = Vec::new();
    for _ in 0..args.runs {
        probing.push(probe_alone(&sweeper.agents, &targets, args.concurrency).await?);
    }
    // The AWS reads alone, once each, as the sweep makes them.
    let names: Vec<String> = sweeper
        .store
        .sweep_clusters()
        .await?
        .into_iter()
        .filter_map(|c| c.asg_name)
        .collect();
    let started = Instant::now();
    let seen = sweeper.compute.managed_instances(REGION).await?.len();
    let instances_took = started.elapsed();
    let started = Instant::now();
    let groups = sweeper.scaling.groups_named(REGION, &names).await?.len();
    let groups_took = started.elapsed();
    ensure!(
        seen == expect.nodes && groups == expect.clusters,
        "the AWS reads found {seen} instances and {groups} groups"
    );
    let nodes = sweeper.store.all_nodes().await?;
    ensure!(
        nodes.len() == expect.nodes
            && nodes
                .iter()
                .all(|n| n.probe.as_ref().is_some_and(|p| p.healthy())),
        "the store does not hold a healthy probe for every node"
    );

    let mut naive = Vec::new();
    for _ in 0..args.baseline_runs {
        let before = counts();
        let rss_before_kb = vm_kb("VmRSS");
        reset_peak_rss();
        let started = Instant::now();
        let report = naive_sweep(
            &sweeper.store,
            &sweeper.compute,
            &sweeper.scaling,
            &sweeper.agents,
        )
        .await?;
        let wall = started.elapsed();
        let rss_peak_kb = vm_kb("VmHWM");
        let aws = delta(&before, &counts());
        ensure!(
            report.probes == expect.nodes,
            "the naive sweep made {} probes",
            report.probes
        );
        check_ready(&sweeper.store, expect, "naive sweep").await?;
        naive.push(Figures {
            wall,
            aws,
            db_round_trips: report.db_round_trips,
            probes: report.probes,
            changed: 0,
            rss_before_kb,
            rss_peak_kb,
        });
    }

    println!("## Runs");
    println!();
    println!("| run | wall ms | AWS requests | DB round trips | probes | changed | RSS before / peak MiB |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for (label, list) in [("sweep", &sweeps), ("naive", &naive)] {
        for (i, f) in list.iter().enumerate() {
            println!(
                "| {label} {} | {:.0} | {} ({}) | {} | {} | {} | {:.0} / {:.0} |",
                i + 1,
                ms(f.wall),
                f.aws_total(),
                f.aws_brief(),
                f.db_round_trips,
                f.probes,
                if label == "naive" {
                    "-".to_owned()
                } else {
                    f.changed.to_string()
                },
                mib(f.rss_before_kb),
                mib(f.rss_peak_kb)
            );
        }
    }
    if let Some(f) = sweeps.first() {
        let ports: Vec<String> = f
            .aws
            .iter()
            .filter(|(k, _)| k.starts_with("port:"))
            .map(|(k, v)| format!("{}={v}", &k[5..]))
            .collect();
        if !ports.is_empty() {
            println!();
            println!("port calls per sweep: {}", ports.join(" "));
        }
    }
    println!();

    let stat = |list: &[Figures], f: &dyn Fn(&Figures) -> f64| stat_of(list.iter().map(f).collect());
    let show = |s: Option<(f64, f64, f64)>| match s {
        Some((m, lo, hi)) => format!("{} ({}-{})", num(m), num(lo), num(hi)),
        None => "-".into(),
    };
    let metrics: [(&str, &Metric); 4] = [
        ("wall time, ms", &|f| ms(f.wall)),
        ("AWS requests", &|f| f.aws_total() as f64),
        ("DB round trips", &|f| f.db_round_trips as f64),
        ("peak RSS during run, MiB", &|f| mib(f.rss_peak_kb)),
    ];
    println!("## Summary (median, min-max)");
    println!();
    println!("| metric | sweep | naive per-cluster | naive / sweep |");
    println!("|---|---:|---:|---:|");
    for (name, f) in metrics {
        let (s, n) = (stat(&sweeps, f), stat(&naive, f));
        let ratio = match (s, n) {
            (Some((s, _, _)), Some((n, _, _))) if s > 0.0 => format!("{:.1}x", n / s),
            _ => "-".into(),
        };
        println!("| {name} | {} | {} | {ratio} |", show(s), show(n));
    }
    println!();
    let probing_ms = stat_of(probing.iter().map(|d| ms(*d)).collect());
    let sweep_ms = stat_of(sweeps.iter().map(|f| ms(f.wall)).collect());
    println!(
        "probes alone ({} agents, {} at a time on one thread, same prober, no store or AWS): {} ms; \
         the rest of a sweep (store and AWS port): about {:.0} ms",
        targets.len(),
        args.concurrency,
        probing_ms.map_or("-".into(), |(m, lo, hi)| format!("{m:.0} ({lo:.0}-{hi:.0})")),
        sweep_ms.zip(probing_ms).map_or(0.0, |(s, p)| s.0 - p.0)
    );
    println!();
    println!(
        "AWS reads alone, once each: managed_instances {:.1} ms, groups_named ({} names) {:.1} ms",
        ms(instances_took),
        names.len(),
        ms(groups_took)
    );
    println!();
    println!("load average after the runs: {}", loadavg());
    println!();
    let peak_process = sweeps
        .iter()
        .chain(&naive)
        .map(|f| f.rss_peak_kb)
        .chain([peak_setup, vm_kb("VmHWM")])
        .max()
        .unwrap_or(0);
    println!(
        "memory: VmRSS {:.0} MiB at start, {:.0} MiB after setup ({} agents listening, peak {:.0} MiB); \
         peak during a sweep {:.0} MiB, at most +{:.0} MiB over the sweep's start; process peak {:.0} MiB",
        mib(rss_at_start),
        mib(rss_after_setup),
        expect.nodes,
        mib(peak_setup),
        stat(&sweeps, &|f| mib(f.rss_peak_kb)).map_or(0.0, |s| s.2),
        stat(&sweeps, &|f| mib(f.rss_peak_kb.saturating_sub(f.rss_before_kb))).map_or(0.0, |s| s.2),
        mib(peak_process)
    );
    println!();

    // Verdicts.
    let instances = expect.nodes as u64;
    let calls_target = instances.div_ceil(INSTANCES_PER_PAGE as u64)
        + (expect.clusters as u64).div_ceil(GROUPS_PER_DESCRIBE as u64)
        + AWS_SLACK;
    let calls_max = sweeps.iter().map(Figures::aws_total).max().unwrap_or(0);
    let node_batches = expect.nodes.div_ceil(BATCH);
    let health_batches = expect.clusters.div_ceil(BATCH);
    // lease claim and release, two reads; 3 per node batch (begin, upsert,
    // commit); 4 per health batch (begin, select, update, commit), 5 when
    // statuses changed (history insert).
    let trips_bound = 4 + 3 * node_batches + 5 * health_batches;
    let trips_max = sweeps.iter().map(|f| f.db_round_trips).max().unwrap_or(0);
    let wall_median = stat(&sweeps, &|f| ms(f.wall)).map_or(0.0, |s| s.0);
    let mut ok = true;
    let mut verdict = |pass: bool, text: String| {
        ok &= pass;
        println!("- {}: {text}", if pass { "PASS" } else { "FAIL" });
    };
    println!("## Verdicts");
    println!();
    verdict(
        calls_max <= calls_target,
        format!(
            "AWS requests per sweep at most {calls_max} <= ceil({instances}/1000) + ceil({}/50) + {AWS_SLACK} = {calls_target}",
            expect.clusters
        ),
    );
    verdict(
        trips_max <= trips_bound,
        format!(
            "DB round trips per sweep at most {trips_max} <= 4 + 3 x {node_batches} node batches + 5 x {health_batches} \
             health batches = {trips_bound} (batches of {BATCH}; {:.3} per cluster)",
            trips_max as f64 / expect.clusters as f64
        ),
    );
    let at_scale = expect.clusters >= 1000;
    verdict(
        wall_median < ms(WALL_TARGET),
        format!(
            "median sweep wall time {wall_median:.0} ms < {} ms{}",
            ms(WALL_TARGET),
            if at_scale {
                ""
            } else {
                " (the target is set for 1,000 x 5)"
            }
        ),
    );
    println!(
        "- peak RSS (reported, no target): {:.0} MiB during a sweep, {:.0} MiB for the process",
        stat(&sweeps, &|f| mib(f.rss_peak_kb)).map_or(0.0, |s| s.2),
        mib(peak_process)
    );
    Ok(ok)
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures: other work on the machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Median, min and max.
fn stat_of(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some((median, v[0], v[v.len() - 1]))
}

/// Probes every target once, `concurrency` at a time, on a single-threaded
/// runtime of its own thread (the sweep's probes all run in its one task).
async fn probe_alone(agents: &HttpAgents, targets: &[String], concurrency: usize) -> Result<Duration> {
    let agents = agents.clone();
    let targets: Arc<[String]> = targets.into();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("probing runtime");
        let result = rt.block_on(async {
            let next = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..concurrency.min(targets.len()) {
                let (agents, targets, next) = (agents.clone(), targets.clone(), next.clone());
                workers.spawn(async move {
                    let mut failed = 0usize;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(id) = targets.get(i) else { break failed };
                        let target = AgentTarget {
                            instance_id: id.clone(),
                            private_ip: None,
                        };
                        if agents.health(&target).await.is_err() {
                            failed += 1;
                        }
                    }
                });
            }
            let mut failed = 0;
            while let Some(done) = workers.join_next().await {
                failed += done.expect("probe worker");
            }
            (started.elapsed(), failed)
        });
        let _ = tx.send(result);
    });
    let (took, failed) = rx.await.context("the probing thread died")?;
    ensure!(failed == 0, "{failed} probes failed when probing alone");
    Ok(took)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 || x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}
