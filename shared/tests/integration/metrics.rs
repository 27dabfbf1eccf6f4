//! The CloudWatch adapter against the emulator (rpcv2 CBOR): alarms are put,
//! replaced, listed by prefix across pages and deleted in batches; 5xx are retried.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::MetricAlarm;
use emulator::FaultRule;
use shared::cloud::aws::{CloudWatchAdapter, ALARMS_PER_DELETE};
use shared::cloud::{AlarmSpec, CloudErrorKind, Metrics};
use shared::metrics::cluster_alarm;

use crate::support::{account, settings, REGION};

fn fault(account: &str, action: &str, status: u16, code: &str, count: u32) -> FaultRule {
    FaultRule {
        service: "monitoring".into(),
        action: action.into(),
        status,
        code: code.into(),
        count,
        account: Some(account.into()),
        ..Default::default()
    }
}

fn calls(account: &str, action: &str) -> u64 {
    emulator::shared()
        .request_count(Some(account), "monitoring", action)
        .unwrap()
}

fn tags() -> Vec<(String, String)> {
    vec![
        ("LaunchedBy".into(), "Okera".into()),
        ("okera:cluster-id".into(), "7".into()),
        ("team".into(), "data".into()),
    ]
}

/// An alarm of `name`, otherwise as the DM builds them.
fn alarm(name: &str) -> AlarmSpec {
    AlarmSpec {
        name: name.into(),
        ..cluster_alarm(REGION, 1, "okera-1-x", &[])
    }
}

/// A raw SDK client, to see what CloudWatch stored without the adapter.
async fn sdk(account: &str) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&settings(account, None).sdk_config(REGION).await)
}

async fn describe(account: &str, name: &str) -> Option<MetricAlarm> {
    let out = sdk(account)
        .await
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .unwrap();
    assert!(out.metric_alarms().len() <= 1);
    out.metric_alarms().first().cloned()
}

fn dimensions(alarm: &MetricAlarm) -> BTreeMap<String, String> {
    alarm
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap().to_owned(), d.value().unwrap().to_owned()))
        .collect()
}

async fn names(adapter: &CloudWatchAdapter, prefix: &str) -> Vec<String> {
    let mut names = adapter.alarms_with_prefix(REGION, prefix).await.unwrap();
    names.sort();
    names
}

#[tokio::test]
async fn a_put_alarm_is_stored_as_specified_with_its_tags() {
    let acct = account();
    let adapter = CloudWatchAdapter::new(settings(&acct, None));
    let spec = cluster_alarm(REGION, 7, "okera-7-sales", &tags());
    adapter.put_alarm(REGION, &spec).await.unwrap();

    let stored = describe(&acct, "okera-7-sales-health")
        .await
        .expect("the alarm exists");
    assert_eq!(stored.alarm_description(), Some(spec.description.as_str()));
    assert_eq!(stored.namespace(), Some("Okera/DM"));
    assert_eq!(stored.metric_name(), Some("ClusterReady"));
    assert_eq!(
        dimensions(&stored),
        BTreeMap::from([
            ("ClusterId".to_owned(), "7".to_owned()),
            ("Region".to_owned(), REGION.to_owned())
        ])
    );
    assert_eq!(stored.statistic().map(|s| s.as_str()), Some("Minimum"));
    assert_eq!(stored.period(), Some(60));
    assert_eq!(stored.evaluation_periods(), Some(3));
    assert_eq!(
        stored.comparison_operator().map(|c| c.as_str()),
        Some("LessThanThreshold")
    );
    assert_eq!(stored.threshold(), Some(1.0));
    assert_eq!(stored.treat_missing_data(), Some("breaching"));

    let listed = sdk(&acct)
        .await
        .list_tags_for_resource()
        .resource_arn(stored.alarm_arn().unwrap())
        .send()
        .await
        .unwrap();
    let stored_tags: BTreeMap<String, String> = listed
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    assert_eq!(stored_tags, tags().into_iter().collect());
}

#[tokio::test]
async fn putting_an_alarm_again_replaces_it() {
    let acct = account();
    let adapter = CloudWatchAdapter::new(settings(&acct, None));
    let spec = cluster_alarm(REGION, 7, "okera-7-sales", &tags());
    adapter.put_alarm(REGION, &spec).await.unwrap();
    adapter.put_alarm(REGION, &spec).await.unwrap();
    assert_eq!(names(&adapter, "okera-7-").await, vec!["okera-7-sales-health"]);

    let changed = AlarmSpec {
        threshold: 0.5,
        evaluation_periods: 5,
        treat_missing_data: "notBreaching".into(),
        description: "changed".into(),
        ..spec
    };
    adapter.put_alarm(REGION, &changed).await.unwrap();
    assert_eq!(names(&adapter, "okera-7-").await, vec!["okera-7-sales-health"]);
    let stored = describe(&acct, "okera-7-sales-health").await.unwrap();
    assert_eq!(stored.threshold(), Some(0.5));
    assert_eq!(stored.evaluation_periods(), Some(5));
    assert_eq!(stored.treat_missing_data(), Some("notBreaching"));
    assert_eq!(stored.alarm_description(), Some("changed"));
}

