"""Route 53 record changes and hosted zone creation checked as AWS checks them.

moto 5.2.5 decides whether a ``DELETE`` in ``ChangeResourceRecordSets`` may
proceed from its journal of past changes, not from the zone:

* deleting a record set that is gone (deleted before) succeeds and does
  nothing; AWS answers 400 ``InvalidChangeBatch`` "Tried to delete resource
  record set [name='…', type='A'] but it was not found";
* deleting one that never existed answers 400 ``InvalidInput`` "Expected
  exactly one of [AliasTarget, all of [TTL, and ResourceRecords], …]";
* deleting with values that were once written but are no longer current
  deletes the set; AWS refuses with ``InvalidChangeBatch`` "… but the values
  provided do not match the current values", and so does moto only for
  values never written.

``UPSERT`` replaces only the first set of its name and type: a duplicate made
by ``CREATE`` (moto adds a second set when the values differ, where AWS
refuses) survives every UPSERT, so a client that writes again whenever it
reads two sets never converges.  Names are compared case-sensitively (AWS:
case-insensitively).  A batch that fails halfway keeps the changes before the
failure (AWS applies a batch all or nothing).

``CreateHostedZone`` ignores ``CallerReference``: two requests with one
reference make two zones of the same name.  AWS answers the second with 409
``HostedZoneAlreadyExists`` (a reference is good for one request, so it stays
used after its zone is deleted), which is what makes a name-derived reference
safe against concurrent creators.

The plugin wraps ``Route53Backend.change_resource_record_sets``: changes are
applied in order under a lock; a ``DELETE`` must name a current set (name
without regard to case or the final dot, type, ``SetIdentifier``) with the same
TTL and values (in any order; or the same ``AliasTarget``) and removes that one
set; an ``UPSERT`` replaces every set of its name, type and ``SetIdentifier``;
a ``CREATE`` is moto's (a second set when the values differ, "already exists"
when they are the same); if any change fails, the zone is put back as it was.
It also wraps ``Route53Backend.create_hosted_zone`` to refuse a
``CallerReference`` the account has used before.

Failover and other routed record sets (``SetIdentifier``) are checked as AWS
checks them; moto checks none of this and stores whatever it is sent:

* a ``CREATE`` / ``UPSERT`` with ``Failover`` but no ``SetIdentifier`` is 400
  ``InvalidInput`` "Invalid request: Missing field 'SetIdentifier' in Change
  with [Action=CREATE, Name=a.example., Type=A, SetIdentifier=null]"; one with
  a ``SetIdentifier`` but no routing policy (``Failover``, ``Weight``,
  ``Region``, ...) is 400 ``InvalidInput`` "Invalid request: Expected exactly
  one of [Weight, Region, Failover, GeoLocation, MultiValueAnswer,
  GeoProximityLocation, or CidrRoutingConfig], but found none in Change with
  [...]"; a ``Failover`` other than ``PRIMARY`` / ``SECONDARY`` is 400
  ``InvalidInput``;
* a ``HealthCheckId`` that names no health check of the account is 404
  ``NoSuchHealthCheck`` "A health check with id … does not exist.";
* a ``CREATE`` of a set whose name, type and ``SetIdentifier`` exist already
  is 400 ``InvalidChangeBatch`` "[Tried to create resource record set
  [name='…', type='A', set-identifier='…'] but it already exists]" (for sets
  without ``SetIdentifier`` moto's duplicates stay, see above);
* after the whole batch (so a batch may swap ``PRIMARY`` and ``SECONDARY``),
  a name and type may not have both a set without ``SetIdentifier`` and sets
  with one: 400 ``InvalidChangeBatch`` "[RRSet with DNS name a.example., type
  A, SetIdentifier b cannot be created as a non-weighted set exists with the
  same name and type.]" (or "[RRSet with DNS name a.example., type A cannot
  be created as weighted sets exist with the same name and type.]" for the
  set without), AWS's wording whatever the routing policy; and two failover
  sets of one name and type may not have the same ``Failover`` value: 400
  ``InvalidChangeBatch`` "[RRSet with DNS name a.example., type A,
  SetIdentifier b cannot be created as another failover RRSet (SetIdentifier
  a) with the same name, type and failover value PRIMARY exists.]" (the
  emulator's wording).

An ``UPSERT`` of a set with a ``SetIdentifier`` replaces only that set (the
sets of the same name and type with other identifiers stay).
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

_MARK = "_dm_route53_changes"
_REFERENCES = "_dm_caller_references"
# moto serves requests on several threads; a batch is checked and applied whole.
_LOCK = threading.RLock()


def name_key(name: str) -> str:
    """A record name as Route 53 compares them: any case, final dot or not."""
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def values_of(records: Any) -> list[str]:
    """The values of a set, sorted: moto keeps strings, or ``{"Value": …}``
    for the records it makes itself (SOA), and a request sends the latter."""
    out = []
    for record in records or []:
        out.append(str(record["Value"] if isinstance(record, dict) else record))
    return sorted(out)


def same_set(rrset: Any, wanted: dict[str, Any]) -> bool:
    """Whether a stored set is the one a change names (name, type, identifier)."""
    return (
        name_key(str(rrset.name)) == name_key(str(wanted.get("Name", "")))
        and rrset.type == wanted.get("Type")
        and (rrset.set_identifier or None) == (wanted.get("SetIdentifier") or None)
    )


def same_values(rrset: Any, wanted: dict[str, Any]) -> bool:
    """Whether a DELETE gives the set's current TTL and values (or alias)."""
    if wanted.get("AliasTarget") is not None:
        mine, theirs = rrset.alias_target or {}, wanted["AliasTarget"]
        return name_key(str(mine.get("DNSName", ""))) == name_key(str(theirs.get("DNSName", ""))) and str(
            mine.get("HostedZoneId")
        ) == str(theirs.get("HostedZoneId"))
    return str(rrset.ttl) == str(wanted.get("TTL")) and values_of(rrset.records) == values_of(
        wanted.get("ResourceRecords")
    )


