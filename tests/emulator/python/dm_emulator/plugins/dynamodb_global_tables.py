"""DynamoDB global tables (version 2019.11.21), with multi-Region strong consistency.

moto 5.2.5 keeps one table per (account, region) and has no global tables:
``UpdateTable`` ignores ``ReplicaUpdates``, ``GlobalTableWitnessUpdates``
and ``MultiRegionConsistency`` (the answer is the unchanged table), so a
"replica" region has no table at all (``ResourceNotFoundException``), and
``DescribeTable`` never shows ``Replicas``.  moto also checks and applies a
conditional write in two steps without a lock, so two conditional writes
racing on one item can both succeed.  With this plugin:

* ``UpdateTable`` with ``ReplicaUpdates: [{"Create": {"RegionName": R}}, ...]``
  makes the table a global table: the *same* moto ``Table`` object is
  registered in the DynamoDB backend of region R of the same account.  A write
  through any replica region is therefore visible at once through every other
  one: what multi-Region strong consistency (MRSC, ``MultiRegionConsistency:
  STRONG``) guarantees.  Eventual consistency (MREC, the default) is modelled
  the same way (replication without delay).  ``GlobalTableWitnessUpdates:
  [{"Create": {"RegionName": W}}]`` adds the witness of an MRSC table (a
  witness holds no table: requests there find none).  ``{"Delete":
  {"RegionName": R}}`` removes the replica of R (its registration only: the
  other replicas keep the items); ``{"Delete": ...}`` in
  ``GlobalTableWitnessUpdates`` removes the witness.  Several updates may be
  given in one request (MRSC needs all its regions at once); they are checked
  together and applied together.  ``{"Update": {"RegionName": R}}`` of an
  existing replica is accepted and changes nothing; ``Disassociate`` is not
  supported (400 ``ValidationException``).
* Every replica answers ``DescribeTable`` (and ``UpdateTable`` /
  ``DeleteTable``) with ``GlobalTableVersion`` ``2019.11.21``, ``Replicas``
  listing the *other* replica regions (``{"RegionName", "ReplicaStatus":
  "ACTIVE"}``, in the order they joined; as on AWS the region described is not
  in the list), ``MultiRegionConsistency`` (``EVENTUAL`` or ``STRONG``) and,
  with a witness, ``GlobalTableWitnesses: [{"RegionName", "WitnessStatus":
  "ACTIVE"}]``, and with the ``TableArn`` of its own region.  Replicas and
  witnesses are ``ACTIVE`` at once (AWS shows ``CREATING`` for a while), and
  ``TableStatus`` stays ``ACTIVE``.  A replica's own ARN names its table too.
* Checks, as AWS makes them (400, the messages the emulator's):
  a table name or ARN that the request's region does not have:
  ``ResourceNotFoundException`` "Requested resource not found: Table: T not
  found"; a replica in a region that already has a table of that name (also
  one that is already a replica): ``ValidationException`` "Failed to create a
  the new replica of table with name: 'T' because one or more replicas already
  existed as tables." (AWS's wording); a replica or witness in the request's
  own region, in a region that is not a DynamoDB region, or named twice, a
  ``Delete`` of a region that is not a replica (or witness), deleting the
  replica of the request's own region (use ``DeleteTable`` there), a witness
  without ``MultiRegionConsistency`` ``STRONG``, more than one witness,
  changing ``MultiRegionConsistency`` of an existing global table, or giving
  it without replica updates: ``ValidationException``.  MRSC
  (``STRONG``) must span exactly three regions (the replicas, including the
  table's own region, plus the witness) -- or, when replicas are deleted, end
  as a single-region table -- and can only be enabled on an empty table:
  ``ValidationException`` otherwise.  The Region sets AWS requires for MRSC
  (all three regions in the US, EU or AP set) are not checked.
* ``DeleteTable`` in a replica region removes only that region's replica
  (deletion protection applies, as moto checks it); the others keep the table
  and the items.  A global table left with one replica (an MRSC table's
  witness then goes too, as AWS requires deleting a replica and the witness
  together) is a single-region table again (no ``Replicas``), in that region.
  ``UpdateTable`` ``Delete`` updates leave a single-region table the same way,
  except that an MRSC table's last other replica and its witness must be
  deleted in one request (the three-region rule below).
* Every DynamoDB request of an account is served under one lock of that
  account, so a conditional write (``ConditionExpression``, moto's own
  evaluation, unchanged) is checked and applied atomically whichever replica
  region it goes through: of two ``PutItem`` racing on ``attribute_not_exists(pk)
  OR epoch = :seen`` from two regions, exactly one succeeds and the other gets
  ``ConditionalCheckFailedException``.  ``ReplicatedWriteConflictException``
  (MRSC's answer to concurrent writes of one item from two regions) is never
  raised.

The plugin keeps its state on moto's ``Table`` objects only (the regions of
the group), never in module-level registries: ``POST /_dm/reset`` leaves global
tables as they are (like every moto resource), and moto's own
``/moto-api/reset`` drops every table with its registrations, so no region can
stay registered for a table it no longer belongs to.  No control routes.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.dynamodb.exceptions import MockValidationException, ResourceNotFoundException
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

GLOBAL_TABLE_VERSION = "2019.11.21"
CONSISTENCIES = ("EVENTUAL", "STRONG")
MRSC_REGIONS = 3
_MARK = "_dm_dynamodb_global_tables"
_GLOBAL = "_dm_global"  # attribute of a moto Table: its GlobalTable, while it is one
_TABLE_ARN = re.compile(r"arn:aws[a-z-]*:dynamodb:([a-z0-9-]+):([0-9]{12}):table/([A-Za-z0-9_.-]+)")

# One lock per account: every DynamoDB request of the account runs under it.
_LOCKS_GUARD = threading.Lock()
_LOCKS: dict[str, threading.RLock] = {}
# The region of the request being served (DescribeTable answers per region).
_CTX = threading.local()


@dataclass
class GlobalTable:
    replicas: list[str]  # regions holding the table, in the order they joined
    consistency: str
    witnesses: list[str] = field(default_factory=list)


def _lock(account: str) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(account)
        if lock is None:
            lock = _LOCKS[account] = threading.RLock()
        return lock


def _invalid(message: str) -> MockValidationException:
    return MockValidationException(message)


def group_of(table: Table) -> GlobalTable | None:
    return getattr(table, _GLOBAL, None)


def arn_in(table: Table, region: str) -> str:
    """The ARN of ``table``'s replica in ``region``."""
    return table.table_arn.replace(f":{table.region_name}:", f":{region}:", 1)


