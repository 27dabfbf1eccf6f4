"""EC2 capacity shortages: ``InsufficientInstanceCapacity``, and Auto Scaling groups that stay short.

On AWS an instance type can run out in a region (or an Availability Zone):
``RunInstances`` then fails with HTTP 500 ``InsufficientInstanceCapacity``
and launches nothing, and an Auto Scaling group launches what it can, stays
below its desired capacity, records a failed scaling activity and retries
later.  moto 5.2.5 always has capacity, and ``DescribeScalingActivities``
answers an empty list whatever happened.  With this plugin:

* A test sets how many instances of a type may be pending or running in an
  account and region (``POST /_dm/ec2/capacity``, below); by default there is
  no limit (moto's behaviour).
* ``RunInstances`` (and every other launch through moto's
  ``EC2Backend.run_instances`` outside Auto Scaling) of a type with a limit
  launches only if the instances moto would launch (moto launches
  ``MinCount``) all fit: fewer than the limit of that type must then be
  ``pending`` or ``running`` in the account and region, counting the new
  ones.  Otherwise it is HTTP 500 ``InsufficientInstanceCapacity`` in EC2's
  error XML, "We currently do not have sufficient t2.large capacity in the
  Availability Zone you requested (us-east-1a). Our system will be working on
  provisioning additional capacity. You can currently get t2.large capacity by
  not specifying an Availability Zone in your request or choosing us-east-1b,
  us-east-1c, ..." (AWS's wording; the zone is ``Placement.AvailabilityZone``,
  else the region's first), and nothing is launched.  The type is
  ``InstanceType``, else the launch template's.
* An Auto Scaling group (moto launches its instances internally, in
  ``FakeAutoScalingGroup.replace_autoscaling_group_instances``: at create,
  on scale-out, for replacements) launches only as many as fit; it stays
  below its desired capacity, and a ``Failed`` scaling activity is recorded
  (``StatusMessage`` "Could not launch On-Demand Instances.
  InsufficientInstanceCapacity - We currently do not have sufficient … Launching
  EC2 instance failed.", ``Description`` "Launching a new EC2 instance.
  Status Reason: …").  The type is the group's (launch template or launch
  configuration).  When the limit is raised or lifted, or instances of that
  type go away, the group launches the missing instances at the start of the
  next Auto Scaling request of its account and region (lazily, as the other
  plugins settle), through the same path: with a launch lifecycle hook
  (``lifecycle_hooks``) the late instances wait in ``Pending:Wait`` too.
  While no instance fits, requests do not retry (and record nothing more).
* ``DescribeScalingActivities`` (moto: always empty) answers the launch
  activities the emulator records, newest first: one ``Successful`` (or
  ``MidLifecycleAction`` while a launch hook holds the instance) per instance
  a group launched, with ``Description`` "Launching a new EC2 instance:
  i-…", and one ``Failed`` per launch that fell short.  Filters:
  ``AutoScalingGroupName``, ``ActivityIds``; ``MaxRecords`` (default 100) /
  ``NextToken`` page; activities of deleted groups only with
  ``IncludeDeletedGroups``.  Other activities (terminations, standby, ...)
  are not recorded.

Control routes (registered with ``dm_emulator.faults``):

``POST /_dm/ec2/capacity``
    ``{"account": "A", "region": "R", "instance_type": "t2.large",
    "available": N}``: at most N (>= 0) instances of that type pending or
    running in account A and region R from now on; ``"available": null``
    (or absent) removes the limit.  Instances already running stay.
    Answers the entry (below).
``GET /_dm/ec2/capacity?account=A``
    ``{"limits": [{"account", "region", "instance_type", "available",
    "in_use"}, ...]}``: the account's limits (``in_use``: instances of that
    type pending or running there now), sorted by region and type.

``POST /_dm/reset[?account=A]`` also removes the limits and the recorded
scaling activities (of that account).  Groups that are short launch what is
missing at their next Auto Scaling request.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState, autoscaling_backends
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import EC2Backend
from moto.ec2.responses import EC2Response

from . import lifecycle_hooks

DEFAULT_MAX_RECORDS = 100
MAX_RECORDS = 100
_ACCOUNT = re.compile(r"[0-9]{12}")
_MARK = "_dm_ec2_capacity"
_SHORT_ATTR = "_dm_short"  # attribute of a moto FakeAutoScalingGroup: below desired for want of capacity
_ACTIVE_STATES = ("pending", "running")

# Capacity checks and the launches they allow happen under lifecycle_hooks' lock
# (which every Auto Scaling request already holds), so nothing launches in between.
_LOCK = lifecycle_hooks._LOCK
_LIMITS: dict[tuple[str, str, str], int] = {}
# (account, region) -> launch activities, oldest first.
_ACTIVITIES: dict[tuple[str, str], list[LaunchActivity]] = {}
# (account, region) pairs that may have groups short of capacity.
_SHORT: set[tuple[str, str]] = set()
# The group whose launch is under way (its count was already cut to what fits).
_CTX = threading.local()


class InsufficientInstanceCapacity(EC2ClientError):
    code = "InsufficientInstanceCapacity"


def capacity_message(instance_type: str, zone: str, other_zones: list[str]) -> str:
    message = (
        f"We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested "
        f"({zone}). Our system will be working on provisioning additional capacity."
    )
    if other_zones:
        message += (
            f" You can currently get {instance_type} capacity by not specifying an Availability Zone in your "
            f"request or choosing {', '.join(other_zones)}."
        )
    return message


@dataclass
class LaunchActivity:
    activity_id: str
    auto_scaling_group_name: str
    auto_scaling_group_arn: str
    description: str
    cause: str
    start_time: datetime
    end_time: datetime
    details: str
    status_message: str | None = None
    state: InstanceState | None = None  # the launched instance (None: a failed launch)
    progress: int = 100

    @property
    def status_code(self) -> str:
        if self.state is None:
            return "Failed"
        if self.state.lifecycle_state == lifecycle_hooks.PENDING_WAIT:
            return "MidLifecycleAction"
        return "Successful"


def limit_of(account: str, region: str, instance_type: str) -> int | None:
    return _LIMITS.get((account, region, instance_type))


def in_use(ec2: EC2Backend, instance_type: str) -> int:
    return sum(
        1
        for reservation in list(ec2.reservations.values())
        for instance in list(reservation.instances)
        if instance.instance_type == instance_type and instance.state in _ACTIVE_STATES
    )


def _other_zones(ec2: EC2Backend, zone: str) -> list[str]:
    try:
        names = sorted(z.name for z in ec2.describe_availability_zones())
    except Exception:  # noqa: BLE001 - only for the message
        return []
    return [n for n in names if n != zone]


def _zone(ec2: EC2Backend, wanted: str | None) -> str:
    """The zone a launch asked for, else the region's first."""
    if wanted:
        return wanted
    try:
        names = sorted(z.name for z in ec2.describe_availability_zones())
    except Exception:  # noqa: BLE001 - only for the message
        names = []
    return names[0] if names else f"{ec2.region_name}a"


