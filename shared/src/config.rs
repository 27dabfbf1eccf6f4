//! Typed settings, read once from the environment when a binary starts. A missing
//! or malformed variable fails fast with an error that names it.

use std::env;
use std::time::Duration;

use crate::workflows::lifecycle::Timing;
use crate::workflows::runbook::DnsZone;
use crate::workflows::sweep::SweepSettings;

/// An `s3://bucket/prefix` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Empty, or ends without a slash.
    pub prefix: String,
}

impl S3Location {
    pub fn parse(raw: &str) -> Result<S3Location, String> {
        let rest = raw
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{raw:?} must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !ok {
            return Err(format!("{raw:?} does not name a valid S3 bucket"));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The key of `path` under the prefix.
    pub fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    pub fn uri(&self, path: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(path))
    }
}

/// Settings every DM function shares.
#[derive(Debug, Clone)]
pub struct Config {
    /// `OKERA_DB_URL`: `sqlite://PATH` or `mysql://USER:PASS@HOST:PORT/DB`. May hold a password: never log it.
    pub db_url: String,
    /// `OKERA_S3_STAGING_DIR`: logs and staged configuration.
    pub staging: S3Location,
    /// `OKERA_MAX_NODES` (default 100): the largest `numNodes` accepted.
    pub max_nodes: i64,
    /// `OKERA_DEFAULT_VERSION` (default 2.0.0): the ODAS version of new clusters.
    pub default_version: String,
    /// `OKERA_NODE_AMI`: the machine image of cluster nodes.
    pub node_ami: String,
    /// `OKERA_NODE_INSTANCE_PROFILE`: ARN of the instance profile nodes run with
    /// (their role reads the staging bucket); none when unset.
    pub node_instance_profile: Option<String>,
    /// `AWS_ENDPOINT_URL`: set only to talk to an emulator.
    pub aws_endpoint: Option<String>,
    /// `OKERA_DNS_ZONE_ID` and `OKERA_DNS_ZONE_NAME`: the Route 53 zone of the
    /// clusters' endpoints; none (no endpoints) when both are unset.
    pub dns_zone: Option<DnsZone>,
}

/// Reads the endpoint zone: both variables or neither.
pub fn dns_zone_from_env() -> Result<Option<DnsZone>, String> {
    let id = env::var("OKERA_DNS_ZONE_ID").ok().filter(|s| !s.is_empty());
    let name = env::var("OKERA_DNS_ZONE_NAME").ok().filter(|s| !s.is_empty());
    match (id, name) {
        (None, None) => Ok(None),
        (Some(id), Some(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() || name.len() > 190 || name.split('.').any(|l| l.is_empty() || l.len() > 63) {
                return Err(format!("OKERA_DNS_ZONE_NAME {name:?} is not a DNS name"));
            }
            Ok(Some(DnsZone {
                id: id.trim_start_matches("/hostedzone/").to_owned(),
                name,
            }))
        }
        _ => Err("set both OKERA_DNS_ZONE_ID and OKERA_DNS_ZONE_NAME, or neither".into()),
    }
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("environment variable {name} is not set"))
}

fn var_or(name: &str, default: &str) -> String {
    env::var(name).unwrap_or_else(|_| default.to_owned())
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let staging = S3Location::parse(&var("OKERA_S3_STAGING_DIR")?)
            .map_err(|e| format!("OKERA_S3_STAGING_DIR: {e}"))?;
        let max_nodes = var_or("OKERA_MAX_NODES", "100")
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or("OKERA_MAX_NODES must be a whole number of at least 1")?;
        Ok(Config {
            db_url: var("OKERA_DB_URL")?,
            staging,
            max_nodes,
            default_version: var_or("OKERA_DEFAULT_VERSION", "2.0.0"),
            node_ami: var("OKERA_NODE_AMI")?,
            node_instance_profile: env::var("OKERA_NODE_INSTANCE_PROFILE")
                .ok()
                .filter(|s| !s.is_empty()),
            aws_endpoint: env::var("AWS_ENDPOINT_URL").ok().filter(|s| !s.is_empty()),
            dns_zone: dns_zone_from_env()?,
        })
    }
}

/// Health settings: the lifecycle function's timings, the sweep's, and the
/// probes'. Every variable is optional.
#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    pub sweep: SweepSettings,
    pub timing: Timing,
    /// `OKERA_PROBE_TIMEOUT_MS` (default 2000): the most one agent probe may take.
    pub probe_timeout: Duration,
}

fn number<T: std::str::FromStr>(
    name: &str,
    default: T,
    ok: impl Fn(&T) -> bool,
    rule: &str,
) -> Result<T, String> {
    match env::var(name) {
        Err(_) => Ok(default),
        Ok(raw) => raw
            .trim()
            .parse::<T>()
            .ok()
            .filter(|v| ok(v))
            .ok_or_else(|| format!("{name} must be {rule}, got {raw:?}")),
    }
}

