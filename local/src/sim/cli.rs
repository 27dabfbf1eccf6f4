//! `dm-local sim`: drives the simulated node agents of a running `dm-local up`
//! through its control API, found in `<data-dir>/sim.json`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use shared::domain::health::SERVICES;
use ureq::Agent;

use super::agent::SLOW_ANSWER;
use super::control::{ControlRequest, NodeRef, SimFile, VersionRequest, DEFAULT_VERSION_SERVICE, SIM_FILE};
use super::{AgentView, BrokenVersion, VersionChange};

#[derive(clap::Args)]
pub struct SimArgs {
    /// The data directory of the running `dm-local up`.
    #[arg(long, default_value = crate::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[command(subcommand)]
    action: SimAction,
}

#[derive(Subcommand)]
enum SimAction {
    /// Make a service of a node fail; the services after it become UNKNOWN.
    FailService {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SERVICES))]
        service: String,
        /// The failure's message (default: "<service> exited with status 137").
        #[arg(long)]
        message: Option<String>,
    },
    /// Make a node's agent unreachable (connections closed at once) or slow
    /// (answers after 30 s).
    FailNode {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long, value_enum, default_value_t = Mode::Unreachable)]
        mode: Mode,
    },
    /// Undo every failure of a node (not its version's: see restore-version).
    Restore {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Break an ODAS version: every node of a cluster that runs it, now or
    /// later, reports the service FAILED, so such a cluster never becomes READY.
    FailVersion {
        /// The version, as clusters name it (e.g. 2.1.0).
        version: String,
        /// The service the version's nodes report FAILED.
        #[arg(
            long,
            default_value = DEFAULT_VERSION_SERVICE,
            value_parser = clap::builder::PossibleValuesParser::new(SERVICES)
        )]
        service: String,
    },
    /// Undo fail-version: the version's nodes run again (their own failures stay).
    RestoreVersion {
        /// The version, as clusters name it (e.g. 2.1.0).
        version: String,
    },
    /// List the simulated agents, and the broken versions.
    List,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// The cluster's id.
    #[arg(long)]
    cluster: i64,
    /// An instance id, or the node's 0-based index in the cluster (by launch time).
    #[arg(long)]
    node: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Unreachable,
    Slow,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Unreachable => "unreachable",
            Mode::Slow => "slow",
        }
    }
}

impl NodeArgs {
    fn request(&self) -> ControlRequest {
        let node = match self.node.trim().parse::<u64>() {
            Ok(index) => NodeRef::Index(index),
            Err(_) => NodeRef::Id(self.node.trim().to_owned()),
        };
        ControlRequest {
            cluster: self.cluster,
            node,
            service: None,
            mode: None,
            message: None,
        }
    }
}

/// Runs one `dm-local sim` command; returns what to print.
pub fn run(args: &SimArgs) -> Result<String> {
    let control = Control::open(&args.data_dir)?;
    match &args.action {
        SimAction::FailService {
            node,
            service,
            message,
        } => {
            let req = ControlRequest {
                service: Some(service.clone()),
                message: message.clone(),
                ..node.request()
            };
            let agent: AgentView = control.post("/sim/fail-service", &req)?;
            Ok(format!("{service} FAILED on {}", who(&agent)))
        }
        SimAction::FailNode { node, mode } => {
            let req = ControlRequest {
                mode: Some(mode.as_str().to_owned()),
                ..node.request()
            };
            let agent: AgentView = control.post("/sim/fail-node", &req)?;
            Ok(match mode {
                Mode::Unreachable => format!(
                    "{} is UNREACHABLE: its agent closes every connection",
                    who(&agent)
                ),
                Mode::Slow => format!(
                    "{} is SLOW: its agent answers after {} s",
                    who(&agent),
                    SLOW_ANSWER.as_secs()
                ),
            })
        }
        SimAction::Restore { node } => {
            let agent: AgentView = control.post("/sim/restore", &node.request())?;
            Ok(format!(
                "{} restored; now {}",
                capitalize(&who(&agent)),
                agent.state
            ))
        }
        SimAction::FailVersion { version, service } => {
            let req = VersionRequest {
                version: Some(version.clone()),
                service: Some(service.clone()),
            };
            let change: VersionChange = control.post("/sim/fail-version", &req)?;
            Ok(broken_line(&change))
        }
        SimAction::RestoreVersion { version } => {
            let req = VersionRequest {
                version: Some(version.clone()),
                service: None,
            };
            let change: VersionChange = control.post("/sim/restore-version", &req)?;
            Ok(restored_line(&change))
        }
        SimAction::List => {
            let answer: Value = control.get("/sim/agents")?;
            let not_understood =
                "the runner answered with a list of agents this dm-local does not understand";
            let agents: Vec<AgentView> =
                serde_json::from_value(answer["agents"].clone()).context(not_understood)?;
            let broken: Vec<BrokenVersion> = match answer.get("brokenVersions") {
                Some(v) => serde_json::from_value(v.clone()).context(not_understood)?,
                None => Vec::new(),
            };
            let mut out = table(&agents);
            if !broken.is_empty() {
                let names: Vec<String> = broken
                    .iter()
                    .map(|b| format!("{} ({} FAILED)", b.version, b.service))
                    .collect();
                out.push_str(&format!("\nBroken versions: {}", names.join(", ")));
            }
            Ok(out)
        }
    }
}

