"""Lifecycle hooks (plugin ``lifecycle_hooks``) and SetInstanceHealth (plugin ``asg_instance_health``), driven with boto3 against the emulator."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import client, control, fresh_account

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


class Cloud:
    """One fresh account's Auto Scaling and EC2, and the emulator's control routes."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.account = fresh_account()
        self.asg = client(endpoint, "autoscaling", self.account)
        self.ec2 = client(endpoint, "ec2", self.account)
        self.ec2.create_launch_template(
            LaunchTemplateName="dm-test-lt",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
        )

    def create_group(self, name: str = "g", desired: int = 0, max_size: int = 4, **extra: Any) -> None:
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=0,
            MaxSize=max_size,
            DesiredCapacity=desired,
            LaunchTemplate={"LaunchTemplateName": "dm-test-lt", "Version": "$Latest"},
            AvailabilityZones=["us-east-1a"],
            **extra,
        )

    def hook(self, transition: str, name: str = "h", group: str = "g", timeout: int = 300, default: str = "ABANDON", **extra: Any) -> None:
        self.asg.put_lifecycle_hook(
            AutoScalingGroupName=group,
            LifecycleHookName=name,
            LifecycleTransition=transition,
            HeartbeatTimeout=timeout,
            DefaultResult=default,
            **extra,
        )

    def states(self, group: str = "g") -> dict[str, str]:
        found = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        assert len(found) == 1
        return {i["InstanceId"]: i["LifecycleState"] for i in found[0]["Instances"]}

    def desired(self, group: str = "g") -> int:
        return int(self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["DesiredCapacity"])

    def health(self, group: str = "g") -> dict[str, str]:
        found = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        return {i["InstanceId"]: i["HealthStatus"] for i in found[0]["Instances"]}

    def set_health(self, instance_id: str, status: str) -> None:
        self.asg.set_instance_health(InstanceId=instance_id, HealthStatus=status)

    def instance_states(self) -> dict[str, str]:
        found = self.asg.describe_auto_scaling_instances()["AutoScalingInstances"]
        return {i["InstanceId"]: i["LifecycleState"] for i in found}

    def ec2_state(self, instance_id: str) -> str:
        reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return str(reservations[0]["Instances"][0]["State"]["Name"])

    def scale(self, desired: int, group: str = "g") -> None:
        self.asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=desired)

    def complete(self, result: str, hook: str = "h", group: str = "g", **by: str) -> None:
        self.asg.complete_lifecycle_action(
            AutoScalingGroupName=group, LifecycleHookName=hook, LifecycleActionResult=result, **by
        )

    def heartbeat(self, hook: str = "h", group: str = "g", **by: str) -> None:
        self.asg.record_lifecycle_action_heartbeat(AutoScalingGroupName=group, LifecycleHookName=hook, **by)

    def advance(self, seconds: float) -> None:
        status, body = control(self.endpoint, "POST", "clock", {"advance_seconds": seconds, "account": self.account})
        assert status == 200, body

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        status, body = control(self.endpoint, "GET", f"lifecycle-events?account={self.account}&since={since}")
        assert status == 200, body
        return list(body["events"])

    def tokens(self, instance_id: str, transition: str = LAUNCHING) -> list[str]:
        return [
            e["event"]["detail"]["LifecycleActionToken"]
            for e in self.events()
            if e["event"]["detail"]["EC2InstanceId"] == instance_id
            and e["event"]["detail"]["LifecycleTransition"] == transition
        ]


@pytest.fixture
def cloud(endpoint: str) -> Cloud:
    return Cloud(endpoint)


def only(states: dict[str, str]) -> str:
    assert len(states) == 1, states
    return next(iter(states))


def validation_error(caught: pytest.ExceptionInfo[ClientError]) -> str:
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "ValidationError"
    assert response["Error"]["Type"] == "Sender"
    return str(response["Error"]["Message"])


# ---------------------------------------------------------------------------
# Launch hooks


