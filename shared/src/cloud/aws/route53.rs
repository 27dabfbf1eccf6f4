//! Route 53 through the AWS SDK: the record sets of the clusters' endpoints, and
//! the hosted zone they live in.
//!
//! Route 53 is global: its API lives in `us-east-1`, so there is one client,
//! signed for that region. Zone ids are taken with or without the
//! `/hostedzone/` prefix and returned without it. Names are sent in lower case
//! (DNS names know no case, and the emulator compares them as written) and
//! read back decoded, in lower case, with the final dot.
//!
//! Errors, beyond [`classify`]:
//! * `InvalidChangeBatch` "... but it was not found" on a DELETE is `NotFound`
//!   (AWS answers 400, so `classify` alone would say `Permanent`);
//! * `NoSuchHostedZone` is `Permanent`, although AWS answers it with 404: the
//!   zone comes from the configuration or [`Dns::ensure_zone`], so a missing one
//!   is a misconfiguration that no retry mends, and reading it as `NotFound`
//!   would let a delete of a record in a wrong zone pass for done;
//! * `HostedZoneAlreadyExists` (409) is `AlreadyExists`;
//! * `PriorRequestNotComplete` (400: another change to the zone is under way),
//!   which the SDK retries as throttling, is `Transient` once its retries are spent.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_route53::error::SdkError;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::types::{
    AlarmIdentifier, Change, ChangeAction, ChangeBatch, CloudWatchRegion, HealthCheckConfig, HealthCheckType,
    InsufficientDataHealthStatus, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use aws_sdk_route53::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::operation::BuildError;
use sha2::{Digest, Sha256};

use super::{classify, AwsSettings, PerRegion};
use crate::cloud::{CloudError, CloudErrorKind, CloudResult, Dns, FailoverRouting, RecordSet};

/// The most record sets one `ListResourceRecordSets` page returns (its `MaxItems` limit).
pub const RECORDS_PER_PAGE: i32 = 300;

/// Where the Route 53 API is.
const REGION: &str = "us-east-1";
const ZONE_PREFIX: &str = "/hostedzone/";
/// How many zones one `ListHostedZonesByName` page asks for: zones of one name
/// come first, so the first page holds the one we look for, if any.
const ZONES_PER_PAGE: i32 = 100;

/// The Route 53 client.
pub struct Route53Adapter {
    clients: PerRegion<Client>,
    page_size: i32,
}

impl Route53Adapter {
    pub fn new(settings: AwsSettings) -> Self {
        Route53Adapter {
            clients: PerRegion::new(settings, |config, _| Client::new(config)),
            page_size: RECORDS_PER_PAGE,
        }
    }

    /// Sets `MaxItems` of the `ListResourceRecordSets` pages (clamped to
    /// 1..=300). The default, 300, needs the fewest calls; tests set it low to
    /// make pages.
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size.clamp(1, RECORDS_PER_PAGE);
        self
    }

    async fn client(&self) -> Arc<Client> {
        self.clients.get(REGION).await
    }

    /// The id of the first hosted zone named `name`, if any.
    async fn find_zone(&self, client: &Client, name: &str) -> CloudResult<Option<String>> {
        let wanted = canonical(name);
        let page = client
            .list_hosted_zones_by_name()
            .dns_name(name.to_lowercase())
            .max_items(ZONES_PER_PAGE)
            .send()
            .await
            .map_err(|e| classify("ListHostedZonesByName", e))?;
        Ok(page
            .hosted_zones()
            .iter()
            .find(|zone| canonical(zone.name()) == wanted)
            .map(|zone| bare_zone_id(zone.id()).to_owned()))
    }

    /// Creates a public hosted zone; `AlreadyExists` if `reference` was used.
    async fn create_zone(&self, client: &Client, name: &str, reference: &str) -> CloudResult<String> {
        let created = client
            .create_hosted_zone()
            .name(name.to_lowercase())
            .caller_reference(reference)
            .send()
            .await
            .map_err(|e| zone_error(classify("CreateHostedZone", e)))?;
        created
            .hosted_zone()
            .map(|zone| bare_zone_id(zone.id()).to_owned())
            .ok_or_else(|| CloudError {
                op: "CreateHostedZone",
                kind: CloudErrorKind::Transient,
                code: "NoHostedZone".into(),
                message: "the answer named no hosted zone".into(),
                source: None,
            })
    }

    /// One change to one record set.
    async fn change(
        &self,
        op: &'static str,
        zone_id: &str,
        action: ChangeAction,
        record: &RecordSet,
    ) -> CloudResult<()> {
        let batch = change_batch(action, record).map_err(|e| build_error(op, e))?;
        self.client()
            .await
            .change_resource_record_sets()
            .hosted_zone_id(bare_zone_id(zone_id))
            .change_batch(batch)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| change_error(op, e))
    }
}

/// A zone id without the `/hostedzone/` prefix Route 53 puts on it in answers.
fn bare_zone_id(id: &str) -> &str {
    id.strip_prefix(ZONE_PREFIX).unwrap_or(id)
}

