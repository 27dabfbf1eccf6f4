//! `coldstart`: the cold-start benchmark of the DM's seven function binaries,
//! beside the `hello-lambda` baseline (issue 7, "Performance").
//!
//! ```text
//! cargo build --release -p api -p reconciler -p lifecycle -p health-sweep \
//!     -p log-rotation -p runbooks -p failover -p coldstart
//! target/release/coldstart [--runs 10] [--warmup 1] [--bin-dir target/release] \
//!     [--timeout-secs 30] [--only api,failover] [--keep]
//! ```
//!
//! What it sets up, once:
//! - the AWS emulator on 127.0.0.1 (`DM_EMULATOR_PYTHON`, else the venv in
//!   `target/emulator-venv`), in a fresh account: the staging bucket and the
//!   fence table (DynamoDB) exist there, as the template makes them in AWS;
//! - a SQLite store in a fresh work directory, migrated, with one viewer
//!   token for the API's event;
//! - each function's environment: the variables its `main` reads, pointing at
//!   these, plus what Lambda sets for a custom runtime. Only the failover
//!   function is given the fence (`OKERA_FENCE_TABLE`: it refuses to start
//!   without one); the others run single-region, where the gate says active.
//!
//! Then it runs `--warmup` uncounted rounds and `--runs` measured ones. Each
//! round starts every binary once, the baseline first, one after the other
//! (round-robin, so that the machine's noise falls on all of them alike). A
//! run is one fresh process with a stand-in Runtime API of its own that hands
//! it one event (see [`coldstart::measure`]). A run whose process fails, hangs
//! past `--timeout-secs`, answers with an error, or answers something that is
//! not a success (an HTTP status other than 200, a rejected event, a standby
//! answer, reported errors) is a failure: it is printed with the tail of the
//! process's log, and the program exits 1 after the report.
//!
//! Progress goes to stderr; the report (settings, machine, the Markdown table
//! and what each first invocation did) to stdout. Only loopback is contacted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use coldstart::measure::{cold_start, Launch};
use coldstart::report::{self, Measured};
use emulator::Emulator;
use serde_json::Value;
use shared::cloud::aws::{AwsSettings, DynamoFence, S3Adapter};
use shared::config::S3Location;
use shared::store::{Role, Store};

const BASELINE: &str = "hello-lambda";
const REGION: &str = "us-west-2";
const PEER_REGION: &str = "us-east-1";
const FENCE_TABLE: &str = "okera-dm-fence";

/// The cold-start benchmark of the DM's function binaries (issue 7).
#[derive(Debug, Parser)]
#[command(name = "coldstart")]
struct Args {
    /// Measured rounds; every binary starts once per round.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Rounds before the measured ones, not counted: they fill the page cache
    /// and do what only a first run does (the failover's first epoch).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Where the binaries are (`target/debug` for a debug build).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The most one run may take, from its exec to its answer.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=900))]
    timeout_secs: u64,
    /// Only these functions (comma-separated); the baseline always runs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Keep the work directory (store and logs) even when every run succeeded.
    #[arg(long)]
    keep: bool,
}

/// Whether an answer is a success; the event is given for the echo's check.
type Check = fn(event: &Value, answer: &Value) -> Result<(), String>;

struct Target {
    name: &'static str,
    /// The sample its event comes from.
    sample: &'static str,
    event: Value,
    /// What its first invocation does, for the report.
    does: &'static str,
    env: Vec<(String, String)>,
    check: Check,
}

fn sample(name: &str) -> Value {
    let raw = match name {
        "apigw-http-list-clusters.json" => include_str!("../../../events/apigw-http-list-clusters.json"),
        "lifecycle-launch.json" => include_str!("../../../events/lifecycle-launch.json"),
        "schedule-failover.json" => include_str!("../../../events/schedule-failover.json"),
        "schedule-health-sweep.json" => include_str!("../../../events/schedule-health-sweep.json"),
        "schedule-log-rotation.json" => include_str!("../../../events/schedule-log-rotation.json"),
        "schedule-reconcile.json" => include_str!("../../../events/schedule-reconcile.json"),
        "schedule-runbooks.json" => include_str!("../../../events/schedule-runbooks.json"),
        other => unreachable!("no sample {other} is embedded"),
    };
    serde_json::from_str(raw).expect("the samples in events/ are JSON")
}

