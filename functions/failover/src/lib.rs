//! The failover function: one per DM region. It takes over for its region
//! (a failover request from the API, or a region-health alarm of the active
//! region going to ALARM), runs failover and drill runbooks, and, on its
//! schedule, keeps the region's side of the fence: the serving metric and
//! alarms, the heartbeat, the standby partners. The work is
//! `shared::workflows::failover`; this crate parses the event and maps the result.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use shared::cloud::aws::{
    AutoScalingAdapter, AwsSettings, CloudWatchAdapter, DynamoFence, Ec2Adapter, RdsAdapter, Route53Adapter,
    S3Adapter,
};
use shared::config::S3Location;
use shared::domain::failover::{parse_alarm_event, DrillSpec, ProposedDrill};
use shared::store::{Store, WriteCtx};
use shared::workflows::failover::{
    read_role, standing_by, start_drill, Failover, FailoverError, FailoverSettings, RegionSteps,
};
use shared::workflows::kill::KillSwitch;
use shared::workflows::runbook::{DnsZone, RunbookSettings, Runner};
use shared::workflows::wake::Kick;
use tracing::warn;

/// The failover work over the real adapters.
pub type AwsFailover = Failover<
    DynamoFence,
    RdsAdapter,
    CloudWatchAdapter,
    Route53Adapter,
    Ec2Adapter,
    AutoScalingAdapter,
    S3Adapter,
>;

/// What the failover function is built from, once per process.
pub struct Parts {
    pub store: Store,
    pub aws: AwsSettings,
    pub settings: FailoverSettings,
    pub zone: Option<DnsZone>,
    pub staging: S3Location,
    /// Wakes the reconciler after a step changes desired state.
    pub kick: Kick,
    /// The read-only stores of the other regions (a drill reads its target's).
    pub replicas: BTreeMap<String, Store>,
    pub runbook_settings: RunbookSettings,
    pub owner: String,
    pub kill: KillSwitch,
    pub emit: Arc<dyn Fn(&str) + Send + Sync>,
}

pub fn build(p: Parts) -> AwsFailover {
    let region = p.settings.region.clone();
    Failover {
        fence: DynamoFence::new(p.aws.clone(), &region, &p.settings.fence_table),
        db: RdsAdapter::new(p.aws.clone()),
        runner: Runner {
            store: p.store,
            steps: RegionSteps {
                metrics: CloudWatchAdapter::new(p.aws.clone()),
                dns: Route53Adapter::new(p.aws.clone()),
                compute: Ec2Adapter::new(p.aws.clone()),
                scaling: AutoScalingAdapter::new(p.aws.clone()),
                objects: S3Adapter::new(p.aws, &region),
                zone: p.zone,
                staging: p.staging,
                kick: p.kick,
                dm_regions: p.settings.dm_regions.clone(),
                replicas: p.replicas,
            },
            settings: p.runbook_settings,
            owner: p.owner,
            kill: p.kill,
        },
        settings: p.settings,
        emit: p.emit,
    }
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The schedule (every minute).
    Tick,
    /// A CloudWatch alarm changed state.
    Alarm(shared::domain::failover::AlarmChange),
    /// Drive a failover request (the API's wake-up).
    Failover(String),
    /// Run a region runbook now (the API's wake-up after a drill).
    Runbook(i64),
    /// Start a drill (the optional monthly schedule's input), with its
    /// `readyTimeoutSeconds` if the event gives one.
    Drill(DrillSpec),
}

/// Reads an event; anything else is refused with the reason.
pub fn parse_event(event: &Value) -> Result<Request, String> {
    if let Some(detail_type) = event.get("detail-type").and_then(Value::as_str) {
        return match detail_type {
            "Scheduled Event" if event.get("source").and_then(Value::as_str) == Some("aws.events") => {
                Ok(Request::Tick)
            }
            "CloudWatch Alarm State Change" => parse_alarm_event(event).map(Request::Alarm),
            other => Err(format!(
                "an EventBridge event must be a \"Scheduled Event\" from aws.events or a \"CloudWatch Alarm State Change\", got {other:?}"
            )),
        };
    }
    let obj = event.as_object().filter(|o| o.len() == 1);
    if let Some(o) = obj {
        if let Some(id) = o.get("failoverId") {
            return id
                .as_str()
                .filter(|s| !s.is_empty() && s.len() <= 128)
                .map(|s| Request::Failover(s.to_owned()))
                .ok_or_else(|| format!("failoverId must be a request id (1 to 128 characters), got {id}"));
        }
        if let Some(id) = o.get("runbookId") {
            return id
                .as_i64()
                .filter(|n| *n > 0)
                .map(Request::Runbook)
                .ok_or_else(|| format!("runbookId must be a positive whole number, got {id}"));
        }
        if let Some(drill) = o.get("drill") {
            let proposed: ProposedDrill =
                serde_json::from_value(drill.clone()).map_err(|e| format!("drill: {e}"))?;
            return proposed
                .parse()
                .map(Request::Drill)
                .map_err(|e| format!("drill.{}: {}", e.field, e.message));
        }
    }
    let mut shown = event.to_string();
    shown.truncate(200);
    Err(format!(
        "unrecognised event: expected a scheduled event, a CloudWatch alarm state change, {{\"failoverId\": ID}}, \
         {{\"runbookId\": N}} or {{\"drill\": {{\"to\": REGION}}}}, got {shown}"
    ))
}

