//! The history archive and the staging bucket's retention rules, against the
//! emulator, with the store on SQLite and MariaDB: old status history, finished
//! operations and audit rows go to S3 as gzip JSON Lines under deterministic keys
//! and only then leave the database; a kill at any step, a bad object and S3
//! faults lose nothing, delete nothing unarchived and archive nothing twice; the
//! DM's lifecycle rules keep everybody else's.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration, Tag,
};
use emulator::FaultRule;
use serde_json::{json, Map, Value};
use shared::cloud::aws::S3Adapter;
use shared::cloud::ObjectStore;
use shared::config::{RetentionConfig, S3Location};
use shared::store::archive::{BatchState, HistoryTable};
use shared::store::{AuditEntry, Store, SweepWrite};
use shared::workflows::archive::{
    archive_key, gzip, read_archive, ArchiveError, ArchiveSettings, Archiver, DISCARD_STEPS, STEPS,
};
use shared::workflows::kill::KillSwitch;
use shared::workflows::retention::{apply_retention, expiry_rules};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::support::{account, ctx, environment_spec, mark_ready, settings, REGION};

const DAY: i64 = 86_400_000;
/// "Now" in these tests; rows older than 30 days before it are old.
const NOW: i64 = 1_700_000_000_000;
const CUTOFF: i64 = NOW - 30 * DAY;
const OLD: i64 = NOW - 40 * DAY;
const RECENT: i64 = NOW - DAY;

/// One backend's store, a second pool on the same database to seed and inspect
/// rows with SQL, and a fresh emulator account with its staging bucket.
struct Fixture {
    backend: &'static str,
    store: Store,
    db: AnyPool,
    account: String,
    staging: S3Location,
}

async fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for (backend, url) in testkit::all_backends().await {
        let store = Store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{backend}: {e:?}"));
        let url = if backend == "sqlite" {
            format!("{url}?mode=rw")
        } else {
            url
        };
        let db = AnyPoolOptions::new()
            .max_connections(2)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == "sqlite" {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .unwrap();
        let account = account();
        let staging = S3Location::parse(&format!("s3://dm-{account}/staging")).unwrap();
        objects(&account, None)
            .ensure_bucket(&staging.bucket)
            .await
            .unwrap();
        out.push(Fixture {
            backend,
            store,
            db,
            account,
            staging,
        });
    }
    out
}

fn objects(account: &str, max_attempts: Option<u32>) -> S3Adapter {
    S3Adapter::new(settings(account, max_attempts), REGION)
}

impl Fixture {
    fn archiver(&self, kill: KillSwitch, batch_rows: usize) -> Archiver<S3Adapter> {
        self.archiver_with(kill, batch_rows, None)
    }

    fn archiver_with(
        &self,
        kill: KillSwitch,
        batch_rows: usize,
        max_attempts: Option<u32>,
    ) -> Archiver<S3Adapter> {
        Archiver {
            store: self.store.clone(),
            objects: objects(&self.account, max_attempts),
            staging: self.staging.clone(),
            settings: ArchiveSettings {
                batch_rows,
                ..ArchiveSettings::default()
            },
            owner: "archiver".into(),
            kill,
        }
    }

    async fn exec(&self, sql: &str, binds: &[Value]) {
        let mut query = sqlx::query(sql);
        for b in binds {
            query = match b {
                Value::Null => query.bind(None::<i64>),
                Value::Number(n) => query.bind(n.as_i64().unwrap()),
                Value::String(s) => query.bind(s.clone()),
                other => panic!("cannot bind {other}"),
            };
        }
        query.execute(&self.db).await.unwrap();
    }

    async fn history(&self, at: i64, code: &str) {
        self.exec(
            "INSERT INTO cluster_status_history (cluster_id, at, code, message) VALUES (?, ?, ?, ?)",
            &[
                json!(1),
                json!(at),
                json!(code),
                json!(format!("{code} since {at}")),
            ],
        )
        .await;
    }

