//! Health in the API: `GET /v1/clusters/{id}/status` (docs/api.md, "Cluster
//! status"), `numRunningServices` in the cluster views, and `autoRepairEnabled`
//! on create and update. Probes and health codes are written the way the health
//! sweep writes them, through `Store::record_sweep`, on a cluster the reconciler
//! has (as far as the store knows) made READY.

use std::fmt;

use axum::http::Method;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Value};
use shared::domain::health::{Probe, ServiceHealth, ServiceState, SERVICES};
use shared::store::{HealthWrite, NodeUpdate, SweepWrite};
use shared::time::{format_ms, now_ms};

use crate::support::*;

/// The keys of a JSON object, in the order the text has them.
fn top_level_keys(text: &str) -> Vec<String> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    serde_json::Deserializer::from_str(text)
        .deserialize_map(Keys)
        .unwrap_or_else(|e| panic!("not a JSON object ({e}): {text}"))
}

/// `3h12m41s997ms`, `41s997ms` or `0ms`: units from hours down, leading zero
/// units left out.
fn assert_elapsed(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    let mut rest = s;
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        assert!(digits > 0, "{what}: {s:?} is not like 3h12m41s997ms");
        let unit: String = rest[digits..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        seen.push(unit.clone());
        rest = &rest[digits + unit.len()..];
    }
    let units = ["h", "m", "s", "ms"];
    let start = units.len().saturating_sub(seen.len());
    assert_eq!(seen, units[start..], "{what}: {s:?} is not like 3h12m41s997ms");
}

fn report(failing: Option<&str>) -> Probe {
    let mut blocked = false;
    Probe::Answered {
        services: SERVICES
            .iter()
            .map(|name| {
                let state = if blocked {
                    ServiceState::Unknown
                } else if Some(*name) == failing {
                    blocked = true;
                    ServiceState::Failed
                } else {
                    ServiceState::Running
                };
                ServiceHealth {
                    name: (*name).to_owned(),
                    state,
                    message: if state == ServiceState::Failed {
                        "exited with status 1".into()
                    } else {
                        String::new()
                    },
                }
            })
            .collect(),
    }
}

fn node(cluster_id: i64, instance_id: &str, launched_at: i64, probe: Option<Probe>) -> NodeUpdate {
    NodeUpdate {
        instance_id: instance_id.to_owned(),
        cluster_id,
        lifecycle_state: "InService".into(),
        availability_zone: format!("{REGION}a"),
        private_ip: Some("10.0.0.1".into()),
        launched_at,
        probe,
        unhealthy_since: None,
        repair_requested_at: None,
        action: None,
        joining_since: None,
    }
}

fn health(cluster_id: i64, code: &str, message: &str, running_services: i64) -> HealthWrite {
    HealthWrite {
        cluster_id,
        code: code.into(),
        message: message.into(),
        running_services,
    }
}

#[tokio::test]
async fn the_status_of_a_cluster_never_probed_has_the_original_dms_shape_and_no_nodes() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "fresh")).await;
        let before = now_ms();
        let reply = fx.send(Req::get(&format!("/v1/clusters/{id}/status"))).await;
        reply.assert_status(200);
        assert_eq!(
            top_level_keys(&reply.text),
            [
                "timestamp",
                "message",
                "elapsedTime",
                "code",
                "numRunningServices",
                "statusSince",
                "nodes",
                "history"
            ],
            "[{b}] {}",
            reply.text
        );
        let row = fx.cluster(id).await;
        assert_eq!(reply.str_at("/timestamp"), format_ms(row.updated_at), "[{b}]");
        assert_eq!(reply.str_at("/code"), "PROVISIONING", "[{b}]");
        assert_eq!(reply.str_at("/message"), row.status_message, "[{b}]");
        assert_elapsed(reply.at("/elapsedTime"), "elapsedTime");
        assert!(
            before - row.status_since < 60_000,
            "[{b}] status_since {} is not recent",
            row.status_since
        );
        assert_eq!(reply.str_at("/numRunningServices"), "0/7", "[{b}]");
        assert_eq!(reply.at("/nodes"), &json!([]), "[{b}]");
        assert_eq!(reply.at("/history"), &json!([]), "[{b}]");

        // Nodes the reconciler found but no agent was asked about yet.
        fx.mark_cluster_ready(id, &["i-0a", "i-0b"]).await;
        let reply = fx.send(Req::get(&format!("/v1/clusters/{id}/status"))).await;
        reply.assert_status(200);
        assert_eq!(reply.str_at("/code"), "READY", "[{b}]");
        for (i, instance) in ["i-0a", "i-0b"].into_iter().enumerate() {
            let n = reply.at(&format!("/nodes/{i}"));
            let keys = top_level_keys(&n.to_string());
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(
                sorted,
                ["checkedAt", "index", "instanceId", "lifecycleState"],
                "[{b}] a node never probed has neither services nor error: {n}"
            );
            assert_eq!(n["index"], json!(i), "[{b}]");
            assert_eq!(n["instanceId"], instance, "[{b}]");
            assert_eq!(n["lifecycleState"], "InService", "[{b}]");
            assert_eq!(n["checkedAt"], Value::Null, "[{b}]");
        }
        assert_eq!(
            reply.at("/history/0"),
            &json!({
                "timestamp": format_ms(fx.cluster(id).await.status_since),
                "code": "READY",
                "message": "All 2 nodes in service."
            }),
            "[{b}]"
        );
    })
    .await;
}

