//! Auto Scaling through the AWS SDK.

use aws_sdk_autoscaling::types::{Filter, LaunchTemplateSpecification, Tag};
use aws_sdk_autoscaling::Client;

use super::{classify, tag_filter_name, AwsSettings, PerRegion};
use crate::cloud::{CloudResult, Group, GroupInstance, GroupSpec, Scaling};

/// Auto Scaling clients, one per region.
pub struct AutoScalingAdapter {
    clients: PerRegion<Client>,
}

impl AutoScalingAdapter {
    pub fn new(settings: AwsSettings) -> Self {
        AutoScalingAdapter {
            clients: PerRegion::new(settings, |config, _| Client::new(config)),
        }
    }
}

impl Scaling for AutoScalingAdapter {
    async fn groups_tagged(&self, region: &str, key: &str, value: &str) -> CloudResult<Vec<Group>> {
        let client = self.clients.get(region).await;
        let mut pages = client
            .describe_auto_scaling_groups()
            .filters(Filter::builder().name(tag_filter_name(key)).values(value).build())
            .max_records(100)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("DescribeAutoScalingGroups", e))?;
            for g in page.auto_scaling_groups() {
                out.push(Group {
                    name: g.auto_scaling_group_name().unwrap_or_default().to_owned(),
                    min: g.min_size().unwrap_or(0),
                    max: g.max_size().unwrap_or(0),
                    desired: g.desired_capacity().unwrap_or(0),
                    deleting: g.status().is_some_and(|s| s.contains("Delete")),
                    instances: g
                        .instances()
                        .iter()
                        .map(|i| GroupInstance {
                            id: i.instance_id().unwrap_or_default().to_owned(),
                            lifecycle_state: i
                                .lifecycle_state()
                                .map(|s| s.as_str())
                                .unwrap_or("Pending")
                                .to_owned(),
                            availability_zone: i.availability_zone().unwrap_or_default().to_owned(),
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    async fn create_group(&self, region: &str, spec: &GroupSpec) -> CloudResult<()> {
        let tags = spec
            .tags
            .iter()
            .map(|(k, v)| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .propagate_at_launch(true)
                    .resource_id(&spec.name)
                    .resource_type("auto-scaling-group")
                    .build()
            })
            .collect();
        self.clients
            .get(region)
            .await
            .create_auto_scaling_group()
            .auto_scaling_group_name(&spec.name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id(&spec.launch_template_id)
                    .version("$Latest")
                    .build(),
            )
            .min_size(spec.min)
            .max_size(spec.max)
            .desired_capacity(spec.desired)
            .vpc_zone_identifier(spec.subnet_ids.join(","))
            .set_tags(Some(tags))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("CreateAutoScalingGroup", e))
    }

    async fn resize_group(
        &self,
        region: &str,
        name: &str,
        min: i32,
        max: i32,
        desired: i32,
    ) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(min)
            .max_size(max)
            .desired_capacity(desired)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("UpdateAutoScalingGroup", e))
    }

    async fn delete_group(&self, region: &str, name: &str) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .delete_auto_scaling_group()
            .auto_scaling_group_name(name)
            .force_delete(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("DeleteAutoScalingGroup", e))
    }
}
