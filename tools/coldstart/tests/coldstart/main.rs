//! The measurement against the real baseline binary: a cold start through the
//! Runtime API stand-in, and failures that count as failures.

use std::path::PathBuf;
use std::time::Duration;

use coldstart::measure::{cold_start, Failure, Launch, Stage};
use serde_json::{json, Value};

fn hello(event: &Value, env: &[(&str, &str)]) -> Launch {
    Launch {
        program: PathBuf::from(env!("CARGO_BIN_EXE_hello-lambda")),
        function_name: "hello-lambda".into(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        log_stream: "test".into(),
        event: serde_json::to_vec(event).unwrap(),
        // Not a limit on speed: only that a broken run ends the test.
        timeout: Duration::from_secs(600),
        log: None,
    }
}

#[tokio::test]
async fn the_baseline_answers_its_first_event_and_every_figure_is_measured() {
    let event = json!({ "detail-type": "Scheduled Event", "detail": {} });
    let run = cold_start(&hello(&event, &[])).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&run.response).unwrap(), event);
    assert!(run.init > Duration::ZERO, "{run:?}");
    assert!(run.invocation > Duration::ZERO, "{run:?}");
    // A live Rust process holds at least its stack and runtime: well over 100 KiB.
    assert!(run.peak_rss > 100 * 1024, "{run:?}");
}

#[tokio::test]
async fn a_binary_that_dies_during_init_is_a_failed_run() {
    // lambda_runtime panics on a memory size that is not a number.
    let launch = hello(&json!({}), &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")]);
    match cold_start(&launch).await {
        Err(Failure::Exited { stage, status }) => {
            assert_eq!(stage, Stage::Init);
            assert!(!status.success());
        }
        other => panic!("expected an exit during init, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_binary_is_a_failed_run() {
    let mut launch = hello(&json!({}), &[]);
    launch.program = PathBuf::from("/nonexistent/coldstart-test-binary");
    assert!(matches!(cold_start(&launch).await, Err(Failure::Spawn(..))));
}
