//! The handler, called with the schedule's sample from `events/`: one run sets
//! the bucket's retention rules, compacts closed hours and archives old history
//! rows, on SQLite and on MariaDB. Malformed events change nothing; a run that
//! finds the lease taken does nothing, and so does a run in a standby region.

use std::sync::Arc;

use log_rotation::{Logs, LEASE};
use serde_json::{json, Value};
use shared::cloud::aws::{AwsSettings, DynamoFence, S3Adapter};
use shared::cloud::{Claimed, Fence};
use shared::config::RetentionConfig;
use shared::domain::failover::Leader;
use shared::store::Store;
use shared::time::now_ms;
use shared::workflows::archive::Archiver;
use shared::workflows::failover::Gate;
use shared::workflows::kill::KillSwitch;

use crate::support::{bucket, hour, Bucket};

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The gate of us-west-2 in a DM whose fence, in `account`, names us-east-1
/// as active.
async fn standby_gate(account: &str, store: &Store) -> Gate {
    let settings = AwsSettings {
        endpoint: Some(emulator::shared().endpoint().to_owned()),
        credentials: Some((account.to_owned(), "test".into())),
        max_attempts: None,
    };
    let fence = DynamoFence::new(settings, crate::support::REGION, "okera-dm-fence");
    fence.ensure_table(&[], None).await.unwrap();
    let first = Leader::first("us-east-1", now_ms());
    assert_eq!(fence.claim(None, &first).await.unwrap(), Claimed::Won);
    Gate::fenced(Arc::new(fence), store.clone(), crate::support::REGION)
}

async fn logs(b: &Bucket, store: Store) -> Logs<S3Adapter> {
    let fresh = crate::support::bucket_handle(&b.account);
    Logs {
        region: crate::support::REGION.into(),
        archiver: Archiver {
            store,
            objects: fresh,
            staging: b.staging.clone(),
            settings: Default::default(),
            owner: "handler-test".into(),
            kill: KillSwitch::off(),
        },
        rotation: Default::default(),
        retention: RetentionConfig::default(),
    }
}

#[tokio::test]
async fn the_schedule_sets_retention_rotates_and_archives_on_both_databases() {
    for (backend, url) in testkit::all_backends().await {
        let b = bucket(3).await;
        let store = Store::connect(&url).await.unwrap();
        let db = sqlx::AnyPool::connect(&url).await.unwrap();
        let old = now_ms() - 40 * 86_400_000;
        // The archive keeps each table's newest row (its id keeps AUTO_INCREMENT
        // from going back), so of three old rows two leave.
        for _ in 0..3 {
            sqlx::query(
                "INSERT INTO audit_log (at, principal, action, target, detail) VALUES (?, 'tester', 'SCALE', 'cluster/1', 'old')",
            )
            .bind(old)
            .execute(&db)
            .await
            .unwrap();
        }
        for (key, at) in [("old-key", old), ("new-key", now_ms())] {
            sqlx::query(
                "INSERT INTO idempotency_keys (principal, idem_key, request_hash, operation_id, target, created_at) \
                 VALUES ('tester', ?, 'h', 1, 'cluster/1', ?)",
            )
            .bind(key)
            .bind(at)
            .execute(&db)
            .await
            .unwrap();
        }
        let h = hour("planner", 3);
        let (_, lines) = b.part(&h, 1, 4, false).await;
        let logs = logs(&b, store).await;

        let emitted = std::sync::Mutex::new(Vec::new());
        let emit = |l: &str| emitted.lock().unwrap().push(l.to_owned());
        let before = emulator::roles::snapshot(emulator::shared(), &b.account);
        let out = logs
            .handle(
                &shared::workflows::failover::Gate::single("us-west-2"),
                &sample("schedule-log-rotation.json"),
                &emit,
            )
            .await
            .unwrap();
        // Every AWS call it made is one the template's role grants.
        let after = emulator::roles::snapshot(emulator::shared(), &b.account);
        emulator::roles::assert_role_allows("LogRotationFunction", &before, &after);
        let emitted = emitted.into_inner().unwrap();
        assert_eq!(emitted.len(), 1, "{backend}: one metric line per run");
        let metrics: Value = serde_json::from_str(&emitted[0]).unwrap();
        assert_eq!(
            metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            json!("Okera/DM")
        );
        assert_eq!(metrics["LogHoursCompacted"], json!(1), "{backend}: {metrics}");
        assert_eq!(metrics["HistoryRowsArchived"], json!(2), "{backend}: {metrics}");
        assert_eq!(metrics["LogPartsQuarantined"], json!(0), "{backend}: {metrics}");
        assert_eq!(out["retention"]["changed"], json!(true), "{backend}: {out}");
        assert_eq!(out["rotation"]["hoursCompacted"], json!(1), "{backend}: {out}");
        assert_eq!(out["archive"]["rows"], json!(2), "{backend}: {out}");
        assert_eq!(
            out["archive"]["idempotencyKeysExpired"],
            json!(1),
            "{backend}: {out}"
        );
        let keys: Vec<String> = sqlx::query_scalar("SELECT idem_key FROM idempotency_keys")
            .fetch_all(&db)
            .await
            .unwrap();
        assert_eq!(keys, ["new-key"], "{backend}: only the old key is forgotten");
        assert_eq!(b.lines_of(&h.compacted_key(1)).await, lines, "{backend}");
        assert_eq!(b.keys("history/").await.len(), 1, "{backend}");
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE detail = 'old'")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(left, 1, "{backend}: the archived rows left the database");

        // Again: the rules are in place and nothing is left to do.
        let again = logs
            .handle(
                &shared::workflows::failover::Gate::single("us-west-2"),
                &sample("schedule-log-rotation.json"),
                &|_| {},
            )
            .await
            .unwrap();
        assert_eq!(again["retention"]["changed"], json!(false), "{backend}: {again}");
        assert_eq!(
            again["rotation"]["hoursCompacted"],
            json!(0),
            "{backend}: {again}"
        );
        assert_eq!(again["archive"]["rows"], json!(0), "{backend}: {again}");
    }
}