def test_launch_hook_holds_new_instances_in_pending_wait(cloud: Cloud) -> None:
    cloud.create_group(desired=0)
    cloud.hook(LAUNCHING)
    cloud.scale(2)
    states = cloud.states()
    assert sorted(states.values()) == ["Pending:Wait", "Pending:Wait"]
    assert cloud.instance_states() == states
    for instance_id in states:
        assert cloud.ec2_state(instance_id) == "running"
    # Waiting instances count toward the capacity: nothing more is launched.
    cloud.scale(2)
    cloud.asg.update_auto_scaling_group(AutoScalingGroupName="g", MaxSize=5)
    assert cloud.states() == states
    # Scale-out adds one more waiting instance.
    cloud.scale(3)
    after = cloud.states()
    assert len(after) == 3 and set(after.values()) == {"Pending:Wait"}


def test_hooks_given_at_create_hold_the_first_instances(cloud: Cloud) -> None:
    cloud.create_group(
        desired=1,
        LifecycleHookSpecificationList=[
            {
                "LifecycleHookName": "boot",
                "LifecycleTransition": LAUNCHING,
                "HeartbeatTimeout": 120,
                "DefaultResult": "CONTINUE",
                "NotificationMetadata": '{"cluster": "c1"}',
            }
        ],
    )
    instance_id = only(cloud.states())
    assert cloud.states()[instance_id] == "Pending:Wait"
    (hook,) = cloud.asg.describe_lifecycle_hooks(AutoScalingGroupName="g")["LifecycleHooks"]
    assert hook["LifecycleHookName"] == "boot"
    assert hook["HeartbeatTimeout"] == 120
    assert hook["GlobalTimeout"] == 12000
    assert hook["DefaultResult"] == "CONTINUE"
    assert hook["NotificationMetadata"] == '{"cluster": "c1"}'
    (event,) = cloud.events()
    assert event["event"]["detail"]["NotificationMetadata"] == '{"cluster": "c1"}'
    cloud.complete("CONTINUE", hook="boot", InstanceId=instance_id)
    assert cloud.states() == {instance_id: "InService"}


def test_continue_puts_the_instance_in_service(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING)
    cloud.scale(2)
    first, second = sorted(cloud.states())
    (token,) = cloud.tokens(first)
    cloud.complete("CONTINUE", LifecycleActionToken=token)
    assert cloud.states() == {first: "InService", second: "Pending:Wait"}
    cloud.complete("CONTINUE", InstanceId=second)
    assert cloud.states() == {first: "InService", second: "InService"}
    assert cloud.instance_states() == {first: "InService", second: "InService"}
    # Completed actions are no longer active.
    with pytest.raises(ClientError) as caught:
        cloud.complete("CONTINUE", LifecycleActionToken=token)
    assert validation_error(caught) == f"No active Lifecycle Action found with token {token}"
    cloud.scale(2)
    assert set(cloud.states()) == {first, second}


def test_abandon_terminates_and_replaces_the_instance(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING)
    cloud.scale(1)
    old = only(cloud.states())
    cloud.complete("ABANDON", InstanceId=old)
    states = cloud.states()
    new = only(states)
    assert new != old
    assert states[new] == "Pending:Wait"
    assert cloud.ec2_state(old) == "terminated"
    assert cloud.ec2_state(new) == "running"
    assert cloud.desired() == 1
    assert [e["event"]["detail"]["EC2InstanceId"] for e in cloud.events()] == [old, new]
    cloud.complete("CONTINUE", InstanceId=new)
    assert cloud.states() == {new: "InService"}


def test_every_launch_hook_must_continue(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING, name="a")
    cloud.hook(LAUNCHING, name="b")
    cloud.scale(1)
    instance_id = only(cloud.states())
    assert len(cloud.tokens(instance_id)) == 2
    cloud.complete("CONTINUE", hook="a", InstanceId=instance_id)
    assert cloud.states() == {instance_id: "Pending:Wait"}
    with pytest.raises(ClientError) as caught:
        cloud.complete("CONTINUE", hook="a", InstanceId=instance_id)
    assert validation_error(caught) == f"No active Lifecycle Action found with instance ID {instance_id}"
    cloud.complete("CONTINUE", hook="b", InstanceId=instance_id)
    assert cloud.states() == {instance_id: "InService"}


# ---------------------------------------------------------------------------
# Timeouts, heartbeats and the clock


def test_timeout_applies_the_default_result_continue(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING, timeout=60, default="CONTINUE")
    cloud.scale(1)
    instance_id = only(cloud.states())
    cloud.advance(59)
    assert cloud.states() == {instance_id: "Pending:Wait"}
    cloud.advance(2)
    assert cloud.states() == {instance_id: "InService"}
    with pytest.raises(ClientError) as caught:
        cloud.heartbeat(InstanceId=instance_id)
    validation_error(caught)


