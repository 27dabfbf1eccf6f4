//! CloudWatch alarms through the AWS SDK (which speaks Smithy rpcv2 CBOR to
//! CloudWatch; the emulator's `cloudwatch_cbor` plugin answers it).
//!
//! Mostly alarms go through the API: the DM's metrics are Embedded Metric Format
//! log lines ([`crate::metrics`]), which CloudWatch Logs turns into metrics. The
//! exceptions are the failover's: the serving metric and alarm states that must
//! change at once, and the replica lag read before a promotion.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic, Tag,
};
use aws_sdk_cloudwatch::Client;

use super::{classify, AwsSettings, PerRegion};
use crate::cloud::{AlarmSpec, CloudErrorKind, CloudResult, Metrics};

/// The most alarms one `DescribeAlarms` page returns (its `MaxRecords` limit).
pub const ALARMS_PER_PAGE: i32 = 100;
/// The most alarm names one `DeleteAlarms` call takes.
pub const ALARMS_PER_DELETE: usize = 100;

/// How many times [`CloudWatchAdapter::delete_alarms`] retries a batch that
/// names an alarm someone else deleted meanwhile.
const DELETE_ROUNDS: usize = 3;

/// CloudWatch clients, one per region.
pub struct CloudWatchAdapter {
    clients: PerRegion<Client>,
    page_size: i32,
}

impl CloudWatchAdapter {
    pub fn new(settings: AwsSettings) -> Self {
        CloudWatchAdapter {
            clients: PerRegion::new(settings, |config, _| Client::new(config)),
            page_size: ALARMS_PER_PAGE,
        }
    }

