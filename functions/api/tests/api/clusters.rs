//! `POST /v1/clusters` and `PATCH`/`DELETE /v1/clusters/{id}`: the spec is checked
//! against the limits and the environment's region (instance types cached by the
//! reconciler), names are unique per environment, and protection is enforced.

use serde_json::json;

use crate::environments::bad_names;
use crate::support::*;

#[tokio::test]
async fn cluster_names_that_are_empty_too_long_uppercase_underscored_or_dash_led_are_refused() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        for (name, problem) in bad_names() {
            let req = Req::post("/v1/clusters", &cluster_body(env, &name));
            fx.refused(req, 400, "INVALID_FIELD", Some("name"), &["name", problem])
                .await;
        }
        let longest = "a".repeat(63);
        let (_, id) = fx.create_cluster(&cluster_body(env, &longest)).await;
        assert_eq!(fx.cluster(id).await.name, longest, "[{}]", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn num_nodes_of_zero_negative_or_over_the_maximum_is_refused_on_create() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        for n in [0, -1, MAX_NODES + 1, 1000] {
            let body = with(&cluster_body(env, "sized"), "numNodes", json!(n));
            let got = format!("got {n}");
            fx.refused(
                Req::post("/v1/clusters", &body),
                400,
                "INVALID_FIELD",
                Some("numNodes"),
                &["numNodes", "between 1 and 10", &got],
            )
            .await;
        }
        // The bounds themselves are accepted.
        for (name, n) in [("smallest", 1), ("largest", MAX_NODES)] {
            let (_, id) = fx
                .create_cluster(&with(&cluster_body(env, name), "numNodes", json!(n)))
                .await;
            assert_eq!(fx.cluster(id).await.num_nodes, n, "[{}]", fx.backend);
        }
    })
    .await;
}

#[tokio::test]
async fn an_update_over_the_maximum_or_with_nothing_to_change_is_refused() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let (_, id) = fx.create_cluster(&cluster_body(env, "resized")).await;
        let path = format!("/v1/clusters/{id}");
        for n in [MAX_NODES + 1, -1] {
            let got = format!("got {n}");
            fx.refused(
                Req::patch(&path, &json!({ "numNodes": n })),
                400,
                "INVALID_FIELD",
                Some("numNodes"),
                &["between 1 and 10", &got],
            )
            .await;
        }
        fx.refused(
            Req::patch(&path, &json!({})),
            400,
            "INVALID_FIELD",
            Some("numNodes"),
            &["numNodes", "terminationProtectionEnabled", "autoRepairEnabled"],
        )
        .await;
        let reply = fx
            .send(Req::patch(&path, &json!({ "numNodes": MAX_NODES })))
            .await;
        reply.assert_status(202);
        assert_eq!(fx.cluster(id).await.num_nodes, MAX_NODES, "[{}]", fx.backend);
    })
    .await;
}

#[tokio::test]
async fn an_unknown_type_or_an_instance_type_below_t2_large_or_not_offered_is_refused() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let base = cluster_body(env, "typed");
        for raw in ["BIG_CLUSTER", "standalone_cluster", ""] {
            fx.refused(
                Req::post("/v1/clusters", &with(&base, "type", json!(raw))),
                400,
                "INVALID_FIELD",
                Some("type"),
                &["type", "STANDALONE_CLUSTER", "DATA_ACCESS_CLUSTER"],
            )
            .await;
        }
        // t2.medium has 2 vCPU but 4 GiB, t2.micro 1 vCPU and 1 GiB: both below t2.large.
        for small in ["t2.medium", "t2.micro"] {
            fx.refused(
                Req::post("/v1/clusters", &with(&base, "instanceType", json!(small))),
                400,
                "INVALID_FIELD",
                Some("instanceType"),
                &[small, "8192 MiB"],
            )
            .await;
        }
        fx.refused(
            Req::post("/v1/clusters", &with(&base, "instanceType", json!("x9.huge"))),
            400,
            "INVALID_FIELD",
            Some("instanceType"),
            &["x9.huge", "not offered"],
        )
        .await;
        // Every type, t2.large and anything bigger are accepted.
        for (i, t) in [
            "STANDALONE_CLUSTER",
            "STANDALONE_JDBC_CLUSTER",
            "CATALOG_CLUSTER",
            "DATA_ACCESS_CLUSTER",
        ]
        .into_iter()
        .enumerate()
        {
            let (_, id) = fx
                .create_cluster(&with(&cluster_body(env, &format!("type-{i}")), "type", json!(t)))
                .await;
            assert_eq!(fx.cluster(id).await.cluster_type, t, "[{}]", fx.backend);
        }
        for (name, t) in [("large", "t2.large"), ("xlarge", "m5.xlarge")] {
            let (_, id) = fx
                .create_cluster(&with(&cluster_body(env, name), "instanceType", json!(t)))
                .await;
            assert_eq!(fx.cluster(id).await.instance_type, t, "[{}]", fx.backend);
        }
    })
    .await;
}

