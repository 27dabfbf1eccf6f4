//! The region routes (docs/failover.md, docs/api.md): who is active
//! (`/v1/status`, `/v1/regions`), failover requests (`/v1/failover`,
//! `/v1/failovers`), drills (`/v1/drills`), environment pairs, and the gate that
//! refuses writes in a region that stands by.
//!
//! The two-region fixture ([`World`]) is the deployment of docs/failover.md in
//! one process: the real fence (a DynamoDB MRSC table in the emulator, made from
//! us-east-1 with us-west-2 as a replica and us-east-2 as the witness), one
//! regional store per region over the test's one database, read-only unless the
//! [`WriterWatch`] names its region, and one API router per region over a
//! [`FenceDesk`] whose wake-up of the failover function is recorded.
//!
//! The writer is us-east-1 throughout, set on the watch as `follow_writer` sets
//! it from the global database's writer. (The API crate does not link the RDS
//! SDK, so this binary cannot describe the emulator's global database; no test
//! here promotes it, and the one that moves leadership sets the watch as the
//! promotion would.)

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use api::AppState;
use axum::http::Method;
use serde_json::{json, Value};
use shared::cloud::aws::{AwsSettings, CloudWatchAdapter, DynamoFence};
use shared::cloud::{Claimed, Fence};
use shared::domain::failover::Leader;
use shared::store::{Store, WriterWatch};
use shared::workflows::failover::{drill_steps, FailoverSettings, FenceDesk, STEP_NAMES};

use crate::support::*;

/// The active region: its database is the global database's writer.
const A: &str = "us-east-1";
/// The region that stands by.
const B: &str = "us-west-2";
const TABLE: &str = "okera-dm-fence";
const GLOBAL: &str = "okera-dm";

/// Two DM regions over one backend's database and one emulator account.
struct World {
    fx: Fixture,
    backend: &'static str,
    aws: AwsSettings,
    watch: WriterWatch,
    states: BTreeMap<&'static str, AppState>,
    /// What each region's API sent its failover function, in order.
    events: Arc<Mutex<Vec<(&'static str, Value)>>>,
}

/// Runs `test` on both backends, each with a [`World`] of its own.
async fn in_two_regions<F, Fut>(test: F)
where
    F: Fn(World) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_both_backends(move |fx| {
        let test = test.clone();
        async move { test(World::new(fx).await).await }
    })
    .await;
}

fn failover_settings(region: &str) -> FailoverSettings {
    FailoverSettings {
        region: region.to_owned(),
        dm_regions: vec![A.into(), B.into()],
        fence_table: TABLE.into(),
        global_db: GLOBAL.into(),
        db_cluster: format!("{GLOBAL}-{region}"),
        health_alarms: BTreeMap::new(),
        automatic: true,
        max_lag_ms: 60_000,
        promotion_timeout_ms: 20_000,
        poll_ms: 20,
        heartbeat_max_age_s: 30.0,
    }
}

