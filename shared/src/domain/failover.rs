//! Regions and failover, as values: who is active (the fence's leader item),
//! failover requests and their states, the events that start a failover, and
//! whether one may start (`preconditions`). Pure: no I/O.
//!
//! `docs/failover.md` is the contract these types serve.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FieldError, Region};

/// The region that holds the current epoch. Only a claim (a conditional write on
/// `epoch`) changes it; the epoch only grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leader {
    pub epoch: i64,
    pub region: String,
    /// Epoch milliseconds of the claim.
    pub since: i64,
    /// The region that held the epoch before, if any.
    #[serde(default)]
    pub previous: Option<String>,
    /// The failover request that claimed it (none for the first claim).
    #[serde(default)]
    pub failover_id: Option<String>,
}

impl Leader {
    /// The first claim: epoch 1 for the region whose database is the writer.
    pub fn first(region: &str, now: i64) -> Leader {
        Leader {
            epoch: 1,
            region: region.to_owned(),
            since: now,
            previous: None,
            failover_id: None,
        }
    }

    /// The claim that follows this one.
    pub fn next(&self, region: &str, failover_id: Option<&str>, now: i64) -> Leader {
        Leader {
            epoch: self.epoch + 1,
            region: region.to_owned(),
            since: now,
            previous: Some(self.region.clone()),
            failover_id: failover_id.map(str::to_owned),
        }
    }
}

/// What this region may do, as the gate decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The DM runs in one region, with no fence: always active.
    Single,
    /// This region holds the current epoch.
    Active(Leader),
    /// Another region holds it (or nobody yet): schedules and writes do nothing.
    Standby(Option<Leader>),
    /// The fence could not be read: the region cannot prove it is active, and
    /// behaves as standing by.
    Unknown(String),
}

impl Role {
    pub fn is_active(&self) -> bool {
        matches!(self, Role::Single | Role::Active(_))
    }

    /// `SINGLE`, `ACTIVE`, `STANDBY` or `UNKNOWN`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Single => "SINGLE",
            Role::Active(_) => "ACTIVE",
            Role::Standby(_) => "STANDBY",
            Role::Unknown(_) => "UNKNOWN",
        }
    }

    pub fn leader(&self) -> Option<&Leader> {
        match self {
            Role::Active(l) | Role::Standby(Some(l)) => Some(l),
            _ => None,
        }
    }

    /// One line for logs and answers: who is active, and whether `region` lost.
    pub fn describe(&self, region: &str) -> String {
        match self {
            Role::Single => format!("region {region} is the only DM region"),
            Role::Active(l) => format!("region {region} is active (epoch {})", l.epoch),
            Role::Standby(None) => {
                format!("region {region} is standing by: no region has claimed leadership yet")
            }
            Role::Standby(Some(l)) if l.previous.as_deref() == Some(region) => format!(
                "region {region} lost leadership to {} at epoch {} ({}); it is standing by",
                l.region,
                l.epoch,
                crate::time::format_ms(l.since)
            ),
            Role::Standby(Some(l)) => format!(
                "region {region} is standing by: {} is active since {} (epoch {})",
                l.region,
                crate::time::format_ms(l.since),
                l.epoch
            ),
            Role::Unknown(why) => {
                format!("region {region} cannot confirm that it is active ({why}); it behaves as standing by")
            }
        }
    }
}

/// Where a failover request is. Each move is a conditional write on the state
/// it moves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailoverState {
    /// Recorded; the failover function has not acted yet.
    Requested,
    /// The target holds the new epoch.
    Claimed,
    /// The database promotion was asked for.
    Promoting,
    /// The target's database is the writer; the runbook is about to be written.
    Promoted,
    /// The runbook (`operation_id`) runs the rest.
    Running,
    Succeeded,
    /// Stopped; `error` says why and what was kept.
    Failed,
    /// Not started: a precondition failed, or there was nothing to do.
    Refused,
    /// Another contender claimed the epoch first.
    Lost,
}

