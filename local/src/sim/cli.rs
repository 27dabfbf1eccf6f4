//! `dm-local sim`: drives the simulated node agents of a running `dm-local up`
//! through its control API, found in `<data-dir>/sim.json`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::domain::health::SERVICES;
use ureq::Agent;

use super::agent::SLOW_ANSWER;
use super::control::{ControlRequest, NodeRef, SimFile, SIM_FILE};
use super::AgentView;

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
    /// Undo every failure of a node.
    Restore {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List the simulated agents.
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
        SimAction::List => {
            let answer: Value = control.get("/sim/agents")?;
            let agents: Vec<AgentView> = serde_json::from_value(answer["agents"].clone())
                .context("the runner answered with a list of agents this dm-local does not understand")?;
            Ok(table(&agents))
        }
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
    let rows: Vec<[String; 5]> = agents
        .iter()
        .map(|a| {
            [
                a.cluster.to_string(),
                a.index.to_string(),
                a.instance_id.clone(),
                a.address.clone(),
                a.state.clone(),
            ]
        })
        .collect();
    let header = ["cluster", "node", "instance", "address", "state"].map(str::to_owned);
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

    fn post<T: DeserializeOwned>(&self, path: &str, body: &ControlRequest) -> Result<T> {
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
        assert_eq!(lines[0], "cluster  node  instance  address          state");
        assert_eq!(lines[2], "1        1     i-0def    127.0.0.1:40001  STARTING 3/7");
        assert_eq!(table(&[]), "No simulated agents: no cluster has live instances.");
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
