"""Auto Scaling lifecycle hooks hold instances in wait states, as on AWS.

moto 5.2.5 stores lifecycle hooks (``PutLifecycleHook``) and does nothing with
them: every instance a group launches is ``InService`` at once, scale-in
terminates at once, and ``CompleteLifecycleAction`` /
``RecordLifecycleActionHeartbeat`` are not implemented (HTTP 500).  With this
plugin:

* **Launch hooks** (``autoscaling:EC2_INSTANCE_LAUNCHING``): every instance
  the group launches (at create, on scale-out by ``SetDesiredCapacity`` /
  ``UpdateAutoScalingGroup``, as a replacement) is ``Pending:Wait``.  It counts
  toward the group's capacity (no second launch for it) but is not
  ``InService`` (no classic ELB registration).  ``CONTINUE`` from every launch
  hook puts it ``InService``; ``ABANDON`` from any terminates it, removes it
  from the group and launches a replacement (``Pending:Wait`` again).
* **Terminate hooks** (``autoscaling:EC2_INSTANCE_TERMINATING``): an instance
  the group removes (scale-in, ``TerminateInstanceInAutoScalingGroup``, and
  ``SetInstanceHealth`` ``Unhealthy`` through ``asg_instance_health``) is
  ``Terminating:Wait``: it stays in the group's ``Instances``, keeps running in
  EC2 and its ``aws:autoscaling:groupName`` tag, and no longer counts toward
  capacity (a replacement is launched at once unless the desired capacity was
  decremented).  ``CONTINUE`` from every terminate hook, or ``ABANDON`` from
  any, terminates the EC2 instance and removes it from the group.
* ``CompleteLifecycleAction`` (by ``LifecycleActionToken`` or ``InstanceId``)
  and ``RecordLifecycleActionHeartbeat`` work; an action that is unknown or no
  longer active is HTTP 400 ``ValidationError`` "No active Lifecycle Action
  found with token T" / "... with instance ID I", as on AWS.  A heartbeat
  restarts the hook's ``HeartbeatTimeout``.
* Timeouts are evaluated lazily, at the start of every Auto Scaling or EC2
  request of that account and region, and on the control routes below: an
  action that has had no heartbeat for ``HeartbeatTimeout`` seconds, or that
  is older than the global timeout (``min(100 * HeartbeatTimeout, 172800)``),
  gets the hook's ``DefaultResult``.  Time is the emulator's clock (wall clock
  plus offsets, see ``/_dm/clock``), so tests need not sleep.
* ``PutLifecycleHook`` validates like AWS (``HeartbeatTimeout`` 30..7200,
  ``DefaultResult`` ``CONTINUE``/``ABANDON``, ``LifecycleTransition`` one of
  the two, required for a new hook; the messages are the emulator's), keeps
  unspecified fields of an existing hook (moto resets them), stores
  ``NotificationMetadata`` and reports ``GlobalTimeout`` as AWS computes it.
  ``CreateAutoScalingGroup`` honours ``LifecycleHookSpecificationList`` (moto
  ignores it), so the first instances already wait.
* ``DeleteAutoScalingGroup`` behaves like ``ForceDelete``: outstanding
  lifecycle actions are dropped, the instances are terminated without hooks,
  and the group's hooks are deleted with it (moto keeps them, so a new group
  of the same name would inherit them).
* An EC2 ``TerminateInstances`` of a waiting instance ends its wait (a
  ``Pending:Wait`` one is replaced, as before for ``InService`` ones).
* Every transition into a wait state records the event Auto Scaling sends to
  EventBridge (``EC2 Instance-launch Lifecycle Action`` /
  ``EC2 Instance-terminate Lifecycle Action``, source ``aws.autoscaling``),
  one per hook, in the shape EventBridge delivers to a Lambda target.

Groups without hooks, and with no instance in a wait state, take moto's code
paths unchanged.  ``ABANDON`` of a launch terminates the instance without
running terminate hooks (it never was in service).

Control routes (registered with ``dm_emulator.faults``):

``POST /_dm/clock``
    ``{"advance_seconds": N}`` moves the emulator's clock forward by N (>= 0)
    seconds for every account, ``{"advance_seconds": N, "account": "A"}`` for
    account A only (use that in parallel tests).  Expired lifecycle actions
    are then settled.  Answers ``{"now": T, "offset": O}``: the clock (seconds
    since the epoch) and its offset from the wall clock, for ``account`` if
    given.  The clock never goes back; ``/_dm/reset`` leaves it alone.
``GET /_dm/clock[?account=A]``
    The same answer, without moving the clock.
``GET /_dm/lifecycle-events?account=A[&since=N]``
    ``{"events": [{"seq": 1, "event": {...}, "json": "..."}, ...]}``: the
    lifecycle action events of account A (required) with ``seq`` > N (default
    0), oldest first.  ``seq`` counts per account from 1 and is never reused;
    ``event`` is the EventBridge event (``version``, ``id``, ``detail-type``,
    ``source``, ``account``, ``time``, ``region``, ``resources``, ``detail``)
    and ``json`` the same as the exact text to deliver.

``POST /_dm/reset[?account=A]`` also clears the recorded events (not their
sequence numbers, and not the clock).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import (
    AutoScalingBackend,
    FakeAutoScalingGroup,
    InstanceState,
    LifecycleHook,
    TerminateInstanceActivity,
    autoscaling_backends,
)
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import EmptyResult
from moto.ec2.models import EC2Backend
from moto.ec2.responses import EC2Response

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
PENDING_WAIT = "Pending:Wait"
TERMINATING_WAIT = "Terminating:Wait"
RESULTS = ("CONTINUE", "ABANDON")
MIN_HEARTBEAT_TIMEOUT = 30
MAX_HEARTBEAT_TIMEOUT = 7200
MAX_GLOBAL_TIMEOUT = 172800
# States that count toward a group's capacity (moto counts only InService).
_COUNTED = {"InService", "Pending", PENDING_WAIT, "Pending:Proceed"}
_DETAIL_TYPES = {
    LAUNCHING: "EC2 Instance-launch Lifecycle Action",
    TERMINATING: "EC2 Instance-terminate Lifecycle Action",
}
# (Origin, Destination) of the events.
_ROUTES = {LAUNCHING: ("EC2", "AutoScalingGroup"), TERMINATING: ("AutoScalingGroup", "EC2")}
_ACCOUNT = re.compile(r"[0-9]{12}")
_MARK = "_dm_lifecycle_hooks"
_WAIT = "_dm_wait"  # attribute of a moto InstanceState: its Wait

# Serialises every Auto Scaling request and our changes to moto's state.
_LOCK = threading.RLock()
# Per-thread flags of the request being handled:
#   defer    -- a list: EC2Backend.terminate_instances records instead of terminating
#   counting -- active_instances() counts Pending:* too (for capacity)
#   bypass   -- moto's behaviour, no hooks (DeleteAutoScalingGroup)
_CTX = threading.local()

# (account, region) pairs that may hold waiting instances.
_ACTIVE: set[tuple[str, str]] = set()
# moto's functions we replaced and still call ("ec2_terminate_instances").
_ORIGINALS: dict[str, Any] = {}


# ---------------------------------------------------------------------------
# The emulator's clock

_CLOCK_LOCK = threading.Lock()
_GLOBAL_OFFSET = 0.0
_ACCOUNT_OFFSETS: dict[str, float] = {}


def offset(account: str | None = None) -> float:
    with _CLOCK_LOCK:
        return _GLOBAL_OFFSET + (_ACCOUNT_OFFSETS.get(account, 0.0) if account else 0.0)


def now(account: str | None = None) -> float:
    """The emulator's time for ``account``, seconds since the epoch."""
    return time.time() + offset(account)


