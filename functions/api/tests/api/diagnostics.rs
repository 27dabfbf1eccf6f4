//! `POST /v1/clusters/{id}/diagnostics`: bad input is refused naming the field
//! and writes nothing; a good request answers 202 with the operation and the
//! bundle's URI, wakes the worker (the log-rotation function in Lambda) with an
//! event it parses, replays under its idempotency key, and the worker's bundle
//! finishes the operation with the URI as its result.

use std::sync::Arc;

use serde_json::{json, Value};
use shared::cloud::aws::{LambdaAdapter, S3Adapter};
use shared::config::S3Location;
use shared::domain::logs::LogClock;
use shared::workflows::diagnostics::{self, RunOutcome, Worker};

use crate::support::*;

fn path(id: i64) -> String {
    format!("/v1/clusters/{id}/diagnostics")
}

#[tokio::test]
async fn bad_diagnostics_requests_are_refused_naming_the_field_and_write_nothing() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "diag")).await;
        for days in [json!(0), json!(31), json!(-1), json!(1000000)] {
            let got = format!("got {days}");
            fx.refused(
                Req::post(&path(id), &json!({ "days": days })),
                400,
                "INVALID_FIELD",
                Some("days"),
                &["days", "from 1 to 30", &got],
            )
            .await;
        }
        for days in [json!("3"), json!(1.5), json!(true)] {
            fx.refused(
                Req::post(&path(id), &json!({ "days": days })),
                400,
                "INVALID_FIELD",
                Some("days"),
                &["days"],
            )
            .await;
        }
        for (upload, why) in [
            (json!("my-bucket/diag"), "must start with s3://"),
            (json!("s3://"), "valid S3 bucket"),
            (json!("s3://Not_A_Bucket/x"), "valid S3 bucket"),
            (
                json!("https://my-bucket.s3.amazonaws.com/x"),
                "must start with s3://",
            ),
            (json!("s3://my-bucket/a/../b"), "path segment"),
        ] {
            fx.refused(
                Req::post(&path(id), &json!({ "s3UploadPath": upload })),
                400,
                "INVALID_FIELD",
                Some("s3UploadPath"),
                &["s3UploadPath", why],
            )
            .await;
        }
        fx.refused(
            Req::post(&path(id), &json!({ "s3UploadPath": 7 })),
            400,
            "INVALID_FIELD",
            Some("s3UploadPath"),
            &["s3UploadPath"],
        )
        .await;
        fx.refused(
            Req::post(&path(id), &json!({ "day": 2 })),
            400,
            "UNKNOWN_FIELD",
            Some("day"),
            &["day"],
        )
        .await;
        fx.refused(
            Req::post(&path(id + 100), &json!({})),
            404,
            "NOT_FOUND",
            Some("id"),
            &[&format!("cluster {} does not exist", id + 100)],
        )
        .await;
        fx.refused(
            Req::post("/v1/clusters/x1/diagnostics", &json!({})),
            400,
            "INVALID_FIELD",
            Some("id"),
            &["id"],
        )
        .await;
        fx.refused(
            Req::post(&path(id), &json!({})).token(VIEWER),
            403,
            "FORBIDDEN",
            None,
            &["viewer"],
        )
        .await;
        fx.refused(
            Req::new(axum::http::Method::POST, &path(id)).raw("days=2"),
            400,
            "MALFORMED_JSON",
            None,
            &["not valid JSON"],
        )
        .await;
        fx.refused(
            Req::new(axum::http::Method::GET, &path(id)),
            405,
            "METHOD_NOT_ALLOWED",
            None,
            &["diagnostics"],
        )
        .await;

        let deleted = fx.send(Req::delete(&format!("/v1/clusters/{id}"))).await;
        deleted.assert_status(202);
        fx.refused(
            Req::post(&path(id), &json!({})),
            409,
            "CONFLICT",
            Some("id"),
            &[&format!("cluster {id} is TERMINATING (deleted)")],
        )
        .await;
        assert!(fx.woken().is_empty(), "[{}]", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn a_diagnostics_request_answers_202_with_its_operation_and_uri_and_the_worker_finishes_it() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "diag")).await;
        let kicks = fx.kicks();

        let reply = fx.send(Req::post(&path(id), &json!({}))).await;
        reply.assert_status(202);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(reply.json()),
            ["cluster", "diagnostics", "operationId"],
            "[{b}] as docs/api.md says"
        );
        assert_eq!(keys(reply.at("/diagnostics")), ["days", "uri"], "[{b}]");
        let op = reply.i64_at("/operationId");
        let uri = reply.str_at("/diagnostics/uri").to_owned();
        assert_eq!(reply.i64_at("/diagnostics/days"), 1, "[{b}] the default");
        assert_eq!(reply.i64_at("/cluster/id"), id);
        let staging = format!("s3://dm-{}/staging/diagnostics/", fx.account);
        let rest = uri
            .strip_prefix(&staging)
            .unwrap_or_else(|| panic!("[{b}] {uri}"));
        let parts: Vec<&str> = rest.split('/').collect();
        assert_eq!(parts.len(), 4, "[{b}] <timestamp>/<cluster>/<uuid>/<file>: {uri}");
        assert_eq!(parts[1], id.to_string());
        assert_eq!(parts[3], format!("cluster-{id}-{}.tgz", parts[0]), "[{b}] {uri}");
        assert_eq!(fx.woken(), [op], "[{b}] the worker is woken");
        assert_eq!(fx.kicks(), kicks, "[{b}] the reconciler is not");

        let pending = fx.send(Req::get(&format!("/v1/operations/{op}"))).await;
        pending.assert_status(200);
        assert_eq!(pending.at("/kind"), "DIAGNOSTICS");
        assert_eq!(pending.at("/target"), &json!(format!("cluster/{id}")));
        assert_eq!(pending.at("/state"), "PENDING");
        assert_eq!(pending.at("/result"), &Value::Null);

        // Elsewhere, for a week, under an idempotency key: a replay answers the same.
        let keyed = Req::post(
            &path(id),
            &json!({ "days": 7, "s3UploadPath": format!("s3://dm-{}/ops/diag/", fx.account) }),
        )
        .idempotency_key("diag-1");
        let first = fx.send(keyed.clone()).await;
        first.assert_status(202);
        let other = first.str_at("/diagnostics/uri").to_owned();
        assert!(
            other.starts_with(&format!("s3://dm-{}/ops/diag/diagnostics/", fx.account)),
            "[{b}] {other}"
        );
        assert_eq!(first.i64_at("/diagnostics/days"), 7);
        let replay = fx.send(keyed).await;
        replay.assert_status(202);
        assert_eq!(replay.header("idempotent-replayed"), Some("true"), "[{b}]");
        assert_eq!(replay.i64_at("/operationId"), first.i64_at("/operationId"));
        assert_eq!(replay.str_at("/diagnostics/uri"), other);
        assert_eq!(fx.woken().len(), 2, "[{b}] a replay wakes nobody");

        // The worker, as the log-rotation function runs it, against the emulator.
        let settings = aws_settings(emulator::shared().endpoint().to_owned(), &fx.account);
        let s3 = S3Adapter::new(settings, REGION);
        let staging = S3Location::parse(&format!("s3://dm-{}/staging", fx.account)).unwrap();
        s3.ensure_bucket(&staging.bucket).await.unwrap();
        let worker = Worker::new(&fx.store, &s3, &staging, LogClock::WALL, "worker");
        let outcomes = worker.run_due(10).await.unwrap();
        assert_eq!(outcomes.len(), 2, "[{b}] {outcomes:?}");
        assert!(
            matches!(&outcomes[0], (o, RunOutcome::Succeeded { uri: u, .. }) if *o == op && *u == uri),
            "[{b}] {outcomes:?}"
        );
        let done = fx.send(Req::get(&format!("/v1/operations/{op}"))).await;
        assert_eq!(done.at("/state"), "SUCCEEDED", "[{b}] {}", done.text);
        assert_eq!(done.at("/result"), &json!(uri));
        assert_eq!(done.at("/steps/0/state"), "DONE");
    })
    .await;
}

