//! Log rotation against the emulator: what it compacts and what it leaves, and
//! that bad parts, racing writers, S3 failures and kills lose or duplicate no line.

use std::sync::Arc;

use emulator::FaultRule;
use shared::cloud::aws::{AwsSettings, S3Adapter};
use shared::cloud::ObjectStore;
use shared::domain::logs::LogHour;
use shared::workflows::kill::KillSwitch;
use shared::workflows::rotation::{Manifest, RotationError, RotationSettings, QUARANTINE, STEPS};

use crate::support::{bucket, gzip, hour, Bucket, REGION};

/// Two closed hours (one with plain and gzip parts and a part without its last
/// newline), an hour still open, and optionally a part that is not gzip.
struct Fixture {
    closed: LogHour,
    closed_lines: Vec<String>,
    other: LogHour,
    other_lines: Vec<String>,
    open_key: String,
    corrupt_key: Option<String>,
}

async fn fixture(b: &Bucket, corrupt: bool) -> Fixture {
    let closed = hour("planner", 3);
    let mut closed_lines = Vec::new();
    for n in 1..=4 {
        closed_lines.extend(b.part(&closed, n, 3, n % 2 == 0).await.1);
    }
    b.put(
        &closed.part_key(closed.start_ms + 5),
        b"no newline at the end".to_vec(),
    )
    .await;
    closed_lines.push("no newline at the end".into());
    let corrupt_key = if corrupt {
        let key = format!("{}.gz", closed.part_key(closed.start_ms + 6));
        b.put(&key, b"this is not gzip\n".to_vec()).await;
        Some(key)
    } else {
        None
    };
    let other = hour("worker", 2);
    let other_lines = b.part(&other, 1, 2, false).await.1;
    let open = hour("planner", 0);
    let open_key = b.part(&open, 1, 1, false).await.0;
    Fixture {
        closed,
        closed_lines,
        other,
        other_lines,
        open_key,
        corrupt_key,
    }
}

/// The hour holds exactly one compacted object with `lines`, and its manifest.
async fn assert_compacted(b: &Bucket, hour: &LogHour, lines: &[String]) -> Manifest {
    let keys = b.keys(&hour.prefix()).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    // `compacted-<n>.json` sorts before `compacted-<n>.log.gz`.
    let manifest: Manifest = serde_json::from_slice(&b.get(&keys[0]).await.unwrap()).unwrap();
    assert_eq!(keys[0], hour.manifest_key(manifest.generation), "{keys:?}");
    assert_eq!(keys[1], hour.compacted_key(manifest.generation), "{keys:?}");
    assert_eq!(b.lines_of(&keys[1]).await, lines, "{}", hour.label());
    assert_eq!(manifest.lines, lines.len() as u64);
    manifest
}

#[tokio::test]
async fn compacts_each_closed_hour_once_and_leaves_open_hours() {
    let b = bucket(3).await;
    let f = fixture(&b, false).await;
    let report = b.rotate().await;
    assert_eq!(report.hours_compacted, 2, "{report:?}");
    assert_eq!(report.parts_compacted, 6);
    assert_eq!(report.lines, 15);
    assert_eq!(report.hours_open, 1);
    assert_eq!(
        report.retry_count + report.quarantined_count + report.outside_layout_count,
        0
    );
    let m = assert_compacted(&b, &f.closed, &f.closed_lines).await;
    assert_eq!((m.generation, m.parts, m.supersedes.len()), (1, 5, 5));
    assert_eq!(
        m.bytes,
        f.closed_lines.iter().map(|l| l.len() as u64 + 1).sum::<u64>(),
        "a newline is added to the part that lacked one"
    );
    assert_compacted(&b, &f.other, &f.other_lines).await;
    assert_eq!(b.keys(&hour("planner", 0).prefix()).await, [f.open_key]);

    // Again: nothing left to do, nothing is rewritten, and finished hours cost
    // no request beyond the listing.
    let before = b.get(&f.closed.compacted_key(1)).await;
    let gets = || {
        emulator::shared()
            .request_count(Some(&b.account), "s3", "GetObject")
            .unwrap()
    };
    let gets_before = gets();
    let again = b.rotate().await;
    assert_eq!(again.hours_compacted + again.leftovers_deleted, 0, "{again:?}");
    assert_eq!(gets(), gets_before, "a finished hour is not read again");
    assert_eq!(b.get(&f.closed.compacted_key(1)).await, before);
}

#[tokio::test]
async fn late_parts_join_the_hour_in_a_new_generation() {
    let b = bucket(3).await;
    let f = fixture(&b, false).await;
    b.rotate().await;
    let (_, late) = b.part(&f.closed, 30, 2, true).await;
    let report = b.rotate().await;
    assert_eq!(
        (report.hours_compacted, report.parts_compacted, report.lines),
        (1, 1, 2)
    );
    let expected: Vec<String> = f.closed_lines.iter().chain(&late).cloned().collect();
    let m = assert_compacted(&b, &f.closed, &expected).await;
    assert_eq!((m.generation, m.parts), (2, 6));
}

