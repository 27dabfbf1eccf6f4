//! The JSON the API answers with, built from store rows. Field names are
//! camelCase, as the original DM's were; times are `YYYY-MM-DD HH:MM:SS.mmm` UTC.
//!
//! Most views are `json!` objects, whose keys serde_json sorts. The status
//! document of a cluster is a struct instead: its first keys are, in order,
//! `timestamp`, `message`, `elapsedTime` and `code`, as the original DM printed
//! them, and a struct serialises its fields in the order they are declared.

use serde::Serialize;
use serde_json::{json, Value};
use shared::domain::health::{format_elapsed, Probe, SERVICES};
use shared::store::{
    ClusterRow, EnvironmentRow, NodeRow, OperationRow, RunbookRow, RunbookStep, StatusChange,
};
use shared::time::format_ms;

/// How many status changes the status document lists.
pub const HISTORY_LENGTH: i64 = 10;

pub fn environment(e: &EnvironmentRow) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "region": e.region,
        "vpcId": e.vpc_id,
        "subnetIds": e.subnet_ids,
        "vpcCidr": e.vpc_cidr,
        "adminCidr": e.admin_cidr,
        "createSecurityGroup": e.create_security_group,
        "securityGroupId": e.security_group_id,
        "failoverPartnerId": e.pair_id,
        "failoverRole": e.failover_role,
        "warmStandbyNodes": e.warm_standby_nodes,
        "servesPair": e.pair_id.map(|_| e.pair_serving),
        "statusCode": e.status_code,
        "statusMessage": e.status_message,
        "createdAt": format_ms(e.created_at),
        "updatedAt": format_ms(e.updated_at),
    })
}

pub fn cluster(c: &ClusterRow, nodes: Option<&[NodeRow]>) -> Value {
    let mut v = json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "type": c.cluster_type,
        "environmentId": c.environment_id,
        "numNodes": c.num_nodes,
        "instanceType": c.instance_type,
        "storageGb": c.storage_gb,
        "version": c.odas_version,
        "owner": c.owner,
        "tags": c.tags,
        "terminationProtectionEnabled": c.termination_protection,
        "statusCode": c.status_code,
        "statusMessage": c.status_message,
        "numRunningNodes": c.running_nodes,
        "numRunningServices": running_services(c),
        "autoRepairEnabled": c.auto_repair,
        "protectionAllowsUpgrade": c.protection_allows_upgrade,
        "endpoint": c.endpoint,
        "servesEndpoint": c.serves_endpoint,
        "components": c.components,
        "replacesId": c.replaces_id,
        "parked": c.parked,
        "partnerId": c.partner_id,
        "drillId": c.drill_id,
        "resources": {
            "autoScalingGroup": c.asg_name,
            "launchTemplate": c.launch_template_id,
            "configUri": c.config_uri,
        },
        "createdAt": format_ms(c.created_at),
        "updatedAt": format_ms(c.updated_at),
    });
    if let Some(nodes) = nodes {
        v["nodes"] = nodes
            .iter()
            .map(|n| json!({ "instanceId": n.instance_id, "state": n.lifecycle_state, "availabilityZone": n.availability_zone }))
            .collect();
    }
    v
}

/// `numRunningServices`: the services that run on every node in service, out of
/// all of them, as `7/7`.
fn running_services(c: &ClusterRow) -> String {
    format!("{}/{}", c.running_services, SERVICES.len())
}

/// `GET /v1/clusters/{id}/status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// When the status was last judged, by a health sweep or by the reconciler.
    pub timestamp: String,
    pub message: String,
    /// How long the cluster has had this code, as `3h12m41s997ms`.
    pub elapsed_time: String,
    pub code: String,
    pub num_running_services: String,
    /// When `code` last changed (`elapsedTime` counts from here).
    pub status_since: String,
    pub nodes: Vec<NodeStatus>,
    /// The latest status changes, newest first.
    pub history: Vec<HistoryEntry>,
}

/// One node in the status document, as its last probe found it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node's place in the cluster (by launch time, then instance id), as
    /// the status messages name it: `node 1 (i-0456)`.
    pub index: usize,
    pub instance_id: String,
    pub lifecycle_state: String,
    /// When its agent was last probed; `null` until the first probe.
    pub checked_at: Option<String>,
    /// What the agent answered, in dependency order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceStatus>>,
    /// Why the agent could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Since when the node has failed its checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_since: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub state: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    pub timestamp: String,
    pub code: String,
    pub message: String,
}

