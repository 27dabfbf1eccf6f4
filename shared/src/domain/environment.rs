use std::net::Ipv4Addr;

use serde::Deserialize;

use super::{FieldError, Name};

/// An IPv4 CIDR block in canonical form (`10.0.0.0/16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr(String);

impl Cidr {
    pub fn parse(field: &str, raw: &str) -> Result<Cidr, FieldError> {
        let bad = || {
            FieldError::new(
                field,
                format!("{field} must be an IPv4 CIDR such as 10.0.0.0/16, got {raw:?}"),
            )
        };
        let (addr, len) = raw.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let len: u32 = len.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if u32::from(addr) & !mask != 0 {
            return Err(FieldError::new(
                field,
                format!(
                    "{field} has host bits set: {raw} is not a network address, did you mean {}/{len}",
                    Ipv4Addr::from(u32::from(addr) & mask)
                ),
            ));
        }
        Ok(Cidr(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An AWS region name such as `us-west-2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region(String);

impl Region {
    pub fn parse(field: &str, raw: &str) -> Result<Region, FieldError> {
        // Shape check only (`xx-name-N`); AWS itself knows which regions exist.
        let parts: Vec<&str> = raw.split('-').collect();
        let ok = parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty())
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Region(raw.to_owned()))
        } else {
            Err(FieldError::new(
                field,
                format!("{field} must be an AWS region such as us-west-2, got {raw:?}"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The body of `POST /v1/environments`, as it arrives.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposedEnvironment {
    pub name: String,
    pub region: String,
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_ids: Option<Vec<String>>,
    #[serde(default)]
    pub vpc_cidr: Option<String>,
    #[serde(default)]
    pub admin_cidr: Option<String>,
    #[serde(default)]
    pub create_security_group: bool,
    /// Pair the new environment with this one, in another region: its clusters
    /// fail over to the new one.
    #[serde(default)]
    pub failover_for: Option<i64>,
    /// With `failoverFor`: nodes each standby partner keeps running (0, the
    /// default: cold standby, partners are made at failover time).
    #[serde(default)]
    pub warm_standby_nodes: Option<i64>,
}

/// The most nodes a warm standby partner may keep.
pub const MAX_WARM_STANDBY_NODES: i64 = 100;

/// A valid environment specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentSpec {
    pub name: Name,
    pub region: Region,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub vpc_cidr: Option<Cidr>,
    pub admin_cidr: Option<Cidr>,
    pub create_security_group: bool,
    /// The environment this one is the failover partner of, and the warm
    /// standby size of the pair.
    pub pair: Option<(i64, i64)>,
}

fn aws_id(field: &str, prefix: &str, raw: &str) -> Result<String, FieldError> {
    let rest = raw.strip_prefix(prefix);
    match rest {
        Some(hex) if !hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Ok(raw.to_owned())
        }
        _ => Err(FieldError::new(
            field,
            format!("{field} must look like {prefix}0123abcd, got {raw:?}"),
        )),
    }
}

impl EnvironmentSpec {
    pub fn parse(p: ProposedEnvironment) -> Result<EnvironmentSpec, FieldError> {
        let name = Name::parse("name", &p.name)?;
        let region = Region::parse("region", &p.region)?;
        let vpc_id = p
            .vpc_id
            .as_deref()
            .map(|v| aws_id("vpcId", "vpc-", v))
            .transpose()?;
        let subnet_ids = p
            .subnet_ids
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, s)| aws_id(&format!("subnetIds[{i}]"), "subnet-", s))
            .collect::<Result<Vec<_>, _>>()?;
        if !subnet_ids.is_empty() && vpc_id.is_none() {
            return Err(FieldError::new(
                "subnetIds",
                "subnetIds needs vpcId: name the VPC the subnets belong to",
            ));
        }
        let vpc_cidr = p
            .vpc_cidr
            .as_deref()
            .map(|c| Cidr::parse("vpcCidr", c))
            .transpose()?;
        let admin_cidr = p
            .admin_cidr
            .as_deref()
            .map(|c| Cidr::parse("adminCidr", c))
            .transpose()?;
        if p.create_security_group && admin_cidr.is_none() {
            return Err(FieldError::new(
                "adminCidr",
                "adminCidr is required with createSecurityGroup: it says who may SSH to the nodes",
            ));
        }
        let pair = match (p.failover_for, p.warm_standby_nodes) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(FieldError::new(
                    "warmStandbyNodes",
                    "warmStandbyNodes needs failoverFor: it sizes the standby partners of a pair",
                ))
            }
            (Some(id), _) if id < 1 => {
                return Err(FieldError::new(
                    "failoverFor",
                    format!("failoverFor must be an environment id (a positive whole number), got {id}"),
                ))
            }
            (Some(_), Some(n)) if !(0..=MAX_WARM_STANDBY_NODES).contains(&n) => {
                return Err(FieldError::new(
                    "warmStandbyNodes",
                    format!("warmStandbyNodes must be from 0 to {MAX_WARM_STANDBY_NODES}, got {n}"),
                ))
            }
            (Some(id), n) => Some((id, n.unwrap_or(0))),
        };
        Ok(EnvironmentSpec {
            name,
            region,
            vpc_id,
            subnet_ids,
            vpc_cidr,
            admin_cidr,
            create_security_group: p.create_security_group,
            pair,
        })
    }
}

/// The lifecycle of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvironmentStatus {
    Provisioning,
    Ready,
    Deleting,
    Deleted,
    Failed,
}

impl EnvironmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentStatus::Provisioning => "PROVISIONING",
            EnvironmentStatus::Ready => "READY",
            EnvironmentStatus::Deleting => "DELETING",
            EnvironmentStatus::Deleted => "DELETED",
            EnvironmentStatus::Failed => "FAILED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_must_be_ipv4_network_addresses() {
        for (raw, ok) in [
            ("10.0.0.0/16", true),
            ("0.0.0.0/0", true),
            ("203.0.113.7/32", true),
            ("10.0.0.1/16", false),
            ("10.0.0.0", false),
            ("10.0.0.0/33", false),
            ("10.0.0/16", false),
            ("10.0.0.0/+8", false),
            ("fd00::/8", false),
            ("", false),
        ] {
            assert_eq!(Cidr::parse("vpcCidr", raw).is_ok(), ok, "{raw:?}");
        }
    }

    #[test]
    fn regions_are_shape_checked() {
        for (raw, ok) in [
            ("us-west-2", true),
            ("ap-southeast-1", true),
            ("us-gov-west-1", true),
            ("us-west", false),
            ("US-west-2", false),
            ("", false),
        ] {
            assert_eq!(Region::parse("region", raw).is_ok(), ok, "{raw:?}");
        }
    }

    fn proposed() -> ProposedEnvironment {
        ProposedEnvironment {
            name: "prod".into(),
            region: "us-west-2".into(),
            vpc_id: None,
            subnet_ids: None,
            vpc_cidr: None,
            admin_cidr: None,
            create_security_group: false,
            failover_for: None,
            warm_standby_nodes: None,
        }
    }

    #[test]
    fn a_pair_names_its_partner_and_a_sane_standby_size() {
        let pair = |f: Option<i64>, w: Option<i64>| {
            EnvironmentSpec::parse(ProposedEnvironment {
                failover_for: f,
                warm_standby_nodes: w,
                ..proposed()
            })
        };
        assert_eq!(pair(Some(3), None).unwrap().pair, Some((3, 0)));
        assert_eq!(pair(Some(3), Some(2)).unwrap().pair, Some((3, 2)));
        assert_eq!(pair(None, None).unwrap().pair, None);
        assert_eq!(pair(None, Some(1)).unwrap_err().field, "warmStandbyNodes");
        assert_eq!(pair(Some(0), None).unwrap_err().field, "failoverFor");
        assert_eq!(pair(Some(3), Some(-1)).unwrap_err().field, "warmStandbyNodes");
        assert_eq!(pair(Some(3), Some(101)).unwrap_err().field, "warmStandbyNodes");
    }

    #[test]
    fn a_security_group_needs_an_admin_cidr() {
        let err = EnvironmentSpec::parse(ProposedEnvironment {
            create_security_group: true,
            ..proposed()
        })
        .unwrap_err();
        assert_eq!(err.field, "adminCidr");
    }

    #[test]
    fn subnets_need_their_vpc() {
        let err = EnvironmentSpec::parse(ProposedEnvironment {
            subnet_ids: Some(vec!["subnet-1234".into()]),
            ..proposed()
        })
        .unwrap_err();
        assert_eq!(err.field, "subnetIds");
        let err = EnvironmentSpec::parse(ProposedEnvironment {
            vpc_id: Some("vpc-12".into()),
            subnet_ids: Some(vec!["sub-1234".into()]),
            ..proposed()
        })
        .unwrap_err();
        assert_eq!(err.field, "subnetIds[0]");
    }
}
