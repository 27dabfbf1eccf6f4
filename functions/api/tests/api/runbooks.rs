//! The runbook routes: upgrade, rollback and restart of a cluster, cancel and
//! listing of operations, and the default version. Bad input is refused with the
//! field at fault and nothing written; the conflicts of docs/api.md are 409s; a
//! runbook write wakes the runbook runner once, and the operation then shows its
//! runbook's steps.

use axum::http::Method;
use serde_json::{json, Value};

use crate::support::*;

fn upgrade(id: i64) -> String {
    format!("/v1/clusters/{id}/upgrade")
}

fn restart(id: i64) -> String {
    format!("/v1/clusters/{id}/restart")
}

fn rollback(id: i64) -> String {
    format!("/v1/clusters/{id}/rollback")
}

fn cancel(op: i64) -> String {
    format!("/v1/operations/{op}/cancel")
}

/// A cluster of one node, marked READY as the reconciler would.
async fn ready_cluster(fx: &Fixture, name: &str, extra: &[(&str, Value)]) -> i64 {
    let env = fx.ready_environment().await;
    let mut body = cluster_body(env, name);
    for (k, v) in extra {
        body[*k] = v.clone();
    }
    let (_, id) = fx.create_cluster(&body).await;
    fx.mark_cluster_ready(id, &[&format!("i-{name}")]).await;
    id
}