impl World {
    async fn new(fx: Fixture) -> World {
        let backend = fx.backend;
        let endpoint = tokio::task::spawn_blocking(|| emulator::shared().endpoint().to_owned())
            .await
            .expect("start the emulator");
        let aws = aws_settings(endpoint, &fx.account);
        DynamoFence::new(aws.clone(), A, TABLE)
            .ensure_table(&[B.into()], Some("us-east-2"))
            .await
            .unwrap_or_else(|e| panic!("[{backend}] make the fence table: {e}"));
        let watch = WriterWatch::new(Some(A));
        let events: Arc<Mutex<Vec<(&'static str, Value)>>> = Arc::default();
        let mut states = BTreeMap::new();
        for region in [A, B] {
            let store = Store::connect_regional(&fx.db_url, region, watch.clone())
                .await
                .unwrap_or_else(|e| panic!("[{backend}] the {region} store: {e}"));
            let recorder = events.clone();
            let wake: shared::workflows::failover::FailoverWake = Arc::new(move |event| {
                recorder.lock().expect("wake log").push((region, event));
                Box::pin(async {})
            });
            let desk = FenceDesk::new(
                Arc::new(DynamoFence::new(aws.clone(), region, TABLE)),
                CloudWatchAdapter::new(aws.clone()),
                store.clone(),
                failover_settings(region),
                wake.clone(),
            );
            let state = AppState {
                store,
                failover: Arc::new(desk),
                run_region_runbook: Arc::new(move |id| wake(shared::workflows::runbook::event(id))),
                ..fx.state.clone()
            };
            states.insert(region, state);
        }
        World {
            fx,
            backend,
            aws,
            watch,
            states,
            events,
        }
    }

    fn fence(&self, region: &str) -> DynamoFence {
        DynamoFence::new(self.aws.clone(), region, TABLE)
    }

    /// Sends `req` to `region`'s API.
    async fn send(&self, region: &'static str, req: Req) -> Reply {
        let what = format!("{} {} (to {region})", req.method, req.path);
        self.fx
            .send_to(self.states[region].clone(), what, req.build())
            .await
    }

    /// What the APIs sent the failover functions so far.
    fn woken(&self) -> Vec<(&'static str, Value)> {
        self.events.lock().expect("wake log").clone()
    }

    /// The ids of the failover requests in the fence.
    async fn requests(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .fence(A)
            .requests()
            .await
            .unwrap_or_else(|e| panic!("[{}] list failover requests: {e}", self.backend))
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }

    async fn leader(&self) -> Option<Leader> {
        self.fence(A)
            .leader()
            .await
            .unwrap_or_else(|e| panic!("[{}] read the leader: {e}", self.backend))
    }

    /// Sends `req` to `region`, asserts that it is refused as described, and
    /// that nothing changed: no row, operation, audit record, kick or wake-up,
    /// no failover request, no new epoch.
    async fn refused(
        &self,
        region: &'static str,
        req: Req,
        status: u16,
        code: &str,
        field: Option<&str>,
        mentions: &[&str],
    ) -> Reply {
        let what = format!(
            "{} {} to {region} {}",
            req.method,
            req.path,
            String::from_utf8_lossy(&req.body[..req.body.len().min(200)])
        );
        let before = self.fx.snapshot().await;
        let woken = self.woken();
        let requests = self.requests().await;
        let leader = self.leader().await;
        let reply = self.send(region, req).await;
        reply.assert_error(status, code, field, mentions);
        self.fx.assert_nothing_written(&before, &what).await;
        let b = self.backend;
        assert_eq!(self.woken(), woken, "[{b}] {what} woke a failover function");
        assert_eq!(
            self.requests().await,
            requests,
            "[{b}] {what} recorded a failover request"
        );
        assert_eq!(self.leader().await, leader, "[{b}] {what} changed the leader");
        reply
    }

    /// Reads A's status, which claims epoch 1 for A (its database is the writer).
    async fn claim(&self) {
        let status = self.send(A, Req::get("/v1/status")).await;
        status.assert_status(200);
        assert_eq!(
            (status.str_at("/role"), status.i64_at("/epoch")),
            ("ACTIVE", 1),
            "[{}] {}",
            self.backend,
            status.text
        );
    }

    /// Creates an environment through `region`'s API; answers its id.
    async fn create_environment(&self, region: &'static str, body: &Value) -> i64 {
        let reply = self.send(region, Req::post("/v1/environments", body)).await;
        reply.assert_status(202);
        reply.i64_at("/environment/id")
    }

    /// Starts a drill from A to B through A's API; answers its operation.
    async fn start_drill(&self) -> i64 {
        let reply = self.send(A, Req::post("/v1/drills", &json!({ "to": B }))).await;
        reply.assert_status(202);
        reply.i64_at("/operationId")
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// `YYYY-MM-DD HH:MM:SS.mmm`
fn is_timestamp(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 23
            && s.char_indices().all(|(i, c)| match i {
                4 | 7 => c == '-',
                10 => c == ' ',
                13 | 16 => c == ':',
                19 => c == '.',
                _ => c.is_ascii_digit(),
            })
    })
}

fn env_in(name: &str, region: &str) -> Value {
    json!({ "name": name, "region": region })
}

const STATUS_FIELDS: [&str; 8] = [
    "status",
    "message",
    "version",
    "region",
    "role",
    "activeRegion",
    "epoch",
    "roleMessage",
];

const REQUEST_FIELDS: [&str; 17] = [
    "id",
    "to",
    "from",
    "planned",
    "force",
    "trigger",
    "state",
    "epoch",
    "requestedAt",
    "claimedAt",
    "promotionStartedAt",
    "promotedAt",
    "replicaLagMs",
    "operationId",
    "error",
    "preconditions",
    "updatedAt",
];

const PRECONDITIONS: [&str; 7] = [
    "target-region",
    "not-active",
    "no-failover-in-flight",
    "no-drill-running",
    "target-environments",
    "capacity",
    "replica-lag",
];

/// The preconditions of a plan or a request, as (name, ok).
fn checks(v: &Value) -> Vec<(String, bool)> {
    v.as_array()
        .unwrap_or_else(|| panic!("preconditions are not a list: {v}"))
        .iter()
        .map(|c| {
            assert_eq!(keys(c), set(&["name", "ok", "detail"]), "a precondition: {c}");
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["ok"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn status_and_regions_name_the_active_region_and_its_epoch_in_every_region() {
    in_two_regions(|w| async move {
        let b = w.backend;
        // Before the writer's region has been asked, nobody holds an epoch.
        let early = w.send(B, Req::get("/v1/status").token(VIEWER)).await;
        early.assert_status(200);
        assert_eq!(keys(early.json()), set(&STATUS_FIELDS), "[{b}] {}", early.text);
        assert_eq!(early.str_at("/region"), B, "[{b}]");
        assert_eq!(early.str_at("/role"), "STANDBY", "[{b}]");
        assert_eq!(early.at("/activeRegion"), &Value::Null, "[{b}]");
        assert_eq!(early.at("/epoch"), &Value::Null, "[{b}]");
        assert!(
            early
                .str_at("/roleMessage")
                .contains("no region has claimed leadership yet"),
            "[{b}] {}",
            early.text
        );
        assert!(w.leader().await.is_none(), "[{b}] a standby read claimed");

        // The first read in the writer's region claims epoch 1.
        let active = w.send(A, Req::get("/v1/status").token(VIEWER)).await;
        active.assert_status(200);
        assert_eq!(
            active.json(),
            &json!({
                "status": "Running",
                "message": "Service available",
                "version": env!("CARGO_PKG_VERSION"),
                "region": A,
                "role": "ACTIVE",
                "activeRegion": A,
                "epoch": 1,
                "roleMessage": "region us-east-1 is active (epoch 1)",
            }),
            "[{b}]"
        );
        let leader = w.leader().await.expect("a leader");
        assert_eq!((leader.epoch, leader.region.as_str()), (1, A), "[{b}]");

        let standby = w.send(B, Req::get("/v1/status")).await;
        standby.assert_status(200);
        assert_eq!(standby.str_at("/role"), "STANDBY", "[{b}]");
        assert_eq!(standby.str_at("/activeRegion"), A, "[{b}]");
        assert_eq!(standby.i64_at("/epoch"), 1, "[{b}]");
        assert!(
            standby
                .str_at("/roleMessage")
                .contains("region us-west-2 is standing by: us-east-1 is active since"),
            "[{b}] {}",
            standby.text
        );

        // /v1/regions: the same in both regions, but for who answers.
        for (region, role) in [(A, "ACTIVE"), (B, "STANDBY")] {
            let r = w.send(region, Req::get("/v1/regions").token(VIEWER)).await;
            r.assert_status(200);
            let v = r.json();
            assert_eq!(
                keys(v),
                set(&[
                    "region",
                    "role",
                    "message",
                    "leader",
                    "regions",
                    "leadershipHistory",
                    "failovers"
                ]),
                "[{b}] {}",
                r.text
            );
            assert_eq!(
                (v["region"].as_str(), v["role"].as_str()),
                (Some(region), Some(role)),
                "[{b}]"
            );
            assert!(
                v["message"].as_str().is_some_and(|m| m.contains(region)),
                "[{b}] {}",
                r.text
            );
            let l = &v["leader"];
            assert_eq!(
                keys(l),
                set(&["region", "epoch", "since", "previous", "failoverId"]),
                "[{b}] {}",
                r.text
            );
            assert_eq!(
                (l["region"].as_str(), l["epoch"].as_i64()),
                (Some(A), Some(1)),
                "[{b}]"
            );
            assert!(is_timestamp(&l["since"]), "[{b}] {}", r.text);
            assert_eq!(
                (&l["previous"], &l["failoverId"]),
                (&Value::Null, &Value::Null),
                "[{b}]"
            );
            let regions = v["regions"].as_array().expect("regions");
            let listed: Vec<(&str, bool)> = regions
                .iter()
                .map(|x| (x["region"].as_str().unwrap_or(""), x["active"] == json!(true)))
                .collect();
            assert_eq!(listed, [(A, true), (B, false)], "[{b}] {}", r.text);
            for x in regions {
                assert_eq!(
                    keys(x),
                    set(&[
                        "region",
                        "active",
                        "healthCheckId",
                        "heartbeatAt",
                        "clustersReady",
                        "clusters"
                    ]),
                    "[{b}] {x}"
                );
                // No schedule has run: no health check, heartbeat or counts yet.
                for k in ["healthCheckId", "heartbeatAt", "clustersReady", "clusters"] {
                    assert_eq!(x[k], Value::Null, "[{b}] {k} of {x}");
                }
            }
            let history = v["leadershipHistory"].as_array().expect("history");
            assert_eq!(history.len(), 1, "[{b}] {}", r.text);
            assert_eq!(
                keys(&history[0]),
                set(&["epoch", "region", "previous", "at", "failoverId", "operationId"]),
                "[{b}]"
            );
            assert_eq!(
                (history[0]["epoch"].as_i64(), history[0]["region"].as_str()),
                (Some(1), Some(A)),
                "[{b}]"
            );
            assert!(is_timestamp(&history[0]["at"]), "[{b}]");
            assert_eq!(v["failovers"], json!([]), "[{b}]");
        }
        // Reading the role never asks for a failover.
        assert!(w.woken().is_empty(), "[{b}]");
        assert_eq!(
            w.leader().await.expect("a leader").epoch,
            1,
            "[{b}] one claim only"
        );
    })
    .await;
}

#[tokio::test]
async fn with_one_region_status_says_single_and_the_failover_routes_say_why_they_cannot() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let status = fx.send(Req::get("/v1/status").token(VIEWER)).await;
        status.assert_status(200);
        assert_eq!(
            status.json(),
            &json!({
                "status": "Running",
                "message": "Service available",
                "version": env!("CARGO_PKG_VERSION"),
                "region": REGION,
                "role": "SINGLE",
                "activeRegion": null,
                "epoch": null,
                "roleMessage": "region us-west-2 is the only DM region",
            }),
            "[{b}]"
        );
        let regions = fx.send(Req::get("/v1/regions").token(VIEWER)).await;
        regions.assert_status(200);
        assert_eq!(
            regions.json(),
            &json!({
                "region": REGION,
                "role": "SINGLE",
                "message": "region us-west-2 is the only DM region",
                "leader": null,
                "regions": [{"region": REGION, "active": true, "healthCheckId": null,
                             "heartbeatAt": null, "clustersReady": null, "clusters": null}],
                "leadershipHistory": [],
                "failovers": [],
            }),
            "[{b}]"
        );
        for body in [
            json!({ "to": REGION }),
            json!({ "to": REGION, "dryRun": true }),
            json!({ "to": "us-east-1", "planned": true, "force": true }),
        ] {
            fx.refused(
                Req::post("/v1/failover", &body),
                409,
                "FAILOVER_REFUSED",
                None,
                &["this DM runs in one region", "OKERA_FENCE_TABLE", "--regions"],
            )
            .await;
        }
        fx.refused(
            Req::post("/v1/drills", &json!({ "to": "us-east-1" })),
            409,
            "FAILOVER_REFUSED",
            None,
            &["this DM runs in one region", "a drill needs a second DM region"],
        )
        .await;
        for (path, want) in [
            ("/v1/failovers", json!({ "failovers": [] })),
            ("/v1/drills", json!({ "drills": [] })),
        ] {
            let reply = fx.send(Req::get(path).token(VIEWER)).await;
            reply.assert_status(200);
            assert_eq!(reply.json(), &want, "[{b}] {path}");
        }
        fx.refused(
            Req::get("/v1/failovers/fo-1"),
            404,
            "NOT_FOUND",
            None,
            &["no failover fo-1", "one region"],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_write_sent_to_the_standby_region_is_409_region_standby_and_writes_nothing() {
    in_two_regions(|w| async move {
        let b = w.backend;
        // Before any region claimed, the standby cannot say who is active.
        w.refused(
            B,
            Req::post("/v1/environments", &env_in("early", B)),
            409,
            "REGION_STANDBY",
            None,
            &[
                "no region has claimed leadership yet",
                "send writes to the active region's API",
            ],
        )
        .await;
        w.claim().await;
        let env = w.create_environment(A, &env_in("prod", A)).await;
        let writes = [
            Req::post("/v1/environments", &env_in("late", B)),
            Req::post(
                "/v1/environments",
                &json!({ "name": "late", "region": B, "failoverFor": env }),
            ),
            Req::delete(&format!("/v1/environments/{env}")),
            Req::post("/v1/clusters", &cluster_body(env, "analytics")),
            Req::patch("/v1/clusters/1", &json!({ "numNodes": 2 })),
            Req::delete("/v1/clusters/1"),
            Req::post("/v1/clusters/1/upgrade", &json!({ "version": "2.1.0" })),
            Req::new(Method::POST, "/v1/clusters/1/rollback"),
            Req::new(Method::POST, "/v1/clusters/1/restart"),
            Req::post("/v1/clusters/1/diagnostics", &json!({})),
            Req::new(Method::POST, "/v1/operations/1/cancel"),
            Req::put("/v1/settings/default-version", &json!({ "version": "2.1.0" })),
            Req::post("/v1/drills", &json!({ "to": A })),
            // Refused before the body is read: even a bad one.
            Req::post("/v1/environments", &json!({ "bogus": true })),
        ];
        for req in writes {
            w.refused(
                B,
                req,
                409,
                "REGION_STANDBY",
                None,
                &[
                    "region us-west-2 is standing by: us-east-1 is active",
                    "epoch 1",
                    "send writes to us-east-1's API",
                ],
            )
            .await;
        }
        // Who may not write at all hears that first; without a token, 401.
        w.refused(
            B,
            Req::post("/v1/environments", &env_in("late", B)).token(VIEWER),
            403,
            "FORBIDDEN",
            None,
            &["viewer"],
        )
        .await;
        w.refused(
            B,
            Req::post("/v1/environments", &env_in("late", B)).authorization(None),
            401,
            "UNAUTHENTICATED",
            None,
            &[],
        )
        .await;
        // The standby serves reads from its replica: what A wrote, A's view.
        let from_a = w.send(A, Req::get(&format!("/v1/environments/{env}"))).await;
        from_a.assert_status(200);
        for path in [format!("/v1/environments/{env}"), "/v1/operations/1".into()] {
            let reply = w.send(B, Req::get(&path).token(VIEWER)).await;
            reply.assert_status(200);
        }
        let from_b = w.send(B, Req::get(&format!("/v1/environments/{env}"))).await;
        assert_eq!(from_b.json(), from_a.json(), "[{b}]");
        let listed = w.send(B, Req::get("/v1/environments")).await;
        let names: Vec<&str> = listed
            .at("/environments")
            .as_array()
            .expect("environments")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert_eq!(names, ["prod"], "[{b}] only A's write is there");
        // The active region takes the same write.
        w.create_environment(A, &env_in("late", B)).await;
    })
    .await;
}

#[tokio::test]
async fn a_region_that_lost_leadership_refuses_writes_and_names_the_new_active_region() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        // What a failover to B does first: claim epoch 2, then promote B's database.
        let first = w.leader().await.expect("a leader");
        let next = first.next(B, Some("fo-simulated"), shared::time::now_ms());
        match w.fence(B).claim(Some(1), &next).await {
            Ok(Claimed::Won) => {}
            other => panic!("[{b}] claim epoch 2: {other:?}"),
        }
        w.watch.set(Some(B));

        let status = w.send(A, Req::get("/v1/status")).await;
        assert_eq!(status.str_at("/role"), "STANDBY", "[{b}]");
        assert_eq!(
            (status.str_at("/activeRegion"), status.i64_at("/epoch")),
            (B, 2),
            "[{b}]"
        );
        assert!(
            status
                .str_at("/roleMessage")
                .contains("region us-east-1 lost leadership to us-west-2 at epoch 2"),
            "[{b}] {}",
            status.text
        );
        w.refused(
            A,
            Req::post("/v1/environments", &env_in("late", A)),
            409,
            "REGION_STANDBY",
            None,
            &[
                "lost leadership to us-west-2 at epoch 2",
                "send writes to us-west-2's API",
            ],
        )
        .await;
        w.refused(
            A,
            Req::post("/v1/drills", &json!({ "to": B })),
            409,
            "REGION_STANDBY",
            None,
            &["us-west-2's API"],
        )
        .await;

        let regions = w.send(A, Req::get("/v1/regions")).await;
        assert_eq!(
            regions.at("/leader"),
            &json!({
                "region": B, "epoch": 2, "since": regions.at("/leader/since"),
                "previous": A, "failoverId": "fo-simulated",
            }),
            "[{b}]"
        );
        let active: Vec<bool> = regions
            .at("/regions")
            .as_array()
            .expect("regions")
            .iter()
            .map(|r| r["active"] == json!(true))
            .collect();
        assert_eq!(active, [false, true], "[{b}] {}", regions.text);

        // B is active now: it takes writes, and A's replica shows them.
        let status = w.send(B, Req::get("/v1/status")).await;
        assert_eq!(
            (status.str_at("/role"), status.i64_at("/epoch")),
            ("ACTIVE", 2),
            "[{b}]"
        );
        let env = w.create_environment(B, &env_in("after", B)).await;
        w.send(A, Req::get(&format!("/v1/environments/{env}")))
            .await
            .assert_status(200);
        let drill = w.send(B, Req::post("/v1/drills", &json!({ "to": A }))).await;
        drill.assert_status(202);
        assert_eq!(
            w.woken(),
            [(B, json!({ "runbookId": drill.i64_at("/operationId") }))],
            "[{b}]"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failover_sent_to_a_region_that_is_not_its_target_is_refused_naming_the_endpoint_to_use() {
    in_two_regions(|w| async move {
        w.claim().await;
        for dry_run in [false, true] {
            w.refused(
                A,
                Req::post("/v1/failover", &json!({ "to": B, "dryRun": dry_run })),
                409,
                "FAILOVER_REFUSED",
                None,
                &[
                    "a failover runs in its target region",
                    "send it to the API of us-west-2 (OCADM_ENDPOINT_US_WEST_2), not to us-east-1's",
                ],
            )
            .await;
            w.refused(
                B,
                Req::post("/v1/failover", &json!({ "to": "eu-west-1", "dryRun": dry_run })),
                409,
                "FAILOVER_REFUSED",
                None,
                &["OCADM_ENDPOINT_EU_WEST_1", "not to us-west-2's"],
            )
            .await;
        }
        // The active region is no target: not even with force.
        for force in [false, true] {
            let reply = w
                .refused(
                    A,
                    Req::post("/v1/failover", &json!({ "to": A, "force": force })),
                    409,
                    "FAILOVER_REFUSED",
                    None,
                    &[
                        "failover to us-east-1 refused",
                        "not-active: us-east-1 is already the active region",
                    ],
                )
                .await;
            assert!(
                !reply.text.contains("--force"),
                "[{}] force cannot skip not-active: {}",
                w.backend,
                reply.text
            );
        }
        for region in [A, B] {
            let listed = w.send(region, Req::get("/v1/failovers")).await;
            assert_eq!(listed.json(), &json!({ "failovers": [] }), "[{}]", w.backend);
        }
    })
    .await;
}

#[tokio::test]
async fn a_dry_run_answers_200_with_the_plan_and_its_preconditions_and_records_nothing() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        for planned in [false, true] {
            let before = w.fx.snapshot().await;
            let account = w.fx.account.clone();
            let calls = move || emulator::roles::snapshot(emulator::shared(), &account);
            let aws_before = tokio::task::spawn_blocking(calls.clone()).await.unwrap();
            let reply = w
                .send(
                    B,
                    Req::post(
                        "/v1/failover",
                        &json!({ "to": B, "dryRun": true, "planned": planned }),
                    ),
                )
                .await;
            reply.assert_status(200);
            // Every AWS call the dry run made (the fence, replica lag) is one
            // the template's role grants.
            let aws_after = tokio::task::spawn_blocking(calls).await.unwrap();
            emulator::roles::assert_role_allows("ApiFunction", &aws_before, &aws_after);
            assert_eq!(
                keys(reply.json()),
                set(&["dryRun", "plan"]),
                "[{b}] {}",
                reply.text
            );
            assert_eq!(reply.at("/dryRun"), &json!(true), "[{b}]");
            let plan = reply.at("/plan");
            assert_eq!(
                keys(plan),
                set(&[
                    "to",
                    "from",
                    "planned",
                    "promotion",
                    "preconditions",
                    "clusters",
                    "steps",
                    "replicaLagMs"
                ]),
                "[{b}] {}",
                reply.text
            );
            assert_eq!(
                (plan["to"].as_str(), plan["from"].as_str()),
                (Some(B), Some(A)),
                "[{b}]"
            );
            assert_eq!(plan["planned"], json!(planned), "[{b}]");
            let promotion = plan["promotion"].as_str().unwrap_or_default();
            let how = if planned {
                "SwitchoverGlobalCluster"
            } else {
                "FailoverGlobalCluster with AllowDataLoss"
            };
            assert!(
                promotion.contains(how) && promotion.contains("okera-dm-us-west-2"),
                "[{b}] {promotion}"
            );
            let names: Vec<(String, bool)> = checks(&plan["preconditions"]);
            assert_eq!(
                names,
                PRECONDITIONS
                    .iter()
                    .map(|n| ((*n).to_owned(), true))
                    .collect::<Vec<_>>(),
                "[{b}] {}",
                reply.text
            );
            assert_eq!(plan["clusters"], json!([]), "[{b}] nothing serves in A");
            assert_eq!(plan["steps"], json!(STEP_NAMES), "[{b}]");
            // The emulator has no replica-lag metric: unknown, and not a reason to refuse.
            assert_eq!(plan["replicaLagMs"], Value::Null, "[{b}]");
            w.fx.assert_nothing_written(&before, "a dry run").await;
        }
        assert!(w.woken().is_empty(), "[{b}] a dry run woke the failover function");
        for region in [A, B] {
            let listed = w.send(region, Req::get("/v1/failovers")).await;
            assert_eq!(listed.json(), &json!({ "failovers": [] }), "[{b}]");
        }
        assert_eq!(w.leader().await.expect("a leader").epoch, 1, "[{b}]");
        // A dry run is a write as far as roles go.
        w.refused(
            B,
            Req::post("/v1/failover", &json!({ "to": B, "dryRun": true })).token(VIEWER),
            403,
            "FORBIDDEN",
            None,
            &["viewer"],
        )
        .await;
        // A dry run shows a failing check rather than refusing.
        let plan = w
            .send(A, Req::post("/v1/failover", &json!({ "to": A, "dryRun": true })))
            .await;
        plan.assert_status(200);
        let failing: Vec<String> = checks(plan.at("/plan/preconditions"))
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(failing, ["not-active"], "[{b}] {}", plan.text);
    })
    .await;
}

#[tokio::test]
async fn a_failover_request_is_accepted_by_the_standby_target_recorded_and_wakes_its_failover_function() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        let before = w.fx.snapshot().await;
        let reply = w
            .send(
                B,
                Req::post(
                    "/v1/failover",
                    &json!({ "to": B, "planned": true, "readyTimeoutSeconds": 600 }),
                ),
            )
            .await;
        reply.assert_status(202);
        assert_eq!(
            keys(reply.json()),
            set(&["failoverId", "failover"]),
            "[{b}] {}",
            reply.text
        );
        let id = reply.str_at("/failoverId").to_owned();
        assert!(id.starts_with("fo-"), "[{b}] {id}");
        let f = reply.at("/failover");
        assert_eq!(keys(f), set(&REQUEST_FIELDS), "[{b}] {}", reply.text);
        assert_eq!(f["id"], json!(id), "[{b}]");
        assert_eq!(f["state"], "REQUESTED", "[{b}]");
        assert_eq!(f["to"], B, "[{b}]");
        assert_eq!(
            (&f["planned"], &f["force"]),
            (&json!(true), &json!(false)),
            "[{b}]"
        );
        assert_eq!(f["trigger"], format!("ocadm ({ADMIN_NAME})"), "[{b}]");
        for k in [
            "from",
            "epoch",
            "claimedAt",
            "promotionStartedAt",
            "promotedAt",
            "replicaLagMs",
            "operationId",
            "error",
        ] {
            assert_eq!(f[k], Value::Null, "[{b}] {k} before the failover function acted");
        }
        assert!(
            is_timestamp(&f["requestedAt"]) && is_timestamp(&f["updatedAt"]),
            "[{b}]"
        );
        assert!(
            checks(&f["preconditions"]).iter().all(|(_, ok)| *ok),
            "[{b}] {}",
            reply.text
        );
        assert_eq!(
            w.woken(),
            [(B, json!({ "failoverId": id }))],
            "[{b}] the target's failover function is woken once"
        );
        // The request is in the fence; the database, the leader and the
        // reconciler are the failover function's business, not the API's.
        w.fx.assert_nothing_written(&before, "a failover request").await;
        assert_eq!(w.leader().await.expect("a leader").epoch, 1, "[{b}]");
        assert_eq!(w.requests().await, vec![id.clone()], "[{b}]");
        for region in [A, B] {
            let got = w
                .send(region, Req::get(&format!("/v1/failovers/{id}")).token(VIEWER))
                .await;
            got.assert_status(200);
            assert_eq!(got.json(), f, "[{b}] GET in {region} shows what the 202 showed");
            let listed = w.send(region, Req::get("/v1/failovers").token(VIEWER)).await;
            assert_eq!(listed.json(), &json!({ "failovers": [f] }), "[{b}] in {region}");
            let regions = w.send(region, Req::get("/v1/regions")).await;
            assert_eq!(regions.at("/failovers"), &json!([f]), "[{b}] in {region}");
        }
        // The readiness timeout is kept with the request, for the failover function.
        let stored = w
            .fence(B)
            .request(&id)
            .await
            .expect("read the request")
            .expect("the request");
        assert_eq!(stored.ready_timeout_ms, 600_000, "[{b}]");
        // Viewers may not ask for one.
        w.refused(
            B,
            Req::post("/v1/failover", &json!({ "to": B })).token(VIEWER),
            403,
            "FORBIDDEN",
            None,
            &["viewer", "needs the admin role"],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_failover_sent_again_with_its_idempotency_key_answers_the_first_and_wakes_nothing() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        let body = json!({ "to": B, "planned": true });
        let first = w
            .send(B, Req::post("/v1/failover", &body).idempotency_key("fo-1"))
            .await;
        first.assert_status(202);
        assert_eq!(first.header("Idempotent-Replayed"), None, "[{b}]");
        // The retry of a request that went through: the first is in flight,
        // which a new request would be refused for.
        let again = w
            .send(B, Req::post("/v1/failover", &body).idempotency_key("fo-1"))
            .await;
        again.assert_status(202);
        assert_eq!(again.header("Idempotent-Replayed"), Some("true"), "[{b}]");
        assert_eq!(again.json(), first.json(), "[{b}] the same request");
        assert_eq!(w.woken().len(), 1, "[{b}] a replay wakes nothing");
        w.refused(
            B,
            Req::post("/v1/failover", &json!({ "to": B })).idempotency_key("fo-1"),
            409,
            "CONFLICT",
            None,
            &["Idempotency-Key", "fo-1"],
        )
        .await;
        assert_eq!(w.requests().await.len(), 1, "[{b}] one request in the fence");
    })
    .await;
}

#[tokio::test]
async fn a_failover_is_refused_naming_no_drill_running_while_a_drill_runs_unless_forced() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        let drill = w.start_drill().await;
        let running = format!("drill {drill} is running");
        w.refused(
            B,
            Req::post("/v1/failover", &json!({ "to": B })),
            409,
            "FAILOVER_REFUSED",
            None,
            &[
                "failover to us-west-2 refused",
                "no-drill-running",
                &running,
                "(--force goes on anyway)",
            ],
        )
        .await;
        let plan = w
            .send(B, Req::post("/v1/failover", &json!({ "to": B, "dryRun": true })))
            .await;
        plan.assert_status(200);
        let failing: Vec<String> = checks(plan.at("/plan/preconditions"))
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(failing, ["no-drill-running"], "[{b}] {}", plan.text);
        // force goes on, and the request says which check it skipped.
        let forced = w
            .send(B, Req::post("/v1/failover", &json!({ "to": B, "force": true })))
            .await;
        forced.assert_status(202);
        assert_eq!(forced.at("/failover/force"), &json!(true), "[{b}]");
        let skipped: Vec<String> = checks(forced.at("/failover/preconditions"))
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(skipped, ["no-drill-running"], "[{b}]");
    })
    .await;
}

