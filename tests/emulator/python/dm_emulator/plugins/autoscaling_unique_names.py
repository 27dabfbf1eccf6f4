"""CreateAutoScalingGroup with a name that already exists fails like AWS.

moto replaces the existing group (its instances keep running, orphaned).  Real
AWS answers HTTP 400 with error code ``AlreadyExists``.  Group names are unique
per account and region, which is exactly the scope of one moto
``AutoScalingBackend``.
"""

import functools
import threading

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.models import AutoScalingBackend


class AlreadyExistsError(AutoscalingClientError):
    # The code maps to the model's AlreadyExistsFault (400, sender fault).
    code = "AlreadyExists"

    def __init__(self, name: str) -> None:
        super().__init__(
            "AutoScalingGroup by this name already exists - "
            f"A group with the name {name} already exists"
        )


# Serializes check-then-create so two concurrent requests cannot both win.
_LOCK = threading.RLock()
_MARK = "_dm_unique_names"


def install() -> None:
    original = AutoScalingBackend.create_auto_scaling_group
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def create_auto_scaling_group(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        with _LOCK:
            if name in self.autoscaling_groups:
                raise AlreadyExistsError(name)
            return original(self, name, *args, **kwargs)

    setattr(create_auto_scaling_group, _MARK, True)
    AutoScalingBackend.create_auto_scaling_group = create_auto_scaling_group  # type: ignore[method-assign]
