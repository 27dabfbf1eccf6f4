//! The cold-start baseline: the smallest `lambda_runtime` function, which
//! answers every event with the event itself. It is built with the workspace's
//! `lambda_runtime`, `tokio` and release profile, so that it differs from the
//! DM's functions only in what they do before and inside their handlers.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(echo)).await
}
