//! `ocadm`, the command-line client of the Deployment Manager (DM): it creates,
//! lists, shows, scales and deletes environments and ODAS clusters through the
//! DM's REST API (`docs/api.md`), and follows the operations that writes start.
//! This file holds the command line (clap) and the dispatch to the API; `client`
//! speaks HTTP, `render` formats the human views, `wait` follows operations.
//!
//! Exit codes: 0 on success, 1 on an error or a `FAILED` operation, 2 when
//! `--wait` gives up after `--timeout` (clap also uses 2 for a bad command line).

mod auth;
mod client;
mod ordered;
mod regions;
mod render;
mod wait;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::process::exit;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

use client::{ApiError, Client};
use ordered::OrderedJson;
use wait::Outcome;

#[derive(Parser)]
#[command(
    name = "ocadm",
    version,
    about = "Manage ODAS environments and clusters through the Deployment Manager"
)]
struct Cli {
    /// Base URL of the DM REST API, such as http://127.0.0.1:8080 or
    /// https://ID.execute-api.REGION.amazonaws.com
    #[arg(
        long,
        env = "OCADM_ENDPOINT",
        global = true,
        value_name = "URL",
        display_order = 100
    )]
    endpoint: Option<String>,
    /// Bearer token of a viewer (reads), an operator (writes) or an admin
    /// (also failovers, drills, the default version); with SigV4 (an
    /// *.amazonaws.com endpoint, or OCADM_AUTH=sigv4) AWS credentials sign
    /// requests instead
    #[arg(
        long,
        env = "OCADM_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN",
        display_order = 101
    )]
    token: Option<String>,
    /// Print the JSON the server returned instead of the human view
    #[arg(long, global = true, display_order = 102)]
    json: bool,
    /// Talk to the API of this DM region: OCADM_ENDPOINT_<REGION> (such as
    /// OCADM_ENDPOINT_US_WEST_2, which dm-local up --regions exports) instead
    /// of OCADM_ENDPOINT; `failover --to R` does this by itself
    #[arg(long = "at", global = true, value_name = "REGION", display_order = 103)]
    at: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that the DM answers
    Status,
    /// Environments: an AWS region and VPC that clusters run in
    #[command(subcommand)]
    Environments(EnvironmentCommand),
    /// ODAS clusters
    #[command(subcommand)]
    Clusters(ClusterCommand),
    /// The asynchronous operations that writes start
    #[command(subcommand)]
    Operations(OperationCommand),
    /// The DM's regions: which one is active, their heartbeats, the leadership history
    Regions,
    /// Fail the DM over to another region (or back): `--to REGION`, sent to that
    /// region's API; `list` and `status ID` show failovers
    Failover(regions::FailoverArgs),
    /// Recovery drills: stand up copies of the clusters in another region, check
    /// them, tear them down, and report the RTO and anything leaked
    Drill(regions::DrillArgs),
}