/// A DNS name as Route 53 compares them: `\DDD` escapes (octal, as Route 53
/// writes `*` and other characters in its answers) decoded, lower case, no
/// final dot.
fn canonical(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b'\\', None) if i + 1 < bytes.len() => {
                out.push(bytes[i + 1]);
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    let mut name = String::from_utf8_lossy(&out).to_lowercase();
    if name.ends_with('.') {
        name.pop();
    }
    name
}

/// The caller reference of the zone named `name`: the same for every DM, so
/// that of two concurrent `CreateHostedZone` calls on AWS one fails with
/// `HostedZoneAlreadyExists` instead of making a second zone.
fn caller_reference(name: &str) -> String {
    format!(
        "okera-dm-zone-{}",
        hex::encode(Sha256::digest(canonical(name).as_bytes()))
    )
}

fn change_batch(action: ChangeAction, record: &RecordSet) -> Result<ChangeBatch, BuildError> {
    let values = record
        .values
        .iter()
        .map(|v| ResourceRecord::builder().value(v).build())
        .collect::<Result<Vec<_>, _>>()?;
    let mut set = ResourceRecordSet::builder()
        .name(record.name.to_lowercase())
        .r#type(RrType::from(record.kind.as_str()))
        .ttl(record.ttl)
        .set_resource_records(Some(values));
    if let Some(f) = &record.failover {
        set = set
            .set_identifier(&f.set_id)
            .failover(if f.primary {
                ResourceRecordSetFailover::Primary
            } else {
                ResourceRecordSetFailover::Secondary
            })
            .set_health_check_id(f.health_check_id.clone());
    }
    let set = set.build()?;
    ChangeBatch::builder()
        .changes(
            Change::builder()
                .action(action)
                .resource_record_set(set)
                .build()?,
        )
        .build()
}

fn record_set(set: &ResourceRecordSet) -> RecordSet {
    RecordSet {
        name: format!("{}.", canonical(set.name())),
        kind: set.r#type().as_str().to_owned(),
        // Alias sets have neither TTL nor values.
        ttl: set.ttl().unwrap_or(0),
        values: set
            .resource_records()
            .iter()
            .map(|r| r.value().to_owned())
            .collect(),
        failover: set.set_identifier().map(|id| FailoverRouting {
            set_id: id.to_owned(),
            primary: set.failover() == Some(&ResourceRecordSetFailover::Primary),
            health_check_id: set.health_check_id().map(str::to_owned),
        }),
    }
}

fn build_error(op: &'static str, err: BuildError) -> CloudError {
    CloudError {
        op,
        kind: CloudErrorKind::Permanent,
        code: "InvalidRequest".into(),
        message: err.to_string(),
        source: Some(Box::new(err)),
    }
}

/// A missing hosted zone is a misconfiguration, not a missing record.
fn zone_error(mut e: CloudError) -> CloudError {
    if e.code == "NoSuchHostedZone" {
        e.kind = CloudErrorKind::Permanent;
    }
    e
}

/// AWS refuses a DELETE of a record set that is not there with
/// `InvalidChangeBatch` "[Tried to delete resource record set [name='…',
/// type='A'] but it was not found]": that is `NotFound`. A DELETE whose values
/// differ from the set's ("… do not match the current values") stays
/// `Permanent`.
fn change_error(op: &'static str, err: SdkError<ChangeResourceRecordSetsError, HttpResponse>) -> CloudError {
    let gone = match err.as_service_error() {
        Some(ChangeResourceRecordSetsError::InvalidChangeBatch(e)) => e
            .message()
            .into_iter()
            .chain(e.messages().iter().map(String::as_str))
            .any(|m| m.contains("but it was not found")),
        _ => false,
    };
    let mut e = zone_error(classify(op, err));
    if gone {
        e.kind = CloudErrorKind::NotFound;
    }
    e
}

impl Dns for Route53Adapter {
    /// Lists from `name` on (Route 53 lists in DNS order, so a name's sets are
    /// together) and stops at the first set of another name. Names come back
    /// decoded, in lower case, with the final dot.
    async fn records(&self, zone_id: &str, name: &str) -> CloudResult<Vec<RecordSet>> {
        let client = self.client().await;
        let zone = bare_zone_id(zone_id);
        let wanted = canonical(name);
        let mut start: (String, Option<RrType>, Option<String>) = (name.to_lowercase(), None, None);
        let mut out = Vec::new();
        loop {
            let page = client
                .list_resource_record_sets()
                .hosted_zone_id(zone)
                .start_record_name(&start.0)
                .set_start_record_type(start.1.clone())
                .set_start_record_identifier(start.2.clone())
                .max_items(self.page_size)
                .send()
                .await
                .map_err(|e| zone_error(classify("ListResourceRecordSets", e)))?;
            let mut past = false;
            for set in page.resource_record_sets() {
                if canonical(set.name()) != wanted {
                    past = true;
                    break;
                }
                out.push(record_set(set));
            }
            if past || !page.is_truncated() {
                return Ok(out);
            }
            let Some(next_name) = page.next_record_name() else {
                return Ok(out);
            };
            let next = (
                next_name.to_owned(),
                page.next_record_type().cloned(),
                page.next_record_identifier().map(str::to_owned),
            );
            // A listing that does not move on would never end.
            if next == start {
                return Ok(out);
            }
            start = next;
        }
    }

