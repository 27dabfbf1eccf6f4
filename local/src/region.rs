//! One DM region of `dm-local`: what the region's Lambda functions and
//! schedules would be in AWS, in tasks of this process. With `--regions`, every
//! region has its own stack: its API on its own port, its regional store (read
//! only while another region's database is the writer), its gate, and its
//! failover function. All share the emulator, the node agents and the one
//! SQLite file that stands in for the Aurora global database.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use shared::cloud::agents::HttpAgents;
use shared::cloud::aws::{AwsSettings, CloudWatchAdapter, DynamoFence, Route53Adapter, S3Adapter};
use shared::config::{Config, HealthConfig, RetentionConfig};
use shared::domain::logs::LogClock;
use shared::store::Store;
use shared::workflows::archive::Archiver;
use shared::workflows::commands::Limits;
use shared::workflows::diagnostics;
use shared::workflows::failover::{Desk, FailoverSettings, FailoverWake, FenceDesk, Gate, SingleRegionDesk};
use shared::workflows::kill::KillSwitch;
use shared::workflows::rotation::RotationSettings;
use shared::workflows::runbook::{ClusterSteps, RunbookSettings, Runner};
use tokio::sync::Notify;
use tracing::{error, info};

use crate::schedule;

/// What every region of the runner shares.
pub struct Common {
    pub aws: AwsSettings,
    pub config: Config,
    /// Where the staging bucket is (the S3 client's region).
    pub bucket_region: String,
    pub agents: HttpAgents,
    pub health: HealthConfig,
    pub log_clock: LogClock,
    pub rotation_every: Duration,
    pub reconcile_every: Duration,
    pub sweep_every: Duration,
    pub failover_every: Duration,
    pub metrics_log: PathBuf,
    pub rotation_log: PathBuf,
    /// The emulator's endpoint and account, for the events it records.
    pub emulator: Option<(String, String)>,
    pub pid: u32,
}

/// The multi-region part: the fence and the global database's stand-in.
pub struct Global {
    pub regions: Vec<String>,
    pub fence_table: String,
    pub global_db: String,
    pub promotion_timeout_ms: i64,
    pub heartbeat_max_age_s: f64,
    /// Every region's store, read only while another region's is the writer.
    pub stores: BTreeMap<String, Store>,
}

/// How the events a region receives reach its handlers (`dm-local event`).
#[derive(Clone)]
pub struct Handlers {
    pub region: String,
    pub gate: Gate,
    pub reconciler: Arc<reconciler::AwsReconciler>,
    pub sweeper: Arc<health_sweep::AwsSweeper>,
    pub lifecycle: Arc<lifecycle::AwsLifecycle>,
    pub logs: Arc<log_rotation::Logs<S3Adapter>>,
    pub runner: Arc<runbooks::AwsRunner>,
    pub failover: Option<Arc<failover::AwsFailover>>,
    pub kick: api::Kick,
    pub metrics_log: PathBuf,
}

impl Handlers {
    /// Delivers an EventBridge event as this region's rules would: alarm state
    /// changes to the failover function, lifecycle actions to the lifecycle
    /// function, a scheduled event to the function its rule names.
    pub async fn deliver(&self, event: &Value) -> Result<Value, String> {
        let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or("");
        let emit = |line: &str| schedule::append_line(&self.metrics_log, line);
        let out = match detail_type {
            "CloudWatch Alarm State Change" => match &self.failover {
                Some(f) => failover::handle(f, event).await,
                None => return Err("no failover function runs here: start dm-local with --regions".into()),
            },
            "EC2 Instance-launch Lifecycle Action" | "EC2 Instance-terminate Lifecycle Action" => {
                lifecycle::handle(&self.lifecycle, &self.gate, Some(&self.kick), event).await
            }
            "Scheduled Event" => {
                let rule = event
                    .get("resources")
                    .and_then(|r| r.get(0))
                    .and_then(Value::as_str)
                    .and_then(|r| r.rsplit('/').next())
                    .unwrap_or("");
                match rule {
                    "okera-dm-reconcile" => reconciler::handle(&self.reconciler, &self.gate, event).await,
                    "okera-dm-health-sweep" => health_sweep::handle(&self.sweeper, &self.gate, event, &emit).await,
                    "okera-dm-log-rotation" => self.logs.handle(&self.gate, event, &emit).await,
                    "okera-dm-runbooks" => runbooks::handle(&self.runner, &self.gate, event).await,
                    "okera-dm-failover" => match &self.failover {
                        Some(f) => failover::handle(f, event).await,
                        None => return Err("no failover function runs here: start dm-local with --regions".into()),
                    },
                    other => {
                        return Err(format!(
                            "no schedule rule {other:?}: the scheduled event's resources must name one of \
                             okera-dm-reconcile, okera-dm-health-sweep, okera-dm-log-rotation, okera-dm-runbooks, okera-dm-failover"
                        ))
                    }
                }
            }
            other => {
                return Err(format!(
                    "no rule of {} matches detail-type {other:?}: dm-local delivers CloudWatch Alarm State Change, \
                     EC2 Instance-launch/-terminate Lifecycle Action and Scheduled Event",
                    self.region
                ))
            }
        };
        out.map_err(|e| format!("{e:#}"))
    }
}

