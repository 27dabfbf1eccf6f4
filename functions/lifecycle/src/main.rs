//! The lifecycle function in Lambda: configuration, store, AWS clients and the
//! agent prober are built once; each event is one lifecycle action.

#![recursion_limit = "256"]

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::cloud::agents::{HttpAgents, Resolver};
use shared::cloud::aws::LambdaAdapter;
use shared::domain::health::AGENT_PORT;
use shared::runtime::{gate, health_function, init_logging, required_var};
use shared::workflows::wake::wake_by_invoke;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let (health, store, settings) = health_function().await?;
    let region = required_var("AWS_REGION")?;
    let reconciler = required_var("OKERA_RECONCILER_FUNCTION")?;
    let kick = wake_by_invoke(
        Arc::new(LambdaAdapter::new(settings.clone(), &region)),
        reconciler,
    );
    let agents = HttpAgents::new(Resolver::PrivateIp { port: AGENT_PORT }).with_timeout(health.probe_timeout);
    let gate = gate(&store, &settings)?;
    let lifecycle = lifecycle::build(store, settings, &health, agents);
    let (lifecycle, kick, gate) = (&lifecycle, &kick, &gate);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        lifecycle::handle(lifecycle, gate, Some(kick), &event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
