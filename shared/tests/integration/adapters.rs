//! The AWS adapters against the emulator: errors are classed, throttling and 5xx
//! are retried with a cap, other 4xx are not retried.

use emulator::FaultRule;
use shared::cloud::aws::{AutoScalingAdapter, Ec2Adapter};
use shared::cloud::{CloudErrorKind, Compute, GroupSpec, LaunchTemplateSpec, Scaling};

use crate::support::{account, settings, REGION};

fn fault(account: &str, action: &str, status: u16, code: &str, count: u32) -> FaultRule {
    FaultRule {
        service: "autoscaling".into(),
        action: action.into(),
        status,
        code: code.into(),
        count,
        account: Some(account.into()),
        ..Default::default()
    }
}

fn calls(account: &str, action: &str) -> u64 {
    emulator::shared()
        .request_count(Some(account), "autoscaling", action)
        .unwrap()
}

#[tokio::test]
async fn server_errors_are_retried_until_the_call_succeeds() {
    let acct = account();
    emulator::shared()
        .inject_fault(&fault(
            &acct,
            "DescribeAutoScalingGroups",
            503,
            "ServiceUnavailable",
            2,
        ))
        .unwrap();
    let groups = AutoScalingAdapter::new(settings(&acct, None))
        .groups_tagged(REGION, "k", "v")
        .await
        .unwrap();
    assert!(groups.is_empty());
    assert_eq!(
        calls(&acct, "DescribeAutoScalingGroups"),
        3,
        "two failures, then success"
    );
}

#[tokio::test]
async fn throttling_is_retried() {
    let acct = account();
    emulator::shared()
        .inject_fault(&fault(&acct, "DescribeAutoScalingGroups", 400, "Throttling", 1))
        .unwrap();
    AutoScalingAdapter::new(settings(&acct, None))
        .groups_tagged(REGION, "k", "v")
        .await
        .unwrap();
    assert_eq!(calls(&acct, "DescribeAutoScalingGroups"), 2);
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_is_permanent() {
    let acct = account();
    emulator::shared()
        .inject_fault(&fault(
            &acct,
            "DescribeAutoScalingGroups",
            400,
            "ValidationError",
            1,
        ))
        .unwrap();
    let err = AutoScalingAdapter::new(settings(&acct, None))
        .groups_tagged(REGION, "k", "v")
        .await
        .unwrap_err();
    assert_eq!(err.kind, CloudErrorKind::Permanent);
    assert_eq!(err.code, "ValidationError");
    assert_eq!(calls(&acct, "DescribeAutoScalingGroups"), 1);
}

#[tokio::test]
async fn retries_stop_at_the_attempt_cap_and_the_error_is_transient() {
    let acct = account();
    emulator::shared()
        .inject_fault(&fault(
            &acct,
            "DescribeAutoScalingGroups",
            500,
            "InternalFailure",
            10,
        ))
        .unwrap();
    let err = AutoScalingAdapter::new(settings(&acct, Some(3)))
        .groups_tagged(REGION, "k", "v")
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(calls(&acct, "DescribeAutoScalingGroups"), 3);
}

#[tokio::test]
async fn creating_what_exists_is_already_exists_and_deleting_what_is_gone_is_not_found() {
    let acct = account();
    let s = settings(&acct, None);
    let ec2 = Ec2Adapter::new(s.clone());
    let spec = LaunchTemplateSpec {
        name: "t".into(),
        image_id: "ami-12c6146b".into(),
        instance_type: "t2.large".into(),
        storage_gb: 40,
        security_group_ids: vec![],
        instance_profile: None,
        user_data: "#!/bin/bash".into(),
        tags: vec![("LaunchedBy".into(), "Okera".into())],
    };
    let t = ec2.create_launch_template(REGION, &spec).await.unwrap();
    assert_eq!(
        ec2.create_launch_template(REGION, &spec).await.unwrap_err().kind,
        CloudErrorKind::AlreadyExists
    );
    let subnets = ec2
        .subnets(REGION, &ec2.default_vpc(REGION).await.unwrap().unwrap().id)
        .await
        .unwrap();
    let asg = AutoScalingAdapter::new(s);
    let group = GroupSpec {
        name: "g".into(),
        launch_template_id: t.id.clone(),
        min: 1,
        max: 1,
        desired: 1,
        subnet_ids: subnets,
        tags: vec![("LaunchedBy".into(), "Okera".into())],
        hooks: vec![],
    };
    asg.create_group(REGION, &group).await.unwrap();
    // Real AWS refuses a second group of the same name; the emulator plugin makes moto agree.
    assert_eq!(
        asg.create_group(REGION, &group).await.unwrap_err().kind,
        CloudErrorKind::AlreadyExists
    );
    ec2.delete_launch_template(REGION, &t.id).await.unwrap();
    assert_eq!(
        ec2.delete_launch_template(REGION, &t.id).await.unwrap_err().kind,
        CloudErrorKind::NotFound
    );
}
