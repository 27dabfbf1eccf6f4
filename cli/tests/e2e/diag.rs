//! `ocadm clusters diag` against `dm-local up`: the printed URI names a bundle in
//! the emulator's S3 that holds the cluster's records and its logs; bad input is
//! refused naming the field; `--no-wait` prints the operation.

use std::collections::BTreeMap;
use std::io::Read;

use crate::{json, start_dm, Dm};

/// `(year, month, day, hour)` of epoch milliseconds, UTC (Howard Hinnant's
/// civil-from-days).
fn utc_hour(ms: i64) -> (i64, u32, u32, u32) {
    let hour = (ms.div_euclid(3_600_000) % 24) as u32;
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, hour)
}

impl Dm {
    /// S3 in the emulator, in this runner's account.
    async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-west-2"))
            .endpoint_url(emulator::shared().endpoint())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                &self.account,
                "test",
                None,
                None,
                "e2e",
            ))
            .load()
            .await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        )
    }

    fn staging_bucket(&self) -> String {
        format!("dm-e2e-{}", self.account)
    }

    /// Downloads and untars the bundle at `uri`: each entry below its root.
    async fn bundle(&self, uri: &str) -> BTreeMap<String, Vec<u8>> {
        let (bucket, key) = uri
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .unwrap_or_else(|| panic!("not an s3:// URI: {uri:?}"));
        let object = self
            .s3()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("no bundle at {uri}: {e:?}"));
        let bytes = object.body.collect().await.unwrap().into_bytes();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut entries = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let (_, rest) = path.split_once('/').unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            entries.insert(rest.to_owned(), data);
        }
        entries
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ocadm_clusters_diag_prints_the_uri_of_a_bundle_that_holds_the_clusters_logs_and_records() {
    let dm = start_dm();
    dm.ok(&[
        "environments",
        "create",
        "--name",
        "dev",
        "--region",
        "us-west-2",
        "--wait",
    ]);
    dm.ok(&[
        "clusters",
        "create",
        "--name",
        "analytics",
        "--numNodes",
        "2",
        "--type",
        "STANDALONE_CLUSTER",
        "--environmentid",
        "1",
        "--wait",
    ]);
    let cluster = json(&dm.ok(&["--json", "clusters", "get", "1"]));
    let instance = cluster["nodes"][0]["instanceId"].as_str().unwrap().to_owned();

    // A node's log part of this hour, where its agent uploads them.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (y, m, d, h) = utc_hour(now);
    let key = format!("staging/logs/1/{instance}/planner/{y:04}/{m:02}/{d:02}/{h:02}/{now}-e2e.log");
    let line = b"2026-01-01 00:00:00 planner: e2e line\n".to_vec();
    dm.s3()
        .await
        .put_object()
        .bucket(dm.staging_bucket())
        .key(&key)
        .body(line.clone().into())
        .send()
        .await
        .unwrap();

    let out = dm.ok(&["clusters", "diag", "1"]);
    let uri = out.trim();
    assert_eq!(out.lines().count(), 1, "only the URI on stdout: {out}");
    let prefix = format!("s3://{}/staging/diagnostics/", dm.staging_bucket());
    assert!(uri.starts_with(&prefix) && uri.ends_with(".tgz"), "{uri}");
    let entries = dm.bundle(uri).await;
    for name in [
        "cluster.json",
        "status-history.json",
        "operations.json",
        "audit.json",
        "manifest.json",
    ] {
        assert!(
            entries.contains_key(name),
            "{name} is missing: {:?}",
            entries.keys()
        );
    }
    let mine = format!("logs/{instance}/planner/{y:04}-{m:02}-{d:02}-{h:02}/{now}-e2e.log");
    assert_eq!(entries.get(&mine), Some(&line), "{:?}", entries.keys());
    let nodes: Vec<String> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["instanceId"].as_str().unwrap().to_owned())
        .collect();
    for path in entries.keys().filter(|p| p.starts_with("logs/")) {
        let node = path.split('/').nth(1).unwrap();
        assert!(
            nodes.iter().any(|n| n == node),
            "{path} is not a log of this cluster's nodes"
        );
    }
    let record = json(std::str::from_utf8(&entries["cluster.json"]).unwrap());
    assert_eq!(record["name"], "analytics");
    assert_eq!(record["nodes"].as_array().unwrap().len(), 2, "{record}");
    let ops = json(std::str::from_utf8(&entries["operations.json"]).unwrap());
    let kinds: Vec<&str> = ops["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"CREATE_CLUSTER") && kinds.contains(&"DIAGNOSTICS"),
        "{kinds:?}"
    );

    // Elsewhere, for a week, without waiting: the operation, then its result.
    let out = dm.ok(&[
        "clusters",
        "diag",
        "--days",
        "7",
        "--s3-upload-path",
        &format!("s3://{}/ops/diag", dm.staging_bucket()),
        "--no-wait",
        "1",
    ]);
    assert!(
        out.starts_with("Diagnostics of cluster 1 accepted as operation "),
        "{out}"
    );
    let op: String = out["Diagnostics of cluster 1 accepted as operation ".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let done = dm.ok(&["operations", "get", &op, "--wait", "--timeout", "60"]);
    assert!(
        done.contains("state: SUCCEEDED") && done.contains("kind: DIAGNOSTICS"),
        "{done}"
    );
    let result = done
        .lines()
        .find_map(|l| l.strip_prefix("result: "))
        .unwrap_or_else(|| panic!("no result: {done}"))
        .to_owned();
    assert!(
        result.starts_with(&format!("s3://{}/ops/diag/diagnostics/", dm.staging_bucket())),
        "{result}"
    );
    assert!(dm.bundle(&result).await.contains_key(&mine));

    // Bad input: refused before anything is written, naming the field.
    let err = dm.refused(&["clusters", "diag", "--days", "0", "1"], "400");
    assert!(
        err.contains("field: days") && err.contains("from 1 to 30"),
        "{err}"
    );
    let err = dm.refused(&["clusters", "diag", "--days", "31", "1"], "400");
    assert!(err.contains("field: days"), "{err}");
    let err = dm.refused(&["clusters", "diag", "--s3-upload-path", "bucket/x", "1"], "400");
    assert!(err.contains("field: s3UploadPath"), "{err}");
    let err = dm.refused(&["clusters", "diag", "9"], "404");
    assert!(
        err.contains("cluster 9 does not exist") && err.contains("field: id"),
        "{err}"
    );
    dm.ok(&["clusters", "delete", "1", "--wait"]);
    let err = dm.refused(&["clusters", "diag", "1"], "409");
    assert!(err.contains("(deleted)") && err.contains("field: id"), "{err}");
}
