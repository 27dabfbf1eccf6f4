//! The handler, called with the schedule's sample from `events/`: one run sets
//! the bucket's retention rules, compacts closed hours and archives old history
//! rows, on SQLite and on MariaDB. Malformed events change nothing; a run that
//! finds the lease taken does nothing.

use log_rotation::{Logs, LEASE};
use serde_json::{json, Value};
use shared::cloud::aws::S3Adapter;
use shared::config::RetentionConfig;
use shared::store::Store;
use shared::time::now_ms;
use shared::workflows::archive::Archiver;
use shared::workflows::kill::KillSwitch;

use crate::support::{bucket, hour, Bucket};

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
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
        let out = logs
            .handle(
                &shared::workflows::failover::Gate::single("us-west-2"),
                &sample("schedule-log-rotation.json"),
                &emit,
            )
            .await
            .unwrap();
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
