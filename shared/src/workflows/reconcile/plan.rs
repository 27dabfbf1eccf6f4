//! The reconciler's logic, with no I/O: what a cluster should have, what AWS has,
//! and the changes that close the gap. `plan` is level-triggered: it does not know
//! why it was called, and planning again after any subset of its changes took
//! effect gives the rest.

use std::collections::HashMap;

use crate::cloud::{
    AlarmSpec, FailoverRouting, Group, GroupSpec, HookSpec, Instance, LaunchTemplate, LaunchTemplateSpec,
    RecordSet,
};
use crate::domain::health::{evaluate, NodeView, Probe};
use crate::domain::ClusterStatus;
use crate::store::{Step, StepState};

/// What a cluster should have in AWS, derived from its row.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredCluster {
    pub delete: bool,
    pub num_nodes: i32,
    pub group: GroupSpec,
    /// The group's launch template id is filled in from what is observed.
    pub template: LaunchTemplateSpec,
    pub config_key: String,
    pub config_body: Vec<u8>,
    /// Every staged configuration of the cluster lives under this prefix.
    pub config_prefix: String,
    /// The cluster's health alarm, made once the cluster first converges (a
    /// cluster still provisioning is not READY, and must not alarm).
    pub alarm: AlarmSpec,
    /// Every alarm of the cluster's starts with this.
    pub alarm_prefix: String,
    /// The cluster's DNS name, when a zone is configured: `(zone id, name)`.
    pub endpoint: Option<(String, String)>,
    /// Whether this cluster keeps its endpoint record: it serves in its
    /// environment (not an upgrade's other side) and, for a plain record of a
    /// paired environment, its side of the pair takes the traffic.
    pub serves_endpoint: bool,
    /// For a cluster of a paired environment whose regions have health checks:
    /// its side's failover record. None: a simple record.
    pub routing: Option<FailoverRouting>,
    /// A standby partner: kept at its warm size with no alarm, reported STANDBY.
    pub parked: bool,
}

/// What AWS has for a cluster, found by the cluster's tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedCluster {
    pub groups: Vec<Group>,
    pub templates: Vec<LaunchTemplate>,
    /// Instances tagged with the cluster that are not yet terminated.
    pub instances: Vec<Instance>,
    /// Keys under the cluster's configuration prefix.
    pub config_keys: Vec<String>,
    /// The lifecycle hooks of the desired group, by name (empty without a group).
    pub hooks: Vec<String>,
    /// The last probe of each node the store knows, by instance id.
    pub probes: HashMap<String, Probe>,
    /// The names of the cluster's alarms.
    pub alarms: Vec<String>,
    /// The record sets of the endpoint's name (only read for a serving cluster).
    pub endpoint_records: Vec<RecordSet>,
}

/// How a cluster of `env` keeps its endpoint: `(routing, keeps)`. A cluster of
/// a paired environment whose region and whose partner's region (`pair_region`)
/// both have a Route 53 health check keeps its side's failover record (set
/// identifier: its region), whichever side serves: the health checks choose.
/// Otherwise the endpoint is one simple record, kept only by a cluster whose
/// side of the pair takes the traffic (or of an environment with no pair).
pub fn endpoint_routing(
    env_region: &str,
    primary: bool,
    pair_region: Option<&str>,
    pair_serving: bool,
    health_checks: &[(String, String)],
) -> (Option<FailoverRouting>, bool) {
    let check = |region: &str| {
        health_checks
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, id)| id.clone())
    };
    match pair_region {
        None => (None, true),
        Some(other) => match (check(env_region), check(other)) {
            (Some(mine), Some(_)) => (
                Some(FailoverRouting {
                    set_id: env_region.to_owned(),
                    primary,
                    health_check_id: Some(mine),
                }),
                true,
            ),
            _ => (None, pair_serving),
        },
    }
}

/// One change to AWS.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    PutConfig { key: String, body: Vec<u8> },
    CreateLaunchTemplate(LaunchTemplateSpec),
    CreateGroup(GroupSpec),
    PutHook { group: String, hook: HookSpec },
    ResizeGroup { name: String, size: i32 },
    DeleteGroup { name: String },
    DeleteLaunchTemplate { id: String },
    TerminateInstances { ids: Vec<String> },
    DeleteConfig { keys: Vec<String> },
    PutAlarm(AlarmSpec),
    DeleteAlarms { names: Vec<String> },
    UpsertEndpoint { zone: String, record: RecordSet },
    DeleteEndpoint { zone: String, record: RecordSet },
}

