//! The Route 53 adapter against the emulator (with its `route53_changes`
//! plugin): zones are made once, UPSERT replaces, DELETE of a missing set is
//! `NotFound`, a name's sets are read past other names and across pages, and
//! Route 53's errors are classed.

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use emulator::FaultRule;
use shared::cloud::aws::Route53Adapter;
use shared::cloud::{CloudErrorKind, Dns, RecordSet};

use crate::support::{account, settings};

const ZONE: &str = "dm-dns.example";

fn adapter(account: &str) -> Route53Adapter {
    Route53Adapter::new(settings(account, None))
}

fn set(name: &str, kind: &str, ttl: i64, values: &[&str]) -> RecordSet {
    RecordSet {
        name: name.into(),
        kind: kind.into(),
        ttl,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
        failover: None,
    }
}

fn a(name: &str, values: &[&str]) -> RecordSet {
    set(name, "A", 60, values)
}

/// A raw SDK client, for what the adapter never does (CREATE, many changes at once).
async fn sdk(account: &str) -> aws_sdk_route53::Client {
    aws_sdk_route53::Client::new(&settings(account, None).sdk_config("us-east-1").await)
}

/// One batch of `action`s on A sets of one value each, through the SDK.
async fn raw_changes(account: &str, zone: &str, action: ChangeAction, sets: &[(String, &str)]) {
    let changes = sets
        .iter()
        .map(|(name, value)| {
            let rrset = ResourceRecordSet::builder()
                .name(name)
                .r#type(RrType::A)
                .ttl(60)
                .resource_records(ResourceRecord::builder().value(*value).build().unwrap())
                .build()
                .unwrap();
            Change::builder()
                .action(action.clone())
                .resource_record_set(rrset)
                .build()
                .unwrap()
        })
        .collect();
    sdk(account)
        .await
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap())
        .send()
        .await
        .unwrap();
}

async fn zones_named(account: &str, name: &str) -> Vec<String> {
    let wanted = format!("{}.", name.trim_end_matches('.'));
    sdk(account)
        .await
        .list_hosted_zones_by_name()
        .dns_name(name)
        .send()
        .await
        .unwrap()
        .hosted_zones()
        .iter()
        .filter(|z| z.name() == wanted)
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
        .collect()
}

fn gets(account: &str) -> u64 {
    emulator::shared()
        .request_count(Some(account), "route53", "GET")
        .unwrap()
}

fn posts(account: &str) -> u64 {
    emulator::shared()
        .request_count(Some(account), "route53", "POST")
        .unwrap()
}

#[tokio::test]
async fn ensure_zone_makes_the_zone_once() {
    let acct = account();
    let dns = adapter(&acct);
    let id = dns.ensure_zone(ZONE).await.unwrap();
    assert!(!id.starts_with('/'), "{id}");
    assert_eq!(dns.ensure_zone("dm-dns.example.").await.unwrap(), id);
    assert_eq!(dns.ensure_zone("DM-DNS.Example").await.unwrap(), id);
    assert_eq!(zones_named(&acct, ZONE).await, vec![id]);
}

#[tokio::test]
async fn concurrent_ensure_zone_calls_agree_on_one_zone() {
    let acct = account();
    let dns = adapter(&acct);
    let ids = futures_util::future::join_all((0..8).map(|_| dns.ensure_zone(ZONE))).await;
    let ids: Vec<String> = ids.into_iter().map(Result::unwrap).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(zones_named(&acct, ZONE).await, vec![ids[0].clone()]);
}

#[tokio::test]
async fn ensure_zone_recreates_a_deleted_zone_although_its_reference_is_spent() {
    let acct = account();
    let dns = adapter(&acct);
    let first = dns.ensure_zone(ZONE).await.unwrap();
    sdk(&acct)
        .await
        .delete_hosted_zone()
        .id(&first)
        .send()
        .await
        .unwrap();
    let second = dns.ensure_zone(ZONE).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(zones_named(&acct, ZONE).await, vec![second.clone()]);
    assert_eq!(dns.ensure_zone(ZONE).await.unwrap(), second);
}

