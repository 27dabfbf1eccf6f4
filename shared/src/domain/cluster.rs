use std::collections::BTreeMap;

use serde::Deserialize;

use super::{tags, FieldError, Name};

/// Nodes smaller than a t2.large (2 vCPU, 8 GiB) cannot run ODAS.
pub const MIN_VCPUS: i64 = 2;
pub const MIN_MEMORY_MIB: i64 = 8192;
/// ODAS needs 40 GB of local storage on each node.
pub const MIN_STORAGE_GB: i64 = 40;
pub const DEFAULT_INSTANCE_TYPE: &str = "t2.large";
const MAX_STORAGE_GB: i64 = 16_384;
const MAX_DESCRIPTION: usize = 256;

/// The kinds of ODAS cluster the original DM knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterType {
    Standalone,
    StandaloneJdbc,
    Catalog,
    DataAccess,
}

impl ClusterType {
    pub const ALL: [ClusterType; 4] = [
        ClusterType::Standalone,
        ClusterType::StandaloneJdbc,
        ClusterType::Catalog,
        ClusterType::DataAccess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClusterType::Standalone => "STANDALONE_CLUSTER",
            ClusterType::StandaloneJdbc => "STANDALONE_JDBC_CLUSTER",
            ClusterType::Catalog => "CATALOG_CLUSTER",
            ClusterType::DataAccess => "DATA_ACCESS_CLUSTER",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<ClusterType, FieldError> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw).ok_or_else(|| {
            let all: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            FieldError::new(
                field,
                format!("{field} must be one of {}, got {raw:?}", all.join(", ")),
            )
        })
    }
}

/// What AWS says of an instance type in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceSize {
    pub vcpus: i64,
    pub memory_mib: i64,
}

/// The body of `POST /v1/clusters`, as it arrives.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposedCluster {
    pub name: String,
    pub num_nodes: i64,
    #[serde(rename = "type")]
    pub cluster_type: String,
    pub environment_id: i64,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub storage_gb: Option<i64>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub termination_protection_enabled: bool,
    /// Whether the health sweep may replace broken nodes (default true).
    #[serde(default)]
    pub auto_repair_enabled: Option<bool>,
    #[serde(default)]
    pub version: Option<String>,
}

/// A valid cluster specification: the desired state the reconciler converges to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: Name,
    pub num_nodes: i64,
    pub cluster_type: ClusterType,
    pub environment_id: i64,
    pub instance_type: String,
    pub storage_gb: i64,
    pub tags: BTreeMap<String, String>,
    pub description: String,
    pub termination_protection: bool,
    pub auto_repair: bool,
    pub version: String,
}

/// Checks `numNodes` against 1 and the configured maximum.
pub fn parse_num_nodes(n: i64, max_nodes: i64) -> Result<i64, FieldError> {
    if (1..=max_nodes).contains(&n) {
        Ok(n)
    } else {
        Err(FieldError::new(
            "numNodes",
            format!("numNodes must be between 1 and {max_nodes}, got {n}"),
        ))
    }
}

pub(crate) fn parse_version(raw: &str) -> Result<String, FieldError> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(
            "version",
            format!("version must be 1 to 32 characters of letters, digits, '.' and '-', got {raw:?}"),
        ))
    }
}