/// A running region: its API's address and its handlers.
pub struct RegionStack {
    pub region: String,
    pub endpoint: String,
    pub handlers: Handlers,
    listener: Option<tokio::net::TcpListener>,
    router: Option<axum::Router>,
}

impl RegionStack {
    /// Serves the region's API until `shutdown` resolves.
    pub fn serve(&mut self, shutdown: Arc<Notify>) -> tokio::task::JoinHandle<()> {
        let listener = self.listener.take().expect("served once");
        let router = self.router.take().expect("served once");
        let region = self.region.clone();
        tokio::spawn(async move {
            let stopped = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.notified().await })
                .await;
            if let Err(e) = stopped {
                error!(%region, error = %e, "the API stopped");
            }
        })
    }
}

fn failover_settings(global: &Global, region: &str) -> FailoverSettings {
    let peers: Vec<&String> = global.regions.iter().filter(|r| *r != region).collect();
    FailoverSettings {
        region: region.to_owned(),
        dm_regions: global.regions.clone(),
        fence_table: global.fence_table.clone(),
        global_db: global.global_db.clone(),
        db_cluster: db_cluster(&global.global_db, region),
        health_alarms: peers
            .iter()
            .map(|p| (shared::domain::failover::health_alarm_name(p), (*p).clone()))
            .collect(),
        automatic: true,
        max_lag_ms: 60_000,
        promotion_timeout_ms: global.promotion_timeout_ms,
        poll_ms: 100,
        heartbeat_max_age_s: global.heartbeat_max_age_s,
    }
}

/// The DB cluster of `region` in the emulator's global database.
pub fn db_cluster(global_db: &str, region: &str) -> String {
    format!("{global_db}-{region}")
}