impl FailoverState {
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverState::Requested => "REQUESTED",
            FailoverState::Claimed => "CLAIMED",
            FailoverState::Promoting => "PROMOTING",
            FailoverState::Promoted => "PROMOTED",
            FailoverState::Running => "RUNNING",
            FailoverState::Succeeded => "SUCCEEDED",
            FailoverState::Failed => "FAILED",
            FailoverState::Refused => "REFUSED",
            FailoverState::Lost => "LOST",
        }
    }

    /// Whether the request still moves (its function may still act on it).
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            FailoverState::Requested
                | FailoverState::Claimed
                | FailoverState::Promoting
                | FailoverState::Promoted
        )
    }

    pub fn ended(self) -> bool {
        matches!(
            self,
            FailoverState::Succeeded | FailoverState::Failed | FailoverState::Refused | FailoverState::Lost
        )
    }
}

/// One precondition of a failover, checked or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Precondition {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Precondition {
    fn new(name: &str, ok: bool, detail: impl Into<String>) -> Precondition {
        Precondition {
            name: name.to_owned(),
            ok,
            detail: detail.into(),
        }
    }
}

/// A failover, from the request to its end. Stored in the fence table (the
/// database may be read-only when it starts), and named by the operation of its
/// runbook once the target's database is promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRequest {
    /// The request's id: the alarm event's id, or one the API made.
    pub id: String,
    /// The target region (the one that takes over).
    pub to: String,
    /// The active region when the request was claimed.
    #[serde(default)]
    pub from: Option<String>,
    /// A switchover with no data loss (both regions up), not a failover.
    pub planned: bool,
    /// Go on although a precondition fails.
    #[serde(default)]
    pub force: bool,
    /// What started it: `alarm <name>` or `ocadm (<principal>)`.
    pub trigger: String,
    /// When the trigger happened (the alarm's state change, or the request).
    pub requested_at: i64,
    /// How long the target's clusters may take to become READY.
    pub ready_timeout_ms: i64,
    pub state: FailoverState,
    #[serde(default)]
    pub epoch: Option<i64>,
    #[serde(default)]
    pub claimed_at: Option<i64>,
    #[serde(default)]
    pub promote_started_at: Option<i64>,
    #[serde(default)]
    pub promoted_at: Option<i64>,
    /// The replica lag (ms) just before the promotion: the RPO estimate.
    #[serde(default)]
    pub lag_ms: Option<i64>,
    /// The operation of the runbook that runs the steps after the promotion.
    #[serde(default)]
    pub operation_id: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub preconditions: Vec<Precondition>,
    /// The request's fingerprint when it came with an Idempotency-Key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub updated_at: i64,
}

/// Default time the target's clusters have to become READY.
pub const DEFAULT_READY_TIMEOUT_MS: i64 = 900_000;
/// Bounds of `readyTimeoutSeconds`.
pub const MAX_READY_TIMEOUT_S: i64 = 86_400;

/// The body of `POST /v1/failover`, as it arrives.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposedFailover {
    pub to: String,
    #[serde(default)]
    pub planned: bool,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub ready_timeout_seconds: Option<i64>,
}

/// A valid failover request from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSpec {
    pub to: String,
    pub planned: bool,
    pub dry_run: bool,
    pub force: bool,
    pub ready_timeout_ms: i64,
}

impl ProposedFailover {
    pub fn parse(self) -> Result<FailoverSpec, FieldError> {
        let to = Region::parse("to", &self.to)?;
        Ok(FailoverSpec {
            to: to.as_str().to_owned(),
            planned: self.planned,
            dry_run: self.dry_run,
            force: self.force,
            ready_timeout_ms: ready_timeout_ms(self.ready_timeout_seconds)?,
        })
    }
}