/// The status document of a cluster at `now` (epoch milliseconds). `nodes` are
/// in the store's order, which gives each its index; `history` is newest first.
pub fn cluster_status(
    c: &ClusterRow,
    nodes: &[NodeRow],
    history: &[StatusChange],
    now: i64,
) -> ClusterStatus {
    // The sweep records `health_checked_at`; the reconciler, which sets the
    // lifecycle codes and judges health itself when it converges, `updated_at`.
    let judged_at = c.health_checked_at.max(c.updated_at);
    let since = if c.status_since > 0 {
        c.status_since
    } else {
        c.created_at
    };
    ClusterStatus {
        timestamp: format_ms(judged_at),
        message: c.status_message.clone(),
        elapsed_time: format_elapsed(now - since),
        code: c.status_code.clone(),
        num_running_services: running_services(c),
        status_since: format_ms(since),
        nodes: nodes.iter().enumerate().map(|(i, n)| node_status(i, n)).collect(),
        history: history
            .iter()
            .map(|h| HistoryEntry {
                timestamp: format_ms(h.at),
                code: h.code.clone(),
                message: h.message.clone(),
            })
            .collect(),
    }
}

fn node_status(index: usize, n: &NodeRow) -> NodeStatus {
    let (services, error) = match &n.probe {
        None => (None, None),
        Some(Probe::Answered { services }) => (
            Some(
                services
                    .iter()
                    .map(|s| ServiceStatus {
                        name: s.name.clone(),
                        state: s.state.as_str(),
                        message: s.message.clone(),
                    })
                    .collect(),
            ),
            None,
        ),
        Some(Probe::Failed { reason }) => (None, Some(reason.clone())),
    };
    NodeStatus {
        index,
        instance_id: n.instance_id.clone(),
        lifecycle_state: n.lifecycle_state.clone(),
        checked_at: (n.checked_at > 0).then(|| format_ms(n.checked_at)),
        services,
        error,
        unhealthy_since: n.unhealthy_since.map(format_ms),
    }
}

pub fn operation(o: &OperationRow) -> Value {
    json!({
        "id": o.id,
        "kind": o.kind,
        "target": format!("{}/{}", o.target_kind, o.target_id),
        "state": o.state,
        "steps": o.steps,
        "error": o.error,
        "result": o.result,
        "principal": o.principal,
        "createdAt": format_ms(o.created_at),
        "updatedAt": format_ms(o.updated_at),
    })
}

/// The `runbook` of an operation that runs one: its kind, where it is, what was
/// asked, what it learned, and its steps with how long each took (until `now`,
/// epoch milliseconds, for the running one).
pub fn runbook(rb: &RunbookRow, now: i64) -> Value {
    let mut context = serde_json::to_value(&rb.context).unwrap_or(Value::Null);
    if let Some(at) = rb.context.switched_at {
        context["switchedAt"] = json!(format_ms(at));
    }
    json!({
        "kind": rb.kind.as_str(),
        "state": rb.state,
        "phase": rb.phase,
        "params": serde_json::to_value(&rb.params).unwrap_or(Value::Null),
        "context": context,
        "cancelRequested": rb.cancel_requested,
        "error": rb.error,
        "wakeAt": (rb.wake_at > 0).then(|| format_ms(rb.wake_at)),
        "steps": rb.steps.iter().map(|s| runbook_step(s, now)).collect::<Vec<_>>(),
    })
}