impl Change {
    /// A short description for logs and operation steps.
    pub fn describe(&self) -> String {
        match self {
            Change::PutConfig { key, .. } => format!("stage configuration {key}"),
            Change::CreateLaunchTemplate(t) => format!("create launch template {}", t.name),
            Change::CreateGroup(g) => format!("create auto scaling group {}", g.name),
            Change::PutHook { group, hook } => format!("add lifecycle hook {} to {group}", hook.name),
            Change::ResizeGroup { name, size } => format!("resize auto scaling group {name} to {size}"),
            Change::DeleteGroup { name } => format!("delete auto scaling group {name}"),
            Change::DeleteLaunchTemplate { id } => format!("delete launch template {id}"),
            Change::TerminateInstances { ids } => format!("terminate {} instance(s)", ids.len()),
            Change::DeleteConfig { keys } => format!("delete {} staged configuration object(s)", keys.len()),
            Change::PutAlarm(a) => format!("create alarm {}", a.name),
            Change::DeleteAlarms { names } => format!("delete alarm(s) {}", names.join(", ")),
            Change::UpsertEndpoint { record, .. } => {
                format!("point {} at {}", record.name, record.values.join(", "))
            }
            Change::DeleteEndpoint { record, .. } => format!("delete endpoint {}", record.name),
        }
    }
}

/// The changes that move `observed` toward `desired`, in the order they must run.
pub fn plan(desired: &DesiredCluster, observed: &ObservedCluster) -> Vec<Change> {
    let mut changes = Vec::new();
    let group_name = &desired.group.name;
    let template_name = &desired.template.name;
    if desired.delete {
        // The alarm first, so that taking the cluster down does not alarm.
        if !observed.alarms.is_empty() {
            changes.push(Change::DeleteAlarms {
                names: observed.alarms.clone(),
            });
        }
        // The endpoint goes with the cluster that serves it (never with an
        // upgrade's other side, which shares the name).
        if let (Some((zone, _)), true) = (&desired.endpoint, desired.serves_endpoint) {
            for record in observed.endpoint_records.iter().filter(|r| own_set(desired, r)) {
                changes.push(Change::DeleteEndpoint {
                    zone: zone.clone(),
                    record: record.clone(),
                });
            }
        }
        // Groups first: deleting a group terminates its instances. Templates,
        // leftover instances and configuration go once no group is left, so that
        // nothing is removed from under a group that still launches.
        let live: Vec<&Group> = observed.groups.iter().filter(|g| !g.deleting).collect();
        changes.extend(live.iter().map(|g| Change::DeleteGroup { name: g.name.clone() }));
        if observed.groups.is_empty() {
            changes.extend(
                observed
                    .templates
                    .iter()
                    .map(|t| Change::DeleteLaunchTemplate { id: t.id.clone() }),
            );
            let running: Vec<String> = observed
                .instances
                .iter()
                .filter(|i| i.state != "shutting-down")
                .map(|i| i.id.clone())
                .collect();
            if !running.is_empty() {
                changes.push(Change::TerminateInstances { ids: running });
            }
            if !observed.config_keys.is_empty() {
                changes.push(Change::DeleteConfig {
                    keys: observed.config_keys.clone(),
                });
            }
        }
        return changes;
    }
    if !observed.config_keys.contains(&desired.config_key) {
        changes.push(Change::PutConfig {
            key: desired.config_key.clone(),
            body: desired.config_body.clone(),
        });
    }
    // Anything tagged with the cluster but under another name is a leftover (a
    // renamed or half-made resource): remove it so it cannot leak.
    for g in observed
        .groups
        .iter()
        .filter(|g| &g.name != group_name && !g.deleting)
    {
        changes.push(Change::DeleteGroup { name: g.name.clone() });
    }
    let template = observed.templates.iter().find(|t| &t.name == template_name);
    if template.is_none() {
        changes.push(Change::CreateLaunchTemplate(desired.template.clone()));
    }
    match observed.groups.iter().find(|g| &g.name == group_name) {
        None => {
            // The template id is known only once the template exists; a group is
            // created on the pass after its template.
            if let Some(t) = template {
                let mut spec = desired.group.clone();
                spec.launch_template_id = t.id.clone();
                changes.push(Change::CreateGroup(spec));
            }
        }
        Some(g) if g.deleting => {}
        Some(g) => {
            // A group made by an older DM, or whose hook was removed by hand.
            for hook in desired
                .group
                .hooks
                .iter()
                .filter(|h| !observed.hooks.contains(&h.name))
            {
                changes.push(Change::PutHook {
                    group: g.name.clone(),
                    hook: hook.clone(),
                });
            }
            let n = desired.num_nodes;
            if g.min != n || g.max != n || g.desired != n {
                changes.push(Change::ResizeGroup {
                    name: g.name.clone(),
                    size: n,
                });
            }
        }
    }
    let serving = observed
        .groups
        .iter()
        .any(|g| &g.name == group_name && !g.deleting && all_in_service(g, desired.num_nodes));
    if desired.parked {
        // A standby does not serve, and a cold one has no nodes: no alarm.
        if !observed.alarms.is_empty() {
            changes.push(Change::DeleteAlarms {
                names: observed.alarms.clone(),
            });
        }
    } else if serving && !observed.alarms.contains(&desired.alarm.name) {
        changes.push(Change::PutAlarm(desired.alarm.clone()));
    }
    changes.extend(endpoint_change(desired, observed));
    let in_use = observed.groups.iter().any(|g| &g.name != group_name);
    if !in_use {
        for t in observed.templates.iter().filter(|t| &t.name != template_name) {
            changes.push(Change::DeleteLaunchTemplate { id: t.id.clone() });
        }
    }
    changes
}

