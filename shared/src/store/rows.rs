//! Rows as the store hands them out, and their mapping from SQL. Columns are read
//! by name; integers are `i64` and booleans `0`/`1` on both backends.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::operations::Step;
use super::StoreError;
use crate::domain::health::Probe;

pub(crate) fn json<T: serde::de::DeserializeOwned>(what: &'static str, raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(|source| StoreError::Query {
        op: "decode row",
        source,
    })
}

/// A text column. Through sqlx's `Any` driver MySQL's `TEXT` arrives as bytes,
/// SQLite's as a string; both are read here.
pub(crate) fn text(row: &AnyRow, name: &str) -> Result<String, StoreError> {
    opt_text(row, name)?.ok_or_else(|| StoreError::Corrupt {
        what: "row",
        detail: format!("{name} is NULL"),
    })
}

pub(crate) fn opt_text(row: &AnyRow, name: &str) -> Result<Option<String>, StoreError> {
    match row.try_get::<Option<String>, _>(name) {
        Ok(v) => Ok(v),
        Err(sqlx::Error::ColumnDecode { .. }) => {
            let bytes: Option<Vec<u8>> = col(row, name)?;
            bytes
                .map(|b| {
                    String::from_utf8(b).map_err(|e| StoreError::Corrupt {
                        what: "text column",
                        detail: e.to_string(),
                    })
                })
                .transpose()
        }
        Err(source) => Err(StoreError::Query {
            op: "decode row",
            source,
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRow {
    pub id: i64,
    pub name: String,
    pub region: String,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub vpc_cidr: Option<String>,
    pub admin_cidr: Option<String>,
    pub create_security_group: bool,
    pub security_group_id: Option<String>,
    pub delete_requested: bool,
    pub status_code: String,
    pub status_message: String,
    pub generation: i64,
    pub observed_generation: i64,
    /// Its partner environment in another region, if paired.
    pub pair_id: Option<i64>,
    /// `PRIMARY` or `SECONDARY` when paired: which failover records its clusters hold.
    pub failover_role: Option<String>,
    /// Nodes a parked partner keeps (0: cold standby).
    pub warm_standby_nodes: i64,
    /// Whether its side of the pair takes the traffic.
    pub pair_serving: bool,
    pub row_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EnvironmentRow {
    /// Whether its clusters hold the `PRIMARY` records of their pair.
    pub fn is_primary(&self) -> bool {
        self.failover_role.as_deref() != Some("SECONDARY")
    }
}

pub(crate) const ENVIRONMENT_COLUMNS: &str = "id, name, region, vpc_id, subnet_ids, vpc_cidr, admin_cidr, \
    create_security_group, security_group_id, delete_requested, status_code, status_message, \
    generation, observed_generation, pair_id, failover_role, warm_standby_nodes, pair_serving, \
    row_version, created_at, updated_at";

impl EnvironmentRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(EnvironmentRow {
            id: col(r, "id")?,
            name: text(r, "name")?,
            region: text(r, "region")?,
            vpc_id: opt_text(r, "vpc_id")?,
            subnet_ids: json("environment subnet_ids", &text(r, "subnet_ids")?)?,
            vpc_cidr: opt_text(r, "vpc_cidr")?,
            admin_cidr: opt_text(r, "admin_cidr")?,
            create_security_group: col::<i64>(r, "create_security_group")? != 0,
            security_group_id: opt_text(r, "security_group_id")?,
            delete_requested: col::<i64>(r, "delete_requested")? != 0,
            status_code: text(r, "status_code")?,
            status_message: text(r, "status_message")?,
            generation: col(r, "generation")?,
            observed_generation: col(r, "observed_generation")?,
            pair_id: col(r, "pair_id")?,
            failover_role: opt_text(r, "failover_role")?,
            warm_standby_nodes: col(r, "warm_standby_nodes")?,
            pair_serving: col::<i64>(r, "pair_serving")? != 0,
            row_version: col(r, "row_version")?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRow {
    pub id: i64,
    pub environment_id: i64,
    pub name: String,
    pub description: String,
    pub cluster_type: String,
    pub num_nodes: i64,
    pub instance_type: String,
    pub storage_gb: i64,
    pub odas_version: String,
    pub owner: String,
    pub tags: BTreeMap<String, String>,
    pub termination_protection: bool,
    pub delete_requested: bool,
    pub config_generation: i64,
    pub status_code: String,
    pub status_message: String,
    pub generation: i64,
    pub observed_generation: i64,
    pub asg_name: Option<String>,
    pub launch_template_id: Option<String>,
    /// Where the cluster's staged configuration is, once written.
    pub config_uri: Option<String>,
    /// Nodes in service, as last observed.
    pub running_nodes: i64,
    /// Services running on every node in service, as last judged.
    pub running_services: i64,
    /// When `status_code` last changed.
    pub status_since: i64,
    /// When a health sweep last judged the cluster (0: never).
    pub health_checked_at: i64,
    /// Whether the health sweep may replace broken nodes.
    pub auto_repair: bool,
    /// The cluster's DNS name, when a zone is configured.
    pub endpoint: Option<String>,
    /// Whether the endpoint points at this cluster's nodes (an upgrade's
    /// replacement does not, until the switch).
    pub serves_endpoint: bool,
    /// Per-service version overrides.
    pub components: BTreeMap<String, String>,
    /// For an upgrade's replacement: the cluster it replaces.
    pub replaces_id: Option<i64>,
    /// Termination protection lets upgrades through.
    pub protection_allows_upgrade: bool,
    /// A standby partner: it keeps its environment's warm-standby nodes (or
    /// none), is not swept, and takes no resize, upgrade or restart.
    pub parked: bool,
    /// Its partner in the paired environment, if any.
    pub partner_id: Option<i64>,
    /// The drill (operation) that made it, which removes it.
    pub drill_id: Option<i64>,
    pub row_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const CLUSTER_COLUMNS: &str = "id, environment_id, name, description, cluster_type, num_nodes, \
    instance_type, storage_gb, odas_version, owner, tags, termination_protection, delete_requested, \
    config_generation, status_code, status_message, generation, observed_generation, asg_name, \
    launch_template_id, config_uri, row_version, created_at, updated_at, running_services, status_since, \
    health_checked_at, auto_repair, endpoint, serves_endpoint, components, replaces_id, protection_allows_upgrade, \
    parked, partner_id, drill_id, \
    (SELECT COUNT(*) FROM nodes n WHERE n.cluster_id = clusters.id AND n.lifecycle_state = 'InService') AS running_nodes";

impl ClusterRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(ClusterRow {
            id: col(r, "id")?,
            environment_id: col(r, "environment_id")?,
            name: text(r, "name")?,
            description: text(r, "description")?,
            cluster_type: text(r, "cluster_type")?,
            num_nodes: col(r, "num_nodes")?,
            instance_type: text(r, "instance_type")?,
            storage_gb: col(r, "storage_gb")?,
            odas_version: text(r, "odas_version")?,
            owner: text(r, "owner")?,
            tags: json("cluster tags", &text(r, "tags")?)?,
            termination_protection: col::<i64>(r, "termination_protection")? != 0,
            delete_requested: col::<i64>(r, "delete_requested")? != 0,
            config_generation: col(r, "config_generation")?,
            status_code: text(r, "status_code")?,
            status_message: text(r, "status_message")?,
            generation: col(r, "generation")?,
            observed_generation: col(r, "observed_generation")?,
            asg_name: opt_text(r, "asg_name")?,
            launch_template_id: opt_text(r, "launch_template_id")?,
            config_uri: opt_text(r, "config_uri")?,
            running_nodes: col(r, "running_nodes")?,
            running_services: col::<i64>(r, "running_services")?,
            status_since: col(r, "status_since")?,
            health_checked_at: col(r, "health_checked_at")?,
            auto_repair: col::<i64>(r, "auto_repair")? != 0,
            endpoint: opt_text(r, "endpoint")?,
            serves_endpoint: col::<i64>(r, "serves_endpoint")? != 0,
            components: json("cluster components", &text(r, "components")?)?,
            replaces_id: col(r, "replaces_id")?,
            protection_allows_upgrade: col::<i64>(r, "protection_allows_upgrade")? != 0,
            parked: col::<i64>(r, "parked")? != 0,
            partner_id: col(r, "partner_id")?,
            drill_id: col(r, "drill_id")?,
            row_version: col(r, "row_version")?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub instance_id: String,
    pub cluster_id: i64,
    pub lifecycle_state: String,
    pub availability_zone: String,
    pub private_ip: Option<String>,
    pub launched_at: i64,
    /// The lifecycle action holding the node while it joins: (hook, token).
    pub action: Option<(String, String)>,
    pub joining_since: Option<i64>,
    /// The last probe of its agent, `None` until the first.
    pub probe: Option<Probe>,
    pub checked_at: i64,
    pub unhealthy_since: Option<i64>,
    pub repair_requested_at: Option<i64>,
    pub updated_at: i64,
}

pub(crate) const NODE_COLUMNS: &str =
    "instance_id, cluster_id, lifecycle_state, availability_zone, private_ip, \
    launched_at, action_hook, action_token, joining_since, probe, checked_at, unhealthy_since, \
    repair_requested_at, updated_at";

impl NodeRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let hook = opt_text(r, "action_hook")?;
        let token = opt_text(r, "action_token")?;
        Ok(NodeRow {
            instance_id: text(r, "instance_id")?,
            cluster_id: col(r, "cluster_id")?,
            lifecycle_state: text(r, "lifecycle_state")?,
            availability_zone: text(r, "availability_zone")?,
            private_ip: opt_text(r, "private_ip")?,
            launched_at: col(r, "launched_at")?,
            action: hook.zip(token),
            joining_since: col(r, "joining_since")?,
            probe: opt_text(r, "probe")?
                .map(|p| json("node probe", &p))
                .transpose()?,
            checked_at: col(r, "checked_at")?,
            unhealthy_since: col(r, "unhealthy_since")?,
            repair_requested_at: col(r, "repair_requested_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRow {
    pub id: i64,
    pub kind: String,
    pub target_kind: String,
    pub target_id: i64,
    pub target_generation: i64,
    pub state: String,
    pub steps: Vec<Step>,
    pub error: Option<String>,
    /// What the operation produced, once it succeeded (a diagnostics bundle's URI).
    pub result: Option<String>,
    pub principal: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const OPERATION_COLUMNS: &str = "id, kind, target_kind, target_id, target_generation, state, \
    steps, error, result, principal, created_at, updated_at";

impl OperationRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(OperationRow {
            id: col(r, "id")?,
            kind: text(r, "kind")?,
            target_kind: text(r, "target_kind")?,
            target_id: col(r, "target_id")?,
            target_generation: col(r, "target_generation")?,
            state: text(r, "state")?,
            steps: json("operation steps", &text(r, "steps")?)?,
            error: opt_text(r, "error")?,
            result: opt_text(r, "result")?,
            principal: text(r, "principal")?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub principal: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

impl AuditRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(AuditRow {
            id: col(r, "id")?,
            at: col(r, "at")?,
            principal: text(r, "principal")?,
            action: text(r, "action")?,
            target: text(r, "target")?,
            detail: text(r, "detail")?,
        })
    }
}
