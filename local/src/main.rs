//! `dm-local`: the whole Deployment Manager on one machine. `dm-local up` runs the
//! API (the same router as the Lambda function) on loopback, the reconciler after
//! every write and on a timer, and, unless told otherwise, the AWS emulator it sets
//! up itself. State is SQLite under `--data-dir`. With the emulator, it also
//! simulates a node agent for every instance (see [`sim`]); `dm-local sim` makes
//! those agents fail and recover.

#![recursion_limit = "256"]

mod schedule;
mod sim;
mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use shared::cloud::agents::{HttpAgents, Resolver};
use shared::cloud::aws::{AwsSettings, Route53Adapter, S3Adapter};
use shared::cloud::Dns;
use shared::config::{Config, HealthConfig, RetentionConfig, S3Location};
use shared::domain::health::AGENT_PORT;
use shared::domain::logs::LogClock;
use shared::store::Store;
use shared::workflows::archive::Archiver;
use shared::workflows::commands::Limits;
use shared::workflows::diagnostics;
use shared::workflows::kill::KillSwitch;
use shared::workflows::rotation::RotationSettings;
use shared::workflows::runbook::{DnsZone, RunbookSettings, Runner};
use tokio::sync::Notify;
use tracing::{error, info};

/// The Okera Deployment Manager, run locally.
#[derive(Parser)]
#[command(name = "dm-local", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the API, the reconciler and the schedules (and the AWS emulator).
    Up(UpArgs),
    /// Fail, slow down or restore the simulated node agents of a running `up`.
    Sim(sim::cli::SimArgs),
}

/// Where `up` keeps its state, and where `sim` looks for it.
const DEFAULT_DATA_DIR: &str = ".dm-local";

#[derive(clap::Args)]
struct UpArgs {
    /// Port of the API on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Where state, tokens, logs and the emulator's virtual environment live.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Use an AWS endpoint that is already running (an emulator on loopback)
    /// instead of starting one.
    #[arg(long, conflicts_with = "real_aws")]
    aws_endpoint: Option<String>,
    /// Drive real AWS with the default credentials chain (no emulator). Needs
    /// OKERA_S3_STAGING_DIR and OKERA_NODE_AMI.
    #[arg(long)]
    real_aws: bool,
    /// The region of the staging bucket.
    #[arg(long, default_value = "us-west-2")]
    region: String,
    /// Seconds between scheduled reconcile runs.
    #[arg(long, default_value_t = 15)]
    reconcile_interval: u64,
    /// Seconds between health sweeps.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    sweep_interval: u64,
    /// Seconds a node may fail its health checks before it is replaced.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    repair_after: u64,
    /// Seconds a new node has to become ready before it is abandoned.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    bootstrap_timeout: u64,
    /// The largest numNodes accepted.
    #[arg(long, default_value_t = 100)]
    max_nodes: i64,
    /// Milliseconds a simulated node agent takes to bring all its services up.
    #[arg(long, default_value_t = sim::DEFAULT_STARTUP.as_millis() as u64)]
    agent_startup_ms: u64,
    /// Seconds an hour of the log clock lasts, 10 to 3600, for demos and tests
    /// (default: real hours). Kept in DIR/log-clock.json: log time carries on
    /// from the last run, never backwards.
    #[arg(long, value_name = "N", value_parser = sim::logs::parse_hour_seconds, conflicts_with = "real_aws")]
    hour_seconds: Option<u32>,
    /// Seconds between log-rotation runs (default: one log hour, at most 300).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    rotation_interval: Option<u64>,
    /// Seconds between a simulated agent's periodic log uploads (default: a
    /// twelfth of a log hour, so 300, or 5 with --hour-seconds 60).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    log_upload_interval: Option<u64>,
}

/// A machine image the emulator knows; real AWS needs OKERA_NODE_AMI.
const EMULATOR_AMI: &str = "ami-12c6146b";
/// The Route 53 zone dm-local makes in the emulator for cluster endpoints
/// (`.test` is reserved for testing: it never resolves on the internet).
const LOCAL_ZONE: &str = "dm-local.test";
/// The emulator's account, as the access key id the emulator maps to it.
const EMULATOR_ACCOUNT: &str = "123456789012";

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Up(args) => tokio::runtime::Runtime::new()?.block_on(up(args)),
        Command::Sim(args) => match sim::cli::run(&args) {
            Ok(line) => {
                println!("{line}");
                Ok(())
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(1)
            }
        },
    }
}

