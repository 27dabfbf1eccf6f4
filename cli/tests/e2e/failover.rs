//! Failover, failback and a drill as a user runs them: `dm-local up --regions`
//! with an API per region, `ocadm` and `dm-local event`, and the cluster's
//! endpoint read from the emulator's Route 53 as its resolvers would answer.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::dm::{bin, json, start_dm_with, Dm};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

impl Dm {
    /// What Route 53 answers for `name` now, in this runner's zone.
    async fn answer(&self, name: &str) -> emulator::Resolved {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(emulator::shared().endpoint())
            .credentials_provider(aws_sdk_route53::config::Credentials::new(
                &self.account,
                "test",
                None,
                None,
                "e2e",
            ))
            .load()
            .await;
        let zones = aws_sdk_route53::Client::new(&config)
            .list_hosted_zones_by_name()
            .dns_name("dm-local.test")
            .send()
            .await
            .unwrap();
        let zone = zones.hosted_zones()[0].id().to_owned();
        emulator::shared().resolve(&self.account, &zone, name).unwrap()
    }

    /// The addresses of a cluster's nodes, as `ocadm clusters get` cannot show
    /// them: from the emulator's instances of the cluster, sorted.
    fn cluster(&self, id: &str) -> serde_json::Value {
        json(&self.ok(&["--json", "clusters", "get", id]))
    }

    fn event(&self, region: &str, sample: &str) -> serde_json::Value {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events")
            .join(sample);
        let out = Command::new(bin("dm-local"))
            .args(["event", "--now", "--region", region, "--data-dir"])
            .arg(&self.dir)
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json(&String::from_utf8(out.stdout).unwrap())
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_fails_the_dm_over_ocadm_fails_back_and_a_drill_leaves_nothing() {
    let dm = start_dm_with(&["--regions", "us-east-1,us-west-2", "--failover-interval", "1"]);
    assert!(
        dm.env.iter().any(|(k, _)| k == "OCADM_ENDPOINT_US_WEST_2"),
        "{:?}",
        dm.env
    );
    let status = dm.ok(&["status"]);
    assert!(
        status.starts_with("Service available. Status: Running\n"),
        "{status}"
    );
    assert!(status.contains("Region us-east-1: ACTIVE"), "{status}");
    assert!(dm
        .ok(&["--at", WEST, "status"])
        .contains("Region us-west-2: STANDBY"));

    for args in [
        vec!["environments", "create", "--name", "prod", "--region", EAST],
        vec![
            "environments",
            "create",
            "--name",
            "prod-west",
            "--region",
            WEST,
            "--failover-for",
            "1",
            "--warm-standby-nodes",
            "1",
        ],
    ] {
        let mut args = args;
        args.push("--wait");
        dm.ok(&args);
    }
    dm.ok(&[
        "clusters",
        "create",
        "--name",
        "sales",
        "--numNodes",
        "2",
        "--type",
        "STANDALONE_CLUSTER",
        "--environmentid",
        "1",
        "--wait",
    ]);
    // The warm standby partner appears in us-west-2, with one node.
    dm.wait_for("the warm standby", || {
        let list = json(&dm.ok(&["--json", "clusters", "list", "--environmentid", "2"]));
        list["clusters"][0]["statusCode"] == "STANDBY"
    });
    let partner = json(&dm.ok(&["--json", "clusters", "list", "--environmentid", "2"]))["clusters"][0]["id"]
        .to_string();
    let before = dm.answer("sales.prod.dm-local.test").await;
    assert_eq!(before.failover.as_deref(), Some("PRIMARY"), "{before:?}");

    // The standby region refuses writes, and a dry run changes nothing.
    let refused = dm.refused(
        &["--at", WEST, "clusters", "update", "--numNodes", "3", "1"],
        "409",
    );
    assert!(refused.contains("us-east-1"), "{refused}");
    // Failovers are an admin's: the operator's token is refused.
    let refused = dm.refused(&["failover", "--to", WEST, "--dry-run"], "403");
    assert!(refused.contains("needs the admin role"), "{refused}");
    let plan = dm.admin(&["failover", "--to", WEST, "--dry-run"]);
    assert!(
        plan.contains("[ok] target-environments") && plan.contains("unpark standby cluster"),
        "{plan}"
    );
    assert!(json(&dm.ok(&["--json", "failover", "list"]))["failovers"]
        .as_array()
        .unwrap()
        .is_empty());

    // The region-health alarm fires in us-west-2: it takes over.
    let answer = dm.event(WEST, "alarm-region-health.json");
    let id = answer["failoverId"].as_str().unwrap().to_owned();
    let done = dm.ok(&["failover", "status", &id, "--wait", "--timeout", "120"]);
    assert!(done.contains("state: SUCCEEDED"), "{done}");
    assert!(done.contains("RTO:"), "{done}");
    let after = dm.answer("sales.prod.dm-local.test").await;
    assert_eq!(after.failover.as_deref(), Some("SECONDARY"), "{after:?}");
    assert_ne!(after.values, before.values);
    assert_eq!(dm.cluster(&partner)["parked"], false);
    assert_eq!(dm.cluster("1")["parked"], true);
    let lost = dm.ok(&["status"]);
    assert!(lost.contains("lost leadership to us-west-2 at epoch 2"), "{lost}");
    assert!(dm.ok(&["--at", WEST, "status"]).contains("ACTIVE"));
    // The same alarm again is ignored: one automated failover, then people decide.
    let again = dm.event(WEST, "alarm-region-health.json");
    assert!(again["ignored"].is_string(), "{again}");

    // Failback, planned, to the API of us-east-1 (ocadm finds it).
    let back = dm.admin(&[
        "failover",
        "--to",
        EAST,
        "--planned",
        "--wait",
        "--timeout",
        "120",
    ]);
    assert!(back.contains("state: SUCCEEDED"), "{back}");
    let home = dm.answer("sales.prod.dm-local.test").await;
    assert_eq!(home.failover.as_deref(), Some("PRIMARY"), "{home:?}");
    assert!(dm.ok(&["status"]).contains("Region us-east-1: ACTIVE"));
    let regions = dm.ok(&["regions"]);
    assert!(
        regions.contains("leadership:") && regions.contains("3      us-east-1"),
        "{regions}"
    );

    // A drill to us-west-2: copies come up, are checked, go; nothing is left.
    let drill = dm.admin(&["drill", "--to", WEST, "--wait", "--timeout", "120"]);
    assert!(drill.contains("0 leaked resource(s)"), "{drill}");
    let list = json(&dm.ok(&["--json", "drill", "list"]));
    let d = &list["drills"][0];
    assert_eq!(d["state"], "SUCCEEDED", "{d}");
    assert!(d["rtoMs"].as_i64().is_some_and(|r| r > 0), "{d}");
    assert_eq!(d["leaks"], serde_json::json!([]));
    assert_eq!(
        dm.answer("sales.prod.dm-local.test").await,
        home,
        "a drill does not touch DNS"
    );
}