def test_timeout_applies_the_default_result_abandon(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING, timeout=30, default="ABANDON")
    cloud.scale(1)
    old = only(cloud.states())
    cloud.advance(31)
    # The events route settles expired actions too (the replacement's event is there).
    events = cloud.events()
    assert len(events) == 2
    new = events[1]["event"]["detail"]["EC2InstanceId"]
    assert cloud.states() == {new: "Pending:Wait"}
    assert cloud.ec2_state(old) == "terminated"


def test_heartbeat_restarts_the_timeout(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING, timeout=60, default="ABANDON")
    cloud.scale(1)
    instance_id = only(cloud.states())
    (token,) = cloud.tokens(instance_id)
    cloud.advance(50)
    cloud.heartbeat(LifecycleActionToken=token)
    cloud.advance(50)  # 100 s since launch, 50 s since the heartbeat
    cloud.heartbeat(InstanceId=instance_id)
    cloud.advance(59)
    assert cloud.states() == {instance_id: "Pending:Wait"}
    cloud.advance(2)
    assert instance_id not in cloud.states()
    assert cloud.ec2_state(instance_id) == "terminated"


def test_heartbeats_cannot_pass_the_global_timeout(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING, timeout=30, default="CONTINUE")  # global timeout: 3000 s
    cloud.scale(1)
    instance_id = only(cloud.states())
    for _ in range(103):  # 2987 s
        cloud.advance(29)
        cloud.heartbeat(InstanceId=instance_id)
    assert cloud.states() == {instance_id: "Pending:Wait"}
    cloud.advance(14)
    assert cloud.states() == {instance_id: "InService"}


def test_the_clock_of_one_account_spares_others(endpoint: str) -> None:
    moved, other = Cloud(endpoint), Cloud(endpoint)
    for cloud in (moved, other):
        cloud.create_group()
        cloud.hook(LAUNCHING, timeout=30, default="CONTINUE")
        cloud.scale(1)
    moved.advance(31)
    assert set(moved.states().values()) == {"InService"}
    assert set(other.states().values()) == {"Pending:Wait"}
    _, own = control(endpoint, "GET", f"clock?account={moved.account}")
    _, base = control(endpoint, "GET", "clock")
    assert own["offset"] - base["offset"] == 31


def test_bad_clock_requests_are_rejected(endpoint: str) -> None:
    for bad in (
        {"advance_seconds": -1},
        {"advance_seconds": "5"},
        {"advance_seconds": True},
        {"advance_seconds": 1, "account": "12"},
        {"advance_seconds": 1, "extra": 1},
        {},
        [],
    ):
        status, body = control(endpoint, "POST", "clock", bad)
        assert status == 400, bad
        assert "error" in body
    assert control(endpoint, "GET", "lifecycle-events")[0] == 400
    assert control(endpoint, "GET", "lifecycle-events?account=12")[0] == 400
    assert control(endpoint, "GET", f"lifecycle-events?account={fresh_account()}&since=x")[0] == 400


# ---------------------------------------------------------------------------
# Terminate hooks


def test_terminate_hook_holds_scale_in_until_continue(cloud: Cloud) -> None:
    cloud.create_group(desired=2)
    cloud.hook(TERMINATING, name="drain")
    before = cloud.states()
    assert set(before.values()) == {"InService"}
    cloud.scale(1)
    states = cloud.states()
    assert set(states) == set(before)  # still listed
    leaving = [i for i, s in states.items() if s == "Terminating:Wait"]
    staying = [i for i, s in states.items() if s == "InService"]
    assert len(leaving) == 1 and len(staying) == 1
    (victim,) = leaving
    assert cloud.ec2_state(victim) == "running"
    tags = cloud.ec2.describe_instances(InstanceIds=[victim])["Reservations"][0]["Instances"][0]["Tags"]
    assert {"Key": "aws:autoscaling:groupName", "Value": "g"} in tags
    assert cloud.instance_states()[victim] == "Terminating:Wait"
    # Not counted, not picked again: the capacity is met.
    cloud.scale(1)
    assert cloud.states() == states
    (event,) = cloud.events()
    detail = event["event"]["detail"]
    assert event["event"]["detail-type"] == "EC2 Instance-terminate Lifecycle Action"
    assert (detail["Origin"], detail["Destination"]) == ("AutoScalingGroup", "EC2")
    assert detail["LifecycleHookName"] == "drain"
    cloud.complete("CONTINUE", hook="drain", LifecycleActionToken=detail["LifecycleActionToken"])
    assert cloud.states() == {staying[0]: "InService"}
    assert cloud.ec2_state(victim) == "terminated"