def _rehome(table: Table, region: str) -> None:
    """Makes ``region`` the table's own (its ARN names it)."""
    if table.region_name != region:
        table.region_name = region
        table.table_arn = table._generate_arn(table.name)


def _backend(account: str, region: str) -> DynamoDBBackend:
    return dynamodb_backends[account][region]


def _known_region(account: str, region: Any) -> bool:
    return isinstance(region, str) and region in dynamodb_backends[account].regions


# ---------------------------------------------------------------------------
# ReplicaUpdates / GlobalTableWitnessUpdates


@dataclass
class _Plan:
    replicas: list[str]
    witnesses: list[str]
    consistency: str


def _region_of(update: Any, action: str, what: str) -> str:
    spec = update.get(action) if isinstance(update, dict) else None
    region = spec.get("RegionName") if isinstance(spec, dict) else None
    if not isinstance(region, str) or not region:
        raise _invalid(f"1 validation error detected: {what} {action} requires a RegionName")
    return region


def plan_updates(
    account: str,
    region: str,
    table: Table,
    replica_updates: list[Any],
    witness_updates: list[Any],
    consistency: Any,
) -> _Plan:
    """The table's regions after the updates; raises AWS's errors (nothing changed yet)."""
    group = group_of(table)
    replicas = list(group.replicas) if group else [region]
    witnesses = list(group.witnesses) if group else []
    if consistency is not None and consistency not in CONSISTENCIES:
        raise _invalid(
            f"1 validation error detected: Value '{consistency}' at 'multiRegionConsistency' failed to satisfy "
            "constraint: Member must satisfy enum value set: [EVENTUAL, STRONG]"
        )
    if group is not None:
        if consistency is not None and consistency != group.consistency:
            raise _invalid(
                f"MultiRegionConsistency of global table {table.name} is {group.consistency}; "
                "it cannot be changed on an existing global table"
            )
        mode = group.consistency
    else:
        if consistency is not None and not replica_updates:
            raise _invalid("MultiRegionConsistency can only be specified together with ReplicaUpdates that create replicas")
        mode = consistency or "EVENTUAL"

    named: set[str] = set()

    def once(target: str) -> None:
        if target in named:
            raise _invalid(f"Region {target} is named in more than one replica or witness update")
        named.add(target)

    created: list[str] = []
    for update in replica_updates:
        if not isinstance(update, dict) or len([k for k in update if update[k] is not None]) != 1:
            raise _invalid("Each ReplicaUpdate must contain exactly one of Create, Update, Delete or Disassociate")
        if update.get("Create") is not None:
            target = _region_of(update, "Create", "ReplicaUpdate")
            once(target)
            if target == region:
                raise _invalid(f"Cannot create a replica of table {table.name} in its own region {region}")
            if not _known_region(account, target):
                raise _invalid(f"Cannot create a replica of table {table.name} in {target}: not a DynamoDB region")
            if target in witnesses:
                raise _invalid(f"Region {target} is the witness of global table {table.name}")
            existing = dict.get(dict.get(dynamodb_backends, account) or {}, target)
            if target in replicas or (existing is not None and table.name in existing.tables):
                raise _invalid(
                    f"Failed to create a the new replica of table with name: '{table.name}' "
                    "because one or more replicas already existed as tables."
                )
            replicas.append(target)
            created.append(target)
        elif update.get("Delete") is not None:
            target = _region_of(update, "Delete", "ReplicaUpdate")
            once(target)
            if target not in replicas:
                raise _invalid(f"Cannot delete the replica of table {table.name} in {target}: it has none there")
            if target == region:
                raise _invalid(
                    f"Cannot delete the replica of table {table.name} in the region of the request ({region}); "
                    "use DeleteTable there"
                )
            replicas.remove(target)
        elif update.get("Update") is not None:
            target = _region_of(update, "Update", "ReplicaUpdate")
            once(target)
            if target not in replicas:
                raise _invalid(f"Cannot update the replica of table {table.name} in {target}: it has none there")
        elif update.get("Disassociate") is not None:
            raise _invalid("ReplicaUpdates Disassociate is not supported by the emulator")
        else:
            raise _invalid("Each ReplicaUpdate must contain exactly one of Create, Update, Delete or Disassociate")

    if len(witness_updates) > 1:
        raise _invalid("You can create or delete only one witness per UpdateTable request")
    for update in witness_updates:
        if not isinstance(update, dict) or len([k for k in update if update[k] is not None]) != 1:
            raise _invalid("Each GlobalTableWitnessUpdate must contain exactly one of Create or Delete")
        if update.get("Create") is not None:
            target = _region_of(update, "Create", "GlobalTableWitnessUpdate")
            once(target)
            if mode != "STRONG":
                raise _invalid("A witness can only be added to a global table with MultiRegionConsistency STRONG")
            if not _known_region(account, target):
                raise _invalid(f"Cannot create a witness of table {table.name} in {target}: not a DynamoDB region")
            if target in replicas:
                raise _invalid(f"Region {target} holds a replica of table {table.name}; a witness must be elsewhere")
            if witnesses:
                raise _invalid(f"Global table {table.name} already has a witness in {witnesses[0]}")
            witnesses.append(target)
        elif update.get("Delete") is not None:
            target = _region_of(update, "Delete", "GlobalTableWitnessUpdate")
            once(target)
            if target not in witnesses:
                raise _invalid(f"Region {target} is not the witness of global table {table.name}")
            witnesses.remove(target)
        else:
            raise _invalid("Each GlobalTableWitnessUpdate must contain exactly one of Create or Delete")

    if mode == "STRONG":
        total = len(replicas) + len(witnesses)
        single = len(replicas) == 1 and not witnesses
        if not (total == MRSC_REGIONS or (single and group is not None)):
            raise _invalid(
                "A global table with MultiRegionConsistency STRONG must span exactly three regions: "
                f"three replicas, or two replicas and a witness (this request leaves {len(replicas)} "
                f"replica{'s' if len(replicas) != 1 else ''} and {len(witnesses)} witness"
                f"{'es' if len(witnesses) != 1 else ''})"
            )
        if group is None and len(table) > 0:
            raise _invalid(
                f"Table {table.name} is not empty: multi-Region strong consistency can only be enabled on an "
                "empty table"
            )
    return _Plan(replicas, witnesses, mode)


