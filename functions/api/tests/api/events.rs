//! The sample events in `events/`: API Gateway HTTP API (payload format 2.0)
//! requests as AWS sends them to the API function. Each must be read by
//! `aws_lambda_events` without losing anything, and must be answered as expected
//! when `lambda_http` turns it into the request the router sees in Lambda.

use std::collections::BTreeSet;
use std::path::PathBuf;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use axum::http::{header, HeaderValue, Request};
use serde_json::{json, Value};

use crate::support::*;

/// What the API must answer to a sample, and what it needs beforehand.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `GET /v1/status`: 200, Running.
    Status,
    /// `GET /v1/clusters?environmentId=N`: 200 with the clusters of N only.
    ListClusters { environment_id: i64 },
    /// `POST /v1/clusters` with a valid body for READY environment N: 202, and the
    /// cluster exists.
    CreateCluster { environment_id: i64, name: &'static str },
}

/// Every API Gateway sample, with what it must do. A new `events/apigw-*.json`
/// fails `every_file_in_events_is_listed_in_the_sample_table` until it is added.
const SAMPLES: &[(&str, Expect)] = &[
    ("apigw-http-status.json", Expect::Status),
    (
        "apigw-http-list-clusters.json",
        Expect::ListClusters { environment_id: 1 },
    ),
    (
        "apigw-http-create-cluster.json",
        Expect::CreateCluster {
            environment_id: 1,
            name: "from-lambda",
        },
    ),
    (
        "apigw-http-create-cluster-base64.json",
        Expect::CreateCluster {
            environment_id: 1,
            name: "from-lambda",
        },
    ),
];

/// Files of `events/` that are not requests to the API, and who tests them.
const OTHER_EVENTS: &[(&str, &str)] = &[
    (
        "schedule-reconcile.json",
        "the reconciler's EventBridge schedule: functions/reconciler's tests read it",
    ),
    (
        "schedule-health-sweep.json",
        "the health sweep's EventBridge schedule, for functions/health-sweep",
    ),
    (
        "schedule-log-rotation.json",
        "log rotation's EventBridge schedule, for functions/log-rotation",
    ),
    (
        "invoke-diagnostics.json",
        "the API's invoke of the log-rotation function for a bundle, for functions/log-rotation",
    ),
    (
        "schedule-runbooks.json",
        "the runbook runner's EventBridge schedule, for functions/runbooks",
    ),
    (
        "invoke-runbook.json",
        "the API's invoke of the runbooks function after a runbook write, for functions/runbooks",
    ),
    (
        "lifecycle-launch.json",
        "an Auto Scaling launch hook for functions/lifecycle: shared's lifecycle tests read it",
    ),
    (
        "lifecycle-terminate.json",
        "an Auto Scaling terminate hook for functions/lifecycle: shared's lifecycle tests read it",
    ),
    (
        "schedule-failover.json",
        "the failover function's EventBridge schedule, for functions/failover",
    ),
    (
        "alarm-region-health.json",
        "a region-health alarm going to ALARM, for functions/failover and dm-local event",
    ),
    (
        "invoke-failover.json",
        "the API's invoke of the failover function after a failover request, for functions/failover",
    ),
    (
        "schedule-drill.json",
        "the monthly drill schedule's input, for functions/failover",
    ),
];

