//! Domain values. Each parses itself at the edge (`Name::parse`, `Cidr::parse`,
//! `ClusterSpec::parse`), so that inside the DM a value of these types is valid.
//! Nothing here does I/O.

mod cluster;
mod environment;
pub mod failover;
pub mod health;
pub mod logs;
mod names;
pub mod security_group;
pub mod tags;
pub mod upgrade;

pub use cluster::{
    ClusterSpec, ClusterStatus, ClusterType, ClusterUpdate, InstanceSize, ProposedCluster,
    DEFAULT_INSTANCE_TYPE, MIN_MEMORY_MIB, MIN_STORAGE_GB, MIN_VCPUS,
};
pub use environment::{Cidr, EnvironmentSpec, EnvironmentStatus, ProposedEnvironment, Region};
pub use names::Name;

/// A value that failed to parse, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field, as the API spells it (`numNodes`, `tags.team`).
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}
