//! Lambda through the AWS SDK: asynchronous invokes, used to wake the reconciler
//! after a write.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;

use super::{classify, AwsSettings, PerRegion};
use crate::cloud::{CloudResult, Functions};

/// A Lambda client for the DM's own region.
pub struct LambdaAdapter {
    clients: PerRegion<Client>,
    region: String,
}

impl LambdaAdapter {
    pub fn new(settings: AwsSettings, region: &str) -> Self {
        LambdaAdapter {
            clients: PerRegion::new(settings, |config, _| Client::new(config)),
            region: region.to_owned(),
        }
    }
}

impl Functions for LambdaAdapter {
    async fn invoke_async(&self, function: &str, payload: Vec<u8>) -> CloudResult<()> {
        self.clients
            .get(&self.region)
            .await
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("Invoke", e))
    }
}