#[derive(Subcommand)]
enum EnvironmentCommand {
    /// Register an environment
    Create(EnvironmentCreate),
    /// List the environments
    List,
    /// Show one environment
    Get {
        /// Environment id
        id: u64,
    },
    /// Delete an environment that has no clusters left
    Delete {
        /// Environment id
        id: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Create a cluster in an environment
    Create(ClusterCreate),
    /// List the clusters
    List {
        /// Only the clusters of this environment
        #[arg(long = "environmentid", value_name = "ID")]
        environment_id: Option<u64>,
    },
    /// Show one cluster with its resources and nodes
    Get {
        /// Cluster id
        id: u64,
    },
    /// Show the health of a cluster: its code, its services and its nodes
    Status {
        /// Cluster id
        id: u64,
        /// Print the whole status document as JSON: every service of every
        /// node and the latest status changes
        #[arg(long)]
        detail: bool,
    },
    /// Change the node count, the termination protection or the auto-repair of a cluster
    Update(ClusterUpdate),
    /// Delete a cluster (refused while it is termination protected)
    Delete {
        /// Cluster id
        id: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Build a diagnostics bundle (a tar.gz of the cluster's logs of the last days,
    /// with its state, status history, operations and audit entries) in S3, and
    /// print its s3:// URI
    Diag(ClusterDiag),
    /// Upgrade a cluster by replacement: build a new cluster at the new version,
    /// move the endpoint to it once it is READY, and retire the old one after the
    /// rollback window
    Upgrade(ClusterUpgrade),
    /// Roll back an upgrade that is inside its rollback window: move the endpoint
    /// back to the original cluster and retire the replacement
    Rollback {
        /// Cluster id (the original or its replacement)
        id: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Restart the services of a cluster, one node at a time
    Restart {
        /// Cluster id
        id: u64,
        /// Only this service (default: every service)
        #[arg(long, value_name = "SERVICE")]
        service: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Set the version that new clusters get when they name none
    #[command(name = "set_default_version")]
    SetDefaultVersion {
        /// ODAS version, such as 2.1.0
        #[arg(long)]
        version: String,
    },
    /// Show the version that new clusters get when they name none
    #[command(name = "get_default_version")]
    GetDefaultVersion,
}

#[derive(Args)]
struct ClusterUpgrade {
    /// Cluster id
    id: u64,
    /// The ODAS version to upgrade to
    #[arg(long)]
    version: String,
    /// Per-service versions that differ from --version, such as planner:2.1.1,worker:2.1.1
    #[arg(long, value_name = "SERVICE:VERSION,...", value_parser = parse_components)]
    components: Option<BTreeMap<String, String>>,
    /// Upgrade even when the cluster is not READY, or already runs this version
    #[arg(long)]
    force: bool,
    /// How long the replacement may take to become READY, in seconds (server default: 1800)
    #[arg(long = "ready-timeout", value_name = "SECONDS", allow_negative_numbers = true)]
    ready_timeout: Option<i64>,
    /// How long the original cluster is kept for a rollback after the switch, in
    /// seconds; 0 retires it at once (server default: 3600). With --wait, the wait
    /// lasts until the window has closed
    #[arg(
        long = "rollback-window",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    rollback_window: Option<i64>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args)]
struct ClusterDiag {
    /// Cluster id
    id: u64,
    /// Days of logs to include, from 1 to 30 (server default: 1)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    days: Option<i64>,
    /// Write the bundle under this s3://bucket/prefix instead of the DM's
    /// staging location
    #[arg(long = "s3-upload-path", value_name = "S3_URI")]
    s3_upload_path: Option<String>,
    /// Do not wait for the bundle: print the operation that builds it and return
    #[arg(long = "no-wait")]
    no_wait: bool,
    /// Give up waiting for the bundle after this many seconds (exit 2)
    #[arg(long, value_name = "SECS", default_value_t = 1800, conflicts_with = "no_wait")]
    timeout: u64,
}

#[derive(Subcommand)]
enum OperationCommand {
    /// Show an operation and its steps
    Get {
        /// Operation id, as printed by a write
        id: u64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List operations, newest first
    List {
        /// Only the operations of this cluster (with its upgrade's replacement)
        #[arg(long, value_name = "ID")]
        cluster: Option<u64>,
        /// Only those in this state: PENDING, RUNNING, SUCCEEDED, FAILED or CANCELLED
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// At most this many, from 1 to 200 (server default: 20)
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        limit: Option<i64>,
    },
    /// Stop a running upgrade, rollback or restart at its next step (what it
    /// already changed is undone where it must be)
    Cancel {
        /// Operation id
        id: u64,
    },
}

#[derive(Args)]
struct WaitArgs {
    /// Follow the operation until it succeeds (exit 0) or fails (exit 1)
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (exit 2)
    #[arg(long, value_name = "SECS", default_value_t = 1800, requires = "wait")]
    timeout: u64,
}

#[derive(Args)]
struct EnvironmentCreate {
    /// 1 to 63 characters of [a-z0-9-], unique
    #[arg(long)]
    name: String,
    /// AWS region, such as us-west-2
    #[arg(long)]
    region: String,
    /// VPC (default: the region's default VPC)
    #[arg(long, value_name = "VPC_ID")]
    vpc: Option<String>,
    /// Comma-separated subnets (default: the VPC's subnets)
    #[arg(long, value_name = "SUBNET_ID,...", value_delimiter = ',')]
    subnets: Vec<String>,
    /// IPv4 CIDR allowed to reach the services (default: the VPC's CIDR)
    #[arg(long = "vpc-cidr", value_name = "CIDR")]
    vpc_cidr: Option<String>,
    /// IPv4 CIDR allowed to SSH; required with --create-security-group
    #[arg(long = "admin-cidr", value_name = "CIDR")]
    admin_cidr: Option<String>,
    /// Create the OkeraOdasServices security group
    #[arg(long = "create-security-group")]
    create_security_group: bool,
    /// Pair the new environment with this one (in another region): its
    /// clusters fail over to the new one
    #[arg(long = "failover-for", value_name = "ENV_ID")]
    failover_for: Option<u64>,
    /// With --failover-for: nodes each standby partner keeps running (default 0:
    /// cold standby, made at failover time)
    #[arg(long = "warm-standby-nodes", value_name = "N", requires = "failover_for")]
    warm_standby_nodes: Option<u32>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args)]
struct ClusterCreate {
    /// 1 to 63 characters of [a-z0-9-], unique in its environment
    #[arg(long)]
    name: String,
    /// Number of nodes
    #[arg(long = "numNodes", value_name = "N")]
    num_nodes: u32,
    /// STANDALONE_CLUSTER, STANDALONE_JDBC_CLUSTER, CATALOG_CLUSTER or DATA_ACCESS_CLUSTER
    #[arg(long = "type", value_name = "TYPE")]
    cluster_type: String,
    /// The environment to create the cluster in; it must be READY
    #[arg(long = "environmentid", value_name = "ID")]
    environment_id: u64,
    /// EC2 instance type (server default: t2.large)
    #[arg(long = "instanceType", value_name = "TYPE")]
    instance_type: Option<String>,
    /// Storage per node in GiB (server default: 40)
    #[arg(long = "storageGb", value_name = "N")]
    storage_gb: Option<u32>,
    /// A tag for every resource of the cluster; repeat for more
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// Free text, up to 256 characters
    #[arg(long)]
    description: Option<String>,
    /// Refuse to delete the cluster while true (server default: false)
    #[arg(long = "terminationProtectionEnabled", value_name = "BOOL", action = ArgAction::Set)]
    termination_protection_enabled: Option<bool>,
    /// Let the health sweep replace broken nodes (server default: true)
    #[arg(long = "autoRepairEnabled", value_name = "BOOL", action = ArgAction::Set)]
    auto_repair_enabled: Option<bool>,
    /// ODAS version (server default: the DM's default version)
    #[arg(long)]
    version: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args([
            "num_nodes",
            "termination_protection_enabled",
            "auto_repair_enabled",
            "protection_allows_upgrade"
        ])
))]
struct ClusterUpdate {
    /// Cluster id
    id: u64,
    /// The new number of nodes
    #[arg(long = "numNodes", value_name = "N")]
    num_nodes: Option<u32>,
    /// Turn the termination protection on or off
    #[arg(long = "terminationProtectionEnabled", value_name = "BOOL", action = ArgAction::Set)]
    termination_protection_enabled: Option<bool>,
    /// Let the health sweep replace broken nodes, or not
    #[arg(long = "autoRepairEnabled", value_name = "BOOL", action = ArgAction::Set)]
    auto_repair_enabled: Option<bool>,
    /// Let upgrades through the termination protection (an upgrade retires the
    /// cluster's nodes), or not
    #[arg(long = "protectionAllowsUpgrade", value_name = "BOOL", action = ArgAction::Set)]
    protection_allows_upgrade: Option<bool>,
    #[command(flatten)]
    wait: WaitArgs,
}

/// `--components planner:2.1.1,worker:2.1.1`. The server checks the services and
/// versions, and names the one at fault.
fn parse_components(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once(':') {
            Some((service, version)) if !service.is_empty() && !version.is_empty() => {
                if out.insert(service.to_owned(), version.to_owned()).is_some() {
                    return Err(format!("{service} is named twice"));
                }
            }
            _ => return Err(format!("{item:?} is not SERVICE:VERSION, such as planner:2.1.1")),
        }
    }
    Ok(out)
}

fn upgrade_body(a: &ClusterUpgrade) -> Value {
    let mut body = Map::new();
    body.insert("version".into(), json!(a.version));
    if let Some(c) = a.components.as_ref().filter(|c| !c.is_empty()) {
        body.insert("components".into(), json!(c));
    }
    if a.force {
        body.insert("force".into(), json!(true));
    }
    if let Some(s) = a.ready_timeout {
        body.insert("readyTimeoutSeconds".into(), json!(s));
    }
    if let Some(s) = a.rollback_window {
        body.insert("rollbackWindowSeconds".into(), json!(s));
    }
    Value::Object(body)
}

fn restart_body(service: Option<&str>) -> Value {
    match service {
        Some(s) => json!({ "service": s }),
        None => json!({}),
    }
}

/// `GET /v1/operations` with the filters given.
fn operations_path(cluster: Option<u64>, state: Option<&str>, limit: Option<i64>) -> String {
    let mut query = Vec::new();
    if let Some(c) = cluster {
        query.push(format!("clusterId={c}"));
    }
    if let Some(s) = state {
        query.push(format!("state={}", encode_query(s)));
    }
    if let Some(l) = limit {
        query.push(format!("limit={l}"));
    }
    if query.is_empty() {
        "/v1/operations".to_owned()
    } else {
        format!("/v1/operations?{}", query.join("&"))
    }
}

/// Percent-encodes a query value (the server names a bad one; it must arrive as typed).
fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `--tag team=data`; the value may be empty and may contain `=`, the key may not.
fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("tag {s:?} is not KEY=VALUE")),
    }
}

