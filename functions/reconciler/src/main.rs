//! The reconciler function in Lambda: configuration, store and AWS clients are
//! built once; each event runs one reconcile.

#![recursion_limit = "256"]

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::cloud::aws::AwsSettings;
use shared::config::Config;
use shared::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
    let config = Config::from_env()
        .map_err(anyhow::Error::msg)
        .context("reading configuration")?;
    let home_region = std::env::var("AWS_REGION").context("AWS_REGION is not set")?;
    let store = Store::connect(&config.db_url)
        .await
        .context("connecting to the state store")?;
    let settings = AwsSettings {
        endpoint: config.aws_endpoint.clone(),
        ..Default::default()
    };
    let owner = format!(
        "lambda-{}",
        std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| std::process::id().to_string())
    );
    let gate = shared::runtime::gate(&store, &settings)?;
    let reconciler = reconciler::build(store, &config, settings, &home_region, owner);
    let (reconciler, gate) = (&reconciler, &gate);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        reconciler::handle(reconciler, gate, &event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
