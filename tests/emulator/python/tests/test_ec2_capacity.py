"""EC2 capacity shortages (plugin ``ec2_capacity``): RunInstances and Auto
Scaling groups when an instance type runs out, driven with boto3."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import client, control, fresh_account

REGION = "us-east-1"
TYPE = "t2.large"


def set_capacity(endpoint: str, account: str, available: int | None, instance_type: str = TYPE) -> dict[str, Any]:
    status, body = control(
        endpoint,
        "POST",
        "ec2/capacity",
        {"account": account, "region": REGION, "instance_type": instance_type, "available": available},
    )
    assert status == 200, body
    return dict(body)


def running(ec2: Any, instance_type: str = TYPE) -> list[str]:
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "instance-type", "Values": [instance_type]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    return sorted(i["InstanceId"] for r in reservations for i in r["Instances"])


class Group:
    """A fresh account with a launch template of TYPE and an Auto Scaling group ``g`` (desired 0)."""

    def __init__(self, endpoint: str, hooks: bool = False) -> None:
        self.endpoint = endpoint
        self.account = fresh_account()
        self.ec2 = client(endpoint, "ec2", self.account, REGION)
        self.asg = client(endpoint, "autoscaling", self.account, REGION)
        self.ec2.create_launch_template(
            LaunchTemplateName="dm-lt", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": TYPE}
        )
        extra: dict[str, Any] = {}
        if hooks:
            extra["LifecycleHookSpecificationList"] = [
                {
                    "LifecycleHookName": "boot",
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                    "HeartbeatTimeout": 300,
                    "DefaultResult": "CONTINUE",
                }
            ]
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName="g",
            MinSize=0,
            MaxSize=5,
            DesiredCapacity=0,
            LaunchTemplate={"LaunchTemplateName": "dm-lt", "Version": "$Latest"},
            AvailabilityZones=["us-east-1a"],
            **extra,
        )

    def instances(self) -> list[tuple[str, str]]:
        group = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["g"])["AutoScalingGroups"][0]
        return sorted((i["InstanceId"], i["LifecycleState"]) for i in group["Instances"])

    def activities(self) -> list[dict[str, Any]]:
        return list(self.asg.describe_scaling_activities(AutoScalingGroupName="g")["Activities"])


def test_run_instances_beyond_the_capacity_is_insufficient_instance_capacity(endpoint: str) -> None:
    account = fresh_account()
    ec2 = client(endpoint, "ec2", account, REGION)
    assert set_capacity(endpoint, account, 2) == {
        "account": account,
        "region": REGION,
        "instance_type": TYPE,
        "available": 2,
        "in_use": 0,
    }
    ec2.run_instances(ImageId="ami-12c6146b", InstanceType=TYPE, MinCount=1, MaxCount=1)
    with pytest.raises(ClientError) as caught:
        ec2.run_instances(
            ImageId="ami-12c6146b",
            InstanceType=TYPE,
            MinCount=2,
            MaxCount=2,
            Placement={"AvailabilityZone": "us-east-1b"},
        )
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert response["Error"]["Code"] == "InsufficientInstanceCapacity"
    assert response["Error"]["Message"].startswith(
        "We currently do not have sufficient t2.large capacity in the Availability Zone you requested "
        "(us-east-1b). Our system will be working on provisioning additional capacity. You can currently get "
        "t2.large capacity by not specifying an Availability Zone in your request or choosing us-east-1a, "
    )
    assert len(running(ec2)) == 1, "nothing launched"
    # Other types, other regions and other accounts are not limited.
    ec2.run_instances(ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=3, MaxCount=3)
    client(endpoint, "ec2", account, "us-west-2").run_instances(
        ImageId="ami-12c6146b", InstanceType=TYPE, MinCount=3, MaxCount=3
    )
    ec2.run_instances(ImageId="ami-12c6146b", InstanceType=TYPE, MinCount=1, MaxCount=1)
    assert len(running(ec2)) == 2
    # A terminated instance frees its capacity; a launch template's type counts.
    ec2.terminate_instances(InstanceIds=running(ec2)[:1])
    ec2.create_launch_template(LaunchTemplateName="big", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": TYPE})
    ec2.run_instances(LaunchTemplate={"LaunchTemplateName": "big"}, MinCount=1, MaxCount=1)
    with pytest.raises(ClientError) as caught:
        ec2.run_instances(LaunchTemplate={"LaunchTemplateName": "big"}, MinCount=1, MaxCount=1)
    assert caught.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"

    status, body = control(endpoint, "GET", f"ec2/capacity?account={account}")
    assert (status, body) == (
        200,
        {"limits": [{"account": account, "region": REGION, "instance_type": TYPE, "available": 2, "in_use": 2}]},
    )
    set_capacity(endpoint, account, None)
    ec2.run_instances(ImageId="ami-12c6146b", InstanceType=TYPE, MinCount=3, MaxCount=3)
    assert control(endpoint, "GET", f"ec2/capacity?account={account}")[1] == {"limits": []}


def test_a_group_launches_what_fits_and_the_rest_when_capacity_returns(endpoint: str) -> None:
    group = Group(endpoint)
    set_capacity(endpoint, group.account, 1)
    group.asg.set_desired_capacity(AutoScalingGroupName="g", DesiredCapacity=3)
    described = group.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["g"])["AutoScalingGroups"][0]
    assert described["DesiredCapacity"] == 3
    assert [state for _, state in group.instances()] == ["InService"]
    activities = group.activities()
    assert [a["StatusCode"] for a in activities] == ["Failed", "Successful"]
    failed = activities[0]
    assert failed["StatusMessage"].startswith(
        "Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have "
        "sufficient t2.large capacity in the Availability Zone you requested (us-east-1a)."
    )
    assert failed["StatusMessage"].endswith("Launching EC2 instance failed.")
    assert failed["Description"].startswith("Launching a new EC2 instance.  Status Reason: We currently")
    assert activities[1]["Description"] == f"Launching a new EC2 instance: {group.instances()[0][0]}"

    # No capacity yet: requests do not retry (nothing more recorded).
    group.asg.describe_auto_scaling_groups()
    assert len(group.activities()) == 2

    # Raised: the next Auto Scaling request launches one more, and records the rest as failed again.
    set_capacity(endpoint, group.account, 2)
    assert len(running(group.ec2)) == 1, "nothing happens before Auto Scaling is asked"
    assert len(group.instances()) == 2
    assert [a["StatusCode"] for a in group.activities()] == ["Failed", "Successful", "Failed", "Successful"]
    # Lifted: all of it.
    set_capacity(endpoint, group.account, None)
    assert [state for _, state in group.instances()] == ["InService"] * 3
    assert len(running(group.ec2)) == 3
    # Newest first, in pages.
    page = group.asg.describe_scaling_activities(AutoScalingGroupName="g", MaxRecords=4)
    assert [a["StatusCode"] for a in page["Activities"]] == ["Successful", "Failed", "Successful", "Failed"]
    rest = group.asg.describe_scaling_activities(AutoScalingGroupName="g", MaxRecords=4, NextToken=page["NextToken"])
    assert [a["StatusCode"] for a in rest["Activities"]] == ["Successful"]
    assert "NextToken" not in rest


def test_late_launches_still_wait_for_the_launch_hook(endpoint: str) -> None:
    group = Group(endpoint, hooks=True)
    set_capacity(endpoint, group.account, 0)
    group.asg.set_desired_capacity(AutoScalingGroupName="g", DesiredCapacity=2)
    assert group.instances() == []
    assert [a["StatusCode"] for a in group.activities()] == ["Failed"]
    set_capacity(endpoint, group.account, 5)
    instances = group.instances()
    assert [state for _, state in instances] == ["Pending:Wait", "Pending:Wait"]
    assert [a["StatusCode"] for a in group.activities()][:2] == ["MidLifecycleAction", "MidLifecycleAction"]
    status, events = control(endpoint, "GET", f"lifecycle-events?account={group.account}")
    assert status == 200
    assert sorted(e["event"]["detail"]["EC2InstanceId"] for e in events["events"]) == [i for i, _ in instances]
    for instance, _ in instances:
        group.asg.complete_lifecycle_action(
            AutoScalingGroupName="g", LifecycleHookName="boot", InstanceId=instance, LifecycleActionResult="CONTINUE"
        )
    assert [state for _, state in group.instances()] == ["InService", "InService"]
    assert [a["StatusCode"] for a in group.activities()][:2] == ["Successful", "Successful"]


def test_reset_clears_the_limits_and_bad_requests_are_400(endpoint: str) -> None:
    group = Group(endpoint)
    set_capacity(endpoint, group.account, 0)
    group.asg.set_desired_capacity(AutoScalingGroupName="g", DesiredCapacity=1)
    assert group.instances() == []
    assert control(endpoint, "POST", f"reset?account={group.account}")[0] == 200
    assert control(endpoint, "GET", f"ec2/capacity?account={group.account}")[1] == {"limits": []}
    assert [state for _, state in group.instances()] == ["InService"]
    assert [a["StatusCode"] for a in group.activities()] == ["Successful"]
    for body in (
        {"account": "12", "region": REGION, "instance_type": TYPE, "available": 1},
        {"account": group.account, "region": "", "instance_type": TYPE},
        {"account": group.account, "region": REGION, "instance_type": TYPE, "available": -1},
        {"account": group.account, "region": REGION, "instance_type": TYPE, "available": True},
        {"account": group.account, "region": REGION, "instance_type": TYPE, "extra": 1},
    ):
        status, answer = control(endpoint, "POST", "ec2/capacity", body)
        assert status == 400 and answer["error"], body
    assert control(endpoint, "GET", "ec2/capacity")[0] == 400
