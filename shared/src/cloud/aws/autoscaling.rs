//! Auto Scaling through the AWS SDK.

use aws_sdk_autoscaling::types::{
    AutoScalingGroup, Filter, LaunchTemplateSpecification, LifecycleHookSpecification, Tag,
};
use aws_sdk_autoscaling::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{classify, tag_filter_name, AwsSettings, PerRegion};
use crate::cloud::{
    ActionResult, CloudError, CloudErrorKind, CloudResult, Group, GroupInstance, GroupSpec, HookSpec,
    LifecycleAction, Scaling, GROUPS_PER_DESCRIBE,
};

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

fn to_group(g: &AutoScalingGroup) -> Group {
    Group {
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
                health_status: i.health_status().unwrap_or("Healthy").to_owned(),
            })
            .collect(),
    }
}

/// Auto Scaling answers a lifecycle call for an action that is over (completed,
/// abandoned or timed out) with a `ValidationError`; the DM treats it as gone.
fn classify_action<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut e = classify(op, err);
    if e.code == "ValidationError" && e.message.contains("No active Lifecycle Action") {
        e.kind = CloudErrorKind::NotFound;
    }
    e
}

fn hook_spec(hook: &HookSpec) -> LifecycleHookSpecification {
    LifecycleHookSpecification::builder()
        .lifecycle_hook_name(&hook.name)
        .lifecycle_transition(hook.transition.as_aws())
        .heartbeat_timeout(hook.heartbeat_timeout_s)
        .default_result(hook.default_result)
        .build()
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
            out.extend(page.auto_scaling_groups().iter().map(to_group));
        }
        Ok(out)
    }

    async fn groups_named(&self, region: &str, names: &[String]) -> CloudResult<Vec<Group>> {
        let client = self.clients.get(region).await;
        let mut out = Vec::new();
        for chunk in names.chunks(GROUPS_PER_DESCRIBE) {
            // MaxRecords above the number of names: one page per call.
            let mut pages = client
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(chunk.to_vec()))
                .max_records(100)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| classify("DescribeAutoScalingGroups", e))?;
                out.extend(page.auto_scaling_groups().iter().map(to_group));
            }
        }
        Ok(out)
    }

    async fn hooks(&self, region: &str, group: &str) -> CloudResult<Vec<String>> {
        let out = self
            .clients
            .get(region)
            .await
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| classify("DescribeLifecycleHooks", e))?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .filter_map(|h| h.lifecycle_hook_name().map(str::to_owned))
            .collect())
    }

    async fn put_hook(&self, region: &str, group: &str, hook: &HookSpec) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .put_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(&hook.name)
            .lifecycle_transition(hook.transition.as_aws())
            .heartbeat_timeout(hook.heartbeat_timeout_s)
            .default_result(hook.default_result)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutLifecycleHook", e))
    }

    async fn complete_action(
        &self,
        region: &str,
        action: &LifecycleAction,
        result: ActionResult,
    ) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .lifecycle_action_token(&action.token)
            .instance_id(&action.instance_id)
            .lifecycle_action_result(result.as_aws())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify_action("CompleteLifecycleAction", e))
    }

    async fn heartbeat(&self, region: &str, action: &LifecycleAction) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .lifecycle_action_token(&action.token)
            .instance_id(&action.instance_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify_action("RecordLifecycleActionHeartbeat", e))
    }

    async fn set_unhealthy(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        self.clients
            .get(region)
            .await
            .set_instance_health()
            .instance_id(instance_id)
            .health_status("Unhealthy")
            .should_respect_grace_period(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("SetInstanceHealth", e))
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
            .set_lifecycle_hook_specification_list(Some(spec.hooks.iter().map(hook_spec).collect()))
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
