"""``DescribeInstances`` pages count instances, as on AWS.

On AWS ``MaxResults`` (5..1000) is the number of instances a page holds at
most; a reservation whose instances do not fit is continued on the next page
(the same ``ReservationId`` then appears on both).  moto 5.2.5 counts
reservations instead: one ``RunInstances`` of 12 instances (as an Auto
Scaling group launches them) is one item, so ``MaxResults=5`` answers all 12
on one page, and without ``MaxResults`` it pages by 100 reservations.  We
replace ``EC2Response.describe_instances`` when no ``InstanceIds`` are given
(with them, moto's code runs: AWS refuses ``MaxResults`` with them anyway):

* the instances that pass the filters (moto's filters), in moto's order
  (reservations by creation, instances by launch index), are cut into pages
  of ``MaxResults`` instances; each page groups them by reservation;
* ``NextToken`` is opaque (it names the last instance returned) and absent on
  the last page; a token the emulator did not issue is HTTP 400
  ``InvalidParameterValue``;
* without ``MaxResults`` every matching instance is on one page;
* ``MaxResults`` outside 5..1000 is HTTP 400 ``InvalidParameterValue``
  (moto takes any number), as on AWS.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses import EC2Response

_MARK = "_dm_ec2_instance_pages"
_TOKEN_PREFIX = "dm-instances:"
MIN_RESULTS = 5
MAX_RESULTS = 1000


def _encode(instance_id: str) -> str:
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{instance_id}".encode()).decode()


def _decode(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    if not text.startswith(_TOKEN_PREFIX) or len(text) == len(_TOKEN_PREFIX):
        raise EC2ClientError("InvalidParameterValue", f"The value of NextToken is invalid: {token}")
    return text[len(_TOKEN_PREFIX) :]


def page(backend: Any, filters: dict[str, Any], max_results: int | None, token: str | None) -> tuple[list[Any], str | None]:
    """One page of (reservation copy holding only the page's instances), next token."""
    order = {
        instance.id: position
        for position, instance in enumerate(
            i for reservation in list(backend.reservations.values()) for i in reservation.instances
        )
    }
    matching = [
        (reservation, instance)
        for reservation in backend.describe_instances(filters=filters)
        for instance in reservation.instances
    ]
    if token:
        after_id = _decode(token)
        if after_id not in order:
            raise EC2ClientError("InvalidParameterValue", f"The value of NextToken is invalid: {token}")
        after = order[after_id]
        matching = [(r, i) for r, i in matching if order.get(i.id, -1) > after]
    taken = matching if max_results is None else matching[:max_results]
    next_token = _encode(taken[-1][1].id) if len(taken) < len(matching) else None
    reservations: list[Any] = []
    for reservation, instance in taken:
        if not reservations or reservations[-1].id != reservation.id:
            part = copy.copy(reservation)
            part.instances = []
            reservations.append(part)
        reservations[-1].instances.append(instance)
    return reservations, next_token


def install() -> None:
    original = EC2Response.describe_instances
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def describe_instances(self: EC2Response) -> Any:
        if self._get_param("InstanceIds", []):
            return original(self)  # moto's checks (MaxResults with ids, unknown ids)
        self.error_on_dryrun()
        filters = self._filters_from_querystring()
        max_results = self._get_param("MaxResults")
        if max_results is not None:
            max_results = int(max_results)
            if max_results < MIN_RESULTS:
                raise EC2ClientError(
                    "InvalidParameterValue",
                    f"Value ( {max_results} ) for parameter maxResults is invalid. Expecting a value greater than {MIN_RESULTS}.",
                )
            if max_results > MAX_RESULTS:
                raise EC2ClientError(
                    "InvalidParameterValue",
                    f"Value ( {max_results} ) for parameter maxResults is invalid. Expecting a value less than {MAX_RESULTS}.",
                )
        reservations, next_token = page(self.ec2_backend, filters, max_results, self._get_param("NextToken"))
        return ActionResult({"Reservations": reservations, "NextToken": next_token})

    setattr(describe_instances, _MARK, True)
    EC2Response.describe_instances = describe_instances  # type: ignore[method-assign]
