//! Accepted writes: `202` with the operation and the target, an operation and an
//! audit record naming the principal, one kick; and what the reads then show.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use shared::cloud::{CloudError, CloudErrorKind, CloudResult, Functions};
use shared::workflows::reconcile::Target;

use crate::support::*;

/// `YYYY-MM-DD HH:MM:SS.mmm`
fn assert_timestamp(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    let ok = s.len() == 23
        && s.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 | 16 => c == ':',
            19 => c == '.',
            _ => c.is_ascii_digit(),
        });
    assert!(ok, "{what} is not YYYY-MM-DD HH:MM:SS.mmm: {s:?}");
}

#[tokio::test]
async fn creating_an_environment_answers_202_with_its_operation_and_records_the_principal() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let mut body = environment_body("prod");
        body["adminCidr"] = json!("203.0.113.0/24");
        body["createSecurityGroup"] = json!(true);
        let reply = fx.send(Req::post("/v1/environments", &body)).await;
        reply.assert_status(202);
        let op = reply.i64_at("/operationId");
        let id = reply.i64_at("/environment/id");
        let env = reply.at("/environment").clone();
        assert_eq!(env["name"], "prod", "[{b}]");
        assert_eq!(env["region"], REGION, "[{b}]");
        assert_eq!(env["statusCode"], "PROVISIONING", "[{b}]");
        assert_eq!(env["adminCidr"], "203.0.113.0/24", "[{b}]");
        assert_eq!(env["createSecurityGroup"], true, "[{b}]");
        assert_eq!(
            fx.kicked(),
            [Target::Environment(id)],
            "[{b}] a write kicks the reconciler once, for its target"
        );

        let operation = fx.send(Req::get(&format!("/v1/operations/{op}"))).await;
        operation.assert_status(200);
        let operation = operation.json();
        assert_eq!(operation["id"], op, "[{b}]");
        assert_eq!(operation["kind"], "CREATE_ENVIRONMENT", "[{b}]");
        assert_eq!(operation["state"], "PENDING", "[{b}]");
        assert_eq!(operation["principal"], OPERATOR_NAME, "[{b}]");
        assert_eq!(operation["target"], format!("environment/{id}"), "[{b}]");
        assert_eq!(operation["steps"], json!([]), "[{b}]");
        assert_eq!(operation["error"], Value::Null, "[{b}]");

        let audit = fx.store.audit_of(&format!("environment/{id}")).await.unwrap();
        assert_eq!(audit.len(), 1, "[{b}] {audit:?}");
        assert_eq!(audit[0].principal, OPERATOR_NAME, "[{b}]");
        assert_eq!(audit[0].action, "CREATE_ENVIRONMENT", "[{b}]");
        assert!(audit[0].detail.contains("prod"), "[{b}] {:?}", audit[0]);

        let got = fx.send(Req::get(&format!("/v1/environments/{id}"))).await;
        got.assert_status(200);
        assert_eq!(got.json(), &env, "[{b}] GET shows what the 202 showed");
        let listed = fx.send(Req::get("/v1/environments")).await;
        listed.assert_status(200);
        assert_eq!(listed.json(), &json!({ "environments": [env] }), "[{b}]");
    })
    .await;
}