def _describe(wanted: dict[str, Any]) -> str:
    name = name_key(str(wanted.get("Name", ""))) + "."
    text = f"name='{name}', type='{wanted.get('Type')}'"
    if wanted.get("SetIdentifier"):
        text += f", set-identifier='{wanted['SetIdentifier']}'"
    return text


def _invalid_change_batch(message: str) -> Exception:
    from moto.route53.exceptions import Route53ClientError

    # AWS puts the batch's messages in brackets.
    return Route53ClientError("InvalidChangeBatch", f"[{message}]")


def delete_one(zone: Any, wanted: dict[str, Any]) -> None:
    """Removes the one set a DELETE names, or raises AWS's InvalidChangeBatch."""
    candidates = [i for i, rrset in enumerate(zone.rrsets) if same_set(rrset, wanted)]
    if not candidates:
        raise _invalid_change_batch(f"Tried to delete resource record set [{_describe(wanted)}] but it was not found")
    for i in candidates:
        if same_values(zone.rrsets[i], wanted):
            zone.rrsets = zone.rrsets[:i] + zone.rrsets[i + 1 :]
            return
    raise _invalid_change_batch(
        f"Tried to delete resource record set [{_describe(wanted)}] "
        "but the values provided do not match the current values"
    )


_ROUTING_POLICIES = (
    "Weight",
    "Region",
    "Failover",
    "GeoLocation",
    "MultiValueAnswer",
    "GeoProximityLocation",
    "CidrRoutingConfig",
)
_FAILOVER_VALUES = ("PRIMARY", "SECONDARY")


def _in_change(action: str, wanted: dict[str, Any]) -> str:
    name = name_key(str(wanted.get("Name", ""))) + "."
    identifier = wanted.get("SetIdentifier") or "null"
    return f"Change with [Action={action}, Name={name}, Type={wanted.get('Type')}, SetIdentifier={identifier}]"


def check_change(backend: Any, zone: Any, action: str, wanted: dict[str, Any]) -> None:
    """What AWS refuses in a ``CREATE`` or ``UPSERT`` itself, before it is applied."""
    from moto.route53.exceptions import InvalidInput, NoSuchHealthCheck

    if action not in ("CREATE", "UPSERT"):
        return
    identifier = wanted.get("SetIdentifier")
    failover = wanted.get("Failover")
    if failover is not None:
        if not identifier:
            raise InvalidInput(f"Invalid request: Missing field 'SetIdentifier' in {_in_change(action, wanted)}")
        if failover not in _FAILOVER_VALUES:
            raise InvalidInput(
                f"Invalid request: Failover must be PRIMARY or SECONDARY, not {failover}, in {_in_change(action, wanted)}"
            )
    if identifier and not any(wanted.get(policy) is not None for policy in _ROUTING_POLICIES):
        raise InvalidInput(
            "Invalid request: Expected exactly one of [Weight, Region, Failover, GeoLocation, MultiValueAnswer, "
            f"GeoProximityLocation, or CidrRoutingConfig], but found none in {_in_change(action, wanted)}"
        )
    health_check = wanted.get("HealthCheckId")
    if health_check and health_check not in backend.health_checks:
        raise NoSuchHealthCheck(str(health_check))
    if action == "CREATE" and identifier and any(same_set(rrset, wanted) for rrset in zone.rrsets):
        raise _invalid_change_batch(f"Tried to create resource record set [{_describe(wanted)}] but it already exists")