    async fn operation(&self, state: &str, updated_at: i64, error: Option<&str>) {
        self.exec(
            "INSERT INTO operations (kind, target_kind, target_id, target_generation, state, steps, error, \
             principal, created_at, updated_at) VALUES ('UPDATE_CLUSTER', 'cluster', 1, 2, ?, ?, ?, 'ops', ?, ?)",
            &[
                json!(state),
                json!(r#"[{"name":"resize","state":"DONE","message":""}]"#),
                error.map_or(Value::Null, |e| json!(e)),
                json!(updated_at - 1000),
                json!(updated_at),
            ],
        )
        .await;
    }

    async fn audit(&self, at: i64, detail: &str) {
        self.exec(
            "INSERT INTO audit_log (at, principal, action, target, detail) VALUES (?, 'tester', 'SCALE', 'cluster/1', ?)",
            &[json!(at), json!(detail)],
        )
        .await;
    }

    /// Every row of a table as JSON, by id, read with SQL.
    async fn rows(&self, table: HistoryTable) -> BTreeMap<i64, Map<String, Value>> {
        let rows = sqlx::query(&format!("SELECT * FROM {} ORDER BY id", table.name()))
            .fetch_all(&self.db)
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                use sqlx::{Column, Row};
                let mut m = Map::new();
                for (i, c) in r.columns().iter().enumerate() {
                    let v = if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                        v.map_or(Value::Null, Value::from)
                    } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                        v.map_or(Value::Null, Value::from)
                    } else {
                        let b: Option<Vec<u8>> = r.try_get(i).unwrap();
                        b.map_or(Value::Null, |b| Value::from(String::from_utf8(b).unwrap()))
                    };
                    m.insert(c.name().to_owned(), v);
                }
                (m["id"].as_i64().unwrap(), m)
            })
            .collect()
    }

    async fn ids(&self, table: HistoryTable) -> BTreeSet<i64> {
        self.rows(table).await.into_keys().collect()
    }

    /// Every archive object of a table: key, and its rows.
    async fn archived(&self, table: HistoryTable) -> BTreeMap<String, Vec<Map<String, Value>>> {
        let objects = objects(&self.account, None);
        let prefix = self.staging.key(&format!("history/{}/", table.name()));
        let mut out = BTreeMap::new();
        for key in objects.list(&self.staging.bucket, &prefix).await.unwrap() {
            let body = objects.get(&self.staging.bucket, &key).await.unwrap().unwrap();
            out.insert(key, read_archive(&body).unwrap());
        }
        out
    }

    /// Every archived row of a table is in exactly one object, under the key its
    /// id range names; returns the rows by id.
    async fn archived_once(&self, table: HistoryTable) -> BTreeMap<i64, Map<String, Value>> {
        let mut by_id = BTreeMap::new();
        for (key, rows) in self.archived(table).await {
            let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
            assert!(!ids.is_empty(), "{}: {key} is empty", self.backend);
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "{}: {key} is not by id",
                self.backend
            );
            assert_eq!(
                key,
                archive_key(&self.staging, table, ids[0], ids[ids.len() - 1]),
                "{}",
                self.backend
            );
            for row in rows {
                let id = row["id"].as_i64().unwrap();
                assert!(
                    by_id.insert(id, row).is_none(),
                    "{}: {} row {id} is archived twice",
                    self.backend,
                    table.name()
                );
            }
        }
        by_id
    }

    /// No row was deleted unless it is archived: the rows seeded are exactly the
    /// rows left plus the rows archived, each once, and as they were seeded.
    async fn assert_nothing_lost(&self, seeded: &BTreeMap<HistoryTable, BTreeMap<i64, Map<String, Value>>>) {
        for (table, rows) in seeded {
            let left = self.rows(*table).await;
            let archived = self.archived_once(*table).await;
            for (id, row) in rows {
                match (left.get(id), archived.get(id)) {
                    (Some(l), None) => assert_eq!(l, row, "{}", self.backend),
                    (None, Some(a)) => assert_eq!(a, row, "{}: archived row differs", self.backend),
                    (Some(_), Some(_)) => {} // archived, not yet deleted: allowed between steps
                    (None, None) => panic!("{}: {} row {id} was lost", self.backend, table.name()),
                }
            }
        }
    }

    async fn seeded(&self) -> BTreeMap<HistoryTable, BTreeMap<i64, Map<String, Value>>> {
        let mut out = BTreeMap::new();
        for t in HistoryTable::ALL {
            out.insert(t, self.rows(t).await);
        }
        out
    }

    /// Seven old rows in each table (some operations never eligible), then one
    /// recent row each.
    async fn seed_standard(&self) {
        for i in 0..7 {
            self.history(OLD + i, if i % 2 == 0 { "READY" } else { "CONCERNING" })
                .await;
            self.audit(
                OLD + i,
                &format!("detail {i} with \"quotes\", tabs\t and ünïcode"),
            )
            .await;
        }
        for state in [
            "SUCCEEDED",
            "FAILED",
            "RUNNING",
            "SUCCEEDED",
            "PENDING",
            "FAILED",
            "SUCCEEDED",
        ] {
            let error = (state == "FAILED").then_some("AccessDenied: no");
            self.operation(state, OLD, error).await;
        }
        self.history(RECENT, "READY").await;
        self.audit(RECENT, "recent").await;
        self.operation("SUCCEEDED", RECENT, None).await;
    }

    async fn open_batches(&self) -> Vec<(HistoryTable, BatchState)> {
        self.store
            .archive_batches(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|b| b.state != BatchState::Done)
            .map(|b| (b.table, b.state))
            .collect()
    }
}