#[tokio::test]
async fn creating_a_cluster_answers_202_with_defaults_and_a_create_cluster_operation() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let kicks = fx.kicks();
        let body = with(&cluster_body(env, "analytics"), "tags", json!({ "team": "data" }));
        let reply = fx.send(Req::post("/v1/clusters", &body).token(OPERATOR2)).await;
        reply.assert_status(202);
        let op = reply.i64_at("/operationId");
        let cluster = reply.at("/cluster").clone();
        let id = reply.i64_at("/cluster/id");
        assert_eq!(fx.kicked()[kicks..], [Target::Cluster(id)], "[{b}]");
        for (key, want) in [
            ("name", json!("analytics")),
            ("environmentId", json!(env)),
            ("numNodes", json!(1)),
            ("type", json!("STANDALONE_CLUSTER")),
            ("instanceType", json!("t2.large")),
            ("storageGb", json!(40)),
            ("version", json!(DEFAULT_VERSION)),
            ("owner", json!(OPERATOR2_NAME)),
            ("description", json!("")),
            ("tags", json!({ "team": "data" })),
            ("terminationProtectionEnabled", json!(false)),
            ("autoRepairEnabled", json!(true)),
            ("numRunningServices", json!("0/7")),
            ("statusCode", json!("PROVISIONING")),
        ] {
            assert_eq!(cluster[key], want, "[{b}] cluster.{key}: {cluster}");
        }

        let operation = fx.send(Req::get(&format!("/v1/operations/{op}"))).await;
        assert_eq!(operation.str_at("/kind"), "CREATE_CLUSTER");
        assert_eq!(operation.str_at("/state"), "PENDING");
        assert_eq!(operation.str_at("/principal"), OPERATOR2_NAME);
        assert_eq!(operation.str_at("/target"), format!("cluster/{id}"));
        let audit = fx.store.audit_of(&format!("cluster/{id}")).await.unwrap();
        assert_eq!(audit.len(), 1, "[{b}] {audit:?}");
        assert_eq!(
            (audit[0].principal.as_str(), audit[0].action.as_str()),
            (OPERATOR2_NAME, "CREATE_CLUSTER")
        );

        let got = fx.send(Req::get(&format!("/v1/clusters/{id}"))).await;
        got.assert_status(200);
        assert_eq!(
            got.at("/nodes"),
            &json!([]),
            "[{b}] no nodes before the reconciler ran"
        );
        assert_eq!(got.at("/numRunningNodes"), &json!(0), "[{b}]");
        let listed = fx
            .send(Req::get(&format!("/v1/clusters?environmentId={env}")))
            .await;
        assert_eq!(listed.at("/clusters/0/id"), &json!(id), "[{b}] {}", listed.text);
        assert_eq!(listed.at("/clusters").as_array().map(Vec::len), Some(1), "[{b}]");
        let elsewhere = fx
            .send(Req::get(&format!("/v1/clusters?environmentId={}", env + 1)))
            .await;
        assert_eq!(elsewhere.json(), &json!({ "clusters": [] }), "[{b}]");
    })
    .await;
}

#[tokio::test]
async fn updating_a_cluster_answers_202_and_get_shows_the_new_size() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "growing")).await;
        let kicks = fx.kicks();
        let path = format!("/v1/clusters/{id}");
        let reply = fx.send(Req::patch(&path, &json!({ "numNodes": 3 }))).await;
        reply.assert_status(202);
        assert_eq!(reply.i64_at("/cluster/numNodes"), 3);
        assert_eq!(reply.str_at("/cluster/statusCode"), "UPDATING");
        assert_eq!(fx.kicked()[kicks..], [Target::Cluster(id)], "[{b}]");
        let op = fx
            .send(Req::get(&format!(
                "/v1/operations/{}",
                reply.i64_at("/operationId")
            )))
            .await;
        assert_eq!(
            (op.str_at("/kind"), op.str_at("/state")),
            ("UPDATE_CLUSTER", "PENDING"),
            "[{b}]"
        );
        assert_eq!(op.str_at("/principal"), OPERATOR_NAME);

        let got = fx.send(Req::get(&path)).await;
        got.assert_status(200);
        assert_eq!(got.i64_at("/numNodes"), 3, "[{b}]");
        assert_eq!(got.at("/terminationProtectionEnabled"), &json!(false), "[{b}]");

        // Only what the update names changes.
        fx.send(Req::patch(
            &path,
            &json!({ "terminationProtectionEnabled": true }),
        ))
        .await
        .assert_status(202);
        let got = fx.send(Req::get(&path)).await;
        assert_eq!(got.i64_at("/numNodes"), 3, "[{b}]");
        assert_eq!(got.at("/terminationProtectionEnabled"), &json!(true), "[{b}]");
        let audit = fx.store.audit_of(&format!("cluster/{id}")).await.unwrap();
        let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(
            actions,
            ["CREATE_CLUSTER", "UPDATE_CLUSTER", "UPDATE_CLUSTER"],
            "[{b}]"
        );
    })
    .await;
}

