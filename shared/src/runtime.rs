//! What every function's `main` does first: JSON logs for CloudWatch, and a
//! lease owner that names this execution environment.

/// JSON log lines without timestamps (CloudWatch adds them), at the level
/// `RUST_LOG` sets (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

/// Who holds the leases this process takes: the Lambda log stream (one per
/// execution environment), else the process id.
pub fn lease_owner(function: &str) -> String {
    let instance =
        std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| std::process::id().to_string());
    format!("{function}-{instance}")
}

/// A required environment variable, or an error naming it.
pub fn required_var(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow::anyhow!("environment variable {name} is not set"))
}

/// The gate of this function's region: fenced by the DynamoDB table when the
/// DM runs in several regions (`OKERA_FENCE_TABLE` set), else always active.
#[cfg(feature = "aws-dynamodb")]
pub fn gate(
    store: &crate::store::Store,
    settings: &crate::cloud::aws::AwsSettings,
) -> anyhow::Result<crate::workflows::failover::Gate> {
    use crate::workflows::failover::{FailoverSettings, Gate};
    let region = required_var("OKERA_REGION").or_else(|_| required_var("AWS_REGION"))?;
    Ok(match FailoverSettings::from_env().map_err(anyhow::Error::msg)? {
        None => Gate::single(&region),
        Some(f) => Gate::fenced(
            std::sync::Arc::new(crate::cloud::aws::DynamoFence::new(
                settings.clone(),
                &f.region,
                &f.fence_table,
            )),
            store.clone(),
            &f.region,
        ),
    })
}

/// What the health functions start from: the configuration, the health
/// settings, the store, and AWS settings (the endpoint override, if any).
#[cfg(feature = "aws")]
pub async fn health_function() -> anyhow::Result<(
    crate::config::HealthConfig,
    crate::store::Store,
    crate::cloud::aws::AwsSettings,
)> {
    use anyhow::Context;
    let config = crate::config::Config::from_env()
        .map_err(anyhow::Error::msg)
        .context("reading configuration")?;
    let health = crate::config::HealthConfig::from_env()
        .map_err(anyhow::Error::msg)
        .context("reading configuration")?;
    let store = crate::store::Store::connect(&config.db_url)
        .await
        .context("connecting to the state store")?;
    let settings = crate::cloud::aws::AwsSettings {
        endpoint: config.aws_endpoint,
        ..Default::default()
    };
    Ok((health, store, settings))
}
