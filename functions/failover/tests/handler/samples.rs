//! The function's samples in `events/`: the schedule, the region-health alarm,
//! the API's wake-up for a request and the drill schedule, each in the region
//! that acts on it and in the one that does not.

use serde_json::json;
use shared::domain::failover::FailoverState;
use shared::store::RunbookKind;

use crate::support::{sample, worlds, A, B};

#[tokio::test]
async fn the_scheduled_sample_keeps_the_active_regions_side_and_the_standby_stands_by() {
    for w in worlds().await {
        let b = w.backend;
        let tick = sample("schedule-failover.json");
        assert!(w.serving_alarms(A).await.is_empty(), "[{b}]");
        // us-east-1's database is the writer: its first run claims epoch 1.
        let before = w.calls();
        let active = failover::handle(&w.function(A), &tick).await.unwrap();
        // Every AWS call it made is one the template's role grants.
        emulator::roles::assert_role_allows("FailoverFunction", &before, &w.calls());
        assert_eq!(
            (&active["role"], &active["region"], &active["requestsDriven"]),
            (&json!("ACTIVE"), &json!(A), &json!([])),
            "[{b}] {active}"
        );
        assert_eq!(active["errors"], json!([]), "[{b}] {active}");
        let l = w.leader().await.unwrap();
        assert_eq!((l.epoch, l.region.as_str()), (1, A), "[{b}]");
        // Each DM region's serving alarm, in its own region; the heartbeat.
        assert_eq!(w.serving_alarms(A).await, ["okera-dm-serving-us-east-1"], "[{b}]");
        assert_eq!(w.serving_alarms(B).await, ["okera-dm-serving-us-west-2"], "[{b}]");
        let beat = w.store(A).dm_regions().await.unwrap();
        assert!(
            beat.iter().any(|r| r.region == A && r.heartbeat_at > 0),
            "[{b}] {beat:?}"
        );

        let standby = failover::handle(&w.function(B), &tick).await.unwrap();
        let by = &standby["standingBy"];
        assert_eq!(
            (&by["region"], &by["role"], &by["activeRegion"], &by["epoch"]),
            (&json!(B), &json!("STANDBY"), &json!(A), &json!(1)),
            "[{b}] {standby}"
        );
        assert!(
            by["message"].as_str().unwrap().contains("us-east-1 is active"),
            "[{b}] {standby}"
        );
        assert_eq!(
            (&standby["requestsDriven"], &standby["errors"]),
            (&json!([]), &json!([])),
            "[{b}] {standby}"
        );
        // Neither run moved anything: the same leader, no request, no runbook.
        assert_eq!(w.leader().await, Some(l), "[{b}]");
        assert!(w.requests().await.is_empty(), "[{b}]");
        assert!(w.region_runbooks().await.is_empty(), "[{b}]");
    }
}