#[tokio::test]
async fn deleting_a_cluster_answers_202_and_marks_it_terminating() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "doomed")).await;
        let kicks = fx.kicks();
        let path = format!("/v1/clusters/{id}");
        let reply = fx.send(Req::delete(&path)).await;
        reply.assert_status(202);
        assert_eq!(reply.str_at("/cluster/statusCode"), "TERMINATING", "[{b}]");
        assert_eq!(fx.kicked()[kicks..], [Target::Cluster(id)], "[{b}]");
        let op = fx
            .send(Req::get(&format!(
                "/v1/operations/{}",
                reply.i64_at("/operationId")
            )))
            .await;
        assert_eq!(
            (op.str_at("/kind"), op.str_at("/state")),
            ("DELETE_CLUSTER", "PENDING"),
            "[{b}]"
        );
        assert_eq!(op.str_at("/target"), format!("cluster/{id}"));
        let got = fx.send(Req::get(&path)).await;
        assert_eq!(got.str_at("/statusCode"), "TERMINATING", "[{b}]");
        // Until the reconciler removed it, it is still listed.
        let listed = fx.send(Req::get("/v1/clusters")).await;
        assert_eq!(listed.at("/clusters/0/statusCode"), "TERMINATING", "[{b}]");
        // A terminating cluster can no longer be resized.
        fx.refused(
            Req::patch(&path, &json!({ "numNodes": 2 })),
            409,
            "CONFLICT",
            None,
            &["TERMINATING"],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn deleting_an_environment_is_refused_with_409_while_it_has_clusters() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        fx.create_cluster(&cluster_body(env, "resident")).await;
        fx.refused(
            Req::delete(&format!("/v1/environments/{env}")),
            409,
            "CONFLICT",
            None,
            &["1 cluster"],
        )
        .await;
        // An environment without clusters is deleted.
        let (_, empty) = fx.create_environment("empty").await;
        let kicks = fx.kicks();
        let reply = fx.send(Req::delete(&format!("/v1/environments/{empty}"))).await;
        reply.assert_status(202);
        assert_eq!(fx.kicked()[kicks..], [Target::Environment(empty)], "[{b}]");
        assert_eq!(reply.str_at("/environment/statusCode"), "DELETING", "[{b}]");
        let op = fx
            .send(Req::get(&format!(
                "/v1/operations/{}",
                reply.i64_at("/operationId")
            )))
            .await;
        assert_eq!(op.str_at("/kind"), "DELETE_ENVIRONMENT", "[{b}]");
    })
    .await;
}