#[tokio::test]
async fn bad_runbook_requests_name_the_field_and_write_nothing() {
    on_both_backends(|fx| async move {
        let id = ready_cluster(&fx, "bad-input", &[]).await;
        let v = |extra: Value| {
            let mut body = json!({ "version": "2.1.0" });
            for (k, v) in extra.as_object().expect("an object") {
                body[k] = v.clone();
            }
            body
        };
        let cases = [
            (v(json!({ "bogus": 1 })), "UNKNOWN_FIELD", "bogus"),
            (json!({}), "MISSING_FIELD", "version"),
            (v(json!({ "version": "2.1 beta" })), "INVALID_FIELD", "version"),
            (v(json!({ "version": "" })), "INVALID_FIELD", "version"),
            (
                v(json!({ "components": { "nosuch": "2.1.1" } })),
                "INVALID_FIELD",
                "components",
            ),
            (
                v(json!({ "components": { "planner": "a b" } })),
                "INVALID_FIELD",
                "components",
            ),
            (
                v(json!({ "readyTimeoutSeconds": 5 })),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
            ),
            (
                v(json!({ "readyTimeoutSeconds": "600" })),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
            ),
            (
                v(json!({ "rollbackWindowSeconds": -1 })),
                "INVALID_FIELD",
                "rollbackWindowSeconds",
            ),
            (
                v(json!({ "rollbackWindowSeconds": 8 * 24 * 3600 })),
                "INVALID_FIELD",
                "rollbackWindowSeconds",
            ),
            (v(json!({ "force": "yes" })), "INVALID_FIELD", "force"),
        ];
        for (body, code, field) in cases {
            // The message names the field, or the bad service it holds.
            let mention = if body["components"]["nosuch"].is_string() {
                "nosuch"
            } else if body["components"]["planner"].is_string() {
                "planner"
            } else {
                field
            };
            fx.refused(Req::post(&upgrade(id), &body), 400, code, Some(field), &[mention])
                .await;
        }
        fx.refused(
            Req::post("/v1/clusters/abc/upgrade", &v(json!({}))),
            400,
            "INVALID_FIELD",
            Some("id"),
            &["id"],
        )
        .await;
        fx.refused(
            Req::post(&restart(id), &json!({ "service": "plannr" })),
            400,
            "INVALID_FIELD",
            Some("service"),
            &["plannr"],
        )
        .await;
        fx.refused(
            Req::post(&restart(id), &json!({ "nodes": 1 })),
            400,
            "UNKNOWN_FIELD",
            Some("nodes"),
            &["nodes"],
        )
        .await;
        fx.refused(
            Req::post(&rollback(id), &json!({ "force": true })),
            400,
            "UNKNOWN_FIELD",
            Some("force"),
            &["force"],
        )
        .await;
        fx.refused(
            Req::new(Method::POST, &rollback(id)).raw("[]"),
            400,
            "MALFORMED_JSON",
            None,
            &[],
        )
        .await;
        fx.refused(
            Req::new(Method::POST, &restart(id))
                .content_type(Some("text/plain"))
                .raw("service=planner"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            None,
            &[],
        )
        .await;
        fx.refused(
            Req::post(&cancel(1), &json!({ "why": "no" })),
            400,
            "UNKNOWN_FIELD",
            Some("why"),
            &["why"],
        )
        .await;
        fx.refused(
            Req::put(
                "/v1/settings/default-version",
                &json!({ "version": "two point one" }),
            ),
            400,
            "INVALID_FIELD",
            Some("version"),
            &["version"],
        )
        .await;
        fx.refused(
            Req::put(
                "/v1/settings/default-version",
                &json!({ "version": "2.1.0", "pin": true }),
            ),
            400,
            "UNKNOWN_FIELD",
            Some("pin"),
            &["pin"],
        )
        .await;
        fx.refused(
            Req::put("/v1/settings/default-version", &json!({})),
            400,
            "MISSING_FIELD",
            Some("version"),
            &["version"],
        )
        .await;
        let queries = [
            ("state=DONE", "INVALID_FIELD", "state"),
            ("state=running", "INVALID_FIELD", "state"),
            ("limit=0", "INVALID_FIELD", "limit"),
            ("limit=201", "INVALID_FIELD", "limit"),
            ("limit=ten", "INVALID_FIELD", "limit"),
            ("clusterId=0", "INVALID_FIELD", "clusterId"),
            ("clusterId=x", "INVALID_FIELD", "clusterId"),
            ("cluster=1", "UNKNOWN_FIELD", "cluster"),
        ];
        for (query, code, field) in queries {
            fx.refused(
                Req::get(&format!("/v1/operations?{query}")),
                400,
                code,
                Some(field),
                &[field],
            )
            .await;
        }
        let version = fx.send(Req::get("/v1/settings/default-version")).await;
        version.assert_status(200);
        assert_eq!(
            version.json(),
            &json!({ "version": DEFAULT_VERSION }),
            "[{}] a refused PUT left the default version",
            fx.backend
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_targets_are_404_and_viewers_cannot_write() {
    on_both_backends(|fx| async move {
        let id = ready_cluster(&fx, "targets", &[]).await;
        for req in [
            Req::post(&upgrade(999), &json!({ "version": "2.1.0" })),
            Req::post(&restart(999), &json!({})),
            Req::post(&rollback(999), &json!({})),
            Req::post(&cancel(999), &json!({})),
        ] {
            fx.refused(req, 404, "NOT_FOUND", None, &["999"]).await;
        }
        fx.refused(Req::get("/v1/operations/999"), 404, "NOT_FOUND", None, &["999"])
            .await;
        for req in [
            Req::post(&upgrade(id), &json!({ "version": "2.1.0" })),
            Req::post(&restart(id), &json!({})),
            Req::post(&rollback(id), &json!({})),
            Req::post(&cancel(1), &json!({})),
            Req::put("/v1/settings/default-version", &json!({ "version": "2.1.0" })),
        ] {
            fx.refused(req.token(VIEWER), 403, "FORBIDDEN", None, &[VIEWER_NAME])
                .await;
        }
        // Viewers may read.
        fx.send(Req::get("/v1/operations").token(VIEWER))
            .await
            .assert_status(200);
        fx.send(Req::get("/v1/settings/default-version").token(VIEWER))
            .await
            .assert_status(200);
    })
    .await;
}

#[tokio::test]
async fn an_upgrade_is_accepted_once_and_its_operation_shows_the_runbook() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "upgraded")).await;

        // PROVISIONING: refused unless forced.
        fx.refused(
            Req::post(&upgrade(id), &json!({ "version": "2.1.0" })),
            409,
            "CONFLICT",
            None,
            &["PROVISIONING", "READY", "--force"],
        )
        .await;
        fx.mark_cluster_ready(id, &["i-upgraded"]).await;
        // The same version: nothing to do, unless forced.
        fx.refused(
            Req::post(&upgrade(id), &json!({ "version": DEFAULT_VERSION })),
            409,
            "CONFLICT",
            None,
            &[DEFAULT_VERSION],
        )
        .await;
        // Nothing to roll back yet.
        fx.refused(
            Req::post(&rollback(id), &json!({})),
            409,
            "CONFLICT",
            None,
            &["no upgrade"],
        )
        .await;

        let kicks = fx.kicks();
        let body = json!({ "version": "2.1.0", "components": { "planner": "2.1.1" },
                           "readyTimeoutSeconds": 600, "rollbackWindowSeconds": 0 });
        let reply = fx
            .send(Req::post(&upgrade(id), &body).idempotency_key("upgrade-1"))
            .await;
        reply.assert_status(202);
        let op = reply.i64_at("/operationId");
        assert_eq!(reply.i64_at("/cluster/id"), id, "[{b}]");
        assert_eq!(fx.runbooks_woken(), [op], "[{b}] the runner is woken once");
        assert_eq!(
            fx.kicks(),
            kicks,
            "[{b}] the runner, not the reconciler, starts an upgrade"
        );

        // The same key and body: the same operation, no second wake-up.
        let again = fx
            .send(Req::post(&upgrade(id), &body).idempotency_key("upgrade-1"))
            .await;
        again.assert_status(202);
        assert_eq!(again.i64_at("/operationId"), op, "[{b}]");
        assert_eq!(again.header("Idempotent-Replayed"), Some("true"), "[{b}]");
        assert_eq!(fx.runbooks_woken(), [op], "[{b}]");

        // A second upgrade (or a restart) while it runs: 409.
        fx.refused(
            Req::post(&upgrade(id), &json!({ "version": "2.2.0" })),
            409,
            "CONFLICT",
            None,
            &[&op.to_string()],
        )
        .await;
        fx.refused(
            Req::post(&restart(id), &json!({})),
            409,
            "CONFLICT",
            None,
            &[&op.to_string()],
        )
        .await;

        let got = fx.send(Req::get(&format!("/v1/operations/{op}"))).await;
        got.assert_status(200);
        assert_eq!(got.str_at("/kind"), "UPGRADE_CLUSTER", "[{b}]");
        assert_eq!(got.str_at("/target"), format!("cluster/{id}"), "[{b}]");
        assert_eq!(got.str_at("/runbook/kind"), "UPGRADE", "[{b}]");
        assert_eq!(got.str_at("/runbook/state"), "RUNNING", "[{b}]");
        assert_eq!(got.str_at("/runbook/phase"), "MAIN", "[{b}]");
        assert_eq!(got.at("/runbook/cancelRequested"), &json!(false), "[{b}]");
        assert_eq!(got.str_at("/runbook/params/version"), "2.1.0", "[{b}]");
        assert_eq!(
            got.at("/runbook/params/components"),
            &json!({ "planner": "2.1.1" }),
            "[{b}]"
        );
        assert_eq!(got.i64_at("/runbook/params/readyTimeoutMs"), 600_000, "[{b}]");
        assert_eq!(got.i64_at("/runbook/params/rollbackWindowMs"), 0, "[{b}]");
        let steps = got.at("/runbook/steps").as_array().expect("steps").clone();
        assert!(!steps.is_empty(), "[{b}] {}", got.text);
        assert_eq!(
            steps.len(),
            got.at("/steps").as_array().expect("operation steps").len(),
            "[{b}] the operation's steps mirror the runbook's"
        );
        for (i, s) in steps.iter().enumerate() {
            assert_eq!(s["seq"], json!(i), "[{b}] {s}");
            assert_eq!(s["state"], "PENDING", "[{b}] {s}");
            assert_eq!(s["durationMs"], Value::Null, "[{b}] {s}");
            assert_eq!(s["attempts"], 0, "[{b}] {s}");
        }

        // A plain operation has no runbook.
        let (create, _) = fx.create_cluster(&cluster_body(env, "plain")).await;
        let plain = fx.send(Req::get(&format!("/v1/operations/{create}"))).await;
        plain.assert_status(200);
        assert!(plain.json().get("runbook").is_none(), "[{b}] {}", plain.text);

        // Listing: newest first, by cluster and state.
        let all = fx.send(Req::get("/v1/operations")).await;
        all.assert_status(200);
        let ids: Vec<i64> = all
            .at("/operations")
            .as_array()
            .expect("operations")
            .iter()
            .map(|o| o["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(ids.first(), Some(&create), "[{b}] newest first: {ids:?}");
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "[{b}] {ids:?}");
        assert!(ids.contains(&op), "[{b}] {ids:?}");
        let limited = fx.send(Req::get("/v1/operations?limit=1")).await;
        assert_eq!(
            limited.at("/operations").as_array().map(Vec::len),
            Some(1),
            "[{b}]"
        );
        let ids_of = |reply: &Reply| -> Vec<i64> {
            reply
                .at("/operations")
                .as_array()
                .expect("operations")
                .iter()
                .map(|o| o["id"].as_i64().expect("id"))
                .collect()
        };
        let mine = fx.send(Req::get(&format!("/v1/operations?clusterId={id}"))).await;
        mine.assert_status(200);
        assert!(ids_of(&mine).contains(&op), "[{b}] {}", mine.text);
        assert!(
            !ids_of(&mine).contains(&create),
            "[{b}] another cluster's: {}",
            mine.text
        );
        // Its steps have not started: the operation is PENDING.
        let pending = fx
            .send(Req::get(&format!("/v1/operations?clusterId={id}&state=PENDING")))
            .await;
        assert!(ids_of(&pending).contains(&op), "[{b}] {}", pending.text);
        for state in ["RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"] {
            let other = fx
                .send(Req::get(&format!("/v1/operations?clusterId={id}&state={state}")))
                .await;
            other.assert_status(200);
            assert!(!ids_of(&other).contains(&op), "[{b}] {state}: {}", other.text);
        }

        // Cancel: 202 with the operation; the runner is woken to stop it.
        let cancelled = fx.send(Req::post(&cancel(op), &json!({}))).await;
        cancelled.assert_status(202);
        assert_eq!(cancelled.i64_at("/operationId"), op, "[{b}]");
        assert_eq!(cancelled.i64_at("/operation/id"), op, "[{b}]");
        assert_eq!(fx.runbooks_woken(), [op, op], "[{b}]");
        let got = fx.send(Req::get(&format!("/v1/operations/{op}"))).await;
        assert_eq!(got.at("/runbook/cancelRequested"), &json!(true), "[{b}]");
        // A plain operation is no runbook to cancel.
        fx.refused(
            Req::post(&cancel(create), &json!({})),
            404,
            "NOT_FOUND",
            None,
            &[],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_forced_upgrade_passes_a_cluster_that_is_not_ready() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "forced")).await;
        let reply = fx
            .send(Req::post(
                &upgrade(id),
                &json!({ "version": "2.1.0", "force": true }),
            ))
            .await;
        reply.assert_status(202);
        let op = reply.i64_at("/operationId");
        assert_eq!(fx.runbooks_woken(), [op], "[{}]", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn a_protected_cluster_is_upgraded_only_once_its_protection_allows_it() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let id = ready_cluster(&fx, "guarded", &[("terminationProtectionEnabled", json!(true))]).await;
        assert_eq!(
            fx.send(Req::get(&format!("/v1/clusters/{id}")))
                .await
                .at("/protectionAllowsUpgrade"),
            &json!(false),
            "[{b}]"
        );
        fx.refused(
            Req::post(&upgrade(id), &json!({ "version": "2.1.0" })),
            409,
            "CONFLICT",
            None,
            &["protect", "protectionAllowsUpgrade"],
        )
        .await;
        let patched = fx
            .send(Req::patch(
                &format!("/v1/clusters/{id}"),
                &json!({ "protectionAllowsUpgrade": true }),
            ))
            .await;
        patched.assert_status(202);
        assert_eq!(
            patched.at("/cluster/protectionAllowsUpgrade"),
            &json!(true),
            "[{b}]"
        );
        fx.mark_cluster_ready(id, &["i-guarded"]).await;
        let reply = fx
            .send(Req::post(&upgrade(id), &json!({ "version": "2.1.0" })))
            .await;
        reply.assert_status(202);
        let got = fx.send(Req::get(&format!("/v1/clusters/{id}"))).await;
        got.assert_status(200);
        for key in ["endpoint", "servesEndpoint", "components", "replacesId"] {
            assert!(got.json().get(key).is_some(), "[{b}] no {key}: {}", got.text);
        }
        assert_eq!(got.at("/servesEndpoint"), &json!(true), "[{b}]");
        assert_eq!(got.at("/replacesId"), &Value::Null, "[{b}]");
    })
    .await;
}

#[tokio::test]
async fn a_restart_is_accepted_with_or_without_a_body() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let id = ready_cluster(&fx, "restarted", &[]).await;
        // No body at all.
        let reply = fx.send(Req::new(Method::POST, &restart(id))).await;
        reply.assert_status(202);
        let op = reply.i64_at("/operationId");
        let got = fx.send(Req::get(&format!("/v1/operations/{op}"))).await;
        assert_eq!(got.str_at("/kind"), "RESTART_CLUSTER", "[{b}]");
        assert_eq!(got.str_at("/runbook/kind"), "RESTART", "[{b}]");
        assert_eq!(got.at("/runbook/params/service"), &Value::Null, "[{b}]");
        let cancelled = fx.send(Req::new(Method::POST, &cancel(op))).await;
        cancelled.assert_status(202);

        let other = ready_cluster(&fx, "restarted-one", &[]).await;
        let reply = fx
            .send(Req::post(&restart(other), &json!({ "service": "planner" })))
            .await;
        reply.assert_status(202);
        let op2 = reply.i64_at("/operationId");
        let got = fx.send(Req::get(&format!("/v1/operations/{op2}"))).await;
        assert_eq!(got.str_at("/runbook/params/service"), "planner", "[{b}]");
        assert_eq!(fx.runbooks_woken(), [op, op, op2], "[{b}]");
    })
    .await;
}

#[tokio::test]
async fn the_default_version_is_what_new_clusters_get() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let got = fx.send(Req::get("/v1/settings/default-version")).await;
        got.assert_status(200);
        assert_eq!(got.json(), &json!({ "version": DEFAULT_VERSION }), "[{b}]");
        let set = fx
            .send(Req::put(
                "/v1/settings/default-version",
                &json!({ "version": "2.1.0" }),
            ))
            .await;
        set.assert_status(200);
        assert_eq!(set.json(), &json!({ "version": "2.1.0" }), "[{b}]");
        let got = fx.send(Req::get("/v1/settings/default-version")).await;
        assert_eq!(got.json(), &json!({ "version": "2.1.0" }), "[{b}]");

        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "defaulted")).await;
        assert_eq!(fx.cluster(id).await.odas_version, "2.1.0", "[{b}]");
        let mut pinned = cluster_body(env, "pinned");
        pinned["version"] = json!("2.0.5");
        let (_, id) = fx.create_cluster(&pinned).await;
        assert_eq!(fx.cluster(id).await.odas_version, "2.0.5", "[{b}]");
    })
    .await;
}
