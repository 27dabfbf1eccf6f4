//! The lifecycle function in Lambda: configuration, store, AWS clients and the
//! agent prober are built once; each event is one lifecycle action.

#![recursion_limit = "256"]

use std::sync::Arc;

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::cloud::agents::{HttpAgents, Resolver};
use shared::cloud::aws::{AwsSettings, LambdaAdapter};
use shared::config::{Config, HealthConfig};
use shared::domain::health::AGENT_PORT;
use shared::runtime::{init_logging, required_var};
use shared::store::Store;
use shared::workflows::wake::wake_by_invoke;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()
        .map_err(anyhow::Error::msg)
        .context("reading configuration")?;
    let health = HealthConfig::from_env()
        .map_err(anyhow::Error::msg)
        .context("reading configuration")?;
    let region = required_var("AWS_REGION")?;
    let reconciler = required_var("OKERA_RECONCILER_FUNCTION")?;
    let store = Store::connect(&config.db_url)
        .await
        .context("connecting to the state store")?;
    let settings = AwsSettings {
        endpoint: config.aws_endpoint.clone(),
        ..Default::default()
    };
    let kick = wake_by_invoke(
        Arc::new(LambdaAdapter::new(settings.clone(), &region)),
        reconciler,
    );
    let agents = HttpAgents::new(Resolver::PrivateIp { port: AGENT_PORT }).with_timeout(health.probe_timeout);
    let lifecycle = lifecycle::build(store, settings, &health, agents);
    let (lifecycle, kick) = (&lifecycle, &kick);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        lifecycle::handle(lifecycle, Some(kick), &event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