#[tokio::test]
async fn a_run_while_another_holds_the_lease_does_nothing() {
    let b = bucket(3).await;
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    assert!(store.claim_lease(LEASE, "someone-else", 60_000).await.unwrap());
    let h = hour("worker", 2);
    let (key, _) = b.part(&h, 1, 2, false).await;
    let out = logs(&b, store)
        .await
        .handle(
            &shared::workflows::failover::Gate::single("us-west-2"),
            &sample("schedule-log-rotation.json"),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(out, json!({ "skipped": true }));
    assert_eq!(b.keys("").await, [key]);
}

#[tokio::test]
async fn malformed_events_are_refused_and_change_nothing() {
    let b = bucket(3).await;
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let h = hour("worker", 2);
    let (key, _) = b.part(&h, 1, 2, false).await;
    let logs = logs(&b, store).await;
    let mut wrong_source = sample("schedule-log-rotation.json");
    wrong_source["source"] = json!("aws.s3");
    for event in [
        json!(null),
        json!([]),
        json!("Scheduled Event"),
        json!({}),
        json!({ "detail-type": "Object Created", "source": "aws.events" }),
        wrong_source,
        sample("lifecycle-terminate.json"),
    ] {
        let out = logs
            .handle(
                &shared::workflows::failover::Gate::single("us-west-2"),
                &event,
                &|_| {},
            )
            .await
            .unwrap();
        let reason = out["rejected"]
            .as_str()
            .unwrap_or_else(|| panic!("{event}: {out}"));
        assert!(reason.contains("Scheduled Event"), "{reason}");
        assert_eq!(b.keys("").await, std::slice::from_ref(&key), "{event}");
    }
}

#[tokio::test]
async fn diagnostics_events_name_an_operation_or_are_refused() {
    let b = bucket(3).await;
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let logs = logs(&b, store).await;
    for event in [
        json!({ "diagnostics": {} }),
        json!({ "diagnostics": 7 }),
        json!({ "diagnostics": { "operationId": "7" } }),
        json!({ "diagnostics": { "operationId": 0 } }),
        json!({ "diagnostics": { "operationId": 7, "extra": true } }),
    ] {
        let out = logs
            .handle(
                &shared::workflows::failover::Gate::single("us-west-2"),
                &event,
                &|_| {},
            )
            .await
            .unwrap();
        let reason = out["rejected"]
            .as_str()
            .unwrap_or_else(|| panic!("{event}: {out}"));
        assert!(reason.contains("diagnostics"), "{reason}");
    }
    // The sample names an operation this store never had: nothing to build.
    let out = logs
        .handle(
            &shared::workflows::failover::Gate::single("us-west-2"),
            &sample("invoke-diagnostics.json"),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(out["diagnostics"]["state"], json!("ALREADY_FINISHED"), "{out}");
    assert_eq!(b.keys("").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_standby_region_takes_no_lease_writes_nothing_and_still_refuses_malformed_events() {
    for (backend, url) in testkit::all_backends().await {
        let b = bucket(3).await;
        let store = Store::connect(&url).await.unwrap();
        let h = hour("worker", 2);
        let (key, _) = b.part(&h, 1, 2, false).await;
        let gate = standby_gate(&b.account, &store).await;
        let logs = logs(&b, store).await;
        let writes = || {
            ["PUT", "POST", "DELETE"].map(|method| {
                emulator::shared()
                    .request_count(Some(&b.account), "s3", method)
                    .unwrap()
            })
        };
        let before = writes();
        assert!(before[0] > 0, "{backend}: the part's PUT is counted");
        for event in [
            sample("schedule-log-rotation.json"),
            sample("invoke-diagnostics.json"),
        ] {
            let out = logs
                .handle(&gate, &event, &|_| panic!("no metrics from a standby region"))
                .await
                .unwrap();
            let by = &out["standingBy"];
            assert_eq!(
                (&by["region"], &by["role"], &by["activeRegion"], &by["epoch"]),
                (
                    &json!("us-west-2"),
                    &json!("STANDBY"),
                    &json!("us-east-1"),
                    &json!(1)
                ),
                "{backend}: {event}: {out}"
            );
        }
        let mut wrong_source = sample("schedule-log-rotation.json");
        wrong_source["source"] = json!("aws.s3");
        for event in [json!({}), wrong_source] {
            let refused = logs.handle(&gate, &event, &|_| {}).await.unwrap();
            assert!(
                refused["rejected"]
                    .as_str()
                    .is_some_and(|r| r.contains("Scheduled Event")),
                "{backend}: {event}: {refused}"
            );
        }
        let bad_bundle = logs
            .handle(&gate, &json!({"diagnostics": 7}), &|_| {})
            .await
            .unwrap();
        assert!(
            bad_bundle["rejected"]
                .as_str()
                .is_some_and(|r| r.contains("diagnostics")),
            "{backend}: a malformed diagnostics invoke is refused, not stood by: {bad_bundle}"
        );
        // No lease was ever taken, and the bucket saw no write.
        let db = sqlx::AnyPool::connect(&url).await.unwrap();
        let leases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leases WHERE name = ?")
            .bind(LEASE)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(leases, 0, "{backend}");
        assert_eq!(writes(), before, "{backend}");
        assert_eq!(b.keys("").await, std::slice::from_ref(&key), "{backend}");
    }
}