    /// Sets `MaxRecords` of the `DescribeAlarms` pages (clamped to 1..=100).
    /// The default, 100, needs the fewest calls; tests set it low to make pages.
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size.clamp(1, ALARMS_PER_PAGE);
        self
    }

    /// Which of `names` (at most [`ALARMS_PER_DELETE`]) exist, metric or composite.
    async fn existing(&self, client: &Client, names: &[String]) -> CloudResult<Vec<String>> {
        let mut pages = client
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(self.page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(alarm_names(&page.map_err(|e| classify("DescribeAlarms", e))?));
        }
        Ok(out)
    }

    /// Deletes one batch. AWS documents `DeleteAlarms` as deleting nothing, with
    /// `ResourceNotFound`, when any name is unknown; then only the names that
    /// still exist are deleted, so that unknown names are ignored as the port says.
    async fn delete_batch(&self, client: &Client, names: &[String]) -> CloudResult<()> {
        let mut names = names.to_vec();
        let mut round = 1;
        loop {
            if names.is_empty() {
                return Ok(());
            }
            let result = client
                .delete_alarms()
                .set_alarm_names(Some(names.clone()))
                .send()
                .await
                .map_err(|e| classify("DeleteAlarms", e));
            match result {
                Ok(_) => return Ok(()),
                Err(e) if e.kind == CloudErrorKind::NotFound && round < DELETE_ROUNDS => {
                    names = self.existing(client, &names).await?;
                    round += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn dims(dimensions: &[(String, String)]) -> Vec<Dimension> {
    dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(name).value(value).build())
        .collect()
}

/// The alarm names of one `DescribeAlarms` page.
fn alarm_names(page: &aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput) -> Vec<String> {
    let metric = page.metric_alarms().iter().filter_map(|a| a.alarm_name());
    let composite = page.composite_alarms().iter().filter_map(|a| a.alarm_name());
    metric.chain(composite).map(str::to_owned).collect()
}

impl Metrics for CloudWatchAdapter {
    /// `PutMetricAlarm` creates the alarm or replaces its whole configuration.
    /// As on AWS, tags are applied when the alarm is created and ignored when
    /// it is replaced.
    async fn put_alarm(&self, region: &str, alarm: &AlarmSpec) -> CloudResult<()> {
        let dimensions = dims(&alarm.dimensions);
        let tags = alarm
            .tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();
        self.clients
            .get(region)
            .await
            .put_metric_alarm()
            .alarm_name(&alarm.name)
            .alarm_description(&alarm.description)
            .namespace(&alarm.namespace)
            .metric_name(&alarm.metric)
            .set_dimensions(Some(dimensions))
            .statistic(Statistic::from(alarm.statistic.as_str()))
            .period(alarm.period_s)
            .evaluation_periods(alarm.evaluation_periods)
            .comparison_operator(ComparisonOperator::from(alarm.comparison.as_str()))
            .threshold(alarm.threshold)
            .treat_missing_data(&alarm.treat_missing_data)
            .set_tags(Some(tags))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutMetricAlarm", e))
    }

    /// `DescribeAlarms` with `AlarmNamePrefix`, metric and composite alarms,
    /// following `NextToken` until the last page.
    async fn alarms_with_prefix(&self, region: &str, prefix: &str) -> CloudResult<Vec<String>> {
        let client = self.clients.get(region).await;
        let mut pages = client
            .describe_alarms()
            // AWS refuses an empty prefix; no prefix lists every alarm.
            .set_alarm_name_prefix((!prefix.is_empty()).then(|| prefix.to_owned()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(self.page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(alarm_names(&page.map_err(|e| classify("DescribeAlarms", e))?));
        }
        Ok(out)
    }

    async fn put_metric(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dimensions: &[(String, String)],
        value: f64,
    ) -> CloudResult<()> {
        let datum = MetricDatum::builder()
            .metric_name(metric)
            .set_dimensions(Some(dims(dimensions)))
            .value(value)
            .timestamp(DateTime::from_millis(crate::time::now_ms()))
            .build();
        self.clients
            .get(region)
            .await
            .put_metric_data()
            .namespace(namespace)
            .metric_data(datum)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutMetricData", e))
    }

    async fn alarm_state(&self, region: &str, alarm: &str) -> CloudResult<Option<String>> {
        let out = self
            .clients
            .get(region)
            .await
            .describe_alarms()
            .alarm_names(alarm)
            .alarm_types(AlarmType::MetricAlarm)
            .send()
            .await
            .map_err(|e| classify("DescribeAlarms", e))?;
        Ok(out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(alarm))
            .and_then(|a| a.state_value())
            .map(|s| s.as_str().to_owned()))
    }

    async fn set_alarm_state(&self, region: &str, alarm: &str, state: &str, reason: &str) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .set_alarm_state()
            .alarm_name(alarm)
            .state_value(StateValue::from(state))
            .state_reason(reason)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("SetAlarmState", e))
    }

    /// `GetMetricStatistics` by the minute, `Maximum`; the newest datapoint.
    async fn latest(
        &self,
        region: &str,
        namespace: &str,
        metric: &str,
        dimensions: &[(String, String)],
        since_ms: i64,
    ) -> CloudResult<Option<f64>> {
        let now = crate::time::now_ms();
        let out = self
            .clients
            .get(region)
            .await
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(metric)
            .set_dimensions(Some(dims(dimensions)))
            .start_time(DateTime::from_millis(since_ms.min(now - 60_000)))
            .end_time(DateTime::from_millis(now + 60_000))
            .period(60)
            .statistics(Statistic::Maximum)
            .send()
            .await
            .map_err(|e| classify("GetMetricStatistics", e))?;
        Ok(out
            .datapoints()
            .iter()
            .filter_map(|d| Some((d.timestamp()?.to_millis().ok()?, d.maximum()?)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, v)| v))
    }

    /// `DeleteAlarms`, [`ALARMS_PER_DELETE`] names per call.
    async fn delete_alarms(&self, region: &str, names: &[String]) -> CloudResult<()> {
        if names.is_empty() {
            return Ok(());
        }
        let client = self.clients.get(region).await;
        for batch in names.chunks(ALARMS_PER_DELETE) {
            self.delete_batch(&client, batch).await?;
        }
        Ok(())
    }
}