/// `readyTimeoutSeconds` in milliseconds, checked (default 900 s).
pub fn ready_timeout_ms(seconds: Option<i64>) -> Result<i64, FieldError> {
    match seconds {
        None => Ok(DEFAULT_READY_TIMEOUT_MS),
        Some(s) if (1..=MAX_READY_TIMEOUT_S).contains(&s) => Ok(s * 1000),
        Some(s) => Err(FieldError::new(
            "readyTimeoutSeconds",
            format!("readyTimeoutSeconds must be from 1 to {MAX_READY_TIMEOUT_S}, got {s}"),
        )),
    }
}

/// The body of `POST /v1/drills`, as it arrives.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposedDrill {
    pub to: String,
    #[serde(default)]
    pub ready_timeout_seconds: Option<i64>,
}

/// A valid drill request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillSpec {
    pub to: String,
    pub ready_timeout_ms: i64,
}

impl ProposedDrill {
    pub fn parse(self) -> Result<DrillSpec, FieldError> {
        let to = Region::parse("to", &self.to)?;
        Ok(DrillSpec {
            to: to.as_str().to_owned(),
            ready_timeout_ms: ready_timeout_ms(self.ready_timeout_seconds)?,
        })
    }
}

/// A CloudWatch alarm state change, as EventBridge delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    /// The event's id: the same event delivered twice has the same id.
    pub event_id: String,
    /// The region of the alarm (and of the function that receives the event).
    pub region: String,
    pub alarm: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub previous: Option<String>,
    pub reason: String,
    /// Epoch milliseconds of the state change.
    pub at: i64,
}

/// Reads a `CloudWatch Alarm State Change` event; the error says what is wrong.
pub fn parse_alarm_event(event: &serde_json::Value) -> Result<AlarmChange, String> {
    let text = |v: Option<&serde_json::Value>, what: &str| -> Result<String, String> {
        v.and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("the alarm event has no {what}"))
    };
    if event.get("source").and_then(serde_json::Value::as_str) != Some("aws.cloudwatch") {
        return Err("an alarm event must come from aws.cloudwatch".into());
    }
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or("the alarm event has no detail object")?;
    let state = detail.get("state").ok_or("the alarm event has no detail.state")?;
    let value = text(state.get("value"), "detail.state.value")?;
    if !["OK", "ALARM", "INSUFFICIENT_DATA"].contains(&value.as_str()) {
        return Err(format!(
            "detail.state.value must be OK, ALARM or INSUFFICIENT_DATA, got {value:?}"
        ));
    }
    let region = text(event.get("region"), "region")?;
    Region::parse("region", &region).map_err(|e| e.message)?;
    let at = state
        .get("timestamp")
        .and_then(serde_json::Value::as_str)
        .and_then(crate::time::parse_aws_timestamp)
        .or_else(|| {
            event
                .get("time")
                .and_then(serde_json::Value::as_str)
                .and_then(crate::time::parse_aws_timestamp)
        })
        .ok_or("the alarm event has no readable detail.state.timestamp or time")?;
    Ok(AlarmChange {
        event_id: text(event.get("id"), "id")?,
        region,
        alarm: text(detail.get("alarmName"), "detail.alarmName")?,
        state: value,
        previous: detail
            .get("previousState")
            .and_then(|p| p.get("value"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        reason: state
            .get("reason")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        at,
    })
}

/// The region-health alarms a failover function acts on: alarm name to the
/// region it watches (`OKERA_REGION_HEALTH_ALARMS`, `name=region,...`).
pub fn parse_health_alarms(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, region) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not ALARM_NAME=REGION"))?;
        let region =
            Region::parse("region", region.trim()).map_err(|e| format!("{item:?}: {}", e.message))?;
        if name.trim().is_empty() {
            return Err(format!("{item:?} names no alarm"));
        }
        out.insert(name.trim().to_owned(), region.as_str().to_owned());
    }
    Ok(out)
}

