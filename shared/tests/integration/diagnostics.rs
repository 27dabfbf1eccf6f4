//! Diagnostics bundles against the emulator, on both databases: what a bundle
//! holds (untarred here), the log window on the log clock, the reconciler leaving
//! diagnostics operations alone, and the worker's failures, retries and takeovers.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use emulator::FaultRule;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;
use shared::cloud::aws::S3Adapter;
use shared::cloud::ObjectStore;
use shared::config::S3Location;
use shared::domain::logs::{LogClock, LogHour, HOUR_MS};
use shared::domain::ClusterStatus;
use shared::store::{Claim, ClusterObservation, NewNode, Step, StepState, Store, DIAGNOSTICS};
use shared::workflows::diagnostics::{request, ProposedDiagnostics, RunOutcome, Worker, MAX_ATTEMPTS};

use crate::support::{account, backends, cluster_spec, ctx, environment_spec, mark_ready, settings, REGION};

const DAY: i64 = 24 * HOUR_MS;
const I1: &str = "i-0a1b2c3d4e5f60718";
const I2: &str = "i-0f1e2d3c4b5a69788";

/// One test's emulated S3: its staging bucket, and an adapter that retries
/// `attempts` times.
async fn objects(acct: &str, attempts: Option<u32>) -> (S3Adapter, S3Location) {
    let objects = adapter(acct, attempts);
    let staging = S3Location::parse(&format!("s3://dm-{acct}/staging")).unwrap();
    objects.ensure_bucket(&staging.bucket).await.unwrap();
    (objects, staging)
}

fn adapter(acct: &str, attempts: Option<u32>) -> S3Adapter {
    S3Adapter::new(settings(acct, attempts), REGION)
}

/// A cluster the reconciler recorded once: READY, with two nodes, a status
/// change and a finished CREATE_CLUSTER operation. No AWS resources.
async fn cluster(store: &Store) -> i64 {
    let env = store
        .create_environment(&ctx(), &environment_spec("prod", false))
        .await
        .unwrap()
        .target_id;
    mark_ready(store, env).await;
    let id = store
        .create_cluster(&ctx(), &cluster_spec(env, "analytics", 2))
        .await
        .unwrap()
        .target_id;
    record(store, id, Some(1), None).await;
    id
}

async fn record(store: &Store, id: i64, observed: Option<i64>, failure: Option<&str>) {
    assert!(store.claim_cluster(id, "fixture", 60_000).await.unwrap());
    let obs = ClusterObservation {
        status: if failure.is_some() {
            ClusterStatus::Failed
        } else {
            ClusterStatus::Ready
        },
        message: failure.unwrap_or("All services running.").into(),
        asg_name: Some(format!("okera-{id}-analytics")),
        launch_template_id: None,
        config_uri: None,
        nodes: [I1, I2]
            .iter()
            .map(|i| NewNode {
                instance_id: (*i).into(),
                lifecycle_state: "InService".into(),
                availability_zone: "us-west-2a".into(),
            })
            .collect(),
        running_services: Some(7),
        endpoint: None,
        observed_generation: observed,
        steps: vec![Step {
            name: "nodes in service".into(),
            state: StepState::Done,
            message: "2 of 2".into(),
        }],
        failure: failure.map(str::to_owned),
    };
    store.record_cluster(id, "fixture", &obs).await.unwrap();
    store.release_cluster(id, "fixture", true).await.unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Bytes that do not compress (xorshift), so that a bundle holding them is large.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Puts `body` at `logs/…` (relative to the staging prefix); returns the path the
/// bundle should give it, below its root.
async fn put_log(objects: &S3Adapter, staging: &S3Location, relative: &str, body: Vec<u8>) {
    objects
        .put(&staging.bucket, &staging.key(relative), body)
        .await
        .unwrap();
}

/// `logs/<instance>/<service>/<yyyy-mm-dd-hh>/<file>`: where a log key goes in a bundle.
fn bundle_path(key: &str) -> String {
    let p: Vec<&str> = key.split('/').collect();
    format!(
        "logs/{}/{}/{}-{}-{}-{}/{}",
        p[2], p[3], p[4], p[5], p[6], p[7], p[8]
    )
}

/// Downloads and untars a bundle: its root, and each entry below the root.
async fn untar(objects: &S3Adapter, uri: &str) -> (String, BTreeMap<String, Vec<u8>>) {
    let loc = S3Location::parse(uri).unwrap();
    let bytes = objects
        .get(&loc.bucket, &loc.prefix)
        .await
        .unwrap()
        .expect("the bundle exists");
    let mut archive = tar::Archive::new(GzDecoder::new(&bytes[..]));
    let mut root = None;
    let mut entries = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let (top, rest) = path.split_once('/').unwrap();
        assert_eq!(root.get_or_insert_with(|| top.to_owned()), top, "one root");
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert!(entries.insert(rest.to_owned(), data).is_none(), "{rest} twice");
    }
    (root.unwrap(), entries)
}

