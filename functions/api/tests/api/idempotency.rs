//! `Idempotency-Key`: the same key with the same request answers the first
//! request's operation again (202, `Idempotent-Replayed: true`) without writing
//! or kicking; with another request it is a 409; keys belong to a principal.

use axum::http::Method;
use serde_json::json;
use shared::store::StoreError;

use crate::support::*;

/// Asserts that operation `id` exists and `id + 1` does not.
async fn assert_last_operation(fx: &Fixture, id: i64, kind: &str) {
    let op = fx
        .store
        .get_operation(id)
        .await
        .unwrap_or_else(|e| panic!("[{}] operation {id}: {e:?}", fx.backend));
    assert_eq!(op.kind, kind, "[{}] operation {id}", fx.backend);
    match fx.store.get_operation(id + 1).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("[{}] a second operation was recorded: {other:?}", fx.backend),
    }
}

#[tokio::test]
async fn the_same_key_and_body_twice_answers_the_first_operation_again_and_creates_one_cluster() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let kicks = fx.kicks();
        let req = Req::post("/v1/clusters", &cluster_body(env, "once")).idempotency_key("create-once-1");

        let first = fx.send(req.clone()).await;
        first.assert_status(202);
        assert_eq!(
            first.header("idempotent-replayed"),
            None,
            "[{}] the first request is no replay",
            fx.backend
        );
        let second = fx.send(req).await;
        second.assert_status(202);
        assert_eq!(
            second.header("idempotent-replayed"),
            Some("true"),
            "[{}] {}",
            fx.backend,
            second.text
        );

        let op = first.i64_at("/operationId");
        assert_eq!(second.i64_at("/operationId"), op, "[{}]", fx.backend);
        assert_eq!(
            second.i64_at("/cluster/id"),
            first.i64_at("/cluster/id"),
            "[{}]",
            fx.backend
        );
        assert_eq!(second.str_at("/cluster/name"), "once");

        let clusters = fx.store.list_clusters(None).await.unwrap();
        assert_eq!(clusters.len(), 1, "[{}] {clusters:?}", fx.backend);
        assert_last_operation(&fx, op, "CREATE_CLUSTER").await;
        let audit = fx
            .store
            .audit_of(&format!("cluster/{}", clusters[0].id))
            .await
            .unwrap();
        assert_eq!(audit.len(), 1, "[{}] {audit:?}", fx.backend);
        assert_eq!(
            fx.kicks(),
            kicks + 1,
            "[{}] only the first request kicks",
            fx.backend
        );
    })
    .await;
}