def test_terminate_in_group_waits_and_replaces_then_abandon_terminates(cloud: Cloud) -> None:
    cloud.create_group(desired=1)
    cloud.hook(TERMINATING, timeout=600)
    old = only(cloud.states())
    activity = cloud.asg.terminate_instance_in_auto_scaling_group(
        InstanceId=old, ShouldDecrementDesiredCapacity=False
    )["Activity"]
    assert old in activity["Description"]
    states = cloud.states()
    assert states[old] == "Terminating:Wait"
    (new,) = [i for i in states if i != old]
    assert states[new] == "InService"  # the replacement (no launch hook)
    assert cloud.ec2_state(old) == "running"
    cloud.complete("ABANDON", InstanceId=old)
    assert cloud.states() == {new: "InService"}
    assert cloud.ec2_state(old) == "terminated"


def test_terminate_in_group_with_decrement_and_timeout(cloud: Cloud) -> None:
    cloud.create_group(desired=2)
    cloud.hook(TERMINATING, timeout=60, default="CONTINUE")
    victim, keeper = sorted(cloud.states())
    cloud.asg.terminate_instance_in_auto_scaling_group(InstanceId=victim, ShouldDecrementDesiredCapacity=True)
    assert cloud.desired() == 1
    assert cloud.states() == {victim: "Terminating:Wait", keeper: "InService"}
    cloud.advance(61)
    assert cloud.states() == {keeper: "InService"}
    assert cloud.ec2_state(victim) == "terminated"


def test_launch_and_terminate_hooks_together(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING, name="boot")
    cloud.hook(TERMINATING, name="drain")
    cloud.scale(2)
    first, second = sorted(cloud.states())
    cloud.complete("CONTINUE", hook="boot", InstanceId=first)
    # Scale-in may pick a waiting instance: its launch action ends, the terminate hook holds it.
    cloud.scale(0)
    assert set(cloud.states().values()) == {"Terminating:Wait"}
    with pytest.raises(ClientError):
        cloud.complete("CONTINUE", hook="boot", InstanceId=second)
    for instance_id in (first, second):
        cloud.complete("CONTINUE", hook="drain", InstanceId=instance_id)
    assert cloud.states() == {}
    assert {cloud.ec2_state(first), cloud.ec2_state(second)} == {"terminated"}


# ---------------------------------------------------------------------------
# Errors, groups without hooks, other paths


def test_unknown_actions_are_validation_errors(cloud: Cloud) -> None:
    cloud.create_group(desired=1)
    cloud.hook(LAUNCHING)
    in_service = only(cloud.states())
    token = str(uuid.uuid4())
    with pytest.raises(ClientError) as caught:
        cloud.complete("CONTINUE", LifecycleActionToken=token)
    assert validation_error(caught) == f"No active Lifecycle Action found with token {token}"
    with pytest.raises(ClientError) as caught:
        cloud.complete("ABANDON", InstanceId=in_service)
    assert validation_error(caught) == f"No active Lifecycle Action found with instance ID {in_service}"
    with pytest.raises(ClientError) as caught:
        cloud.heartbeat(LifecycleActionToken=token)
    assert validation_error(caught) == f"No active Lifecycle Action found with token {token}"
    with pytest.raises(ClientError) as caught:
        cloud.heartbeat(InstanceId="i-0123456789abcdef0")
    assert validation_error(caught) == "No active Lifecycle Action found with instance ID i-0123456789abcdef0"
    # The right token with another hook or group name is not found either.
    cloud.scale(2)
    waiting = [i for i, s in cloud.states().items() if s == "Pending:Wait"][0]
    (real,) = cloud.tokens(waiting)
    for hook, group in (("other", "g"), ("h", "other")):
        with pytest.raises(ClientError) as caught:
            cloud.complete("CONTINUE", hook=hook, group=group, LifecycleActionToken=real)
        validation_error(caught)
    with pytest.raises(ClientError) as caught:
        cloud.complete("MAYBE", LifecycleActionToken=real)
    validation_error(caught)
    assert cloud.states()[waiting] == "Pending:Wait"