def advance(seconds: float, account: str | None = None) -> None:
    global _GLOBAL_OFFSET
    with _CLOCK_LOCK:
        if account is None:
            _GLOBAL_OFFSET += seconds
        else:
            _ACCOUNT_OFFSETS[account] = _ACCOUNT_OFFSETS.get(account, 0.0) + seconds


# ---------------------------------------------------------------------------
# Recorded events


@dataclass(frozen=True)
class Recorded:
    seq: int
    account: str
    event: dict[str, Any]
    json: str


_EVENTS_LOCK = threading.Lock()
_EVENTS: dict[str, list[Recorded]] = {}
_SEQ: dict[str, int] = {}


def record_event(account: str, event: dict[str, Any]) -> Recorded:
    with _EVENTS_LOCK:
        seq = _SEQ.get(account, 0) + 1
        _SEQ[account] = seq
        recorded = Recorded(seq, account, event, json.dumps(event, separators=(",", ":")))
        _EVENTS.setdefault(account, []).append(recorded)
        return recorded


def events(account: str, since: int = 0) -> list[Recorded]:
    with _EVENTS_LOCK:
        return [r for r in _EVENTS.get(account, []) if r.seq > since]


def clear_events(account: str | None = None) -> None:
    with _EVENTS_LOCK:
        if account is None:
            _EVENTS.clear()
        else:
            _EVENTS.pop(account, None)


