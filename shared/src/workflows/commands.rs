//! What the API's writes do: parse the request into domain values, check it
//! against the stored state, and record desired state with an operation, all in
//! one transaction. Nothing here calls AWS.

use sha2::{Digest, Sha256};

use crate::domain::upgrade::{ProposedDefaultVersion, ProposedRestart, ProposedUpgrade};
use crate::domain::{
    ClusterSpec, ClusterUpdate, EnvironmentSpec, FieldError, ProposedCluster, ProposedEnvironment,
    DEFAULT_INSTANCE_TYPE,
};
use crate::store::{Store, StoreError, Submitted, UpgradeRequest, WriteCtx};
use crate::workflows::runbook;

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
    let default_version = store.default_version(&limits.default_version).await?;
    let spec = ClusterSpec::parse(proposed, limits.max_nodes, &default_version, |t| {
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

/// Starts an upgrade by replacement (`workflows::runbook::upgrade_steps`).
pub async fn upgrade_cluster(
    store: &Store,
    ctx: &WriteCtx,
    id: i64,
    proposed: ProposedUpgrade,
) -> Result<Submitted, CommandError> {
    let u = proposed.parse()?;
    let req = UpgradeRequest {
        version: u.version,
        components: u.components,
        force: u.force,
        ready_timeout_ms: u.ready_timeout_ms,
        rollback_window_ms: u.rollback_window_ms,
    };
    Ok(store
        .submit_upgrade(ctx, id, &req, &runbook::upgrade_steps())
        .await?)
}

/// Rolls back the upgrade of a cluster that is inside its rollback window.
pub async fn rollback_cluster(store: &Store, ctx: &WriteCtx, id: i64) -> Result<Submitted, CommandError> {
    Ok(store
        .submit_rollback(
            ctx,
            id,
            runbook::names::ROLLBACK_WINDOW,
            &runbook::rollback_steps(),
        )
        .await?)
}

/// Restarts one service, or all, on every node of a cluster, one node at a time.
pub async fn restart_cluster(
    store: &Store,
    ctx: &WriteCtx,
    id: i64,
    proposed: ProposedRestart,
) -> Result<Submitted, CommandError> {
    let service = proposed.parse()?;
    Ok(store
        .submit_restart(ctx, id, service.as_deref(), runbook::restart_steps)
        .await?)
}

/// Asks a running runbook operation to stop at its next step boundary, and
/// undo what it did (an upgrade tears its replacement down).
pub async fn cancel_operation(store: &Store, ctx: &WriteCtx, id: i64) -> Result<Submitted, CommandError> {
    Ok(store.request_cancel(ctx, id, runbook::cancellable).await?)
}

/// Sets the version of new clusters that name none; returns it.
pub async fn set_default_version(
    store: &Store,
    principal: &str,
    proposed: ProposedDefaultVersion,
) -> Result<String, CommandError> {
    let version = proposed.parse()?;
    store.set_default_version(principal, &version).await?;
    Ok(version)
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