/// The old rows of the standard seed that may leave: ids 1..=7 of the status
/// history and the audit log, and the finished operations among 1..=7.
fn standard_archived() -> BTreeMap<HistoryTable, BTreeSet<i64>> {
    BTreeMap::from([
        (HistoryTable::StatusHistory, (1..=7).collect()),
        (HistoryTable::Operations, [1, 2, 4, 6, 7].into()),
        (HistoryTable::Audit, (1..=7).collect()),
    ])
}

async fn assert_standard_end_state(f: &Fixture) {
    for (table, archived) in standard_archived() {
        let in_s3: BTreeSet<i64> = f.archived_once(table).await.into_keys().collect();
        assert_eq!(in_s3, archived, "{}: {} in S3", f.backend, table.name());
        let left = f.ids(table).await;
        assert!(
            left.is_disjoint(&archived),
            "{}: {} archived rows left",
            f.backend,
            table.name()
        );
        assert_eq!(left.len() + archived.len(), 8, "{}: {}", f.backend, table.name());
    }
    assert_eq!(f.open_batches().await, [], "{}", f.backend);
}

#[tokio::test]
async fn old_rows_of_each_table_go_to_s3_as_gzip_json_lines_under_deterministic_keys_then_leave() {
    let mut contents: Vec<BTreeMap<String, Vec<u8>>> = Vec::new();
    for f in fixtures().await {
        f.seed_standard().await;
        let seeded = f.seeded().await;
        let report = Box::pin(f.archiver(KillSwitch::off(), 4).archive(CUTOFF))
            .await
            .unwrap();
        assert!(!report.skipped && !report.more, "{}: {report:?}", f.backend);
        assert_eq!((report.rows, report.discarded), (19, 0), "{}", f.backend);
        let keys: Vec<&str> = report.batches.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "staging/history/cluster_status_history/000000000001-000000000004.jsonl.gz",
                "staging/history/cluster_status_history/000000000005-000000000007.jsonl.gz",
                "staging/history/operations/000000000001-000000000006.jsonl.gz",
                "staging/history/operations/000000000007-000000000007.jsonl.gz",
                "staging/history/audit_log/000000000001-000000000004.jsonl.gz",
                "staging/history/audit_log/000000000005-000000000007.jsonl.gz",
            ],
            "{}",
            f.backend
        );
        assert_standard_end_state(&f).await;
        // Each line is the whole row, column by column, as it was in the database.
        f.assert_nothing_lost(&seeded).await;
        let op = &f.archived_once(HistoryTable::Operations).await[&2];
        let expected = json!({
            "id": 2, "kind": "UPDATE_CLUSTER", "target_kind": "cluster", "target_id": 1,
            "target_generation": 2, "state": "FAILED",
            "steps": r#"[{"name":"resize","state":"DONE","message":""}]"#,
            "error": "AccessDenied: no", "principal": "ops",
            "created_at": OLD - 1000, "updated_at": OLD,
        });
        for (column, value) in expected.as_object().unwrap() {
            assert_eq!(&op[column], value, "{}: {column}", f.backend);
        }
        assert!(
            op.keys().eq(seeded[&HistoryTable::Operations][&2].keys()),
            "{}: every column, by name: {op:?}",
            f.backend
        );
        // The journal says where every archived id is.
        let done = f.store.archive_batches(Some(HistoryTable::Audit)).await.unwrap();
        assert_eq!(
            done.iter()
                .map(|b| (b.first_id, b.last_id, b.row_count, b.state))
                .collect::<Vec<_>>(),
            [(1, 4, 4, BatchState::Done), (5, 7, 3, BatchState::Done)],
            "{}",
            f.backend
        );
        // The objects are gzip, and hold the same bytes on both databases.
        let store = objects(&f.account, None);
        let mut bytes = BTreeMap::new();
        for b in &report.batches {
            let gz = store.get(&f.staging.bucket, &b.key).await.unwrap().unwrap();
            assert_eq!(&gz[..2], b"\x1f\x8b", "{}", f.backend);
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
            bytes.insert(b.key.clone(), raw);
        }
        contents.push(bytes);

        // A second run finds nothing more to do.
        let again = Box::pin(f.archiver(KillSwitch::off(), 4).archive(CUTOFF))
            .await
            .unwrap();
        assert_eq!((again.rows, again.batches.len()), (0, 0), "{}", f.backend);
    }
    assert_eq!(
        contents[0], contents[1],
        "SQLite and MariaDB archive the same bytes"
    );
}

