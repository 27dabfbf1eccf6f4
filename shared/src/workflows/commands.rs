//! What the API's writes do: parse the request into domain values, check it
//! against the stored state, and record desired state with an operation, all in
//! one transaction. Nothing here calls AWS.

use sha2::{Digest, Sha256};

use crate::domain::{
    ClusterSpec, ClusterUpdate, EnvironmentSpec, FieldError, ProposedCluster, ProposedEnvironment,
    DEFAULT_INSTANCE_TYPE,
};
use crate::store::{Store, StoreError, Submitted, WriteCtx};

/// Limits the API enforces, from configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_nodes: i64,
    pub default_version: String,
}

/// Why a command was refused, mapped by the API to a status code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A field of the request is wrong (400).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The target does not exist (404).
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: i64 },
    /// The request conflicts with the stored state (409).
    #[error("{0}")]
    Conflict(String),
    /// Anything else (500); the cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => CommandError::Conflict(m),
            StoreError::NotFound { kind, id } => CommandError::NotFound { kind, id },
            other => CommandError::Internal(other),
        }
    }
}

/// The fingerprint of a request, stored with its idempotency key: the same key
/// with another fingerprint is a different request. The body is compared as
/// parsed JSON, so formatting does not matter.
pub fn request_fingerprint(method: &str, path: &str, body: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

pub async fn create_environment(
    store: &Store,
    ctx: &WriteCtx,
    proposed: ProposedEnvironment,
) -> Result<Submitted, CommandError> {
    let spec = EnvironmentSpec::parse(proposed)?;
    Ok(store.create_environment(ctx, &spec).await?)
}

pub async fn delete_environment(store: &Store, ctx: &WriteCtx, id: i64) -> Result<Submitted, CommandError> {
    Ok(store.delete_environment(ctx, id).await?)
}

pub async fn create_cluster(
    store: &Store,
    limits: &Limits,
    ctx: &WriteCtx,
    proposed: ProposedCluster,
) -> Result<Submitted, CommandError> {
    let env = match store.get_environment(proposed.environment_id).await {
        Ok(env) if env.status_code != "DELETED" => env,
        Ok(_) | Err(StoreError::NotFound { .. }) => {
            return Err(FieldError::new(
                "environmentId",
                format!(
                    "environment {} does not exist (ocadm environments list)",
                    proposed.environment_id
                ),
            )
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    if !store.has_instance_types(&env.region).await? {
        return Err(CommandError::Conflict(format!(
            "environment {} is {}: its region's instance types are not known yet; retry when it is READY (ocadm environments get {})",
            env.id, env.status_code, env.id
        )));
    }
    let instance_type = proposed
        .instance_type
        .clone()
        .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_owned());
    let size = store.instance_size(&env.region, &instance_type).await?;
    let spec = ClusterSpec::parse(proposed, limits.max_nodes, &limits.default_version, |t| {
        (t == instance_type).then_some(size).flatten()
    })?;
    Ok(store.create_cluster(ctx, &spec).await?)
}

pub async fn update_cluster(
    store: &Store,
    limits: &Limits,
    ctx: &WriteCtx,
    id: i64,
    update: ClusterUpdate,
) -> Result<Submitted, CommandError> {
    update.validate(limits.max_nodes)?;
    Ok(store.update_cluster(ctx, id, &update).await?)
}

pub async fn delete_cluster(store: &Store, ctx: &WriteCtx, id: i64) -> Result<Submitted, CommandError> {
    Ok(store.delete_cluster(ctx, id).await?)
}

#[cfg(test)]
mod tests {
    use super::request_fingerprint;

    #[test]
    fn fingerprints_ignore_formatting_but_not_content() {
        let a: serde_json::Value = serde_json::from_str(r#"{"name": "a",  "numNodes": 1}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"numNodes":1,"name":"a"}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"numNodes":2,"name":"a"}"#).unwrap();
        assert_eq!(
            request_fingerprint("POST", "/v1/clusters", &a),
            request_fingerprint("POST", "/v1/clusters", &b)
        );
        assert_ne!(
            request_fingerprint("POST", "/v1/clusters", &a),
            request_fingerprint("POST", "/v1/clusters", &c)
        );
        assert_ne!(
            request_fingerprint("POST", "/v1/clusters", &a),
            request_fingerprint("POST", "/v1/environments", &a)
        );
    }
}
