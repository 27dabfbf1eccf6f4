//! End to end, as a user would: `dm-local up` against the emulator, then `ocadm`
//! creates, scales, protects and deletes a cluster, and at every step the
//! emulator's Auto Scaling groups match what `ocadm` says; and `dm-local sim`
//! breaks a node agent, the health sweep notices, and a lost instance is
//! replaced through the lifecycle hooks. `sigv4.rs` checks the signatures ocadm
//! makes for a DM in AWS against a stand-in for API Gateway on 127.0.0.1.
//!
//! `dm-local` is the workspace's other binary: `cargo test --workspace` (what
//! `tests/run` runs) builds it next to `ocadm`.

use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_autoscaling::Client;

mod diag;
mod dm;
mod failover;
mod sigv4;
mod upgrade;

use dm::{bin, json, start_dm, Dm};

impl Dm {
    /// Auto Scaling in the emulator, in this runner's account.
    async fn autoscaling(&self) -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-west-2"))
            .endpoint_url(emulator::shared().endpoint())
            .credentials_provider(aws_sdk_autoscaling::config::Credentials::new(
                &self.account,
                "test",
                None,
                None,
                "e2e",
            ))
            .load()
            .await;
        Client::new(&config)
    }

    async fn groups(&self) -> Vec<(String, i32, usize, bool)> {
        let out = self
            .autoscaling()
            .await
            .describe_auto_scaling_groups()
            .send()
            .await
            .unwrap();
        out.auto_scaling_groups()
            .iter()
            .map(|g| {
                let launched_by = g
                    .tags()
                    .iter()
                    .any(|t| t.key() == Some("LaunchedBy") && t.value() == Some("Okera"));
                (
                    g.auto_scaling_group_name().unwrap().to_owned(),
                    g.desired_capacity().unwrap(),
                    g.instances().len(),
                    launched_by,
                )
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ocadm_creates_scales_protects_and_deletes_a_cluster_against_dm_local() {
    let dm = start_dm();
    assert_eq!(dm.ok(&["status"]).trim(), "Service available. Status: Running");

    dm.ok(&[
        "environments",
        "create",
        "--name",
        "dev",
        "--region",
        "us-west-2",
        "--admin-cidr",
        "203.0.113.0/24",
        "--create-security-group",
        "--wait",
    ]);
    let envs = json(&dm.ok(&["--json", "environments", "list"]));
    assert_eq!(envs["environments"][0]["statusCode"], "READY", "{envs}");

    let out = dm.ok(&[
        "clusters",
        "create",
        "--name",
        "analytics",
        "--numNodes",
        "3",
        "--type",
        "STANDALONE_CLUSTER",
        "--environmentid",
        "1",
        "--tag",
        "team=data",
        "--wait",
    ]);
    assert!(out.contains("SUCCEEDED"), "{out}");
    let list = dm.ok(&["clusters", "list"]);
    let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "id",
            "name",
            "type",
            "numNodes",
            "numRunningServices",
            "owner",
            "statusCode",
            "statusMessage"
        ]
    );
    assert!(
        list.contains("READY") && list.contains("All services running.") && list.contains("7/7"),
        "{list}"
    );
    assert_eq!(
        dm.groups().await,
        vec![("okera-1-analytics".to_owned(), 3, 3, true)]
    );

    dm.ok(&["clusters", "update", "--numNodes", "5", "1", "--wait"]);
    assert_eq!(
        dm.groups().await,
        vec![("okera-1-analytics".to_owned(), 5, 5, true)]
    );
    let cluster = json(&dm.ok(&["--json", "clusters", "get", "1"]));
    assert_eq!(cluster["nodes"].as_array().unwrap().len(), 5, "{cluster}");

    dm.ok(&[
        "clusters",
        "update",
        "--terminationProtectionEnabled",
        "true",
        "1",
        "--wait",
    ]);
    let err = dm.refused(&["clusters", "delete", "1"], "409");
    assert!(err.contains("termination protection"), "{err}");
    dm.refused(&["clusters", "update", "--numNodes", "0", "1"], "409");
    assert_eq!(
        dm.groups().await,
        vec![("okera-1-analytics".to_owned(), 5, 5, true)],
        "refusals change nothing"
    );

    let viewer = dm
        .env
        .iter()
        .find(|(k, _)| k == "OCADM_VIEWER_TOKEN")
        .unwrap()
        .1
        .clone();
    let out = Command::new(bin("ocadm"))
        .args(["clusters", "delete", "1"])
        .envs(dm.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("OCADM_TOKEN", viewer)
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("(HTTP 403)"));

    dm.ok(&[
        "clusters",
        "update",
        "--terminationProtectionEnabled",
        "false",
        "1",
        "--wait",
    ]);
    dm.ok(&["clusters", "delete", "1", "--wait"]);
    assert_eq!(dm.groups().await, vec![], "delete leaves no group");
    assert!(!dm.ok(&["clusters", "list"]).contains("analytics"));
    dm.ok(&["environments", "delete", "1", "--wait"]);
}

impl Dm {
    fn sim(&self, args: &[&str]) -> String {
        let out = Command::new(bin("dm-local"))
            .arg("sim")
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dm-local sim {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Polls `ocadm --json clusters status <id> --detail` until `done` holds,
    /// for at most a minute.
    fn status_until(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = json(&self.ok(&["clusters", "status", id, "--detail"]));
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "waited a minute for {what}; last: {status}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[tokio::test]
async fn a_failed_service_is_seen_restored_and_a_lost_instance_is_replaced_through_the_hooks() {
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
        "3",
        "--type",
        "STANDALONE_CLUSTER",
        "--environmentid",
        "1",
        "--wait",
    ]);
    let ready = dm.status_until("1", "READY", |s| s["code"] == "READY");
    let detail = dm.ok(&["clusters", "status", "1", "--detail"]);
    let keys: Vec<&str> = detail
        .lines()
        .skip(1)
        .take(4)
        .map(|l| l.trim().split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["\"timestamp\"", "\"message\"", "\"elapsedTime\"", "\"code\""],
        "{detail}"
    );
    assert_eq!(ready["message"], "All services running.");
    assert_eq!(ready["numRunningServices"], "7/7");
    let summary = dm.ok(&["clusters", "status", "1"]);
    assert!(
        summary.starts_with("Cluster 1 (analytics): READY\nAll services running.\n"),
        "{summary}"
    );

    let failed = dm.sim(&[
        "fail-service",
        "--cluster",
        "1",
        "--node",
        "1",
        "--service",
        "planner",
    ]);
    assert!(failed.contains("planner FAILED on node 1"), "{failed}");
    let node1 = ready["nodes"][1]["instanceId"].as_str().unwrap().to_owned();
    let concerning = dm.status_until("1", "CONCERNING", |s| s["code"] == "CONCERNING");
    assert_eq!(
        concerning["message"],
        format!("Health check unsuccessful. Unable to reach planner on node 1 ({node1}).")
    );
    dm.sim(&["restore", "--cluster", "1", "--node", "1"]);
    dm.status_until("1", "READY again", |s| s["code"] == "READY");

    // Lose an instance: the group replaces it, and the new node joins through
    // the launch hook once its agent is ready.
    let lost = ready["nodes"][0]["instanceId"].as_str().unwrap().to_owned();
    dm.autoscaling()
        .await
        .terminate_instance_in_auto_scaling_group()
        .instance_id(&lost)
        .should_decrement_desired_capacity(false)
        .send()
        .await
        .unwrap();
    dm.status_until("1", "a replacement to join", |s| {
        let ids: Vec<&str> = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["instanceId"].as_str())
            .collect();
        s["code"] == "READY" && ids.len() == 3 && !ids.contains(&lost.as_str())
    });
}