#[tokio::test]
async fn the_status_shows_each_nodes_last_probe_and_the_history_newest_first() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let (_, id) = fx
            .create_cluster(&with(&cluster_body(env, "probed"), "numNodes", json!(3)))
            .await;
        // Launched in this order, listed in a different one: the index follows launch.
        fx.mark_cluster_ready(id, &["i-0c", "i-0a", "i-0b"]).await;
        let t = now_ms() + 1_000;
        let concerning =
            "Health check unsuccessful. Unable to reach planner on node 1 (i-0b). 1 more problem(s).";
        let mut unreachable = node(
            id,
            "i-0c",
            t - 3_000,
            Some(Probe::Failed {
                reason: "connection refused".into(),
            }),
        );
        unreachable.unhealthy_since = Some(t - 500);
        let write = SweepWrite {
            nodes: vec![
                node(id, "i-0a", t - 5_000, Some(report(None))),
                node(id, "i-0b", t - 4_000, Some(report(Some("planner")))),
                unreachable,
            ],
            health: vec![health(id, "CONCERNING", concerning, 3)],
            ..SweepWrite::default()
        };
        fx.store.record_sweep(t, &write).await.expect("record sweep");

        let path = format!("/v1/clusters/{id}/status");
        let reply = fx.send(Req::get(&path)).await;
        reply.assert_status(200);
        assert_eq!(reply.str_at("/timestamp"), format_ms(t), "[{b}]");
        assert_eq!(reply.str_at("/code"), "CONCERNING", "[{b}]");
        assert_eq!(reply.str_at("/message"), concerning, "[{b}]");
        assert_eq!(reply.str_at("/numRunningServices"), "3/7", "[{b}]");
        assert_elapsed(reply.at("/elapsedTime"), "elapsedTime");

        let nodes = reply.at("/nodes").as_array().expect("nodes").clone();
        let order: Vec<(&Value, &Value)> = nodes.iter().map(|n| (&n["index"], &n["instanceId"])).collect();
        assert_eq!(
            order,
            [
                (&json!(0), &json!("i-0a")),
                (&json!(1), &json!("i-0b")),
                (&json!(2), &json!("i-0c"))
            ],
            "[{b}]"
        );
        for n in &nodes {
            assert_eq!(n["checkedAt"], format_ms(t), "[{b}] {n}");
            assert_eq!(n["lifecycleState"], "InService", "[{b}] {n}");
        }
        let services = nodes[0]["services"].as_array().expect("services of node 0");
        let names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, SERVICES, "[{b}] in dependency order");
        assert!(services.iter().all(|s| s["state"] == "RUNNING"), "[{b}]");
        assert!(
            nodes[0].get("error").is_none() && nodes[0].get("unhealthySince").is_none(),
            "[{b}]"
        );
        assert_eq!(
            nodes[1]["services"][3],
            json!({"name": "planner", "state": "FAILED", "message": "exited with status 1"}),
            "[{b}]"
        );
        assert_eq!(nodes[1]["services"][4]["state"], "UNKNOWN", "[{b}]");
        assert_eq!(nodes[2]["error"], "connection refused", "[{b}]");
        assert!(nodes[2].get("services").is_none(), "[{b}]");
        assert_eq!(nodes[2]["unhealthySince"], format_ms(t - 500), "[{b}]");

        let ready_at = fx.store.status_history(id, 10).await.unwrap()[1].at;
        assert_eq!(
            reply.at("/history"),
            &json!([
                {"timestamp": format_ms(t), "code": "CONCERNING", "message": concerning},
                {"timestamp": format_ms(ready_at), "code": "READY", "message": "All 3 nodes in service."},
            ]),
            "[{b}]"
        );

        // The views of the cluster count the running services too.
        let got = fx.send(Req::get(&format!("/v1/clusters/{id}"))).await;
        assert_eq!(got.str_at("/numRunningServices"), "3/7", "[{b}]");
        let listed = fx.send(Req::get("/v1/clusters")).await;
        assert_eq!(listed.str_at("/clusters/0/numRunningServices"), "3/7", "[{b}]");

        // Only the ten latest changes are listed, newest first; a sweep that
        // changes nothing adds none, and the code's age counts from its change.
        for i in 1..=12 {
            let (code, message, running) = if i % 2 == 1 {
                ("READY", "All services running.", 7)
            } else {
                ("DEGRADED", "webui is not running on any node.", 5)
            };
            let at = t + i * 1_000;
            let write = SweepWrite {
                health: vec![health(id, code, message, running)],
                ..SweepWrite::default()
            };
            fx.store.record_sweep(at, &write).await.expect("record sweep");
        }
        let last = t + 12_000;
        fx.store
            .record_sweep(
                last + 1_000,
                &SweepWrite {
                    health: vec![health(id, "DEGRADED", "webui is not running on any node.", 5)],
                    ..SweepWrite::default()
                },
            )
            .await
            .expect("record sweep");
        let reply = fx.send(Req::get(&path)).await;
        assert_eq!(reply.str_at("/timestamp"), format_ms(last + 1_000), "[{b}]");
        assert_eq!(reply.str_at("/code"), "DEGRADED", "[{b}]");
        assert_eq!(reply.str_at("/numRunningServices"), "5/7", "[{b}]");
        assert_eq!(fx.cluster(id).await.status_since, last, "[{b}]");
        let history = reply.at("/history").as_array().expect("history");
        assert_eq!(history.len(), 10, "[{b}] {}", reply.text);
        let stamps: Vec<String> = history
            .iter()
            .map(|h| h["timestamp"].as_str().unwrap().to_owned())
            .collect();
        let want: Vec<String> = (3..=12).rev().map(|i| format_ms(t + i * 1_000)).collect();
        assert_eq!(stamps, want, "[{b}]");
        assert_eq!(history[0]["code"], "DEGRADED", "[{b}]");
        assert_eq!(history[1]["code"], "READY", "[{b}]");
    })
    .await;
}