#[tokio::test]
async fn alarms_are_listed_by_prefix_across_pages() {
    let acct = account();
    let adapter = CloudWatchAdapter::new(settings(&acct, None)).with_page_size(3);
    let mut wanted = Vec::new();
    for i in 0..7 {
        let name = format!("okera-1-c{i}-health");
        adapter.put_alarm(REGION, &alarm(&name)).await.unwrap();
        wanted.push(name);
    }
    // Neighbours the prefix must not catch.
    for name in ["okera-12-c-health", "okera-2-c-health", "other-okera-1-c-health"] {
        adapter.put_alarm(REGION, &alarm(name)).await.unwrap();
    }
    wanted.sort();

    let before = calls(&acct, "DescribeAlarms");
    assert_eq!(names(&adapter, "okera-1-").await, wanted);
    assert_eq!(
        calls(&acct, "DescribeAlarms") - before,
        3,
        "7 alarms in pages of 3"
    );

    assert!(names(&adapter, "okera-9-").await.is_empty());
    assert_eq!(names(&adapter, "okera-12-").await, vec!["okera-12-c-health"]);
    // The default page size takes one call for all of them.
    let one_page = CloudWatchAdapter::new(settings(&acct, None));
    let before = calls(&acct, "DescribeAlarms");
    assert_eq!(names(&one_page, "okera-").await.len(), 9);
    assert_eq!(calls(&acct, "DescribeAlarms") - before, 1);
    // No prefix: every alarm.
    assert_eq!(names(&one_page, "").await.len(), 10);
}

#[tokio::test]
async fn deleting_ignores_unknown_names_and_batches_by_a_hundred() {
    let acct = account();
    let adapter = CloudWatchAdapter::new(settings(&acct, None));
    let existing = ["okera-3-a-health", "okera-3-b-health", "okera-3-c-health"];
    for name in existing.iter().chain(&["okera-4-keep-health"]) {
        adapter.put_alarm(REGION, &alarm(name)).await.unwrap();
    }
    // 250 names: the alarms at the start, in the middle and at the end,
    // unknown names in between.
    let mut doomed: Vec<String> = (0..247).map(|i| format!("okera-3-gone{i}-health")).collect();
    doomed.insert(0, existing[0].into());
    doomed.insert(150, existing[1].into());
    doomed.push(existing[2].into());
    assert_eq!(doomed.len(), 250);

    adapter.delete_alarms(REGION, &doomed).await.unwrap();
    assert_eq!(
        calls(&acct, "DeleteAlarms"),
        250_u64.div_ceil(ALARMS_PER_DELETE as u64),
        "three batches"
    );
    assert!(names(&adapter, "okera-3-").await.is_empty());
    assert_eq!(names(&adapter, "okera-").await, vec!["okera-4-keep-health"]);

    // Again: everything is unknown now, and that is fine.
    adapter.delete_alarms(REGION, &doomed).await.unwrap();
    // Nothing to delete: no call.
    let before = calls(&acct, "DeleteAlarms");
    adapter.delete_alarms(REGION, &[]).await.unwrap();
    assert_eq!(calls(&acct, "DeleteAlarms"), before);
}

#[tokio::test]
async fn a_batch_refused_for_an_unknown_name_is_retried_with_the_names_that_exist() {
    // AWS documents DeleteAlarms as deleting nothing, with ResourceNotFound
    // (404), when a name does not exist; moto deletes the others. The fault
    // plays AWS's answer once.
    let acct = account();
    let adapter = CloudWatchAdapter::new(settings(&acct, None));
    adapter
        .put_alarm(REGION, &alarm("okera-5-a-health"))
        .await
        .unwrap();
    emulator::shared()
        .inject_fault(&fault(&acct, "DeleteAlarms", 404, "ResourceNotFound", 1))
        .unwrap();
    let doomed = vec!["okera-5-a-health".to_owned(), "okera-5-gone-health".to_owned()];
    adapter.delete_alarms(REGION, &doomed).await.unwrap();
    assert_eq!(calls(&acct, "DeleteAlarms"), 2, "refused, then the existing name");
    assert!(names(&adapter, "okera-5-").await.is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_until_the_call_succeeds() {
    let acct = account();
    emulator::shared()
        .inject_fault(&fault(&acct, "PutMetricAlarm", 503, "ServiceUnavailable", 2))
        .unwrap();
    let adapter = CloudWatchAdapter::new(settings(&acct, None));
    adapter
        .put_alarm(REGION, &alarm("okera-6-a-health"))
        .await
        .unwrap();
    assert_eq!(calls(&acct, "PutMetricAlarm"), 3, "two failures, then success");
    assert!(describe(&acct, "okera-6-a-health").await.is_some());
}

#[tokio::test]
async fn when_retries_run_out_the_error_is_transient() {
    let acct = account();
    emulator::shared()
        .inject_fault(&fault(&acct, "DescribeAlarms", 503, "ServiceUnavailable", 10))
        .unwrap();
    let err = CloudWatchAdapter::new(settings(&acct, Some(2)))
        .alarms_with_prefix(REGION, "okera-")
        .await
        .unwrap_err();
    assert_eq!(err.kind, CloudErrorKind::Transient, "{err}");
    assert_eq!(err.op, "DescribeAlarms");
    assert_eq!(calls(&acct, "DescribeAlarms"), 2);
}

#[tokio::test]
async fn a_client_error_is_permanent_and_not_retried() {
    let acct = account();
    emulator::shared()
        .inject_fault(&fault(&acct, "PutMetricAlarm", 400, "InvalidParameterValue", 1))
        .unwrap();
    let err = CloudWatchAdapter::new(settings(&acct, None))
        .put_alarm(REGION, &alarm("okera-8-a-health"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, CloudErrorKind::Permanent, "{err}");
    assert_eq!(err.code, "InvalidParameterValue");
    assert_eq!(calls(&acct, "PutMetricAlarm"), 1);
}