def _instance_type(ec2: EC2Backend, kwargs: dict[str, Any]) -> str:
    instance_type = str(kwargs.get("instance_type") or "m1.small")
    if kwargs.get("launch_template") and kwargs.get("is_instance_type_default"):
        try:
            data = ec2._get_template_from_args(kwargs["launch_template"]).data  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - moto raises the template's error itself
            return instance_type
        instance_type = str(data.get("InstanceType") or instance_type)
    return instance_type


def _timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(account: str, region: str, activity: LaunchActivity) -> None:
    _ACTIVITIES.setdefault((account, region), []).append(activity)


# ---------------------------------------------------------------------------
# Launches


def _launch_for_group(original: Any, group: FakeAutoScalingGroup, count_needed: int, tags: dict[str, str]) -> None:
    account, region = group.account_id, group.region
    ec2 = group.autoscaling_backend.ec2_backend
    instance_type = str(group.instance_type)
    limit = limit_of(account, region, instance_type)
    room = count_needed if limit is None else max(0, limit - in_use(ec2, instance_type))
    launch = min(count_needed, room)
    before = {id(s) for s in group.instance_states}
    capacity_before = len([s for s in group.instance_states if not s.lifecycle_state.startswith("Terminating")])
    if launch > 0:
        saved = getattr(_CTX, "group", None)
        _CTX.group = group
        try:
            original(group, launch, tags)
        finally:
            _CTX.group = saved
    now = utcnow()
    new = [s for s in group.instance_states if id(s) not in before]
    for offset, state in enumerate(new):
        cause = (
            f"At {_timestamp(now)} an instance was started in response to a difference between desired and actual "
            f"capacity, increasing the capacity from {capacity_before + offset} to {capacity_before + offset + 1}."
        )
        details = {"Subnet ID": state.instance.subnet_id or "", "Availability Zone": state.instance.availability_zone or ""}
        _record(
            account,
            region,
            LaunchActivity(
                activity_id=str(uuid.uuid4()),
                auto_scaling_group_name=group.name,
                auto_scaling_group_arn=group.arn,
                description=f"Launching a new EC2 instance: {state.instance.id}",
                cause=cause,
                start_time=now,
                end_time=now,
                details=json.dumps(details),
                state=state,
            ),
        )
    short = launch < count_needed
    setattr(group, _SHORT_ATTR, short)
    if not short:
        return
    _SHORT.add((account, region))
    zone = sorted(group.availability_zones)[0] if group.availability_zones else _zone(ec2, None)
    reason = capacity_message(instance_type, zone, _other_zones(ec2, zone)) + " Launching EC2 instance failed."
    current = capacity_before + len(new)
    cause = (
        f"At {_timestamp(now)} an instance was started in response to a difference between desired and actual "
        f"capacity, increasing the capacity from {current} to {current + count_needed - len(new)}."
    )
    _record(
        account,
        region,
        LaunchActivity(
            activity_id=str(uuid.uuid4()),
            auto_scaling_group_name=group.name,
            auto_scaling_group_arn=group.arn,
            description=f"Launching a new EC2 instance.  Status Reason: {reason}",
            cause=cause,
            start_time=now,
            end_time=now,
            details=json.dumps({"Availability Zone": zone}),
            status_message=f"Could not launch On-Demand Instances. InsufficientInstanceCapacity - {reason}",
        ),
    )


