//! What the failover machinery relies on: Route 53 failover records that
//! follow CloudWatch alarms (`Emulator::resolve`), region outages and
//! region-scoped faults (`Emulator::set_region_outage`, `FaultRule::region`),
//! and instance types running out (`Emulator::set_capacity`), over plain
//! HTTP as the SDKs send it (moto does not check signatures).

use emulator::{fresh_account, shared, FaultRule, Resolved};

use crate::routes::send;

const ROUTE53_NS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
const ZONE: &str = "failover.example.";
const NAME: &str = "api.failover.example.";

/// The text of the first `<tag>...</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// A Route 53 REST request (signed for us-east-1, as the SDKs sign it); returns (status, body).
fn route53(account: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = send(
        "route53",
        "us-east-1",
        account,
        &format!("{method} {path}"),
        "Content-Type: text/xml\r\n",
        body,
    );
    (status, body)
}

/// A Query-protocol request of `service` in `region`; returns (status, body).
fn query(service: &str, region: &str, account: &str, body: &str) -> (u16, String) {
    let (status, _, body) = send(
        service,
        region,
        account,
        "POST /",
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n",
        body,
    );
    (status, body)
}

fn ok((status, body): (u16, String)) -> String {
    assert!((200..300).contains(&status), "HTTP {status}: {body}");
    body
}

fn create_zone(account: &str) -> String {
    let body = ok(route53(
        account,
        "POST",
        "/2013-04-01/hostedzone",
        &format!(
            "<CreateHostedZoneRequest xmlns=\"{ROUTE53_NS}\"><Name>{ZONE}</Name>\
             <CallerReference>zone-{account}</CallerReference></CreateHostedZoneRequest>"
        ),
    ));
    element(&body, "Id").expect(&body).to_string()
}

/// The alarm `name` in us-east-1 (`RegionServing` < 1 for a minute), set to `state`.
fn alarm(account: &str, name: &str, state: &str) {
    ok(query(
        "monitoring",
        "us-east-1",
        account,
        &format!(
            "Action=PutMetricAlarm&Version=2010-08-01&AlarmName={name}&Namespace=Okera%2FDM\
             &MetricName=RegionServing&Statistic=Maximum&Period=60&EvaluationPeriods=1&Threshold=1\
             &ComparisonOperator=LessThanThreshold"
        ),
    ));
    set_alarm(account, name, state);
}

fn set_alarm(account: &str, name: &str, state: &str) {
    ok(query(
        "monitoring",
        "us-east-1",
        account,
        &format!(
            "Action=SetAlarmState&Version=2010-08-01&AlarmName={name}&StateValue={state}&StateReason=test"
        ),
    ));
}

/// A `CLOUDWATCH_METRIC` health check of the alarm `name`, unhealthy on insufficient data.
fn health_check(account: &str, name: &str) -> String {
    let body = ok(route53(
        account,
        "POST",
        "/2013-04-01/healthcheck",
        &format!(
            "<CreateHealthCheckRequest xmlns=\"{ROUTE53_NS}\"><CallerReference>hc-{name}</CallerReference>\
             <HealthCheckConfig><Type>CLOUDWATCH_METRIC</Type>\
             <AlarmIdentifier><Region>us-east-1</Region><Name>{name}</Name></AlarmIdentifier>\
             <InsufficientDataHealthStatus>Unhealthy</InsufficientDataHealthStatus>\
             </HealthCheckConfig></CreateHealthCheckRequest>"
        ),
    ));
    element(&body, "Id").expect(&body).to_string()
}

fn failover_set(side: &str, set_id: &str, value: &str, health_check: &str) -> String {
    format!(
        "<Change><Action>UPSERT</Action><ResourceRecordSet><Name>{NAME}</Name><Type>A</Type>\
         <SetIdentifier>{set_id}</SetIdentifier><Failover>{side}</Failover><TTL>60</TTL>\
         <ResourceRecords><ResourceRecord><Value>{value}</Value></ResourceRecord></ResourceRecords>\
         <HealthCheckId>{health_check}</HealthCheckId></ResourceRecordSet></Change>"
    )
}