#[tokio::test]
async fn bad_failover_and_drill_requests_name_the_field_and_write_nothing() {
    in_two_regions(|w| async move {
        w.claim().await;
        let failover = |extra: Value| {
            let mut body = json!({ "to": B });
            for (k, v) in extra.as_object().expect("an object") {
                body[k] = v.clone();
            }
            body
        };
        let too_big = json!(86_401);
        let cases = [
            (failover(json!({ "bogus": 1 })), "UNKNOWN_FIELD", "bogus", "bogus"),
            (
                failover(json!({ "dry_run": true })),
                "UNKNOWN_FIELD",
                "dry_run",
                "dry_run",
            ),
            (json!({}), "MISSING_FIELD", "to", "to is required"),
            (json!({ "planned": true }), "MISSING_FIELD", "to", "to"),
            (json!({ "to": 5 }), "INVALID_FIELD", "to", "to"),
            (json!({ "to": null }), "INVALID_FIELD", "to", "to"),
            (
                json!({ "to": "west" }),
                "INVALID_FIELD",
                "to",
                "an AWS region such as us-west-2",
            ),
            (
                json!({ "to": "US-WEST-2" }),
                "INVALID_FIELD",
                "to",
                "\"US-WEST-2\"",
            ),
            (
                json!({ "to": "" }),
                "INVALID_FIELD",
                "to",
                "to must be an AWS region",
            ),
            (
                failover(json!({ "planned": "yes" })),
                "INVALID_FIELD",
                "planned",
                "planned",
            ),
            (
                failover(json!({ "dryRun": 1 })),
                "INVALID_FIELD",
                "dryRun",
                "dryRun",
            ),
            (
                failover(json!({ "force": "true" })),
                "INVALID_FIELD",
                "force",
                "force",
            ),
            (
                failover(json!({ "readyTimeoutSeconds": 0 })),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
                "readyTimeoutSeconds must be from 1 to 86400, got 0",
            ),
            (
                failover(json!({ "readyTimeoutSeconds": too_big })),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
                "got 86401",
            ),
            (
                failover(json!({ "readyTimeoutSeconds": -60 })),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
                "readyTimeoutSeconds",
            ),
            (
                failover(json!({ "readyTimeoutSeconds": "600" })),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
                "readyTimeoutSeconds",
            ),
            (
                failover(json!({ "readyTimeoutSeconds": 1.5 })),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
                "readyTimeoutSeconds",
            ),
        ];
        // The body is checked before the target: both regions say the same.
        for region in [A, B] {
            for (body, code, field, mention) in &cases {
                w.refused(
                    region,
                    Req::post("/v1/failover", body),
                    400,
                    code,
                    Some(field),
                    &[mention],
                )
                .await;
            }
        }
        let drill_cases = [
            (
                json!({ "to": B, "planned": true }),
                "UNKNOWN_FIELD",
                "planned",
                "planned",
            ),
            (
                json!({ "to": B, "dryRun": true }),
                "UNKNOWN_FIELD",
                "dryRun",
                "dryRun",
            ),
            (json!({}), "MISSING_FIELD", "to", "to is required"),
            (json!({ "to": ["us-west-2"] }), "INVALID_FIELD", "to", "to"),
            (
                json!({ "to": "nowhere" }),
                "INVALID_FIELD",
                "to",
                "an AWS region such as us-west-2",
            ),
            (
                json!({ "to": B, "readyTimeoutSeconds": 0 }),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
                "from 1 to 86400",
            ),
            (
                json!({ "to": B, "readyTimeoutSeconds": too_big }),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
                "got 86401",
            ),
            (
                json!({ "to": B, "readyTimeoutSeconds": true }),
                "INVALID_FIELD",
                "readyTimeoutSeconds",
                "readyTimeoutSeconds",
            ),
        ];
        for (body, code, field, mention) in &drill_cases {
            w.refused(
                A,
                Req::post("/v1/drills", body),
                400,
                code,
                Some(field),
                &[mention],
            )
            .await;
        }
        // Bodies that are not JSON objects, or not JSON.
        for (region, path) in [(B, "/v1/failover"), (A, "/v1/drills")] {
            for raw in ["[]", "\"us-west-2\"", "{\"to\": "] {
                w.refused(
                    region,
                    Req::new(Method::POST, path).raw(raw),
                    400,
                    "MALFORMED_JSON",
                    None,
                    &[],
                )
                .await;
            }
            w.refused(
                region,
                Req::new(Method::POST, path)
                    .raw(json!({ "to": B }).to_string())
                    .content_type(Some("text/plain")),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                None,
                &["application/json"],
            )
            .await;
            w.refused(
                region,
                Req::post(path, &json!({ "to": B })).token(VIEWER),
                403,
                "FORBIDDEN",
                None,
                &["vera-viewer", "viewer"],
            )
            .await;
            w.refused(
                region,
                Req::post(path, &json!({ "to": B })).authorization(None),
                401,
                "UNAUTHENTICATED",
                None,
                &[],
            )
            .await;
        }
        // Failover ids in the path: letters, digits, '-' and '_', at most 128.
        let long = "f".repeat(129);
        for raw in ["fo%201", "fo.1", "fo;1", "fo%2F1", "%C3%A9t%C3%A9", long.as_str()] {
            for region in [A, B] {
                w.refused(
                    region,
                    Req::get(&format!("/v1/failovers/{raw}")),
                    400,
                    "INVALID_FIELD",
                    Some("id"),
                    &["a failover id is 1 to 128 letters, digits, '-' and '_'"],
                )
                .await;
            }
        }
        // Bytes that are not UTF-8 are refused the same way, as JSON.
        for raw in ["%FF", "fo-%C3%28"] {
            for region in [A, B] {
                w.refused(
                    region,
                    Req::get(&format!("/v1/failovers/{raw}")),
                    400,
                    "INVALID_FIELD",
                    Some("id"),
                    &["a failover id is", "not UTF-8"],
                )
                .await;
            }
        }
        for id in ["unknown", "fo-1-00000000", &"f".repeat(128)] {
            for region in [A, B] {
                w.refused(
                    region,
                    Req::get(&format!("/v1/failovers/{id}")),
                    404,
                    "NOT_FOUND",
                    None,
                    &[&format!("no failover {id}"), "ocadm failover list"],
                )
                .await;
            }
        }
        // The routes take only their methods.
        for (method, path, allowed) in [
            (Method::GET, "/v1/failover", "POST"),
            (Method::DELETE, "/v1/failovers/fo-1", "GET"),
            (Method::POST, "/v1/failovers", "GET"),
            (Method::PUT, "/v1/drills", "GET"),
            (Method::POST, "/v1/regions", "GET"),
        ] {
            let reply = w
                .refused(
                    A,
                    Req::new(method, path),
                    405,
                    "METHOD_NOT_ALLOWED",
                    None,
                    &[path],
                )
                .await;
            let allow = reply.header("allow").unwrap_or_default().to_owned();
            assert!(allow.contains(allowed), "[{}] {path}: Allow {allow:?}", w.backend);
        }
    })
    .await;
}

