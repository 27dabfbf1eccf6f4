//! Bearer tokens (the default mode): every request needs `Authorization: Bearer
//! <token>`; a viewer may only read, an operator may also write, and only an admin
//! may fail over, start a drill or set the default version. IAM mode is `iam.rs`.

use axum::http::Method;
use serde_json::json;

use crate::support::*;

/// Requests that would succeed (or at least get past authentication) with the
/// operator's token.
fn some_requests() -> Vec<Req> {
    vec![
        Req::get("/v1/status"),
        Req::get("/v1/environments"),
        Req::get("/v1/clusters?environmentId=1"),
        Req::get("/v1/nowhere"),
        Req::post("/v1/environments", &environment_body("prod")),
        Req::post("/v1/clusters", &cluster_body(1, "analytics")),
        Req::patch("/v1/clusters/1", &json!({ "numNodes": 2 })),
        Req::delete("/v1/clusters/1"),
        Req::delete("/v1/environments/1"),
    ]
}

#[tokio::test]
async fn a_request_without_an_authorization_header_is_refused_with_401_on_get_and_post() {
    on_both_backends(|fx| async move {
        for req in some_requests() {
            fx.refused(
                req.authorization(None),
                401,
                "UNAUTHENTICATED",
                None,
                &["bearer token"],
            )
            .await;
        }
        // The same requests with the token get past authentication.
        fx.send(Req::get("/v1/status")).await.assert_status(200);
        fx.send(Req::post("/v1/environments", &environment_body("prod")))
            .await
            .assert_status(202);
    })
    .await;
}

#[tokio::test]
async fn an_unknown_token_or_an_empty_bearer_token_is_refused_with_401() {
    on_both_backends(|fx| async move {
        let bare_operator_token = OPERATOR.to_owned();
        let misspelt = format!("Bearer {OPERATOR}x");
        let cases: Vec<(&str, &[&str])> = vec![
            ("Bearer not-a-token", &["not known"]),
            (&misspelt, &["not known"]),
            ("Bearer ", &["bearer token"]),
            ("Bearer      ", &["bearer token"]),
            ("Bearer", &["bearer token"]),
            ("", &["bearer token"]),
            (&bare_operator_token, &["bearer token"]),
            ("Basic b2xpdmlhOnB3", &["bearer token"]),
        ];
        for (header, mentions) in cases {
            for req in some_requests() {
                fx.refused(
                    req.authorization(Some(header)),
                    401,
                    "UNAUTHENTICATED",
                    None,
                    mentions,
                )
                .await;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_viewer_token_is_refused_with_403_on_every_write_but_may_read_every_get_route() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let (op, cluster) = fx.create_cluster(&cluster_body(env, "watched")).await;
        let (_, idle_env) = fx.create_environment("idle").await;

        let writes = vec![
            Req::post("/v1/environments", &environment_body("viewer-env")),
            Req::post("/v1/clusters", &cluster_body(env, "viewer-cluster")),
            Req::patch(&format!("/v1/clusters/{cluster}"), &json!({ "numNodes": 3 })),
            Req::patch(
                &format!("/v1/clusters/{cluster}"),
                &json!({ "terminationProtectionEnabled": true }),
            ),
            Req::delete(&format!("/v1/clusters/{cluster}")),
            Req::delete(&format!("/v1/environments/{idle_env}")),
            Req::new(Method::PUT, &format!("/v1/clusters/{cluster}")).json(&json!({ "numNodes": 3 })),
            Req::post("/v1/clusters", &cluster_body(env, "viewer-cluster")).idempotency_key("viewer-key"),
        ];
        for req in writes {
            fx.refused(
                req.token(VIEWER),
                403,
                "FORBIDDEN",
                None,
                &[VIEWER_NAME, "viewer", "operator"],
            )
            .await;
        }

        let reads = [
            "/v1/status".to_owned(),
            "/v1/environments".to_owned(),
            format!("/v1/environments/{env}"),
            "/v1/clusters".to_owned(),
            format!("/v1/clusters?environmentId={env}"),
            format!("/v1/clusters/{cluster}"),
            format!("/v1/operations/{op}"),
        ];
        for path in reads {
            let as_viewer = fx.send(Req::get(&path).token(VIEWER)).await;
            as_viewer.assert_status(200);
            // The viewer sees what the operator sees.
            let as_operator = fx.send(Req::get(&path)).await;
            assert_eq!(
                as_viewer.json(),
                as_operator.json(),
                "[{}] GET {path}",
                fx.backend
            );
        }
        let listed = fx.send(Req::get("/v1/clusters").token(VIEWER)).await;
        assert_eq!(listed.str_at("/clusters/0/name"), "watched");
        assert_eq!(
            fx.send(Req::get(&format!("/v1/clusters/{cluster}")).token(VIEWER))
                .await
                .i64_at("/numNodes"),
            1
        );
    })
    .await;
}

/// The writes that act on the DM as a whole (docs/api.md, "Roles").
fn admin_writes() -> Vec<Req> {
    vec![
        Req::post("/v1/failover", &json!({ "to": "us-east-1" })),
        Req::post("/v1/failover", &json!({ "to": "us-east-1", "dryRun": true })),
        Req::post("/v1/drills", &json!({ "to": "us-east-1" })),
        Req::put("/v1/settings/default-version", &json!({ "version": "2.1.0" })),
    ]
}

#[tokio::test]
async fn operator_tokens_are_refused_with_403_on_failovers_drills_and_the_default_version() {
    on_both_backends(|fx| async move {
        for req in admin_writes() {
            for (token, name) in [(OPERATOR, OPERATOR_NAME), (OPERATOR2, OPERATOR2_NAME)] {
                fx.refused(
                    req.clone().token(token),
                    403,
                    "FORBIDDEN",
                    None,
                    &[
                        name,
                        "the operator role",
                        "needs the admin role",
                        "use an admin token",
                    ],
                )
                .await;
            }
            fx.refused(
                req.token(VIEWER),
                403,
                "FORBIDDEN",
                None,
                &[VIEWER_NAME, "the viewer role", "needs the admin role"],
            )
            .await;
        }
        // Nor did the refused PUT change the default version.
        let version = fx.send(Req::get("/v1/settings/default-version")).await;
        assert_eq!(
            version.json(),
            &json!({ "version": DEFAULT_VERSION }),
            "[{}]",
            fx.backend
        );
    })
    .await;
}

#[tokio::test]
async fn an_admin_token_may_do_what_an_operator_may_and_the_fleet_wide_writes_too() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        // One DM region: failovers and drills get past the role check and are
        // then refused by the failover desk, which says why.
        for req in admin_writes().into_iter().take(3) {
            fx.refused(
                req.token(ADMIN),
                409,
                "FAILOVER_REFUSED",
                None,
                &["this DM runs in one region"],
            )
            .await;
        }
        let set = fx
            .send(Req::put("/v1/settings/default-version", &json!({ "version": "2.1.0" })).token(ADMIN))
            .await;
        set.assert_status(200);
        assert_eq!(set.json(), &json!({ "version": "2.1.0" }), "[{b}]");

        let reply = fx
            .send(Req::post("/v1/environments", &environment_body("by-admin")).token(ADMIN))
            .await;
        reply.assert_status(202);
        let op = fx
            .store
            .get_operation(reply.i64_at("/operationId"))
            .await
            .expect("the operation");
        assert_eq!(op.principal, ADMIN_NAME, "[{b}]");
        for path in ["/v1/status", "/v1/environments", "/v1/failovers", "/v1/drills"] {
            fx.send(Req::get(path).token(ADMIN)).await.assert_status(200);
        }
    })
    .await;
}