#[tokio::test]
async fn keys_outside_the_layout_are_left_alone_and_reported() {
    let b = bucket(3).await;
    let f = fixture(&b, false).await;
    let strays = [
        "logs/README.txt".to_owned(),
        format!("{}notes.txt", f.closed.prefix()),
        "logs/7/not-an-instance/planner/2020/01/01/00/1.log".to_owned(),
    ];
    for key in &strays {
        b.put(key, b"keep me".to_vec()).await;
    }
    let report = b.rotate().await;
    assert_eq!(report.outside_layout_count, 3, "{report:?}");
    for key in &strays {
        assert_eq!(b.get(key).await.as_deref(), Some(&b"keep me"[..]), "{key}");
        assert!(
            report.outside_layout.iter().any(|why| why.contains(key.as_str())),
            "{key} is not reported: {:?}",
            report.outside_layout
        );
    }
    // The hour with a stray still compacts its parts, and keeps the stray.
    let keys = b.keys(&f.closed.prefix()).await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(b.lines_of(&f.closed.compacted_key(1)).await, f.closed_lines);
}

#[tokio::test]
async fn corrupt_gzip_parts_are_quarantined_and_the_rest_go_on() {
    let b = bucket(3).await;
    let f = fixture(&b, true).await;
    let corrupt = f.corrupt_key.clone().unwrap();
    let whole = gzip(&b"a line\n".repeat(500));
    let truncated = format!("{}.gz", f.other.part_key(f.other.start_ms + 9));
    b.put(&truncated, whole[..whole.len() / 2].to_vec()).await;

    let report = b.rotate().await;
    assert_eq!(report.quarantined_count, 2, "{report:?}");
    assert_eq!(report.hours_compacted, 2);
    assert_eq!(
        b.get(&format!("{QUARANTINE}{corrupt}")).await.as_deref(),
        Some(&b"this is not gzip\n"[..])
    );
    assert_eq!(
        b.get(&format!("{QUARANTINE}{truncated}")).await,
        Some(whole[..whole.len() / 2].to_vec())
    );
    assert!(report
        .quarantined
        .iter()
        .any(|q| q.contains(&corrupt) && q.contains("not valid gzip")));
    assert_compacted(&b, &f.closed, &f.closed_lines).await;
    assert_compacted(&b, &f.other, &f.other_lines).await;
}

#[tokio::test]
async fn large_gzip_parts_are_checked_first_then_streamed() {
    let b = bucket(3).await;
    let h = hour("catalog", 4);
    let mut lines = Vec::new();
    for n in 1..=3 {
        lines.extend(b.part(&h, n, 400, true).await.1);
    }
    let settings = RotationSettings {
        spool_limit: 1024,
        ..Default::default()
    };
    let report = b.rotation(settings).run().await.unwrap();
    assert_eq!((report.hours_compacted, report.lines), (1, 1200), "{report:?}");
    assert_compacted(&b, &h, &lines).await;
}