def apply_plan(account: str, region: str, table: Table, plan: _Plan) -> GlobalTable | None:
    """Registers and unregisters the table per ``plan``; returns the group it had (for undo)."""
    before = group_of(table)
    old = set(before.replicas) if before else {region}
    for target in plan.replicas:
        if target not in old:
            _backend(account, target).tables[table.name] = table
    for target in old - set(plan.replicas):
        backend = _backend(account, target)
        if backend.tables.get(table.name) is table:
            del backend.tables[table.name]
    if len(plan.replicas) == 1 and not plan.witnesses:
        setattr(table, _GLOBAL, None)
        _rehome(table, plan.replicas[0])
    else:
        setattr(table, _GLOBAL, GlobalTable(list(plan.replicas), plan.consistency, list(plan.witnesses)))
        if table.region_name not in plan.replicas:
            _rehome(table, plan.replicas[0])
    return before


def _restore(account: str, region: str, table: Table, before: GlobalTable | None, home: str) -> None:
    plan = _Plan(list(before.replicas), list(before.witnesses), before.consistency) if before else _Plan([region], [], "")
    apply_plan(account, region, table, plan)
    _rehome(table, home)


def replica_deleted(table: Table, region: str) -> None:
    """``DeleteTable`` in ``region`` removed that region's replica."""
    group = group_of(table)
    if group is None or region not in group.replicas:
        return
    group.replicas.remove(region)
    if len(group.replicas) <= 1:
        # One replica left (an MRSC table's witness goes with the other one): a single-region table.
        setattr(table, _GLOBAL, None)
    if group.replicas and table.region_name not in group.replicas:
        _rehome(table, group.replicas[0])


