//! Events the function cannot read are refused with the reason, by the active
//! region's function and the standby's alike, and change nothing: no request in
//! the fence, no runbook in the store, the same leader, no alarm, no metric.

use serde_json::{json, Value};
use shared::cloud::{Claimed, Fence};
use shared::domain::failover::Leader;
use shared::time::now_ms;

use crate::support::{sample, worlds, A, B};

/// Each malformed event, and what its refusal names.
fn cases() -> Vec<(Value, &'static str)> {
    let alarm = sample("alarm-region-health.json");
    let alarm_with = |change: &dyn Fn(&mut Value)| {
        let mut event = alarm.clone();
        change(&mut event);
        event
    };
    let remove = |path: &'static [&'static str]| {
        move |e: &mut Value| {
            let (last, parents) = path.split_last().unwrap();
            let mut at = e;
            for p in parents {
                at = &mut at[*p];
            }
            at.as_object_mut().unwrap().remove(*last);
        }
    };
    let mut wrong_source = sample("schedule-failover.json");
    wrong_source["source"] = json!("aws.ec2");
    vec![
        (json!({}), "unrecognised event"),
        (json!([]), "unrecognised event"),
        (json!(null), "unrecognised event"),
        (json!("tick"), "unrecognised event"),
        (json!({"failoverId": ""}), "failoverId must be a request id"),
        (json!({"failoverId": 3}), "failoverId must be a request id"),
        (
            json!({"failoverId": "f".repeat(129)}),
            "failoverId must be a request id",
        ),
        (
            json!({"runbookId": 0}),
            "runbookId must be a positive whole number",
        ),
        (
            json!({"runbookId": "7"}),
            "runbookId must be a positive whole number",
        ),
        (
            json!({"runbookId": 1.5}),
            "runbookId must be a positive whole number",
        ),
        (json!({"drill": {"to": "nowhere"}}), "drill.to"),
        (json!({"drill": {}}), "drill: missing field `to`"),
        (json!({"drill": "us-west-2"}), "drill:"),
        (
            json!({"drill": {"to": B, "force": true}}),
            "unknown field `force`",
        ),
        (json!({"failoverId": "a", "runbookId": 1}), "unrecognised event"),
        (wrong_source, "\"Scheduled Event\" from aws.events"),
        (
            sample("lifecycle-launch.json"),
            "\"Scheduled Event\" from aws.events",
        ),
        (alarm_with(&remove(&["detail"])), "no detail object"),
        (alarm_with(&|e| e["detail"] = json!("ALARM")), "no detail object"),
        (alarm_with(&remove(&["detail", "state"])), "no detail.state"),
        (
            alarm_with(&|e| e["detail"]["state"]["value"] = json!("ALARMING")),
            "detail.state.value must be OK, ALARM or INSUFFICIENT_DATA",
        ),
        (
            alarm_with(&remove(&["detail", "state", "value"])),
            "no detail.state.value",
        ),
        (
            alarm_with(&remove(&["detail", "alarmName"])),
            "no detail.alarmName",
        ),
        (alarm_with(&remove(&["id"])), "no id"),
        (alarm_with(&|e| e["id"] = json!("")), "no id"),
        (
            alarm_with(&|e| e["source"] = json!("aws.events")),
            "aws.cloudwatch",
        ),
        (
            alarm_with(&|e| e["region"] = json!("mars-1")),
            "region must be an AWS region",
        ),
        (
            alarm_with(&|e| {
                remove(&["detail", "state", "timestamp"])(e);
                remove(&["time"])(e);
            }),
            "timestamp",
        ),
    ]
}

#[tokio::test]
async fn malformed_events_are_refused_with_a_reason_and_change_nothing() {
    for w in worlds().await {
        let b = w.backend;
        // us-east-1 holds epoch 1, as after its first scheduled run, and
        // nothing else exists yet.
        let first = Leader::first(A, now_ms());
        assert_eq!(w.fence().claim(None, &first).await.unwrap(), Claimed::Won);
        let (fa, fb) = (w.function(A), w.function(B));
        for (event, reason) in cases() {
            for (region, f) in [(A, &fa), (B, &fb)] {
                let out = failover::handle(f, &event).await.unwrap();
                let got = out["rejected"]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{b}] {region}: {event} was not refused: {out}"));
                assert!(got.contains(reason), "[{b}] {region}: {event}: {got}");
            }
        }
        assert_eq!(w.leader().await, Some(first), "[{b}]");
        assert!(w.requests().await.is_empty(), "[{b}]");
        assert!(w.region_runbooks().await.is_empty(), "[{b}]");
        assert!(w
            .store(A)
            .dm_regions()
            .await
            .unwrap()
            .iter()
            .all(|r| r.heartbeat_at == 0));
        assert!(w.serving_alarms(A).await.is_empty(), "[{b}]");
        assert!(w.serving_alarms(B).await.is_empty(), "[{b}]");
        assert!(w.lines.lock().unwrap().is_empty(), "[{b}]");
        assert!(w.store(A).is_writer().await.unwrap() && !w.store(B).is_writer().await.unwrap());
    }
}