def test_hook_parameters_are_validated(cloud: Cloud) -> None:
    cloud.create_group()
    for kwargs in (
        {"HeartbeatTimeout": 29},
        {"HeartbeatTimeout": 7201},
        {"DefaultResult": "MAYBE"},
        {"LifecycleTransition": "autoscaling:EC2_INSTANCE_REBOOTING"},
    ):
        params = {"HeartbeatTimeout": 60, "DefaultResult": "CONTINUE", "LifecycleTransition": LAUNCHING, **kwargs}
        with pytest.raises(ClientError) as caught:
            cloud.asg.put_lifecycle_hook(AutoScalingGroupName="g", LifecycleHookName="h", **params)
        validation_error(caught)
    with pytest.raises(ClientError) as caught:
        cloud.asg.put_lifecycle_hook(AutoScalingGroupName="g", LifecycleHookName="h")
    validation_error(caught)  # a new hook needs its transition
    assert cloud.asg.describe_lifecycle_hooks(AutoScalingGroupName="g")["LifecycleHooks"] == []
    # Updating a hook keeps what is not given.
    cloud.hook(LAUNCHING, timeout=45, default="CONTINUE", NotificationMetadata="m")
    cloud.asg.put_lifecycle_hook(AutoScalingGroupName="g", LifecycleHookName="h", HeartbeatTimeout=90)
    (hook,) = cloud.asg.describe_lifecycle_hooks(AutoScalingGroupName="g")["LifecycleHooks"]
    assert (hook["LifecycleTransition"], hook["HeartbeatTimeout"], hook["DefaultResult"]) == (LAUNCHING, 90, "CONTINUE")
    assert hook["NotificationMetadata"] == "m"
    # A bad hook spec at create creates neither the group nor the hook.
    with pytest.raises(ClientError) as caught:
        cloud.create_group(
            name="bad",
            desired=1,
            LifecycleHookSpecificationList=[
                {"LifecycleHookName": "x", "LifecycleTransition": LAUNCHING, "HeartbeatTimeout": 5}
            ],
        )
    validation_error(caught)
    assert cloud.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["bad"])["AutoScalingGroups"] == []
    assert cloud.asg.describe_lifecycle_hooks(AutoScalingGroupName="bad")["LifecycleHooks"] == []


def test_groups_without_hooks_behave_as_before(cloud: Cloud) -> None:
    cloud.create_group(desired=2)
    states = cloud.states()
    assert set(states.values()) == {"InService"}
    cloud.scale(3)
    assert len(cloud.states()) == 3 and set(cloud.states().values()) == {"InService"}
    cloud.scale(1)
    remaining = cloud.states()
    assert len(remaining) == 1
    for instance_id in set(states) - set(remaining):
        assert cloud.ec2_state(instance_id) == "terminated"
    victim = only(remaining)
    cloud.asg.terminate_instance_in_auto_scaling_group(InstanceId=victim, ShouldDecrementDesiredCapacity=False)
    replacement = only(cloud.states())
    assert replacement != victim and cloud.states()[replacement] == "InService"
    assert cloud.ec2_state(victim) == "terminated"
    with pytest.raises(ClientError) as caught:
        cloud.complete("CONTINUE", InstanceId=replacement)
    validation_error(caught)  # not moto's 500
    assert cloud.events() == []


def test_ec2_terminate_of_a_waiting_instance_replaces_it(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING)
    cloud.scale(1)
    old = only(cloud.states())
    cloud.ec2.terminate_instances(InstanceIds=[old])
    new = only(cloud.states())
    assert new != old
    assert cloud.states() == {new: "Pending:Wait"}
    with pytest.raises(ClientError):
        cloud.complete("CONTINUE", InstanceId=old)