/// The nodes a version change touched, one per line, or a word that there are none.
fn nodes_of(change: &VersionChange) -> String {
    if change.agents.is_empty() {
        return "no node runs it now".to_owned();
    }
    let lines: Vec<String> = change
        .agents
        .iter()
        .map(|a| format!("\n  {}: {}", who(a), a.state))
        .collect();
    format!("nodes that run it now:{}", lines.concat())
}

fn broken_line(change: &VersionChange) -> String {
    let service = change.service.as_deref().unwrap_or(DEFAULT_VERSION_SERVICE);
    let again = if change.was_broken {
        " (was already broken; now this way)"
    } else {
        ""
    };
    format!(
        "Version {} is BROKEN{again}: {service} FAILED on every node of a cluster that runs it, now or later; {}",
        change.version,
        nodes_of(change)
    )
}

fn restored_line(change: &VersionChange) -> String {
    if change.was_broken {
        format!("Version {} restored; {}", change.version, nodes_of(change))
    } else {
        format!("Version {} was not broken; nothing changed", change.version)
    }
}

fn who(agent: &AgentView) -> String {
    format!(
        "node {} ({}) of cluster {}",
        agent.index, agent.instance_id, agent.cluster
    )
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn table(agents: &[AgentView]) -> String {
    if agents.is_empty() {
        return "No simulated agents: no cluster has live instances.".to_owned();
    }
    let rows: Vec<[String; 6]> = agents
        .iter()
        .map(|a| {
            [
                a.cluster.to_string(),
                a.index.to_string(),
                a.instance_id.clone(),
                a.address.clone(),
                a.version.clone(),
                a.state.clone(),
            ]
        })
        .collect();
    let header = ["cluster", "node", "instance", "address", "version", "state"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The control API of one runner.
struct Control {
    agent: Agent,
    file: SimFile,
    data_dir: PathBuf,
}

impl Control {
    fn open(data_dir: &Path) -> Result<Control> {
        let path = data_dir.join(SIM_FILE);
        let raw = match std::fs::read_to_string(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == ErrorKind::NotFound => bail!(
                "no dm-local runner with simulated agents is running with the data directory {} ({} is missing); start one with `dm-local up --data-dir {}` (agents are simulated only over the emulator, not with --real-aws)",
                data_dir.display(),
                path.display(),
                data_dir.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: SimFile =
            serde_json::from_str(&raw).with_context(|| format!("reading {}", path.display()))?;
        if !file.url.starts_with("http://127.0.0.1:") {
            bail!("{} names {}, which is not on 127.0.0.1", path.display(), file.url);
        }
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Ok(Control {
            agent,
            file,
            data_dir: data_dir.to_owned(),
        })
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let result = self
            .agent
            .get(format!("{}{path}", self.file.url))
            .header("Authorization", format!("Bearer {}", self.file.token))
            .call();
        self.finish(result)
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let result = self
            .agent
            .post(format!("{}{path}", self.file.url))
            .header("Authorization", format!("Bearer {}", self.file.token))
            .send_json(body);
        self.finish(result)
    }

    fn finish<T: DeserializeOwned>(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut response = result.map_err(|e| {
            anyhow!(
                "could not reach the dm-local runner at {} ({e}); is `dm-local up --data-dir {}` still running?",
                self.file.url,
                self.data_dir.display()
            )
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .context("reading the runner's answer")?;
        if status >= 400 {
            let parsed: Option<Value> = serde_json::from_str(&text).ok();
            let message = parsed
                .as_ref()
                .and_then(|v| v["error"]["message"].as_str())
                .unwrap_or(text.trim());
            bail!("{message} (HTTP {status})");
        }
        serde_json::from_str(&text)
            .with_context(|| format!("the runner answered HTTP {status} with {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(cluster: i64, index: usize, id: &str, state: &str) -> AgentView {
        AgentView {
            cluster,
            index,
            instance_id: id.into(),
            address: "127.0.0.1:40001".into(),
            version: "2.0.0".into(),
            state: state.into(),
        }
    }

    #[test]
    fn lines_name_the_node_its_index_and_its_cluster() {
        let a = view(1, 0, "i-0abc", "planner FAILED");
        assert_eq!(who(&a), "node 0 (i-0abc) of cluster 1");
        assert_eq!(capitalize(&who(&a)), "Node 0 (i-0abc) of cluster 1");
    }

    #[test]
    fn nodes_are_sent_as_indexes_or_ids() {
        let args = |node: &str| NodeArgs {
            cluster: 1,
            node: node.into(),
        };
        assert_eq!(args("2").request().node, NodeRef::Index(2));
        assert_eq!(args("i-0abc").request().node, NodeRef::Id("i-0abc".into()));
    }

    #[test]
    fn the_list_is_a_table() {
        let t = table(&[
            view(1, 0, "i-0abc", "RUNNING"),
            view(1, 1, "i-0def", "STARTING 3/7"),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "cluster  node  instance  address          version  state"
        );
        assert_eq!(
            lines[2],
            "1        1     i-0def    127.0.0.1:40001  2.0.0    STARTING 3/7"
        );
        assert_eq!(table(&[]), "No simulated agents: no cluster has live instances.");
    }

    #[test]
    fn version_changes_name_the_nodes_they_touched() {
        let mut change = VersionChange {
            version: "2.1.0".into(),
            service: Some("planner".into()),
            was_broken: false,
            agents: vec![view(3, 0, "i-0abc", "planner FAILED")],
        };
        assert_eq!(
            broken_line(&change),
            "Version 2.1.0 is BROKEN: planner FAILED on every node of a cluster that runs it, now or later; \
             nodes that run it now:\n  node 0 (i-0abc) of cluster 3: planner FAILED"
        );
        change.agents.clear();
        assert!(broken_line(&change).ends_with("; no node runs it now"));
        change.service = None;
        change.was_broken = true;
        change.agents = vec![view(3, 0, "i-0abc", "RUNNING")];
        assert_eq!(
            restored_line(&change),
            "Version 2.1.0 restored; nodes that run it now:\n  node 0 (i-0abc) of cluster 3: RUNNING"
        );
        change.was_broken = false;
        assert_eq!(
            restored_line(&change),
            "Version 2.1.0 was not broken; nothing changed"
        );
    }

    #[test]
    fn version_commands_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            sim: SimArgs,
        }
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()));
        let cli = parse(&["fail-version", "2.1.0"]).unwrap();
        assert!(matches!(
            cli.sim.action,
            SimAction::FailVersion { ref version, ref service } if version == "2.1.0" && service == "planner"
        ));
        let cli = parse(&["fail-version", "2.1.0", "--service", "worker"]).unwrap();
        assert!(matches!(cli.sim.action, SimAction::FailVersion { ref service, .. } if service == "worker"));
        assert!(parse(&["fail-version", "2.1.0", "--service", "hms"]).is_err());
        assert!(parse(&["fail-version"]).is_err());
        let cli = parse(&["restore-version", "2.1.0"]).unwrap();
        assert!(matches!(cli.sim.action, SimAction::RestoreVersion { ref version } if version == "2.1.0"));
    }

    #[test]
    fn a_missing_control_file_says_how_to_start_a_runner() {
        let dir = std::env::temp_dir().join(format!("dm-local-sim-test-{}", std::process::id()));
        let err = Control::open(&dir).err().unwrap().to_string();
        assert!(
            err.contains("no dm-local runner with simulated agents is running"),
            "{err}"
        );
        assert!(err.contains("dm-local up --data-dir"), "{err}");
    }
}
