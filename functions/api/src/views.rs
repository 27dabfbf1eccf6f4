//! The JSON the API answers with, built from store rows. Field names are
//! camelCase, as the original DM's were; times are `YYYY-MM-DD HH:MM:SS.mmm` UTC.

use serde_json::{json, Value};
use shared::store::{ClusterRow, EnvironmentRow, NodeRow, OperationRow};
use shared::time::format_ms;

pub fn environment(e: &EnvironmentRow) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "region": e.region,
        "vpcId": e.vpc_id,
        "subnetIds": e.subnet_ids,
        "vpcCidr": e.vpc_cidr,
        "adminCidr": e.admin_cidr,
        "createSecurityGroup": e.create_security_group,
        "securityGroupId": e.security_group_id,
        "statusCode": e.status_code,
        "statusMessage": e.status_message,
        "createdAt": format_ms(e.created_at),
        "updatedAt": format_ms(e.updated_at),
    })
}

pub fn cluster(c: &ClusterRow, nodes: Option<&[NodeRow]>) -> Value {
    let mut v = json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "type": c.cluster_type,
        "environmentId": c.environment_id,
        "numNodes": c.num_nodes,
        "instanceType": c.instance_type,
        "storageGb": c.storage_gb,
        "version": c.odas_version,
        "owner": c.owner,
        "tags": c.tags,
        "terminationProtectionEnabled": c.termination_protection,
        "statusCode": c.status_code,
        "statusMessage": c.status_message,
        "numRunningNodes": c.running_nodes,
        "resources": {
            "autoScalingGroup": c.asg_name,
            "launchTemplate": c.launch_template_id,
            "configUri": c.config_uri,
        },
        "createdAt": format_ms(c.created_at),
        "updatedAt": format_ms(c.updated_at),
    });
    if let Some(nodes) = nodes {
        v["nodes"] = nodes
            .iter()
            .map(|n| json!({ "instanceId": n.instance_id, "state": n.lifecycle_state, "availabilityZone": n.availability_zone }))
            .collect();
    }
    v
}

pub fn operation(o: &OperationRow) -> Value {
    json!({
        "id": o.id,
        "kind": o.kind,
        "target": format!("{}/{}", o.target_kind, o.target_id),
        "state": o.state,
        "steps": o.steps,
        "error": o.error,
        "principal": o.principal,
        "createdAt": format_ms(o.created_at),
        "updatedAt": format_ms(o.updated_at),
    })
}