fn echoed(event: &Value, answer: &Value) -> Result<(), String> {
    if answer == event {
        Ok(())
    } else {
        Err(format!("the echo differs from the event: {answer}"))
    }
}

fn http_200(_: &Value, answer: &Value) -> Result<(), String> {
    match answer.get("statusCode").and_then(Value::as_u64) {
        Some(200) => Ok(()),
        _ => Err(format!("the API did not answer 200: {answer}")),
    }
}

/// A handler's answer that did the work: not a refusal of the event, not a
/// standby region's answer, no errors reported.
fn done(_: &Value, answer: &Value) -> Result<(), String> {
    let refused = ["rejected", "standingBy"].iter().any(|k| answer.get(k).is_some());
    let errors = answer
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if refused || errors || !answer.is_object() {
        return Err(format!("not a successful run: {answer}"));
    }
    Ok(())
}

/// What the emulator and the store hold for the functions.
struct World {
    db_url: String,
    endpoint: String,
    account: String,
    staging: String,
    token: String,
}

async fn prepare(work: &Path, endpoint: &str) -> Result<World> {
    let account = emulator::fresh_account();
    let db_url = format!("sqlite://{}", work.join("dm.sqlite").display());
    let store = Store::connect(&db_url)
        .await
        .context("creating and migrating the SQLite store")?;
    // A throwaway store: the token is no secret.
    let token = format!("coldstart-viewer-{account}");
    store
        .add_token(&token, "coldstart", Role::Viewer)
        .await
        .context("registering the API token")?;
    let aws = AwsSettings {
        endpoint: Some(endpoint.to_owned()),
        credentials: Some((account.clone(), "test".into())),
        max_attempts: None,
    };
    let staging = format!("s3://dm-coldstart-{account}/staging");
    let bucket = S3Location::parse(&staging).map_err(anyhow::Error::msg)?.bucket;
    S3Adapter::new(aws.clone(), REGION)
        .ensure_bucket(&bucket)
        .await
        .context("making the staging bucket in the emulator")?;
    DynamoFence::new(aws, REGION, FENCE_TABLE)
        .ensure_table(&[], None)
        .await
        .context("making the fence table in the emulator")?;
    Ok(World {
        db_url,
        endpoint: endpoint.to_owned(),
        account,
        staging,
        token,
    })
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn targets(world: &World) -> Vec<Target> {
    // What every DM function may read; each reads its part.
    let common = vars(&[
        ("OKERA_DB_URL", &world.db_url),
        ("OKERA_S3_STAGING_DIR", &world.staging),
        ("OKERA_NODE_AMI", "ami-0123456789abcdef0"),
        ("OKERA_RECONCILER_FUNCTION", "okera-dm-reconciler"),
        ("OKERA_LOG_ROTATION_FUNCTION", "okera-dm-log-rotation"),
        ("OKERA_RUNBOOKS_FUNCTION", "okera-dm-runbooks"),
        ("AWS_ENDPOINT_URL", &world.endpoint),
        ("AWS_ACCESS_KEY_ID", &world.account),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        // Credentials and region come from the environment, as in Lambda;
        // this only makes sure nothing asks a metadata service off loopback.
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let mut fenced = common.clone();
    fenced.extend(vars(&[
        ("OKERA_FENCE_TABLE", FENCE_TABLE),
        ("OKERA_REGION", REGION),
        ("OKERA_DM_REGIONS", &format!("{REGION},{PEER_REGION}")),
        ("OKERA_GLOBAL_DATABASE", "okera-dm"),
        ("OKERA_DB_CLUSTER", &format!("okera-dm-{REGION}")),
    ]));
    let target = |name, sample_name, does, env: &Vec<(String, String)>, check| Target {
        name,
        sample: sample_name,
        event: sample(sample_name),
        does,
        env: env.clone(),
        check,
    };
    let mut targets = vec![
        target(
            BASELINE,
            "schedule-health-sweep.json",
            "echoes the event",
            &Vec::new(),
            echoed as Check,
        ),
        target(
            "api",
            "apigw-http-list-clusters.json",
            "`GET /v1/clusters?environmentId=1` with a viewer token: authenticates the token, \
             lists the environment's clusters (none), answers 200",
            &common,
            http_200,
        ),
        target(
            "reconciler",
            "schedule-reconcile.json",
            "a scheduled run: asks the gate, reconciles every environment and cluster (none)",
            &common,
            done,
        ),
        target(
            "lifecycle",
            "lifecycle-launch.json",
            "a launch hook of `okera-1-analytics`, a group the DM does not own: one store read, \
             answers not-ours",
            &common,
            done,
        ),
        target(
            "health-sweep",
            "schedule-health-sweep.json",
            "a scheduled sweep: takes the sweep lease, finds no cluster, emits its metric lines",
            &common,
            done,
        ),
        target(
            "log-rotation",
            "schedule-log-rotation.json",
            "a scheduled run: takes its lease, reads the staging bucket's lifecycle rules (S3; \
             they were put in the warm-up), lists log parts and unfinished uploads (none), finds \
             no history rows to archive",
            &common,
            done,
        ),
        target(
            "runbooks",
            "schedule-runbooks.json",
            "a scheduled run: asks the gate, finds no runbook due",
            &common,
            done,
        ),
        target(
            "failover",
            "schedule-failover.json",
            "a scheduled tick of the active region: reads the fence and the failover requests \
             (DynamoDB), publishes its serving metric (CloudWatch) and heartbeat (store), checks the \
             serving alarms, finds nothing to drive",
            &fenced,
            done,
        ),
    ];
    // The sample's placeholder token, replaced by the one registered in the store.
    for api in targets.iter_mut().filter(|t| t.name == "api") {
        api.event["headers"]["authorization"] = Value::String(format!("Bearer {}", world.token));
    }
    targets
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// The outcome of all rounds: per binary, and whether anything failed.
struct Results {
    measured: Vec<Measured>,
    /// Per binary, the AWS requests of its last successful run, by action.
    last_requests: Vec<BTreeMap<String, u64>>,
    warmup_failures: usize,
}

/// The requests `after` has beyond `before`, by action.
fn requests_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

async fn run_rounds(
    args: &Args,
    targets: &[Target],
    logs: &Path,
    emulator: &Emulator,
    account: &str,
) -> Result<Results> {
    let mut measured: Vec<Measured> = targets
        .iter()
        .map(|t| Measured {
            name: t.name.to_owned(),
            size: std::fs::metadata(args.bin_dir.join(t.name)).map_or(0, |m| m.len()),
            ..Default::default()
        })
        .collect();
    let mut last_requests = vec![BTreeMap::new(); targets.len()];
    let mut warmup_failures = 0;
    let rounds = args.warmup + args.runs;
    for round in 0..rounds {
        let counted = round >= args.warmup;
        let label = if counted {
            format!("round {}/{}", round - args.warmup + 1, args.runs)
        } else {
            format!("warm-up {}/{}", round + 1, args.warmup)
        };
        for (i, target) in targets.iter().enumerate() {
            let m = &mut measured[i];
            let log = logs.join(format!("{}-{round}.log", target.name));
            let launch = Launch {
                program: args.bin_dir.join(target.name),
                function_name: target.name.to_owned(),
                env: target.env.clone(),
                // A new execution environment for every cold start.
                log_stream: format!("2026/01/01/[$LATEST]coldstart{round:04}{}", target.name),
                event: serde_json::to_vec(&target.event).expect("JSON"),
                timeout: Duration::from_secs(args.timeout_secs),
                log: Some(log.clone()),
            };
            // Counted outside the timed window; one run at a time, so the
            // difference is this run's.
            let before = emulator.requests(account)?;
            let outcome = cold_start(&launch)
                .await
                .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
                .and_then(|run| {
                    let answer: Value = serde_json::from_str(&run.response)
                        .map_err(|e| format!("the answer is not JSON ({e}): {}", run.response))?;
                    (target.check)(&target.event, &answer)?;
                    Ok(run)
                });
            let requests = requests_between(&before, &emulator.requests(account)?);
            match outcome {
                Ok(run) => {
                    eprintln!(
                        "[{label}] {}: init {:.1} ms, first invocation {:.1} ms, peak RSS {:.1} MiB",
                        target.name,
                        run.init.as_secs_f64() * 1000.0,
                        run.invocation.as_secs_f64() * 1000.0,
                        run.peak_rss as f64 / (1024.0 * 1024.0),
                    );
                    if round == 0 {
                        eprintln!("    answered: {}", shorten(&run.response, 400));
                    }
                    if counted {
                        m.runs.push(run);
                        m.aws_requests.push(requests.values().sum());
                    }
                    last_requests[i] = requests;
                }
                Err(reason) => {
                    eprintln!("[{label}] {}: FAILED: {reason}", target.name);
                    eprintln!("    last lines of {}:\n{}", log.display(), tail(&log, 15));
                    if counted {
                        m.failures += 1;
                    } else {
                        warmup_failures += 1;
                    }
                }
            }
        }
    }
    Ok(Results {
        measured,
        last_requests,
        warmup_failures,
    })
}

fn report(args: &Args, targets: &[Target], results: &Results, load_before: &str) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# Cold start of the DM's functions\n");
    println!(
        "- binaries: `{}`; {} measured round(s) after {} warm-up round(s), round-robin, one process at a time",
        args.bin_dir.display(),
        args.runs,
        args.warmup
    );
    println!(
        "- machine: {cores} cores, {} ({}), Linux {}",
        std::env::consts::ARCH,
        cpu_model(),
        read_trimmed("/proc/sys/kernel/osrelease")
    );
    println!(
        "- load average before: {load_before}; after: {}",
        read_trimmed("/proc/loadavg")
    );
    println!("- cells: median (min–max) over the successful runs; ratios are of medians\n");
    println!("{}", report::table(&results.measured, BASELINE));
    println!("What each first invocation did:\n");
    for (t, requests) in targets.iter().zip(&results.last_requests) {
        let aws = if requests.is_empty() {
            "No AWS request".to_owned()
        } else {
            let calls: Vec<String> = requests.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("AWS requests (the last run's): {}", calls.join(", "))
        };
        println!("- `{}` (`events/{}`): {}. {aws}.", t.name, t.sample, t.does);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("coldstart: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when a run failed.
fn run(args: Args) -> Result<bool> {
    let known = [
        "api",
        "reconciler",
        "lifecycle",
        "health-sweep",
        "log-rotation",
        "runbooks",
        "failover",
    ];
    if let Some(unknown) = args.only.iter().find(|n| !known.contains(&n.as_str())) {
        bail!("--only: {unknown} is not one of {}", known.join(", "));
    }
    let wanted = |name: &str| name == BASELINE || args.only.is_empty() || args.only.iter().any(|o| o == name);
    let missing: Vec<String> = std::iter::once(BASELINE)
        .chain(known)
        .filter(|n| wanted(n) && !args.bin_dir.join(n).is_file())
        .map(str::to_owned)
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} not found in {}; build them first, e.g. `cargo build --release -p api -p reconciler \
             -p lifecycle -p health-sweep -p log-rotation -p runbooks -p failover -p coldstart`",
            missing.join(", "),
            args.bin_dir.display()
        );
    }

    let work = std::env::temp_dir().join(format!("dm-coldstart-{}", std::process::id()));
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    eprintln!("work directory (store and logs): {}", work.display());
    let load_before = read_trimmed("/proc/loadavg");
    let emulator = emulator::start_own("coldstart").context("starting the AWS emulator")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let (targets, results) = runtime.block_on(async {
        let world = prepare(&work, emulator.endpoint()).await?;
        let targets: Vec<Target> = targets(&world).into_iter().filter(|t| wanted(t.name)).collect();
        let results = run_rounds(&args, &targets, &logs, &emulator, &world.account).await?;
        anyhow::Ok((targets, results))
    })?;
    drop(emulator);

    report(&args, &targets, &results, &load_before);
    let failures: usize =
        results.measured.iter().map(|m| m.failures).sum::<usize>() + results.warmup_failures;
    if failures > 0 {
        eprintln!(
            "coldstart: {failures} run(s) failed (see above); the logs are in {}",
            logs.display()
        );
        return Ok(false);
    }
    if args.keep {
        eprintln!("kept {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(true)
}
