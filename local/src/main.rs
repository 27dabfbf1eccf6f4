//! `dm-local`: the whole Deployment Manager on one machine. `dm-local up` runs the
//! API (the same router as the Lambda function) on loopback, the reconciler after
//! every write and on a timer, and, unless told otherwise, the AWS emulator it sets
//! up itself. State is SQLite under `--data-dir`. With the emulator, it also
//! simulates a node agent for every instance (see [`sim`]); `dm-local sim` makes
//! those agents fail and recover.

#![recursion_limit = "256"]

mod events;
mod region;
mod schedule;
mod sim;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use shared::cloud::agents::{HttpAgents, Resolver};
use shared::cloud::aws::{AwsSettings, DynamoFence, RdsAdapter, Route53Adapter, S3Adapter};
use shared::cloud::{Dns, Fence};
use shared::config::{Config, HealthConfig, S3Location};
use shared::domain::health::AGENT_PORT;
use shared::domain::logs::LogClock;
use shared::store::{Store, WriterWatch};
use shared::workflows::runbook::DnsZone;
use tokio::sync::Notify;
use tracing::info;

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
    /// Deliver an EventBridge event (a JSON file, such as one of events/) to a
    /// region of a running `up`, as AWS would; prints the handler's answer.
    Event(EventArgs),
}

