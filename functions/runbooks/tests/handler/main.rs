//! The runbooks function's handler, called directly with the events Lambda
//! would deliver: the scheduled sample and a direct invoke from `events/`, and
//! malformed events, which are refused with a reason and change nothing. The
//! engine itself is tested in `shared/tests/integration/runbooks.rs`.

use serde_json::{json, Value};
use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
use shared::cloud::aws::AwsSettings;
use shared::store::Store;

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn runner(store: &Store) -> runbooks::AwsRunner {
    let settings = AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((emulator::fresh_account(), "test".into())),
        max_attempts: None,
    };
    runbooks::build(
        store.clone(),
        settings,
        "us-west-2",
        None,
        HttpAgents::new(Resolver::Directory(AgentDirectory::new())),
        "okera-dm-reconciler".into(),
        "handler-test".into(),
    )
}

#[tokio::test]
async fn the_samples_are_handled_and_malformed_events_are_refused_on_both_backends() {
    for (backend, url) in testkit::all_backends().await {
        let store = Store::connect(&url).await.unwrap();
        let r = runner(&store);
        let gate = shared::workflows::failover::Gate::single("us-west-2");
        let scheduled = runbooks::handle(&r, &gate, &sample("schedule-runbooks.json"))
            .await
            .unwrap();
        assert_eq!(
            scheduled,
            json!({"runbooks": 0, "finished": 0, "errors": []}),
            "{backend}"
        );
        // The sample names runbook 7, which this store does not have: nothing to run.
        let one = runbooks::handle(&r, &gate, &sample("invoke-runbook.json"))
            .await
            .unwrap();
        assert_eq!(one, json!({"runbookId": 7, "outcome": "busy"}), "{backend}");
        for bad in [
            json!({}),
            json!({"runbookId": -1}),
            json!({"runbookId": 7, "clusterId": 1}),
            json!({"detail-type": "Scheduled Event", "source": "aws.s3"}),
            json!("run"),
        ] {
            let answer = runbooks::handle(&r, &gate, &bad).await.unwrap();
            let reason = answer["rejected"].as_str().unwrap_or_default();
            assert!(!reason.is_empty(), "{backend}: {bad} was not rejected: {answer}");
        }
        assert_eq!(
            store
                .due_runbooks(i64::MAX, &shared::store::RunbookKind::CLUSTER)
                .await
                .unwrap(),
            Vec::<i64>::new()
        );
    }
}
