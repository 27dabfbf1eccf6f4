//! The runbooks function: on a schedule (EventBridge, every minute) it runs every
//! runbook that is due; on a direct invoke `{"runbookId": N}` (the API sends one
//! after submitting) it runs that one at once. The work is
//! `shared::workflows::runbook`; this crate parses the event and maps the result.

use std::sync::Arc;

use serde_json::{json, Value};
use shared::cloud::agents::HttpAgents;
use shared::cloud::aws::{AwsSettings, LambdaAdapter, Route53Adapter};
use shared::store::Store;
use shared::workflows::failover::Gate;
use shared::workflows::kill::KillSwitch;
use shared::workflows::runbook::{
    self, ClusterRunner, ClusterSteps, DnsZone, RunOutcome, RunbookSettings, Runner,
};
use shared::workflows::wake::{wake_by_invoke, Kick};
use tracing::warn;

/// The runner over the real adapters.
pub type AwsRunner = ClusterRunner<Route53Adapter, HttpAgents>;

/// Builds the runner once per process. `reconciler` is the function woken after
/// a step changes desired state (a replacement built, a cluster retired).
pub fn build(
    store: Store,
    settings: AwsSettings,
    home_region: &str,
    zone: Option<DnsZone>,
    agents: HttpAgents,
    reconciler: String,
    owner: String,
) -> AwsRunner {
    let kick: Kick = wake_by_invoke(
        Arc::new(LambdaAdapter::new(settings.clone(), home_region)),
        reconciler,
    );
    Runner {
        store,
        steps: ClusterSteps {
            dns: Route53Adapter::new(settings),
            agents,
            zone,
            kick,
        },
        settings: RunbookSettings::default(),
        owner,
        kill: KillSwitch::off(),
    }
}

/// What an event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A scheduled run: every runbook that is due.
    Due,
    One(i64),
}

/// Reads an event: an EventBridge scheduled event, or `{"runbookId": N}`.
pub fn parse_event(event: &Value) -> Result<Request, String> {
    if let Some(detail_type) = event.get("detail-type") {
        return match (detail_type.as_str(), event.get("source").and_then(Value::as_str)) {
            (Some("Scheduled Event"), Some("aws.events")) => Ok(Request::Due),
            _ => Err(format!(
                "an EventBridge event must be a \"Scheduled Event\" from aws.events, got detail-type {detail_type}"
            )),
        };
    }
    if let Some(id) = runbook::parse_event(event) {
        return Ok(Request::One(id));
    }
    let mut shown = event.to_string();
    shown.truncate(200);
    Err(format!(
        "unrecognised event: expected a scheduled event or {{\"runbookId\": N}} with N a positive whole number, got {shown}"
    ))
}

/// Handles one event. A malformed event is answered with the reason and not
/// retried (a retry would fail the same way).
pub async fn handle<D, A>(
    runner: &ClusterRunner<D, A>,
    gate: &Gate,
    event: &Value,
) -> Result<Value, anyhow::Error>
where
    D: shared::cloud::Dns,
    A: shared::cloud::Agents,
{
    let request = match parse_event(event) {
        Ok(r) => r,
        Err(reason) => {
            warn!(%reason, "rejected event");
            return Ok(json!({ "rejected": reason }));
        }
    };
    if let Some(answer) = gate.standing_by().await {
        return Ok(answer);
    }
    Ok(match request {
        Request::Due => {
            let s = runner.run_due().await?;
            json!({ "runbooks": s.runbooks, "finished": s.finished, "errors": s.errors })
        }
        Request::One(id) => {
            let outcome = match runner.run(id).await? {
                RunOutcome::Finished(state) => json!({ "finished": state }),
                RunOutcome::Waiting(at) => json!({ "waitingUntil": at }),
                RunOutcome::Busy => json!("busy"),
                RunOutcome::Lost => json!("lost"),
            };
            json!({ "runbookId": id, "outcome": outcome })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_or_refused_with_a_reason() {
        let scheduled = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/schedule-runbooks.json"
        ))
        .unwrap();
        let v: Value = serde_json::from_str(&scheduled).unwrap();
        assert_eq!(parse_event(&v), Ok(Request::Due));
        assert_eq!(parse_event(&runbook::event(7)), Ok(Request::One(7)));
        let invoke = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/invoke-runbook.json"
        ))
        .unwrap();
        let v: Value = serde_json::from_str(&invoke).unwrap();
        assert_eq!(parse_event(&v), Ok(Request::One(7)));
        for bad in [
            r#"{"runbookId": 0}"#,
            r#"{"runbookId": "7"}"#,
            r#"{"runbookId": 7, "extra": 1}"#,
            r#"{}"#,
            r#"[]"#,
            r#"{"detail-type": "Scheduled Event", "source": "aws.ec2"}"#,
        ] {
            let v: Value = serde_json::from_str(bad).unwrap();
            assert!(parse_event(&v).is_err(), "{bad}");
        }
    }
}