async fn up(args: UpArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;

    // AWS: the emulator we start, one that runs already, or the real thing.
    let mut emulator = None;
    let (settings, started_endpoint) = if args.real_aws {
        (AwsSettings::default(), None)
    } else {
        let endpoint = match &args.aws_endpoint {
            Some(e) => e.clone(),
            None => {
                let python = emulator::ensure_venv(&data_dir.join("emulator-venv"))
                    .context("setting up the AWS emulator (python3 -m venv and pip must work)")?;
                let emu = emulator::Emulator::start(&python, Some(&data_dir.join("emulator.log")))
                    .context("starting the AWS emulator")?;
                let endpoint = emu.endpoint().to_owned();
                emulator = Some(emu);
                endpoint
            }
        };
        check_loopback(&endpoint)?;
        // An emulator of one's own may want its own account (moto maps a 12-digit
        // access key to that account); ours uses the default one.
        let credentials = match (&args.aws_endpoint, std::env::var("AWS_ACCESS_KEY_ID")) {
            (Some(_), Ok(id)) => (
                id,
                std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "dm-local".into()),
            ),
            _ => (EMULATOR_ACCOUNT.into(), "dm-local".into()),
        };
        let settings = AwsSettings {
            endpoint: Some(endpoint.clone()),
            credentials: Some(credentials),
            max_attempts: None,
        };
        (settings, emulator.as_ref().map(|_| endpoint))
    };

    let config = Config {
        db_url: format!("sqlite://{}", data_dir.join("dm.sqlite").display()),
        staging: match std::env::var("OKERA_S3_STAGING_DIR") {
            Ok(s) => S3Location::parse(&s)
                .map_err(anyhow::Error::msg)
                .context("OKERA_S3_STAGING_DIR")?,
            Err(_) if args.real_aws => bail!("--real-aws needs OKERA_S3_STAGING_DIR (s3://bucket/prefix)"),
            Err(_) => S3Location::parse("s3://okera-dm-local/staging").expect("valid location"),
        },
        max_nodes: args.max_nodes,
        default_version: std::env::var("OKERA_DEFAULT_VERSION").unwrap_or_else(|_| "2.0.0".into()),
        node_ami: match std::env::var("OKERA_NODE_AMI") {
            Ok(a) => a,
            Err(_) if args.real_aws => bail!("--real-aws needs OKERA_NODE_AMI"),
            Err(_) => EMULATOR_AMI.into(),
        },
        node_instance_profile: std::env::var("OKERA_NODE_INSTANCE_PROFILE").ok(),
        aws_endpoint: settings.endpoint.clone(),
        dns_zone: None,
    };
    let mut config = config;

    let store = Store::connect(&config.db_url)
        .await
        .context("opening the local state store")?;
    if settings.endpoint.is_some() {
        S3Adapter::new(settings.clone(), &args.region)
            .ensure_bucket(&config.staging.bucket)
            .await
            .context("creating the staging bucket in the emulator")?;
    }
    let tokens = tokens::load_or_create(&data_dir, &store).await?;
    // Cluster endpoints: in the emulator, a zone of our own; with real AWS, the
    // configured one (OKERA_DNS_ZONE_ID and OKERA_DNS_ZONE_NAME), if any.
    config.dns_zone = if args.real_aws {
        shared::config::dns_zone_from_env().map_err(anyhow::Error::msg)?
    } else {
        let id = Route53Adapter::new(settings.clone())
            .ensure_zone(LOCAL_ZONE)
            .await
            .context("creating the endpoint zone in the emulator")?;
        Some(DnsZone {
            id,
            name: LOCAL_ZONE.into(),
        })
    };

    // The clock that keys node logs: real hours, or --hour-seconds, continuing
    // from the last run's (DIR/log-clock.json). Real nodes write on the wall clock.
    let log_clock = if args.real_aws {
        LogClock::WALL
    } else {
        sim::logs::open_clock(&data_dir, args.hour_seconds, shared::time::now_ms())?
    };
    let mut log_settings = sim::logs::LogSettings::new(log_clock);
    if let Some(s) = args.log_upload_interval {
        log_settings.upload_every = Duration::from_secs(s);
    }
    let rotation_every = args.rotation_interval.map_or_else(
        || schedule::default_rotation_interval(&log_clock),
        Duration::from_secs,
    );
    info!(
        hour_seconds = log_clock.hour_ms / 1000,
        log_time = %shared::time::format_ms(log_clock.now()),
        agent_uploads_every_ms = log_settings.upload_every.as_millis() as u64,
        rotation_every_s = rotation_every.as_secs(),
        "log clock"
    );

    // Node agents: simulated on loopback when dm-local drives the emulator.
    let simulation = if args.real_aws {
        None
    } else {
        let startup = Duration::from_millis(args.agent_startup_ms);
        let regions = sim::Regions {
            store: store.clone(),
            default: args.region.clone(),
        };
        Some(sim::Simulation::start(&settings, &config, regions, startup, log_settings, &data_dir).await?)
    };
    // The prober of the node agents. The health sweep and the lifecycle handler
    // will take it; nothing probes yet. Locally it finds the simulated agents in
    // the directory; with --real-aws it would use the nodes' private IPs, which
    // it refuses to contact outside AWS.
    let agents = match &simulation {
        Some(s) => HttpAgents::new(Resolver::Directory(s.directory.clone())),
        None => HttpAgents::new(Resolver::PrivateIp { port: AGENT_PORT }),
    };
    let mut health = HealthConfig::from_env().map_err(anyhow::Error::msg)?;
    health.sweep.repair_after_ms = (args.repair_after * 1000) as i64;
    health.sweep.bootstrap_timeout_ms = (args.bootstrap_timeout * 1000) as i64;
    health.timing.bootstrap_timeout_ms = health.sweep.bootstrap_timeout_ms;
    let owner = format!("dm-local-{}", std::process::id());

    let reconciler = Arc::new(reconciler::build(
        store.clone(),
        &config,
        settings.clone(),
        &args.region,
        owner.clone(),
    ));
    let wake = Arc::new(Notify::new());
    tokio::spawn(reconcile_loop(
        reconciler,
        wake.clone(),
        Duration::from_secs(args.reconcile_interval),
    ));
    let kick: api::Kick = {
        let wake = wake.clone();
        Arc::new(move |_target| {
            wake.notify_one();
            Box::pin(async {})
        })
    };
    let archive_owner = format!("{owner}-archive");
    let runbook_owner = format!("{owner}-runbooks");
    let sweeper = health_sweep::build(store.clone(), settings.clone(), &health, agents.clone(), owner);
    tokio::spawn(schedule::sweep_loop(
        sweeper,
        Duration::from_secs(args.sweep_interval),
        data_dir.join("metrics.log"),
    ));
    // The log-rotation function: its schedule (retention, rotation, history
    // archive, lost diagnostics requests) on a timer, and diagnostics bundles when
    // the API asks, both through the function's own handler.
    // Runbooks: run when the API submits one, and every second for those whose
    // wait is over (in Lambda: a direct invoke, and a schedule every minute).
    let runbook_wake = Arc::new(Notify::new());
    let runner = Arc::new(Runner {
        store: store.clone(),
        dns: Route53Adapter::new(settings.clone()),
        agents: agents.clone(),
        zone: config.dns_zone.clone(),
        kick: kick.clone(),
        settings: RunbookSettings {
            poll_ms: 1000,
            budget: Duration::from_secs(2),
            ..Default::default()
        },
        owner: runbook_owner,
        kill: KillSwitch::off(),
    });
    tokio::spawn(schedule::runbook_loop(
        runner,
        runbook_wake.clone(),
        Duration::from_secs(1),
    ));
    let logs = Arc::new(log_rotation::Logs {
        region: args.region.clone(),
        archiver: Archiver {
            store: store.clone(),
            objects: S3Adapter::new(settings.clone(), &args.region),
            staging: config.staging.clone(),
            settings: Default::default(),
            owner: archive_owner,
            kill: KillSwitch::off(),
        },
        rotation: RotationSettings {
            clock: log_clock,
            ..Default::default()
        },
        retention: RetentionConfig::from_env().map_err(anyhow::Error::msg)?,
    });
    tokio::spawn(schedule::rotation_loop(
        logs.clone(),
        rotation_every,
        data_dir.join("rotation.log"),
        data_dir.join("metrics.log"),
    ));
    // Lifecycle actions: the emulator records the EventBridge events AWS would
    // send; deliver each to the lifecycle handler, as the EventBridge rule does.
    if let (Some(endpoint), Some((account, _))) = (&settings.endpoint, &settings.credentials) {
        let lifecycle = lifecycle::build(store.clone(), settings.clone(), &health, agents);
        tokio::spawn(schedule::lifecycle_pump(
            Arc::new(lifecycle),
            kick.clone(),
            endpoint.clone(),
            account.clone(),
        ));
    }

    // Diagnostics bundles: built in a task when the API asks (in Lambda, the
    // log-rotation function is invoked), and every minute for requests whose
    // wake-up was lost or whose worker was stopped.
    let diagnostics_wake: diagnostics::Wake = Arc::new(move |operation_id| {
        let logs = logs.clone();
        tokio::spawn(async move {
            match logs.handle(&diagnostics::event(operation_id), &|_| {}).await {
                Ok(answer) => info!(operation_id, %answer, "diagnostics"),
                Err(e) => error!(operation_id, error = %e, "diagnostics run failed"),
            }
        });
        Box::pin(async {})
    });
    let state = api::AppState {
        store,
        limits: Limits {
            max_nodes: config.max_nodes,
            default_version: config.default_version.clone(),
        },
        kick,
        diagnostics: api::Diagnostics {
            staging: config.staging.clone(),
            wake: diagnostics_wake,
        },
        // In Lambda the API invokes the runbooks function; here it wakes its loop.
        run_runbook: {
            let wake = runbook_wake.clone();
            Arc::new(move |_| {
                wake.notify_one();
                Box::pin(async {})
            })
        },
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}; is another dm-local running? try --port"))?;
    let endpoint = format!("http://{}", listener.local_addr()?);

    let env_file = data_dir.join("env");
    let mut exports = format!(
        "export OCADM_ENDPOINT={endpoint}\nexport OCADM_TOKEN={}\nexport OCADM_VIEWER_TOKEN={}\n",
        tokens.operator, tokens.viewer
    );
    // ocadm is built next to dm-local; put it on the PATH of whoever sources this.
    if let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_owned()))
    {
        if bin_dir.join("ocadm").exists() {
            exports.push_str(&format!("export PATH={}:$PATH\n", bin_dir.display()));
        }
    }
    if let Some(e) = &started_endpoint {
        exports.push_str(&format!(
            "export AWS_ENDPOINT_URL={e}\nexport AWS_ACCESS_KEY_ID={EMULATOR_ACCOUNT}\nexport AWS_SECRET_ACCESS_KEY=dm-local\nexport AWS_DEFAULT_REGION={}\n",
            args.region
        ));
    }
    tokens::write_private(&env_file, &exports)?;
    println!("The Deployment Manager is running on {endpoint}.");
    println!(
        "In another shell:\n\n  source {}\n  ocadm status\n",
        env_file.display()
    );
    print!("{exports}");
    println!("\n(OCADM_TOKEN is an operator token; OCADM_VIEWER_TOKEN may only read.) Ctrl-C stops.");

    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving the API")?;
    info!("stopped");
    drop(simulation);
    drop(emulator);
    Ok(())
}

/// Runs the reconciler when a write wakes it and on every tick of the schedule.
async fn reconcile_loop(reconciler: Arc<reconciler::AwsReconciler>, wake: Arc<Notify>, every: Duration) {
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
        match reconciler.reconcile_all().await {
            Ok(s) => {
                for e in &s.errors {
                    error!(error = %e, "reconcile");
                }
            }
            Err(e) => error!(error = %e, "reconcile run failed"),
        }
    }
}

/// The local runner talks only to loopback.
fn check_loopback(endpoint: &str) -> Result<()> {
    let host = endpoint
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h))
        .unwrap_or("");
    if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        Ok(())
    } else {
        bail!("--aws-endpoint must be on loopback (127.0.0.1, localhost or [::1]), got {endpoint}")
    }
}