fn environment_spec(a: &EnvironmentCreate) -> Value {
    let mut spec = Map::new();
    spec.insert("name".into(), json!(a.name));
    spec.insert("region".into(), json!(a.region));
    if let Some(vpc) = &a.vpc {
        spec.insert("vpcId".into(), json!(vpc));
    }
    if !a.subnets.is_empty() {
        spec.insert("subnetIds".into(), json!(a.subnets));
    }
    if let Some(cidr) = &a.vpc_cidr {
        spec.insert("vpcCidr".into(), json!(cidr));
    }
    if let Some(cidr) = &a.admin_cidr {
        spec.insert("adminCidr".into(), json!(cidr));
    }
    if a.create_security_group {
        spec.insert("createSecurityGroup".into(), json!(true));
    }
    if let Some(id) = a.failover_for {
        spec.insert("failoverFor".into(), json!(id));
    }
    if let Some(n) = a.warm_standby_nodes {
        spec.insert("warmStandbyNodes".into(), json!(n));
    }
    Value::Object(spec)
}

fn cluster_spec(a: &ClusterCreate) -> Result<Value> {
    let mut spec = Map::new();
    spec.insert("name".into(), json!(a.name));
    spec.insert("numNodes".into(), json!(a.num_nodes));
    spec.insert("type".into(), json!(a.cluster_type));
    spec.insert("environmentId".into(), json!(a.environment_id));
    if let Some(t) = &a.instance_type {
        spec.insert("instanceType".into(), json!(t));
    }
    if let Some(gb) = a.storage_gb {
        spec.insert("storageGb".into(), json!(gb));
    }
    if !a.tags.is_empty() {
        let mut tags = BTreeMap::new();
        for (k, v) in &a.tags {
            if tags.insert(k, v).is_some() {
                bail!("the tag {k:?} is given more than once");
            }
        }
        spec.insert("tags".into(), json!(tags));
    }
    if let Some(d) = &a.description {
        spec.insert("description".into(), json!(d));
    }
    if let Some(p) = a.termination_protection_enabled {
        spec.insert("terminationProtectionEnabled".into(), json!(p));
    }
    if let Some(r) = a.auto_repair_enabled {
        spec.insert("autoRepairEnabled".into(), json!(r));
    }
    if let Some(v) = &a.version {
        spec.insert("version".into(), json!(v));
    }
    Ok(Value::Object(spec))
}

fn diag_body(a: &ClusterDiag) -> Value {
    let mut body = Map::new();
    if let Some(days) = a.days {
        body.insert("days".into(), json!(days));
    }
    if let Some(path) = &a.s3_upload_path {
        body.insert("s3UploadPath".into(), json!(path));
    }
    Value::Object(body)
}

fn cluster_patch(a: &ClusterUpdate) -> Value {
    let mut patch = Map::new();
    if let Some(n) = a.num_nodes {
        patch.insert("numNodes".into(), json!(n));
    }
    if let Some(p) = a.termination_protection_enabled {
        patch.insert("terminationProtectionEnabled".into(), json!(p));
    }
    if let Some(r) = a.auto_repair_enabled {
        patch.insert("autoRepairEnabled".into(), json!(r));
    }
    if let Some(u) = a.protection_allows_upgrade {
        patch.insert("protectionAllowsUpgrade".into(), json!(u));
    }
    Value::Object(patch)
}

const NO_ENDPOINT: &str = "no DM endpoint: run `dm-local up` and `source .dm-local/env`, or set OCADM_ENDPOINT (or pass --endpoint)";

/// Writes to stdout; unlike `print!` it returns a closed pipe (`ocadm ... | head`)
/// as an error instead of panicking.
fn say(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    Ok(stdout.flush()?)
}

/// What the command prints: the server's JSON, or the human view.
struct Out {
    json: bool,
}

impl Out {
    fn print(&self, v: &Value, human: impl FnOnce(&Value) -> String) -> Result<()> {
        if self.json {
            say(&format!("{}\n", serde_json::to_string_pretty(v)?))
        } else {
            say(&human(v))
        }
    }
}

/// `OCADM_ENDPOINT_US_WEST_2` for `us-west-2`.
fn region_endpoint_var(region: &str) -> String {
    format!("OCADM_ENDPOINT_{}", region.to_uppercase().replace('-', "_"))
}

