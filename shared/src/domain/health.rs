//! Cluster health: what a node agent reports, and how the DM judges a cluster from
//! its nodes. Pure: the prober, the lifecycle function, the sweep and the local
//! simulator all share these types, and `evaluate` is tested with tables of cases.
//!
//! The agent's JSON is specified in `docs/agent.md`.

use serde::{Deserialize, Serialize};

/// The port every node agent listens on (the "ODAS Agent" rule of
/// `OkeraOdasServices`).
pub const AGENT_PORT: u16 = 8085;

/// The services of a node, in dependency order: each needs the ones before it.
pub const SERVICES: [&str; 7] = [
    "canary",
    "zookeeper",
    "catalog",
    "planner",
    "worker",
    "rest-server",
    "webui",
];

/// The services a cluster cannot serve queries without. The rest (the REST
/// server and the web UI) are its front doors.
const CORE_SERVICES: usize = 5;

/// The message of a cluster whose every service runs on every node.
pub const ALL_RUNNING: &str = "All services running.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceState {
    Running,
    /// Starting up; normal while a node boots.
    Starting,
    Failed,
    /// Not checked, because a service it depends on is not running.
    Unknown,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Running => "RUNNING",
            ServiceState::Starting => "STARTING",
            ServiceState::Failed => "FAILED",
            ServiceState::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHealth {
    pub name: String,
    pub state: ServiceState,
    #[serde(default)]
    pub message: String,
}

/// The body of `GET /v1/health` on a node agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentReport {
    pub instance_id: String,
    #[serde(default)]
    pub version: String,
    pub services: Vec<ServiceHealth>,
}

impl AgentReport {
    /// The report as the DM judges it: exactly [`SERVICES`], in order. A service
    /// the agent left out is `UNKNOWN`, one it does not know is dropped, and every
    /// service after the first that is not running is `UNKNOWN`, whatever the
    /// agent said, because what it depends on is down.
    pub fn normalized(&self) -> Vec<ServiceHealth> {
        let mut blocked: Option<&str> = None;
        SERVICES
            .iter()
            .map(|name| {
                let reported = self.services.iter().find(|s| s.name == *name);
                if let Some(below) = blocked {
                    return ServiceHealth {
                        name: (*name).to_owned(),
                        state: ServiceState::Unknown,
                        message: format!("Not checked: {below} is not running."),
                    };
                }
                let health = match reported {
                    Some(s) => s.clone(),
                    None => ServiceHealth {
                        name: (*name).to_owned(),
                        state: ServiceState::Unknown,
                        message: "The agent did not report this service.".into(),
                    },
                };
                if health.state != ServiceState::Running {
                    blocked = Some(name);
                }
                health
            })
            .collect()
    }

    /// True when every service runs: the node may join its cluster.
    pub fn ready(&self) -> bool {
        self.normalized().iter().all(|s| s.state == ServiceState::Running)
    }
}

/// The last thing the DM learnt about a node's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Probe {
    /// The agent answered; services normalised.
    Answered { services: Vec<ServiceHealth> },
    /// The agent could not be asked: refused, timed out, or answered garbage.
    Failed { reason: String },
}

impl Probe {
    pub fn from_report(report: &AgentReport) -> Probe {
        Probe::Answered {
            services: report.normalized(),
        }
    }

    pub fn healthy(&self) -> bool {
        match self {
            Probe::Answered { services } => services.iter().all(|s| s.state == ServiceState::Running),
            Probe::Failed { .. } => false,
        }
    }

    fn running(&self, service: &str) -> bool {
        matches!(self, Probe::Answered { services }
            if services.iter().any(|s| s.name == service && s.state == ServiceState::Running))
    }
}

/// One node as the evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub instance_id: String,
    /// The Auto Scaling lifecycle state (`InService`, `Pending:Wait`, ...).
    pub lifecycle_state: String,
    /// `None` until the node is first probed.
    pub probe: Option<Probe>,
}

impl NodeView {
    fn in_service(&self) -> bool {
        self.lifecycle_state == "InService"
    }