/// Whether a record set of the endpoint's name is this cluster's own: the same
/// type and, for a failover record, its side's set identifier.
fn own_set(desired: &DesiredCluster, record: &RecordSet) -> bool {
    record.kind == "A"
        && record.failover.as_ref().map(|f| &f.set_id) == desired.routing.as_ref().map(|f| &f.set_id)
}

/// The endpoint of a serving cluster points at the addresses of its nodes in
/// service. With no node in service (still provisioning, or every node being
/// replaced) the record is left as it is: an empty answer helps no client. A
/// parked cold partner, with no nodes, removes its side's failover record, so
/// that Route 53 never answers with addresses that are gone.
fn endpoint_change(desired: &DesiredCluster, observed: &ObservedCluster) -> Option<Change> {
    let (zone, name) = desired.endpoint.as_ref()?;
    if !desired.serves_endpoint {
        return None;
    }
    let in_service: Vec<&str> = observed
        .groups
        .iter()
        .filter(|g| g.name == desired.group.name && !g.deleting)
        .flat_map(|g| g.instances.iter())
        .filter(|i| i.lifecycle_state == "InService")
        .map(|i| i.id.as_str())
        .collect();
    let mut values: Vec<String> = observed
        .instances
        .iter()
        .filter(|i| in_service.contains(&i.id.as_str()))
        .filter_map(|i| i.private_ip.clone())
        .collect();
    let sets: Vec<&RecordSet> = observed
        .endpoint_records
        .iter()
        .filter(|r| own_set(desired, r))
        .collect();
    if values.is_empty() {
        return match (desired.parked && desired.routing.is_some(), sets.as_slice()) {
            (true, [one, ..]) => Some(Change::DeleteEndpoint {
                zone: zone.clone(),
                record: (*one).clone(),
            }),
            _ => None,
        };
    }
    values.sort();
    let record = RecordSet {
        failover: desired.routing.clone(),
        ..RecordSet::a(name.clone(), crate::workflows::runbook::ENDPOINT_TTL, values)
    };
    let current = match sets.as_slice() {
        [one] => {
            let mut v = one.values.clone();
            v.sort();
            Some((v, one.ttl, one.failover.clone()))
        }
        _ => None,
    };
    (current != Some((record.values.clone(), record.ttl, record.failover.clone()))).then(|| {
        Change::UpsertEndpoint {
            zone: zone.clone(),
            record,
        }
    })
}

/// The group has exactly `n` instances, all in service.
fn all_in_service(g: &Group, n: i32) -> bool {
    g.instances.len() as i32 == n && g.instances.iter().all(|i| i.lifecycle_state == "InService")
}

/// How far a cluster is from its desired state, for its row and its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub status: ClusterStatus,
    pub message: String,
    /// Services running on every node, once the cluster is steady.
    pub running_services: Option<i64>,
    pub steps: Vec<Step>,
    /// True when AWS matches the desired state.
    pub converged: bool,
}

