//! The real adapters over the AWS SDK: one client per region, an optional endpoint
//! override for the emulator, and the SDK's standard retry mode (exponential
//! backoff with full jitter, capped; throttling and 5xx retried, other 4xx not).

#[cfg(feature = "aws-autoscaling")]
mod autoscaling;
#[cfg(feature = "aws-cloudwatch")]
mod cloudwatch;
#[cfg(feature = "aws-dynamodb")]
mod dynamodb;
#[cfg(feature = "aws-ec2")]
mod ec2;
#[cfg(feature = "aws-lambda")]
mod lambda;
#[cfg(feature = "aws-rds")]
mod rds;
#[cfg(feature = "aws-route53")]
mod route53;
#[cfg(feature = "aws-s3")]
mod s3;

#[cfg(feature = "aws-autoscaling")]
pub use autoscaling::AutoScalingAdapter;
#[cfg(feature = "aws-cloudwatch")]
pub use cloudwatch::{CloudWatchAdapter, ALARMS_PER_DELETE, ALARMS_PER_PAGE};
#[cfg(feature = "aws-dynamodb")]
pub use dynamodb::DynamoFence;
#[cfg(feature = "aws-ec2")]
pub use ec2::Ec2Adapter;
#[cfg(feature = "aws-lambda")]
pub use lambda::LambdaAdapter;
#[cfg(feature = "aws-rds")]
pub use rds::{arn_region, RdsAdapter};
#[cfg(feature = "aws-route53")]
pub use route53::{Route53Adapter, RECORDS_PER_PAGE};
#[cfg(feature = "aws-s3")]
pub use s3::S3Adapter;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{CloudError, CloudErrorKind};

/// How to reach AWS: the real thing (default credentials chain, no override) or an
/// emulator on loopback (`endpoint` and static test credentials).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// `AWS_ENDPOINT_URL`, for the emulator only.
    pub endpoint: Option<String>,
    /// Static credentials; `None` uses the default chain (the function's role in Lambda).
    pub credentials: Option<(String, String)>,
    /// Attempts per call, the first included (default 5).
    pub max_attempts: Option<u32>,
}

impl AwsSettings {
    /// Builds the SDK configuration for one region.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        let retry = RetryConfig::standard()
            .with_max_attempts(self.max_attempts.unwrap_or(5))
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(5));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .retry_config(retry);
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((id, secret)) = &self.credentials {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "dm-static",
            ));
        }
        loader.load().await
    }
}

/// A cache of one SDK client per region, built on first use.
pub(crate) struct PerRegion<C> {
    settings: AwsSettings,
    clients: Mutex<HashMap<String, Arc<C>>>,
    build: fn(&SdkConfig, &AwsSettings) -> C,
}

impl<C> PerRegion<C> {
    pub(crate) fn new(settings: AwsSettings, build: fn(&SdkConfig, &AwsSettings) -> C) -> Self {
        PerRegion {
            settings,
            clients: Mutex::new(HashMap::new()),
            build,
        }
    }

    pub(crate) async fn get(&self, region: &str) -> Arc<C> {
        if let Some(c) = self.clients.lock().expect("client cache lock").get(region) {
            return c.clone();
        }
        let config = self.settings.sdk_config(region).await;
        let client = Arc::new((self.build)(&config, &self.settings));
        self.clients
            .lock()
            .expect("client cache lock")
            .entry(region.to_owned())
            .or_insert(client)
            .clone()
    }
}

const ALREADY_EXISTS: &[&str] = &[
    "AlreadyExists",
    "InvalidGroup.Duplicate",
    "InvalidLaunchTemplateName.AlreadyExistsException",
    "InvalidPermission.Duplicate",
    "BucketAlreadyOwnedByYou",
    "HostedZoneAlreadyExists",
];
const NOT_FOUND: &[&str] = &[
    "InvalidGroup.NotFound",
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateName.NotFoundException",
    "InvalidLaunchTemplateId.Malformed",
    "InvalidInstanceID.NotFound",
    "InvalidPermission.NotFound",
    "NoSuchKey",
    "NotFound",
    "ResourceNotFoundException",
];
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestThrottled",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
];

/// Classes an SDK error by its code and HTTP status.
pub(crate) fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default().to_owned();
    let message = err.message().map(str::to_owned).unwrap_or_else(|| match &err {
        SdkError::DispatchFailure(_) => "could not reach the AWS endpoint".into(),
        SdkError::TimeoutError(_) => "the request timed out".into(),
        other => other.to_string(),
    });
    let kind = if ALREADY_EXISTS.contains(&code.as_str()) {
        CloudErrorKind::AlreadyExists
    } else if NOT_FOUND.contains(&code.as_str()) || status == Some(404) {
        CloudErrorKind::NotFound
    } else if THROTTLING.contains(&code.as_str())
        || status.is_some_and(|s| s >= 500)
        || matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
        )
    {
        CloudErrorKind::Transient
    } else {
        CloudErrorKind::Permanent
    };
    CloudError {
        op,
        kind,
        code: if code.is_empty() {
            status
                .map(|s| format!("HTTP {s}"))
                .unwrap_or_else(|| "NoResponse".into())
        } else {
            code
        },
        message,
        source: Some(Box::new(err)),
    }
}

/// Tags with one key and value, as a filter pair.
#[cfg(any(feature = "aws-ec2", feature = "aws-autoscaling"))]
pub(crate) fn tag_filter_name(key: &str) -> String {
    format!("tag:{key}")
}
