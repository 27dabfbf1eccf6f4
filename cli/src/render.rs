//! Human views of the API's JSON: left-aligned tables headed by the JSON field
//! names (as the original `ocadm` printed them), `key: value` views of one
//! resource, the one-line progress of an operation, and error messages. Every
//! function here returns a `String` and does no I/O, so it is tested directly.

use serde_json::Value;

use crate::client::ApiError;

/// One JSON value as a table cell or a view's value: strings without quotes,
/// lists joined with commas, maps as `k=v` sorted by key, and `-` for null,
/// missing or empty.
pub fn text(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(map) => {
            let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
            pairs.sort_by_key(|(k, _)| *k);
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(",")
        }
        other => other.to_string(),
    };
    if s.is_empty() {
        "-".to_owned()
    } else {
        s
    }
}

/// Left-aligned columns, each as wide as its widest cell, two spaces apart; the
/// last column is not padded, so a long status message is printed in full.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table of JSON objects, one row each, one column per field.
pub fn table_of(items: &[Value], fields: &[&str]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| fields.iter().map(|f| text(&item[*f])).collect())
        .collect();
    table(fields, &rows)
}

fn key_values(v: &Value, fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!("{f}: {}\n", text(&v[*f])))
        .collect()
}

fn indent(block: &str) -> String {
    block.lines().map(|l| format!("  {l}\n")).collect()
}

/// `GET /v1/status` as `Service available. Status: Running`.
pub fn status_line(v: &Value) -> String {
    let message = text(&v["message"]);
    format!(
        "{}. Status: {}",
        message.trim_end_matches('.'),
        text(&v["status"])
    )
}

/// The region's role, under the status line, when the DM runs in several
/// regions (nothing for one).
pub fn role_line(v: &Value) -> String {
    match v["role"].as_str() {
        None | Some("SINGLE") => String::new(),
        Some(role) => format!(
            "Region {}: {role}. {}\n",
            text(&v["region"]),
            text(&v["roleMessage"])
        ),
    }
}

pub const ENVIRONMENT_COLUMNS: &[&str] = &["id", "name", "region", "vpcId", "statusCode", "statusMessage"];

pub const CLUSTER_COLUMNS: &[&str] = &[
    "id",
    "name",
    "type",
    "numNodes",
    "numRunningServices",
    "owner",
    "statusCode",
    "statusMessage",
];

pub fn environment(v: &Value) -> String {
    key_values(
        v,
        &[
            "id",
            "name",
            "region",
            "vpcId",
            "subnetIds",
            "vpcCidr",
            "adminCidr",
            "createSecurityGroup",
            "securityGroupId",
            "failoverPartnerId",
            "failoverRole",
            "warmStandbyNodes",
            "servesPair",
            "statusCode",
            "statusMessage",
            "createdAt",
            "updatedAt",
        ],
    )
}

pub fn cluster(v: &Value) -> String {
    let mut out = key_values(
        v,
        &[
            "id",
            "name",
            "description",
            "type",
            "environmentId",
            "numNodes",
            "numRunningNodes",
            "numRunningServices",
            "instanceType",
            "storageGb",
            "version",
        ],
    );
    // Per-service versions and the replaced cluster, only when there are any.
    if v["components"].as_object().is_some_and(|c| !c.is_empty()) {
        out.push_str(&key_values(v, &["components"]));
    }
    out.push_str(&key_values(v, &["endpoint"]));
    if !v["replacesId"].is_null() {
        out.push_str(&key_values(v, &["replacesId", "servesEndpoint"]));
    }
    // A failover partner, a parked standby or a drill's copy says so.
    if !v["partnerId"].is_null() || v["parked"] == true {
        out.push_str(&key_values(v, &["partnerId", "parked"]));
    }
    if !v["drillId"].is_null() {
        out.push_str(&key_values(v, &["drillId"]));
    }
    out.push_str(&key_values(
        v,
        &[
            "owner",
            "tags",
            "terminationProtectionEnabled",
            "protectionAllowsUpgrade",
            "autoRepairEnabled",
            "statusCode",
            "statusMessage",
            "createdAt",
            "updatedAt",
        ],
    ));
    match v["resources"].as_object() {
        Some(resources) if !resources.is_empty() => {
            out.push_str("resources:\n");
            for (k, r) in resources {
                out.push_str(&format!("  {k}: {}\n", text(r)));
            }
        }
        _ => out.push_str("resources: -\n"),
    }
    match v["nodes"].as_array() {
        Some(nodes) if !nodes.is_empty() => {
            out.push_str("nodes:\n");
            out.push_str(&indent(&table_of(
                nodes,
                &["instanceId", "state", "availabilityZone"],
            )));
        }
        _ => out.push_str("nodes: -\n"),
    }
    out
}

