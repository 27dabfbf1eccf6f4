//! Request bodies at the edge: JSON only, at most 1 MiB, exactly the fields of
//! the route, each of the right JSON type. None of these needs an environment:
//! the body is refused before the handler looks anything up.

use axum::http::Method;
use serde_json::json;

use crate::support::*;

/// The write routes that take a JSON body, with a body each would accept.
fn body_routes() -> Vec<(Method, &'static str, serde_json::Value)> {
    vec![
        (Method::POST, "/v1/environments", environment_body("prod")),
        (Method::POST, "/v1/clusters", cluster_body(1, "analytics")),
        (Method::PATCH, "/v1/clusters/1", json!({ "numNodes": 2 })),
    ]
}

#[tokio::test]
async fn malformed_json_is_refused_with_400_malformed_json_and_nothing_is_written() {
    on_both_backends(|fx| async move {
        for (method, path, _) in body_routes() {
            for raw in [
                r#"{"name": "prod", "region": "#,
                "{name: 'prod'}",
                r#"{"name": "prod",}"#,
                "not json",
                "",
                r#"{"name": "prod"} trailing"#,
            ] {
                fx.refused(
                    Req::new(method.clone(), path).raw(raw),
                    400,
                    "MALFORMED_JSON",
                    None,
                    &["not valid JSON"],
                )
                .await;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_body_that_is_not_application_json_is_refused_with_415_and_nothing_is_written() {
    on_both_backends(|fx| async move {
        for (method, path, body) in body_routes() {
            let raw = body.to_string();
            for content_type in [
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                Some("application/jsonx"),
                None,
            ] {
                let req = Req::new(method.clone(), path)
                    .raw(raw.clone())
                    .content_type(content_type);
                let mentions: Vec<&str> = ["application/json"].into_iter().chain(content_type).collect();
                fx.refused(req, 415, "UNSUPPORTED_MEDIA_TYPE", None, &mentions)
                    .await;
            }
        }
        // Parameters and case do not matter: the same body is accepted.
        let req = Req::new(Method::POST, "/v1/environments")
            .raw(environment_body("prod").to_string())
            .content_type(Some("Application/JSON; charset=utf-8"));
        fx.send(req).await.assert_status(202);
    })
    .await;
}

/// A valid environment body padded with trailing whitespace to exactly `len` bytes.
fn padded_environment_body(len: usize) -> Vec<u8> {
    let mut body = environment_body("big").to_string().into_bytes();
    assert!(body.len() < len);
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_refused_with_413_and_nothing_is_written() {
    const MIB: usize = 1024 * 1024;
    on_both_backends(|fx| async move {
        for len in [MIB + 1, 2 * MIB, 3 * MIB] {
            let req = Req::new(Method::POST, "/v1/environments").raw(padded_environment_body(len));
            fx.refused(req, 413, "PAYLOAD_TOO_LARGE", None, &["larger than"])
                .await;
        }
        let huge_patch = format!(r#"{{"numNodes": 2{}}}"#, " ".repeat(MIB));
        fx.refused(
            Req::new(Method::PATCH, "/v1/clusters/1").raw(huge_patch),
            413,
            "PAYLOAD_TOO_LARGE",
            None,
            &[],
        )
        .await;
        // Exactly 1 MiB is not over the limit: the same body, one byte shorter, is accepted.
        let reply = fx
            .send(Req::new(Method::POST, "/v1/environments").raw(padded_environment_body(MIB)))
            .await;
        reply.assert_status(202);
        assert_eq!(reply.str_at("/environment/name"), "big");
    })
    .await;
}

#[tokio::test]
async fn an_unknown_field_is_refused_with_400_unknown_field_naming_it() {
    on_both_backends(|fx| async move {
        let cases = [
            (
                Method::POST,
                "/v1/environments",
                with(&environment_body("prod"), "colour", json!("blue")),
                "colour",
            ),
            (
                Method::POST,
                "/v1/environments",
                with(&environment_body("prod"), "Name", json!("prod")),
                "Name",
            ),
            (
                Method::POST,
                "/v1/clusters",
                with(&cluster_body(1, "analytics"), "nodes", json!(3)),
                "nodes",
            ),
            (
                Method::POST,
                "/v1/clusters",
                with(
                    &cluster_body(1, "analytics"),
                    "terminationProtection",
                    json!(true),
                ),
                "terminationProtection",
            ),
            (
                Method::PATCH,
                "/v1/clusters/1",
                json!({ "numNodes": 2, "size": 3 }),
                "size",
            ),
        ];
        for (method, path, body, field) in cases {
            fx.refused(
                Req::new(method, path).json(&body),
                400,
                "UNKNOWN_FIELD",
                Some(field),
                &[field],
            )
            .await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_missing_required_field_is_refused_with_400_missing_field_naming_it() {
    on_both_backends(|fx| async move {
        let env = environment_body("prod");
        let cluster = cluster_body(1, "analytics");
        let mut cases = vec![
            ("/v1/environments", without(&env, "name"), "name"),
            ("/v1/environments", without(&env, "region"), "region"),
        ];
        for field in ["name", "numNodes", "type", "environmentId"] {
            cases.push(("/v1/clusters", without(&cluster, field), field));
        }
        for (path, body, field) in cases {
            fx.refused(
                Req::post(path, &body),
                400,
                "MISSING_FIELD",
                Some(field),
                &[field],
            )
            .await;
        }
        fx.refused(
            Req::post("/v1/environments", &json!({})),
            400,
            "MISSING_FIELD",
            Some("name"),
            &["name"],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_field_of_the_wrong_json_type_is_refused_with_400_invalid_field_naming_it() {
    on_both_backends(|fx| async move {
        let env = environment_body("prod");
        let cluster = cluster_body(1, "analytics");
        let cases = vec![
            (
                Method::POST,
                "/v1/environments",
                with(&env, "name", json!(7)),
                "name",
            ),
            (
                Method::POST,
                "/v1/environments",
                with(&env, "region", json!(null)),
                "region",
            ),
            (
                Method::POST,
                "/v1/environments",
                with(&env, "createSecurityGroup", json!("yes")),
                "createSecurityGroup",
            ),
            (
                Method::POST,
                "/v1/environments",
                with(&env, "subnetIds", json!("subnet-1")),
                "subnetIds",
            ),
            (
                Method::POST,
                "/v1/clusters",
                with(&cluster, "numNodes", json!("three")),
                "numNodes",
            ),
            (
                Method::POST,
                "/v1/clusters",
                with(&cluster, "numNodes", json!(1.5)),
                "numNodes",
            ),
            (
                Method::POST,
                "/v1/clusters",
                with(&cluster, "environmentId", json!("1")),
                "environmentId",
            ),
            (
                Method::POST,
                "/v1/clusters",
                with(&cluster, "tags", json!(["team"])),
                "tags",
            ),
            (
                Method::POST,
                "/v1/clusters",
                with(&cluster, "tags", json!({ "team": 5 })),
                "tags.team",
            ),
            (
                Method::PATCH,
                "/v1/clusters/1",
                json!({ "terminationProtectionEnabled": "yes" }),
                "terminationProtectionEnabled",
            ),
            (
                Method::PATCH,
                "/v1/clusters/1",
                json!({ "numNodes": "2" }),
                "numNodes",
            ),
        ];
        for (method, path, body, field) in cases {
            fx.refused(
                Req::new(method, path).json(&body),
                400,
                "INVALID_FIELD",
                Some(field),
                &[field, "invalid type"],
            )
            .await;
        }
    })
    .await;
}

/// docs/api.md: bodies are JSON objects with named fields, and `field` is only
/// there when one field is at fault. A top-level array, string, number or null
/// has no field at fault, and an array must not fill a struct by position.
#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_refused_without_naming_a_field() {
    on_both_backends(|fx| async move {
        let bodies = [
            ("/v1/environments", json!(["prod", "us-west-2"])),
            ("/v1/clusters", json!(["analytics", 1, "STANDALONE_CLUSTER", 1])),
            ("/v1/environments", json!([1, 2])),
            ("/v1/environments", json!("prod")),
            ("/v1/environments", json!(42)),
            ("/v1/environments", json!(null)),
        ];
        // Every body is tried, and every problem reported at once.
        let mut problems = Vec::new();
        for (path, body) in bodies {
            let before = fx.snapshot().await;
            let reply = fx.send(Req::post(path, &body)).await;
            let error = reply.json().get("error");
            let code = error.and_then(|e| e["code"].as_str()).unwrap_or("");
            if reply.status.as_u16() != 400 || !["INVALID_FIELD", "MALFORMED_JSON"].contains(&code) {
                problems.push(format!("POST {path} {body}: {} {}", reply.status, reply.text));
            } else if error.and_then(|e| e.get("field")).is_some() {
                problems.push(format!(
                    "POST {path} {body}: no field is at fault, yet {}",
                    reply.text
                ));
            }
            let now = fx.snapshot().await;
            let wrote = now.environments != before.environments
                || now.clusters != before.clusters
                || now.next_operation != before.next_operation
                || now.kicks != before.kicks;
            if wrote {
                problems.push(format!(
                    "POST {path} {body}: wrote {} environment(s), {} cluster(s), {} operation(s)",
                    now.environments.len() - before.environments.len(),
                    now.clusters.len() - before.clusters.len(),
                    now.next_operation - before.next_operation
                ));
            }
        }
        assert!(problems.is_empty(), "[{}]\n{}", fx.backend, problems.join("\n"));
    })
    .await;
}