    fn leaving(&self) -> bool {
        self.lifecycle_state.starts_with("Terminating") || self.lifecycle_state.starts_with("Detach")
    }

    fn healthy(&self) -> bool {
        self.in_service() && self.probe.as_ref().is_some_and(Probe::healthy)
    }

    /// The first thing wrong with this node, as a sentence, or `None` when healthy.
    fn problem(&self, index: usize) -> Option<String> {
        let who = format!("node {index} ({})", self.instance_id);
        if !self.in_service() {
            return Some(format!(
                "Node {index} ({}) is {}.",
                self.instance_id, self.lifecycle_state
            ));
        }
        match &self.probe {
            None => Some(format!(
                "Node {index} ({}) has not been checked yet.",
                self.instance_id
            )),
            Some(Probe::Failed { reason }) => Some(format!("Unable to reach the agent on {who}: {reason}.")),
            Some(Probe::Answered { services }) => services
                .iter()
                .find(|s| s.state != ServiceState::Running)
                .map(|s| format!("Unable to reach {} on {who}.", s.name)),
        }
    }
}

/// A cluster's health code, as `ocadm` shows it. The reconciler sets the
/// lifecycle codes (`PROVISIONING`, `UPDATING`, `TERMINATING`, `TERMINATED`,
/// `FAILED`); the health sweep sets the others once a cluster is steady.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCode {
    /// Every service runs on every node.
    Ready,
    /// Something failed a check, but every service still runs somewhere and at
    /// least half the nodes are healthy.
    Concerning,
    /// The cluster serves, with less: under half its nodes healthy, or a front
    /// door (REST server, web UI) down everywhere.
    Degraded,
    /// The cluster cannot serve: a core service runs nowhere, or no agent answers.
    Down,
}

impl HealthCode {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCode::Ready => "READY",
            HealthCode::Concerning => "CONCERNING",
            HealthCode::Degraded => "DEGRADED",
            HealthCode::Down => "DOWN",
        }
    }
}

/// A cluster's judged health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHealth {
    pub code: HealthCode,
    pub message: String,
    /// Services that run on every in-service node (the `7` of `7/7`).
    pub running_services: usize,
    pub healthy_nodes: usize,
}

impl ClusterHealth {
    /// `numRunningServices`, as `7/7`.
    pub fn running_services_label(&self) -> String {
        format!("{}/{}", self.running_services, SERVICES.len())
    }
}

/// Judges a steady cluster of `desired` nodes from its nodes. Nodes that are
/// leaving (terminating, detaching) do not count; `nodes` is in display order,
/// which gives each node its index.
pub fn evaluate(desired: usize, nodes: &[NodeView]) -> ClusterHealth {
    let members: Vec<(usize, &NodeView)> = nodes.iter().enumerate().filter(|(_, n)| !n.leaving()).collect();
    let serving: Vec<&NodeView> = members
        .iter()
        .map(|(_, n)| *n)
        .filter(|n| n.in_service() && matches!(n.probe, Some(Probe::Answered { .. })))
        .collect();
    let runs_somewhere = |service: &str| {
        serving
            .iter()
            .any(|n| n.probe.as_ref().is_some_and(|p| p.running(service)))
    };
    let in_service: Vec<&NodeView> = members
        .iter()
        .map(|(_, n)| *n)
        .filter(|n| n.in_service())
        .collect();
    let running_services = if in_service.is_empty() {
        0
    } else {
        SERVICES
            .iter()
            .filter(|s| {
                in_service
                    .iter()
                    .all(|n| n.probe.as_ref().is_some_and(|p| p.running(s)))
            })
            .count()
    };
    let healthy_nodes = members.iter().filter(|(_, n)| n.healthy()).count();
    let problems: Vec<String> = members.iter().filter_map(|(i, n)| n.problem(*i)).collect();
    let missing = desired.saturating_sub(members.len());

    let (code, message) = if let Some(core) = SERVICES[..CORE_SERVICES].iter().find(|s| !runs_somewhere(s)) {
        let why = if serving.is_empty() {
            match problems.first() {
                Some(p) => format!("No node answers its health check. {p}"),
                None => "The cluster has no nodes.".to_owned(),
            }
        } else {
            format!("{core} is not running on any node.")
        };
        (HealthCode::Down, why)
    } else if let Some(door) = SERVICES[CORE_SERVICES..].iter().find(|s| !runs_somewhere(s)) {
        (
            HealthCode::Degraded,
            format!("{door} is not running on any node."),
        )
    } else if healthy_nodes * 2 < desired {
        (
            HealthCode::Degraded,
            format!("{healthy_nodes} of {desired} nodes are healthy."),
        )
    } else if problems.is_empty() && missing == 0 {
        (HealthCode::Ready, ALL_RUNNING.to_owned())
    } else {
        let mut message = match problems.first() {
            Some(first) => format!("Health check unsuccessful. {first}"),
            None => format!("Health check unsuccessful. {missing} of {desired} nodes are missing."),
        };
        if problems.len() > 1 {
            message.push_str(&format!(" {} more problem(s).", problems.len() - 1));
        }
        (HealthCode::Concerning, message)
    };
    ClusterHealth {
        code,
        message,
        running_services,
        healthy_nodes,
    }
}