impl ClusterSpec {
    /// Parses a proposed cluster. `size_of` answers what the environment's region
    /// offers: `None` when the region does not offer that instance type.
    pub fn parse(
        p: ProposedCluster,
        max_nodes: i64,
        default_version: &str,
        size_of: impl Fn(&str) -> Option<InstanceSize>,
    ) -> Result<ClusterSpec, FieldError> {
        let name = Name::parse("name", &p.name)?;
        let num_nodes = parse_num_nodes(p.num_nodes, max_nodes)?;
        let cluster_type = ClusterType::parse("type", &p.cluster_type)?;
        let instance_type = p
            .instance_type
            .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_owned());
        match size_of(&instance_type) {
            None => {
                return Err(FieldError::new(
                    "instanceType",
                    format!("instanceType {instance_type:?} is not offered in the environment's region"),
                ))
            }
            Some(s) if s.vcpus < MIN_VCPUS || s.memory_mib < MIN_MEMORY_MIB => {
                return Err(FieldError::new(
                    "instanceType",
                    format!(
                        "instanceType {instance_type} has {} vCPU and {} MiB; ODAS nodes need at least {MIN_VCPUS} vCPU and {MIN_MEMORY_MIB} MiB (t2.large class)",
                        s.vcpus, s.memory_mib
                    ),
                ))
            }
            Some(_) => {}
        }
        let storage_gb = p.storage_gb.unwrap_or(MIN_STORAGE_GB);
        if !(MIN_STORAGE_GB..=MAX_STORAGE_GB).contains(&storage_gb) {
            return Err(FieldError::new(
                "storageGb",
                format!("storageGb must be between {MIN_STORAGE_GB} and {MAX_STORAGE_GB}, got {storage_gb}"),
            ));
        }
        let description = p.description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(FieldError::new(
                "description",
                format!("description must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        let version = parse_version(p.version.as_deref().unwrap_or(default_version))?;
        Ok(ClusterSpec {
            name,
            num_nodes,
            cluster_type,
            environment_id: p.environment_id,
            instance_type,
            storage_gb,
            tags: tags::parse_user_tags(p.tags)?,
            description,
            termination_protection: p.termination_protection_enabled,
            auto_repair: p.auto_repair_enabled.unwrap_or(true),
            version,
        })
    }
}

/// The body of `PATCH /v1/clusters/{id}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterUpdate {
    #[serde(default)]
    pub num_nodes: Option<i64>,
    #[serde(default)]
    pub termination_protection_enabled: Option<bool>,
    #[serde(default)]
    pub auto_repair_enabled: Option<bool>,
    /// Whether termination protection lets upgrades (by replacement) through.
    #[serde(default)]
    pub protection_allows_upgrade: Option<bool>,
}

impl ClusterUpdate {
    /// Checks the update on its own; protection rules need the stored cluster and
    /// are checked by the workflow.
    pub fn validate(&self, max_nodes: i64) -> Result<(), FieldError> {
        if self.num_nodes.is_none()
            && self.termination_protection_enabled.is_none()
            && self.auto_repair_enabled.is_none()
            && self.protection_allows_upgrade.is_none()
        {
            return Err(FieldError::new(
                "numNodes",
                "an update needs numNodes, terminationProtectionEnabled, autoRepairEnabled or protectionAllowsUpgrade",
            ));
        }
        if let Some(n) = self.num_nodes {
            // Zero is a valid desired size on its own (scale to zero); protection
            // may still forbid it.
            if n != 0 {
                parse_num_nodes(n, max_nodes)?;
            }
        }
        Ok(())
    }
}

/// The lifecycle of a cluster, as `statusCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterStatus {
    Provisioning,
    Ready,
    Concerning,
    Degraded,
    Down,
    Updating,
    Terminating,
    Terminated,
    Failed,
    /// A parked standby partner (warm or cold) of a cluster in another region.
    Standby,
}

impl ClusterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterStatus::Provisioning => "PROVISIONING",
            ClusterStatus::Ready => "READY",
            ClusterStatus::Concerning => "CONCERNING",
            ClusterStatus::Degraded => "DEGRADED",
            ClusterStatus::Down => "DOWN",
            ClusterStatus::Updating => "UPDATING",
            ClusterStatus::Terminating => "TERMINATING",
            ClusterStatus::Terminated => "TERMINATED",
            ClusterStatus::Failed => "FAILED",
            ClusterStatus::Standby => "STANDBY",
        }
    }
}