def test_delete_group_drops_waits_hooks_and_instances(cloud: Cloud) -> None:
    cloud.create_group(desired=1)
    cloud.hook(TERMINATING, name="drain")
    cloud.hook(LAUNCHING, name="boot")
    cloud.scale(2)
    instances = set(cloud.states())
    assert sorted(cloud.states().values()) == ["InService", "Pending:Wait"]
    cloud.scale(1)
    assert "Terminating:Wait" in cloud.states().values()
    cloud.asg.delete_auto_scaling_group(AutoScalingGroupName="g", ForceDelete=True)
    for instance_id in instances:
        assert cloud.ec2_state(instance_id) == "terminated"
    cloud.create_group(desired=1)  # same name: no hooks inherited
    assert cloud.asg.describe_lifecycle_hooks(AutoScalingGroupName="g")["LifecycleHooks"] == []
    assert set(cloud.states().values()) == {"InService"}


# ---------------------------------------------------------------------------
# Events


def test_events_have_the_eventbridge_shape_and_sequence(cloud: Cloud) -> None:
    cloud.create_group()
    cloud.hook(LAUNCHING, name="boot", timeout=60)
    cloud.hook(TERMINATING, name="drain", timeout=60, NotificationMetadata="drain me")
    cloud.scale(1)
    instance_id = only(cloud.states())
    cloud.complete("CONTINUE", hook="boot", InstanceId=instance_id)
    cloud.scale(0)
    events = cloud.events()
    assert [e["seq"] for e in events] == [1, 2]
    group_arn = cloud.asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["AutoScalingGroupARN"]
    for recorded, (detail_type, transition, hook, origin, destination) in zip(
        events,
        (
            ("EC2 Instance-launch Lifecycle Action", LAUNCHING, "boot", "EC2", "AutoScalingGroup"),
            ("EC2 Instance-terminate Lifecycle Action", TERMINATING, "drain", "AutoScalingGroup", "EC2"),
        ),
    ):
        event = recorded["event"]
        assert json.loads(recorded["json"]) == event
        assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
        assert event["version"] == "0"
        assert str(uuid.UUID(event["id"])) == event["id"]
        assert event["detail-type"] == detail_type
        assert event["source"] == "aws.autoscaling"
        assert event["account"] == cloud.account
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
        assert event["region"] == "us-east-1"
        assert event["resources"] == [group_arn]
        detail = event["detail"]
        assert str(uuid.UUID(detail["LifecycleActionToken"])) == detail["LifecycleActionToken"]
        assert detail["AutoScalingGroupName"] == "g"
        assert detail["LifecycleHookName"] == hook
        assert detail["EC2InstanceId"] == instance_id
        assert detail["LifecycleTransition"] == transition
        assert (detail["Origin"], detail["Destination"]) == (origin, destination)
    assert "NotificationMetadata" not in events[0]["event"]["detail"]
    assert events[1]["event"]["detail"]["NotificationMetadata"] == "drain me"
    assert cloud.events(since=1) == events[1:]
    assert cloud.events(since=2) == []
    # Other accounts see nothing of it.
    status, body = control(cloud.endpoint, "GET", f"lifecycle-events?account={fresh_account()}")
    assert (status, body) == (200, {"events": []})


# ---------------------------------------------------------------------------
# SetInstanceHealth (plugin ``asg_instance_health``)


def test_unhealthy_instance_waits_to_terminate_and_its_replacement_waits_to_launch(cloud: Cloud) -> None:
    cloud.create_group(desired=2)
    cloud.hook(LAUNCHING, name="boot")
    cloud.hook(TERMINATING, name="drain")
    victim, keeper = sorted(cloud.states())
    cloud.set_health(victim, "Unhealthy")
    states = cloud.states()
    (new,) = set(states) - {victim, keeper}
    assert states == {victim: "Terminating:Wait", keeper: "InService", new: "Pending:Wait"}
    assert cloud.health() == {victim: "Unhealthy", keeper: "Healthy", new: "Healthy"}
    assert cloud.desired() == 2
    assert cloud.ec2_state(victim) == "running"
    assert cloud.ec2_state(new) == "running"
    events = [e["event"] for e in cloud.events()]
    assert [(e["detail-type"], e["detail"]["LifecycleHookName"], e["detail"]["EC2InstanceId"]) for e in events] == [
        ("EC2 Instance-terminate Lifecycle Action", "drain", victim),
        ("EC2 Instance-launch Lifecycle Action", "boot", new),
    ]
    assert [e["detail"]["LifecycleTransition"] for e in events] == [TERMINATING, LAUNCHING]
    # CONTINUE finishes both.
    cloud.complete("CONTINUE", hook="drain", LifecycleActionToken=events[0]["detail"]["LifecycleActionToken"])
    cloud.complete("CONTINUE", hook="boot", LifecycleActionToken=events[1]["detail"]["LifecycleActionToken"])
    assert cloud.states() == {keeper: "InService", new: "InService"}
    assert cloud.health() == {keeper: "Healthy", new: "Healthy"}
    assert cloud.ec2_state(victim) == "terminated"
    assert cloud.desired() == 2
    assert len(cloud.events()) == 2  # nothing launched or held again
    with pytest.raises(ClientError) as caught:
        cloud.complete("CONTINUE", hook="drain", InstanceId=victim)
    validation_error(caught)