/// Starts the schedules and the failover function of `region`, and binds its
/// API to `port` (0: any); `serve` starts answering.
pub async fn start(
    common: &Arc<Common>,
    global: Option<&Global>,
    region: &str,
    store: Store,
    port: u16,
) -> Result<RegionStack> {
    let owner = format!("dm-local-{}-{region}", common.pid);
    let aws = common.aws.clone();
    let gate = match global {
        Some(g) => Gate::fenced(
            Arc::new(DynamoFence::new(aws.clone(), region, &g.fence_table)),
            store.clone(),
            region,
        ),
        None => Gate::single(region),
    };

    // The reconciler: after every write, and on its schedule.
    let reconciler = Arc::new(reconciler::build(
        store.clone(),
        &common.config,
        aws.clone(),
        &common.bucket_region,
        owner.clone(),
    ));
    tokio::spawn(schedule::reconcile_loop(
        reconciler.clone(),
        gate.clone(),
        common.reconcile_every,
    ));
    // A write or a step wakes the reconciler for its target: in a task, as the
    // asynchronous invoke of the reconciler function does in AWS.
    let kick: api::Kick = {
        let (reconciler, gate) = (reconciler.clone(), gate.clone());
        Arc::new(move |target: shared::workflows::reconcile::Target| {
            let (reconciler, gate) = (reconciler.clone(), gate.clone());
            tokio::spawn(async move {
                if let Err(e) = reconciler::handle(&reconciler, &gate, &target.event()).await {
                    error!(error = %e, ?target, "reconcile failed");
                }
            });
            Box::pin(async {})
        })
    };

    // The health sweep, the lifecycle hooks, log rotation and the runbooks.
    let sweeper = Arc::new(health_sweep::build(
        store.clone(),
        aws.clone(),
        &common.health,
        common.agents.clone(),
        owner.clone(),
    ));
    tokio::spawn(schedule::sweep_loop(
        sweeper.clone(),
        gate.clone(),
        common.sweep_every,
        common.metrics_log.clone(),
    ));
    let lifecycle = Arc::new(lifecycle::build(
        store.clone(),
        aws.clone(),
        &common.health,
        common.agents.clone(),
    ));
    if let Some((endpoint, account)) = &common.emulator {
        tokio::spawn(schedule::lifecycle_pump(
            lifecycle.clone(),
            gate.clone(),
            kick.clone(),
            endpoint.clone(),
            account.clone(),
        ));
    }
    let runbook_wake = Arc::new(Notify::new());
    let runner = Arc::new(Runner {
        store: store.clone(),
        steps: ClusterSteps {
            dns: Route53Adapter::new(aws.clone()),
            agents: common.agents.clone(),
            zone: common.config.dns_zone.clone(),
            kick: kick.clone(),
        },
        settings: local_runbook_settings(),
        owner: format!("{owner}-runbooks"),
        kill: KillSwitch::off(),
    });
    tokio::spawn(schedule::runbook_loop(
        runner.clone(),
        gate.clone(),
        runbook_wake.clone(),
        Duration::from_secs(1),
    ));
    let logs = Arc::new(log_rotation::Logs {
        region: common.bucket_region.clone(),
        archiver: Archiver {
            store: store.clone(),
            objects: S3Adapter::new(aws.clone(), &common.bucket_region),
            staging: common.config.staging.clone(),
            settings: Default::default(),
            owner: format!("{owner}-archive"),
            kill: KillSwitch::off(),
        },
        rotation: RotationSettings {
            clock: common.log_clock,
            ..Default::default()
        },
        retention: RetentionConfig::from_env().map_err(anyhow::Error::msg)?,
    });
    tokio::spawn(schedule::rotation_loop(
        logs.clone(),
        gate.clone(),
        common.rotation_every,
        common.rotation_log.clone(),
        common.metrics_log.clone(),
    ));

    // The failover function, with several regions.
    let (failover, desk, region_wake): (
        Option<Arc<failover::AwsFailover>>,
        Arc<dyn Desk>,
        api::RunbookWake,
    ) = match global {
        None => (
            None,
            Arc::new(SingleRegionDesk {
                region: region.to_owned(),
            }),
            Arc::new(|_| Box::pin(async {})),
        ),
        Some(g) => {
            let settings = failover_settings(g, region);
            let metrics_log = common.metrics_log.clone();
            let f = Arc::new(failover::build(failover::Parts {
                store: store.clone(),
                aws: aws.clone(),
                settings: settings.clone(),
                zone: common.config.dns_zone.clone(),
                staging: common.config.staging.clone(),
                kick: kick.clone(),
                replicas: g
                    .stores
                    .iter()
                    .filter(|(r, _)| *r != region)
                    .map(|(r, s)| (r.clone(), s.clone()))
                    .collect(),
                // A failover looks at its partners more often than an upgrade
                // looks at its replacement: its wait is the RTO.
                runbook_settings: RunbookSettings {
                    poll_ms: 200,
                    ..local_runbook_settings()
                },
                owner: format!("{owner}-failover"),
                kill: KillSwitch::off(),
                emit: Arc::new(move |line| schedule::append_line(&metrics_log, line)),
            }));
            tokio::spawn(schedule::failover_loop(f.clone(), common.failover_every));
            if let Some((endpoint, account)) = &common.emulator {
                tokio::spawn(schedule::alarm_pump(
                    f.clone(),
                    region.to_owned(),
                    endpoint.clone(),
                    account.clone(),
                ));
            }
            // The API's wake-up of the failover function: a task, as an
            // asynchronous invoke would be.
            let invoke: FailoverWake = {
                let f = f.clone();
                Arc::new(move |event: Value| {
                    let f = f.clone();
                    tokio::spawn(async move {
                        match failover::handle(&f, &event).await {
                            Ok(answer) => info!(%answer, "failover function"),
                            Err(e) => error!(error = %e, "failover function failed"),
                        }
                    });
                    Box::pin(async {})
                })
            };
            let desk = FenceDesk::new(
                Arc::new(DynamoFence::new(aws.clone(), region, &g.fence_table)),
                CloudWatchAdapter::new(aws.clone()),
                store.clone(),
                settings,
                invoke.clone(),
            );
            let region_wake: api::RunbookWake =
                Arc::new(move |id| invoke(shared::workflows::runbook::event(id)));
            (Some(f), Arc::new(desk), region_wake)
        }
    };

    // Diagnostics bundles: built in a task when the API asks.
    let diagnostics_wake: diagnostics::Wake = {
        let (logs, gate) = (logs.clone(), gate.clone());
        Arc::new(move |operation_id| {
            let (logs, gate) = (logs.clone(), gate.clone());
            tokio::spawn(async move {
                match logs
                    .handle(&gate, &diagnostics::event(operation_id), &|_| {})
                    .await
                {
                    Ok(answer) => info!(operation_id, %answer, "diagnostics"),
                    Err(e) => error!(operation_id, error = %e, "diagnostics run failed"),
                }
            });
            Box::pin(async {})
        })
    };
    let state = api::AppState {
        store,
        limits: Limits {
            max_nodes: common.config.max_nodes,
            default_version: common.config.default_version.clone(),
        },
        kick: kick.clone(),
        diagnostics: api::Diagnostics {
            staging: common.config.staging.clone(),
            wake: diagnostics_wake,
        },
        run_runbook: {
            let wake = runbook_wake.clone();
            Arc::new(move |_| {
                wake.notify_one();
                Box::pin(async {})
            })
        },
        failover: desk,
        run_region_runbook: region_wake,
        // dm-local knows its callers by the tokens it prints.
        auth: api::Auth::Tokens,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("listening on {addr} for {region}; is another dm-local running? try --port")
    })?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    Ok(RegionStack {
        region: region.to_owned(),
        endpoint,
        handlers: Handlers {
            region: region.to_owned(),
            gate,
            reconciler,
            sweeper,
            lifecycle,
            logs,
            runner,
            failover,
            kick,
            metrics_log: common.metrics_log.clone(),
        },
        listener: Some(listener),
        router: Some(api::router(state)),
    })
}

/// Runbooks locally: look again every second, wait in-process at most 2 s.
fn local_runbook_settings() -> RunbookSettings {
    RunbookSettings {
        poll_ms: 1000,
        budget: Duration::from_secs(2),
        ..Default::default()
    }
}