    async fn upsert(&self, zone_id: &str, record: &RecordSet) -> CloudResult<()> {
        self.change(
            "ChangeResourceRecordSets(UPSERT)",
            zone_id,
            ChangeAction::Upsert,
            record,
        )
        .await
    }

    async fn delete(&self, zone_id: &str, record: &RecordSet) -> CloudResult<()> {
        self.change(
            "ChangeResourceRecordSets(DELETE)",
            zone_id,
            ChangeAction::Delete,
            record,
        )
        .await
    }

    /// Looks the health check up by its caller reference, and creates it when
    /// there is none: a `CLOUDWATCH_METRIC` check of the alarm, unhealthy on
    /// insufficient data (a region that stops publishing stops being served).
    async fn ensure_health_check(
        &self,
        reference: &str,
        alarm_region: &str,
        alarm: &str,
    ) -> CloudResult<String> {
        let client = self.client().await;
        if let Some(id) = self.find_health_check(&client, reference).await? {
            return Ok(id);
        }
        let config = HealthCheckConfig::builder()
            .r#type(HealthCheckType::CloudwatchMetric)
            .alarm_identifier(
                AlarmIdentifier::builder()
                    .region(CloudWatchRegion::from(alarm_region))
                    .name(alarm)
                    .build()
                    .map_err(|e| build_error("CreateHealthCheck", e))?,
            )
            .insufficient_data_health_status(InsufficientDataHealthStatus::Unhealthy)
            .build()
            .map_err(|e| build_error("CreateHealthCheck", e))?;
        let created = client
            .create_health_check()
            .caller_reference(reference)
            .health_check_config(config)
            .send()
            .await
            .map_err(|e| classify("CreateHealthCheck", e))?;
        created
            .health_check()
            .map(|h| h.id().to_owned())
            .ok_or_else(|| CloudError {
                op: "CreateHealthCheck",
                kind: CloudErrorKind::Transient,
                code: "NoHealthCheck".into(),
                message: "the answer named no health check".into(),
                source: None,
            })
    }

    /// Looks the zone up by name (the first exact match, public or private);
    /// creates a public one with [`caller_reference`] when there is none. If
    /// that reference is taken, another DM created the zone meanwhile: it is
    /// looked up again. If it is still missing, the zone made with that
    /// reference was deleted since (a reference is good for one zone, ever),
    /// and the zone is created with a reference made unique by the time.
    async fn ensure_zone(&self, name: &str) -> CloudResult<String> {
        let client = self.client().await;
        if let Some(id) = self.find_zone(&client, name).await? {
            return Ok(id);
        }
        let reference = caller_reference(name);
        match self.create_zone(&client, name, &reference).await {
            Err(e) if e.kind == CloudErrorKind::AlreadyExists => {
                if let Some(id) = self.find_zone(&client, name).await? {
                    return Ok(id);
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or_default();
                self.create_zone(&client, name, &format!("{reference}-{now}"))
                    .await
            }
            other => other,
        }
    }
}

impl Route53Adapter {
    /// The health check made with `reference`, if any (`ListHealthChecks`, all pages).
    async fn find_health_check(&self, client: &Client, reference: &str) -> CloudResult<Option<String>> {
        let mut marker: Option<String> = None;
        loop {
            let page = client
                .list_health_checks()
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| classify("ListHealthChecks", e))?;
            if let Some(found) = page
                .health_checks()
                .iter()
                .find(|h| h.caller_reference() == reference)
            {
                return Ok(Some(found.id().to_owned()));
            }
            match page.next_marker() {
                Some(next) if page.is_truncated() && Some(next) != marker.as_deref() => {
                    marker = Some(next.to_owned())
                }
                _ => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_decoded_in_lower_case_without_the_final_dot() {
        assert_eq!(canonical("Orders.Prod.Example.COM."), "orders.prod.example.com");
        assert_eq!(canonical("orders.prod.example.com"), "orders.prod.example.com");
        assert_eq!(canonical("\\052.example.com."), "*.example.com");
        assert_eq!(canonical("."), "");
    }

    #[test]
    fn zone_ids_lose_their_prefix() {
        assert_eq!(bare_zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(bare_zone_id("Z123"), "Z123");
    }

    #[test]
    fn the_caller_reference_depends_on_the_name_only() {
        assert_eq!(caller_reference("Example.COM."), caller_reference("example.com"));
        assert_ne!(
            caller_reference("a.example.com"),
            caller_reference("b.example.com")
        );
        assert!(caller_reference("x").len() <= 128);
    }
}