def settle(account: str, region: str) -> None:
    """Launches what short groups are missing, where capacity allows it now."""
    if (account, region) not in _SHORT:
        return
    with _LOCK:
        regional = dict.get(autoscaling_backends, account)
        backend = dict.get(regional, region) if regional else None
        if backend is None:
            _SHORT.discard((account, region))
            return
        still = False
        for group in list(backend.autoscaling_groups.values()):
            if not getattr(group, _SHORT_ATTR, False):
                continue
            instance_type = str(group.instance_type)
            limit = limit_of(account, region, instance_type)
            if limit is not None and in_use(backend.ec2_backend, instance_type) >= limit:
                still = True  # nothing fits yet: no new attempt, no new failed activity
                continue
            setattr(group, _SHORT_ATTR, False)
            group.set_desired_capacity(group.desired_capacity)
            still = still or bool(getattr(group, _SHORT_ATTR, False))
        if not still:
            _SHORT.discard((account, region))


# ---------------------------------------------------------------------------
# Patches of moto


def _patch() -> None:
    original_run = EC2Backend.run_instances
    original_response_run = EC2Response.run_instances
    original_replace = FakeAutoScalingGroup.replace_autoscaling_group_instances
    original_call_action = AutoScalingResponse.call_action

    @functools.wraps(original_run)
    def run_instances(
        self: EC2Backend, image_id: str, count: int, user_data: Any, security_group_names: Any, **kwargs: Any
    ) -> Any:
        if getattr(_CTX, "group", None) is not None:
            return original_run(self, image_id, count, user_data, security_group_names, **kwargs)
        with _LOCK:
            instance_type = _instance_type(self, kwargs)
            limit = limit_of(self.account_id, self.region_name, instance_type)
            if limit is not None and in_use(self, instance_type) + int(count) > limit:
                zone = _zone(self, kwargs.get("placement"))
                raise InsufficientInstanceCapacity(capacity_message(instance_type, zone, _other_zones(self, zone)))
            return original_run(self, image_id, count, user_data, security_group_names, **kwargs)

    @functools.wraps(original_response_run)
    def response_run_instances(self: EC2Response) -> Any:
        try:
            return original_response_run(self)
        except InsufficientInstanceCapacity as err:
            # EC2's error XML, with the 500 AWS answers (moto would say 400).
            status, headers, body = self.serialized(ActionResult(err))
            headers = dict(headers)
            headers["status"] = 500
            return body, headers

    @functools.wraps(original_replace)
    def replace_autoscaling_group_instances(
        self: FakeAutoScalingGroup, count_needed: int, propagated_tags: dict[str, str]
    ) -> None:
        with _LOCK:
            _launch_for_group(original_replace, self, count_needed, propagated_tags)

    @functools.wraps(original_call_action)
    def call_action(self: AutoScalingResponse) -> Any:
        if _SHORT:
            with _LOCK:
                settle(self.current_account, self.region)
        return original_call_action(self)

    def describe_scaling_activities(self: AutoScalingResponse) -> ActionResult:
        from moto.autoscaling.exceptions import ValidationError

        backend = self.autoscaling_backend
        group_name = self._get_param("AutoScalingGroupName")
        ids = set(self._get_param("ActivityIds") or [])
        include_deleted = str(self._get_param("IncludeDeletedGroups") or "false").lower() == "true"
        with _LOCK:
            found = list(reversed(_ACTIVITIES.get((self.current_account, self.region), [])))
        existing = set(backend.autoscaling_groups)
        found = [
            a
            for a in found
            if (not group_name or a.auto_scaling_group_name == group_name)
            and (not ids or a.activity_id in ids)
            and (include_deleted or a.auto_scaling_group_name in existing)
        ]
        max_text = self._get_param("MaxRecords")
        size = max(1, min(int(max_text), MAX_RECORDS)) if max_text else DEFAULT_MAX_RECORDS
        token = self._get_param("NextToken")
        try:
            start = int(token) if token else 0
        except ValueError:
            raise ValidationError(f"Invalid NextToken: {token}") from None
        page = found[start : start + size]
        result: dict[str, Any] = {"Activities": page}
        if start + size < len(found):
            result["NextToken"] = str(start + size)
        return ActionResult(result)

    setattr(run_instances, _MARK, True)
    EC2Backend.run_instances = run_instances  # type: ignore[method-assign]
    EC2Response.run_instances = response_run_instances  # type: ignore[method-assign]
    FakeAutoScalingGroup.replace_autoscaling_group_instances = replace_autoscaling_group_instances  # type: ignore[method-assign]
    AutoScalingResponse.call_action = call_action  # type: ignore[method-assign]
    AutoScalingResponse.describe_scaling_activities = describe_scaling_activities  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# Control routes


