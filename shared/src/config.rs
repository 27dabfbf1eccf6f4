//! Typed settings, read once from the environment when a binary starts. A missing
//! or malformed variable fails fast with an error that names it.

use std::env;
use std::time::Duration;

use crate::workflows::lifecycle::Timing;
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