#[test]
fn resolve_follows_failover_records_health_checks_and_alarms() {
    let emulator = shared();
    let account = fresh_account();
    let zone = create_zone(&account);
    alarm(&account, "serving-east", "OK");
    alarm(&account, "serving-west", "OK");
    let east = health_check(&account, "serving-east");
    let west = health_check(&account, "serving-west");
    ok(route53(
        &account,
        "POST",
        &format!("/2013-04-01{zone}/rrset/"),
        &format!(
            "<ChangeResourceRecordSetsRequest xmlns=\"{ROUTE53_NS}\"><ChangeBatch><Changes>{}{}</Changes>\
             </ChangeBatch></ChangeResourceRecordSetsRequest>",
            failover_set("PRIMARY", "us-east-1", "10.0.0.1", &east),
            failover_set("SECONDARY", "us-west-2", "10.0.1.1", &west)
        ),
    ));

    let primary = Resolved {
        values: vec!["10.0.0.1".into()],
        set_identifier: Some("us-east-1".into()),
        failover: Some("PRIMARY".into()),
        health_check_id: Some(east.clone()),
    };
    assert_eq!(
        emulator.resolve(&account, &zone, "API.failover.example").unwrap(),
        primary
    );
    set_alarm(&account, "serving-east", "ALARM");
    // The id without "/hostedzone/" names the zone too.
    let bare = zone.trim_start_matches("/hostedzone/");
    assert_eq!(
        emulator.resolve(&account, bare, NAME).unwrap(),
        Resolved {
            values: vec!["10.0.1.1".into()],
            set_identifier: Some("us-west-2".into()),
            failover: Some("SECONDARY".into()),
            health_check_id: Some(west),
        }
    );
    // Both unhealthy: Route 53 treats both as healthy and answers the primary.
    set_alarm(&account, "serving-west", "ALARM");
    assert_eq!(emulator.resolve(&account, &zone, NAME).unwrap(), primary);

    assert_eq!(
        emulator
            .resolve(&account, &zone, "other.failover.example.")
            .unwrap(),
        Resolved::default()
    );
    assert!(emulator.resolve(&account, "ZNOSUCHZONE", NAME).is_err());
}

#[test]
fn a_region_outage_fails_every_request_of_that_region() {
    let emulator = shared();
    let account = fresh_account();
    let describe = "Action=DescribeInstances&Version=2016-11-15";
    emulator
        .set_region_outage(Some(&account), "eu-west-1", true)
        .unwrap();
    let (status, body) = query("ec2", "eu-west-1", &account, describe);
    assert_eq!(status, 503, "{body}");
    assert_eq!(element(&body, "Code"), Some("ServiceUnavailable"), "{body}");
    let (status, body) = query(
        "autoscaling",
        "eu-west-1",
        &account,
        "Action=DescribeAutoScalingGroups&Version=2011-01-01",
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");
    // Other regions, and other accounts in that region, are up.
    assert_eq!(query("ec2", "eu-west-2", &account, describe).0, 200);
    assert_eq!(query("ec2", "eu-west-1", &fresh_account(), describe).0, 200);
    assert_eq!(
        emulator
            .request_count(Some(&account), "ec2", "DescribeInstances")
            .unwrap(),
        2,
        "failed requests are counted"
    );

    // us-east-1 down takes Route 53 down with it.
    emulator
        .set_region_outage(Some(&account), "us-east-1", true)
        .unwrap();
    let (status, body) = route53(&account, "GET", "/2013-04-01/hostedzone", "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");

    emulator
        .set_region_outage(Some(&account), "eu-west-1", false)
        .unwrap();
    emulator
        .set_region_outage(Some(&account), "us-east-1", false)
        .unwrap();
    assert_eq!(query("ec2", "eu-west-1", &account, describe).0, 200);
    assert_eq!(route53(&account, "GET", "/2013-04-01/hostedzone", "").0, 200);
    assert!(emulator.set_region_outage(Some("12"), "eu-west-1", true).is_err());
}

#[test]
fn a_fault_rule_with_a_region_spares_the_other_regions() {
    let emulator = shared();
    let account = fresh_account();
    emulator
        .inject_fault(
            &FaultRule::new("ec2", "DescribeInstances", 503, "Unavailable", 1)
                .account(&account)
                .region("us-west-2"),
        )
        .unwrap();
    let describe = "Action=DescribeInstances&Version=2016-11-15";
    assert_eq!(query("ec2", "us-east-1", &account, describe).0, 200);
    let (status, body) = query("ec2", "us-west-2", &account, describe);
    assert_eq!(status, 503, "{body}");
    assert_eq!(element(&body, "Code"), Some("Unavailable"));
    assert_eq!(query("ec2", "us-west-2", &account, describe).0, 200);
}

#[test]
fn an_instance_type_runs_out_and_comes_back() {
    let emulator = shared();
    let account = fresh_account();
    let run = "Action=RunInstances&Version=2016-11-15&ImageId=ami-12c6146b&InstanceType=t2.large\
               &MinCount=1&MaxCount=1";
    emulator
        .set_capacity(&account, "us-east-1", "t2.large", Some(1))
        .unwrap();
    assert_eq!(query("ec2", "us-east-1", &account, run).0, 200);
    let (status, body) = query("ec2", "us-east-1", &account, run);
    assert_eq!(status, 500, "{body}");
    assert_eq!(element(&body, "Code"), Some("InsufficientInstanceCapacity"));
    assert!(
        element(&body, "Message")
            .unwrap()
            .starts_with("We currently do not have sufficient t2.large capacity in the Availability Zone"),
        "{body}"
    );
    // Another region has its own capacity; lifting the limit launches again.
    assert_eq!(query("ec2", "us-west-2", &account, run).0, 200);
    emulator
        .set_capacity(&account, "us-east-1", "t2.large", None)
        .unwrap();
    assert_eq!(query("ec2", "us-east-1", &account, run).0, 200);
    assert!(emulator.set_capacity(&account, "", "t2.large", Some(1)).is_err());
}