#[derive(clap::Args)]
struct EventArgs {
    /// The region whose rules receive the event.
    #[arg(long)]
    region: String,
    /// The data directory of the running `dm-local up`.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The event, as EventBridge delivers it to a target.
    file: PathBuf,
    /// Deliver it as a new occurrence: a new id, and the current time in its
    /// `time` (and, for an alarm, its state's timestamp). Without it the event
    /// goes as it is: the same id twice is a duplicate, as AWS may deliver.
    #[arg(long)]
    now: bool,
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
    /// The region of the staging bucket (and of the DM, without --regions).
    #[arg(long, default_value = "us-west-2")]
    region: String,
    /// Run the DM in these regions (two or three, comma-separated), each with
    /// its own API (on --port, --port + 1, ...), against one emulator; the
    /// first is active. Their database is one SQLite file standing in for an
    /// Aurora global database, read-only in the regions that are not its writer.
    #[arg(long, value_name = "R1,R2[,R3]", conflicts_with = "real_aws")]
    regions: Option<String>,
    /// Seconds between runs of each region's failover schedule (serving
    /// metric, heartbeat, standby partners, region runbooks), with --regions.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    failover_interval: u64,
    /// Seconds a database promotion may take before a failover hands the epoch
    /// back, with --regions.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..=3600))]
    promotion_timeout: i64,
    /// Seconds without a heartbeat of the active region before a standby
    /// region's health alarm fires, with --regions.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=3600))]
    heartbeat_max_age: u64,
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
        Command::Event(args) => match events::send(&args.data_dir, &args.region, &args.file, args.now) {
            Ok(answer) => {
                println!("{}", serde_json::to_string_pretty(&answer)?);
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
    let regions: Vec<String> = match &args.regions {
        Some(list) => parse_regions(list)?,
        None => vec![args.region.clone()],
    };

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

    let mut config = Config {
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
        let sim_regions = sim::Regions {
            store: store.clone(),
            default: args.region.clone(),
        };
        Some(sim::Simulation::start(&settings, &config, sim_regions, startup, log_settings, &data_dir).await?)
    };
    // The prober of the node agents. Locally it finds the simulated agents in
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
    // Simulated agents start in milliseconds (--agent-startup-ms): a joining
    // node is asked again sooner than a real one, whose boot takes minutes.
    health.timing.join_poll = Duration::from_millis(250);

    // Several regions: the fence and the global database in the emulator, and
    // a store per region that is read-only while another region's is the writer.
    let global = match &args.regions {
        None => None,
        Some(_) => Some(global_setup(&settings, &config, &store, &regions, &args).await?),
    };

    let common = Arc::new(region::Common {
        aws: settings.clone(),
        config: config.clone(),
        bucket_region: args.region.clone(),
        agents,
        health,
        log_clock,
        rotation_every,
        reconcile_every: Duration::from_secs(args.reconcile_interval),
        sweep_every: Duration::from_secs(args.sweep_interval),
        failover_every: Duration::from_secs(args.failover_interval),
        metrics_log: data_dir.join("metrics.log"),
        rotation_log: data_dir.join("rotation.log"),
        emulator: settings
            .endpoint
            .clone()
            .zip(settings.credentials.clone().map(|(id, _)| id)),
        pid: std::process::id(),
    });
    let mut stacks = Vec::new();
    for (i, region) in regions.iter().enumerate() {
        let regional = match &global {
            Some(g) => g.stores[region].clone(),
            None => store.clone(),
        };
        let port = if args.port == 0 { 0 } else { args.port + i as u16 };
        stacks.push(region::start(&common, global.as_ref(), region, regional, port).await?);
    }
    let events = events::serve(
        &data_dir,
        stacks
            .iter()
            .map(|s| (s.region.clone(), s.handlers.clone()))
            .collect(),
    )
    .await?;

    let env_file = data_dir.join("env");
    let mut exports = format!(
        "export OCADM_ENDPOINT={}\nexport OCADM_TOKEN={}\nexport OCADM_VIEWER_TOKEN={}\nexport OCADM_ADMIN_TOKEN={}\n",
        stacks[0].endpoint, tokens.operator, tokens.viewer, tokens.admin
    );
    if global.is_some() {
        for s in &stacks {
            exports.push_str(&format!(
                "export {}={}\n",
                region_endpoint_var(&s.region),
                s.endpoint
            ));
        }
    }
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
    match &global {
        None => println!("The Deployment Manager is running on {}.", stacks[0].endpoint),
        Some(_) => {
            println!("The Deployment Manager is running in {} regions:", stacks.len());
            for s in &stacks {
                println!("  {}: {}", s.region, s.endpoint);
            }
        }
    }
    println!(
        "In another shell:\n\n  source {}\n  ocadm status\n",
        env_file.display()
    );
    print!("{exports}");
    println!(
        "\n(OCADM_TOKEN is an operator token; OCADM_VIEWER_TOKEN may only read; failovers, drills and \
         the default version need OCADM_ADMIN_TOKEN: OCADM_TOKEN=$OCADM_ADMIN_TOKEN ocadm ...) Ctrl-C stops."
    );

    let shutdown = Arc::new(Notify::new());
    let served: Vec<_> = stacks.iter_mut().map(|s| s.serve(shutdown.clone())).collect();
    let _ = tokio::signal::ctrl_c().await;
    shutdown.notify_waiters();
    for task in served {
        let _ = task.await;
    }
    info!("stopped");
    drop(events);
    drop(simulation);
    drop(emulator);
    Ok(())
}

/// `OCADM_ENDPOINT_US_EAST_1` for `us-east-1`: where `ocadm` finds a region's API.
fn region_endpoint_var(region: &str) -> String {
    format!("OCADM_ENDPOINT_{}", region.to_uppercase().replace('-', "_"))
}

/// `--regions us-east-1,us-west-2`: two or three distinct regions.
fn parse_regions(raw: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for r in raw.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        shared::domain::Region::parse("--regions", r).map_err(|e| anyhow::anyhow!(e.message))?;
        if out.iter().any(|o| o == r) {
            bail!("--regions names {r} twice");
        }
        out.push(r.to_owned());
    }
    if !(2..=3).contains(&out.len()) {
        bail!(
            "--regions takes two or three regions, such as us-east-1,us-west-2 (the fence is a DynamoDB table \
             with multi-region strong consistency, which spans three regions); got {raw:?}"
        );
    }
    Ok(out)
}

/// The witness region of the fence's table when the DM has two regions: MRSC
/// spans three.
fn witness_for(regions: &[String]) -> Option<String> {
    if regions.len() != 2 {
        return None;
    }
    ["us-east-2", "us-west-1", "eu-west-1", "eu-central-1"]
        .into_iter()
        .find(|w| !regions.iter().any(|r| r == w))
        .map(str::to_owned)
}

const FENCE_TABLE: &str = "okera-dm-fence";
const GLOBAL_DB: &str = "okera-dm";

/// Makes (or finds) the fence table and the global database in the emulator,
/// with the writer where the last run left it (the store's leadership history),
/// restores that epoch in a fresh fence, and opens one store per region that
/// follows the emulated writer role.
async fn global_setup(
    settings: &AwsSettings,
    config: &Config,
    store: &Store,
    regions: &[String],
    args: &UpArgs,
) -> Result<region::Global> {
    let last = store.leadership_history(1).await?.into_iter().next();
    let first = last
        .as_ref()
        .map(|l| l.region.clone())
        .filter(|r| regions.contains(r))
        .unwrap_or_else(|| regions[0].clone());
    let mut ordered = vec![first.clone()];
    ordered.extend(regions.iter().filter(|r| **r != first).cloned());
    let fence = DynamoFence::new(settings.clone(), &ordered[0], FENCE_TABLE);
    fence
        .ensure_table(&ordered[1..], witness_for(regions).as_deref())
        .await
        .context("making the fence table in the emulator")?;
    if let (Some(l), Ok(None)) = (&last, fence.leader().await) {
        let restored = shared::domain::failover::Leader {
            epoch: l.epoch,
            region: l.region.clone(),
            since: l.at,
            previous: l.previous.clone(),
            failover_id: l.failover_id.clone(),
        };
        fence
            .claim(None, &restored)
            .await
            .context("restoring the fence's epoch")?;
    }
    let rds = RdsAdapter::new(settings.clone());
    let gdb = rds
        .ensure_global(GLOBAL_DB, &ordered)
        .await
        .context("making the global database in the emulator")?;
    let watch = WriterWatch::new(gdb.writer().map(|w| w.region.as_str()));
    tokio::spawn(shared::workflows::failover::follow_writer(
        rds,
        ordered[0].clone(),
        GLOBAL_DB.into(),
        watch.clone(),
        Duration::from_millis(100),
    ));
    let mut stores = std::collections::BTreeMap::new();
    for r in regions {
        stores.insert(
            r.clone(),
            Store::connect_regional(&config.db_url, r, watch.clone())
                .await
                .with_context(|| format!("opening the store of {r}"))?,
        );
    }
    info!(
        regions = %regions.join(","),
        writer = %watch.get().unwrap_or_default(),
        "regions: the fence is {FENCE_TABLE}, the global database {GLOBAL_DB}"
    );
    Ok(region::Global {
        regions: regions.to_vec(),
        fence_table: FENCE_TABLE.into(),
        global_db: GLOBAL_DB.into(),
        promotion_timeout_ms: args.promotion_timeout * 1000,
        heartbeat_max_age_s: args.heartbeat_max_age as f64,
        stores,
    })
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