#[tokio::test]
async fn in_lambda_a_diagnostics_request_invokes_the_log_rotation_function_with_an_event_it_parses() {
    on_both_backends(|fx| async move {
        const FUNCTION: &str = "okera-dm-log-rotation";
        let emulator = emulator::shared();
        emulator.create_function(&fx.account, REGION, FUNCTION).unwrap();
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "diag")).await;
        let lambda = LambdaAdapter::new(aws_settings(emulator.endpoint().to_owned(), &fx.account), REGION);
        let state = api::AppState {
            diagnostics: api::Diagnostics {
                wake: diagnostics::wake_by_invoke(Arc::new(lambda), FUNCTION.into()),
                ..fx.state.diagnostics.clone()
            },
            ..fx.state.clone()
        };
        let reply = fx
            .send_to(
                state,
                "POST diagnostics".into(),
                Req::post(&path(id), &json!({})).build(),
            )
            .await;
        reply.assert_status(202);
        let op = reply.i64_at("/operationId");
        let seen: Vec<Value> = emulator
            .invocations(&fx.account, FUNCTION)
            .unwrap()
            .iter()
            .map(|p| serde_json::from_str(p).unwrap())
            .collect();
        assert_eq!(
            seen,
            [json!({ "diagnostics": { "operationId": op } })],
            "[{}]",
            fx.backend
        );
        assert_eq!(diagnostics::parse_event(&seen[0]), Some(Ok(op)));
    })
    .await;
}
