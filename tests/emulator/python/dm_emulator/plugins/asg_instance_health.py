"""``SetInstanceHealth`` with ``Unhealthy`` replaces the instance, as on AWS.

moto 5.2.5 only stores the flag: the instance stays ``InService`` and the
group never replaces it.  An instance ID that EC2 does not know is EC2's
``InvalidInstanceID.NotFound``, one that is in no group an HTTP 500
(``StopIteration``), and a ``HealthStatus`` other than ``Healthy`` /
``Unhealthy`` an HTTP 500 too.  With this plugin:

* ``Unhealthy`` marks the instance and the group terminates and replaces it,
  without changing its desired capacity: ``TerminateInstanceInAutoScalingGroup``
  with ``ShouldDecrementDesiredCapacity=false``, so that the paths of
  ``lifecycle_hooks`` apply.  With a hook for
  ``autoscaling:EC2_INSTANCE_TERMINATING`` the instance is
  ``Terminating:Wait`` (``HealthStatus`` ``Unhealthy``, still running in EC2)
  until its lifecycle action completes; without one it is terminated and
  removed at once.  The replacement is launched at once (``Pending:Wait``
  with a hook for ``autoscaling:EC2_INSTANCE_LAUNCHING``, else
  ``InService``).  An instance in ``Standby`` is only marked (Auto Scaling
  does not replace instances in standby).
* ``Healthy`` only stores the flag.
* On an instance already ``Terminating*`` either value is a no-op success.
* An instance in no group of the account and region is HTTP 400
  ``ValidationError`` "Instance Id not found - No managed instance found for
  instance ID: I", the error AWS gives; a bad ``HealthStatus`` is HTTP 400
  ``ValidationError`` "Valid instance health states are: [Healthy,
  Unhealthy]".
* ``ShouldRespectGracePeriod`` is ignored: the call acts at once, whatever the
  group's ``HealthCheckGracePeriod``.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import AutoScalingBackend
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import EmptyResult

from . import lifecycle_hooks

HEALTH_STATES = ("Healthy", "Unhealthy")
_MARK = "_dm_asg_instance_health"


def set_instance_health(backend: AutoScalingBackend, instance_id: str, health_status: str) -> None:
    # lifecycle_hooks' lock: the group's instance states are its machinery.
    with lifecycle_hooks._LOCK:
        state = next(
            (
                s
                for group in list(backend.autoscaling_groups.values())
                for s in group.instance_states
                if s.instance.id == instance_id
            ),
            None,
        )
        if state is None:
            raise ValidationError(f"Instance Id not found - No managed instance found for instance ID: {instance_id}")
        if state.lifecycle_state.startswith("Terminating"):
            return  # already leaving: nothing to do
        state.health_status = health_status
        if health_status != "Unhealthy" or state.lifecycle_state == "Standby":
            return
        # Terminate and replace; lifecycle_hooks holds it in Terminating:Wait
        # (and the replacement in Pending:Wait) when the group has hooks.
        backend.terminate_instance(instance_id, should_decrement=False)


def install() -> None:
    if getattr(AutoScalingBackend.set_instance_health, _MARK, False):
        return
    backend_method = AutoScalingBackend.set_instance_health
    response_method = AutoScalingResponse.set_instance_health

    @functools.wraps(backend_method)
    def backend_set_instance_health(self: AutoScalingBackend, instance_id: str, health_status: str) -> None:
        set_instance_health(self, instance_id, health_status)

    @functools.wraps(response_method)
    def response_set_instance_health(self: AutoScalingResponse) -> Any:
        health_status = self._get_param("HealthStatus")
        if health_status not in HEALTH_STATES:
            raise ValidationError("Valid instance health states are: [Healthy, Unhealthy]")
        self.autoscaling_backend.set_instance_health(self._get_param("InstanceId"), health_status)
        return EmptyResult()

    for cls, name, patched in (
        (AutoScalingBackend, "set_instance_health", backend_set_instance_health),
        (AutoScalingResponse, "set_instance_health", response_set_instance_health),
    ):
        setattr(patched, _MARK, True)
        setattr(cls, name, patched)
