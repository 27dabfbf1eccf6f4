//! The API function in Lambda: read the configuration once, connect the store once,
//! and let `lambda_http` feed API Gateway requests to the shared router. After a
//! write it wakes the reconciler function with an asynchronous invoke, and after a
//! diagnostics request the log-rotation function, which builds the bundle, and
//! after an upgrade, rollback, restart or cancel the runbooks function.

use std::sync::Arc;

use anyhow::Context;
use shared::cloud::aws::{AwsSettings, LambdaAdapter};
use shared::config::Config;
use shared::store::Store;
use shared::workflows::commands::Limits;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .init();
    let config = Config::from_env()
        .map_err(anyhow::Error::msg)
        .context("reading configuration")?;
    let store = Store::connect(&config.db_url)
        .await
        .context("connecting to the state store")?;
    let reconciler =
        std::env::var("OKERA_RECONCILER_FUNCTION").context("OKERA_RECONCILER_FUNCTION is not set")?;
    let region = std::env::var("AWS_REGION").context("AWS_REGION is not set")?;
    let settings = AwsSettings {
        endpoint: config.aws_endpoint.clone(),
        ..Default::default()
    };
    let worker = std::env::var("OKERA_LOG_ROTATION_FUNCTION")
        .context("OKERA_LOG_ROTATION_FUNCTION is not set (the function that builds diagnostics bundles)")?;
    let runbooks = std::env::var("OKERA_RUNBOOKS_FUNCTION").context(
        "OKERA_RUNBOOKS_FUNCTION is not set (the function that runs upgrades, rollbacks and restarts)",
    )?;
    let lambda = Arc::new(LambdaAdapter::new(settings, &region));
    let kick = api::wake_by_invoke(lambda.clone(), reconciler);
    let run_runbook = api::runbook_wake_by_invoke(lambda.clone(), runbooks);
    let diagnostics = api::Diagnostics {
        staging: config.staging.clone(),
        wake: shared::workflows::diagnostics::wake_by_invoke(lambda, worker),
    };
    let state = api::AppState {
        store,
        limits: Limits {
            max_nodes: config.max_nodes,
            default_version: config.default_version,
        },
        kick,
        diagnostics,
        run_runbook,
    };
    lambda_http::run(api::router(state)).await
}