impl From<super::health::HealthCode> for ClusterStatus {
    fn from(code: super::health::HealthCode) -> Self {
        use super::health::HealthCode;
        match code {
            HealthCode::Ready => ClusterStatus::Ready,
            HealthCode::Concerning => ClusterStatus::Concerning,
            HealthCode::Degraded => ClusterStatus::Degraded,
            HealthCode::Down => ClusterStatus::Down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposed() -> ProposedCluster {
        ProposedCluster {
            name: "analytics".into(),
            num_nodes: 3,
            cluster_type: "STANDALONE_CLUSTER".into(),
            environment_id: 1,
            instance_type: None,
            storage_gb: None,
            tags: BTreeMap::new(),
            description: None,
            termination_protection_enabled: false,
            auto_repair_enabled: None,
            version: None,
        }
    }

    fn sizes(t: &str) -> Option<InstanceSize> {
        match t {
            "t2.large" => Some(InstanceSize {
                vcpus: 2,
                memory_mib: 8192,
            }),
            "t2.medium" => Some(InstanceSize {
                vcpus: 2,
                memory_mib: 4096,
            }),
            "c5.large" => Some(InstanceSize {
                vcpus: 2,
                memory_mib: 4096,
            }),
            "m5.xlarge" => Some(InstanceSize {
                vcpus: 4,
                memory_mib: 16384,
            }),
            _ => None,
        }
    }

    fn check(p: ProposedCluster, field: Option<&str>) {
        let got = ClusterSpec::parse(p.clone(), 100, "2.0.0", sizes);
        match field {
            None => assert!(got.is_ok(), "{p:?}: {got:?}"),
            Some(f) => assert_eq!(got.unwrap_err().field, f, "{p:?}"),
        }
    }

    #[test]
    fn cluster_specs_are_refused_naming_the_field_at_fault() {
        check(proposed(), None);
        check(
            ProposedCluster {
                instance_type: Some("m5.xlarge".into()),
                storage_gb: Some(100),
                ..proposed()
            },
            None,
        );
        check(
            ProposedCluster {
                name: "".into(),
                ..proposed()
            },
            Some("name"),
        );
        check(
            ProposedCluster {
                name: "Analytics".into(),
                ..proposed()
            },
            Some("name"),
        );
        check(
            ProposedCluster {
                num_nodes: 0,
                ..proposed()
            },
            Some("numNodes"),
        );
        check(
            ProposedCluster {
                num_nodes: 101,
                ..proposed()
            },
            Some("numNodes"),
        );
        check(
            ProposedCluster {
                cluster_type: "BIG_CLUSTER".into(),
                ..proposed()
            },
            Some("type"),
        );
        check(
            ProposedCluster {
                instance_type: Some("t2.medium".into()),
                ..proposed()
            },
            Some("instanceType"),
        );
        check(
            ProposedCluster {
                instance_type: Some("c5.large".into()),
                ..proposed()
            },
            Some("instanceType"),
        );
        check(
            ProposedCluster {
                instance_type: Some("x9.huge".into()),
                ..proposed()
            },
            Some("instanceType"),
        );
        check(
            ProposedCluster {
                storage_gb: Some(39),
                ..proposed()
            },
            Some("storageGb"),
        );
        check(
            ProposedCluster {
                version: Some("2.0 beta".into()),
                ..proposed()
            },
            Some("version"),
        );
        let reserved = BTreeMap::from([("LaunchedBy".to_owned(), "me".to_owned())]);
        check(
            ProposedCluster {
                tags: reserved,
                ..proposed()
            },
            Some("tags.LaunchedBy"),
        );
    }

    #[test]
    fn the_default_instance_type_is_t2_large_with_40_gb() {
        let spec = ClusterSpec::parse(proposed(), 100, "2.0.0", sizes).unwrap();
        assert_eq!(spec.instance_type, "t2.large");
        assert_eq!(spec.storage_gb, 40);
        assert_eq!(spec.version, "2.0.0");
    }

    #[test]
    fn an_empty_update_is_refused() {
        assert_eq!(
            ClusterUpdate::default().validate(10).unwrap_err().field,
            "numNodes"
        );
        let too_many = ClusterUpdate {
            num_nodes: Some(11),
            ..Default::default()
        };
        assert_eq!(too_many.validate(10).unwrap_err().field, "numNodes");
        let zero = ClusterUpdate {
            num_nodes: Some(0),
            ..Default::default()
        };
        assert!(zero.validate(10).is_ok());
    }
}