#[tokio::test]
async fn only_rows_older_than_the_cutoff_and_finished_operations_leave_and_the_newest_row_stays() {
    for f in fixtures().await {
        // Old and recent rows interleaved; the newest row is old.
        for at in [OLD, RECENT, OLD, RECENT, OLD, OLD] {
            f.audit(at, "x").await;
            f.history(at, "READY").await;
        }
        for state in ["RUNNING", "SUCCEEDED", "PENDING", "FAILED", "SUCCEEDED"] {
            f.operation(state, OLD, None).await;
        }
        f.operation("SUCCEEDED", RECENT, None).await;
        let report = Box::pin(f.archiver(KillSwitch::off(), 100).archive(CUTOFF))
            .await
            .unwrap();
        for table in [HistoryTable::Audit, HistoryTable::StatusHistory] {
            assert_eq!(
                f.ids(table).await,
                [2, 4, 6].into(),
                "{}: {}",
                f.backend,
                table.name()
            );
            let archived: BTreeSet<i64> = f.archived_once(table).await.into_keys().collect();
            assert_eq!(archived, [1, 3, 5].into(), "{}", f.backend);
        }
        // Running and pending operations never go, however old.
        assert_eq!(
            f.ids(HistoryTable::Operations).await,
            [1, 3, 6].into(),
            "{}",
            f.backend
        );
        let archived: BTreeSet<i64> = f
            .archived_once(HistoryTable::Operations)
            .await
            .into_keys()
            .collect();
        assert_eq!(archived, [2, 4, 5].into(), "{}", f.backend);
        assert_eq!(report.rows, 9, "{}", f.backend);

        // Once the running operation has finished and aged, it goes too, under a
        // key of its own; nothing is archived twice.
        f.exec("UPDATE operations SET state = 'SUCCEEDED' WHERE id = 1", &[])
            .await;
        let report = Box::pin(f.archiver(KillSwitch::off(), 100).archive(CUTOFF))
            .await
            .unwrap();
        assert_eq!(
            report.batches.iter().map(|b| b.key.as_str()).collect::<Vec<_>>(),
            ["staging/history/operations/000000000001-000000000001.jsonl.gz"],
            "{}",
            f.backend
        );
        let archived: BTreeSet<i64> = f
            .archived_once(HistoryTable::Operations)
            .await
            .into_keys()
            .collect();
        assert_eq!(archived, [1, 2, 4, 5].into(), "{}", f.backend);

        // A later cutoff lets the recent rows go, but never the newest one.
        let report = Box::pin(f.archiver(KillSwitch::off(), 100).archive(NOW))
            .await
            .unwrap();
        assert_eq!(f.ids(HistoryTable::Audit).await, [6].into(), "{}", f.backend);
        assert_eq!(
            f.ids(HistoryTable::Operations).await,
            [3, 6].into(),
            "{}",
            f.backend
        );
        // Two audit rows, two status history rows, no operation.
        assert_eq!(report.rows, 4, "{}", f.backend);
    }
}

#[tokio::test]
async fn a_run_stops_after_its_batch_limit_and_the_next_run_goes_on() {
    for f in fixtures().await {
        f.seed_standard().await;
        let mut limited = f.archiver(KillSwitch::off(), 4);
        limited.settings.max_batches = 4;
        let report = Box::pin(limited.archive(CUTOFF)).await.unwrap();
        assert!(report.more, "{}: {report:?}", f.backend);
        assert_eq!((report.batches.len(), report.rows), (4, 7 + 5), "{}", f.backend);
        assert_eq!(f.ids(HistoryTable::Audit).await.len(), 8, "{}", f.backend);
        let report = Box::pin(limited.archive(CUTOFF)).await.unwrap();
        assert_eq!((report.batches.len(), report.rows), (2, 7), "{}", f.backend);
        assert_standard_end_state(&f).await;
    }
}