#[tokio::test]
async fn a_drill_from_the_active_region_is_accepted_wakes_the_failover_function_and_is_listed() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        // Only to another DM region.
        w.refused(
            A,
            Req::post("/v1/drills", &json!({ "to": A })),
            409,
            "FAILOVER_REFUSED",
            None,
            &["a drill goes to another DM region (us-west-2), not to us-east-1"],
        )
        .await;
        w.refused(
            A,
            Req::post("/v1/drills", &json!({ "to": "eu-west-1" })),
            409,
            "FAILOVER_REFUSED",
            None,
            &["a drill goes to another DM region (us-west-2), not to eu-west-1"],
        )
        .await;
        // Not from the standby.
        w.refused(
            B,
            Req::post("/v1/drills", &json!({ "to": A })),
            409,
            "REGION_STANDBY",
            None,
            &["us-east-1's API"],
        )
        .await;

        let body = json!({ "to": B, "readyTimeoutSeconds": 1200 });
        let reply = w
            .send(A, Req::post("/v1/drills", &body).idempotency_key("drill-1"))
            .await;
        reply.assert_status(202);
        assert_eq!(
            keys(reply.json()),
            set(&["operationId", "operation"]),
            "[{b}] {}",
            reply.text
        );
        let op = reply.i64_at("/operationId");
        assert_eq!(reply.header("Idempotent-Replayed"), None, "[{b}]");
        let operation = reply.at("/operation");
        assert_eq!(operation["id"], op, "[{b}]");
        assert_eq!(operation["kind"], "DRILL", "[{b}]");
        assert_eq!(operation["state"], "PENDING", "[{b}] until its first step starts");
        assert_eq!(operation["target"], "region/0", "[{b}]");
        assert_eq!(operation["principal"], ADMIN_NAME, "[{b}]");
        assert_eq!(
            w.woken(),
            [(A, json!({ "runbookId": op }))],
            "[{b}] the active region's failover function runs drills"
        );
        assert!(
            w.fx.runbooks_woken().is_empty(),
            "[{b}] the cluster runbook runner is not woken"
        );
        assert!(
            w.fx.kicked().is_empty(),
            "[{b}] a drill does not kick the reconciler"
        );
        assert!(
            w.requests().await.is_empty(),
            "[{b}] a drill is no failover request"
        );
        assert_eq!(w.leader().await.expect("a leader").epoch, 1, "[{b}]");

        // The same key and body answer with the same drill, without a second wake.
        let again = w
            .send(A, Req::post("/v1/drills", &body).idempotency_key("drill-1"))
            .await;
        again.assert_status(202);
        assert_eq!(again.i64_at("/operationId"), op, "[{b}]");
        assert_eq!(again.header("Idempotent-Replayed"), Some("true"), "[{b}]");
        assert_eq!(w.woken().len(), 1, "[{b}] a replay wakes nothing");
        // The same key with another body, or a second drill: 409.
        w.refused(
            A,
            Req::post("/v1/drills", &json!({ "to": B })).idempotency_key("drill-1"),
            409,
            "CONFLICT",
            None,
            &["Idempotency-Key"],
        )
        .await;
        let running = format!("drill {op} is running");
        w.refused(
            A,
            Req::post("/v1/drills", &json!({ "to": B })),
            409,
            "CONFLICT",
            None,
            &[&running],
        )
        .await;

        // Listed in both regions (B reads its replica), with its runbook.
        let drill_step_names: Vec<&str> = drill_steps().iter().map(|s| s.name).collect();
        for region in [A, B] {
            let listed = w.send(region, Req::get("/v1/drills").token(VIEWER)).await;
            listed.assert_status(200);
            let drills = listed.at("/drills").as_array().expect("drills").clone();
            assert_eq!(drills.len(), 1, "[{b}] in {region}: {}", listed.text);
            let d = &drills[0];
            assert_eq!(
                keys(d),
                set(&[
                    "operationId",
                    "from",
                    "to",
                    "state",
                    "error",
                    "startedAt",
                    "updatedAt",
                    "rtoMs",
                    "leaks",
                    "runbook"
                ]),
                "[{b}] {d}"
            );
            assert_eq!(d["operationId"], op, "[{b}]");
            assert_eq!(
                (d["from"].as_str(), d["to"].as_str()),
                (Some(A), Some(B)),
                "[{b}]"
            );
            assert_eq!(d["state"], "RUNNING", "[{b}]");
            assert_eq!(
                (&d["error"], &d["rtoMs"], &d["leaks"]),
                (&Value::Null, &Value::Null, &json!([])),
                "[{b}]"
            );
            assert!(
                is_timestamp(&d["startedAt"]) && is_timestamp(&d["updatedAt"]),
                "[{b}] {d}"
            );
            let rb = &d["runbook"];
            assert_eq!(rb["kind"], "DRILL", "[{b}]");
            assert_eq!(rb["params"]["readyTimeoutMs"], 1_200_000, "[{b}]");
            assert_eq!(
                (
                    rb["params"]["fromRegion"].as_str(),
                    rb["params"]["toRegion"].as_str()
                ),
                (Some(A), Some(B)),
                "[{b}]"
            );
            let names: Vec<&str> = rb["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .filter_map(|s| s["name"].as_str())
                .collect();
            assert_eq!(names, drill_step_names, "[{b}]");
            let got = w.send(region, Req::get(&format!("/v1/operations/{op}"))).await;
            got.assert_status(200);
            assert_eq!(
                got.at("/runbook"),
                rb,
                "[{b}] the operation shows the same runbook"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn cancelling_a_drill_wakes_the_failover_function_that_runs_it_not_the_cluster_runbook_runner() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        let op = w.start_drill().await;
        w.refused(
            B,
            Req::new(Method::POST, &format!("/v1/operations/{op}/cancel")),
            409,
            "REGION_STANDBY",
            None,
            &["us-east-1's API"],
        )
        .await;
        let reply = w
            .send(A, Req::new(Method::POST, &format!("/v1/operations/{op}/cancel")))
            .await;
        reply.assert_status(202);
        assert_eq!(reply.i64_at("/operationId"), op, "[{b}]");
        let drills = w.send(A, Req::get("/v1/drills")).await;
        assert_eq!(
            drills.at("/drills/0/runbook/cancelRequested"),
            &json!(true),
            "[{b}]"
        );
        // The runbooks function runs only upgrades, rollbacks and restarts; a
        // drill's undo (teardown, leak check) is the failover function's.
        assert_eq!(
            w.woken(),
            [(A, json!({ "runbookId": op })), (A, json!({ "runbookId": op }))],
            "[{b}] the drill's own runner is woken for the cancel"
        );
        assert!(
            w.fx.runbooks_woken().is_empty(),
            "[{b}] the cluster runbook runner was woken for drill {op}: {:?}",
            w.fx.runbooks_woken()
        );
    })
    .await;
}