fn json(entries: &BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    serde_json::from_slice(entries.get(name).unwrap_or_else(|| panic!("{name} is missing"))).unwrap()
}

fn diag(days: Option<i64>, path: Option<String>) -> ProposedDiagnostics {
    ProposedDiagnostics {
        days,
        s3_upload_path: path,
    }
}

#[tokio::test]
async fn a_bundle_holds_the_clusters_records_and_the_logs_of_the_last_days() {
    for (backend, store) in backends().await {
        Box::pin(async {
            let acct = account();
            let (objects, staging) = objects(&acct, None).await;
            let id = cluster(&store).await;
            let now = LogClock::WALL.now();
            let hour =
                |instance: &str, service: &str, at: i64| LogHour::containing(id, instance, service, at);

            // In the window (the last day): parts, plain and gzip; an hour both
            // compacted (with its manifest) and with a part uploaded since; a
            // part large enough that the bundle goes up in several parts; the
            // hour that holds "a day ago".
            let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut put = |key: String, body: Vec<u8>| {
                expected.insert(bundle_path(&key), body.clone());
                (key, body)
            };
            let current = hour(I1, "planner", now);
            let previous = hour(I1, "planner", now - HOUR_MS);
            let a_day_ago = hour(I2, "canary", now - DAY + 10 * 60_000);
            let logs = vec![
                put(
                    current.part_key(now - 5),
                    b"planner line 1\nplanner line 2\n".to_vec(),
                ),
                put(
                    format!("{}{}-flush.log.gz", current.prefix(), now - 4),
                    gzip(b"planner line 3\n"),
                ),
                put(
                    previous.compacted_key(1),
                    gzip(b"compacted line 1\ncompacted line 2\n"),
                ),
                put(
                    previous.manifest_key(1),
                    br#"{"generation":1,"parts":["a.log"]}"#.to_vec(),
                ),
                put(previous.part_key(now - HOUR_MS + 1), b"late line\n".to_vec()),
                put(hour(I2, "worker", now).part_key(now - 3), noise(9 << 20, 42)),
                put(
                    a_day_ago.part_key(now - DAY + 10 * 60_000),
                    b"yesterday\n".to_vec(),
                ),
            ];
            // Outside it: two days ago; another cluster's logs; a key outside the layout.
            let old = hour(I1, "planner", now - 2 * DAY);
            let other = LogHour::containing(id + 1000, I1, "planner", now);
            let strays = vec![
                (old.part_key(now - 2 * DAY), b"too old\n".to_vec()),
                (other.part_key(now), b"not this cluster\n".to_vec()),
                (format!("logs/{id}/notes.txt"), b"stray\n".to_vec()),
            ];
            for (key, body) in logs.into_iter().chain(strays) {
                put_log(&objects, &staging, &key, body).await;
            }

            let requested = request(&store, &staging, &ctx(), id, diag(None, None))
                .await
                .unwrap();
            let uri = requested.uri.clone().unwrap();
            assert_eq!(requested.days, 1);
            assert!(
                uri.starts_with(&format!("s3://{}/staging/diagnostics/", staging.bucket)),
                "{uri}"
            );
            let op = requested.submitted.operation_id;
            let pending = store.get_operation(op).await.unwrap();
            assert_eq!(
                (
                    pending.kind.as_str(),
                    pending.state.as_str(),
                    pending.result.as_deref()
                ),
                (DIAGNOSTICS, "PENDING", None),
                "{backend}"
            );

            let s3 = adapter(&acct, None);
            let worker = Worker::new(&store, &s3, &staging, LogClock::WALL, "w1");
            let RunOutcome::Succeeded { uri: written, stats } = worker.run(op).await.unwrap() else {
                panic!("[{backend}] the bundle was not written")
            };
            assert_eq!(written, uri);
            assert_eq!(
                (stats.log_objects, stats.outside_layout, stats.vanished),
                (7, 1, 0),
                "{backend}"
            );
            assert!(stats.parts >= 2, "[{backend}] a multipart upload: {stats:?}");

            let (root, entries) = untar(&objects, &uri).await;
            assert!(root.starts_with(&format!("cluster-{id}-")), "{root}");
            assert!(uri.ends_with(&format!("/{root}.tgz")), "{uri}");
            let logs: BTreeMap<String, Vec<u8>> = entries
                .iter()
                .filter(|(k, _)| k.starts_with("logs/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(
                logs.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "[{backend}] the logs of the window, and only those"
            );
            assert!(
                logs == expected,
                "[{backend}] every log object is in the bundle byte for byte"
            );
            let names: Vec<&str> = entries
                .keys()
                .filter(|k| !k.starts_with("logs/"))
                .map(String::as_str)
                .collect();
            assert_eq!(
                names,
                [
                    "audit.json",
                    "cluster.json",
                    "manifest.json",
                    "operations.json",
                    "status-history.json"
                ],
                "{backend}"
            );

            let c = json(&entries, "cluster.json");
            assert_eq!(
                (c["id"].as_i64(), c["name"].as_str()),
                (Some(id), Some("analytics"))
            );
            assert_eq!(c["statusCode"], "READY");
            let nodes: Vec<&str> = c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["instanceId"].as_str().unwrap())
                .collect();
            assert_eq!(nodes.len(), 2, "{c}");
            let history = json(&entries, "status-history.json");
            assert_eq!(history["statusChanges"][0]["code"], "READY", "{history}");
            let ops = json(&entries, "operations.json");
            let kinds: Vec<&str> = ops["operations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["kind"].as_str().unwrap())
                .collect();
            assert_eq!(kinds, [DIAGNOSTICS, "CREATE_CLUSTER"], "{ops}");
            assert_eq!(
                ops["operations"][0]["state"], "RUNNING",
                "the bundle sees itself being built"
            );
            let audit = json(&entries, "audit.json");
            let actions: Vec<&str> = audit["auditEntries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["action"].as_str().unwrap())
                .collect();
            assert_eq!(actions, [DIAGNOSTICS, "CREATE_CLUSTER"], "{audit}");
            let manifest = json(&entries, "manifest.json");
            assert_eq!(manifest["clusterId"], id);
            assert_eq!(manifest["logs"]["objects"], 7);
            assert_eq!(manifest["skipped"]["outsideLayout"]["count"], 1);
            assert_eq!(
                manifest["skipped"]["outsideLayout"]["keys"][0],
                staging.key(&format!("logs/{id}/notes.txt"))
            );

            let done = store.get_operation(op).await.unwrap();
            assert_eq!(
                (done.state.as_str(), done.result.as_deref(), done.error.as_deref()),
                ("SUCCEEDED", Some(uri.as_str()), None),
                "{backend}"
            );
            assert_eq!(done.steps[0].state, StepState::Done);
            assert_eq!(store.diagnostics_uri(op).await.unwrap(), Some(uri.clone()));
            assert!(
                store.diagnostics_due(10).await.unwrap().is_empty(),
                "the request is forgotten"
            );
            assert_eq!(
                worker.run(op).await.unwrap(),
                RunOutcome::AlreadyFinished,
                "[{backend}] a duplicate event does nothing"
            );
            let create = store.get_operation(op - 1).await.unwrap();
            assert_eq!(create.kind, "CREATE_CLUSTER");
            assert_eq!(worker.run(create.id).await.unwrap(), RunOutcome::AlreadyFinished);
        })
        .await;
    }
}

#[tokio::test]
async fn the_window_is_measured_on_the_log_clock() {
    for (backend, store) in backends().await {
        let acct = account();
        let (objects, staging) = objects(&acct, None).await;
        let id = cluster(&store).await;
        // An hour lasts a minute of wall time, since ten minutes ago: the log
        // clock is ten hours ahead of the wall clock, and a day lasts 24 minutes.
        let wall = shared::time::now_ms();
        let clock = LogClock {
            real_anchor_ms: wall - 10 * 60_000,
            log_anchor_ms: wall - 10 * 60_000,
            hour_ms: 60_000,
        };
        let log_now = clock.at(wall);
        let inside = LogHour::containing(id, I1, "planner", log_now - 20 * HOUR_MS);
        // Within a wall-clock day, but more than a log-clock day ago.
        let outside = LogHour::containing(id, I1, "planner", log_now - 30 * HOUR_MS);
        assert!(outside.start_ms > wall - DAY);
        put_log(
            &objects,
            &staging,
            &inside.part_key(inside.start_ms),
            b"in\n".to_vec(),
        )
        .await;
        put_log(
            &objects,
            &staging,
            &outside.part_key(outside.start_ms),
            b"out\n".to_vec(),
        )
        .await;

        let op = request(&store, &staging, &ctx(), id, diag(Some(1), None))
            .await
            .unwrap();
        let s3 = adapter(&acct, None);
        let worker = Worker::new(&store, &s3, &staging, clock, "w");
        let RunOutcome::Succeeded { uri, .. } = worker.run(op.submitted.operation_id).await.unwrap() else {
            panic!("[{backend}] no bundle")
        };
        let (_, entries) = untar(&objects, &uri).await;
        let logs: Vec<&String> = entries.keys().filter(|k| k.starts_with("logs/")).collect();
        assert_eq!(
            logs,
            [&bundle_path(&inside.part_key(inside.start_ms))],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn the_reconciler_never_finishes_or_fails_a_diagnostics_operation() {
    for (backend, store) in backends().await {
        let staging = S3Location::parse("s3://dm-unused/staging").unwrap();
        let id = cluster(&store).await;
        let op = request(&store, &staging, &ctx(), id, diag(Some(2), None))
            .await
            .unwrap()
            .submitted
            .operation_id;
        let update = store
            .update_cluster(
                &ctx(),
                id,
                &shared::domain::ClusterUpdate {
                    num_nodes: Some(3),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .operation_id;
        // Reached the update's generation, and far beyond: the update finishes,
        // the diagnostics operation stays as it was.
        record(&store, id, Some(1_000_000), None).await;
        assert_eq!(store.get_operation(update).await.unwrap().state, "SUCCEEDED");
        let diag_op = store.get_operation(op).await.unwrap();
        assert_eq!(diag_op.state, "PENDING", "{backend}");
        assert_eq!(diag_op.steps[0].name, "diagnostics bundle", "{backend}");
        // A permanent failure fails the reconciler's operations only.
        let update = store
            .update_cluster(
                &ctx(),
                id,
                &shared::domain::ClusterUpdate {
                    num_nodes: Some(2),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .operation_id;
        record(&store, id, None, Some("boom")).await;
        assert_eq!(store.get_operation(update).await.unwrap().state, "FAILED");
        assert_eq!(
            store.get_operation(op).await.unwrap().state,
            "PENDING",
            "{backend}"
        );
        assert_eq!(store.diagnostics_due(10).await.unwrap(), [op], "{backend}");
    }
}

#[tokio::test]
async fn a_bundle_for_a_bucket_that_does_not_exist_fails_its_operation_with_the_reason() {
    for (backend, store) in backends().await {
        let acct = account();
        let (objects, staging) = objects(&acct, None).await;
        let id = cluster(&store).await;
        let path = format!("s3://no-such-{acct}/diag");
        let op = request(&store, &staging, &ctx(), id, diag(Some(3), Some(path.clone())))
            .await
            .unwrap();
        let uri = op.uri.unwrap();
        assert!(uri.starts_with(&format!("{path}/diagnostics/")), "{uri}");
        let worker = Worker::new(&store, &objects, &staging, LogClock::WALL, "w");
        let outcome = worker.run(op.submitted.operation_id).await.unwrap();
        let RunOutcome::Failed { error } = outcome else {
            panic!("[{backend}] {outcome:?}")
        };
        assert!(
            error.contains(&format!("could not write the bundle to {uri}")) && error.contains("NoSuchBucket"),
            "[{backend}] {error}"
        );
        let row = store.get_operation(op.submitted.operation_id).await.unwrap();
        assert_eq!(
            (row.state.as_str(), row.error.as_deref(), row.result),
            ("FAILED", Some(error.as_str()), None),
            "{backend}"
        );
        assert_eq!(row.steps[0].state, StepState::Failed);
        assert!(store.diagnostics_due(10).await.unwrap().is_empty());
        assert_eq!(
            store.diagnostics_uri(op.submitted.operation_id).await.unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn s3_errors_partway_leave_the_request_to_the_next_run_which_writes_the_whole_bundle() {
    for (backend, store) in backends().await {
        Box::pin(async {
            let acct = account();
            // No SDK retries: the injected errors reach the worker.
            let (objects, staging) = objects(&acct, Some(1)).await;
            let id = cluster(&store).await;
            let now = LogClock::WALL.now();
            let big = LogHour::containing(id, I1, "worker", now);
            let body = noise(20 << 20, 7);
            put_log(&objects, &staging, &big.part_key(now), body.clone()).await;
            let op = request(&store, &staging, &ctx(), id, diag(None, None))
                .await
                .unwrap();
            let (op, uri) = (op.submitted.operation_id, op.uri.unwrap());

            // The second part's upload fails: the attempt gives the request back.
            emulator::shared()
                .inject_fault(
                    &FaultRule::new("s3", "UploadPart", 503, "SlowDown", 1)
                        .account(&acct)
                        .skip(1),
                )
                .unwrap();
            let s3 = adapter(&acct, Some(1));
            let worker = Worker::new(&store, &s3, &staging, LogClock::WALL, "w");
            let outcome = worker.run(op).await.unwrap();
            let RunOutcome::Retrying { error } = &outcome else {
                panic!("[{backend}] {outcome:?}")
            };
            assert!(error.contains("SlowDown"), "{error}");
            let row = store.get_operation(op).await.unwrap();
            assert_eq!(row.state, "RUNNING", "{backend}");
            assert!(
                row.steps[0].message.contains("will be tried again"),
                "{:?}",
                row.steps
            );
            let loc = S3Location::parse(&uri).unwrap();
            assert!(
                objects.get(&loc.bucket, &loc.prefix).await.unwrap().is_none(),
                "no bundle yet"
            );
            assert!(
                objects
                    .pending_uploads(&loc.bucket, &loc.prefix)
                    .await
                    .unwrap()
                    .is_empty(),
                "[{backend}] the failed upload was aborted"
            );

            // The schedule's run takes it up again and writes all of it.
            let runs = worker.run_due(10).await.unwrap();
            assert!(
                matches!(runs[..], [(o, RunOutcome::Succeeded { .. })] if o == op),
                "{runs:?}"
            );
            let (_, entries) = untar(&objects, &uri).await;
            assert!(
                entries[&bundle_path(&big.part_key(now))] == body,
                "[{backend}] the part, whole"
            );
            assert_eq!(store.get_operation(op).await.unwrap().state, "SUCCEEDED");
        })
        .await;
    }
}

#[tokio::test]
async fn a_killed_worker_leaves_its_request_to_the_next_run_and_after_three_attempts_it_fails() {
    for (backend, store) in backends().await {
        let acct = account();
        let (objects, staging) = objects(&acct, None).await;
        let id = cluster(&store).await;
        let now = LogClock::WALL.now();
        let part = LogHour::containing(id, I2, "canary", now).part_key(now);
        put_log(&objects, &staging, &part, b"ok\n".to_vec()).await;
        let op = request(&store, &staging, &ctx(), id, diag(None, None))
            .await
            .unwrap();
        let (op, uri) = (op.submitted.operation_id, op.uri.unwrap());
        let loc = S3Location::parse(&uri).unwrap();

        // A worker takes it, starts the upload and dies; its lease runs out.
        let Claim::Job(job) = store.claim_diagnostics(op, "dead", 60_000).await.unwrap() else {
            panic!("[{backend}] not claimed")
        };
        assert_eq!(job.attempts, 1);
        let s3 = adapter(&acct, None);
        let worker = Worker::new(&store, &s3, &staging, LogClock::WALL, "w");
        assert_eq!(
            worker.run(op).await.unwrap(),
            RunOutcome::Busy,
            "[{backend}] held"
        );
        assert!(store.diagnostics_due(10).await.unwrap().is_empty());
        objects.create_multipart(&loc.bucket, &loc.prefix).await.unwrap();
        assert!(
            !store.renew_diagnostics(op, "w", 1).await.unwrap(),
            "only the holder renews"
        );
        assert!(store.renew_diagnostics(op, "dead", -1).await.unwrap());

        let runs = worker.run_due(10).await.unwrap();
        assert!(
            matches!(runs[..], [(o, RunOutcome::Succeeded { .. })] if o == op),
            "[{backend}] {runs:?}"
        );
        assert!(
            objects
                .pending_uploads(&loc.bucket, &loc.prefix)
                .await
                .unwrap()
                .is_empty(),
            "[{backend}] the dead worker's upload was aborted"
        );
        let (_, entries) = untar(&objects, &uri).await;
        assert_eq!(entries[&bundle_path(&part)], b"ok\n");
        assert!(store.get_operation(op).await.unwrap().steps[0]
            .message
            .contains("1 log object"));

        // Another request whose workers all die: after the last attempt, it fails.
        let op = request(&store, &staging, &ctx(), id, diag(None, None))
            .await
            .unwrap()
            .submitted
            .operation_id;
        for attempt in 1..=MAX_ATTEMPTS {
            let Claim::Job(job) = store.claim_diagnostics(op, "dead", -1).await.unwrap() else {
                panic!("[{backend}] not claimed")
            };
            assert_eq!(job.attempts, attempt);
        }
        let outcome = worker.run(op).await.unwrap();
        let RunOutcome::Failed { error } = outcome else {
            panic!("[{backend}] {outcome:?}")
        };
        assert!(error.starts_with("gave up after 3 attempts"), "{error}");
        assert_eq!(store.get_operation(op).await.unwrap().state, "FAILED");
    }
}

#[tokio::test]
async fn requests_for_missing_or_deleted_clusters_and_bad_fields_are_refused_and_write_nothing() {
    use shared::workflows::diagnostics::RequestError;
    for (backend, store) in backends().await {
        let staging = S3Location::parse("s3://dm-unused/staging").unwrap();
        let id = cluster(&store).await;
        let ops_before = store.operations_since("cluster", id, 0, 100).await.unwrap().len();
        let refused = |r: Result<_, RequestError>| r.expect_err("refused");
        let e = refused(request(&store, &staging, &ctx(), id + 99, diag(None, None)).await);
        assert!(matches!(e, RequestError::UnknownCluster(_)), "{backend}: {e}");
        let e = refused(request(&store, &staging, &ctx(), id, diag(Some(0), None)).await);
        assert!(
            matches!(&e, RequestError::Invalid(f) if f.field == "days"),
            "{backend}: {e}"
        );
        let e = refused(request(&store, &staging, &ctx(), id, diag(None, Some("s3:/x".into()))).await);
        assert!(
            matches!(&e, RequestError::Invalid(f) if f.field == "s3UploadPath"),
            "{backend}: {e}"
        );
        store.delete_cluster(&ctx(), id).await.unwrap();
        let before = store.operations_since("cluster", id, 0, 100).await.unwrap().len();
        assert_eq!(before, ops_before + 1, "the delete only");
        let e = refused(request(&store, &staging, &ctx(), id, diag(None, None)).await);
        assert!(
            matches!(&e, RequestError::Deleted { status, .. } if status == "TERMINATING"),
            "{backend}: {e}"
        );
        assert_eq!(
            store.operations_since("cluster", id, 0, 100).await.unwrap().len(),
            before
        );
        assert!(store.diagnostics_due(10).await.unwrap().is_empty(), "{backend}");
        // The store refuses it too, for a request that raced the delete.
        let raced = store
            .request_diagnostics(
                &ctx(),
                id,
                &shared::store::NewDiagnostics {
                    days: 1,
                    bucket: "b".into(),
                    key: "k".into(),
                },
            )
            .await;
        assert!(
            matches!(raced, Err(shared::store::StoreError::Conflict(_))),
            "{backend}: {raced:?}"
        );
    }
}