/// The API to talk to: `--at R`'s (or, for `failover --to R`, R's)
/// `OCADM_ENDPOINT_<R>` when set, else `--endpoint` / `OCADM_ENDPOINT`.
fn endpoint_of(cli: &Cli) -> Result<String> {
    let region = cli.at.as_deref().or(match &cli.command {
        Command::Failover(a) => regions::target_region(a),
        _ => None,
    });
    if let Some(r) = region {
        if let Ok(e) = std::env::var(region_endpoint_var(r)) {
            if !e.trim().is_empty() {
                return Ok(e);
            }
        }
        if cli.at.is_some() {
            bail!(
                "{} is not set: it names the API of {r} (dm-local up --regions exports it)",
                region_endpoint_var(r)
            );
        }
    }
    cli.endpoint
        .clone()
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| anyhow!(NO_ENDPOINT))
}

/// How the requests of this command line are authenticated, for the hints of
/// error messages; `None` when `run` will fail before it sends any.
fn auth_hint(cli: &Cli) -> Option<render::AuthHint> {
    let endpoint = endpoint_of(cli).ok()?;
    Some(
        match auth::Mode::choose(&endpoint, &auth::AuthEnv::read()).ok()? {
            auth::Mode::SigV4 { .. } => render::AuthHint::SigV4,
            auth::Mode::Bearer if cli.token.as_deref().is_some_and(|t| !t.is_empty()) => {
                render::AuthHint::Token
            }
            auth::Mode::Bearer => render::AuthHint::NoToken,
        },
    )
}

fn run(cli: Cli) -> Result<i32> {
    let endpoint = endpoint_of(&cli)?;
    let auth = auth::Auth::choose(&endpoint, cli.token.clone(), &auth::AuthEnv::read())?;
    let client = Client::new(&endpoint, auth)?;
    let out = Out { json: cli.json };
    match cli.command {
        Command::Status => {
            let v = client.get("/v1/status")?;
            out.print(&v, |v| {
                format!("{}\n{}", render::status_line(v), render::role_line(v))
            })?;
            Ok(0)
        }
        Command::Environments(c) => environments(&client, &out, c),
        Command::Clusters(c) => clusters(&client, &out, c),
        Command::Operations(c) => operations(&client, &out, c),
        Command::Regions => regions::regions(&client, &out),
        Command::Failover(a) => regions::failover(&client, &out, a),
        Command::Drill(a) => regions::drill(&client, &out, a),
    }
}

fn operations(client: &Client, out: &Out, command: OperationCommand) -> Result<i32> {
    match command {
        OperationCommand::Get { id, wait } => {
            if wait.wait {
                follow(client, out, id, &wait, true)
            } else {
                let v = client.get(&format!("/v1/operations/{id}"))?;
                out.print(&v, render::operation)?;
                Ok(0)
            }
        }
        OperationCommand::List {
            cluster,
            state,
            limit,
        } => {
            let v = client.get(&operations_path(cluster, state.as_deref(), limit))?;
            out.print(&v, |v| render::operation_list(list(v, "operations")))?;
            Ok(0)
        }
        OperationCommand::Cancel { id } => {
            let reply = client.post(&format!("/v1/operations/{id}/cancel"), &json!({}))?;
            out.print(&reply, |_| {
                format!(
                    "Cancel of operation {id} requested; it stops at its next step.\n{}\n",
                    render::follow_hint(id)
                )
            })?;
            Ok(0)
        }
    }
}

fn environments(client: &Client, out: &Out, command: EnvironmentCommand) -> Result<i32> {
    match command {
        EnvironmentCommand::Create(a) => {
            let reply = client.post("/v1/environments", &environment_spec(&a))?;
            let subject = format!("Environment {}", render::text(&reply["environment"]["id"]));
            accepted(client, out, &subject, &reply, &a.wait)
        }
        EnvironmentCommand::List => {
            let v = client.get("/v1/environments")?;
            out.print(&v, |v| {
                render::table_of(list(v, "environments"), render::ENVIRONMENT_COLUMNS)
            })?;
            Ok(0)
        }
        EnvironmentCommand::Get { id } => {
            let v = client.get(&format!("/v1/environments/{id}"))?;
            out.print(&v, render::environment)?;
            Ok(0)
        }
        EnvironmentCommand::Delete { id, wait } => {
            let reply = client.delete(&format!("/v1/environments/{id}"))?;
            accepted(
                client,
                out,
                &format!("Deletion of environment {id}"),
                &reply,
                &wait,
            )
        }
    }
}

fn clusters(client: &Client, out: &Out, command: ClusterCommand) -> Result<i32> {
    match command {
        ClusterCommand::Create(a) => {
            let reply = client.post("/v1/clusters", &cluster_spec(&a)?)?;
            let subject = format!("Cluster {}", render::text(&reply["cluster"]["id"]));
            accepted(client, out, &subject, &reply, &a.wait)
        }
        ClusterCommand::List { environment_id } => {
            let path = match environment_id {
                Some(env) => format!("/v1/clusters?environmentId={env}"),
                None => "/v1/clusters".to_owned(),
            };
            let v = client.get(&path)?;
            out.print(&v, |v| {
                render::table_of(list(v, "clusters"), render::CLUSTER_COLUMNS)
            })?;
            Ok(0)
        }
        ClusterCommand::Get { id } => {
            let v = client.get(&format!("/v1/clusters/{id}"))?;
            out.print(&v, render::cluster)?;
            Ok(0)
        }
        ClusterCommand::Status { id, detail } => {
            let status: OrderedJson = client.get_as(&format!("/v1/clusters/{id}/status"))?;
            if detail || out.json {
                // As the server wrote it: the key order is part of the document.
                say(&format!("{}\n", serde_json::to_string_pretty(&status)?))?;
            } else {
                let cluster = client.get(&format!("/v1/clusters/{id}"))?;
                say(&render::cluster_status(&cluster, &status.to_value()))?;
            }
            Ok(0)
        }
        ClusterCommand::Update(a) => {
            let reply = client.patch(&format!("/v1/clusters/{}", a.id), &cluster_patch(&a))?;
            accepted(
                client,
                out,
                &format!("Update of cluster {}", a.id),
                &reply,
                &a.wait,
            )
        }
        ClusterCommand::Delete { id, wait } => {
            let reply = client.delete(&format!("/v1/clusters/{id}"))?;
            accepted(client, out, &format!("Deletion of cluster {id}"), &reply, &wait)
        }
        ClusterCommand::Diag(a) => diag(client, out, &a),
        ClusterCommand::Upgrade(a) => {
            let reply = client.post(&format!("/v1/clusters/{}/upgrade", a.id), &upgrade_body(&a))?;
            let subject = format!("Upgrade of cluster {} to {}", a.id, a.version);
            accepted(client, out, &subject, &reply, &a.wait)
        }
        ClusterCommand::Rollback { id, wait } => {
            let reply = client.post(&format!("/v1/clusters/{id}/rollback"), &json!({}))?;
            accepted(client, out, &format!("Rollback of cluster {id}"), &reply, &wait)
        }
        ClusterCommand::Restart { id, service, wait } => {
            let body = restart_body(service.as_deref());
            let reply = client.post(&format!("/v1/clusters/{id}/restart"), &body)?;
            let subject = match &service {
                Some(s) => format!("Restart of {s} on cluster {id}"),
                None => format!("Restart of cluster {id}"),
            };
            accepted(client, out, &subject, &reply, &wait)
        }
        ClusterCommand::SetDefaultVersion { version } => {
            let v = client.put("/v1/settings/default-version", &json!({ "version": version }))?;
            out.print(&v, |v| {
                format!("Default version: {}\n", render::text(&v["version"]))
            })?;
            Ok(0)
        }
        ClusterCommand::GetDefaultVersion => {
            let v = client.get("/v1/settings/default-version")?;
            out.print(&v, |v| {
                format!("Default version: {}\n", render::text(&v["version"]))
            })?;
            Ok(0)
        }
    }
}

