//! The Lambda deployment's wake-up, through the real Lambda adapter against the
//! emulator: a write invokes the reconciler function asynchronously with the
//! event the reconciler parses, and a replay invokes nothing.

use std::sync::Arc;

use serde_json::{json, Value};
use shared::cloud::aws::LambdaAdapter;

use crate::support::{aws_settings, cluster_body, environment_body, on_both_backends, Req};

const FUNCTION: &str = "okera-dm-reconciler";

#[tokio::test]
async fn a_write_invokes_the_reconciler_function_asynchronously_for_its_target() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let emulator = emulator::shared();
        emulator
            .create_function(&fx.account, "us-west-2", FUNCTION)
            .unwrap();
        let env = fx.ready_environment().await;
        let lambda = LambdaAdapter::new(
            aws_settings(emulator.endpoint().to_owned(), &fx.account),
            "us-west-2",
        );
        let state = api::AppState {
            kick: api::wake_by_invoke(Arc::new(lambda), FUNCTION.into()),
            ..fx.state.clone()
        };

        let created = fx
            .send_to(
                state.clone(),
                "POST /v1/clusters".into(),
                Req::post("/v1/clusters", &cluster_body(env, "woken")).build(),
            )
            .await;
        created.assert_status(202);
        let cluster = created.i64_at("/cluster/id");
        let keyed = Req::post("/v1/environments", &environment_body("woken-env")).idempotency_key("wake-1");
        let first = fx
            .send_to(state.clone(), "POST".into(), keyed.clone().build())
            .await;
        first.assert_status(202);
        let environment = first.i64_at("/environment/id");
        let replay = fx.send_to(state.clone(), "POST".into(), keyed.build()).await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"), "[{b}]");

        let seen: Vec<Value> = emulator
            .invocations(&fx.account, FUNCTION)
            .unwrap()
            .iter()
            .map(|p| serde_json::from_str(p).unwrap())
            .collect();
        assert_eq!(
            seen,
            vec![
                json!({ "clusterId": cluster }),
                json!({ "environmentId": environment })
            ],
            "[{b}]"
        );
    })
    .await;
}

#[tokio::test]
async fn a_write_succeeds_when_the_reconciler_function_cannot_be_invoked() {
    on_both_backends(|fx| async move {
        // No function exists in this account: AWS answers 404, the write stands,
        // and the schedule will converge it.
        let emulator = emulator::shared();
        let lambda = LambdaAdapter::new(
            aws_settings(emulator.endpoint().to_owned(), &fx.account),
            "us-west-2",
        );
        let state = api::AppState {
            kick: api::wake_by_invoke(Arc::new(lambda), FUNCTION.into()),
            ..fx.state.clone()
        };
        let created = fx
            .send_to(
                state,
                "POST".into(),
                Req::post("/v1/environments", &environment_body("lonely")).build(),
            )
            .await;
        created.assert_status(202);
        assert_eq!(
            fx.store.list_environments().await.unwrap().len(),
            1,
            "[{}]",
            fx.backend
        );
    })
    .await;
}