#[tokio::test]
async fn the_alarm_sample_fails_over_to_its_region_once_however_often_it_is_delivered() {
    for w in worlds().await {
        let b = w.backend;
        let (fa, fb) = (w.function(A), w.function(B));
        failover::handle(&fa, &sample("schedule-failover.json"))
            .await
            .unwrap();
        let alarm = sample("alarm-region-health.json");
        let id = alarm["id"].as_str().unwrap();

        // us-east-1's function does not act on an alarm about itself.
        let elsewhere = failover::handle(&fa, &alarm).await.unwrap();
        assert!(
            elsewhere["ignored"]
                .as_str()
                .is_some_and(|s| s.contains("not a region-health alarm of us-east-1")),
            "[{b}] {elsewhere}"
        );
        assert!(w.requests().await.is_empty(), "[{b}]");

        let first = failover::handle(&fb, &alarm).await.unwrap();
        assert_eq!(first["failoverId"], json!(id), "[{b}] {first}");
        assert_eq!(
            (&first["to"], &first["from"], &first["epoch"], &first["error"]),
            (&json!(B), &json!(A), &json!(2), &json!(null)),
            "[{b}] {first}"
        );
        let state = first["state"].as_str().unwrap();
        assert!(["RUNNING", "SUCCEEDED"].contains(&state), "[{b}] {first}");
        let l = w.leader().await.unwrap();
        assert_eq!(
            (l.epoch, l.region.as_str(), l.failover_id.as_deref()),
            (2, B, Some(id)),
            "[{b}]"
        );
        assert!(w.store(B).is_writer().await.unwrap(), "[{b}]");

        // EventBridge delivers it again: the same request is driven on.
        let again = failover::handle(&fb, &alarm).await.unwrap();
        assert_eq!(
            (&again["failoverId"], &again["epoch"]),
            (&json!(id), &json!(2)),
            "[{b}] {again}"
        );
        let requests = w.requests().await;
        assert_eq!(requests.len(), 1, "[{b}] {requests:?}");
        assert_eq!(requests[0].id, id, "[{b}]");
        assert!(
            !matches!(
                requests[0].state,
                FailoverState::Refused | FailoverState::Lost | FailoverState::Failed
            ),
            "[{b}] {requests:?}"
        );
        assert_eq!(w.leader().await.unwrap().epoch, 2, "[{b}] one claim");
        let runbooks = w
            .store(B)
            .region_runbooks(RunbookKind::Failover, 5)
            .await
            .unwrap();
        assert_eq!(runbooks.len(), 1, "[{b}] one runbook: {runbooks:?}");
        assert_eq!(Some(runbooks[0].id), requests[0].operation_id, "[{b}]");

        // The API's wake-up for that request answers the same; sent to the old
        // region's function, it is rejected there with the reason (a retry
        // would fail the same way).
        let invoke = json!({"failoverId": id});
        let woken = failover::handle(&fb, &invoke).await.unwrap();
        assert_eq!(woken["failoverId"], json!(id), "[{b}] {woken}");
        assert!(
            ["RUNNING", "SUCCEEDED"].contains(&woken["state"].as_str().unwrap_or_default()),
            "[{b}] {woken}"
        );
        let wrong = failover::handle(&fa, &invoke).await.unwrap();
        assert!(
            wrong["rejected"]
                .as_str()
                .is_some_and(|r| r.contains("goes to us-west-2")),
            "[{b}] {wrong}"
        );

        // The alarm going back to OK fails nothing back.
        let mut ok = alarm.clone();
        ok["id"] = json!("d5e6f7a8-9b0c-4d1e-8f2a-3b4c5d6e7f80");
        ok["detail"]["state"]["value"] = json!("OK");
        let ok = failover::handle(&fb, &ok).await.unwrap();
        assert!(
            ok["ignored"]
                .as_str()
                .is_some_and(|s| s.contains("failback is always deliberate")),
            "[{b}] {ok}"
        );
        assert_eq!(w.requests().await.len(), 1, "[{b}]");
        assert_eq!(w.leader().await.unwrap().region, B, "[{b}]");
    }
}

#[tokio::test]
async fn the_invoke_sample_for_a_request_that_does_not_exist_is_rejected_and_changes_nothing() {
    for w in worlds().await {
        let b = w.backend;
        let fa = w.function(A);
        failover::handle(&fa, &sample("schedule-failover.json"))
            .await
            .unwrap();
        let before = w.leader().await;
        let invoke = sample("invoke-failover.json");
        for f in [&w.function(B), &fa] {
            let out = failover::handle(f, &invoke).await.unwrap();
            assert!(
                out["rejected"]
                    .as_str()
                    .is_some_and(|r| r.contains("no failover request fo-1764979200000-0a1b2c3d")),
                "[{b}] {out}"
            );
        }
        assert_eq!(w.leader().await, before, "[{b}]");
        assert!(w.requests().await.is_empty(), "[{b}]");
        assert!(w.region_runbooks().await.is_empty(), "[{b}]");
        assert!(!w.store(B).is_writer().await.unwrap(), "[{b}]");
    }
}