/// `clusters diag`: asks for the bundle, then (unless `--no-wait`) follows the
/// operation that builds it and prints the bundle's URI, alone on stdout, so that
/// `uri=$(ocadm clusters diag 1)` works. Progress goes to stderr.
fn diag(client: &Client, out: &Out, a: &ClusterDiag) -> Result<i32> {
    let reply = client.post(&format!("/v1/clusters/{}/diagnostics", a.id), &diag_body(a))?;
    let op_id = reply["operationId"]
        .as_u64()
        .context("the server's answer has no operationId")?;
    let uri = render::text(&reply["diagnostics"]["uri"]);
    if a.no_wait {
        if out.json {
            say(&format!("{}\n", serde_json::to_string_pretty(&reply)?))?;
        } else {
            say(&format!(
                "Diagnostics of cluster {} accepted as operation {op_id}; the bundle goes to {uri}\n{}\n",
                a.id,
                render::follow_hint(op_id)
            ))?;
        }
        return Ok(0);
    }
    let days = render::text(&reply["diagnostics"]["days"]);
    eprintln!(
        "Building the diagnostics bundle of cluster {} ({days} day(s) of logs) as operation {op_id}.",
        a.id
    );
    let timeout = Duration::from_secs(a.timeout);
    let outcome = wait::wait(client, op_id, timeout, wait::poll_interval(), false)
        .with_context(|| format!("could not follow operation {op_id}"))?;
    match outcome {
        Outcome::Succeeded(op) => {
            if out.json {
                out.print(&op, render::operation)?;
            } else {
                let written = op["result"].as_str().unwrap_or(&uri);
                say(&format!("{written}\n"))?;
            }
            Ok(0)
        }
        Outcome::Failed(op) | Outcome::Cancelled(op) => {
            if out.json {
                out.print(&op, render::operation)?;
            }
            eprintln!(
                "error: operation {op_id} {}: {}",
                render::text(&op["state"]).to_lowercase(),
                render::failure_reason(&op)
            );
            Ok(1)
        }
        // Only upgrades stop at a window, and this is a diagnostics bundle.
        Outcome::TimedOut(op) | Outcome::InWindow(op) => {
            if out.json {
                out.print(&op, render::operation)?;
            }
            eprintln!(
                "error: gave up waiting for operation {op_id} after {} s; it is still {}, and its bundle will be at {uri}\n{}",
                a.timeout,
                render::text(&op["state"]),
                render::follow_hint(op_id)
            );
            Ok(2)
        }
    }
}

/// The items of a list answer such as `{"clusters": [...]}`.
fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// After a `202 Accepted`: say which operation was started, then follow it if
/// asked to. Without `--wait` the operation's state is read once, so the line
/// is true even when the server replayed an earlier request's operation.
fn accepted(client: &Client, out: &Out, subject: &str, reply: &Value, wait: &WaitArgs) -> Result<i32> {
    let op_id = reply["operationId"]
        .as_u64()
        .context("the server's answer has no operationId")?;
    if out.json {
        say(&format!("{}\n", serde_json::to_string_pretty(reply)?))?;
    } else if wait.wait {
        say(&format!("{subject} accepted; waiting for operation {op_id}.\n"))?;
    } else {
        let op = client.get(&format!("/v1/operations/{op_id}")).ok();
        let state = op.as_ref().and_then(|op| op["state"].as_str());
        say(&format!(
            "{}\n{}\n",
            render::accepted_line(subject, op_id, state),
            render::follow_hint(op_id)
        ))?;
    }
    if wait.wait {
        follow(client, out, op_id, wait, false)
    } else {
        Ok(0)
    }
}