/// `ocadm clusters status`: the health of `cluster` (its view) from `status`
/// (`GET /v1/clusters/{id}/status`), in a few lines and a table of its nodes.
pub fn cluster_status(cluster: &Value, status: &Value) -> String {
    let code = text(&status["code"]);
    let nodes = status["nodes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let in_service = nodes
        .iter()
        .filter(|n| n["lifecycleState"] == "InService")
        .count();
    let mut out = format!(
        "Cluster {} ({}): {code}\n{}\n",
        text(&cluster["id"]),
        text(&cluster["name"]),
        text(&status["message"])
    );
    out.push_str(&format!(
        "Services: {} running; {in_service} of {} nodes in service; {code} for {} (since {})\n",
        text(&status["numRunningServices"]),
        text(&cluster["numNodes"]),
        text(&status["elapsedTime"]),
        text(&status["statusSince"]),
    ));
    if nodes.is_empty() {
        out.push_str("No nodes.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                text(&n["index"]),
                text(&n["instanceId"]),
                text(&n["lifecycleState"]),
                node_services(n),
            ]
        })
        .collect();
    out.push_str(&table(&["NODE", "INSTANCE", "STATE", "SERVICES"], &rows));
    out
}

/// A node's services in one cell: `7/7 running`, the first service that is not
/// running and its state (`planner FAILED`), why its agent could not be asked,
/// or `not checked yet`.
fn node_services(node: &Value) -> String {
    if let Some(services) = node["services"].as_array() {
        let running = services.iter().filter(|s| s["state"] == "RUNNING").count();
        return match services.iter().find(|s| s["state"] != "RUNNING") {
            None => format!("{running}/{} running", services.len()),
            Some(s) => format!("{} {}", text(&s["name"]), text(&s["state"])),
        };
    }
    match node["error"].as_str() {
        Some(e) => format!("error: {e}"),
        None => "not checked yet".to_owned(),
    }
}

pub fn operation(v: &Value) -> String {
    let mut out = key_values(v, &["id", "kind", "target", "state"]);
    out.push_str(&format!(
        "error: {}\n",
        error_text(&v["error"]).unwrap_or_else(|| "-".to_owned())
    ));
    // Only operations that produce something have a result (a diagnostics bundle).
    if let Some(result) = v["result"].as_str() {
        out.push_str(&format!("result: {result}\n"));
    }
    out.push_str(&key_values(v, &["principal", "createdAt", "updatedAt"]));
    if v["runbook"].is_object() {
        out.push_str(&runbook(&v["runbook"]));
        return out;
    }
    match v["steps"].as_array() {
        Some(steps) if !steps.is_empty() => {
            out.push_str("steps:\n");
            out.push_str(&indent(&table_of(steps, &["name", "state", "message"])));
        }
        _ => out.push_str("steps: -\n"),
    }
    out
}

/// The runbook of an operation: where it is, then its steps one per line with
/// their state, attempts, duration and result (or error).
fn runbook(rb: &Value) -> String {
    let mut head = format!(
        "runbook: {}, phase {}, {}",
        text(&rb["kind"]),
        text(&rb["phase"]),
        text(&rb["state"])
    );
    if rb["cancelRequested"] == true {
        head.push_str(", cancel requested");
    }
    if let Some(at) = rb["wakeAt"].as_str() {
        head.push_str(&format!(", next look at {at}"));
    }
    let mut out = format!("{head}\n");
    let steps = rb["steps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if steps.is_empty() {
        out.push_str("steps: -\n");
        return out;
    }
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                text(&s["seq"]),
                step_label(s),
                text(&s["state"]),
                text(&s["attempts"]),
                s["durationMs"].as_i64().map_or_else(|| "-".to_owned(), duration),
                step_outcome(s).unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    out.push_str("steps:\n");
    out.push_str(&indent(&table(
        &["#", "step", "state", "attempts", "duration", "result"],
        &rows,
    )));
    out
}

