//! Upgrades, rollbacks and restarts as a user runs them: `ocadm` against
//! `dm-local`, with the endpoint read from the emulator's Route 53 at each step.

use crate::{json, start_dm, Dm};

impl Dm {
    /// The values of the endpoint's A record sets in the emulator, sorted.
    async fn records(&self, name: &str) -> Vec<Vec<String>> {
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
        let r53 = aws_sdk_route53::Client::new(&config);
        let zones = r53
            .list_hosted_zones_by_name()
            .dns_name("dm-local.test")
            .send()
            .await
            .unwrap();
        let zone = zones.hosted_zones()[0].id().to_owned();
        let sets = r53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        let mut out: Vec<Vec<String>> = sets
            .resource_record_sets()
            .iter()
            .filter(|s| s.name().trim_end_matches('.') == name && s.r#type().as_str() == "A")
            .map(|s| {
                let mut v: Vec<String> = s
                    .resource_records()
                    .iter()
                    .map(|r| r.value().to_owned())
                    .collect();
                v.sort();
                v
            })
            .collect();
        out.sort();
        out
    }

    fn operation(&self, id: &str) -> serde_json::Value {
        json(&self.ok(&["--json", "operations", "get", id]))
    }
}

/// The runbook step named `name` (the first with that name) of an operation.
fn step<'a>(op: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    op["runbook"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {op}"))
}

#[tokio::test]
async fn upgrade_rollback_a_broken_upgrade_and_restart_through_ocadm() {
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
        "sales",
        "--numNodes",
        "2",
        "--type",
        "STANDALONE_CLUSTER",
        "--environmentid",
        "1",
        "--wait",
    ]);
    let endpoint = json(&dm.ok(&["--json", "clusters", "get", "1"]))["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(endpoint, "sales.dev.dm-local.test");
    let mut before = dm.records(&endpoint).await;
    for _ in 0..50 {
        if !before.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        before = dm.records(&endpoint).await;
    }
    assert_eq!(before.len(), 1, "one record set: {before:?}");
    assert_eq!(before[0].len(), 2, "both nodes: {before:?}");

    // An upgrade of a READY cluster: --wait returns once traffic moved.
    let out = dm.ok(&[
        "clusters",
        "upgrade",
        "--version",
        "2.1.0",
        "--rollback-window",
        "600",
        "1",
        "--wait",
    ]);
    assert!(out.contains("cluster 2 serves the endpoint now"), "{out}");
    let upgrade = dm.operation("3");
    let ready = step(&upgrade, "wait-ready")["finishedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let switched = step(&upgrade, "switch-endpoint")["startedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        switched >= ready,
        "switched at {switched}, before READY at {ready}"
    );
    let new = json(&dm.ok(&["--json", "clusters", "get", "2"]));
    assert_eq!(
        (new["version"].as_str(), new["servesEndpoint"].as_bool()),
        (Some("2.1.0"), Some(true))
    );
    let after = dm.records(&endpoint).await;
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "the endpoint moved to the replacement's nodes");
    dm.refused(&["clusters", "upgrade", "--version", "2.3.0", "1"], "409");

    // A rollback inside the window moves it back, and retires the replacement.
    dm.ok(&["clusters", "rollback", "1", "--wait"]);
    assert_eq!(dm.records(&endpoint).await, before);
    assert_eq!(dm.operation("3")["state"], "CANCELLED");
    let listed = dm.ok(&["--json", "clusters", "list"]);
    let ids: Vec<i64> = json(&listed)["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1]);

    // A version whose nodes never become READY: the replacement goes, traffic stays.
    dm.sim(&["fail-version", "2.2.0"]);
    let out = dm.ocadm(&[
        "clusters",
        "upgrade",
        "--version",
        "2.2.0",
        "--ready-timeout",
        "60",
        "1",
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wait-ready timed out"), "{err}");
    assert_eq!(dm.records(&endpoint).await, before);
    let groups: Vec<String> = dm.groups().await.into_iter().map(|g| g.0).collect();
    assert_eq!(
        groups,
        vec!["okera-1-sales".to_owned()],
        "the replacement's group is gone"
    );

    // A restart goes through the agents one node at a time.
    dm.ok(&["clusters", "restart", "--service", "planner", "1", "--wait"]);
    let restart = json(&dm.ok(&["--json", "operations", "list", "--cluster", "1", "--limit", "1"]))
        ["operations"][0]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let op = dm.operation(&restart);
    let steps = op["runbook"]["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "restart-node",
            "wait-node-healthy",
            "restart-node",
            "wait-node-healthy"
        ]
    );
    // The second node is restarted only once the first is healthy again.
    assert!(steps[2]["startedAt"].as_str() >= steps[1]["finishedAt"].as_str());
    assert!(steps.iter().all(|s| s["state"] == "DONE"), "{op}");
}