/// `--wait`: follows operation `id` and prints its final state, the whole
/// operation when `full_view` (or with `--json`), else one line.
fn follow(client: &Client, out: &Out, id: u64, wait: &WaitArgs, full_view: bool) -> Result<i32> {
    let timeout = Duration::from_secs(wait.timeout);
    // A write's --wait stops once an upgrade's traffic moved; `operations get
    // --wait` follows it to the end.
    let outcome = wait::wait(client, id, timeout, wait::poll_interval(), !full_view)
        .with_context(|| format!("could not follow operation {id}"))?;
    let (Outcome::Succeeded(op)
    | Outcome::Failed(op)
    | Outcome::Cancelled(op)
    | Outcome::TimedOut(op)
    | Outcome::InWindow(op)) = &outcome;
    if out.json || full_view {
        out.print(op, render::operation)?;
    } else if let Outcome::InWindow(op) = &outcome {
        let rb = &op["runbook"];
        let original = render::text(&rb["params"]["originalId"]);
        let window = rb["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["name"] == "rollback-window"))
            .map(|s| render::text(&s["result"]))
            .unwrap_or_default();
        say(&format!(
            "Operation {id}: cluster {} serves the endpoint now; {window}.\n\
             Cluster {original} is retired when the window closes (ocadm operations get {id} --wait).\n",
            render::text(&rb["context"]["replacementId"]),
        ))?;
    } else {
        say(&format!("Operation {id} {}.\n", render::text(&op["state"])))?;
    }
    Ok(match outcome {
        Outcome::Succeeded(_) | Outcome::InWindow(_) => 0,
        Outcome::Failed(op) => {
            eprintln!("error: operation {id} failed: {}", render::failure_reason(&op));
            1
        }
        Outcome::Cancelled(op) => {
            eprintln!(
                "error: operation {id} was cancelled: {}",
                render::failure_reason(&op)
            );
            1
        }
        Outcome::TimedOut(op) => {
            eprintln!(
                "error: gave up waiting for operation {id} after {} s; it is still {}\n{}",
                wait.timeout,
                render::text(&op["state"]),
                render::follow_hint(id)
            );
            2
        }
    })
}

fn main() {
    let cli = Cli::parse();
    let hint = auth_hint(&cli).unwrap_or(render::AuthHint::Token);
    match run(cli) {
        Ok(code) => exit(code),
        Err(e) => {
            let closed_pipe = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe);
            if closed_pipe {
                // The reader of stdout has gone (`| head`): nobody to tell.
                exit(0)
            }
            match e.downcast_ref::<ApiError>() {
                Some(api) => eprintln!("{}", render::api_error(api, hint)),
                None => eprintln!("error: {e:#}"),
            }
            exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ocadm").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_anywhere() {
        let cli = parse(&[
            "clusters",
            "list",
            "--json",
            "--endpoint",
            "http://h:1",
            "--token",
            "t",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.endpoint.as_deref(), Some("http://h:1"));
        assert_eq!(cli.token.as_deref(), Some("t"));
        assert!(matches!(
            cli.command,
            Command::Clusters(ClusterCommand::List { environment_id: None })
        ));
        assert!(matches!(parse(&["status"]).unwrap().command, Command::Status));
    }

    #[test]
    fn environments_create() {
        let cli = parse(&[
            "environments",
            "create",
            "--name",
            "prod",
            "--region",
            "us-west-2",
            "--vpc",
            "vpc-0abc",
            "--subnets",
            "subnet-1,subnet-2",
            "--vpc-cidr",
            "172.31.0.0/16",
            "--admin-cidr",
            "203.0.113.0/24",
            "--create-security-group",
            "--wait",
        ])
        .unwrap();
        let Command::Environments(EnvironmentCommand::Create(a)) = cli.command else {
            panic!("not environments create")
        };
        assert!(a.wait.wait);
        assert_eq!(a.wait.timeout, 1800);
        assert_eq!(
            environment_spec(&a),
            json!({"name": "prod", "region": "us-west-2", "vpcId": "vpc-0abc",
                   "subnetIds": ["subnet-1", "subnet-2"], "vpcCidr": "172.31.0.0/16",
                   "adminCidr": "203.0.113.0/24", "createSecurityGroup": true})
        );
        let cli = parse(&["environments", "create", "--name", "dev", "--region", "us-east-1"]).unwrap();
        let Command::Environments(EnvironmentCommand::Create(a)) = cli.command else {
            panic!("not environments create")
        };
        assert_eq!(
            environment_spec(&a),
            json!({"name": "dev", "region": "us-east-1"})
        );
        assert!(parse(&["environments", "create", "--name", "dev"]).is_err());
    }

    #[test]
    fn environments_list_get_delete() {
        assert!(matches!(
            parse(&["environments", "list"]).unwrap().command,
            Command::Environments(EnvironmentCommand::List)
        ));
        assert!(matches!(
            parse(&["environments", "get", "4"]).unwrap().command,
            Command::Environments(EnvironmentCommand::Get { id: 4 })
        ));
        let cli = parse(&["environments", "delete", "4", "--wait", "--timeout", "60"]).unwrap();
        let Command::Environments(EnvironmentCommand::Delete { id, wait }) = cli.command else {
            panic!("not environments delete")
        };
        assert_eq!((id, wait.wait, wait.timeout), (4, true, 60));
        assert!(parse(&["environments", "get", "prod"]).is_err());
        assert!(parse(&["environments", "delete", "4", "--timeout", "60"]).is_err());
    }

    #[test]
    fn clusters_create_with_camel_case_flags() {
        let cli = parse(&[
            "clusters",
            "create",
            "--name",
            "analytics",
            "--numNodes",
            "3",
            "--type",
            "STANDALONE_CLUSTER",
            "--environmentid",
            "1",
            "--instanceType",
            "m5.xlarge",
            "--storageGb",
            "80",
            "--tag",
            "team=data",
            "--tag",
            "cost=a=b",
            "--description",
            "BI",
            "--terminationProtectionEnabled",
            "true",
            "--autoRepairEnabled",
            "false",
            "--version",
            "2.0.0",
        ])
        .unwrap();
        let Command::Clusters(ClusterCommand::Create(a)) = cli.command else {
            panic!("not clusters create")
        };
        assert!(!a.wait.wait);
        assert_eq!(
            cluster_spec(&a).unwrap(),
            json!({"name": "analytics", "numNodes": 3, "type": "STANDALONE_CLUSTER",
                   "environmentId": 1, "instanceType": "m5.xlarge", "storageGb": 80,
                   "tags": {"team": "data", "cost": "a=b"}, "description": "BI",
                   "terminationProtectionEnabled": true, "autoRepairEnabled": false,
                   "version": "2.0.0"})
        );
    }

    #[test]
    fn clusters_create_minimal_and_wrong() {
        let base = [
            "clusters",
            "create",
            "--name",
            "a",
            "--numNodes",
            "1",
            "--type",
            "CATALOG_CLUSTER",
            "--environmentid",
            "2",
        ];
        let cli = parse(&base).unwrap();
        let Command::Clusters(ClusterCommand::Create(a)) = cli.command else {
            panic!("not clusters create")
        };
        assert_eq!(
            cluster_spec(&a).unwrap(),
            json!({"name": "a", "numNodes": 1, "type": "CATALOG_CLUSTER", "environmentId": 2})
        );
        // snake or kebab spellings are not the original tool's
        let err = parse(&[&base[..], &["--num-nodes", "2"]].concat()).err().unwrap();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(parse(&[&base[..], &["--environmentId", "2"]].concat()).is_err());
        assert!(parse(&[&base[..], &["--terminationProtectionEnabled", "yes"]].concat()).is_err());
        assert!(parse(&[&base[..], &["--autoRepairEnabled", "yes"]].concat()).is_err());
        assert!(parse(&[&base[..], &["--autoRepairEnabled"]].concat()).is_err());
        assert!(parse(&base[..base.len() - 2]).is_err());
    }

    #[test]
    fn bad_tag_names_the_value() {
        let base = [
            "clusters",
            "create",
            "--name",
            "a",
            "--numNodes",
            "1",
            "--type",
            "CATALOG_CLUSTER",
            "--environmentid",
            "2",
            "--tag",
        ];
        for bad in ["teamdata", "=data"] {
            let err = parse(&[&base[..], &[bad]].concat()).err().unwrap();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(
                err.to_string().contains(&format!("{bad:?} is not KEY=VALUE")),
                "{err}"
            );
        }
        let cli = parse(&[&base[..], &["a=1", "--tag", "a=2"]].concat()).unwrap();
        let Command::Clusters(ClusterCommand::Create(a)) = cli.command else {
            panic!("not clusters create")
        };
        let err = cluster_spec(&a).unwrap_err();
        assert_eq!(err.to_string(), "the tag \"a\" is given more than once");
    }

    #[test]
    fn clusters_list_get_delete() {
        assert!(matches!(
            parse(&["clusters", "list", "--environmentid", "7"])
                .unwrap()
                .command,
            Command::Clusters(ClusterCommand::List {
                environment_id: Some(7)
            })
        ));
        assert!(matches!(
            parse(&["clusters", "get", "3"]).unwrap().command,
            Command::Clusters(ClusterCommand::Get { id: 3 })
        ));
        let cli = parse(&["clusters", "delete", "3", "--wait"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Clusters(ClusterCommand::Delete {
                id: 3,
                wait: WaitArgs {
                    wait: true,
                    timeout: 1800
                }
            })
        ));
    }

    #[test]
    fn clusters_update_needs_a_change() {
        let cli = parse(&["clusters", "update", "--numNodes", "5", "3"]).unwrap();
        let Command::Clusters(ClusterCommand::Update(a)) = cli.command else {
            panic!("not clusters update")
        };
        assert_eq!(a.id, 3);
        assert_eq!(cluster_patch(&a), json!({"numNodes": 5}));

        let cli = parse(&[
            "clusters",
            "update",
            "3",
            "--terminationProtectionEnabled",
            "false",
            "--numNodes",
            "2",
            "--wait",
        ])
        .unwrap();
        let Command::Clusters(ClusterCommand::Update(a)) = cli.command else {
            panic!("not clusters update")
        };
        assert!(a.wait.wait);
        assert_eq!(
            cluster_patch(&a),
            json!({"numNodes": 2, "terminationProtectionEnabled": false})
        );

        let cli = parse(&["clusters", "update", "3", "--autoRepairEnabled", "false"]).unwrap();
        let Command::Clusters(ClusterCommand::Update(a)) = cli.command else {
            panic!("not clusters update")
        };
        assert_eq!(cluster_patch(&a), json!({"autoRepairEnabled": false}));
        assert!(parse(&["clusters", "update", "3", "--autoRepairEnabled", "on"]).is_err());

        let err = parse(&["clusters", "update", "3"]).err().unwrap();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(parse(&["clusters", "update", "3", "--wait"]).is_err());
        assert!(parse(&["clusters", "update", "--numNodes", "2"]).is_err());
    }

    #[test]
    fn clusters_status() {
        assert!(matches!(
            parse(&["clusters", "status", "1"]).unwrap().command,
            Command::Clusters(ClusterCommand::Status { id: 1, detail: false })
        ));
        assert!(matches!(
            parse(&["clusters", "status", "1", "--detail"]).unwrap().command,
            Command::Clusters(ClusterCommand::Status { id: 1, detail: true })
        ));
        let cli = parse(&["clusters", "status", "--json", "2"]).unwrap();
        assert!(cli.json);
        assert!(parse(&["clusters", "status"]).is_err());
        assert!(parse(&["clusters", "status", "analytics"]).is_err());
    }

    #[test]
    fn clusters_diag() {
        let cli = parse(&["clusters", "diag", "3"]).unwrap();
        let Command::Clusters(ClusterCommand::Diag(a)) = cli.command else {
            panic!("not clusters diag")
        };
        assert_eq!((a.id, a.no_wait, a.timeout), (3, false, 1800));
        assert_eq!(diag_body(&a), json!({}));

        let cli = parse(&[
            "clusters",
            "diag",
            "--days",
            "7",
            "--s3-upload-path",
            "s3://my-bucket/diag",
            "3",
            "--no-wait",
        ])
        .unwrap();
        let Command::Clusters(ClusterCommand::Diag(a)) = cli.command else {
            panic!("not clusters diag")
        };
        assert!(a.no_wait);
        assert_eq!(
            diag_body(&a),
            json!({"days": 7, "s3UploadPath": "s3://my-bucket/diag"})
        );
        // The server checks the values, and names the field at fault.
        let cli = parse(&["clusters", "diag", "--days", "-1", "3"]).unwrap();
        let Command::Clusters(ClusterCommand::Diag(a)) = cli.command else {
            panic!("not clusters diag")
        };
        assert_eq!(diag_body(&a), json!({"days": -1}));
        assert!(parse(&["clusters", "diag"]).is_err());
        assert!(parse(&["clusters", "diag", "3", "--no-wait", "--timeout", "5"]).is_err());
        assert!(parse(&["clusters", "diag", "3", "--days", "two"]).is_err());
    }

    #[test]
    fn operations_get() {
        let cli = parse(&["operations", "get", "12", "--wait", "--timeout", "5"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Operations(OperationCommand::Get {
                id: 12,
                wait: WaitArgs {
                    wait: true,
                    timeout: 5
                }
            })
        ));
        assert!(parse(&["operations", "get"]).is_err());
    }

    #[test]
    fn token_is_not_shown_in_help() {
        use clap::CommandFactory;
        // hide_env_values keeps a token set in the environment out of --help.
        let token = Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == "token")
            .map(|a| a.is_hide_env_values_set());
        assert_eq!(token, Some(true));
    }

    #[test]
    fn clusters_upgrade() {
        let cli = parse(&[
            "clusters",
            "upgrade",
            "--version",
            "2.1.0",
            "--components",
            "planner:2.1.1,worker:2.1.2",
            "--force",
            "--ready-timeout",
            "600",
            "--rollback-window",
            "0",
            "--wait",
            "--timeout",
            "7200",
            "3",
        ])
        .unwrap();
        let Command::Clusters(ClusterCommand::Upgrade(a)) = cli.command else {
            panic!("not clusters upgrade")
        };
        assert_eq!((a.id, a.wait.wait, a.wait.timeout), (3, true, 7200));
        assert_eq!(
            upgrade_body(&a),
            json!({"version": "2.1.0", "components": {"planner": "2.1.1", "worker": "2.1.2"},
                   "force": true, "readyTimeoutSeconds": 600, "rollbackWindowSeconds": 0})
        );
        let cli = parse(&["clusters", "upgrade", "--version", "2.1.0", "3"]).unwrap();
        let Command::Clusters(ClusterCommand::Upgrade(a)) = cli.command else {
            panic!("not clusters upgrade")
        };
        assert!(!a.wait.wait);
        assert_eq!(upgrade_body(&a), json!({"version": "2.1.0"}));
        // The server checks the numbers and names the field at fault.
        let cli = parse(&[
            "clusters",
            "upgrade",
            "--version",
            "2",
            "--ready-timeout",
            "-5",
            "3",
        ])
        .unwrap();
        let Command::Clusters(ClusterCommand::Upgrade(a)) = cli.command else {
            panic!("not clusters upgrade")
        };
        assert_eq!(upgrade_body(&a)["readyTimeoutSeconds"], -5);

        assert!(parse(&["clusters", "upgrade", "3"]).is_err());
        assert!(parse(&["clusters", "upgrade", "--version", "2.1.0"]).is_err());
        for bad in ["planner", "planner:", ":2.1.1", "planner:1,planner:2"] {
            let err = parse(&[
                "clusters",
                "upgrade",
                "--version",
                "2.1.0",
                "--components",
                bad,
                "3",
            ])
            .err()
            .unwrap();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        }
        assert!(parse(&["clusters", "upgrade", "--version", "2.1.0", "--timeout", "5", "3"]).is_err());
    }

    #[test]
    fn components_parse() {
        assert_eq!(
            parse_components(" planner:2.1.1 , worker:2.1.2,").unwrap(),
            BTreeMap::from([
                ("planner".to_owned(), "2.1.1".to_owned()),
                ("worker".to_owned(), "2.1.2".to_owned())
            ])
        );
        assert!(parse_components("").unwrap().is_empty());
        assert_eq!(
            parse_components("planner").unwrap_err(),
            "\"planner\" is not SERVICE:VERSION, such as planner:2.1.1"
        );
        assert_eq!(parse_components("a:1,a:2").unwrap_err(), "a is named twice");
    }

    #[test]
    fn clusters_rollback_restart_and_default_version() {
        assert!(matches!(
            parse(&["clusters", "rollback", "4", "--wait"]).unwrap().command,
            Command::Clusters(ClusterCommand::Rollback {
                id: 4,
                wait: WaitArgs {
                    wait: true,
                    timeout: 1800
                }
            })
        ));
        let cli = parse(&["clusters", "restart", "--service", "planner", "4"]).unwrap();
        let Command::Clusters(ClusterCommand::Restart { id, service, wait }) = cli.command else {
            panic!("not clusters restart")
        };
        assert_eq!((id, service.as_deref(), wait.wait), (4, Some("planner"), false));
        assert_eq!(restart_body(service.as_deref()), json!({"service": "planner"}));
        assert_eq!(restart_body(None), json!({}));
        assert!(parse(&["clusters", "restart"]).is_err());

        let cli = parse(&["clusters", "set_default_version", "--version", "2.1.0"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Clusters(ClusterCommand::SetDefaultVersion { version }) if version == "2.1.0"
        ));
        assert!(parse(&["clusters", "set_default_version"]).is_err());
        assert!(parse(&["clusters", "set-default-version", "--version", "2.1.0"]).is_err());
        assert!(matches!(
            parse(&["clusters", "get_default_version"]).unwrap().command,
            Command::Clusters(ClusterCommand::GetDefaultVersion)
        ));
    }

    #[test]
    fn clusters_update_protection_allows_upgrade() {
        let cli = parse(&["clusters", "update", "3", "--protectionAllowsUpgrade", "true"]).unwrap();
        let Command::Clusters(ClusterCommand::Update(a)) = cli.command else {
            panic!("not clusters update")
        };
        assert_eq!(cluster_patch(&a), json!({"protectionAllowsUpgrade": true}));
        assert!(parse(&["clusters", "update", "3", "--protectionAllowsUpgrade", "yes"]).is_err());
    }

    #[test]
    fn operations_list_and_cancel() {
        let cli = parse(&[
            "operations",
            "list",
            "--cluster",
            "3",
            "--state",
            "RUNNING",
            "--limit",
            "5",
        ])
        .unwrap();
        let Command::Operations(OperationCommand::List {
            cluster,
            state,
            limit,
        }) = cli.command
        else {
            panic!("not operations list")
        };
        assert_eq!(
            operations_path(cluster, state.as_deref(), limit),
            "/v1/operations?clusterId=3&state=RUNNING&limit=5"
        );
        assert_eq!(operations_path(None, None, None), "/v1/operations");
        assert_eq!(
            operations_path(None, Some("a b&c"), Some(-1)),
            "/v1/operations?state=a%20b%26c&limit=-1"
        );
        assert!(matches!(
            parse(&["operations", "cancel", "12"]).unwrap().command,
            Command::Operations(OperationCommand::Cancel { id: 12 })
        ));
        assert!(parse(&["operations", "cancel"]).is_err());
    }
}
