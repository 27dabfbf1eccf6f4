//! Ids in paths and query strings, unknown targets and unknown routes. Every error
//! has the JSON body of docs/api.md.

use axum::http::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn path_ids_that_are_not_positive_whole_numbers_are_refused_with_400_naming_id() {
    on_both_backends(|fx| async move {
        for raw in ["abc", "0", "-1", "1.5", "1e3", "%201", "99999999999999999999"] {
            let requests = [
                Req::get(&format!("/v1/clusters/{raw}")),
                Req::get(&format!("/v1/environments/{raw}")),
                Req::get(&format!("/v1/operations/{raw}")),
                Req::patch(&format!("/v1/clusters/{raw}"), &json!({ "numNodes": 2 })),
                Req::delete(&format!("/v1/clusters/{raw}")),
                Req::delete(&format!("/v1/environments/{raw}")),
            ];
            for req in requests {
                fx.refused(
                    req,
                    400,
                    "INVALID_FIELD",
                    Some("id"),
                    &["id must be a positive whole number"],
                )
                .await;
            }
        }
        let reply = fx.send(Req::get("/v1/clusters/abc")).await;
        reply.assert_error(400, "INVALID_FIELD", Some("id"), &["\"abc\""]);
    })
    .await;
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_is_refused_with_a_json_error_naming_id() {
    on_both_backends(|fx| async move {
        for path in [
            "/v1/clusters/%FF",
            "/v1/environments/%C3%28",
            "/v1/operations/%80",
        ] {
            fx.refused(Req::get(path), 400, "INVALID_FIELD", Some("id"), &["id"])
                .await;
        }
    })
    .await;
}

#[tokio::test]
async fn ids_that_do_not_exist_are_404_not_found() {
    on_both_backends(|fx| async move {
        let cases = [
            (Req::get("/v1/clusters/999"), "cluster 999"),
            (Req::get("/v1/environments/999"), "environment 999"),
            (Req::get("/v1/operations/999"), "operation 999"),
            (
                Req::patch("/v1/clusters/999", &json!({ "numNodes": 2 })),
                "cluster 999",
            ),
            (Req::delete("/v1/clusters/999"), "cluster 999"),
            (Req::delete("/v1/environments/999"), "environment 999"),
        ];
        for (req, mention) in cases {
            fx.refused(req, 404, "NOT_FOUND", None, &[mention]).await;
        }
        // Once something exists, its neighbours still do not.
        let (op, env) = fx.create_environment("prod").await;
        fx.send(Req::get(&format!("/v1/environments/{env}")))
            .await
            .assert_status(200);
        fx.send(Req::get(&format!("/v1/operations/{op}")))
            .await
            .assert_status(200);
        let next = format!("environment {}", env + 1);
        fx.refused(
            Req::get(&format!("/v1/environments/{}", env + 1)),
            404,
            "NOT_FOUND",
            None,
            &[&next],
        )
        .await;
        let next = format!("operation {}", op + 1);
        fx.refused(
            Req::get(&format!("/v1/operations/{}", op + 1)),
            404,
            "NOT_FOUND",
            None,
            &[&next],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn an_unknown_query_parameter_is_refused_with_400_unknown_field() {
    on_both_backends(|fx| async move {
        fx.refused(
            Req::get("/v1/clusters?bogus=1"),
            400,
            "UNKNOWN_FIELD",
            Some("bogus"),
            &["bogus", "environmentId"],
        )
        .await;
        fx.refused(
            Req::get("/v1/clusters?environmentId=1&limit=5"),
            400,
            "UNKNOWN_FIELD",
            Some("limit"),
            &["limit"],
        )
        .await;
        fx.refused(
            Req::get("/v1/clusters?environmentid=1"),
            400,
            "UNKNOWN_FIELD",
            Some("environmentid"),
            &["environmentid"],
        )
        .await;
        for raw in ["abc", "0", "-2", ""] {
            fx.refused(
                Req::get(&format!("/v1/clusters?environmentId={raw}")),
                400,
                "INVALID_FIELD",
                Some("environmentId"),
                &["environmentId must be a positive whole number"],
            )
            .await;
        }
        let reply = fx.send(Req::get("/v1/clusters?environmentId=1")).await;
        reply.assert_status(200);
        assert_eq!(reply.json(), &json!({ "clusters": [] }));
    })
    .await;
}

#[tokio::test]
async fn an_unknown_route_is_404_not_found_with_a_json_body() {
    on_both_backends(|fx| async move {
        let cases = [
            (Method::GET, "/v1/nope"),
            (Method::GET, "/v2/status"),
            (Method::GET, "/"),
            (Method::GET, "/v1"),
            (Method::GET, "/v1/clusters/1/nodes"),
            (Method::POST, "/v1/nope"),
            (Method::DELETE, "/v1/operations/1/steps"),
            (Method::GET, "/v1/settings"),
        ];
        for (method, path) in cases {
            let req = Req::new(method.clone(), path).raw(environment_body("prod").to_string());
            let method_name = method.to_string();
            fx.refused(req, 404, "NOT_FOUND", None, &[&method_name, path])
                .await;
        }
    })
    .await;
}

/// docs/api.md: "Every error has a status code and this body". A method a route
/// does not take is an error too, and says which methods it takes.
#[tokio::test]
async fn a_method_a_route_does_not_take_is_refused_with_a_json_error() {
    on_both_backends(|fx| async move {
        for (method, path) in [
            (Method::PUT, "/v1/clusters/1"),
            (Method::POST, "/v1/status"),
            (Method::DELETE, "/v1/clusters"),
            (Method::PATCH, "/v1/environments/1"),
            (Method::DELETE, "/v1/operations"),
            (Method::GET, "/v1/clusters/1/upgrade"),
            (Method::POST, "/v1/settings/default-version"),
        ] {
            let before = fx.snapshot().await;
            let reply = fx
                .send(Req::new(method.clone(), path).json(&json!({ "numNodes": 2 })))
                .await;
            reply.assert_status(405);
            assert!(
                reply.header("allow").is_some(),
                "[{}] {method} {path}: no Allow header",
                fx.backend
            );
            let code = reply.str_at("/error/code");
            assert!(
                !code.is_empty(),
                "[{}] {method} {path}: empty error code",
                fx.backend
            );
            let message = reply.str_at("/error/message");
            assert!(
                message.contains(method.as_str()),
                "[{}] {method} {path}: {message}",
                fx.backend
            );
            fx.assert_nothing_written(&before, &format!("{method} {path}"))
                .await;
        }
    })
    .await;
}