#[tokio::test]
async fn the_same_key_on_an_environment_create_replays_too() {
    on_both_backends(|fx| async move {
        let req = Req::post("/v1/environments", &environment_body("prod")).idempotency_key("env-key");
        let first = fx.send(req.clone()).await;
        first.assert_status(202);
        let second = fx.send(req).await;
        second.assert_status(202);
        assert_eq!(
            second.header("idempotent-replayed"),
            Some("true"),
            "[{}]",
            fx.backend
        );
        assert_eq!(second.i64_at("/operationId"), first.i64_at("/operationId"));
        assert_eq!(second.i64_at("/environment/id"), first.i64_at("/environment/id"));
        assert_eq!(
            fx.store.list_environments().await.unwrap().len(),
            1,
            "[{}]",
            fx.backend
        );
        assert_last_operation(&fx, first.i64_at("/operationId"), "CREATE_ENVIRONMENT").await;
        assert_eq!(fx.kicks(), 1, "[{}]", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn the_same_key_with_the_same_json_formatted_differently_is_still_a_replay() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let compact = format!(r#"{{"name":"tidy","environmentId":{env},"numNodes":2,"type":"STANDALONE_CLUSTER","tags":{{"a":"1","b":"2"}}}}"#);
        let spread = format!(
            "{{\n  \"tags\" : {{ \"b\": \"2\",  \"a\": \"1\" }},\n  \"type\":\"STANDALONE_CLUSTER\",\n\t\"numNodes\" : 2 ,\n  \"environmentId\": {env},\n  \"name\": \"tidy\"\n}}\n"
        );
        let kicks = fx.kicks();
        let first = fx.send(Req::new(Method::POST, "/v1/clusters").raw(compact).idempotency_key("fmt-key")).await;
        first.assert_status(202);
        let second = fx.send(Req::new(Method::POST, "/v1/clusters").raw(spread).idempotency_key("fmt-key")).await;
        second.assert_status(202);
        assert_eq!(second.header("idempotent-replayed"), Some("true"), "[{}] {}", fx.backend, second.text);
        assert_eq!(second.i64_at("/operationId"), first.i64_at("/operationId"));
        assert_eq!(fx.store.list_clusters(None).await.unwrap().len(), 1, "[{}]", fx.backend);
        assert_last_operation(&fx, first.i64_at("/operationId"), "CREATE_CLUSTER").await;
        assert_eq!(fx.kicks(), kicks + 1, "[{}]", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_refused_with_409_and_nothing_is_written() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let first = fx
            .send(Req::post("/v1/clusters", &cluster_body(env, "first")).idempotency_key("reused"))
            .await;
        first.assert_status(202);
        for req in [
            Req::post("/v1/clusters", &cluster_body(env, "second")),
            Req::post(
                "/v1/clusters",
                &with(&cluster_body(env, "first"), "numNodes", json!(2)),
            ),
            Req::post("/v1/environments", &environment_body("first")),
            Req::patch(
                &format!("/v1/clusters/{}", first.i64_at("/cluster/id")),
                &json!({ "numNodes": 2 }),
            ),
        ] {
            let reply = fx
                .refused(
                    req.idempotency_key("reused"),
                    409,
                    "CONFLICT",
                    None,
                    &["Idempotency-Key", "reused"],
                )
                .await;
            assert_eq!(reply.header("idempotent-replayed"), None);
        }
        let names: Vec<String> = fx
            .store
            .list_clusters(None)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["first"], "[{}]", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn the_same_key_from_another_principal_is_independent() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let mine = cluster_body(env, "mine");
        let theirs = cluster_body(env, "theirs");
        let a = fx
            .send(Req::post("/v1/clusters", &mine).idempotency_key("shared-key"))
            .await;
        a.assert_status(202);

        // The second operator's identical request is a request of its own, not a
        // replay of the first operator's: it asks for a name already taken.
        fx.refused(
            Req::post("/v1/clusters", &mine)
                .idempotency_key("shared-key")
                .token(OPERATOR2),
            409,
            "CONFLICT",
            None,
            &["mine", "already exists"],
        )
        .await;
        // And with another body the key is not "used with a different request".
        let b = fx
            .send(
                Req::post("/v1/clusters", &theirs)
                    .idempotency_key("shared-key")
                    .token(OPERATOR2),
            )
            .await;
        b.assert_status(202);
        assert_eq!(b.header("idempotent-replayed"), None, "[{}]", fx.backend);
        assert_ne!(a.i64_at("/operationId"), b.i64_at("/operationId"));
        assert_eq!(b.str_at("/cluster/owner"), OPERATOR2_NAME);

        // Each principal replays its own request.
        let a2 = fx
            .send(Req::post("/v1/clusters", &mine).idempotency_key("shared-key"))
            .await;
        a2.assert_status(202);
        assert_eq!(a2.header("idempotent-replayed"), Some("true"));
        assert_eq!(a2.i64_at("/operationId"), a.i64_at("/operationId"));
        let b2 = fx
            .send(
                Req::post("/v1/clusters", &theirs)
                    .idempotency_key("shared-key")
                    .token(OPERATOR2),
            )
            .await;
        b2.assert_status(202);
        assert_eq!(b2.header("idempotent-replayed"), Some("true"));
        assert_eq!(b2.i64_at("/operationId"), b.i64_at("/operationId"));

        let names: Vec<String> = fx
            .store
            .list_clusters(None)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["mine", "theirs"], "[{}]", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn a_delete_with_an_idempotency_key_replays_and_claims_the_key() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let (_, gone) = fx.create_cluster(&cluster_body(env, "gone")).await;
        let (_, kept) = fx.create_cluster(&cluster_body(env, "kept")).await;
        let kicks = fx.kicks();

        let req = Req::delete(&format!("/v1/clusters/{gone}")).idempotency_key("delete-key");
        let first = fx.send(req.clone()).await;
        first.assert_status(202);
        assert_eq!(first.header("idempotent-replayed"), None);
        assert_eq!(first.str_at("/cluster/statusCode"), "TERMINATING");
        let second = fx.send(req).await;
        second.assert_status(202);
        assert_eq!(
            second.header("idempotent-replayed"),
            Some("true"),
            "[{}]",
            fx.backend
        );
        assert_eq!(second.i64_at("/operationId"), first.i64_at("/operationId"));
        assert_last_operation(&fx, first.i64_at("/operationId"), "DELETE_CLUSTER").await;
        assert_eq!(fx.kicks(), kicks + 1, "[{}]", fx.backend);

        // The key now belongs to that delete: another delete with it is refused.
        fx.refused(
            Req::delete(&format!("/v1/clusters/{kept}")).idempotency_key("delete-key"),
            409,
            "CONFLICT",
            None,
            &["Idempotency-Key"],
        )
        .await;
        assert_eq!(
            fx.cluster(kept).await.status_code,
            "PROVISIONING",
            "[{}]",
            fx.backend
        );

        // Environment deletes replay the same way.
        let (_, idle) = fx.create_environment("idle").await;
        let req = Req::delete(&format!("/v1/environments/{idle}")).idempotency_key("env-delete-key");
        let first = fx.send(req.clone()).await;
        first.assert_status(202);
        assert_eq!(first.str_at("/environment/statusCode"), "DELETING");
        let second = fx.send(req).await;
        second.assert_status(202);
        assert_eq!(second.header("idempotent-replayed"), Some("true"));
        assert_eq!(second.i64_at("/operationId"), first.i64_at("/operationId"));
        assert_last_operation(&fx, first.i64_at("/operationId"), "DELETE_ENVIRONMENT").await;
    })
    .await;
}

#[tokio::test]
async fn an_invalid_idempotency_key_header_is_refused_naming_it() {
    on_both_backends(|fx| async move {
        let keys: Vec<Vec<u8>> = vec![
            "k".repeat(300).into_bytes(),
            "k".repeat(256).into_bytes(),
            Vec::new(),
            b"has space".to_vec(),
            "cl\u{e9}".as_bytes().to_vec(),
        ];
        for key in keys {
            for req in [
                Req::post("/v1/environments", &environment_body("prod")),
                Req::post("/v1/clusters", &cluster_body(1, "analytics")),
                Req::patch("/v1/clusters/1", &json!({ "numNodes": 2 })),
                Req::delete("/v1/clusters/1"),
                Req::delete("/v1/environments/1"),
            ] {
                fx.refused(
                    req.header("Idempotency-Key", key.clone()),
                    400,
                    "INVALID_FIELD",
                    Some("Idempotency-Key"),
                    &["Idempotency-Key", "255"],
                )
                .await;
            }
        }
        // 255 visible characters are a valid key.
        let longest = "k".repeat(255);
        let reply = fx
            .send(Req::post("/v1/environments", &environment_body("prod")).idempotency_key(&longest))
            .await;
        reply.assert_status(202);
    })
    .await;
}