#[tokio::test]
async fn the_status_route_answers_running_and_service_available() {
    on_both_backends(|fx| async move {
        for token in [OPERATOR, VIEWER] {
            let reply = fx.send(Req::get("/v1/status").token(token)).await;
            reply.assert_status(200);
            assert_eq!(
                reply.json(),
                &json!({
                    "status": "Running",
                    "message": "Service available",
                    "version": env!("CARGO_PKG_VERSION"),
                    "region": REGION,
                    "role": "SINGLE",
                    "activeRegion": null,
                    "epoch": null,
                    "roleMessage": "region us-west-2 is the only DM region",
                }),
                "[{}]",
                fx.backend
            );
        }
    })
    .await;
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// The objects of docs/api.md, field by field. `nodes` is only in
/// `GET /v1/clusters/{id}`; every other field is in every view of a cluster.
/// Every difference is collected, then reported at once.
#[tokio::test]
async fn environments_clusters_and_operations_have_the_documented_fields() {
    on_both_backends(|fx| async move {
        let environment = set(&[
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
        ]);
        let cluster = set(&[
            "id",
            "name",
            "description",
            "type",
            "environmentId",
            "numNodes",
            "instanceType",
            "storageGb",
            "version",
            "owner",
            "tags",
            "terminationProtectionEnabled",
            "statusCode",
            "statusMessage",
            "numRunningNodes",
            "numRunningServices",
            "autoRepairEnabled",
            "protectionAllowsUpgrade",
            "endpoint",
            "servesEndpoint",
            "components",
            "replacesId",
            "parked",
            "partnerId",
            "drillId",
            "resources",
            "createdAt",
            "updatedAt",
        ]);
        let resources = set(&["autoScalingGroup", "launchTemplate", "configUri"]);
        let operation = set(&[
            "id",
            "kind",
            "target",
            "state",
            "steps",
            "error",
            "result",
            "principal",
            "createdAt",
            "updatedAt",
        ]);

        let env = fx.ready_environment().await;
        let created = fx
            .send(Req::post("/v1/clusters", &cluster_body(env, "shaped")))
            .await;
        created.assert_status(202);
        let id = created.i64_at("/cluster/id");
        let op = created.i64_at("/operationId");
        let env_created = fx
            .send(Req::post("/v1/environments", &environment_body("second")))
            .await;
        env_created.assert_status(202);
        let got_env = fx.send(Req::get(&format!("/v1/environments/{env}"))).await;
        let listed_envs = fx.send(Req::get("/v1/environments")).await;
        let listed = fx.send(Req::get("/v1/clusters")).await;
        let single = fx.send(Req::get(&format!("/v1/clusters/{id}"))).await;
        let got_op = fx.send(Req::get(&format!("/v1/operations/{op}"))).await;
        let mut with_nodes = cluster.clone();
        with_nodes.insert("nodes".into());

        let mut differences = Vec::new();
        let mut check = |what: &str, view: &Value, want: &BTreeSet<String>| {
            let have = keys(view);
            let missing: Vec<&String> = want.difference(&have).collect();
            let extra: Vec<&String> = have.difference(want).collect();
            if !missing.is_empty() || !extra.is_empty() {
                differences.push(format!("{what}: missing {missing:?}, not documented {extra:?}"));
            }
        };
        check(
            "the 202 of POST /v1/clusters",
            created.json(),
            &set(&["operationId", "cluster"]),
        );
        check(
            "the 202 of POST /v1/environments",
            env_created.json(),
            &set(&["operationId", "environment"]),
        );
        check(
            "the environment in the 202 of POST /v1/environments",
            env_created.at("/environment"),
            &environment,
        );
        check("GET /v1/environments/{id}", got_env.json(), &environment);
        check(
            "the environment in GET /v1/environments",
            listed_envs.at("/environments/0"),
            &environment,
        );
        for (what, view, want) in [
            (
                "the cluster in the 202 of POST /v1/clusters",
                created.at("/cluster"),
                &cluster,
            ),
            (
                "the cluster in GET /v1/clusters",
                listed.at("/clusters/0"),
                &cluster,
            ),
            ("GET /v1/clusters/{id}", single.json(), &with_nodes),
        ] {
            check(what, view, want);
            check(&format!("resources of {what}"), &view["resources"], &resources);
        }
        check("GET /v1/operations/{id}", got_op.json(), &operation);
        assert!(
            differences.is_empty(),
            "[{}] views differ from docs/api.md:\n{}",
            fx.backend,
            differences.join("\n")
        );

        for (what, v) in [
            ("environment", got_env.json()),
            ("cluster", single.json()),
            ("operation", got_op.json()),
        ] {
            assert_timestamp(&v["createdAt"], &format!("{what}.createdAt"));
            assert_timestamp(&v["updatedAt"], &format!("{what}.updatedAt"));
        }
        assert_eq!(got_env.str_at("/statusCode"), "READY");
    })
    .await;
}

/// Stands in for AWS Lambda: records every asynchronous invoke, and fails them
/// all when `fail` is set.
struct Invokes {
    seen: Mutex<Vec<(String, Vec<u8>)>>,
    fail: bool,
}

impl Functions for Invokes {
    fn invoke_async(&self, function: &str, payload: Vec<u8>) -> impl Future<Output = CloudResult<()>> + Send {
        self.seen
            .lock()
            .expect("invokes")
            .push((function.to_owned(), payload));
        let result = if self.fail {
            Err(CloudError {
                op: "Invoke",
                kind: CloudErrorKind::Transient,
                code: "ServiceUnavailable".into(),
                message: "injected by the test".into(),
                source: None,
            })
        } else {
            Ok(())
        };
        async move { result }
    }
}

/// In Lambda a write wakes the reconciler function with an asynchronous invoke of
/// the target's event (`api::wake_by_invoke`). The event must be one the
/// reconciler parses into that target, and a lost wake-up must not fail the write.
#[tokio::test]
async fn a_write_wakes_the_reconciler_with_an_event_it_parses_and_a_lost_wake_up_does_not_fail_it() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        for fail in [false, true] {
            let invokes = Arc::new(Invokes {
                seen: Mutex::new(Vec::new()),
                fail,
            });
            let state = api::AppState {
                kick: api::wake_by_invoke(invokes.clone(), "okera-dm-reconciler".into()),
                ..fx.state.clone()
            };
            let name = format!("woken-{fail}");
            let created = fx
                .send_to(
                    state.clone(),
                    "POST /v1/clusters".into(),
                    Req::post("/v1/clusters", &cluster_body(env, &name)).build(),
                )
                .await;
            created.assert_status(202);
            let id = created.i64_at("/cluster/id");
            let resized = fx
                .send_to(
                    state.clone(),
                    "PATCH".into(),
                    Req::patch(&format!("/v1/clusters/{id}"), &json!({ "numNodes": 2 })).build(),
                )
                .await;
            resized.assert_status(202);
            let env_name = format!("woken-env-{fail}");
            let env_created = fx
                .send_to(
                    state.clone(),
                    "POST /v1/environments".into(),
                    Req::post("/v1/environments", &environment_body(&env_name)).build(),
                )
                .await;
            env_created.assert_status(202);
            let new_env = env_created.i64_at("/environment/id");
            // A replay wakes nothing.
            let key = format!("wake-key-{fail}");
            let replayed = Req::post("/v1/environments", &environment_body(&format!("{env_name}-2")))
                .idempotency_key(&key);
            fx.send_to(state.clone(), "POST".into(), replayed.clone().build())
                .await
                .assert_status(202);
            let again = fx.send_to(state.clone(), "POST".into(), replayed.build()).await;
            assert_eq!(again.header("idempotent-replayed"), Some("true"), "[{b}]");
            let replayed_env = again.i64_at("/environment/id");

            let seen = invokes.seen.lock().expect("invokes").clone();
            let targets: Vec<reconciler::Request> = seen
                .iter()
                .map(|(function, payload)| {
                    assert_eq!(function, "okera-dm-reconciler", "[{b}]");
                    let event: Value = serde_json::from_slice(payload).expect("the wake-up is JSON");
                    reconciler::parse_event(&event)
                        .unwrap_or_else(|e| panic!("[{b}] the reconciler refuses {event}: {e}"))
                })
                .collect();
            assert_eq!(
                targets,
                [
                    reconciler::Request::One(Target::Cluster(id)),
                    reconciler::Request::One(Target::Cluster(id)),
                    reconciler::Request::One(Target::Environment(new_env)),
                    reconciler::Request::One(Target::Environment(replayed_env)),
                ],
                "[{b}] fail={fail}"
            );
            assert_eq!(fx.cluster(id).await.num_nodes, 2, "[{b}] fail={fail}");
        }
    })
    .await;
}
