//! The log-rotation function in Lambda: configuration, store and S3 client are
//! built once; each event is one run.

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::cloud::aws::{AwsSettings, S3Adapter};
use shared::config::{Config, RetentionConfig};
use shared::runtime::{init_logging, lease_owner};
use shared::store::Store;
use shared::workflows::archive::Archiver;
use shared::workflows::kill::KillSwitch;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env()
        .map_err(anyhow::Error::msg)
        .context("reading configuration")?;
    let retention = RetentionConfig::from_env()
        .map_err(anyhow::Error::msg)
        .context("reading configuration")?;
    let region = std::env::var("AWS_REGION").context("AWS_REGION is not set")?;
    let store = Store::connect(&config.db_url)
        .await
        .context("connecting to the state store")?;
    let settings = AwsSettings {
        endpoint: config.aws_endpoint.clone(),
        ..Default::default()
    };
    let gate = shared::runtime::gate(&store, &settings)?;
    let logs = log_rotation::Logs {
        region: region.clone(),
        archiver: Archiver {
            store,
            objects: S3Adapter::new(settings, &region),
            staging: config.staging.clone(),
            settings: Default::default(),
            owner: lease_owner("log-rotation"),
            kill: KillSwitch::off(),
        },
        rotation: Default::default(),
        retention,
    };
    let (logs, gate) = (&logs, &gate);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        logs.handle(gate, &event.payload, &|line| println!("{line}"))
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
