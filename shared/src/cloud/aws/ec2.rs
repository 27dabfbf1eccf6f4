//! EC2 through the AWS SDK.

use aws_sdk_ec2::types::{
    Filter, InstanceStateName, InstanceType, IpPermission, IpRange, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateTagSpecificationRequest, LocationType, RequestLaunchTemplateData, ResourceType, Tag,
    TagSpecification, UserIdGroupPair, VolumeType,
};
use aws_sdk_ec2::Client;
use base64::Engine;

use super::{classify, tag_filter_name, AwsSettings, PerRegion};
use crate::cloud::{
    CloudErrorKind, CloudResult, Compute, IngressRule, Instance, LaunchTemplate, LaunchTemplateSpec,
    SecurityGroup, Vpc, INSTANCES_PER_PAGE,
};
use crate::domain::security_group::Peer;
use crate::domain::tags;
use crate::domain::InstanceSize;

/// EC2 clients, one per region.
pub struct Ec2Adapter {
    clients: PerRegion<Client>,
}

impl Ec2Adapter {
    pub fn new(settings: AwsSettings) -> Self {
        Ec2Adapter {
            clients: PerRegion::new(settings, |config, _| Client::new(config)),
        }
    }

    /// Instances matching `by` that are not terminated, [`INSTANCES_PER_PAGE`]
    /// per call.
    async fn live_instances(&self, region: &str, by: Filter) -> CloudResult<Vec<Instance>> {
        let client = self.clients.get(region).await;
        let mut pages = client
            .describe_instances()
            .filters(by)
            .filters(filter(
                "instance-state-name",
                &["pending", "running", "stopping", "stopped", "shutting-down"],
            ))
            .max_results(INSTANCES_PER_PAGE)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeInstances", e))?;
            out.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .map(to_instance),
            );
        }
        Ok(out)
    }
}

fn to_instance(i: &aws_sdk_ec2::types::Instance) -> Instance {
    let state = i
        .state()
        .and_then(|s| s.name())
        .cloned()
        .unwrap_or(InstanceStateName::Pending);
    Instance {
        id: i.instance_id().unwrap_or_default().to_owned(),
        state: state.as_str().to_owned(),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_owned(),
        private_ip: i.private_ip_address().map(str::to_owned),
        cluster_id: i
            .tags()
            .iter()
            .find(|t| t.key() == Some(tags::CLUSTER_ID))
            .and_then(|t| t.value())
            .and_then(|v| v.parse().ok()),
        launched_at: i.launch_time().map(|t| t.to_millis().unwrap_or(0)).unwrap_or(0),
    }
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
}

fn ec2_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn permission(port: u16, peer: &Peer, description: Option<&str>) -> IpPermission {
    let b = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port as i32)
        .to_port(port as i32);
    match peer {
        Peer::Cidr(c) => b
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip(c)
                    .set_description(description.map(str::to_owned))
                    .build(),
            )
            .build(),
        Peer::Group(g) => b
            .user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(g)
                    .set_description(description.map(str::to_owned))
                    .build(),
            )
            .build(),
    }
}

impl Ec2Adapter {
    /// The first VPC that matches `by`.
    async fn first_vpc(&self, region: &str, by: Filter) -> CloudResult<Option<Vpc>> {
        let out = self
            .clients
            .get(region)
            .await
            .describe_vpcs()
            .filters(by)
            .send()
            .await
            .map_err(|e| classify("DescribeVpcs", e))?;
        Ok(out.vpcs().first().map(|v| Vpc {
            id: v.vpc_id().unwrap_or_default().to_owned(),
            cidr: v.cidr_block().unwrap_or_default().to_owned(),
        }))
    }
}

impl Compute for Ec2Adapter {
    async fn default_vpc(&self, region: &str) -> CloudResult<Option<Vpc>> {
        self.first_vpc(region, filter("isDefault", &["true"])).await
    }

    async fn vpc(&self, region: &str, vpc_id: &str) -> CloudResult<Option<Vpc>> {
        self.first_vpc(region, filter("vpc-id", &[vpc_id])).await
    }