/// The conventional name of the alarm, in another region, that watches `region`.
pub fn health_alarm_name(region: &str) -> String {
    format!("okera-dm-region-health-{region}")
}

/// The alarm, in `region`, that the Route 53 health check of `region`'s
/// endpoint records follows.
pub fn serving_alarm_name(region: &str) -> String {
    format!("okera-dm-serving-{region}")
}

/// What the failover checks look at, gathered by the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readiness {
    /// The DM's regions (the fence's replicas).
    pub dm_regions: Vec<String>,
    /// The active region, if any.
    pub active: Option<String>,
    /// A failover already in flight (its id and target).
    pub in_flight: Option<(String, String)>,
    /// A drill already running (its operation id).
    pub drill_running: Option<i64>,
    /// The latest replica lag of the target's database, ms (none: unknown).
    pub lag_ms: Option<f64>,
    pub max_lag_ms: f64,
    /// Environments of the old region with live clusters: (id, name, partner in
    /// the target region if any).
    pub environments: Vec<(i64, String, Option<i64>)>,
    /// Instance types the moving clusters need, and whether the target region
    /// offers each.
    pub instance_types: Vec<(String, bool)>,
}

/// Which checks a failover to `to` must pass. `check_drill` is false for an
/// alarm-triggered failover, which stops a running drill instead of waiting.
pub fn preconditions(to: &str, r: &Readiness, check_drill: bool, check_lag: bool) -> Vec<Precondition> {
    let mut out = vec![Precondition::new(
        "target-region",
        r.dm_regions.iter().any(|x| x == to),
        format!(
            "{to} {} one of the DM's regions ({})",
            if r.dm_regions.iter().any(|x| x == to) {
                "is"
            } else {
                "is not"
            },
            r.dm_regions.join(", ")
        ),
    )];
    out.push(match &r.active {
        Some(a) if a == to => {
            Precondition::new("not-active", false, format!("{to} is already the active region"))
        }
        Some(a) => Precondition::new("not-active", true, format!("{a} is active; {to} stands by")),
        None => Precondition::new("not-active", true, "no region has claimed leadership yet"),
    });
    out.push(match &r.in_flight {
        Some((id, target)) => Precondition::new(
            "no-failover-in-flight",
            false,
            format!("failover {id} to {target} is in flight; follow it with ocadm failover status {id}"),
        ),
        None => Precondition::new("no-failover-in-flight", true, "no other failover is in flight"),
    });
    if check_drill {
        out.push(match r.drill_running {
            Some(op) => Precondition::new(
                "no-drill-running",
                false,
                format!("drill {op} is running; wait for it or cancel it (ocadm operations cancel {op})"),
            ),
            None => Precondition::new("no-drill-running", true, "no drill is running"),
        });
    }
    let missing: Vec<String> = r
        .environments
        .iter()
        .filter(|(_, _, partner)| partner.is_none())
        .map(|(id, name, _)| format!("{name} ({id})"))
        .collect();
    out.push(if missing.is_empty() {
        Precondition::new(
            "target-environments",
            true,
            format!(
                "{} environment(s) with clusters have a partner in {to}",
                r.environments.len()
            ),
        )
    } else {
        Precondition::new(
            "target-environments",
            false,
            format!(
                "no partner environment in {to} for {}; create one with ocadm environments create --region {to} --failover-for ID",
                missing.join(", ")
            ),
        )
    });
    let unoffered: Vec<&str> = r
        .instance_types
        .iter()
        .filter(|(_, offered)| !offered)
        .map(|(t, _)| t.as_str())
        .collect();
    out.push(if unoffered.is_empty() {
        Precondition::new(
            "capacity",
            true,
            format!(
                "{to} offers every instance type needed ({})",
                r.instance_types
                    .iter()
                    .map(|(t, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        Precondition::new(
            "capacity",
            false,
            format!("{to} does not offer {}", unoffered.join(", ")),
        )
    });
    if check_lag {
        out.push(match r.lag_ms {
            Some(lag) if lag <= r.max_lag_ms => Precondition::new(
                "replica-lag",
                true,
                format!("replica lag {lag:.0} ms (at most {:.0} ms)", r.max_lag_ms),
            ),
            Some(lag) => Precondition::new(
                "replica-lag",
                false,
                format!(
                    "replica lag {lag:.0} ms is above {:.0} ms: the writes of the last {:.1} s would be lost",
                    r.max_lag_ms,
                    lag / 1000.0
                ),
            ),
            None => Precondition::new("replica-lag", true, "replica lag unknown (no recent data)"),
        });
    }
    out
}

/// The failed checks of `checks`, as one message.
pub fn failed(checks: &[Precondition]) -> Option<String> {
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    (!bad.is_empty()).then(|| bad.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readiness() -> Readiness {
        Readiness {
            dm_regions: vec!["us-east-1".into(), "us-west-2".into()],
            active: Some("us-east-1".into()),
            max_lag_ms: 60_000.0,
            lag_ms: Some(120.0),
            environments: vec![(1, "prod".into(), Some(2))],
            instance_types: vec![("t2.large".into(), true)],
            ..Default::default()
        }
    }

    fn failing(to: &str, r: &Readiness, drill: bool, lag: bool) -> Vec<String> {
        preconditions(to, r, drill, lag)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn preconditions_name_each_thing_that_stops_a_failover() {
        let ok = readiness();
        let cases: Vec<(&str, Readiness, bool, Vec<&str>)> = vec![
            ("us-west-2", ok.clone(), true, vec![]),
            ("eu-west-1", ok.clone(), true, vec!["target-region"]),
            ("us-east-1", ok.clone(), true, vec!["not-active"]),
            (
                "us-west-2",
                Readiness {
                    in_flight: Some(("abc".into(), "us-west-2".into())),
                    ..ok.clone()
                },
                true,
                vec!["no-failover-in-flight"],
            ),
            (
                "us-west-2",
                Readiness {
                    drill_running: Some(9),
                    ..ok.clone()
                },
                true,
                vec!["no-drill-running"],
            ),
            // An alarm-triggered failover does not wait for a drill.
            (
                "us-west-2",
                Readiness {
                    drill_running: Some(9),
                    ..ok.clone()
                },
                false,
                vec![],
            ),
            (
                "us-west-2",
                Readiness {
                    environments: vec![(1, "prod".into(), Some(2)), (3, "dev".into(), None)],
                    ..ok.clone()
                },
                true,
                vec!["target-environments"],
            ),
            (
                "us-west-2",
                Readiness {
                    instance_types: vec![("t2.large".into(), true), ("x9.huge".into(), false)],
                    ..ok.clone()
                },
                true,
                vec!["capacity"],
            ),
            (
                "us-west-2",
                Readiness {
                    lag_ms: Some(90_000.0),
                    ..ok.clone()
                },
                true,
                vec!["replica-lag"],
            ),
            (
                "us-west-2",
                Readiness {
                    lag_ms: None,
                    ..ok.clone()
                },
                true,
                vec![],
            ),
        ];
        for (i, (to, r, drill, want)) in cases.into_iter().enumerate() {
            assert_eq!(failing(to, &r, drill, true), want, "case {i}");
        }
        // A drill does not look at the lag.
        let lagging = Readiness {
            lag_ms: Some(90_000.0),
            ..ok
        };
        assert!(failing("us-west-2", &lagging, true, false).is_empty());
    }

    #[test]
    fn a_failed_precondition_says_what_to_do() {
        let r = Readiness {
            environments: vec![(3, "dev".into(), None)],
            ..readiness()
        };
        let msg = failed(&preconditions("us-west-2", &r, true, true)).unwrap();
        assert!(msg.contains("target-environments"), "{msg}");
        assert!(msg.contains("--failover-for"), "{msg}");
        assert_eq!(
            failed(&preconditions("us-west-2", &readiness(), true, true)),
            None
        );
    }

    #[test]
    fn claims_count_up_from_the_first() {
        let first = Leader::first("us-east-1", 10);
        let next = first.next("us-west-2", Some("f1"), 20);
        assert_eq!((next.epoch, next.region.as_str()), (2, "us-west-2"));
        assert_eq!(next.previous.as_deref(), Some("us-east-1"));
        let standby = Role::Standby(Some(next.clone()));
        assert!(standby
            .describe("us-east-1")
            .contains("lost leadership to us-west-2 at epoch 2"));
        assert!(standby.describe("eu-west-1").contains("us-west-2 is active"));
        assert!(!standby.is_active() && Role::Active(next).is_active() && Role::Single.is_active());
    }

    fn alarm_event(state: &str) -> serde_json::Value {
        serde_json::json!({
            "version": "0", "id": "e1", "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-12-01T10:00:05Z",
            "region": "us-west-2", "resources": [],
            "detail": {"alarmName": "okera-dm-region-health-us-east-1",
                "state": {"value": state, "reason": "r", "timestamp": "2026-12-01T10:00:03.250+0000"},
                "previousState": {"value": "OK"}}
        })
    }

    #[test]
    fn alarm_events_are_read_or_refused_with_a_reason() {
        let a = parse_alarm_event(&alarm_event("ALARM")).unwrap();
        assert_eq!(a.alarm, "okera-dm-region-health-us-east-1");
        assert_eq!((a.state.as_str(), a.region.as_str()), ("ALARM", "us-west-2"));
        assert_eq!(a.previous.as_deref(), Some("OK"));
        assert_eq!(
            a.at,
            crate::time::parse_aws_timestamp("2026-12-01T10:00:03.250Z").unwrap()
        );
        for (change, want) in [
            (serde_json::json!({"source": "aws.ec2"}), "aws.cloudwatch"),
            (serde_json::json!({"source": "aws.cloudwatch"}), "detail"),
            (
                {
                    let mut e = alarm_event("ALARM");
                    e["detail"]["state"]["value"] = "BROKEN".into();
                    e
                },
                "OK, ALARM or INSUFFICIENT_DATA",
            ),
            (
                {
                    let mut e = alarm_event("ALARM");
                    e["region"] = "nowhere".into();
                    e
                },
                "region",
            ),
            (
                {
                    let mut e = alarm_event("ALARM");
                    e["detail"]["alarmName"] = "".into();
                    e
                },
                "alarmName",
            ),
        ] {
            let err = parse_alarm_event(&change).unwrap_err();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn health_alarms_map_names_to_the_regions_they_watch() {
        let m = parse_health_alarms("okera-dm-region-health-us-east-1=us-east-1, other=eu-west-1").unwrap();
        assert_eq!(m.get("other").map(String::as_str), Some("eu-west-1"));
        assert!(parse_health_alarms("noregion").is_err());
        assert!(parse_health_alarms("x=Nowhere").is_err());
        assert!(parse_health_alarms("").unwrap().is_empty());
    }

    #[test]
    fn request_bodies_name_the_field_at_fault() {
        let spec = ProposedFailover {
            to: "us-west-2".into(),
            planned: true,
            ..Default::default()
        }
        .parse()
        .unwrap();
        assert_eq!(spec.ready_timeout_ms, DEFAULT_READY_TIMEOUT_MS);
        let bad = ProposedFailover {
            to: "west".into(),
            ..Default::default()
        }
        .parse()
        .unwrap_err();
        assert_eq!(bad.field, "to");
        let bad = ProposedDrill {
            to: "us-west-2".into(),
            ready_timeout_seconds: Some(0),
        }
        .parse()
        .unwrap_err();
        assert_eq!(bad.field, "readyTimeoutSeconds");
    }
}