#[tokio::test]
async fn an_upsert_is_read_back_and_a_second_replaces_it() {
    let acct = account();
    let dns = adapter(&acct);
    let zone = dns.ensure_zone(ZONE).await.unwrap();
    let name = format!("orders.prod.{ZONE}");
    dns.upsert(&zone, &a(&name, &["10.0.0.1", "10.0.0.2"]))
        .await
        .unwrap();
    let expected = a(&format!("{name}."), &["10.0.0.1", "10.0.0.2"]);
    assert_eq!(dns.records(&zone, &name).await.unwrap(), vec![expected.clone()]);
    // The prefixed id and the name with its final dot read the same.
    let prefixed = format!("/hostedzone/{zone}");
    assert_eq!(
        dns.records(&prefixed, &format!("{name}.")).await.unwrap(),
        vec![expected]
    );

    dns.upsert(&prefixed, &set(&format!("{name}."), "A", 30, &["10.0.0.3"]))
        .await
        .unwrap();
    assert_eq!(
        dns.records(&zone, &name).await.unwrap(),
        vec![set(&format!("{name}."), "A", 30, &["10.0.0.3"])]
    );
}

#[tokio::test]
async fn a_delete_removes_the_set_and_a_second_is_not_found() {
    let acct = account();
    let dns = adapter(&acct);
    let zone = dns.ensure_zone(ZONE).await.unwrap();
    let record = a(&format!("orders.{ZONE}"), &["10.0.0.1"]);
    dns.upsert(&zone, &record).await.unwrap();

    let stale = a(&format!("orders.{ZONE}"), &["10.9.9.9"]);
    let err = dns.delete(&zone, &stale).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (CloudErrorKind::Permanent, "InvalidChangeBatch"),
        "{err}"
    );

    dns.delete(&zone, &record).await.unwrap();
    assert_eq!(dns.records(&zone, &record.name).await.unwrap(), vec![]);
    let err = dns.delete(&zone, &record).await.unwrap_err();
    assert_eq!(err.kind, CloudErrorKind::NotFound, "{err}");
    let never = a(&format!("never.{ZONE}."), &["10.0.0.1"]);
    let err = dns.delete(&zone, &never).await.unwrap_err();
    assert_eq!(err.kind, CloudErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn records_are_those_of_the_name_only() {
    let acct = account();
    let dns = adapter(&acct);
    let zone = dns.ensure_zone(ZONE).await.unwrap();
    // In DNS order: a, b.a (under a), aa.
    for name in ["a", "b.a", "aa"] {
        dns.upsert(&zone, &a(&format!("{name}.{ZONE}"), &["10.0.0.1"]))
            .await
            .unwrap();
    }
    let txt = set(&format!("a.{ZONE}."), "TXT", 300, &["\"owner=dm\""]);
    dns.upsert(&zone, &txt).await.unwrap();
    assert_eq!(
        dns.records(&zone, &format!("a.{ZONE}")).await.unwrap(),
        vec![a(&format!("a.{ZONE}."), &["10.0.0.1"]), txt]
    );
    assert_eq!(dns.records(&zone, &format!("c.{ZONE}")).await.unwrap(), vec![]);
    assert_eq!(dns.records(&zone, &format!("zz.{ZONE}")).await.unwrap(), vec![]);
}

#[tokio::test]
async fn records_page_past_other_names_and_stop_after_theirs() {
    let acct = account();
    let zone = adapter(&acct).ensure_zone(ZONE).await.unwrap();
    // 130 other names, before and after in DNS order, in one batch.
    let others: Vec<(String, &str)> = (0..65)
        .flat_map(|i| [format!("host-{i:03}.{ZONE}"), format!("zz-{i:03}.{ZONE}")])
        .map(|name| (name, "10.1.0.1"))
        .collect();
    raw_changes(&acct, &zone, ChangeAction::Upsert, &others).await;
    let name = format!("orders.{ZONE}.");
    let sets = vec![
        a(&name, &["10.0.0.1"]),
        set(&name, "AAAA", 60, &["fd00::1"]),
        set(&name, "MX", 60, &["10 mail.example."]),
        set(&name, "TXT", 60, &["\"dm\""]),
    ];
    let dns = adapter(&acct).with_page_size(1);
    for s in &sets {
        dns.upsert(&zone, s).await.unwrap();
    }

    let before = gets(&acct);
    assert_eq!(dns.records(&zone, &name).await.unwrap(), sets);
    assert_eq!(
        gets(&acct) - before,
        5,
        "four pages of one set, then the next name"
    );

    let before = gets(&acct);
    assert_eq!(adapter(&acct).records(&zone, &name).await.unwrap(), sets);
    assert_eq!(gets(&acct) - before, 1, "one page of 300");
}

#[tokio::test]
async fn sets_made_twice_by_create_are_both_reported_and_an_upsert_leaves_one() {
    let acct = account();
    let dns = adapter(&acct);
    let zone = dns.ensure_zone(ZONE).await.unwrap();
    let name = format!("dup.{ZONE}.");
    // The emulator (not AWS) adds a second set when CREATE gives other values.
    raw_changes(&acct, &zone, ChangeAction::Create, &[(name.clone(), "10.0.0.1")]).await;
    raw_changes(&acct, &zone, ChangeAction::Create, &[(name.clone(), "10.0.0.2")]).await;
    assert_eq!(
        dns.records(&zone, &name).await.unwrap(),
        vec![a(&name, &["10.0.0.1"]), a(&name, &["10.0.0.2"])]
    );
    dns.upsert(&zone, &a(&name, &["10.0.0.3"])).await.unwrap();
    assert_eq!(
        dns.records(&zone, &name).await.unwrap(),
        vec![a(&name, &["10.0.0.3"])]
    );
}

#[tokio::test]
async fn wildcard_names_are_read_back() {
    let acct = account();
    let dns = adapter(&acct);
    let zone = dns.ensure_zone(ZONE).await.unwrap();
    let name = format!("*.wild.{ZONE}.");
    dns.upsert(&zone, &a(&name, &["10.0.0.1"])).await.unwrap();
    assert_eq!(
        dns.records(&zone, &name).await.unwrap(),
        vec![a(&name, &["10.0.0.1"])]
    );
}

#[tokio::test]
async fn names_match_whatever_their_case() {
    let acct = account();
    let dns = adapter(&acct);
    let zone = dns.ensure_zone(ZONE).await.unwrap();
    dns.upsert(&zone, &a(&format!("Orders.{ZONE}"), &["10.0.0.1"]))
        .await
        .unwrap();
    let expected = vec![a(&format!("orders.{ZONE}."), &["10.0.0.1"])];
    assert_eq!(
        dns.records(&zone, &format!("orders.{ZONE}")).await.unwrap(),
        expected
    );
    assert_eq!(
        dns.records(&zone, &format!("ORDERS.{ZONE}")).await.unwrap(),
        expected
    );
    dns.delete(&zone, &a(&format!("oRdErS.{ZONE}."), &["10.0.0.1"]))
        .await
        .unwrap();
    assert_eq!(
        dns.records(&zone, &format!("orders.{ZONE}")).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn a_missing_zone_is_permanent() {
    let acct = account();
    let dns = adapter(&acct);
    let record = a(&format!("orders.{ZONE}"), &["10.0.0.1"]);
    let errors = [
        dns.records("ZNOSUCHZONE", &record.name).await.unwrap_err(),
        dns.upsert("/hostedzone/ZNOSUCHZONE", &record).await.unwrap_err(),
        dns.delete("ZNOSUCHZONE", &record).await.unwrap_err(),
    ];
    for err in errors {
        assert_eq!(
            (err.kind, err.code.as_str()),
            (CloudErrorKind::Permanent, "NoSuchHostedZone"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_change_during_another_is_retried_then_transient() {
    let acct = account();
    let dns = adapter(&acct);
    let zone = dns.ensure_zone(ZONE).await.unwrap();
    let record = a(&format!("orders.{ZONE}"), &["10.0.0.1"]);
    let fault =
        |count| FaultRule::new("route53", "POST", 400, "PriorRequestNotComplete", count).account(&acct);

    emulator::shared().inject_fault(&fault(2)).unwrap();
    let before = posts(&acct);
    dns.upsert(&zone, &record).await.unwrap();
    assert_eq!(posts(&acct) - before, 3, "two refused, then through");

    let once = Route53Adapter::new(settings(&acct, Some(1)));
    emulator::shared().inject_fault(&fault(1)).unwrap();
    let err = once.upsert(&zone, &record).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (CloudErrorKind::Transient, "PriorRequestNotComplete"),
        "{err}"
    );
    emulator::shared()
        .inject_fault(&FaultRule::new("route53", "GET", 503, "ServiceUnavailable", 1).account(&acct))
        .unwrap();
    let err = once.records(&zone, &record.name).await.unwrap_err();
    assert_eq!(err.kind, CloudErrorKind::Transient, "{err}");
}
