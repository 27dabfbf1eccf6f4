//! The health-sweep handler, called with the schedule's sample from `events/`:
//! it sweeps, writes one metric line per cluster and one per region, and
//! refuses anything that is not its schedule.

use std::sync::Mutex;

use serde_json::{json, Value};
use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver};
use shared::cloud::aws::AwsSettings;
use shared::config::HealthConfig;
use shared::store::Store;

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn setup() -> (health_sweep::AwsSweeper, Store) {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let settings = AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((emulator::fresh_account(), "test".into())),
        max_attempts: None,
    };
    let health = HealthConfig::from_env().unwrap();
    let agents = HttpAgents::new(Resolver::Directory(AgentDirectory::new()));
    (
        health_sweep::build(store.clone(), settings, &health, agents, "test".into()),
        store,
    )
}

#[tokio::test]
async fn the_scheduled_sample_runs_a_sweep() {
    let (sweeper, _store) = setup().await;
    let lines = Mutex::new(Vec::new());
    let out = health_sweep::handle(&sweeper, &sample("schedule-health-sweep.json"), &|l| {
        lines.lock().unwrap().push(l.to_owned())
    })
    .await
    .unwrap();
    assert_eq!(out["skipped"], false, "{out}");
    assert_eq!(out["clusters"], 0, "{out}");
    assert!(lines.lock().unwrap().is_empty(), "no cluster, no region swept");
}

#[tokio::test]
async fn anything_but_the_schedule_is_refused_with_a_reason() {
    let (sweeper, _store) = setup().await;
    for event in [
        json!({}),
        json!([]),
        sample("lifecycle-launch.json"),
        json!({ "detail-type": "Scheduled Event", "source": "aws.ec2" }),
    ] {
        let out = health_sweep::handle(&sweeper, &event, &|_| panic!("no metrics for a refused event"))
            .await
            .unwrap();
        let reason = out["rejected"].as_str().unwrap_or_default();
        assert!(
            reason.contains("expected an EventBridge \"Scheduled Event\""),
            "{event}: {out}"
        );
    }
}