fn step(name: &str, done: bool, running: bool, message: String) -> Step {
    Step {
        name: name.to_owned(),
        state: if done {
            StepState::Done
        } else if running {
            StepState::Running
        } else {
            StepState::Pending
        },
        message,
    }
}

/// Judges what was observed against what is desired.
pub fn assess(desired: &DesiredCluster, observed: &ObservedCluster, ever_ready: bool) -> Assessment {
    if desired.delete {
        let groups = observed.groups.len();
        let instances = observed.instances.len();
        let steps = vec![
            step(
                "auto scaling group",
                groups == 0,
                true,
                if groups == 0 {
                    "deleted".into()
                } else {
                    "deleting".into()
                },
            ),
            step(
                "instances",
                instances == 0,
                groups == 0,
                format!("{instances} not yet terminated"),
            ),
            step(
                "launch template",
                observed.templates.is_empty(),
                groups == 0,
                format!("{} left", observed.templates.len()),
            ),
            step(
                "staged configuration",
                observed.config_keys.is_empty(),
                groups == 0,
                format!("{} object(s) left", observed.config_keys.len()),
            ),
        ];
        let converged = steps.iter().all(|s| s.state == StepState::Done);
        return Assessment {
            status: if converged {
                ClusterStatus::Terminated
            } else {
                ClusterStatus::Terminating
            },
            running_services: None,
            message: if converged {
                "Cluster deleted; no resources left.".into()
            } else {
                "Deleting the cluster's resources.".into()
            },
            steps,
            converged,
        };
    }
    let n = desired.num_nodes;
    let config = observed.config_keys.contains(&desired.config_key);
    let template = observed.templates.iter().any(|t| t.name == desired.template.name);
    let group = observed
        .groups
        .iter()
        .find(|g| g.name == desired.group.name && !g.deleting);
    let sized = group.is_some_and(|g| g.min == n && g.max == n && g.desired == n);
    let in_service = group
        .map(|g| {
            g.instances
                .iter()
                .filter(|i| i.lifecycle_state == "InService")
                .count() as i32
        })
        .unwrap_or(0);
    let leftovers = observed.groups.len() - usize::from(group.is_some());
    let nodes_done = sized && group.is_some_and(|g| all_in_service(g, n));
    let hooked = group.is_none()
        || desired
            .group
            .hooks
            .iter()
            .all(|h| observed.hooks.contains(&h.name));
    let steps = vec![
        step("staged configuration", config, false, desired.config_key.clone()),
        step("launch template", template, config, desired.template.name.clone()),
        step(
            "auto scaling group",
            sized && leftovers == 0 && hooked,
            template,
            format!("{} with {n} node(s)", desired.group.name),
        ),
        step(
            "nodes in service",
            nodes_done,
            group.is_some(),
            format!("{in_service} of {n} nodes in service"),
        ),
    ];
    let converged = steps.iter().all(|s| s.state == StepState::Done);
    if converged && desired.parked {
        return Assessment {
            status: ClusterStatus::Standby,
            message: if n == 0 {
                "Standby partner with no nodes (cold standby): it is made ready at failover.".into()
            } else {
                format!("Standby partner keeping {n} node(s) warm for failover.")
            },
            running_services: None,
            steps,
            converged,
        };
    }
    if converged {
        // Every node passed its agent's readiness check to join (the launch
        // hook); its health is what its last probe says.
        // In display order (launch time, then id), as the sweep and ocadm number nodes.
        let launched = |id: &str| {
            observed
                .instances
                .iter()
                .find(|i| i.id == id)
                .map_or(0, |i| i.launched_at)
        };
        let mut members: Vec<_> = group.map(|g| g.instances.iter().collect()).unwrap_or_default();
        members.sort_by_key(|i| (launched(&i.id), i.id.clone()));
        let nodes: Vec<NodeView> = members
            .into_iter()
            .map(|i| NodeView {
                instance_id: i.id.clone(),
                lifecycle_state: i.lifecycle_state.clone(),
                probe: observed.probes.get(&i.id).cloned(),
            })
            .collect();
        let health = evaluate(n as usize, &nodes);
        return Assessment {
            status: health.code.into(),
            message: health.message,
            running_services: Some(health.running_services as i64),
            steps,
            converged,
        };
    }
    Assessment {
        status: if ever_ready {
            ClusterStatus::Updating
        } else {
            ClusterStatus::Provisioning
        },
        message: format!("{in_service} of {n} nodes in service."),
        running_services: None,
        steps,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::GroupInstance;
    use crate::domain::health::{ServiceHealth, ServiceState, ALL_RUNNING, SERVICES};
    use crate::workflows::lifecycle::{node_hooks, LAUNCH_HOOK as LAUNCH};

    fn hook_names() -> Vec<String> {
        node_hooks().into_iter().map(|h| h.name).collect()
    }

    fn healthy(n: i32) -> HashMap<String, Probe> {
        (0..n)
            .map(|i| {
                let services = SERVICES
                    .iter()
                    .map(|s| ServiceHealth {
                        name: (*s).into(),
                        state: ServiceState::Running,
                        message: String::new(),
                    })
                    .collect();
                (format!("i-{i}"), Probe::Answered { services })
            })
            .collect()
    }

    fn desired(n: i32) -> DesiredCluster {
        DesiredCluster {
            delete: false,
            num_nodes: n,
            group: GroupSpec {
                name: "okera-1-a".into(),
                launch_template_id: String::new(),
                min: n,
                max: n,
                desired: n,
                subnet_ids: vec!["subnet-1".into()],
                tags: vec![("LaunchedBy".into(), "Okera".into())],
                hooks: node_hooks(),
            },
            template: LaunchTemplateSpec {
                name: "okera-1-a".into(),
                image_id: "ami-1".into(),
                instance_type: "t2.large".into(),
                storage_gb: 40,
                security_group_ids: vec![],
                instance_profile: None,
                user_data: "#!/bin/bash".into(),
                tags: vec![("LaunchedBy".into(), "Okera".into())],
            },
            config_key: "config/1/1/cluster.json".into(),
            config_body: b"{}".to_vec(),
            config_prefix: "config/1/".into(),
            alarm: crate::metrics::cluster_alarm("us-west-2", 1, "okera-1-a", &[]),
            alarm_prefix: "okera-1-".into(),
            endpoint: None,
            serves_endpoint: true,
            routing: None,
            parked: false,
        }
    }

    fn alarm_names() -> Vec<String> {
        vec!["okera-1-a-health".into()]
    }

    fn group(name: &str, size: i32, in_service: i32) -> Group {
        Group {
            name: name.into(),
            min: size,
            max: size,
            desired: size,
            deleting: false,
            instances: (0..in_service)
                .map(|i| GroupInstance {
                    id: format!("i-{i}"),
                    lifecycle_state: "InService".into(),
                    availability_zone: "us-west-2a".into(),
                    health_status: "Healthy".into(),
                })
                .collect(),
        }
    }

    fn template(name: &str) -> LaunchTemplate {
        LaunchTemplate {
            id: format!("lt-{name}"),
            name: name.into(),
        }
    }

    fn kinds(changes: &[Change]) -> Vec<String> {
        changes.iter().map(Change::describe).collect()
    }

    #[test]
    fn a_new_cluster_stages_config_and_a_template_before_its_group() {
        let d = desired(3);
        let first = plan(&d, &ObservedCluster::default());
        assert_eq!(
            kinds(&first),
            [
                "stage configuration config/1/1/cluster.json",
                "create launch template okera-1-a"
            ]
        );
        let after = ObservedCluster {
            templates: vec![template("okera-1-a")],
            config_keys: vec![d.config_key.clone()],
            ..Default::default()
        };
        let second = plan(&d, &after);
        match &second[..] {
            [Change::CreateGroup(g)] => assert_eq!(g.launch_template_id, "lt-okera-1-a"),
            other => panic!("expected one CreateGroup, got {other:?}"),
        }
    }

    #[test]
    fn a_converged_cluster_needs_nothing_and_is_ready() {
        let d = desired(3);
        let o = ObservedCluster {
            groups: vec![group("okera-1-a", 3, 3)],
            templates: vec![template("okera-1-a")],
            config_keys: vec![d.config_key.clone()],
            hooks: hook_names(),
            probes: healthy(3),
            alarms: alarm_names(),
            ..Default::default()
        };
        assert!(plan(&d, &o).is_empty());
        let a = assess(&d, &o, false);
        assert_eq!(a.status, ClusterStatus::Ready);
        assert_eq!(a.message, ALL_RUNNING);
        assert_eq!(a.running_services, Some(7));
        assert!(a.converged);
    }

    #[test]
    fn a_converged_cluster_reports_what_its_probes_say() {
        let d = desired(2);
        let o = ObservedCluster {
            groups: vec![group("okera-1-a", 2, 2)],
            templates: vec![template("okera-1-a")],
            config_keys: vec![d.config_key.clone()],
            hooks: hook_names(),
            probes: healthy(1),
            ..Default::default()
        };
        let a = assess(&d, &o, false);
        assert!(a.converged);
        assert_eq!(a.status, ClusterStatus::Concerning);
        assert_eq!(
            a.message,
            "Health check unsuccessful. Node 1 (i-1) has not been checked yet."
        );
    }

    #[test]
    fn the_alarm_comes_once_every_node_is_in_service_and_goes_first() {
        let d = desired(2);
        let joining = ObservedCluster {
            groups: vec![group("okera-1-a", 2, 1)],
            templates: vec![template("okera-1-a")],
            config_keys: vec![d.config_key.clone()],
            hooks: hook_names(),
            ..Default::default()
        };
        assert!(plan(&d, &joining).is_empty(), "no alarm while provisioning");
        let serving = ObservedCluster {
            groups: vec![group("okera-1-a", 2, 2)],
            ..joining
        };
        assert_eq!(kinds(&plan(&d, &serving)), ["create alarm okera-1-a-health"]);
        let mut gone = desired(2);
        gone.delete = true;
        let with_alarm = ObservedCluster {
            alarms: alarm_names(),
            ..serving
        };
        assert_eq!(
            kinds(&plan(&gone, &with_alarm)),
            [
                "delete alarm(s) okera-1-a-health",
                "delete auto scaling group okera-1-a"
            ]
        );
    }

    #[test]
    fn a_group_without_the_lifecycle_hooks_gets_them() {
        let d = desired(1);
        let o = ObservedCluster {
            groups: vec![group("okera-1-a", 1, 1)],
            templates: vec![template("okera-1-a")],
            config_keys: vec![d.config_key.clone()],
            hooks: vec![LAUNCH.into()],
            alarms: alarm_names(),
            ..Default::default()
        };
        assert_eq!(
            kinds(&plan(&d, &o)),
            ["add lifecycle hook okera-node-terminate to okera-1-a"]
        );
        assert!(!assess(&d, &o, true).converged);
    }

    #[test]
    fn an_adopted_group_of_the_wrong_size_is_resized() {
        let d = desired(5);
        let o = ObservedCluster {
            groups: vec![group("okera-1-a", 3, 3)],
            templates: vec![template("okera-1-a")],
            config_keys: vec![d.config_key.clone()],
            hooks: hook_names(),
            ..Default::default()
        };
        assert_eq!(
            plan(&d, &o),
            vec![Change::ResizeGroup {
                name: "okera-1-a".into(),
                size: 5
            }]
        );
        let a = assess(&d, &o, true);
        assert_eq!(a.status, ClusterStatus::Updating);
        assert!(!a.converged);
    }

    #[test]
    fn leftover_groups_and_templates_tagged_with_the_cluster_are_removed() {
        let d = desired(1);
        let o = ObservedCluster {
            groups: vec![group("okera-1-a", 1, 1), group("okera-1-old", 1, 1)],
            templates: vec![template("okera-1-a"), template("okera-1-old")],
            config_keys: vec![d.config_key.clone()],
            hooks: hook_names(),
            alarms: alarm_names(),
            ..Default::default()
        };
        // The old template goes only after the old group is gone.
        assert_eq!(
            plan(&d, &o),
            vec![Change::DeleteGroup {
                name: "okera-1-old".into()
            }]
        );
        let o2 = ObservedCluster {
            groups: vec![group("okera-1-a", 1, 1)],
            ..o
        };
        assert_eq!(
            plan(&d, &o2),
            vec![Change::DeleteLaunchTemplate {
                id: "lt-okera-1-old".into()
            }]
        );
    }

    #[test]
    fn delete_removes_groups_first_then_everything_else_tagged() {
        let mut d = desired(2);
        d.delete = true;
        let o = ObservedCluster {
            groups: vec![group("okera-1-a", 2, 2)],
            templates: vec![template("okera-1-a")],
            config_keys: vec!["config/1/1/cluster.json".into()],
            instances: vec![Instance {
                id: "i-9".into(),
                state: "running".into(),
                availability_zone: "a".into(),
                ..Instance::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            plan(&d, &o),
            vec![Change::DeleteGroup {
                name: "okera-1-a".into()
            }]
        );
        assert_eq!(assess(&d, &o, true).status, ClusterStatus::Terminating);
        let o2 = ObservedCluster { groups: vec![], ..o };
        assert_eq!(
            kinds(&plan(&d, &o2)),
            [
                "delete launch template lt-okera-1-a",
                "terminate 1 instance(s)",
                "delete 1 staged configuration object(s)"
            ]
        );
        let gone = ObservedCluster::default();
        assert!(plan(&d, &gone).is_empty());
        assert_eq!(assess(&d, &gone, true).status, ClusterStatus::Terminated);
    }

    #[test]
    fn a_group_being_deleted_is_waited_for_not_deleted_again() {
        let mut d = desired(1);
        d.delete = true;
        let mut g = group("okera-1-a", 1, 0);
        g.deleting = true;
        let o = ObservedCluster {
            groups: vec![g],
            ..Default::default()
        };
        assert!(plan(&d, &o).is_empty());
        assert!(!assess(&d, &o, true).converged);
    }

    #[test]
    fn the_serving_side_keeps_the_endpoint_on_its_nodes_in_service() {
        let record = |values: &[&str]| {
            RecordSet::a(
                "a.prod.zone.test",
                crate::workflows::runbook::ENDPOINT_TTL,
                values.iter().map(|v| (*v).to_owned()).collect(),
            )
        };
        let observed = |records: Vec<RecordSet>| ObservedCluster {
            groups: vec![group("okera-1-a", 2, 2)],
            templates: vec![template("okera-1-a")],
            instances: (0..2)
                .map(|i| Instance {
                    id: format!("i-{i}"),
                    state: "running".into(),
                    private_ip: Some(format!("10.0.0.{}", 9 - i)),
                    ..Default::default()
                })
                .collect(),
            config_keys: vec!["config/1/1/cluster.json".into()],
            hooks: hook_names(),
            alarms: alarm_names(),
            endpoint_records: records,
            ..Default::default()
        };
        let serving = |serves: bool, delete: bool| DesiredCluster {
            endpoint: Some(("Z1".into(), "a.prod.zone.test".into())),
            serves_endpoint: serves,
            delete,
            ..desired(2)
        };
        let upsert = |values: &[&str]| Change::UpsertEndpoint {
            zone: "Z1".into(),
            record: record(values),
        };
        let endpoint_changes = |d: &DesiredCluster, o: &ObservedCluster| -> Vec<Change> {
            plan(d, o)
                .into_iter()
                .filter(|c| matches!(c, Change::UpsertEndpoint { .. } | Change::DeleteEndpoint { .. }))
                .collect()
        };
        let both = ["10.0.0.8", "10.0.0.9"];
        // (desired, records in the zone, expected changes)
        let cases = [
            (serving(true, false), vec![], vec![upsert(&both)]),
            (
                serving(true, false),
                vec![record(&["10.0.0.9", "10.0.0.8"])],
                vec![],
            ),
            (
                serving(true, false),
                vec![record(&["10.0.0.7"])],
                vec![upsert(&both)],
            ),
            // A duplicate made by CREATE is written over.
            (
                serving(true, false),
                vec![record(&both), record(&both)],
                vec![upsert(&both)],
            ),
            // The other side of an upgrade never touches the shared name.
            (serving(false, false), vec![record(&["10.0.0.7"])], vec![]),
            (serving(false, true), vec![record(&["10.0.0.7"])], vec![]),
            (
                serving(true, true),
                vec![record(&both)],
                vec![Change::DeleteEndpoint {
                    zone: "Z1".into(),
                    record: record(&both),
                }],
            ),
            // No zone configured: no endpoint.
            (desired(2), vec![], vec![]),
        ];
        for (i, (d, records, want)) in cases.into_iter().enumerate() {
            assert_eq!(endpoint_changes(&d, &observed(records)), want, "case {i}");
        }
        // Nothing in service yet: no record rather than an empty one.
        let mut o = observed(vec![]);
        o.groups = vec![group("okera-1-a", 2, 0)];
        assert_eq!(endpoint_changes(&serving(true, false), &o), vec![]);
    }
}