def _entry(account: str, region: str, instance_type: str) -> dict[str, Any]:
    from moto.ec2.models import ec2_backends

    regional = dict.get(ec2_backends, account)
    ec2 = dict.get(regional, region) if regional else None
    return {
        "account": account,
        "region": region,
        "instance_type": instance_type,
        "available": limit_of(account, region, instance_type),
        "in_use": in_use(ec2, instance_type) if ec2 is not None else 0,
    }


def _post_capacity(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    data = json.loads(body.decode("utf-8") or "null")
    if not isinstance(data, dict):
        raise ValueError(
            'expected a JSON object like {"account": "123456789012", "region": "us-east-1", '
            '"instance_type": "t2.large", "available": 2}'
        )
    unknown = set(data) - {"account", "region", "instance_type", "available"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    account = data.get("account")
    if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
        raise ValueError("account (12 digits) is required")
    region, instance_type = data.get("region"), data.get("instance_type")
    if not isinstance(region, str) or not region:
        raise ValueError("region must be a non-empty string")
    if not isinstance(instance_type, str) or not instance_type:
        raise ValueError("instance_type must be a non-empty string")
    available = data.get("available")
    if available is not None and (isinstance(available, bool) or not isinstance(available, int) or available < 0):
        raise ValueError("available must be null or an integer >= 0")
    with _LOCK:
        if available is None:
            _LIMITS.pop((account, region, instance_type), None)
        else:
            _LIMITS[(account, region, instance_type)] = available
        return 200, _entry(account, region, instance_type)


def _get_capacity(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    account = params.get("account") or ""
    if not _ACCOUNT.fullmatch(account):
        raise ValueError("account (12 digits) is required")
    with _LOCK:
        keys = sorted(k for k in _LIMITS if k[0] == account)
        return 200, {"limits": [_entry(*key) for key in keys]}


def clear(account: str | None) -> None:
    with _LOCK:
        for key in [k for k in _LIMITS if account is None or k[0] == account]:
            del _LIMITS[key]
        for key in [k for k in _ACTIVITIES if account is None or k[0] == account]:
            del _ACTIVITIES[key]


def install() -> None:
    from ..faults import add_control_route, add_reset_hook

    if not getattr(EC2Backend.run_instances, _MARK, False):
        _patch()
    add_control_route("POST", "ec2/capacity", _post_capacity)
    add_control_route("GET", "ec2/capacity", _get_capacity)
    add_reset_hook("ec2_capacity", clear)
