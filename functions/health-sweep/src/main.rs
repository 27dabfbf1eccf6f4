//! The health-sweep function in Lambda: configuration, store, AWS clients and
//! the agent prober are built once; each scheduled event is one sweep. Metrics
//! go to stdout as Embedded Metric Format lines, which CloudWatch Logs turns
//! into metrics without an API call.

#![recursion_limit = "256"]

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::cloud::agents::{HttpAgents, Resolver};
use shared::domain::health::AGENT_PORT;
use shared::runtime::{gate, health_function, init_logging, lease_owner};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let (health, store, settings) = health_function().await?;
    let agents = HttpAgents::new(Resolver::PrivateIp { port: AGENT_PORT }).with_timeout(health.probe_timeout);
    let gate = gate(&store, &settings)?;
    let sweeper = health_sweep::build(store, settings, &health, agents, lease_owner("health-sweep"));
    let (sweeper, gate) = (&sweeper, &gate);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        health_sweep::handle(sweeper, gate, &event.payload, &|line| println!("{line}"))
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