# ---------------------------------------------------------------------------
# Lifecycle actions


@dataclass
class Action:
    token: str
    hook_name: str
    heartbeat_timeout: int
    default_result: str
    started: float
    heartbeat_at: float
    result: str | None = None

    @property
    def global_deadline(self) -> float:
        return self.started + min(100 * self.heartbeat_timeout, MAX_GLOBAL_TIMEOUT)

    def deadline(self) -> float:
        return min(self.heartbeat_at + self.heartbeat_timeout, self.global_deadline)


@dataclass
class Wait:
    transition: str
    actions: list[Action] = field(default_factory=list)


def _wait_of(state: InstanceState) -> Wait | None:
    return getattr(state, _WAIT, None)


def _drop_wait(state: InstanceState) -> None:
    if getattr(state, _WAIT, None) is not None:
        setattr(state, _WAIT, None)


def _hooks(group: FakeAutoScalingGroup, transition: str | None = None) -> list[LifecycleHook]:
    return [
        hook
        for hook in list(group.autoscaling_backend.lifecycle_hooks.values())
        if hook.auto_scaling_group_name == group.name
        and (transition is None or hook.lifecycle_transition == transition)
    ]


def _involved(group: FakeAutoScalingGroup) -> bool:
    """Whether this plugin handles the group (else moto's code runs unchanged)."""
    if getattr(_CTX, "bypass", False):
        return False
    if _hooks(group):
        return True
    return any(_wait_of(s) is not None or s.lifecycle_state.endswith(":Wait") for s in group.instance_states)


def _registered(group: FakeAutoScalingGroup) -> bool:
    return group.autoscaling_backend.autoscaling_groups.get(group.name) is group


def _event_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _start_wait(group: FakeAutoScalingGroup, state: InstanceState, transition: str, hooks: list[LifecycleHook]) -> None:
    account, region = group.account_id, group.region
    started = now(account)
    wait = Wait(transition)
    for hook in hooks:
        action = Action(
            token=str(uuid.uuid4()),
            hook_name=hook.name,
            heartbeat_timeout=int(hook.heartbeat_timeout),
            default_result=hook.default_result,
            started=started,
            heartbeat_at=started,
        )
        wait.actions.append(action)
        origin, destination = _ROUTES[transition]
        detail: dict[str, Any] = {
            "LifecycleActionToken": action.token,
            "AutoScalingGroupName": group.name,
            "LifecycleHookName": hook.name,
            "EC2InstanceId": state.instance.id,
            "LifecycleTransition": transition,
        }
        metadata = getattr(hook, "notification_metadata", None)
        if metadata:
            detail["NotificationMetadata"] = metadata
        detail["Origin"] = origin
        detail["Destination"] = destination
        record_event(
            account,
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": _DETAIL_TYPES[transition],
                "source": "aws.autoscaling",
                "account": account,
                "time": _event_time(started),
                "region": region,
                "resources": [group.arn],
                "detail": detail,
            },
        )
    state.lifecycle_state = PENDING_WAIT if transition == LAUNCHING else TERMINATING_WAIT
    setattr(state, _WAIT, wait)
    _ACTIVE.add((account, region))