def test_unhealthy_instance_of_a_group_without_hooks_is_replaced_at_once(cloud: Cloud) -> None:
    cloud.create_group(desired=2)
    victim, keeper = sorted(cloud.states())
    cloud.set_health(keeper, "Healthy")  # only stores the flag
    assert cloud.health() == {victim: "Healthy", keeper: "Healthy"}
    cloud.set_health(victim, "Unhealthy")
    states = cloud.states()
    assert victim not in states and keeper in states
    assert len(states) == 2 and set(states.values()) == {"InService"}
    assert set(cloud.health().values()) == {"Healthy"}
    assert cloud.desired() == 2
    assert cloud.ec2_state(victim) == "terminated"
    assert cloud.events() == []
    with pytest.raises(ClientError) as caught:
        cloud.set_health(victim, "Unhealthy")  # no longer in the group
    validation_error(caught)


def test_unhealthy_instance_with_only_a_launch_hook_terminates_at_once(cloud: Cloud) -> None:
    cloud.create_group(desired=1)
    cloud.hook(LAUNCHING)
    victim = only(cloud.states())
    cloud.set_health(victim, "Unhealthy")
    new = only(cloud.states())
    assert new != victim and cloud.states() == {new: "Pending:Wait"}
    assert cloud.ec2_state(victim) == "terminated"
    assert [e["event"]["detail"]["EC2InstanceId"] for e in cloud.events()] == [new]
    # A waiting instance marked unhealthy is replaced too (its launch action ends).
    cloud.set_health(new, "Unhealthy")
    newer = only(cloud.states())
    assert newer not in (victim, new) and cloud.states() == {newer: "Pending:Wait"}
    with pytest.raises(ClientError):
        cloud.complete("CONTINUE", InstanceId=new)
    assert cloud.desired() == 1


def test_set_instance_health_again_while_terminating_is_a_no_op(cloud: Cloud) -> None:
    cloud.create_group(desired=1)
    cloud.hook(TERMINATING, timeout=60, default="CONTINUE")
    victim = only(cloud.states())
    cloud.set_health(victim, "Unhealthy")
    states = cloud.states()
    (replacement,) = set(states) - {victim}
    assert states == {victim: "Terminating:Wait", replacement: "InService"}
    for status in ("Unhealthy", "Unhealthy", "Healthy"):
        cloud.set_health(victim, status)
        assert cloud.states() == states
        assert cloud.health() == {victim: "Unhealthy", replacement: "Healthy"}
    assert len(cloud.events()) == 1
    assert cloud.desired() == 1
    cloud.advance(61)  # the hook's default result: CONTINUE
    assert cloud.states() == {replacement: "InService"}
    assert cloud.ec2_state(victim) == "terminated"


def test_set_instance_health_of_an_unknown_instance_is_a_validation_error(cloud: Cloud) -> None:
    cloud.create_group(desired=1)
    member = only(cloud.states())
    loose = cloud.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    for instance_id in ("i-0123456789abcdef0", loose):  # unknown to EC2; in no group
        for status in ("Unhealthy", "Healthy"):
            with pytest.raises(ClientError) as caught:
                cloud.set_health(instance_id, status)
            assert validation_error(caught) == (
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            )
    with pytest.raises(ClientError) as caught:
        cloud.set_health(member, "Broken")
    assert validation_error(caught) == "Valid instance health states are: [Healthy, Unhealthy]"
    assert cloud.states() == {member: "InService"}
    assert cloud.ec2_state(loose) == "running"