#[tokio::test]
async fn storage_below_40_gb_and_other_invalid_cluster_fields_are_refused_naming_the_field() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let base = cluster_body(env, "stored");
        let long = "d".repeat(257);
        let cases = vec![
            (with(&base, "storageGb", json!(39)), "storageGb", "got 39"),
            (with(&base, "storageGb", json!(0)), "storageGb", "got 0"),
            (with(&base, "storageGb", json!(-40)), "storageGb", "got -40"),
            (with(&base, "description", json!(long)), "description", "256"),
            (with(&base, "version", json!("2.0 beta")), "version", "2.0 beta"),
            (
                with(&base, "tags", json!({ "LaunchedBy": "me" })),
                "tags.LaunchedBy",
                "reserved",
            ),
            (
                with(&base, "tags", json!({ "okera:cluster-id": "7" })),
                "tags.okera:cluster-id",
                "reserved",
            ),
        ];
        for (body, field, mention) in cases {
            fx.refused(
                Req::post("/v1/clusters", &body),
                400,
                "INVALID_FIELD",
                Some(field),
                &[mention],
            )
            .await;
        }
        let mut ok = with(&base, "storageGb", json!(40));
        ok["description"] = json!("d".repeat(256));
        ok["tags"] = json!({ "team": "data" });
        ok["version"] = json!("2.1.0");
        let (_, id) = fx.create_cluster(&ok).await;
        let row = fx.cluster(id).await;
        assert_eq!(
            (row.storage_gb, row.odas_version.as_str()),
            (40, "2.1.0"),
            "[{}]",
            fx.backend
        );
        assert_eq!(
            row.tags.get("team").map(String::as_str),
            Some("data"),
            "[{}]",
            fx.backend
        );
    })
    .await;
}