#[tokio::test]
async fn rows_the_store_wrote_are_archived_whole() {
    for f in fixtures().await {
        let env = f
            .store
            .create_environment(&ctx(), &environment_spec("prod", false))
            .await
            .unwrap()
            .target_id;
        mark_ready(&f.store, env).await;
        f.store
            .create_environment(&ctx(), &environment_spec("dev", false))
            .await
            .unwrap();
        let audit = |detail: &str| AuditEntry {
            principal: "health-sweep".into(),
            action: "REPAIR".into(),
            target: "cluster/9".into(),
            detail: detail.into(),
        };
        f.store
            .record_sweep(
                shared::time::now_ms(),
                &SweepWrite {
                    audit: vec![audit("one"), audit("two")],
                    ..SweepWrite::default()
                },
            )
            .await
            .unwrap();
        let seeded = f.seeded().await;
        let before = f.ids(HistoryTable::Operations).await;
        assert_eq!(before.len(), 2, "{}", f.backend);
        let report = Box::pin(
            f.archiver(KillSwitch::off(), 10)
                .archive(shared::time::now_ms() + 1),
        )
        .await
        .unwrap();
        // The finished create of "prod" goes; the pending create of "dev" (the
        // newest row, too) stays. Four audit rows: all but the newest go.
        assert_eq!(f.ids(HistoryTable::Operations).await, [2].into(), "{}", f.backend);
        assert_eq!(f.ids(HistoryTable::Audit).await, [4].into(), "{}", f.backend);
        assert_eq!(report.rows, 4, "{}", f.backend);
        let op = &f.archived_once(HistoryTable::Operations).await[&1];
        assert_eq!(
            (op["kind"].as_str(), op["state"].as_str()),
            (Some("CREATE_ENVIRONMENT"), Some("SUCCEEDED")),
            "{}",
            f.backend
        );
        f.assert_nothing_lost(&seeded).await;
    }
}

#[tokio::test]
async fn a_kill_at_any_step_then_a_rerun_archives_every_old_row_exactly_once() {
    for step in STEPS {
        for f in fixtures().await {
            f.seed_standard().await;
            let seeded = f.seeded().await;
            let killed = Box::pin(f.archiver(KillSwitch::at(step), 4).archive(CUTOFF)).await;
            assert!(
                matches!(&killed, Err(ArchiveError::Killed(k)) if k.0 == step),
                "{} {step}: {killed:?}",
                f.backend
            );
            f.assert_nothing_lost(&seeded).await;
            // A killed run keeps its lease: another run waits for it to expire.
            let mut other = f.archiver(KillSwitch::off(), 4);
            other.owner = "another".into();
            assert!(
                Box::pin(other.archive(CUTOFF)).await.unwrap().skipped,
                "{} {step}",
                f.backend
            );

            let report = Box::pin(f.archiver(KillSwitch::off(), 4).archive(CUTOFF))
                .await
                .unwrap_or_else(|e| panic!("{} {step}: {e:?}", f.backend));
            assert_eq!(report.rows, 19, "{} {step}", f.backend);
            assert_standard_end_state(&f).await;
            f.assert_nothing_lost(&seeded).await;
        }
    }
}