impl HealthConfig {
    /// Reads `OKERA_REPAIR_AFTER_SECONDS` (300), `OKERA_REPAIR_MAX_SHARE` (0.34),
    /// `OKERA_BOOTSTRAP_TIMEOUT_SECONDS` (900), `OKERA_PROBE_CONCURRENCY` (64),
    /// `OKERA_PROBE_TIMEOUT_MS` (2000) and `OKERA_FLUSH_TIMEOUT_SECONDS` (60).
    pub fn from_env() -> Result<HealthConfig, String> {
        let positive = |v: &u64| *v >= 1;
        let repair_after = number(
            "OKERA_REPAIR_AFTER_SECONDS",
            300u64,
            positive,
            "a whole number of seconds, at least 1",
        )?;
        let share = number(
            "OKERA_REPAIR_MAX_SHARE",
            0.34f64,
            |v| *v > 0.0 && *v <= 1.0,
            "a fraction above 0 and at most 1",
        )?;
        let bootstrap = number(
            "OKERA_BOOTSTRAP_TIMEOUT_SECONDS",
            900u64,
            positive,
            "a whole number of seconds, at least 1",
        )?;
        let concurrency = number(
            "OKERA_PROBE_CONCURRENCY",
            64usize,
            |v| (1..=1024).contains(v),
            "between 1 and 1024",
        )?;
        let probe_ms = number(
            "OKERA_PROBE_TIMEOUT_MS",
            2000u64,
            |v| (50..=60_000).contains(v),
            "between 50 and 60000",
        )?;
        let flush = number(
            "OKERA_FLUSH_TIMEOUT_SECONDS",
            60u64,
            |v| (1..=600).contains(v),
            "between 1 and 600",
        )?;
        let bootstrap_ms = (bootstrap * 1000) as i64;
        Ok(HealthConfig {
            sweep: SweepSettings {
                concurrency,
                repair_after_ms: (repair_after * 1000) as i64,
                repair_max_share: share,
                bootstrap_timeout_ms: bootstrap_ms,
                ..SweepSettings::default()
            },
            timing: Timing {
                bootstrap_timeout_ms: bootstrap_ms,
                flush_timeout: Duration::from_secs(flush),
                ..Timing::default()
            },
            probe_timeout: Duration::from_millis(probe_ms),
        })
    }
}

/// Retention: how long history rows stay in the database, and after how many days
/// the staging bucket's lifecycle rules expire logs, diagnostics and history
/// archives. Every variable is optional; each is a whole number of days from 1 to
/// [`RetentionConfig::MAX_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `OKERA_HISTORY_RETENTION_DAYS` (default 30): status history, finished
    /// operations and audit rows older than this go to the archive and leave the
    /// database.
    pub history_days: u32,
    /// `OKERA_LOG_RETENTION_DAYS` (default 30): node logs (`logs/`) expire.
    pub log_days: u32,
    /// `OKERA_DIAGNOSTICS_RETENTION_DAYS` (default 14): diagnostics bundles
    /// (`diagnostics/`) expire.
    pub diagnostics_days: u32,
    /// `OKERA_HISTORY_ARCHIVE_RETENTION_DAYS` (default 365): history archives
    /// (`history/`) expire.
    pub history_archive_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            history_days: 30,
            log_days: 30,
            diagnostics_days: 14,
            history_archive_days: 365,
        }
    }
}

impl RetentionConfig {
    /// The longest retention accepted, in days (100 years).
    pub const MAX_DAYS: u32 = 36_500;

    pub fn from_env() -> Result<RetentionConfig, String> {
        RetentionConfig::from_lookup(|name| env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a test's table).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<RetentionConfig, String> {
        let days = |name: &str, default: u32| match lookup(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=RetentionConfig::MAX_DAYS).contains(d))
                .ok_or_else(|| {
                    format!(
                        "{name} must be a whole number of days from 1 to {}, got {raw:?}",
                        RetentionConfig::MAX_DAYS
                    )
                }),
        };
        let d = RetentionConfig::default();
        Ok(RetentionConfig {
            history_days: days("OKERA_HISTORY_RETENTION_DAYS", d.history_days)?,
            log_days: days("OKERA_LOG_RETENTION_DAYS", d.log_days)?,
            diagnostics_days: days("OKERA_DIAGNOSTICS_RETENTION_DAYS", d.diagnostics_days)?,
            history_archive_days: days("OKERA_HISTORY_ARCHIVE_RETENTION_DAYS", d.history_archive_days)?,
        })
    }

    /// History rows older than this (epoch milliseconds) leave the database.
    pub fn history_cutoff_ms(&self, now_ms: i64) -> i64 {
        now_ms - i64::from(self.history_days) * 86_400_000
    }
}

#[cfg(test)]
mod tests {
    use super::S3Location;

    #[test]
    fn staging_locations_parse_bucket_and_prefix() {
        let l = S3Location::parse("s3://okera-staging/dm/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("okera-staging", "dm"));
        assert_eq!(l.key("config/1/1/cluster.json"), "dm/config/1/1/cluster.json");
        let bare = S3Location::parse("s3://okera-staging").unwrap();
        assert_eq!(bare.key("x"), "x");
        assert!(S3Location::parse("okera-staging/dm").is_err());
        assert!(S3Location::parse("s3://Bad_Bucket/x").is_err());
    }
}