#[tokio::test]
async fn the_drill_sample_starts_a_drill_in_the_active_region_and_not_in_the_standby() {
    for w in worlds().await {
        let b = w.backend;
        let (fa, fb) = (w.function(A), w.function(B));
        failover::handle(&fa, &sample("schedule-failover.json"))
            .await
            .unwrap();
        let original = w.serving_cluster().await;
        let drill = sample("schedule-drill.json");

        let standby = failover::handle(&fb, &drill).await.unwrap();
        assert!(
            standby["drillNotStarted"]
                .as_str()
                .is_some_and(|s| s.contains("drills run from the active region")),
            "[{b}] {standby}"
        );
        assert!(w.region_runbooks().await.is_empty(), "[{b}]");

        // The drill copies the cluster, then waits for the copy (this run's
        // budget is zero: the schedule carries it on).
        let started = failover::handle(&fa, &drill).await.unwrap();
        let op = started["drill"]
            .as_i64()
            .unwrap_or_else(|| panic!("[{b}] {started}"));
        assert_eq!(started["outcome"]["runbookId"], json!(op), "[{b}] {started}");
        assert!(
            started["outcome"]["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with("Waiting")),
            "[{b}] {started}"
        );
        let runbooks = w.region_runbooks().await;
        assert_eq!(runbooks.len(), 1, "[{b}] {runbooks:?}");
        let rb = &runbooks[0];
        assert_eq!(
            (rb.id, rb.kind, rb.state.as_str(), rb.params.to_region.as_deref()),
            (op, RunbookKind::Drill, "RUNNING", Some(B)),
            "[{b}] {rb:?}"
        );
        let copies: Vec<_> = w
            .store(A)
            .list_clusters(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.drill_id == Some(op))
            .collect();
        assert_eq!(copies.len(), 1, "[{b}] one copy: {copies:?}");
        // A drill moves nothing: the leader, the writer, the original.
        let l = w.leader().await.unwrap();
        assert_eq!((l.epoch, l.region.as_str()), (1, A), "[{b}]");
        assert!(w.store(A).is_writer().await.unwrap(), "[{b}]");
        assert!(w.requests().await.is_empty(), "[{b}]");
        let row = w.store(A).get_cluster(original).await.unwrap();
        assert_eq!((row.status_code.as_str(), row.parked), ("READY", false), "[{b}]");

        // The schedule again while it runs, and a drill to the active region
        // itself: neither is started.
        for (event, why) in [
            (drill, "drill"),
            (json!({"drill": {"to": A}}), "another DM region"),
        ] {
            let out = failover::handle(&fa, &event).await.unwrap();
            assert!(
                out["drillNotStarted"].as_str().is_some_and(|s| s.contains(why)),
                "[{b}] {event}: {out}"
            );
        }
        assert_eq!(w.region_runbooks().await.len(), 1, "[{b}]");

        // The wake-up for the drill's runbook: the active region carries it on;
        // the standby answers that it stands by, and the runbook is as it was.
        let before = w.store(A).get_runbook(op).await.unwrap().unwrap();
        let wake = json!({"runbookId": op});
        let idle = failover::handle(&fb, &wake).await.unwrap();
        assert_eq!(idle["standingBy"]["activeRegion"], json!(A), "[{b}] {idle}");
        assert_eq!(
            w.store(A).get_runbook(op).await.unwrap().unwrap(),
            before,
            "[{b}]"
        );
        let carried = failover::handle(&fa, &wake).await.unwrap();
        assert_eq!(carried["runbookId"], json!(op), "[{b}] {carried}");
        assert!(
            carried["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with("Waiting")),
            "[{b}] {carried}"
        );
    }
}

#[tokio::test]
async fn a_drill_event_with_a_ready_timeout_gives_the_drill_that_timeout() {
    for w in worlds().await {
        let b = w.backend;
        let fa = w.function(A);
        failover::handle(&fa, &sample("schedule-failover.json"))
            .await
            .unwrap();
        w.serving_cluster().await;
        let event = json!({"drill": {"to": B, "readyTimeoutSeconds": 120}});
        let started = failover::handle(&fa, &event).await.unwrap();
        let op = started["drill"]
            .as_i64()
            .unwrap_or_else(|| panic!("[{b}] {started}"));
        let rb = w.store(A).get_runbook(op).await.unwrap().unwrap();
        assert_eq!(rb.params.ready_timeout_ms, 120_000, "[{b}]");
    }
}