#[tokio::test]
async fn an_object_that_fails_verification_keeps_its_rows_until_a_good_copy_is_verified() {
    for f in fixtures().await {
        f.seed_standard().await;
        let seeded = f.seeded().await;
        let bucket = f.staging.bucket.clone();
        let store = objects(&f.account, None);
        let key = archive_key(&f.staging, HistoryTable::StatusHistory, 1, 4);
        // Stopped with the first batch put and not yet verified.
        Box::pin(f.archiver(KillSwitch::at("archive-verify"), 4).archive(CUTOFF))
            .await
            .unwrap_err();
        let good = store.get(&bucket, &key).await.unwrap().unwrap();
        let lines = String::from_utf8(read_archive_raw(&good)).unwrap();
        let first_line_dropped = lines.split_inclusive('\n').skip(1).collect::<String>();
        let tampered = lines.replace("READY", "READX");
        for (what, bad) in [
            ("garbage", Some(b"not gzip".to_vec())),
            ("a line short", Some(gzip(first_line_dropped.as_bytes()))),
            ("a changed row", Some(gzip(tampered.as_bytes()))),
            ("missing", None),
        ] {
            match bad {
                Some(bad) => store.put(&bucket, &key, bad).await.unwrap(),
                None => store.delete(&bucket, std::slice::from_ref(&key)).await.unwrap(),
            }
            let err = Box::pin(f.archiver(KillSwitch::off(), 4).archive(CUTOFF))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, ArchiveError::Verify { key: k, .. } if *k == key),
                "{} {what}: {err:?}",
                f.backend
            );
            // Nothing was deleted, and the batch will be put again.
            assert_eq!(
                f.ids(HistoryTable::StatusHistory).await.len(),
                8,
                "{} {what}",
                f.backend
            );
            assert_eq!(
                f.open_batches().await,
                [(HistoryTable::StatusHistory, BatchState::Pending)],
                "{} {what}",
                f.backend
            );
            // Put again and stopped before verifying, for the next case.
            Box::pin(f.archiver(KillSwitch::at("archive-verify"), 4).archive(CUTOFF))
                .await
                .unwrap_err();
            assert_eq!(
                store.get(&bucket, &key).await.unwrap().unwrap(),
                good,
                "{}",
                f.backend
            );
        }
        let report = Box::pin(f.archiver(KillSwitch::off(), 4).archive(CUTOFF))
            .await
            .unwrap();
        assert_eq!(report.rows, 19, "{}", f.backend);
        assert_standard_end_state(&f).await;
        f.assert_nothing_lost(&seeded).await;
    }
}

fn read_archive_raw(gz: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut raw).unwrap();
    raw
}

#[tokio::test]
async fn rows_that_change_before_they_are_deleted_are_archived_again_under_one_key() {
    // Where the run is stopped, and then where the stale batch's discard is.
    let cases = [
        ("archive-put", None),
        ("archive-delete", None),
        ("archive-delete", Some(DISCARD_STEPS[0])),
        ("archive-delete", Some(DISCARD_STEPS[1])),
    ];
    for (stop, discard_kill) in cases {
        for f in fixtures().await {
            for i in 0..5 {
                f.audit(OLD + i, "x").await;
            }
            // Stop with the batch 1-4 recorded, then change it: row 4 goes (as if
            // deleted by hand) and row 2 is edited.
            Box::pin(f.archiver(KillSwitch::at(stop), 4).archive(CUTOFF))
                .await
                .unwrap_err();
            let first_key = archive_key(&f.staging, HistoryTable::Audit, 1, 4);
            f.exec("DELETE FROM audit_log WHERE id = 4", &[]).await;
            f.exec("UPDATE audit_log SET detail = 'edited' WHERE id = 2", &[])
                .await;
            let seeded = f.seeded().await;
            if let Some(k) = discard_kill {
                let err = Box::pin(f.archiver(KillSwitch::at(k), 4).archive(CUTOFF)).await;
                assert!(
                    matches!(err, Err(ArchiveError::Killed(_))),
                    "{} {k}: {err:?}",
                    f.backend
                );
                assert_eq!(
                    f.open_batches().await,
                    [(HistoryTable::Audit, BatchState::Stale)],
                    "{} {k}",
                    f.backend
                );
            }
            let report = Box::pin(f.archiver(KillSwitch::off(), 4).archive(CUTOFF))
                .await
                .unwrap_or_else(|e| panic!("{} {stop}: {e:?}", f.backend));
            assert_eq!(report.discarded, 1, "{} {stop} {discard_kill:?}", f.backend);
            assert_eq!(report.rows, 3, "{} {stop}", f.backend);
            let keys: Vec<String> = f.archived(HistoryTable::Audit).await.into_keys().collect();
            assert_eq!(
                keys,
                [archive_key(&f.staging, HistoryTable::Audit, 1, 3)],
                "{} {stop}: the stale object {first_key} is gone",
                f.backend
            );
            let archived = f.archived_once(HistoryTable::Audit).await;
            assert_eq!(archived[&2]["detail"], "edited", "{}", f.backend);
            assert_eq!(f.ids(HistoryTable::Audit).await, [5].into(), "{}", f.backend);
            f.assert_nothing_lost(&seeded).await;
            assert_eq!(f.open_batches().await, [], "{}", f.backend);
        }
    }
}

