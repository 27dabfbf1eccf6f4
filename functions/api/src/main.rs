//! The API function in Lambda: read the configuration once, connect the store once,
//! and let `lambda_http` feed API Gateway requests to the shared router. After a
//! write it wakes the reconciler function with an asynchronous invoke, and after a
//! diagnostics request the log-rotation function, which builds the bundle, and
//! after an upgrade, rollback, restart or cancel the runbooks function. Callers
//! are known by bearer token, or (`OKERA_AUTH=iam`) by the IAM caller that API
//! Gateway's `AWS_IAM` authorizer verified.

use std::sync::Arc;

use anyhow::Context;
use shared::cloud::aws::{AwsSettings, CloudWatchAdapter, DynamoFence, LambdaAdapter};
use shared::cloud::Functions;
use shared::config::Config;
use shared::store::Store;
use shared::workflows::commands::Limits;
use shared::workflows::failover::{Desk, FailoverSettings, FailoverWake, FenceDesk, SingleRegionDesk};

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
    // How callers are known (OKERA_AUTH, OKERA_IAM_ROLES): a bad value stops the
    // function here, before it answers anyone.
    let auth = api::Auth::from_env().context("reading the API's authentication settings")?;
    match &auth {
        api::Auth::Iam(roles) => tracing::info!(auth = "iam", principals = roles.len(), "authentication"),
        api::Auth::Tokens => tracing::info!(auth = "tokens", "authentication"),
    }
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
    let lambda = Arc::new(LambdaAdapter::new(settings.clone(), &region));
    let kick = api::wake_by_invoke(lambda.clone(), reconciler);
    let run_runbook = api::runbook_wake_by_invoke(lambda.clone(), runbooks);
    // With several DM regions (OKERA_FENCE_TABLE set): the fence, and this
    // region's failover function, which takes over and runs drills.
    let (failover, run_region_runbook): (Arc<dyn Desk>, api::RunbookWake) = match FailoverSettings::from_env()
        .map_err(anyhow::Error::msg)?
    {
        None => (
            Arc::new(SingleRegionDesk {
                region: region.clone(),
            }),
            Arc::new(|_| Box::pin(async {})),
        ),
        Some(f) => {
            let function = std::env::var("OKERA_FAILOVER_FUNCTION")
                .context("OKERA_FAILOVER_FUNCTION is not set (this region's failover function)")?;
            let fence = Arc::new(DynamoFence::new(settings.clone(), &f.region, &f.fence_table));
            let wake: FailoverWake = {
                let (lambda, function) = (lambda.clone(), function.clone());
                Arc::new(move |event| {
                    let (lambda, function) = (lambda.clone(), function.clone());
                    Box::pin(async move {
                        if let Err(e) = lambda
                            .invoke_async(&function, event.to_string().into_bytes())
                            .await
                        {
                            tracing::warn!(error = %e, "could not wake the failover function; its schedule will");
                        }
                    })
                })
            };
            let desk = FenceDesk::new(
                fence,
                CloudWatchAdapter::new(settings.clone()),
                store.clone(),
                f,
                wake,
            );
            (
                Arc::new(desk),
                api::runbook_wake_by_invoke(lambda.clone(), function),
            )
        }
    };
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
        failover,
        run_region_runbook,
        auth,
    };
    lambda_http::run(api::router(state)).await
}
