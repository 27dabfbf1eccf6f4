//! The `OkeraOdasServices` security group: the one table of its inbound rules.
//! Provisioning and the infrastructure template both read this table, so the ports
//! are written down once.

/// Where a rule lets traffic in from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The environment's administrative CIDR (`--admin-cidr`).
    AdminCidr,
    /// The CIDR of the hosts that use the services (`--vpc-cidr`).
    VpcCidr,
    /// Members of the security group itself.
    SelfGroup,
}

/// One inbound TCP rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub port: u16,
    pub source: Source,
    pub description: &'static str,
}

/// The group's name without an environment prefix.
pub const GROUP_NAME: &str = "OkeraOdasServices";

const fn rule(port: u16, source: Source, description: &'static str) -> Rule {
    Rule {
        port,
        source,
        description,
    }
}

/// Every inbound rule of the group, all TCP.
pub const RULES: &[Rule] = &[
    rule(22, Source::AdminCidr, "SSH"),
    rule(10000, Source::VpcCidr, "Grafana"),
    rule(10001, Source::VpcCidr, "Kubernetes web UI"),
    rule(5000, Source::VpcCidr, "ODAS REST server"),
    rule(8083, Source::VpcCidr, "ODAS web UI"),
    rule(11050, Source::VpcCidr, "ODAS planner web UI"),
    rule(11051, Source::VpcCidr, "ODAS worker web UI"),
    rule(12050, Source::VpcCidr, "ODAS planner"),
    rule(13050, Source::VpcCidr, "ODAS worker"),
    rule(3306, Source::SelfGroup, "MySQL"),
    rule(6443, Source::SelfGroup, "Kubernetes API server"),
    rule(6783, Source::SelfGroup, "Weave"),
    rule(10250, Source::SelfGroup, "kubelet"),
    rule(8085, Source::SelfGroup, "ODAS agent"),
    rule(9083, Source::SelfGroup, "ODAS HMS"),
    rule(9091, Source::SelfGroup, "ODAS ZooKeeper"),
    rule(9098, Source::SelfGroup, "ODAS canary"),
    rule(11060, Source::SelfGroup, "ODAS Sentry"),
];

/// A rule with its source resolved: a CIDR, or the group's own id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    Cidr(String),
    Group(String),
}

/// The group's name for an environment: `<environment>-OkeraOdasServices`.
pub fn group_name(environment: &str) -> String {
    format!("{environment}-{GROUP_NAME}")
}

/// The rules with their sources filled in, as (port, peer) pairs, sorted.
pub fn resolved(admin_cidr: &str, vpc_cidr: &str, group_id: &str) -> Vec<(u16, Peer)> {
    let mut out: Vec<(u16, Peer)> = RULES
        .iter()
        .map(|r| {
            let peer = match r.source {
                Source::AdminCidr => Peer::Cidr(admin_cidr.to_owned()),
                Source::VpcCidr => Peer::Cidr(vpc_cidr.to_owned()),
                Source::SelfGroup => Peer::Group(group_id.to_owned()),
            };
            (r.port, peer)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_exactly_the_documented_ports_per_source() {
        let ports = |s: Source| {
            let mut p: Vec<u16> = RULES.iter().filter(|r| r.source == s).map(|r| r.port).collect();
            p.sort();
            p
        };
        assert_eq!(ports(Source::AdminCidr), vec![22]);
        assert_eq!(
            ports(Source::VpcCidr),
            vec![5000, 8083, 10000, 10001, 11050, 11051, 12050, 13050]
        );
        assert_eq!(
            ports(Source::SelfGroup),
            vec![3306, 6443, 6783, 8085, 9083, 9091, 9098, 10250, 11060]
        );
    }
}