#[tokio::test]
async fn a_write_that_cannot_read_the_fence_is_503_fence_unavailable_and_writes_nothing() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        // The next read of the fence by this account fails (and is not retried).
        let fence_fails_once = || {
            emulator::shared()
                .inject_fault(
                    &emulator::FaultRule::new("dynamodb", "GetItem", 400, "AccessDeniedException", 1)
                        .account(&w.fx.account),
                )
                .expect("inject a fault");
        };
        let before = w.fx.snapshot().await;
        fence_fails_once();
        let reply = w
            .send(A, Req::post("/v1/environments", &env_in("blind", A)))
            .await;
        reply.assert_error(
            503,
            "FENCE_UNAVAILABLE",
            None,
            &[
                "region us-east-1 cannot confirm that it is active",
                "it behaves as standing by",
            ],
        );
        w.fx.assert_nothing_written(&before, "a write while the fence failed")
            .await;
        assert!(w.woken().is_empty(), "[{b}]");
        assert_eq!(w.leader().await.expect("a leader").epoch, 1, "[{b}]");
        fence_fails_once();
        let status = w.send(A, Req::get("/v1/status")).await;
        status.assert_status(200);
        assert_eq!(status.str_at("/role"), "UNKNOWN", "[{b}]");
        assert_eq!(
            (status.at("/activeRegion"), status.at("/epoch")),
            (&Value::Null, &Value::Null),
            "[{b}]"
        );
        assert!(
            status
                .str_at("/roleMessage")
                .contains("cannot confirm that it is active"),
            "[{b}] {}",
            status.text
        );
        // Once the fence answers again, so does the gate.
        w.create_environment(A, &env_in("seeing", A)).await;
    })
    .await;
}