# ---------------------------------------------------------------------------
# Patches of moto


def _patch() -> None:
    original_call_action = DynamoHandler.call_action
    original_update_table = DynamoHandler.update_table
    original_describe = Table.describe
    original_get_table = DynamoDBBackend.get_table
    original_delete_table = DynamoDBBackend.delete_table

    @functools.wraps(original_call_action)
    def call_action(self: DynamoHandler) -> Any:
        saved = getattr(_CTX, "region", None)
        _CTX.region = self.region
        try:
            with _lock(self.current_account):
                return original_call_action(self)
        finally:
            _CTX.region = saved

    @functools.wraps(original_update_table)
    def update_table(self: DynamoHandler) -> Any:
        body = self.body
        replica_updates = body.get("ReplicaUpdates") or []
        witness_updates = body.get("GlobalTableWitnessUpdates") or []
        consistency = body.get("MultiRegionConsistency")
        if not replica_updates and not witness_updates and consistency is None:
            return original_update_table(self)
        account, region = self.current_account, self.region
        name = body.get("TableName") or ""
        try:
            table = self.dynamodb_backend.get_table(name)
        except ResourceNotFoundException:
            raise ResourceNotFoundException(table_name=name) from None
        plan = plan_updates(account, region, table, list(replica_updates), list(witness_updates), consistency)
        home = table.region_name
        before = apply_plan(account, region, table, plan)
        try:
            return original_update_table(self)  # the other updates, and the answer
        except BaseException:
            _restore(account, region, table, before, home)
            raise

    @functools.wraps(original_describe)
    def describe(self: Table, base_key: str = "TableDescription") -> dict[str, Any]:
        result = original_describe(self, base_key)
        description = result.get(base_key)
        if not isinstance(description, dict):
            return result
        region = getattr(_CTX, "region", None) or self.region_name
        if region != self.region_name:
            own = arn_in(self, region)
            description["TableArn"] = own
            stream = description.get("LatestStreamArn")
            if isinstance(stream, str) and stream.startswith(self.table_arn):
                description["LatestStreamArn"] = own + stream[len(self.table_arn) :]
        group = group_of(self)
        if group is not None:
            description["GlobalTableVersion"] = GLOBAL_TABLE_VERSION
            description["Replicas"] = [
                {"RegionName": r, "ReplicaStatus": "ACTIVE"} for r in group.replicas if r != region
            ]
            description["MultiRegionConsistency"] = group.consistency
            if group.witnesses:
                description["GlobalTableWitnesses"] = [
                    {"RegionName": w, "WitnessStatus": "ACTIVE"} for w in group.witnesses
                ]
        return result

    @functools.wraps(original_get_table)
    def get_table(self: DynamoDBBackend, table_name: str) -> Table:
        try:
            return original_get_table(self, table_name)
        except ResourceNotFoundException:
            match = _TABLE_ARN.fullmatch(table_name or "")
            if match and match.group(1) == self.region_name and match.group(2) == self.account_id:
                table = self.tables.get(match.group(3))
                if table is not None:
                    return table
            raise

    @functools.wraps(original_delete_table)
    def delete_table(self: DynamoDBBackend, name: str) -> Table:
        with _lock(self.account_id):
            table = original_delete_table(self, name)
            replica_deleted(table, self.region_name)
            return table

    setattr(call_action, _MARK, True)
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoHandler.update_table = update_table  # type: ignore[method-assign]
    Table.describe = describe  # type: ignore[method-assign]
    DynamoDBBackend.get_table = get_table  # type: ignore[method-assign]
    DynamoDBBackend.delete_table = delete_table  # type: ignore[method-assign]


def install() -> None:
    if not getattr(DynamoHandler.call_action, _MARK, False):
        _patch()
