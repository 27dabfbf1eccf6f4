//! The runbooks function in Lambda: configuration, store and clients are built
//! once; each event runs the due runbooks, or one.

#![recursion_limit = "256"]

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::cloud::agents::{HttpAgents, Resolver};
use shared::cloud::aws::AwsSettings;
use shared::config::dns_zone_from_env;
use shared::domain::health::AGENT_PORT;
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
    let db_url = std::env::var("OKERA_DB_URL").context("OKERA_DB_URL is not set")?;
    let zone = dns_zone_from_env().map_err(anyhow::Error::msg)?;
    let reconciler =
        std::env::var("OKERA_RECONCILER_FUNCTION").context("OKERA_RECONCILER_FUNCTION is not set")?;
    let home_region = std::env::var("AWS_REGION").context("AWS_REGION is not set")?;
    let store = Store::connect(&db_url)
        .await
        .context("connecting to the state store")?;
    let settings = AwsSettings {
        endpoint: std::env::var("AWS_ENDPOINT_URL").ok().filter(|s| !s.is_empty()),
        ..Default::default()
    };
    let owner = format!(
        "lambda-{}",
        std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| std::process::id().to_string())
    );
    let agents = HttpAgents::new(Resolver::PrivateIp { port: AGENT_PORT });
    let gate = shared::runtime::gate(&store, &settings)?;
    let runner = runbooks::build(store, settings, &home_region, zone, agents, reconciler, owner);
    let (runner, gate) = (&runner, &gate);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        runbooks::handle(runner, gate, &event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
