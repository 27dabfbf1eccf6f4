//! The failover function in Lambda: configuration, store and clients are built
//! once; each event is one request, alarm, runbook or scheduled run.

#![recursion_limit = "256"]

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::cloud::aws::{AwsSettings, LambdaAdapter};
use shared::config::{dns_zone_from_env, S3Location};
use shared::runtime::{init_logging, lease_owner, required_var};
use shared::store::Store;
use shared::workflows::failover::FailoverSettings;
use shared::workflows::kill::KillSwitch;
use shared::workflows::wake::wake_by_invoke;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let settings = FailoverSettings::from_env()
        .map_err(anyhow::Error::msg)?
        .context("OKERA_FENCE_TABLE is not set: the failover function serves a DM in several regions")?;
    let store = Store::connect(&required_var("OKERA_DB_URL")?)
        .await
        .context("connecting to the state store")?;
    let aws = AwsSettings {
        endpoint: std::env::var("AWS_ENDPOINT_URL").ok().filter(|s| !s.is_empty()),
        ..Default::default()
    };
    let staging = S3Location::parse(&required_var("OKERA_S3_STAGING_DIR")?)
        .map_err(anyhow::Error::msg)
        .context("OKERA_S3_STAGING_DIR")?;
    let kick = wake_by_invoke(
        Arc::new(LambdaAdapter::new(aws.clone(), &settings.region)),
        required_var("OKERA_RECONCILER_FUNCTION")?,
    );
    // OKERA_REPLICA_DB_URLS: region=url,... of the other regions' readers, for
    // a drill's check of its target's replica (optional: it needs a network path).
    let mut replicas = BTreeMap::new();
    for item in std::env::var("OKERA_REPLICA_DB_URLS")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((region, url)) = item.trim().split_once('=') {
            let replica = Store::connect(url)
                .await
                .with_context(|| format!("connecting to the replica of {region}"))?;
            replicas.insert(region.trim().to_owned(), replica);
        }
    }
    let failover = failover::build(failover::Parts {
        store,
        aws,
        settings,
        zone: dns_zone_from_env().map_err(anyhow::Error::msg)?,
        staging,
        kick,
        replicas,
        // A failover is driven in one invocation where it can (the function
        // may run 15 minutes; the schedule picks up what is left), looking
        // again every second: the RTO counts every wait.
        runbook_settings: shared::workflows::runbook::RunbookSettings {
            budget: std::time::Duration::from_secs(13 * 60),
            poll_ms: 1_000,
            ..Default::default()
        },
        owner: lease_owner("failover"),
        kill: KillSwitch::off(),
        emit: Arc::new(|line| println!("{line}")),
    });
    let failover = &failover;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        failover::handle(failover, &event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