/// Lines of random hex: gzip cannot shrink them below half.
fn incompressible(lines: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut out = String::with_capacity(lines * 65);
    for _ in 0..lines {
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push_str(&format!("{x:016x}"));
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn a_large_hour_goes_up_in_parts_and_a_kill_mid_upload_is_cleaned_up() {
    let b = bucket(3).await;
    let h = hour("worker", 5);
    let text = incompressible(180_000, 7); // ~11.7 MB plain, ~6 MB of gzip
    let key = h.part_key(h.start_ms + 1);
    b.put(&key, text.clone().into_bytes()).await;
    let settings = |kill| RotationSettings {
        part_size: 5 << 20,
        kill,
        ..Default::default()
    };

    let killed = b.rotation(settings(KillSwitch::at("written"))).run().await;
    assert!(matches!(killed, Err(RotationError::Killed(_))), "{killed:?}");
    assert_eq!(b.pending_uploads().await, 1, "the killed run left its upload");

    let report = b.rotation(settings(KillSwitch::off())).run().await.unwrap();
    assert_eq!(
        (report.uploads_aborted, report.hours_compacted),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(b.pending_uploads().await, 0);
    let listed = b
        .objects
        .list_page(&b.staging.bucket, &b.staging.key(&h.compacted_key(1)), None)
        .await
        .unwrap();
    assert!(
        listed.objects[0].etag.trim_matches('"').ends_with("-2"),
        "a multipart object of two parts: {:?}",
        listed.objects[0]
    );
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_compacted(&b, &h, &lines).await;
}

#[tokio::test]
async fn a_part_that_changes_during_compaction_waits_for_the_next_run() {
    let b = bucket(3).await;
    let f = fixture(&b, false).await;
    let changed = f.closed.part_key(f.closed.start_ms + 1);
    let (account, staging, key) = (b.account.clone(), b.staging.clone(), changed.clone());
    let meanwhile = KillSwitch::meanwhile(
        "compacted",
        Arc::new(move || {
            let (account, staging, key) = (account.clone(), staging.clone(), key.clone());
            Box::pin(async move {
                let objects = S3Adapter::new(
                    AwsSettings {
                        endpoint: Some(emulator::shared().endpoint().to_owned()),
                        credentials: Some((account, "test".into())),
                        max_attempts: Some(3),
                    },
                    REGION,
                );
                let body = b"rewritten by its agent\n".to_vec();
                objects
                    .put(&staging.bucket, &staging.key(&key), body)
                    .await
                    .unwrap();
            })
        }),
    );
    let report = b
        .rotation(RotationSettings {
            kill: meanwhile,
            ..Default::default()
        })
        .run()
        .await
        .unwrap();
    assert_eq!(report.retry_count, 1, "{report:?}");
    assert!(
        report.retry[0].contains("changed while the hour was compacted"),
        "{report:?}"
    );
    // The hour is as it was, with the new version of the part; no object is left.
    let keys = b.keys(&f.closed.prefix()).await;
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("compacted")), "{keys:?}");

    let report = b.rotate().await;
    assert_eq!(report.hours_compacted, 1, "{report:?}");
    let mut expected = f.closed_lines.clone();
    expected.splice(0..3, ["rewritten by its agent".to_owned()]);
    assert_compacted(&b, &f.closed, &expected).await;
}

#[tokio::test]
async fn s3_errors_partway_leave_the_hour_for_the_next_run() {
    let b = bucket(1).await;
    let f = fixture(&b, false).await;
    // The third part read fails, with no retry left: the first hour waits.
    emulator::shared()
        .inject_fault(
            &FaultRule::new("s3", "GetObject", 503, "SlowDown", 1)
                .account(&b.account)
                .skip(2),
        )
        .unwrap();
    let report = b.rotate().await;
    assert_eq!((report.retry_count, report.hours_compacted), (1, 1), "{report:?}");
    assert!(report.retry[0].contains("SlowDown"), "{report:?}");
    assert_eq!(b.keys(&f.closed.prefix()).await.len(), 5);
    assert_eq!(b.pending_uploads().await, 0);

    // Deleting the parts fails after the commit: the next run only deletes.
    emulator::shared()
        .inject_fault(&FaultRule::new("s3", "DeleteObjects", 500, "InternalError", 1).account(&b.account))
        .unwrap();
    let report = b.rotate().await;
    assert_eq!(report.retry_count, 1, "{report:?}");
    let report = b.rotate().await;
    assert_eq!((report.retry_count, report.hours_compacted), (0, 0), "{report:?}");
    assert!(report.leftovers_deleted >= 5, "{report:?}");
    assert_compacted(&b, &f.closed, &f.closed_lines).await;
    assert_compacted(&b, &f.other, &f.other_lines).await;
}

#[tokio::test]
async fn throttling_that_the_sdk_retries_through_costs_nothing() {
    let b = bucket(3).await;
    let f = fixture(&b, false).await;
    let puts = || {
        emulator::shared()
            .request_count(Some(&b.account), "s3", "PutObject")
            .unwrap()
    };
    let puts_before = puts();
    emulator::shared()
        .inject_fault(
            &FaultRule::new("s3", "PutObject", 503, "SlowDown", 2)
                .account(&b.account)
                .skip(1),
        )
        .unwrap();
    let report = b.rotate().await;
    assert_eq!((report.retry_count, report.hours_compacted), (0, 2), "{report:?}");
    // Two objects and two manifests, and the two throttled attempts the SDK retried.
    assert_eq!(
        puts() - puts_before,
        4 + 2,
        "the faults were hit and retried through"
    );
    assert_compacted(&b, &f.closed, &f.closed_lines).await;
}

/// Kill the run at each step, of a first compaction and of a later one, then run
/// it again: every line is there exactly once, and nothing else is.
#[tokio::test]
async fn a_kill_at_any_step_loses_and_duplicates_nothing() {
    for step in STEPS {
        for later in [false, true] {
            let b = bucket(3).await;
            let f = fixture(&b, !later).await;
            let mut expected = f.closed_lines.clone();
            let mut corrupt = f.corrupt_key.clone();
            if later {
                b.rotate().await;
                expected.extend(b.part(&f.closed, 40, 2, true).await.1);
                let key = format!("{}.gz", f.closed.part_key(f.closed.start_ms + 41));
                b.put(&key, b"not gzip either".to_vec()).await;
                corrupt = Some(key);
            }
            let killed = b.rotation(RotationSettings {
                kill: KillSwitch::at(step),
                ..Default::default()
            });
            let result = killed.run().await;
            assert!(
                matches!(result, Err(RotationError::Killed(_))),
                "{step} (later: {later}): {result:?}"
            );
            b.rotate().await;
            let again = b.rotate().await;
            assert_eq!(again.hours_compacted, 0, "{step}: {again:?}");
            assert_compacted(&b, &f.closed, &expected).await;
            assert_compacted(&b, &f.other, &f.other_lines).await;
            let corrupt = corrupt.unwrap();
            assert!(b.get(&format!("{QUARANTINE}{corrupt}")).await.is_some(), "{step}");
            assert!(b.get(&corrupt).await.is_none(), "{step}");
            assert_eq!(b.pending_uploads().await, 0, "{step}");
        }
    }
}
