//! The bodies of the runbook requests (upgrade, restart, default version), as
//! they arrive, and their validation. Nothing here does I/O.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::cluster::parse_version;
use super::health::SERVICES;
use super::FieldError;

/// Default and bounds of an upgrade's wait for its replacement to be READY.
pub const READY_TIMEOUT_S: (i64, i64, i64) = (1800, 60, 6 * 3600);
/// Default and bounds of the rollback window, in seconds (0: retire at once).
pub const ROLLBACK_WINDOW_S: (i64, i64, i64) = (3600, 0, 7 * 24 * 3600);

/// The body of `POST /v1/clusters/{id}/upgrade`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposedUpgrade {
    pub version: String,
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub ready_timeout_seconds: Option<i64>,
    #[serde(default)]
    pub rollback_window_seconds: Option<i64>,
}

/// A valid upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub version: String,
    pub components: BTreeMap<String, String>,
    pub force: bool,
    pub ready_timeout_ms: i64,
    pub rollback_window_ms: i64,
}

fn seconds(field: &str, raw: Option<i64>, (default, min, max): (i64, i64, i64)) -> Result<i64, FieldError> {
    let s = raw.unwrap_or(default);
    if (min..=max).contains(&s) {
        Ok(s * 1000)
    } else {
        Err(FieldError::new(
            field,
            format!("{field} must be between {min} and {max}, got {s}"),
        ))
    }
}

/// A service name the agents know.
pub fn parse_service(field: &str, raw: &str) -> Result<String, FieldError> {
    if SERVICES.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(
            field,
            format!("there is no service {raw:?}; services: {}", SERVICES.join(", ")),
        ))
    }
}

impl ProposedUpgrade {
    pub fn parse(self) -> Result<Upgrade, FieldError> {
        let version = parse_version(&self.version)?;
        let mut components = BTreeMap::new();
        for (service, v) in self.components {
            let service = parse_service("components", &service)?;
            let v = parse_version(&v).map_err(|_| {
                FieldError::new(
                    "components",
                    format!("the version of {service} must be 1 to 32 characters of letters, digits, '.' and '-', got {v:?}"),
                )
            })?;
            components.insert(service, v);
        }
        Ok(Upgrade {
            version,
            components,
            force: self.force,
            ready_timeout_ms: seconds("readyTimeoutSeconds", self.ready_timeout_seconds, READY_TIMEOUT_S)?,
            rollback_window_ms: seconds(
                "rollbackWindowSeconds",
                self.rollback_window_seconds,
                ROLLBACK_WINDOW_S,
            )?,
        })
    }
}

/// `planner:2.1.1,worker:2.1.1` (the `--components` of ocadm) as a map.
pub fn parse_components(raw: &str) -> Result<BTreeMap<String, String>, FieldError> {
    let mut out = BTreeMap::new();
    for item in raw.split(',').filter(|s| !s.trim().is_empty()) {
        let (c, v) = item.trim().split_once(':').ok_or_else(|| {
            FieldError::new(
                "components",
                format!("{item:?} must be service:version, such as planner:2.1.1"),
            )
        })?;
        if out.insert(c.to_owned(), v.to_owned()).is_some() {
            return Err(FieldError::new("components", format!("{c} is named twice")));
        }
    }
    Ok(out)
}

/// The body of `POST /v1/clusters/{id}/restart`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposedRestart {
    #[serde(default)]
    pub service: Option<String>,
}

impl ProposedRestart {
    pub fn parse(self) -> Result<Option<String>, FieldError> {
        self.service.map(|s| parse_service("service", &s)).transpose()
    }
}

/// The body of `PUT /v1/settings/default-version`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposedDefaultVersion {
    pub version: String,
}

impl ProposedDefaultVersion {
    pub fn parse(self) -> Result<String, FieldError> {
        parse_version(&self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(json: &str) -> Result<Upgrade, FieldError> {
        serde_json::from_str::<ProposedUpgrade>(json).unwrap().parse()
    }

    #[test]
    fn upgrades_take_defaults_and_name_the_field_at_fault() {
        let u = upgrade(r#"{"version": "2.1.0"}"#).unwrap();
        assert_eq!(u.ready_timeout_ms, 1_800_000);
        assert_eq!(u.rollback_window_ms, 3_600_000);
        assert!(!u.force);
        let cases = [
            (r#"{"version": ""}"#, "version"),
            (r#"{"version": "2.1 beta"}"#, "version"),
            (
                r#"{"version": "2.1.0", "components": {"nosuch": "1"}}"#,
                "components",
            ),
            (
                r#"{"version": "2.1.0", "components": {"planner": "a b"}}"#,
                "components",
            ),
            (
                r#"{"version": "2.1.0", "readyTimeoutSeconds": 5}"#,
                "readyTimeoutSeconds",
            ),
            (
                r#"{"version": "2.1.0", "rollbackWindowSeconds": -1}"#,
                "rollbackWindowSeconds",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(upgrade(json).unwrap_err().field, field, "{json}");
        }
        let u = upgrade(
            r#"{"version": "2.1.0", "components": {"planner": "2.1.1"}, "rollbackWindowSeconds": 0}"#,
        )
        .unwrap();
        assert_eq!(u.components["planner"], "2.1.1");
        assert_eq!(u.rollback_window_ms, 0);
    }

    #[test]
    fn component_lists_parse_or_say_why_not() {
        let c = parse_components("planner:2.1.1, worker:2.1.2").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c["worker"], "2.1.2");
        assert!(parse_components("").unwrap().is_empty());
        assert_eq!(parse_components("planner").unwrap_err().field, "components");
        assert_eq!(
            parse_components("planner:1,planner:2").unwrap_err().field,
            "components"
        );
    }

    #[test]
    fn restarts_name_a_known_service_or_none() {
        assert_eq!(ProposedRestart::default().parse().unwrap(), None);
        let p = ProposedRestart {
            service: Some("planner".into()),
        };
        assert_eq!(p.parse().unwrap().as_deref(), Some("planner"));
        let bad = ProposedRestart {
            service: Some("plannr".into()),
        };
        assert_eq!(bad.parse().unwrap_err().field, "service");
    }
}