#[tokio::test]
async fn a_cluster_in_an_unknown_environment_is_refused_naming_environment_id() {
    on_both_backends(|fx| async move {
        for env in [999, 0, -3] {
            let mention = format!("environment {env} does not exist");
            fx.refused(
                Req::post("/v1/clusters", &cluster_body(env, "orphan")),
                400,
                "INVALID_FIELD",
                Some("environmentId"),
                &[&mention],
            )
            .await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_cluster_in_an_environment_that_is_not_ready_is_refused_with_409() {
    on_both_backends(|fx| async move {
        // A new environment, before the reconciler ran: nothing is known of its region yet.
        let (_, fresh) = fx.create_environment("fresh").await;
        fx.refused(
            Req::post("/v1/clusters", &cluster_body(fresh, "early")),
            409,
            "CONFLICT",
            None,
            &["PROVISIONING", "READY"],
        )
        .await;
        // The reconciler caches the region's instance types when it readies an
        // environment there (this fixture's store has none: it reads them itself).
        assert!(!fx.store.has_instance_types(REGION).await.unwrap());
        let ready = fx.make_ready_environment_from_scratch("ready-env").await;
        let large = fx.store.instance_size(REGION, "t2.large").await.unwrap();
        assert_eq!(
            large.map(|s| (s.vcpus, s.memory_mib)),
            Some((2, 8192)),
            "[{}]",
            fx.backend
        );
        // With them known, an environment still PROVISIONING is refused all the same.
        assert_eq!(
            fx.store.get_environment(fresh).await.unwrap().status_code,
            "PROVISIONING"
        );
        fx.refused(
            Req::post("/v1/clusters", &cluster_body(fresh, "early")),
            409,
            "CONFLICT",
            None,
            &["PROVISIONING", "READY"],
        )
        .await;
        // And so is one being deleted.
        fx.send(Req::delete(&format!("/v1/environments/{ready}")))
            .await
            .assert_status(202);
        fx.refused(
            Req::post("/v1/clusters", &cluster_body(ready, "late")),
            409,
            "CONFLICT",
            None,
            &["DELETING", "READY"],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_duplicate_cluster_name_in_one_environment_is_refused_but_another_environment_may_reuse_it() {
    on_both_backends(|fx| async move {
        let first = fx.ready_environment().await;
        let second = fx.make_ready_environment("second-env").await;
        let (_, id) = fx.create_cluster(&cluster_body(first, "analytics")).await;
        fx.refused(
            Req::post("/v1/clusters", &cluster_body(first, "analytics")),
            409,
            "CONFLICT",
            None,
            &["analytics", "already exists"],
        )
        .await;
        // A different spec under the same name is still a duplicate.
        let bigger = with(&cluster_body(first, "analytics"), "numNodes", json!(3));
        fx.refused(
            Req::post("/v1/clusters", &bigger),
            409,
            "CONFLICT",
            None,
            &["analytics"],
        )
        .await;
        let (_, other) = fx.create_cluster(&cluster_body(second, "analytics")).await;
        assert_ne!(id, other);
        let clusters = fx.store.list_clusters(None).await.unwrap();
        let seen: Vec<(i64, &str)> = clusters
            .iter()
            .map(|c| (c.environment_id, c.name.as_str()))
            .collect();
        assert_eq!(
            seen,
            [(first, "analytics"), (second, "analytics")],
            "[{}]",
            fx.backend
        );
    })
    .await;
}

#[tokio::test]
async fn a_protected_cluster_cannot_be_deleted_or_scaled_to_zero_but_may_be_resized() {
    on_both_backends(|fx| async move {
        let env = fx.ready_environment().await;
        let body = with(
            &cluster_body(env, "guarded"),
            "terminationProtectionEnabled",
            json!(true),
        );
        let reply = fx.send(Req::post("/v1/clusters", &body)).await;
        reply.assert_status(202);
        assert_eq!(reply.at("/cluster/terminationProtectionEnabled"), &json!(true));
        let id = reply.i64_at("/cluster/id");
        let path = format!("/v1/clusters/{id}");

        fx.refused(
            Req::delete(&path),
            409,
            "CONFLICT",
            None,
            &["termination protection"],
        )
        .await;
        fx.refused(
            Req::patch(&path, &json!({ "numNodes": 0 })),
            409,
            "CONFLICT",
            None,
            &["termination protection"],
        )
        .await;

        let reply = fx.send(Req::patch(&path, &json!({ "numNodes": 2 }))).await;
        reply.assert_status(202);
        assert_eq!(reply.i64_at("/cluster/numNodes"), 2);
        let got = fx.send(Req::get(&path)).await;
        got.assert_status(200);
        assert_eq!(got.i64_at("/numNodes"), 2);
        assert_eq!(got.at("/terminationProtectionEnabled"), &json!(true));

        // Without protection, scaling to zero and deleting are accepted.
        fx.send(Req::patch(
            &path,
            &json!({ "terminationProtectionEnabled": false }),
        ))
        .await
        .assert_status(202);
        fx.send(Req::patch(&path, &json!({ "numNodes": 0 })))
            .await
            .assert_status(202);
        assert_eq!(fx.cluster(id).await.num_nodes, 0, "[{}]", fx.backend);
        let reply = fx.send(Req::delete(&path)).await;
        reply.assert_status(202);
        assert_eq!(reply.str_at("/cluster/statusCode"), "TERMINATING");
    })
    .await;
}
