//! The API function in Lambda: read the configuration once, connect the store once,
//! and let `lambda_http` feed API Gateway requests to the shared router.

use std::sync::Arc;

use anyhow::Context;
use shared::config::Config;
use shared::store::Store;
use shared::workflows::commands::Limits;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .without_time()
        .init();
    let config = Config::from_env().map_err(anyhow::Error::msg).context("reading configuration")?;
    let store = Store::connect(&config.db_url).await.context("connecting to the state store")?;
    let state = api::AppState {
        store,
        limits: Limits { max_nodes: config.max_nodes, default_version: config.default_version },
        // In Lambda the reconcile schedule converges every change; it needs no kick.
        kick: Arc::new(|| {}),
    };
    lambda_http::run(api::router(state)).await
}