/// Fails the next `count` S3 `operation` requests of the fixture's account.
fn fault(f: &Fixture, operation: &str, status: u16, code: &str, count: u32) {
    emulator::shared()
        .inject_fault(&FaultRule::new("s3", operation, status, code, count).account(&f.account))
        .unwrap();
}

#[tokio::test]
async fn s3_errors_partway_leave_every_row_in_place_and_the_next_run_finishes() {
    for f in fixtures().await {
        f.seed_standard().await;
        let seeded = f.seeded().await;
        // The first put fails (no retries): the batch stays PENDING, rows stay.
        fault(&f, "PutObject", 500, "InternalError", 1);
        let err = Box::pin(f.archiver_with(KillSwitch::off(), 4, Some(1)).archive(CUTOFF))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Cloud(e) if e.is_retryable()),
            "{}: {err:?}",
            f.backend
        );
        assert!(err.is_retryable(), "{}", f.backend);
        assert_eq!(
            f.open_batches().await,
            [(HistoryTable::StatusHistory, BatchState::Pending)],
            "{}",
            f.backend
        );
        f.assert_nothing_lost(&seeded).await;
        assert_eq!(f.ids(HistoryTable::StatusHistory).await.len(), 8, "{}", f.backend);

        // The GET of the verification fails: the batch stays UPLOADED, rows stay.
        fault(&f, "GetObject", 500, "InternalError", 1);
        let err = Box::pin(f.archiver_with(KillSwitch::off(), 4, Some(1)).archive(CUTOFF))
            .await
            .unwrap_err();
        assert!(matches!(err, ArchiveError::Cloud(_)), "{}: {err:?}", f.backend);
        assert_eq!(
            f.open_batches().await,
            [(HistoryTable::StatusHistory, BatchState::Uploaded)],
            "{}",
            f.backend
        );
        assert_eq!(f.ids(HistoryTable::StatusHistory).await.len(), 8, "{}", f.backend);
        f.assert_nothing_lost(&seeded).await;

        // Throttling partway through is retried by the SDK: the run finishes.
        fault(&f, "PutObject", 503, "SlowDown", 2);
        fault(&f, "GetObject", 503, "SlowDown", 2);
        let report = Box::pin(f.archiver(KillSwitch::off(), 4).archive(CUTOFF))
            .await
            .unwrap();
        assert_eq!(report.rows, 19, "{}", f.backend);
        assert_standard_end_state(&f).await;
        f.assert_nothing_lost(&seeded).await;
    }
}