#[tokio::test]
async fn a_viewer_may_read_the_status_and_sees_what_an_operator_sees() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "watched")).await;
        fx.mark_cluster_ready(id, &["i-0a"]).await;
        let path = format!("/v1/clusters/{id}/status");
        let as_viewer = fx.send(Req::get(&path).token(VIEWER)).await;
        as_viewer.assert_status(200);
        let as_operator = fx.send(Req::get(&path)).await;
        as_operator.assert_status(200);
        // Only the code's age moves between the two reads.
        let strip = |v: &Value| {
            let mut v = v.clone();
            v.as_object_mut().expect("an object").remove("elapsedTime");
            v
        };
        assert_eq!(strip(as_viewer.json()), strip(as_operator.json()), "[{b}]");
        fx.refused(
            Req::post(&path, &json!({})).token(VIEWER),
            403,
            "FORBIDDEN",
            None,
            &["viewer"],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn the_status_of_a_bad_or_unknown_id_is_refused_like_the_other_cluster_routes() {
    on_both_backends(|fx| async move {
        for raw in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
            fx.refused(
                Req::get(&format!("/v1/clusters/{raw}/status")),
                400,
                "INVALID_FIELD",
                Some("id"),
                &["id must be a positive whole number"],
            )
            .await;
        }
        fx.refused(
            Req::get("/v1/clusters/%FF/status"),
            400,
            "INVALID_FIELD",
            Some("id"),
            &["id"],
        )
        .await;
        fx.refused(
            Req::get("/v1/clusters/999/status"),
            404,
            "NOT_FOUND",
            None,
            &["cluster 999"],
        )
        .await;
        let reply = fx
            .refused(
                Req::new(Method::DELETE, "/v1/clusters/999/status"),
                405,
                "METHOD_NOT_ALLOWED",
                None,
                &["/v1/clusters/999/status"],
            )
            .await;
        let allow = reply.header("allow").unwrap_or_default();
        assert!(allow.contains("GET"), "[{}] Allow: {allow:?}", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn auto_repair_is_on_by_default_and_may_be_set_on_create_and_by_update() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let reply = fx
            .send(Req::post("/v1/clusters", &cluster_body(env, "repaired")))
            .await;
        reply.assert_status(202);
        assert_eq!(reply.at("/cluster/autoRepairEnabled"), &json!(true), "[{b}]");
        assert_eq!(reply.str_at("/cluster/numRunningServices"), "0/7", "[{b}]");
        let id = reply.i64_at("/cluster/id");

        let manual = with(&cluster_body(env, "manual"), "autoRepairEnabled", json!(false));
        let reply = fx.send(Req::post("/v1/clusters", &manual)).await;
        reply.assert_status(202);
        assert_eq!(reply.at("/cluster/autoRepairEnabled"), &json!(false), "[{b}]");
        let manual_id = reply.i64_at("/cluster/id");
        assert!(!fx.cluster(manual_id).await.auto_repair, "[{b}]");

        // An update of auto-repair alone changes nothing else.
        let path = format!("/v1/clusters/{id}");
        let reply = fx
            .send(Req::patch(&path, &json!({ "autoRepairEnabled": false })))
            .await;
        reply.assert_status(202);
        assert_eq!(reply.at("/cluster/autoRepairEnabled"), &json!(false), "[{b}]");
        let got = fx.send(Req::get(&path)).await;
        assert_eq!(got.at("/autoRepairEnabled"), &json!(false), "[{b}]");
        assert_eq!(got.i64_at("/numNodes"), 1, "[{b}]");
        assert_eq!(got.at("/terminationProtectionEnabled"), &json!(false), "[{b}]");
        let op = fx
            .send(Req::get(&format!(
                "/v1/operations/{}",
                reply.i64_at("/operationId")
            )))
            .await;
        assert_eq!(op.str_at("/kind"), "UPDATE_CLUSTER", "[{b}]");
        let audit = fx.store.audit_of(&format!("cluster/{id}")).await.unwrap();
        let last = audit.last().expect("an audit row");
        assert!(
            last.detail.contains("autoRepair true -> false"),
            "[{b}] {}",
            last.detail
        );

        fx.send(Req::patch(
            &path,
            &json!({ "autoRepairEnabled": true, "numNodes": 2 }),
        ))
        .await
        .assert_status(202);
        let got = fx.send(Req::get(&path)).await;
        assert_eq!(got.at("/autoRepairEnabled"), &json!(true), "[{b}]");
        assert_eq!(got.i64_at("/numNodes"), 2, "[{b}]");
        let listed = fx.send(Req::get("/v1/clusters")).await;
        let flags: Vec<(&Value, &Value)> = listed
            .at("/clusters")
            .as_array()
            .expect("clusters")
            .iter()
            .map(|c| (&c["id"], &c["autoRepairEnabled"]))
            .collect();
        assert_eq!(
            flags,
            [(&json!(id), &json!(true)), (&json!(manual_id), &json!(false))],
            "[{b}]"
        );
    })
    .await;
}

#[tokio::test]
async fn auto_repair_enabled_of_the_wrong_type_is_refused_naming_it() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "typed")).await;
        let base = cluster_body(env, "other");
        for bad in [json!("yes"), json!(1), json!([true]), json!({})] {
            fx.refused(
                Req::post("/v1/clusters", &with(&base, "autoRepairEnabled", bad.clone())),
                400,
                "INVALID_FIELD",
                Some("autoRepairEnabled"),
                &["autoRepairEnabled", "invalid type"],
            )
            .await;
            fx.refused(
                Req::patch(
                    &format!("/v1/clusters/{id}"),
                    &json!({ "autoRepairEnabled": bad }),
                ),
                400,
                "INVALID_FIELD",
                Some("autoRepairEnabled"),
                &["autoRepairEnabled", "invalid type"],
            )
            .await;
        }
        // A misspelling is an unknown field, not a silent default.
        fx.refused(
            Req::post("/v1/clusters", &with(&base, "autoRepair", json!(false))),
            400,
            "UNKNOWN_FIELD",
            Some("autoRepair"),
            &["autoRepair"],
        )
        .await;
    })
    .await;
}