/// The token placeholder every sample carries instead of a real token.
const PLACEHOLDER: &str = "Bearer REPLACED-BY-TEST";

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn read(name: &str) -> String {
    let path = events_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn files_in_events() -> BTreeSet<String> {
    std::fs::read_dir(events_dir())
        .expect("read events/")
        .map(|entry| {
            entry
                .expect("an entry of events/")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn api_gateway_files() -> Vec<String> {
    let files: Vec<String> = files_in_events()
        .into_iter()
        .filter(|f| f.starts_with("apigw-") && f.ends_with(".json"))
        .collect();
    assert!(!files.is_empty(), "no events/apigw-*.json");
    files
}

/// `v` without nulls and empty objects, at any depth.
fn without_empties(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_empties(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_empties).collect()),
        other => other,
    }
}

#[test]
fn every_api_gateway_sample_round_trips_through_aws_lambda_events() {
    for name in api_gateway_files() {
        let text = read(&name);
        let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        assert_eq!(file["version"], "2.0", "{name}: payload format 2.0");
        assert_eq!(file["routeKey"], "$default", "{name}");
        assert_eq!(file["requestContext"]["stage"], "$default", "{name}");
        assert_eq!(
            file["headers"]["authorization"], PLACEHOLDER,
            "{name}: samples never hold a real token"
        );

        let event: ApiGatewayV2httpRequest =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not an HTTP API request: {e}"));
        let mut back = serde_json::to_value(&event).expect("serialise the event");

        // Exact equality cannot hold, for two reasons of aws_lambda_events 1.x, not
        // of the samples:
        // * it serialises every optional field it knows, absent or not: `null` for
        //   the Custom Authorizer v1 fields (`type`, `methodArn`, `identitySource`,
        //   `authorizationToken`) and `resource`, `{}` for `stageVariables`;
        // * it always writes a top-level `httpMethod` (another authorizer-only
        //   field), "GET" when the payload has none; payload 2.0 carries the method
        //   in `requestContext.http.method`.
        // So both sides are compared without nulls and empty objects, and that
        // `httpMethod` is dropped after checking it is the crate's default. What
        // remains must match field for field: a field of a sample the crate does
        // not know (and so would drop) fails the comparison.
        if file.get("httpMethod").is_none() {
            let default = back.as_object_mut().and_then(|o| o.remove("httpMethod"));
            assert!(
                default.is_none() || default == Some(json!("GET")),
                "{name}: unexpected top-level httpMethod {default:?}"
            );
        }
        assert_eq!(
            without_empties(back),
            without_empties(file),
            "{name} does not round-trip"
        );
    }
}

#[test]
fn every_file_in_events_is_listed_in_the_sample_table() {
    let on_disk = files_in_events();
    let listed: BTreeSet<String> = SAMPLES
        .iter()
        .map(|(n, _)| n)
        .chain(OTHER_EVENTS.iter().map(|(n, _)| n))
        .map(|n| (*n).to_owned())
        .collect();
    assert_eq!(
        on_disk, listed,
        "every file of events/ needs a row in SAMPLES or OTHER_EVENTS (tests/api/events.rs)"
    );
    for name in api_gateway_files() {
        assert!(
            SAMPLES.iter().any(|(n, _)| *n == name),
            "{name} is an API request: list it in SAMPLES"
        );
    }
}

#[test]
fn the_base64_sample_carries_the_same_body_as_the_plain_one() {
    let plain =
        lambda_http::request::from_str(&read("apigw-http-create-cluster.json")).expect("plain sample");
    let encoded = lambda_http::request::from_str(&read("apigw-http-create-cluster-base64.json"))
        .expect("base64 sample");
    assert!(
        matches!(plain.body(), lambda_http::Body::Text(_)),
        "{:?}",
        plain.body()
    );
    assert!(
        matches!(encoded.body(), lambda_http::Body::Binary(_)),
        "{:?}",
        encoded.body()
    );
    let plain: &[u8] = plain.body().as_ref();
    let decoded: &[u8] = encoded.body().as_ref();
    assert_eq!(decoded, plain);
    let body: Value = serde_json::from_slice(plain).expect("the sample's body is JSON");
    assert_eq!(
        body,
        json!({ "name": "from-lambda", "environmentId": 1, "numNodes": 1, "type": "STANDALONE_CLUSTER" })
    );
}

/// The sample as the router sees it in Lambda: `lambda_http`'s request, with the
/// placeholder replaced by `token` (or kept, for `None`).
fn lambda_request(name: &str, text: &str, token: Option<&str>) -> Request<axum::body::Body> {
    let mut request = lambda_http::request::from_str(text)
        .unwrap_or_else(|e| panic!("lambda_http cannot read {name}: {e}"));
    let file: Value = serde_json::from_str(text).expect("JSON");
    assert_eq!(
        request.method().as_str(),
        file["requestContext"]["http"]["method"],
        "{name}: method"
    );
    assert_eq!(request.uri().path(), file["rawPath"], "{name}: path");
    assert_eq!(
        request.uri().query().unwrap_or(""),
        file["rawQueryString"],
        "{name}: query string"
    );
    assert_eq!(
        request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()),
        Some(PLACEHOLDER.as_bytes())
    );
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    request.map(axum::body::Body::new)
}

async fn drive(fx: Fixture, name: &'static str, text: String, expect: Expect) {
    let b = fx.backend;
    match expect {
        Expect::Status => {}
        Expect::ListClusters { environment_id } => {
            assert_eq!(fx.ready_environment().await, environment_id, "[{b}]");
            let other = fx.make_ready_environment("other-env").await;
            fx.create_cluster(&cluster_body(environment_id, "listed")).await;
            fx.create_cluster(&cluster_body(other, "elsewhere")).await;
        }
        Expect::CreateCluster { environment_id, .. } => {
            assert_eq!(fx.ready_environment().await, environment_id, "[{b}]");
        }
    }

    // The placeholder is not a token: the request is refused and writes nothing.
    let before = fx.snapshot().await;
    let reply = fx
        .send_request(
            format!("{name} (placeholder token)"),
            lambda_request(name, &text, None),
        )
        .await;
    reply.assert_error(401, "UNAUTHENTICATED", None, &["not known"]);
    fx.assert_nothing_written(&before, name).await;

    let kicks = fx.kicks();
    let reply = fx
        .send_request(name.to_owned(), lambda_request(name, &text, Some(OPERATOR)))
        .await;
    match expect {
        Expect::Status => {
            reply.assert_status(200);
            assert_eq!(reply.str_at("/status"), "Running", "[{b}] {name}");
            assert_eq!(reply.str_at("/message"), "Service available", "[{b}] {name}");
        }
        Expect::ListClusters { environment_id } => {
            reply.assert_status(200);
            let clusters = reply.at("/clusters").as_array().expect("an array");
            let seen: Vec<(&Value, &Value)> = clusters
                .iter()
                .map(|c| (&c["environmentId"], &c["name"]))
                .collect();
            assert_eq!(
                seen,
                [(&json!(environment_id), &json!("listed"))],
                "[{b}] {name}: {}",
                reply.text
            );
        }
        Expect::CreateCluster {
            environment_id,
            name: cluster,
        } => {
            reply.assert_status(202);
            assert_eq!(reply.str_at("/cluster/name"), cluster, "[{b}] {name}");
            let rows = fx
                .store
                .list_clusters(Some(environment_id))
                .await
                .expect("list clusters");
            let names: Vec<&str> = rows.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, [cluster], "[{b}] {name}");
            let op = fx
                .store
                .get_operation(reply.i64_at("/operationId"))
                .await
                .expect("the operation");
            assert_eq!(
                (op.kind.as_str(), op.principal.as_str()),
                ("CREATE_CLUSTER", OPERATOR_NAME),
                "[{b}] {name}"
            );
            assert_eq!(fx.kicks(), kicks + 1, "[{b}] {name}");
        }
    }
}

#[tokio::test]
async fn every_api_gateway_sample_is_answered_through_the_lambda_path() {
    for &(name, expect) in SAMPLES {
        let text = read(name);
        on_both_backends(move |fx| drive(fx, name, text.clone(), expect)).await;
    }
}