/// `elapsedTime` as the source documents print it: `3h12m41s997ms`. Leading
/// zero units are left out (`41s997ms`), so that `0ms` is the shortest.
pub fn format_elapsed(ms: i64) -> String {
    let ms = ms.max(0);
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if h > 0 || m > 0 || s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out.push_str(&format!("{ms}ms"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(states: &[(&str, ServiceState)]) -> AgentReport {
        AgentReport {
            instance_id: "i-1".into(),
            version: "2.0.0".into(),
            services: states
                .iter()
                .map(|(n, s)| ServiceHealth {
                    name: (*n).into(),
                    state: *s,
                    message: String::new(),
                })
                .collect(),
        }
    }

    fn all(state: ServiceState) -> AgentReport {
        report(&SERVICES.iter().map(|s| (*s, state)).collect::<Vec<_>>())
    }

    fn failing(service: &str) -> AgentReport {
        report(
            &SERVICES
                .iter()
                .map(|s| {
                    (
                        *s,
                        if *s == service {
                            ServiceState::Failed
                        } else {
                            ServiceState::Running
                        },
                    )
                })
                .collect::<Vec<_>>(),
        )
    }

    fn node(i: usize, lifecycle: &str, probe: Option<Probe>) -> NodeView {
        NodeView {
            instance_id: format!("i-{i}"),
            lifecycle_state: lifecycle.into(),
            probe,
        }
    }

    fn ok(i: usize) -> NodeView {
        node(
            i,
            "InService",
            Some(Probe::from_report(&all(ServiceState::Running))),
        )
    }

    fn with(i: usize, r: &AgentReport) -> NodeView {
        node(i, "InService", Some(Probe::from_report(r)))
    }

    fn unreachable(i: usize) -> NodeView {
        node(
            i,
            "InService",
            Some(Probe::Failed {
                reason: "timed out after 2s".into(),
            }),
        )
    }

    #[test]
    fn a_failed_service_makes_the_ones_above_it_unknown() {
        let n = failing("catalog").normalized();
        let states: Vec<ServiceState> = n.iter().map(|s| s.state).collect();
        use ServiceState::*;
        assert_eq!(
            states,
            [Running, Running, Failed, Unknown, Unknown, Unknown, Unknown]
        );
        assert_eq!(n[3].message, "Not checked: catalog is not running.");
    }

    #[test]
    fn normalising_orders_fills_and_drops() {
        let r = report(&[
            ("webui", ServiceState::Running),
            ("canary", ServiceState::Running),
            ("bogus", ServiceState::Failed),
        ]);
        let n = r.normalized();
        assert_eq!(n.len(), SERVICES.len());
        assert_eq!(n[0].name, "canary");
        assert_eq!(n[1].state, ServiceState::Unknown, "zookeeper was not reported");
        assert!(n.iter().all(|s| s.name != "bogus"));
        assert!(!r.ready());
        assert!(all(ServiceState::Running).ready());
        assert!(!all(ServiceState::Starting).ready());
    }

    #[test]
    fn evaluation_table() {
        use HealthCode::*;
        type Case = (
            &'static str,
            usize,
            Vec<NodeView>,
            HealthCode,
            &'static str,
            usize,
        );
        let cases: Vec<Case> = vec![
            ("all good", 3, vec![ok(0), ok(1), ok(2)], Ready, ALL_RUNNING, 7),
            (
                "one node's planner failed",
                3,
                vec![ok(0), with(1, &failing("planner")), ok(2)],
                Concerning,
                "Health check unsuccessful. Unable to reach planner on node 1 (i-1).",
                3,
            ),
            (
                "one agent unreachable",
                3,
                vec![unreachable(0), ok(1), ok(2)],
                Concerning,
                "Health check unsuccessful. Unable to reach the agent on node 0 (i-0): timed out after 2s.",
                0,
            ),
            (
                "a node is joining",
                3,
                vec![ok(0), ok(1), node(2, "Pending:Wait", None)],
                Concerning,
                "Health check unsuccessful. Node 2 (i-2) is Pending:Wait.",
                7,
            ),
            (
                "a node is missing",
                3,
                vec![ok(0), ok(1)],
                Concerning,
                "Health check unsuccessful. 1 of 3 nodes are missing.",
                7,
            ),
            (
                "two problems",
                4,
                vec![unreachable(0), with(1, &failing("webui")), ok(2), ok(3)],
                Concerning,
                "Health check unsuccessful. Unable to reach the agent on node 0 (i-0): timed out after 2s. 1 more problem(s).",
                0,
            ),
            (
                "under half healthy",
                5,
                vec![ok(0), ok(1), unreachable(2), unreachable(3), unreachable(4)],
                Degraded,
                "2 of 5 nodes are healthy.",
                0,
            ),
            (
                "web UI down everywhere",
                1,
                vec![with(0, &failing("webui"))],
                Degraded,
                "webui is not running on any node.",
                6,
            ),
            (
                "planner down everywhere",
                1,
                vec![with(0, &failing("planner"))],
                Down,
                "planner is not running on any node.",
                3,
            ),
            (
                "no agent answers",
                2,
                vec![unreachable(0), unreachable(1)],
                Down,
                "No node answers its health check. Unable to reach the agent on node 0 (i-0): timed out after 2s.",
                0,
            ),
            ("no nodes", 2, vec![], Down, "The cluster has no nodes.", 0),
            (
                "terminating nodes do not count",
                2,
                vec![ok(0), node(1, "Terminating:Wait", None), ok(2)],
                Ready,
                ALL_RUNNING,
                7,
            ),
        ];
        for (name, desired, nodes, code, message, running) in cases {
            let h = evaluate(desired, &nodes);
            assert_eq!(h.code, code, "{name}: {h:?}");
            assert_eq!(h.message, message, "{name}");
            assert_eq!(h.running_services, running, "{name}");
        }
    }

    #[test]
    fn running_services_label() {
        let h = evaluate(2, &[ok(0), with(1, &failing("rest-server"))]);
        assert_eq!(h.running_services_label(), "5/7");
    }

    #[test]
    fn elapsed_time_format() {
        assert_eq!(format_elapsed(0), "0ms");
        assert_eq!(format_elapsed(41_997), "41s997ms");
        assert_eq!(format_elapsed(60_000), "1m0s0ms");
        assert_eq!(
            format_elapsed(3 * 3_600_000 + 12 * 60_000 + 41_997),
            "3h12m41s997ms"
        );
        assert_eq!(format_elapsed(-5), "0ms");
    }

    #[test]
    fn agent_json_round_trips() {
        let text = r#"{"instanceId":"i-1","version":"2.0.0","timestamp":"x","services":[{"name":"canary","state":"RUNNING","message":"ok"}]}"#;
        let r: AgentReport = serde_json::from_str(text).unwrap();
        assert_eq!(r.services[0].state, ServiceState::Running);
        let p = Probe::from_report(&r);
        let back: Probe = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