def check_routing(zone: Any, change_list: list[dict[str, Any]]) -> None:
    """What AWS refuses in the zone a batch leaves: simple and routed sets of
    one name and type, two failover sets with one ``Failover`` value."""
    for change in change_list:
        if change.get("Action") not in ("CREATE", "UPSERT"):
            continue
        wanted = change.get("ResourceRecordSet") or {}
        key, kind = name_key(str(wanted.get("Name", ""))), wanted.get("Type")
        group = [rrset for rrset in zone.rrsets if name_key(str(rrset.name)) == key and rrset.type == kind]
        simple = [rrset for rrset in group if not rrset.set_identifier]
        routed = [rrset for rrset in group if rrset.set_identifier]
        identifier = wanted.get("SetIdentifier")
        if simple and routed:
            if identifier:
                raise _invalid_change_batch(
                    f"RRSet with DNS name {key}., type {kind}, SetIdentifier {identifier} cannot be created as a "
                    "non-weighted set exists with the same name and type."
                )
            raise _invalid_change_batch(
                f"RRSet with DNS name {key}., type {kind} cannot be created as weighted sets exist with the same "
                "name and type."
            )
        for value in _FAILOVER_VALUES:
            same = [rrset for rrset in routed if rrset.failover == value]
            if len(same) > 1:
                mine = identifier if any(r.set_identifier == identifier for r in same) else same[-1].set_identifier
                other = next(r.set_identifier for r in same if r.set_identifier != mine)
                raise _invalid_change_batch(
                    f"RRSet with DNS name {key}., type {kind}, SetIdentifier {mine} cannot be created as another "
                    f"failover RRSet (SetIdentifier {other}) with the same name, type and failover value {value} "
                    "exists."
                )


def install() -> None:
    from moto.route53.exceptions import Route53ClientError
    from moto.route53.models import Route53Backend

    original_change = Route53Backend.change_resource_record_sets
    if getattr(original_change, _MARK, False):
        return
    original_create_zone = Route53Backend.create_hosted_zone

    @functools.wraps(original_change)
    def change_resource_record_sets(self: Any, zoneid: str, change_list: list[dict[str, Any]]) -> None:
        with _LOCK:
            zone = self.get_hosted_zone(zoneid)  # NoSuchHostedZone, as before
            rrsets, journal = list(zone.rrsets), len(zone.rr_changes)
            try:
                for change in change_list:
                    action = change.get("Action")
                    wanted = change.get("ResourceRecordSet") or {}
                    check_change(self, zone, str(action), wanted)
                    if action == "DELETE":
                        delete_one(zone, wanted)
                        zone.rr_changes.append(copy.deepcopy(change))
                        continue
                    if action == "UPSERT":
                        zone.rrsets = [rrset for rrset in zone.rrsets if not same_set(rrset, wanted)]
                    # CREATE, UPSERT (now adding) and bad actions: moto's, one change at a time.
                    original_change(self, zoneid, [change])
                check_routing(zone, change_list)
            except Exception:
                zone.rrsets = rrsets
                del zone.rr_changes[journal:]
                raise

    @functools.wraps(original_create_zone)
    def create_hosted_zone(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        reference = kwargs.get("caller_reference")
        with _LOCK:
            used = self.__dict__.setdefault(_REFERENCES, set())
            if reference and reference in used:
                raise Route53ClientError(
                    "HostedZoneAlreadyExists",
                    "A hosted zone has already been created with the specified caller reference.",
                )
            zone = original_create_zone(self, name, *args, **kwargs)
            if reference:
                used.add(reference)
            return zone

    setattr(change_resource_record_sets, _MARK, True)
    Route53Backend.change_resource_record_sets = change_resource_record_sets  # type: ignore[method-assign]
    Route53Backend.create_hosted_zone = create_hosted_zone  # type: ignore[method-assign]