/// A runbook step's name with its argument: `restart-node i-0123`.
fn step_label(s: &Value) -> String {
    match s["arg"].as_str().filter(|a| !a.is_empty()) {
        Some(arg) => format!("{} {arg}", text(&s["name"])),
        None => text(&s["name"]),
    }
}

/// What a runbook step ended with (or says while it runs): `error: ...` or its result.
fn step_outcome(s: &Value) -> Option<String> {
    if let Some(e) = s["error"].as_str().filter(|e| !e.is_empty()) {
        return Some(format!("error: {e}"));
    }
    s["result"].as_str().filter(|r| !r.is_empty()).map(str::to_owned)
}

/// Milliseconds for people: `850ms`, `4.2s`, `3m07s`, `1h02m`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{}.{}s", s, (ms % 1000) / 100)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

pub const OPERATION_COLUMNS: &[&str] = &["id", "kind", "target", "state", "step", "updatedAt"];

/// `ocadm operations list`: one operation per line, with the step it is at.
pub fn operation_list(ops: &[Value]) -> String {
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|o| {
            vec![
                text(&o["id"]),
                text(&o["kind"]),
                text(&o["target"]),
                text(&o["state"]),
                current_step(o).map_or_else(|| "-".to_owned(), |s| text(&s["name"])),
                text(&o["updatedAt"]),
            ]
        })
        .collect();
    table(OPERATION_COLUMNS, &rows)
}

/// The step an unfinished operation is at: the running one, else the first
/// pending one.
fn current_step(op: &Value) -> Option<&Value> {
    if !matches!(op["state"].as_str(), Some("PENDING" | "RUNNING")) {
        return None;
    }
    let steps = steps(op);
    steps
        .iter()
        .find(|s| s["state"] == "RUNNING")
        .or_else(|| steps.iter().find(|s| s["state"] == "PENDING"))
}

/// The progress of `--wait`: a bar for a runbook, else [`progress_line`].
pub fn progress(op: &Value) -> String {
    if op["runbook"].is_object() {
        progress_bar(op)
    } else {
        progress_line(op)
    }
}

const BAR: usize = 10;

/// `[#####-----] 3/7 switch-endpoint 12: 3 of 3 nodes answer`: the runbook's
/// steps done (or skipped) out of all of them, then the step it is at with what
/// it last said; the operation's state once it ended.
pub fn progress_bar(op: &Value) -> String {
    let rb = &op["runbook"];
    let steps = rb["steps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let done = steps
        .iter()
        .filter(|s| s["state"] == "DONE" || s["state"] == "SKIPPED")
        .count();
    let total = steps.len();
    let filled = (done * BAR).checked_div(total).unwrap_or(0);
    let mut line = format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(BAR - filled)
    );
    let state = op["state"].as_str().unwrap_or_default();
    let current = steps
        .iter()
        .find(|s| s["state"] == "RUNNING")
        .or_else(|| steps.iter().find(|s| s["state"] == "PENDING"));
    match current {
        Some(step) if matches!(state, "PENDING" | "RUNNING") => {
            line.push(' ');
            line.push_str(&step_label(step));
            if let Some(said) = step_outcome(step) {
                line.push_str(": ");
                line.push_str(&said);
            }
        }
        _ => {
            line.push(' ');
            line.push_str(&text(&op["state"]));
        }
    }
    if rb["cancelRequested"] == true && matches!(state, "PENDING" | "RUNNING") {
        line.push_str(" (cancelling)");
    }
    line
}

/// An operation's `error`, whichever JSON shape the server gives it.
pub fn error_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => match o.get("message").and_then(Value::as_str) {
            Some(m) => Some(m.to_owned()),
            None => Some(v.to_string()),
        },
        other => Some(other.to_string()),
    }
}