#[tokio::test]
async fn pairing_environments_checks_the_partner_and_shows_the_pair_on_both_sides() {
    in_two_regions(|w| async move {
        let b = w.backend;
        w.claim().await;
        let primary = w.create_environment(A, &env_in("prod", A)).await;
        let alone = w.send(B, Req::get(&format!("/v1/environments/{primary}"))).await;
        for (k, want) in [
            ("failoverPartnerId", Value::Null),
            ("failoverRole", Value::Null),
            ("warmStandbyNodes", json!(0)),
            ("servesPair", Value::Null),
        ] {
            assert_eq!(
                alone.at(&format!("/{k}")),
                &want,
                "[{b}] {k} of an unpaired environment"
            );
        }
        let pair = |name: &str, region: &str, extra: Value| {
            let mut body = env_in(name, region);
            for (k, v) in extra.as_object().expect("an object") {
                body[k] = v.clone();
            }
            Req::post("/v1/environments", &body)
        };
        // The body alone is wrong.
        let bad = [
            (
                json!({ "warmStandbyNodes": 2 }),
                "warmStandbyNodes",
                "warmStandbyNodes needs failoverFor",
            ),
            (
                json!({ "failoverFor": 0 }),
                "failoverFor",
                "failoverFor must be an environment id",
            ),
            (json!({ "failoverFor": -3 }), "failoverFor", "got -3"),
            (json!({ "failoverFor": "1" }), "failoverFor", "failoverFor"),
            (json!({ "failoverFor": 1.5 }), "failoverFor", "failoverFor"),
            (
                json!({ "failoverFor": primary, "warmStandbyNodes": -1 }),
                "warmStandbyNodes",
                "warmStandbyNodes must be from 0 to 100, got -1",
            ),
            (
                json!({ "failoverFor": primary, "warmStandbyNodes": 101 }),
                "warmStandbyNodes",
                "got 101",
            ),
            (
                json!({ "failoverFor": primary, "warmStandbyNodes": "2" }),
                "warmStandbyNodes",
                "warmStandbyNodes",
            ),
        ];
        for (extra, field, mention) in bad {
            w.refused(
                A,
                pair("west", B, extra),
                400,
                "INVALID_FIELD",
                Some(field),
                &[mention],
            )
            .await;
        }
        // The partner does not exist, or is in the same region.
        w.refused(
            A,
            pair("west", B, json!({ "failoverFor": 999 })),
            404,
            "NOT_FOUND",
            None,
            &["environment 999 does not exist"],
        )
        .await;
        let same = format!("environment {primary} is in us-east-1 too");
        w.refused(
            A,
            pair("east", A, json!({ "failoverFor": primary })),
            409,
            "CONFLICT",
            None,
            &[&same, "a failover partner must be in another region"],
        )
        .await;

        // A good pair: the old one is PRIMARY and serves, the new one SECONDARY.
        let reply = w
            .send(
                A,
                pair(
                    "prod-west",
                    B,
                    json!({ "failoverFor": primary, "warmStandbyNodes": 2 }),
                ),
            )
            .await;
        reply.assert_status(202);
        let secondary = reply.i64_at("/environment/id");
        let new_side = reply.at("/environment").clone();
        for (k, want) in [
            ("failoverPartnerId", json!(primary)),
            ("failoverRole", json!("SECONDARY")),
            ("warmStandbyNodes", json!(2)),
            ("servesPair", json!(false)),
            ("region", json!(B)),
        ] {
            assert_eq!(new_side[k], want, "[{b}] {k} of the new side: {new_side}");
        }
        for region in [A, B] {
            let old = w
                .send(region, Req::get(&format!("/v1/environments/{primary}")))
                .await;
            old.assert_status(200);
            for (k, want) in [
                ("failoverPartnerId", json!(secondary)),
                ("failoverRole", json!("PRIMARY")),
                ("warmStandbyNodes", json!(2)),
                ("servesPair", json!(true)),
            ] {
                assert_eq!(
                    old.at(&format!("/{k}")),
                    &want,
                    "[{b}] {k} of the old side, read in {region}"
                );
            }
            let new = w
                .send(region, Req::get(&format!("/v1/environments/{secondary}")))
                .await;
            assert_eq!(new.json(), &new_side, "[{b}] the new side, read in {region}");
        }
        let audit =
            w.fx.store
                .audit_of(&format!("environment/{secondary}"))
                .await
                .expect("audit");
        assert!(
            audit[0]
                .detail
                .contains(&format!("failover partner of environment {primary}"))
                && audit[0].detail.contains("warm standby of 2 node(s)"),
            "[{b}] {audit:?}"
        );

        // Each environment has one partner: neither side takes another.
        for (partner, other) in [(primary, secondary), (secondary, primary)] {
            let already = format!("environment {partner} is already paired with environment {other}");
            w.refused(
                A,
                pair("third", "eu-west-1", json!({ "failoverFor": partner })),
                409,
                "CONFLICT",
                None,
                &[&already, "an environment has one partner"],
            )
            .await;
        }
        // Without warmStandbyNodes the pair is cold.
        let lone = w.create_environment(A, &env_in("lone", A)).await;
        let cold = w
            .send(A, pair("lone-west", B, json!({ "failoverFor": lone })))
            .await;
        cold.assert_status(202);
        assert_eq!(cold.at("/environment/warmStandbyNodes"), &json!(0), "[{b}]");
        assert_eq!(cold.at("/environment/failoverRole"), "SECONDARY", "[{b}]");
        // An environment being deleted takes no partner.
        let going = w.create_environment(A, &env_in("going", A)).await;
        w.send(A, Req::delete(&format!("/v1/environments/{going}")))
            .await
            .assert_status(202);
        let deleting = format!("environment {going} is being deleted");
        w.refused(
            A,
            pair("going-west", B, json!({ "failoverFor": going })),
            409,
            "CONFLICT",
            None,
            &[&deleting],
        )
        .await;
    })
    .await;
}
