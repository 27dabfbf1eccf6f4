//! Typed settings, read once from the environment when a binary starts. A missing
//! or malformed variable fails fast with an error that names it.

use std::env;

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