async fn raw_s3(account: &str) -> aws_sdk_s3::Client {
    let config = settings(account, None).sdk_config(REGION).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

/// A rule's id, prefix, expiry days and days before incomplete uploads are aborted.
type RuleSummary = (String, Option<String>, Option<i32>, Option<i32>);

async fn lifecycle_rules(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<LifecycleRule> {
    s3.get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .rules()
        .to_vec()
}

#[tokio::test]
async fn retention_rules_merge_with_rules_others_own_and_are_not_rewritten_when_unchanged() {
    let acct = account();
    let staging = S3Location::parse(&format!("s3://dm-{acct}/staging")).unwrap();
    let objects = objects(&acct, None);
    objects.ensure_bucket(&staging.bucket).await.unwrap();
    let s3 = raw_s3(&acct).await;

    // No configuration yet: the DM's three rules are put.
    let retention = RetentionConfig::default();
    let merge = apply_retention(&objects, &staging, &retention).await.unwrap();
    assert!(merge.changed && merge.foreign.is_empty(), "{merge:?}");
    let ours = lifecycle_rules(&s3, &staging.bucket).await;
    let summary: BTreeSet<RuleSummary> = ours
        .iter()
        .map(|r| {
            (
                r.id().unwrap().to_owned(),
                r.filter().and_then(|f| f.prefix()).map(str::to_owned),
                r.expiration().and_then(|e| e.days()),
                r.abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation()),
            )
        })
        .collect();
    let want =
        |id: &str, prefix: &str, days: i32| (id.to_owned(), Some(prefix.to_owned()), Some(days), Some(7));
    assert_eq!(
        summary,
        [
            want("okera-dm-logs", "staging/logs/", 30),
            want("okera-dm-diagnostics", "staging/diagnostics/", 14),
            want("okera-dm-history", "staging/history/", 365),
        ]
        .into()
    );
    assert!(ours.iter().all(|r| r.status() == &ExpirationStatus::Enabled));

    // Someone else adds rules of their own, next to ours.
    let tmp = LifecycleRule::builder()
        .id("team-tmp")
        .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(3).build())
        .build()
        .unwrap();
    let tagged = LifecycleRule::builder()
        .id("team-scratch")
        .filter(
            LifecycleRuleFilter::builder()
                .and(
                    LifecycleRuleAndOperator::builder()
                        .prefix("scratch/")
                        .tags(Tag::builder().key("keep").value("no").build().unwrap())
                        .build(),
                )
                .build(),
        )
        .status(ExpirationStatus::Disabled)
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(9).build())
        .build()
        .unwrap();
    let mut rules = lifecycle_rules(&s3, &staging.bucket).await;
    rules.extend([tmp, tagged]);
    s3.put_bucket_lifecycle_configuration()
        .bucket(&staging.bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let theirs: Vec<LifecycleRule> = lifecycle_rules(&s3, &staging.bucket)
        .await
        .into_iter()
        .filter(|r| r.id().is_some_and(|id| id.starts_with("team-")))
        .collect();
    assert_eq!(theirs.len(), 2);

    // Unchanged settings: nothing is written.
    let put_action = "PutBucketLifecycleConfiguration";
    let puts = || {
        emulator::shared()
            .request_count(Some(&acct), "s3", put_action)
            .unwrap()
    };
    let before = puts();
    let merge = apply_retention(&objects, &staging, &retention).await.unwrap();
    assert!(
        !merge.changed,
        "an unchanged configuration is rewritten: {merge:?}"
    );
    assert_eq!(merge.foreign, ["team-tmp", "team-scratch"]);
    assert_eq!(puts(), before, "no PUT when nothing changed");

    // New settings: ours change, theirs stay exactly as they were.
    let shorter = RetentionConfig {
        log_days: 10,
        ..retention
    };
    let merge = apply_retention(&objects, &staging, &shorter).await.unwrap();
    assert!(merge.changed, "{merge:?}");
    assert_eq!(merge.foreign, ["team-tmp", "team-scratch"]);
    let after = lifecycle_rules(&s3, &staging.bucket).await;
    for rule in &theirs {
        assert!(after.contains(rule), "{rule:?} was changed: {after:?}");
    }
    let logs = after.iter().find(|r| r.id() == Some("okera-dm-logs")).unwrap();
    assert_eq!(logs.expiration().and_then(|e| e.days()), Some(10));
    assert_eq!(after.len(), 5, "{after:?}");
    // And then again nothing to write.
    let merge = apply_retention(&objects, &staging, &shorter).await.unwrap();
    assert!(!merge.changed, "{merge:?}");

    // A DM rule that the DM no longer makes goes; theirs stay.
    let mut rules = lifecycle_rules(&s3, &staging.bucket).await;
    rules.push(
        LifecycleRule::builder()
            .id("okera-dm-retired")
            .filter(LifecycleRuleFilter::builder().prefix("staging/old/").build())
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .unwrap(),
    );
    s3.put_bucket_lifecycle_configuration()
        .bucket(&staging.bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        apply_retention(&objects, &staging, &shorter)
            .await
            .unwrap()
            .changed
    );
    let ids: BTreeSet<String> = lifecycle_rules(&s3, &staging.bucket)
        .await
        .iter()
        .map(|r| r.id().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "okera-dm-diagnostics",
            "okera-dm-history",
            "okera-dm-logs",
            "team-scratch",
            "team-tmp"
        ]
        .map(str::to_owned)
        .into()
    );
    assert_eq!(expiry_rules(&staging, &shorter).len(), 3);
}

#[tokio::test]
async fn bad_retention_settings_are_refused_with_the_variable_named() {
    for (name, raw) in [
        ("OKERA_LOG_RETENTION_DAYS", "0"),
        ("OKERA_DIAGNOSTICS_RETENTION_DAYS", "two weeks"),
        ("OKERA_HISTORY_ARCHIVE_RETENTION_DAYS", "-365"),
        ("OKERA_HISTORY_RETENTION_DAYS", "1e3"),
    ] {
        let err = RetentionConfig::from_lookup(|n| (n == name).then(|| raw.to_owned())).unwrap_err();
        assert!(err.starts_with(name) && err.contains(raw), "{err}");
    }
}
