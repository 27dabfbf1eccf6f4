//! The reconciler function: on a schedule (EventBridge) or on demand (a direct
//! invoke naming a cluster or an environment), converge AWS toward the desired
//! state in the store. The work is `shared::workflows::reconcile`; this crate only
//! parses the event and maps the result.

use serde_json::{json, Value};
use shared::cloud::aws::{
    AutoScalingAdapter, AwsSettings, CloudWatchAdapter, Ec2Adapter, Route53Adapter, S3Adapter,
};
use shared::config::Config;
use shared::store::Store;
use shared::workflows::failover::Gate;
use shared::workflows::reconcile::{Outcome, Reconciler, Target};
use tracing::warn;

/// The reconciler over the real AWS adapters.
pub type AwsReconciler =
    Reconciler<Ec2Adapter, AutoScalingAdapter, S3Adapter, CloudWatchAdapter, Route53Adapter>;

/// Builds the reconciler once per process. `home_region` is where the staging
/// bucket lives.
pub fn build(
    store: Store,
    config: &Config,
    settings: AwsSettings,
    home_region: &str,
    owner: String,
) -> AwsReconciler {
    Reconciler {
        store,
        compute: Ec2Adapter::new(settings.clone()),
        scaling: AutoScalingAdapter::new(settings.clone()),
        objects: S3Adapter::new(settings.clone(), home_region),
        metrics: CloudWatchAdapter::new(settings.clone()),
        dns: Route53Adapter::new(settings),
        zone: config.dns_zone.clone(),
        staging: config.staging.clone(),
        node_ami: config.node_ami.clone(),
        node_instance_profile: config.node_instance_profile.clone(),
        owner,
    }
}

/// What an event asks the reconciler to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A scheduled run: everything.
    All,
    /// A direct invoke, as the API sends after a write.
    One(Target),
}

/// Reads an event: an EventBridge scheduled event, or `{"clusterId": N}` /
/// `{"environmentId": N}` from a direct invoke. Anything else is refused with the
/// reason.
pub fn parse_event(event: &Value) -> Result<Request, String> {
    if let Some(detail_type) = event.get("detail-type") {
        return match (detail_type.as_str(), event.get("source").and_then(Value::as_str)) {
            (Some("Scheduled Event"), Some("aws.events")) => Ok(Request::All),
            _ => Err(format!(
                "an EventBridge event must be a \"Scheduled Event\" from aws.events, got detail-type {detail_type}"
            )),
        };
    }
    let id = |key: &str| -> Result<Option<i64>, String> {
        match event.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|id| *id > 0)
                .map(Some)
                .ok_or_else(|| format!("{key} must be a positive whole number, got {v}")),
        }
    };
    match (id("clusterId")?, id("environmentId")?) {
        (Some(c), None) => Ok(Request::One(Target::Cluster(c))),
        (None, Some(e)) => Ok(Request::One(Target::Environment(e))),
        (Some(_), Some(_)) => Err("give clusterId or environmentId, not both".into()),
        (None, None) => Err(format!(
            "unrecognised event: expected a scheduled event, {{\"clusterId\": N}} or {{\"environmentId\": N}}, got {}",
            truncate(&event.to_string())
        )),
    }
}

fn truncate(s: &str) -> String {
    if s.len() > 200 {
        format!(
            "{}…",
            &s[..s
                .char_indices()
                .take_while(|(i, _)| *i < 200)
                .last()
                .map_or(0, |(i, c)| i + c.len_utf8())]
        )
    } else {
        s.to_owned()
    }
}

/// Handles one event. A malformed event is logged and answered with the reason; it
/// is not retried, since a retry would fail the same way.
pub async fn handle(reconciler: &AwsReconciler, gate: &Gate, event: &Value) -> Result<Value, anyhow::Error> {
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
    let outcome = |o: Outcome| if o == Outcome::Busy { "busy" } else { "reconciled" };
    Ok(match request {
        Request::All => {
            let s = reconciler.reconcile_all().await?;
            json!({ "environments": s.environments, "clusters": s.clusters, "skipped": s.skipped, "errors": s.errors })
        }
        Request::One(Target::Cluster(id)) => {
            json!({ "clusterId": id, "outcome": outcome(reconciler.reconcile_cluster(id).await?) })
        }
        Request::One(Target::Environment(id)) => {
            json!({ "environmentId": id, "outcome": outcome(reconciler.reconcile_environment(id).await?) })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(event: &str, expected: Result<Request, &str>) {
        let v: Value = serde_json::from_str(event).unwrap();
        match (parse_event(&v), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{event}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{event}: {got}"),
            (got, want) => panic!("{event}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn the_events_the_api_sends_are_the_events_the_reconciler_reads() {
        for target in [Target::Cluster(7), Target::Environment(2)] {
            assert_eq!(parse_event(&target.event()), Ok(Request::One(target)));
        }
    }

    #[test]
    fn events_are_parsed_or_refused_with_a_reason() {
        let scheduled = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/schedule-reconcile.json"
        ))
        .unwrap();
        check(&scheduled, Ok(Request::All));
        check(r#"{"clusterId": 3}"#, Ok(Request::One(Target::Cluster(3))));
        check(
            r#"{"environmentId": 2}"#,
            Ok(Request::One(Target::Environment(2))),
        );
        check(r#"{"clusterId": 0}"#, Err("clusterId must be a positive"));
        check(r#"{"clusterId": "3"}"#, Err("clusterId must be a positive"));
        check(r#"{"clusterId": 1, "environmentId": 1}"#, Err("not both"));
        check(
            r#"{"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2"}"#,
            Err("Scheduled Event"),
        );
        check(r#"{}"#, Err("unrecognised event"));
        check(r#"[1, 2]"#, Err("unrecognised event"));
    }
}