fn runbook_step(s: &RunbookStep, now: i64) -> Value {
    let duration = s
        .started_at
        .map(|started| (s.finished_at.unwrap_or(now) - started).max(0));
    json!({
        "seq": s.seq,
        "name": s.name,
        "arg": s.arg,
        "state": s.state,
        "attempts": s.attempts,
        "startedAt": s.started_at.map(format_ms),
        "finishedAt": s.finished_at.map(format_ms),
        "durationMs": duration,
        "result": s.result,
        "error": s.error,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shared::domain::health::{ServiceHealth, ServiceState};

    use super::*;

    const T0: i64 = 1_548_775_133_488; // 2019-01-29 15:18:53.488

    fn row() -> ClusterRow {
        ClusterRow {
            id: 1,
            environment_id: 1,
            name: "analytics".into(),
            description: String::new(),
            cluster_type: "STANDALONE_CLUSTER".into(),
            num_nodes: 3,
            instance_type: "t2.large".into(),
            storage_gb: 40,
            odas_version: "2.0.0".into(),
            owner: "operator".into(),
            tags: BTreeMap::new(),
            termination_protection: false,
            delete_requested: false,
            config_generation: 1,
            status_code: "READY".into(),
            status_message: "All services running.".into(),
            generation: 1,
            observed_generation: 1,
            asg_name: None,
            launch_template_id: None,
            config_uri: None,
            running_nodes: 3,
            running_services: 7,
            status_since: T0,
            health_checked_at: 0,
            auto_repair: true,
            endpoint: None,
            serves_endpoint: true,
            components: BTreeMap::new(),
            replaces_id: None,
            protection_allows_upgrade: false,
            parked: false,
            partner_id: None,
            drill_id: None,
            row_version: 1,
            created_at: T0 - 60_000,
            updated_at: T0,
        }
    }

    fn node(id: &str, probe: Option<Probe>, checked_at: i64) -> NodeRow {
        NodeRow {
            instance_id: id.into(),
            cluster_id: 1,
            lifecycle_state: "InService".into(),
            availability_zone: "us-west-2a".into(),
            private_ip: None,
            launched_at: T0,
            action: None,
            joining_since: None,
            probe,
            checked_at,
            unhealthy_since: None,
            repair_requested_at: None,
            updated_at: T0,
        }
    }

    fn answered(failing: Option<&str>) -> Probe {
        Probe::Answered {
            services: SERVICES
                .iter()
                .map(|s| ServiceHealth {
                    name: (*s).into(),
                    state: if Some(*s) == failing {
                        ServiceState::Failed
                    } else {
                        ServiceState::Running
                    },
                    message: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_status_document_starts_with_the_original_dms_four_keys() {
        let mut c = row();
        c.health_checked_at = T0 + 11_561_997;
        let doc = cluster_status(&c, &[], &[], T0 + 11_561_997);
        let text = serde_json::to_string(&doc).unwrap();
        assert!(
            text.starts_with(
                r#"{"timestamp":"2019-01-29 18:31:35.485","message":"All services running.","elapsedTime":"3h12m41s997ms","code":"READY","numRunningServices":"7/7","statusSince":"2019-01-29 15:18:53.488","nodes":[],"history":[]}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn the_timestamp_is_the_latest_judgement_and_elapsed_counts_from_the_code_change() {
        let mut c = row();
        // Never swept: the reconciler's last record.
        let doc = cluster_status(&c, &[], &[], T0 + 1_500);
        assert_eq!(doc.timestamp, format_ms(T0));
        assert_eq!(doc.elapsed_time, "1s500ms");
        // Swept since.
        c.health_checked_at = T0 + 1_000;
        assert_eq!(
            cluster_status(&c, &[], &[], T0 + 1_500).timestamp,
            format_ms(T0 + 1_000)
        );
        // Then an update: the reconciler's code is newer than the sweep's.
        c.updated_at = T0 + 2_000;
        assert_eq!(
            cluster_status(&c, &[], &[], T0 + 2_500).timestamp,
            format_ms(T0 + 2_000)
        );
        // A clock that went back shows no negative time.
        assert_eq!(cluster_status(&c, &[], &[], T0 - 5).elapsed_time, "0ms");
    }

    #[test]
    fn nodes_show_services_or_an_error_or_neither() {
        let mut sick = node("i-2", Some(answered(Some("planner"))), T0 + 3);
        sick.unhealthy_since = Some(T0 + 1);
        let nodes = [
            node("i-0", Some(answered(None)), T0 + 2),
            node(
                "i-1",
                Some(Probe::Failed {
                    reason: "connection refused".into(),
                }),
                T0 + 2,
            ),
            sick,
            node("i-3", None, 0),
        ];
        let v = serde_json::to_value(cluster_status(&row(), &nodes, &[], T0)).unwrap();
        let n = &v["nodes"];
        assert_eq!(n[0]["index"], 0);
        assert_eq!(n[0]["instanceId"], "i-0");
        assert_eq!(n[0]["lifecycleState"], "InService");
        assert_eq!(n[0]["checkedAt"], format_ms(T0 + 2));
        assert_eq!(n[0]["services"].as_array().map(Vec::len), Some(SERVICES.len()));
        assert_eq!(
            n[0]["services"][0],
            json!({"name": "canary", "state": "RUNNING", "message": ""})
        );
        assert!(n[0].get("error").is_none() && n[0].get("unhealthySince").is_none());
        assert_eq!(n[1]["error"], "connection refused");
        assert!(n[1].get("services").is_none());
        assert_eq!(n[2]["services"][3]["state"], "FAILED");
        assert_eq!(n[2]["unhealthySince"], format_ms(T0 + 1));
        assert_eq!(n[3]["index"], 3);
        assert_eq!(n[3]["checkedAt"], Value::Null);
        assert!(n[3].get("services").is_none() && n[3].get("error").is_none());
    }

    #[test]
    fn history_entries_keep_their_order() {
        let history = [
            StatusChange {
                at: T0 + 10,
                code: "CONCERNING".into(),
                message: "Health check unsuccessful.".into(),
            },
            StatusChange {
                at: T0,
                code: "READY".into(),
                message: "All services running.".into(),
            },
        ];
        let v = serde_json::to_value(cluster_status(&row(), &[], &history, T0)).unwrap();
        assert_eq!(
            v["history"],
            json!([
                {"timestamp": format_ms(T0 + 10), "code": "CONCERNING", "message": "Health check unsuccessful."},
                {"timestamp": format_ms(T0), "code": "READY", "message": "All services running."},
            ])
        );
    }

    #[test]
    fn cluster_views_count_running_services_and_show_auto_repair() {
        let mut c = row();
        c.running_services = 3;
        c.auto_repair = false;
        let v = cluster(&c, None);
        assert_eq!(v["numRunningServices"], "3/7");
        assert_eq!(v["autoRepairEnabled"], false);
    }

    #[test]
    fn cluster_views_show_the_upgrade_fields() {
        let mut c = row();
        c.endpoint = Some("analytics.prod.example.com".into());
        c.components.insert("planner".into(), "2.1.1".into());
        c.replaces_id = Some(4);
        let v = cluster(&c, None);
        assert_eq!(v["endpoint"], "analytics.prod.example.com");
        assert_eq!(v["servesEndpoint"], true);
        assert_eq!(v["components"], json!({"planner": "2.1.1"}));
        assert_eq!(v["replacesId"], 4);
        assert_eq!(v["protectionAllowsUpgrade"], false);
    }

    #[test]
    fn runbook_steps_say_how_long_they_took() {
        use shared::store::{RunbookContext, RunbookKind, RunbookParams};
        let step = |seq, state: &str, started: Option<i64>, finished: Option<i64>| RunbookStep {
            seq,
            name: format!("step-{seq}"),
            arg: String::new(),
            state: state.into(),
            attempts: i64::from(started.is_some()),
            started_at: started,
            finished_at: finished,
            result: None,
            error: None,
        };
        let rb = RunbookRow {
            id: 9,
            kind: RunbookKind::Upgrade,
            cluster_id: 1,
            state: "RUNNING".into(),
            phase: "MAIN".into(),
            next_seq: 1,
            params: RunbookParams::default(),
            context: RunbookContext {
                switched_at: Some(T0),
                ..Default::default()
            },
            cancel_requested: false,
            error: None,
            lease_owner: None,
            lease_until: 0,
            wake_at: 0,
            version: 3,
            created_at: T0,
            updated_at: T0,
            steps: vec![
                step(0, "DONE", Some(T0), Some(T0 + 1_500)),
                step(1, "RUNNING", Some(T0 + 1_500), None),
                step(2, "PENDING", None, None),
            ],
        };
        let v = runbook(&rb, T0 + 4_000);
        assert_eq!(v["kind"], "UPGRADE");
        assert_eq!(v["wakeAt"], Value::Null);
        assert_eq!(v["context"]["switchedAt"], format_ms(T0));
        assert_eq!(v["steps"][0]["durationMs"], 1_500);
        assert_eq!(v["steps"][1]["durationMs"], 2_500);
        assert_eq!(v["steps"][2]["durationMs"], Value::Null);
        assert_eq!(v["steps"][0]["startedAt"], format_ms(T0));
    }
}