/// Handles one event. A malformed event is answered with the reason and not
/// retried (a retry would fail the same way); it changes nothing.
pub async fn handle(failover: &AwsFailover, event: &Value) -> Result<Value, anyhow::Error> {
    let request = match parse_event(event) {
        Ok(r) => r,
        Err(reason) => {
            warn!(%reason, "rejected event");
            return Ok(json!({ "rejected": reason }));
        }
    };
    Ok(match request {
        Request::Tick => failover.tick().await?,
        Request::Alarm(alarm) => failover.on_alarm(&alarm).await?,
        Request::Failover(id) => match failover.drive(&id).await {
            Ok(request) => shared::workflows::failover::request_answer(&request),
            // An id that names no request, or one that runs in another region,
            // fails the same way on every retry: answered, not raised.
            Err(e @ (FailoverError::NotFound(_) | FailoverError::Refused(_))) => {
                warn!(failover = %id, reason = %e, "rejected event");
                json!({ "rejected": e.to_string() })
            }
            Err(e) => return Err(e.into()),
        },
        Request::Runbook(id) => {
            // Region runbooks run in the active region (a failover's, once its
            // target holds the lease); a standby has nothing to run.
            let role = read_role(&failover.fence, &failover.runner.store, &failover.settings.region).await;
            if !role.is_active() {
                return Ok(standing_by(&role, &failover.settings.region));
            }
            failover.run_runbook(id).await?
        }
        Request::Drill(spec) => {
            let store = &failover.runner.store;
            let role = read_role(&failover.fence, store, &failover.settings.region).await;
            let ctx = WriteCtx {
                principal: "schedule".into(),
                idempotency: None,
            };
            match start_drill(
                store,
                &role,
                &failover.settings.region,
                &failover.settings.dm_regions,
                &ctx,
                &spec,
            )
            .await
            {
                Ok(s) => {
                    let outcome = failover.run_runbook(s.operation_id).await?;
                    json!({ "drill": s.operation_id, "outcome": outcome })
                }
                Err(e) => {
                    warn!(error = %e, "scheduled drill not started");
                    json!({ "drillNotStarted": e.to_string() })
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Value {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_samples_parse_as_their_requests() {
        assert_eq!(parse_event(&sample("schedule-failover.json")), Ok(Request::Tick));
        match parse_event(&sample("alarm-region-health.json")) {
            Ok(Request::Alarm(a)) => {
                assert_eq!(a.alarm, "okera-dm-region-health-us-east-1");
                assert_eq!(a.state, "ALARM");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_event(&sample("invoke-failover.json")),
            Ok(Request::Failover("fo-1764979200000-0a1b2c3d".into()))
        );
        assert_eq!(
            parse_event(&sample("schedule-drill.json")),
            Ok(Request::Drill(DrillSpec {
                to: "us-west-2".into(),
                ready_timeout_ms: shared::domain::failover::DEFAULT_READY_TIMEOUT_MS,
            }))
        );
    }

    #[test]
    fn malformed_events_are_refused_with_a_reason() {
        for (bad, want) in [
            (json!({}), "unrecognised event"),
            (json!([1]), "unrecognised event"),
            (json!({"failoverId": ""}), "failoverId"),
            (json!({"failoverId": 3}), "failoverId"),
            (json!({"runbookId": 0}), "runbookId"),
            (json!({"drill": {"to": "nowhere"}}), "drill.to"),
            (json!({"drill": {"to": "us-west-2", "x": 1}}), "drill"),
            (json!({"failoverId": "a", "runbookId": 1}), "unrecognised event"),
            (
                json!({"detail-type": "Scheduled Event", "source": "aws.ec2"}),
                "Scheduled Event",
            ),
            (
                json!({"detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch"}),
                "detail",
            ),
        ] {
            let err = parse_event(&bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}