/// Why an operation failed (or was cancelled): its `error`, else the message of
/// its failed step.
pub fn failure_reason(op: &Value) -> String {
    error_text(&op["error"])
        .or_else(|| {
            steps(op)
                .iter()
                .find(|s| s["state"] == "FAILED")
                .map(|s| format!("{}: {}", text(&s["name"]), text(&s["message"])))
        })
        .unwrap_or_else(|| "the server recorded no reason".to_owned())
}

fn steps(op: &Value) -> &[Value] {
    op["steps"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// `operation 12 RUNNING [2/5] auto scaling group: 2 of 3 nodes in service`:
/// the steps done out of all steps, then the running step (or else the first
/// one not done) with its message.
pub fn progress_line(op: &Value) -> String {
    let steps = steps(op);
    let done = steps.iter().filter(|s| s["state"] == "DONE").count();
    let mut line = format!(
        "operation {} {} [{done}/{}]",
        text(&op["id"]),
        text(&op["state"]),
        steps.len()
    );
    let current = steps
        .iter()
        .find(|s| s["state"] == "RUNNING")
        .or_else(|| steps.iter().find(|s| s["state"] != "DONE"));
    if let Some(step) = current {
        line.push(' ');
        line.push_str(&text(&step["name"]));
        if let Some(m) = step["message"].as_str().filter(|m| !m.is_empty()) {
            line.push_str(": ");
            line.push_str(m);
        }
    }
    line
}

/// `Cluster 3 accepted; operation 12 is PENDING.`
pub fn accepted_line(subject: &str, operation_id: u64, state: Option<&str>) -> String {
    match state {
        Some(state) => format!("{subject} accepted; operation {operation_id} is {state}."),
        None => format!("{subject} accepted as operation {operation_id}."),
    }
}

pub fn follow_hint(operation_id: u64) -> String {
    format!("Follow it with: ocadm operations get {operation_id} --wait")
}

/// How ocadm authenticated the request that failed, for [`api_error`]'s hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthHint {
    /// A bearer token was sent.
    Token,
    /// No token: none was given.
    NoToken,
    /// A SigV4 signature with AWS credentials.
    SigV4,
}

/// An error answer for stderr: the message and status, the field at fault, and
/// a hint when authentication is the likely cause.
pub fn api_error(e: &ApiError, auth: AuthHint) -> String {
    let mut out = format!("error: {e}");
    if let Some(field) = &e.field {
        out.push_str(&format!("\nfield: {field}"));
    }
    match (e.status, auth) {
        (401, AuthHint::NoToken) => {
            out.push_str("\nhint: pass --token or set OCADM_TOKEN (`dm-local up` prints one)")
        }
        (401 | 403, AuthHint::SigV4) => out.push_str(
            "\nhint: ocadm signed this request with SigV4 as the caller of your AWS credentials \
             (aws sts get-caller-identity shows who); the DM gives IAM principals their roles in \
             OKERA_IAM_ROLES, and API Gateway lets through only callers allowed execute-api:Invoke",
        ),
        (403, _) => out.push_str(
            "\nhint: reads need a viewer token, writes an operator token, and failovers, drills \
             and the default version an admin token",
        ),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(state: &str, steps: Value) -> Value {
        json!({"id": 12, "kind": "CREATE_CLUSTER", "target": "cluster/3", "state": state,
               "steps": steps, "error": null, "principal": "operator",
               "createdAt": "2026-11-25 12:00:00.000", "updatedAt": "2026-11-25 12:00:01.250"})
    }

    #[test]
    fn cells() {
        assert_eq!(text(&json!(null)), "-");
        assert_eq!(text(&json!("")), "-");
        assert_eq!(text(&json!(3)), "3");
        assert_eq!(text(&json!(false)), "false");
        assert_eq!(text(&json!(["subnet-1", "subnet-2"])), "subnet-1,subnet-2");
        assert_eq!(
            text(&json!({"team": "data", "env": "prod"})),
            "env=prod,team=data"
        );
        assert_eq!(text(&json!({})), "-");
    }

    #[test]
    fn table_pads_all_but_the_last_column() {
        let rows = vec![
            vec!["1".into(), "analytics".into(), "All 3 nodes in service.".into()],
            vec!["12".into(), "a".into(), "-".into()],
        ];
        assert_eq!(
            table(&["id", "name", "statusMessage"], &rows),
            "id  name       statusMessage\n\
             1   analytics  All 3 nodes in service.\n\
             12  a          -\n"
        );
    }

    #[test]
    fn empty_table_has_its_header() {
        assert_eq!(table_of(&[], &["id", "name"]), "id  name\n");
    }

    #[test]
    fn cluster_list() {
        let clusters = [
            json!({"id": 1, "name": "analytics", "type": "STANDALONE_CLUSTER",
            "numNodes": 3, "numRunningServices": "7/7", "owner": "operator", "statusCode": "READY",
            "statusMessage": "All services running."}),
            json!({"id": 2, "name": "bi", "type": "CATALOG_CLUSTER",
            "numNodes": 1, "numRunningServices": "0/7", "owner": "operator", "statusCode": "PROVISIONING",
            "statusMessage": "Waiting for the reconciler."}),
        ];
        assert_eq!(
            table_of(&clusters, CLUSTER_COLUMNS),
            "id  name       type                numNodes  numRunningServices  owner     statusCode    statusMessage\n\
             1   analytics  STANDALONE_CLUSTER  3         7/7                 operator  READY         All services running.\n\
             2   bi         CATALOG_CLUSTER     1         0/7                 operator  PROVISIONING  Waiting for the reconciler.\n"
        );
    }

    fn services(failing: Option<(usize, &str)>) -> Value {
        let names = [
            "canary",
            "zookeeper",
            "catalog",
            "planner",
            "worker",
            "rest-server",
            "webui",
        ];
        let states: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let state = match failing {
                    Some((at, state)) if i == at => state,
                    Some((at, _)) if i > at => "UNKNOWN",
                    _ => "RUNNING",
                };
                json!({"name": name, "state": state, "message": ""})
            })
            .collect();
        Value::Array(states)
    }

    #[test]
    fn cluster_status_summary() {
        let cluster = json!({"id": 1, "name": "analytics", "numNodes": 4});
        let status = json!({
            "timestamp": "2019-01-29 18:31:35.485",
            "message": "Health check unsuccessful. Unable to reach planner on node 1 (i-0b). 2 more problem(s).",
            "elapsedTime": "3h12m41s997ms",
            "code": "CONCERNING",
            "numRunningServices": "3/7",
            "statusSince": "2019-01-29 15:18:53.488",
            "nodes": [
                {"index": 0, "instanceId": "i-0a", "lifecycleState": "InService",
                 "checkedAt": "2019-01-29 18:31:35.100", "services": services(None)},
                {"index": 1, "instanceId": "i-0b", "lifecycleState": "InService",
                 "checkedAt": "2019-01-29 18:31:35.100", "services": services(Some((3, "FAILED"))),
                 "unhealthySince": "2019-01-29 18:30:00.000"},
                {"index": 2, "instanceId": "i-0c", "lifecycleState": "InService",
                 "checkedAt": "2019-01-29 18:31:35.100", "error": "timed out after 2s"},
                {"index": 3, "instanceId": "i-0d", "lifecycleState": "Pending:Wait", "checkedAt": null}
            ],
            "history": []
        });
        assert_eq!(
            cluster_status(&cluster, &status),
            "Cluster 1 (analytics): CONCERNING\n\
             Health check unsuccessful. Unable to reach planner on node 1 (i-0b). 2 more problem(s).\n\
             Services: 3/7 running; 3 of 4 nodes in service; CONCERNING for 3h12m41s997ms (since 2019-01-29 15:18:53.488)\n\
             NODE  INSTANCE  STATE         SERVICES\n\
             0     i-0a      InService     7/7 running\n\
             1     i-0b      InService     planner FAILED\n\
             2     i-0c      InService     error: timed out after 2s\n\
             3     i-0d      Pending:Wait  not checked yet\n"
        );
    }

    #[test]
    fn cluster_status_of_a_cluster_without_nodes() {
        let cluster = json!({"id": 7, "name": "fresh", "numNodes": 3});
        let status = json!({"timestamp": "2026-11-25 12:00:00.000", "message": "Waiting for the reconciler.",
            "elapsedTime": "41s997ms", "code": "PROVISIONING", "numRunningServices": "0/7",
            "statusSince": "2026-11-25 11:59:18.003", "nodes": [], "history": []});
        assert_eq!(
            cluster_status(&cluster, &status),
            "Cluster 7 (fresh): PROVISIONING\n\
             Waiting for the reconciler.\n\
             Services: 0/7 running; 0 of 3 nodes in service; PROVISIONING for 41s997ms (since 2026-11-25 11:59:18.003)\n\
             No nodes.\n"
        );
        let starting = json!({"services": services(Some((0, "STARTING")))});
        assert_eq!(node_services(&starting), "canary STARTING");
    }

    #[test]
    fn cluster_view() {
        let c = json!({"id": 1, "name": "analytics", "description": "", "type": "STANDALONE_CLUSTER",
            "environmentId": 1, "numNodes": 3, "instanceType": "t2.large", "storageGb": 40,
            "version": "2.0.0", "owner": "operator", "tags": {"team": "data"},
            "terminationProtectionEnabled": false, "autoRepairEnabled": true, "statusCode": "READY",
            "statusMessage": "All services running.", "numRunningNodes": 3, "numRunningServices": "7/7",
            "resources": {"autoScalingGroup": "okera-1-analytics"},
            "nodes": [{"instanceId": "i-0123", "state": "InService", "availabilityZone": "us-west-2a"}],
            "createdAt": "2026-11-25 12:00:00.000", "updatedAt": "2026-11-25 12:00:01.250"});
        let view = cluster(&c);
        assert!(view.starts_with("id: 1\nname: analytics\ndescription: -\n"));
        assert!(view.contains("tags: team=data\n"));
        assert!(view.contains("numRunningServices: 7/7\n"));
        assert!(view.contains("autoRepairEnabled: true\n"));
        assert!(view.contains("resources:\n  autoScalingGroup: okera-1-analytics\n"));
        assert!(view.ends_with(
            "nodes:\n  instanceId  state      availabilityZone\n  i-0123      InService  us-west-2a\n"
        ));
    }

    #[test]
    fn operation_view() {
        let o = op(
            "FAILED",
            json!([{"name": "launch template", "state": "DONE", "message": "okera-1-analytics"},
                   {"name": "auto scaling group", "state": "FAILED", "message": null}]),
        );
        let view = operation(&o);
        assert!(
            view.starts_with("id: 12\nkind: CREATE_CLUSTER\ntarget: cluster/3\nstate: FAILED\nerror: -\n")
        );
        assert!(view.ends_with(
            "steps:\n  name                state   message\n  launch template     DONE    okera-1-analytics\n  auto scaling group  FAILED  -\n"
        ));
        assert_eq!(failure_reason(&o), "auto scaling group: -");
    }

    #[test]
    fn operation_errors_of_any_shape() {
        assert_eq!(error_text(&json!(null)), None);
        assert_eq!(error_text(&json!("boom")).as_deref(), Some("boom"));
        assert_eq!(
            error_text(&json!({"code": "X", "message": "boom"})).as_deref(),
            Some("boom")
        );
        let mut o = op("FAILED", json!([]));
        assert_eq!(failure_reason(&o), "the server recorded no reason");
        o["error"] = json!("quota exceeded");
        assert_eq!(failure_reason(&o), "quota exceeded");
    }

    #[test]
    fn progress() {
        let steps = json!([
            {"name": "launch template", "state": "DONE", "message": "okera-1-analytics"},
            {"name": "config", "state": "DONE", "message": ""},
            {"name": "auto scaling group", "state": "RUNNING", "message": "2 of 3 nodes in service"},
            {"name": "nodes", "state": "PENDING", "message": null},
            {"name": "done", "state": "PENDING"}
        ]);
        assert_eq!(
            progress_line(&op("RUNNING", steps)),
            "operation 12 RUNNING [2/5] auto scaling group: 2 of 3 nodes in service"
        );
        assert_eq!(
            progress_line(&op("PENDING", json!([]))),
            "operation 12 PENDING [0/0]"
        );
        let pending = json!([{"name": "launch template", "state": "PENDING", "message": ""}]);
        assert_eq!(
            progress_line(&op("PENDING", pending)),
            "operation 12 PENDING [0/1] launch template"
        );
        let all_done = json!([{"name": "a", "state": "DONE"}, {"name": "b", "state": "DONE"}]);
        assert_eq!(
            progress_line(&op("SUCCEEDED", all_done)),
            "operation 12 SUCCEEDED [2/2]"
        );
    }

    #[test]
    fn status_and_accepted() {
        let s = json!({"status": "Running", "message": "Service available", "version": "0.1.0"});
        assert_eq!(status_line(&s), "Service available. Status: Running");
        let s = json!({"status": "Running", "message": "Service available.", "version": "0.1.0"});
        assert_eq!(status_line(&s), "Service available. Status: Running");
        assert_eq!(
            accepted_line("Cluster 3", 12, Some("PENDING")),
            "Cluster 3 accepted; operation 12 is PENDING."
        );
        assert_eq!(follow_hint(12), "Follow it with: ocadm operations get 12 --wait");
    }

    #[test]
    fn error_rendering() {
        let e = ApiError::from_body(
            400,
            r#"{"error": {"code": "INVALID_FIELD", "field": "numNodes", "message": "numNodes must be between 1 and 100, got 0"}}"#,
        );
        assert_eq!(
            api_error(&e, AuthHint::Token),
            "error: numNodes must be between 1 and 100, got 0 (HTTP 400)\nfield: numNodes"
        );
        let e = ApiError::from_body(
            409,
            r#"{"error": {"code": "CONFLICT", "message": "cluster 3 is protected"}}"#,
        );
        assert_eq!(
            api_error(&e, AuthHint::SigV4),
            "error: cluster 3 is protected (HTTP 409)"
        );
        let e = ApiError::from_body(
            401,
            r#"{"error": {"code": "UNAUTHENTICATED", "message": "no token"}}"#,
        );
        assert!(api_error(&e, AuthHint::NoToken)
            .ends_with("hint: pass --token or set OCADM_TOKEN (`dm-local up` prints one)"));
        assert_eq!(api_error(&e, AuthHint::Token), "error: no token (HTTP 401)");
        assert!(api_error(&e, AuthHint::SigV4).contains("OKERA_IAM_ROLES"));
        let e = ApiError::from_body(
            403,
            r#"{"error": {"code": "FORBIDDEN", "message": "olivia has the operator role"}}"#,
        );
        assert!(api_error(&e, AuthHint::Token).ends_with(
            "hint: reads need a viewer token, writes an operator token, and failovers, drills \
             and the default version an admin token"
        ));
        assert!(api_error(&e, AuthHint::SigV4).contains("execute-api:Invoke"));
    }

    fn runbook_op(state: &str, cancel: bool) -> Value {
        let mut o = op(state, json!([]));
        o["kind"] = json!("UPGRADE_CLUSTER");
        o["runbook"] = json!({
            "kind": "UPGRADE", "state": "RUNNING", "phase": "MAIN", "cancelRequested": cancel,
            "wakeAt": null, "params": {}, "context": {},
            "steps": [
                {"seq": 0, "name": "build-replacement", "arg": "", "state": "DONE", "attempts": 1,
                 "durationMs": 1500, "result": "cluster 7", "error": null},
                {"seq": 1, "name": "wait-ready", "arg": "7", "state": "DONE", "attempts": 3,
                 "durationMs": 187_000, "result": "READY", "error": null},
                {"seq": 2, "name": "switch-endpoint", "arg": "7", "state": "RUNNING", "attempts": 2,
                 "durationMs": 850, "result": null, "error": "Route 53 throttled"},
                {"seq": 3, "name": "rollback-window", "arg": "", "state": "PENDING", "attempts": 0,
                 "durationMs": null, "result": null, "error": null}
            ]
        });
        o
    }

    #[test]
    fn runbook_operations_show_their_steps_one_per_line() {
        let view = operation(&runbook_op("RUNNING", true));
        assert!(view.starts_with("id: 12\nkind: UPGRADE_CLUSTER\n"), "{view}");
        assert!(
            view.ends_with(
                "runbook: UPGRADE, phase MAIN, RUNNING, cancel requested\n\
                 steps:\n\
                 \x20 #  step               state    attempts  duration  result\n\
                 \x20 0  build-replacement  DONE     1         1.5s      cluster 7\n\
                 \x20 1  wait-ready 7       DONE     3         3m07s     READY\n\
                 \x20 2  switch-endpoint 7  RUNNING  2         850ms     error: Route 53 throttled\n\
                 \x20 3  rollback-window    PENDING  0         -         -\n"
            ),
            "{view}"
        );
    }

    #[test]
    fn runbook_progress_is_a_bar() {
        assert_eq!(
            super::progress(&runbook_op("RUNNING", false)),
            "[#####-----] 2/4 switch-endpoint 7: error: Route 53 throttled"
        );
        assert_eq!(
            super::progress(&runbook_op("RUNNING", true)),
            "[#####-----] 2/4 switch-endpoint 7: error: Route 53 throttled (cancelling)"
        );
        let mut done = runbook_op("SUCCEEDED", false);
        for s in done["runbook"]["steps"].as_array_mut().unwrap() {
            s["state"] = json!("DONE");
        }
        assert_eq!(super::progress(&done), "[##########] 4/4 SUCCEEDED");
        let cancelled = runbook_op("CANCELLED", true);
        assert_eq!(super::progress(&cancelled), "[#####-----] 2/4 CANCELLED");
        // Not a runbook: the line of the other operations.
        assert!(super::progress(&op("RUNNING", json!([]))).starts_with("operation 12 RUNNING"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(999), "999ms");
        assert_eq!(duration(4_250), "4.2s");
        assert_eq!(duration(187_000), "3m07s");
        assert_eq!(duration(3_720_000), "1h02m");
    }

    #[test]
    fn operation_lists_show_the_current_step() {
        let running = op(
            "RUNNING",
            json!([{"name": "build-replacement", "state": "DONE", "message": "cluster 7"},
                   {"name": "wait-ready 7", "state": "RUNNING", "message": "1 of 3"}]),
        );
        let mut done = op(
            "SUCCEEDED",
            json!([{"name": "a", "state": "DONE", "message": ""}]),
        );
        done["id"] = json!(11);
        done["kind"] = json!("RESTART_CLUSTER");
        assert_eq!(
            operation_list(&[running, done]),
            "id  kind             target     state      step          updatedAt\n\
             12  CREATE_CLUSTER   cluster/3  RUNNING    wait-ready 7  2026-11-25 12:00:01.250\n\
             11  RESTART_CLUSTER  cluster/3  SUCCEEDED  -             2026-11-25 12:00:01.250\n"
        );
    }

    #[test]
    fn cluster_view_shows_the_endpoint_and_upgrade_fields() {
        let mut c = json!({"id": 8, "name": "analytics", "version": "2.1.0", "endpoint": null,
            "components": {}, "replacesId": null, "servesEndpoint": true,
            "protectionAllowsUpgrade": false, "resources": {}, "nodes": []});
        let view = cluster(&c);
        assert!(view.contains("version: 2.1.0\nendpoint: -\nowner: -\n"), "{view}");
        assert!(view.contains("protectionAllowsUpgrade: false\n"), "{view}");
        assert!(
            !view.contains("components") && !view.contains("replacesId"),
            "{view}"
        );
        c["endpoint"] = json!("analytics.prod.example.com");
        c["components"] = json!({"planner": "2.1.1"});
        c["replacesId"] = json!(3);
        c["servesEndpoint"] = json!(false);
        let view = cluster(&c);
        assert!(
            view.contains(
                "version: 2.1.0\ncomponents: planner=2.1.1\nendpoint: analytics.prod.example.com\n\
                 replacesId: 3\nservesEndpoint: false\n"
            ),
            "{view}"
        );
    }
}