def _terminate_now(group: FakeAutoScalingGroup, instance_ids: list[str]) -> None:
    if instance_ids:
        _ORIGINALS["ec2_terminate_instances"](group.autoscaling_backend.ec2_backend, instance_ids)


def _refresh_load_balancers(group: FakeAutoScalingGroup) -> None:
    if _registered(group):
        group.autoscaling_backend.update_attached_elbs(group.name)
        group.autoscaling_backend.update_attached_target_groups(group.name)


def _settle(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    """Moves an instance on once its lifecycle actions allow it."""
    wait = _wait_of(state)
    if wait is None:
        return
    results = [a.result for a in wait.actions]
    abandoned = "ABANDON" in results
    if not abandoned and None in results:
        return  # other hooks still pending
    for action in wait.actions:
        if action.result is None:
            action.result = "ABANDON"
    _drop_wait(state)
    if wait.transition == LAUNCHING and not abandoned:
        state.lifecycle_state = "InService"
        _refresh_load_balancers(group)
        return
    # Terminated: a finished terminate, or an abandoned launch (then replaced).
    group.instance_states = [s for s in group.instance_states if s is not state]
    _terminate_now(group, [state.instance.id])
    if wait.transition == LAUNCHING and _registered(group):
        group.set_desired_capacity(group.desired_capacity)
    _refresh_load_balancers(group)


def tick(account: str, region: str) -> None:
    """Applies the default result of every lifecycle action that has timed out."""
    with _LOCK:
        if (account, region) not in _ACTIVE:
            return
        backend = autoscaling_backends[account][region]
        for _ in range(100):  # settling launches replacements, which start now: few rounds
            changed = False
            waiting = False
            current = now(account)
            for group in list(backend.autoscaling_groups.values()):
                for state in list(group.instance_states):
                    wait = _wait_of(state)
                    if wait is None:
                        continue
                    expired = False
                    for action in wait.actions:
                        if action.result is None and current >= action.deadline():
                            action.result = action.default_result
                            expired = True
                    if expired:
                        changed = True
                        _settle(group, state)
                    waiting = waiting or _wait_of(state) is not None
            if not changed:
                if not waiting:
                    _ACTIVE.discard((account, region))
                return


def tick_account(account: str | None) -> None:
    for key in sorted(_ACTIVE):
        if account is None or key[0] == account:
            tick(*key)


def _find_action(
    backend: AutoScalingBackend,
    group_name: str | None,
    hook_name: str | None,
    token: str | None,
    instance_id: str | None,
) -> tuple[FakeAutoScalingGroup, InstanceState, Action]:
    if token or instance_id:
        for group in list(backend.autoscaling_groups.values()):
            if group.name != group_name:
                continue
            for state in group.instance_states:
                wait = _wait_of(state)
                if wait is None or (instance_id and state.instance.id != instance_id):
                    continue
                for action in wait.actions:
                    if (
                        action.result is None
                        and action.hook_name == hook_name
                        and (not token or action.token == token)
                    ):
                        return group, state, action
    if token:
        raise ValidationError(f"No active Lifecycle Action found with token {token}")
    if instance_id:
        raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
    raise ValidationError("A LifecycleActionToken or an InstanceId is required")


def complete_action(
    backend: AutoScalingBackend,
    group_name: str | None,
    hook_name: str | None,
    token: str | None,
    instance_id: str | None,
    result: str | None,
) -> None:
    with _LOCK:
        if result not in RESULTS:
            raise ValidationError(f"Invalid value for LifecycleActionResult: {result} (valid: CONTINUE, ABANDON)")
        group, state, action = _find_action(backend, group_name, hook_name, token, instance_id)
        action.result = result
        _settle(group, state)


def record_heartbeat(
    backend: AutoScalingBackend,
    group_name: str | None,
    hook_name: str | None,
    token: str | None,
    instance_id: str | None,
) -> None:
    with _LOCK:
        group, _, action = _find_action(backend, group_name, hook_name, token, instance_id)
        action.heartbeat_at = now(group.account_id)


# ---------------------------------------------------------------------------
# Patches of moto's models


@contextmanager
def _without_leaving(group: FakeAutoScalingGroup) -> Iterator[None]:
    """Hides Terminating:* instances from moto's capacity code (they do not
    count and must not be picked again), and puts them back in their places."""
    if getattr(group, "_dm_hiding", False):
        yield
        return
    order = list(group.instance_states)
    hidden = [s for s in order if s.lifecycle_state.startswith("Terminating")]
    group.instance_states = [s for s in order if s not in hidden]
    group._dm_hiding = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        group._dm_hiding = False  # type: ignore[attr-defined]
        current = list(group.instance_states)
        keep = set(current) | set(hidden)
        known = set(order)
        group.instance_states = [s for s in order if s in keep] + [s for s in current if s not in known]


def _patch_models() -> None:
    set_desired = FakeAutoScalingGroup.set_desired_capacity
    replace = FakeAutoScalingGroup.replace_autoscaling_group_instances
    update = FakeAutoScalingGroup.update
    active = FakeAutoScalingGroup.active_instances
    ec2_terminate = EC2Backend.terminate_instances
    terminate_instance = AutoScalingBackend.terminate_instance
    notify = AutoScalingBackend.notify_terminate_instances
    delete_group = AutoScalingBackend.delete_auto_scaling_group
    _ORIGINALS["ec2_terminate_instances"] = ec2_terminate

    @functools.wraps(active)
    def active_instances(self: FakeAutoScalingGroup) -> list[InstanceState]:
        if getattr(_CTX, "counting", False):
            return [s for s in self.instance_states if s.lifecycle_state in _COUNTED]
        return active(self)

    @functools.wraps(ec2_terminate)
    def terminate_instances(self: EC2Backend, instance_ids: list[str]) -> Any:
        deferred = getattr(_CTX, "defer", None)
        if deferred is not None:
            deferred.extend(instance_ids)
            return []
        return ec2_terminate(self, instance_ids)

    @functools.wraps(set_desired)
    def set_desired_capacity(self: FakeAutoScalingGroup, new_capacity: int | None) -> None:
        if not _involved(self):
            return set_desired(self, new_capacity)
        with _LOCK:
            with _without_leaving(self):
                before = list(self.instance_states)
                saved = (getattr(_CTX, "defer", None), getattr(_CTX, "counting", False))
                _CTX.defer, _CTX.counting = [], True
                try:
                    set_desired(self, new_capacity)
                finally:
                    _CTX.defer, _CTX.counting = saved
                after = set(self.instance_states)
                removed = [s for s in before if s not in after]
                for state in removed:
                    _drop_wait(state)
                hooks = _hooks(self, TERMINATING)
                if removed and hooks:
                    self.instance_states = list(self.instance_states) + removed
                    for state in removed:
                        _start_wait(self, state, TERMINATING, hooks)
                else:
                    _terminate_now(self, [s.instance.id for s in removed])
            # moto registered Pending:Wait instances with classic ELBs while counting.
            if _registered(self):
                self.autoscaling_backend.update_attached_elbs(self.name)

    @functools.wraps(replace)
    def replace_autoscaling_group_instances(
        self: FakeAutoScalingGroup, count_needed: int, propagated_tags: dict[str, str]
    ) -> None:
        before = set(self.instance_states)
        replace(self, count_needed, propagated_tags)
        if getattr(_CTX, "bypass", False):
            return
        hooks = _hooks(self, LAUNCHING)
        if hooks:
            with _LOCK:
                for state in [s for s in self.instance_states if s not in before]:
                    _start_wait(self, state, LAUNCHING, hooks)

    @functools.wraps(update)
    def update_group(self: FakeAutoScalingGroup, *args: Any, **kwargs: Any) -> None:
        if not _involved(self):
            return update(self, *args, **kwargs)
        with _LOCK, _without_leaving(self):
            return update(self, *args, **kwargs)

    @functools.wraps(terminate_instance)
    def terminate_instance_in_group(
        self: AutoScalingBackend, instance_id: str, should_decrement: bool
    ) -> TerminateInstanceActivity:
        with _LOCK:
            found = next(
                (
                    (g, s)
                    for g in self.autoscaling_groups.values()
                    for s in g.instance_states
                    if s.instance.id == instance_id
                ),
                None,
            )
            if found is None:  # moto's error
                return terminate_instance(self, instance_id, should_decrement)
            group, state = found
            if not _involved(group):
                return terminate_instance(self, instance_id, should_decrement)
            original_size = group.desired_capacity
            if state.lifecycle_state.startswith("Terminating"):
                return TerminateInstanceActivity(state.instance, original_size)
            _drop_wait(state)
            hooks = _hooks(group, TERMINATING)
            if not hooks:
                state.lifecycle_state = "InService"  # moto's path from here
                return terminate_instance(self, instance_id, should_decrement)
            if should_decrement:
                group.desired_capacity = original_size - 1
            _start_wait(group, state, TERMINATING, hooks)
            group.set_desired_capacity(group.desired_capacity)
            _refresh_load_balancers(group)
            return TerminateInstanceActivity(state.instance, original_size)

    @functools.wraps(notify)
    def notify_terminate_instances(self: AutoScalingBackend, instance_ids: list[str]) -> None:
        with _LOCK:
            for group in self.autoscaling_groups.values():
                for state in group.instance_states:
                    if state.instance.id in instance_ids:
                        _drop_wait(state)
            saved = getattr(_CTX, "counting", False)
            _CTX.counting = True
            try:
                notify(self, instance_ids)
            finally:
                _CTX.counting = saved

    @functools.wraps(delete_group)
    def delete_auto_scaling_group(self: AutoScalingBackend, group_name: str) -> None:
        with _LOCK:
            group = self.autoscaling_groups.get(group_name)
            if group is None:
                return delete_group(self, group_name)
            for state in group.instance_states:
                if _wait_of(state) is not None or state.lifecycle_state.endswith(":Wait"):
                    _drop_wait(state)
                    state.lifecycle_state = "InService"  # so moto's scale-in terminates it
            saved = getattr(_CTX, "bypass", False)
            _CTX.bypass = True
            try:
                delete_group(self, group_name)
            finally:
                _CTX.bypass = saved
            for key in [k for k, h in self.lifecycle_hooks.items() if h.auto_scaling_group_name == group_name]:
                del self.lifecycle_hooks[key]

    for cls, name, patched in (
        (FakeAutoScalingGroup, "active_instances", active_instances),
        (FakeAutoScalingGroup, "set_desired_capacity", set_desired_capacity),
        (FakeAutoScalingGroup, "replace_autoscaling_group_instances", replace_autoscaling_group_instances),
        (FakeAutoScalingGroup, "update", update_group),
        (EC2Backend, "terminate_instances", terminate_instances),
        (AutoScalingBackend, "terminate_instance", terminate_instance_in_group),
        (AutoScalingBackend, "notify_terminate_instances", notify_terminate_instances),
        (AutoScalingBackend, "delete_auto_scaling_group", delete_auto_scaling_group),
    ):
        setattr(patched, _MARK, True)
        setattr(cls, name, patched)


# ---------------------------------------------------------------------------
# Patches of moto's responses


def _validate_hook(name: str, transition: Any, timeout: Any, result: Any, new: bool) -> None:
    if transition is None and new:
        raise ValidationError(f"LifecycleTransition is required for the new lifecycle hook {name}")
    if transition is not None and transition not in (LAUNCHING, TERMINATING):
        raise ValidationError(f"Invalid value for LifecycleTransition: {transition}")
    if timeout is not None and not MIN_HEARTBEAT_TIMEOUT <= int(timeout) <= MAX_HEARTBEAT_TIMEOUT:
        raise ValidationError(
            f"HeartbeatTimeout must be between {MIN_HEARTBEAT_TIMEOUT} and {MAX_HEARTBEAT_TIMEOUT} seconds, not {timeout}"
        )
    if result is not None and result not in RESULTS:
        raise ValidationError(f"Invalid value for DefaultResult: {result} (valid: CONTINUE, ABANDON)")


def _put_hook(
    backend: AutoScalingBackend,
    group_name: str,
    name: str,
    transition: Any,
    timeout: Any,
    result: Any,
    metadata: Any,
) -> LifecycleHook:
    existing = backend.lifecycle_hooks.get(f"{group_name}_{name}")
    _validate_hook(name, transition, timeout, result, new=existing is None)
    if existing is not None:
        transition = transition if transition is not None else existing.lifecycle_transition
        timeout = timeout if timeout is not None else existing.heartbeat_timeout
        result = result if result is not None else existing.default_result
        if metadata is None:
            metadata = getattr(existing, "notification_metadata", None)
    hook = backend.create_lifecycle_hook(
        name=name,
        as_name=group_name,
        transition=transition,
        timeout=int(timeout) if timeout is not None else None,
        result=result,
    )
    if metadata is not None:
        hook.notification_metadata = metadata  # type: ignore[attr-defined]
    hook.global_timeout = min(100 * int(hook.heartbeat_timeout), MAX_GLOBAL_TIMEOUT)
    return hook


def _patch_responses() -> None:
    call_action = AutoScalingResponse.call_action
    ec2_call_action = EC2Response.call_action
    create_group = AutoScalingResponse.create_auto_scaling_group

    @functools.wraps(call_action)
    def autoscaling_call_action(self: AutoScalingResponse) -> Any:
        with _LOCK:
            tick(self.current_account, self.region)
            return call_action(self)

    @functools.wraps(ec2_call_action)
    def ec2_call_action_with_tick(self: EC2Response) -> Any:
        if _ACTIVE:
            tick(self.current_account, self.region)
        return ec2_call_action(self)

    def put_lifecycle_hook(self: AutoScalingResponse) -> EmptyResult:
        with _LOCK:
            _put_hook(
                self.autoscaling_backend,
                group_name=self._get_param("AutoScalingGroupName"),
                name=self._get_param("LifecycleHookName"),
                transition=self._get_param("LifecycleTransition"),
                timeout=self._get_param("HeartbeatTimeout"),
                result=self._get_param("DefaultResult"),
                metadata=self._get_param("NotificationMetadata"),
            )
        return EmptyResult()

    @functools.wraps(create_group)
    def create_auto_scaling_group(self: AutoScalingResponse) -> Any:
        specs = self._get_param("LifecycleHookSpecificationList") or []
        backend = self.autoscaling_backend
        name = self._get_param("AutoScalingGroupName")
        with _LOCK:
            if not specs or name in backend.autoscaling_groups:
                return create_group(self)  # AlreadyExists, if the group exists
            added = []
            try:
                for spec in specs:
                    hook_name = spec.get("LifecycleHookName")
                    if f"{name}_{hook_name}" in backend.lifecycle_hooks:
                        # Left over from a group moto deleted before this plugin ran.
                        del backend.lifecycle_hooks[f"{name}_{hook_name}"]
                    _put_hook(
                        backend,
                        group_name=name,
                        name=hook_name,
                        transition=spec.get("LifecycleTransition"),
                        timeout=spec.get("HeartbeatTimeout"),
                        result=spec.get("DefaultResult"),
                        metadata=spec.get("NotificationMetadata"),
                    )
                    added.append(f"{name}_{hook_name}")
                return create_group(self)
            except BaseException:
                for key in added:
                    backend.lifecycle_hooks.pop(key, None)
                raise

    def complete_lifecycle_action(self: AutoScalingResponse) -> EmptyResult:
        complete_action(
            self.autoscaling_backend,
            group_name=self._get_param("AutoScalingGroupName"),
            hook_name=self._get_param("LifecycleHookName"),
            token=self._get_param("LifecycleActionToken"),
            instance_id=self._get_param("InstanceId"),
            result=self._get_param("LifecycleActionResult"),
        )
        return EmptyResult()

    def record_lifecycle_action_heartbeat(self: AutoScalingResponse) -> EmptyResult:
        record_heartbeat(
            self.autoscaling_backend,
            group_name=self._get_param("AutoScalingGroupName"),
            hook_name=self._get_param("LifecycleHookName"),
            token=self._get_param("LifecycleActionToken"),
            instance_id=self._get_param("InstanceId"),
        )
        return EmptyResult()

    for cls, name, patched in (
        (AutoScalingResponse, "call_action", autoscaling_call_action),
        (EC2Response, "call_action", ec2_call_action_with_tick),
        (AutoScalingResponse, "put_lifecycle_hook", put_lifecycle_hook),
        (AutoScalingResponse, "create_auto_scaling_group", create_auto_scaling_group),
        (AutoScalingResponse, "complete_lifecycle_action", complete_lifecycle_action),
        (AutoScalingResponse, "record_lifecycle_action_heartbeat", record_lifecycle_action_heartbeat),
    ):
        setattr(patched, _MARK, True)
        setattr(cls, name, patched)


# ---------------------------------------------------------------------------
# Control routes


def _json_body(body: bytes) -> Any:
    return json.loads(body.decode("utf-8") or "null")


def _clock_answer(account: str | None) -> dict[str, Any]:
    return {"now": now(account), "offset": offset(account)}


def _post_clock(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    data = _json_body(body)
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object like {"advance_seconds": 60}')
    unknown = set(data) - {"advance_seconds", "account"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    seconds = data.get("advance_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 10 * 365 * 86400:
        raise ValueError("advance_seconds must be a number of seconds in 0..=315360000")
    account = data.get("account")
    if account is not None and (not isinstance(account, str) or not _ACCOUNT.fullmatch(account)):
        raise ValueError("account must be 12 digits")
    advance(float(seconds), account)
    tick_account(account)
    return 200, _clock_answer(account)


def _get_clock(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    return 200, _clock_answer(params.get("account") or None)


def _get_events(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    account = params.get("account") or ""
    if not _ACCOUNT.fullmatch(account):
        raise ValueError("account (12 digits) is required")
    since_text = params.get("since") or "0"
    if not since_text.isdigit():
        raise ValueError("since must be a non-negative integer")
    tick_account(account)
    found = events(account, int(since_text))
    return 200, {"events": [{"seq": r.seq, "event": r.event, "json": r.json} for r in found]}


def install() -> None:
    from ..faults import add_control_route, add_reset_hook

    if not getattr(FakeAutoScalingGroup.set_desired_capacity, _MARK, False):
        _patch_models()
    if not getattr(getattr(AutoScalingResponse, "complete_lifecycle_action", None), _MARK, False):
        _patch_responses()
    add_control_route("POST", "clock", _post_clock)
    add_control_route("GET", "clock", _get_clock)
    add_control_route("GET", "lifecycle-events", _get_events)
    add_reset_hook("lifecycle_hooks", clear_events)