    async fn subnets(&self, region: &str, vpc_id: &str) -> CloudResult<Vec<String>> {
        let client = self.clients.get(region).await;
        let mut pages = client
            .describe_subnets()
            .filters(filter("vpc-id", &[vpc_id]))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeSubnets", e))?;
            out.extend(
                page.subnets()
                    .iter()
                    .filter_map(|s| s.subnet_id().map(str::to_owned)),
            );
        }
        out.sort();
        Ok(out)
    }

    async fn instance_types(&self, region: &str) -> CloudResult<Vec<(String, InstanceSize)>> {
        let client = self.clients.get(region).await;
        let mut offered = std::collections::HashSet::new();
        let mut pages = client
            .describe_instance_type_offerings()
            .location_type(LocationType::Region)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeInstanceTypeOfferings", e))?;
            offered.extend(
                page.instance_type_offerings()
                    .iter()
                    .filter_map(|o| o.instance_type().map(|t| t.as_str().to_owned())),
            );
        }
        let mut out = Vec::new();
        let mut pages = client
            .describe_instance_types()
            .max_results(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeInstanceTypes", e))?;
            for t in page.instance_types() {
                let Some(name) = t.instance_type().map(|t| t.as_str().to_owned()) else {
                    continue;
                };
                if !offered.contains(&name) {
                    continue;
                }
                let vcpus = t.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap_or(0) as i64;
                let memory_mib = t.memory_info().and_then(|m| m.size_in_mib()).unwrap_or(0);
                out.push((name, InstanceSize { vcpus, memory_mib }));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn security_groups_tagged(
        &self,
        region: &str,
        vpc_id: &str,
        key: &str,
        value: &str,
    ) -> CloudResult<Vec<SecurityGroup>> {
        let out = self
            .clients
            .get(region)
            .await
            .describe_security_groups()
            .filters(filter("vpc-id", &[vpc_id]))
            .filters(filter(&tag_filter_name(key), &[value]))
            .send()
            .await
            .map_err(|e| classify("DescribeSecurityGroups", e))?;
        Ok(out
            .security_groups()
            .iter()
            .map(|g| {
                let mut rules = Vec::new();
                for p in g.ip_permissions() {
                    let (Some(from), Some(to)) = (p.from_port(), p.to_port()) else {
                        continue;
                    };
                    if p.ip_protocol() != Some("tcp") || from != to || !(0..=65535).contains(&from) {
                        // Not a rule of ours; keep it visible as port 0 so it is revoked.
                        continue;
                    }
                    let port = from as u16;
                    rules.extend(
                        p.ip_ranges()
                            .iter()
                            .filter_map(|r| r.cidr_ip())
                            .map(|c| (port, Peer::Cidr(c.to_owned()))),
                    );
                    rules.extend(
                        p.user_id_group_pairs()
                            .iter()
                            .filter_map(|g| g.group_id())
                            .map(|g| (port, Peer::Group(g.to_owned()))),
                    );
                }
                rules.sort();
                SecurityGroup {
                    id: g.group_id().unwrap_or_default().to_owned(),
                    name: g.group_name().unwrap_or_default().to_owned(),
                    rules,
                }
            })
            .collect())
    }

    async fn create_security_group(
        &self,
        region: &str,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> CloudResult<String> {
        let out = self
            .clients
            .get(region)
            .await
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc_id)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify("CreateSecurityGroup", e))?;
        Ok(out.group_id().unwrap_or_default().to_owned())
    }

    async fn authorize_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[IngressRule],
    ) -> CloudResult<()> {
        if rules.is_empty() {
            return Ok(());
        }
        self.clients
            .get(region)
            .await
            .authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(
                rules
                    .iter()
                    .map(|(port, peer, d)| permission(*port, peer, Some(d)))
                    .collect(),
            ))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("AuthorizeSecurityGroupIngress", e))
    }

    async fn revoke_ingress(&self, region: &str, group_id: &str, rules: &[(u16, Peer)]) -> CloudResult<()> {
        if rules.is_empty() {
            return Ok(());
        }
        self.clients
            .get(region)
            .await
            .revoke_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(
                rules
                    .iter()
                    .map(|(port, peer)| permission(*port, peer, None))
                    .collect(),
            ))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("RevokeSecurityGroupIngress", e))
    }

    async fn delete_security_group(&self, region: &str, group_id: &str) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .delete_security_group()
            .group_id(group_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("DeleteSecurityGroup", e))
    }

    async fn launch_templates_tagged(
        &self,
        region: &str,
        key: &str,
        value: &str,
    ) -> CloudResult<Vec<LaunchTemplate>> {
        let client = self.clients.get(region).await;
        let mut pages = client
            .describe_launch_templates()
            .filters(filter(&tag_filter_name(key), &[value]))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeLaunchTemplates", e))?;
            out.extend(page.launch_templates().iter().map(|t| LaunchTemplate {
                id: t.launch_template_id().unwrap_or_default().to_owned(),
                name: t.launch_template_name().unwrap_or_default().to_owned(),
            }));
        }
        Ok(out)
    }

    async fn create_launch_template(
        &self,
        region: &str,
        spec: &LaunchTemplateSpec,
    ) -> CloudResult<LaunchTemplate> {
        let data = RequestLaunchTemplateData::builder()
            .image_id(&spec.image_id)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .user_data(base64::engine::general_purpose::STANDARD.encode(&spec.user_data))
            .block_device_mappings(
                LaunchTemplateBlockDeviceMappingRequest::builder()
                    .device_name("/dev/xvda")
                    .ebs(
                        LaunchTemplateEbsBlockDeviceRequest::builder()
                            .volume_size(spec.storage_gb)
                            .volume_type(VolumeType::Gp3)
                            .encrypted(true)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .set_iam_instance_profile(spec.instance_profile.as_ref().map(|arn| {
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .arn(arn)
                    .build()
            }))
            .set_security_group_ids(if spec.security_group_ids.is_empty() {
                None
            } else {
                Some(spec.security_group_ids.clone())
            })
            // Volumes carry the cluster's tags too; instances get them from the group.
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Volume)
                    .set_tags(Some(ec2_tags(&spec.tags)))
                    .build(),
            )
            .build();
        let out = self
            .clients
            .get(region)
            .await
            .create_launch_template()
            .launch_template_name(&spec.name)
            .launch_template_data(data)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .set_tags(Some(ec2_tags(&spec.tags)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify("CreateLaunchTemplate", e))?;
        let t = out.launch_template();
        Ok(LaunchTemplate {
            id: t
                .and_then(|t| t.launch_template_id())
                .unwrap_or_default()
                .to_owned(),
            name: spec.name.clone(),
        })
    }

    async fn delete_launch_template(&self, region: &str, id: &str) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("DeleteLaunchTemplate", e))
    }

    async fn instances_tagged(&self, region: &str, key: &str, value: &str) -> CloudResult<Vec<Instance>> {
        self.live_instances(region, filter(&tag_filter_name(key), &[value]))
            .await
    }

    async fn managed_instances(&self, region: &str) -> CloudResult<Vec<Instance>> {
        self.live_instances(
            region,
            filter(&tag_filter_name(tags::LAUNCHED_BY.0), &[tags::LAUNCHED_BY.1]),
        )
        .await
    }

    async fn instance(&self, region: &str, id: &str) -> CloudResult<Option<Instance>> {
        let page = self
            .clients
            .get(region)
            .await
            .describe_instances()
            .instance_ids(id)
            .send()
            .await;
        match page {
            Ok(page) => Ok(page
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .map(to_instance)
                .find(|i| i.state != "terminated")),
            Err(e) => match classify("DescribeInstances", e) {
                e if e.kind == CloudErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn terminate_instances(&self, region: &str, ids: &[String]) -> CloudResult<()> {
        let client = self.clients.get(region).await;
        for chunk in ids.chunks(1000) {
            client
                .terminate_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("TerminateInstances", e))?;
        }
        Ok(())
    }
}
