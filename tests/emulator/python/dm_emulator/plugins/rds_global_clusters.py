"""Aurora global databases switch over and fail over, as on AWS.

moto 5.2.5 stores global clusters (``CreateGlobalCluster``, in the
``us-east-1`` backend of the account, so every region sees them) and their
members (``CreateDBCluster`` with ``GlobalClusterIdentifier``, in any region:
the first member is the writer, later ones are secondaries), but
``SwitchoverGlobalCluster`` and ``FailoverGlobalCluster`` are not implemented
(HTTP 500).  With this plugin:

* ``SwitchoverGlobalCluster(GlobalClusterIdentifier, TargetDbClusterIdentifier)``
  starts a switchover: the answer is the global cluster with ``Status``
  ``switching-over`` and ``FailoverState`` ``{Status: switching-over,
  FromDbClusterArn: <writer>, ToDbClusterArn: <target>, IsDataLossAllowed:
  false}``, the members still in their old roles.  When it completes (see
  *Timing*) the target is the writer (``IsWriter`` true, its ``Readers`` the
  other members), the old writer a secondary (``IsWriter`` false), and
  ``Status`` is ``available`` with no ``FailoverState``.
* ``FailoverGlobalCluster(..., AllowDataLoss=true)`` is a global failover:
  the same with ``failing-over`` and ``IsDataLossAllowed: true``.  As on AWS
  since the managed failover of 2023, the old primary is not detached: once
  the failover completes it is back in the global cluster as a secondary
  (``IsWriter`` false) whose ``SynchronizationStatus`` is ``pending-resync``
  for another operation duration, then ``connected``.  The emulator treats
  the old primary's region as reachable at once; its lost writes are not
  modelled (AWS keeps them in a snapshot).  If the global cluster has no
  writer any more (its primary was deleted), the failover just promotes the
  target.
* ``FailoverGlobalCluster`` without ``AllowDataLoss`` (with or without
  ``Switchover=true``) is a switchover, as on AWS.  ``AllowDataLoss`` and
  ``Switchover`` both true is 400 ``InvalidParameterCombination``.
* Errors: an unknown global cluster is 404 ``GlobalClusterNotFoundFault``; a
  target that matches no DB cluster is 404 ``DBClusterNotFoundFault`` (the
  status AWS's model gives it); a DB cluster that is not a member of this
  global cluster, the writer itself as the target, or a global cluster that is
  already switching over or failing over is 400
  ``InvalidGlobalClusterStateFault``; a switchover without a writer is 400
  ``InvalidGlobalClusterStateFault`` too.  The target is best given as an ARN
  (AWS asks for that); a plain identifier names a DB cluster in the request's
  region.
* Every member of ``DescribeGlobalClusters`` has ``SynchronizationStatus``
  (``connected`` unless resyncing).  ``DescribeGlobalClusters`` honours
  ``GlobalClusterIdentifier`` (identifier or ARN, any case; unknown: 404
  ``GlobalClusterNotFoundFault``) and the ``region`` filter (global clusters
  with a member in one of the regions); moto ignored both and listed every
  global cluster.  Other filter names are 400 ``InvalidParameterValue``.
* ``CreateGlobalCluster`` with ``SourceDBClusterIdentifier`` makes that
  cluster the writer (moto left ``IsWriter`` false) and its
  ``GlobalClusterIdentifier`` the identifier (moto stored the ARN).
* ``RemoveFromGlobalCluster`` and ``DeleteDBCluster`` take a member out of
  its global cluster whatever its region (moto looked for the global cluster
  in the member's region, so outside ``us-east-1`` nothing happened and
  ``RemoveFromGlobalCluster`` answered an empty result).  A removed cluster is
  a standalone cluster (no ``GlobalClusterIdentifier``).  Removing a cluster
  that is not a member, or one that a switchover or failover in progress
  involves, is 400 ``InvalidGlobalClusterStateFault``; unknown global cluster
  or DB cluster: 404 as above.

Timing: an operation takes ``duration`` seconds of the emulator's clock (the
one of ``plugins.lifecycle_hooks``: wall clock plus ``POST /_dm/clock``
offsets) from the request; the default is 0.  It completes lazily, at the
start of the first RDS request of the account (any region) at or after its
end, and on the ``/_dm/rds/failover-duration`` routes.  So with the default, the answer of
``SwitchoverGlobalCluster`` shows the operation in progress and the next
``DescribeGlobalClusters`` shows it done -- a client has to poll, as on AWS.
The roles of the members change only when the operation completes.

Control routes (registered with ``dm_emulator.faults``):

``POST /_dm/rds/failover-duration``
    ``{"account": "A", "seconds": N}`` (N in 0..=86400): how long the
    switchovers and failovers of account A take from now on (also how long an
    old primary stays ``pending-resync``).  Answers ``{"account": A,
    "seconds": N}``.
``GET /_dm/rds/failover-duration?account=A``
    The same answer.
``POST /_dm/rds/replication-lag``
    ``{"account": "A", "region": "R", "db_cluster": "C", "lag_ms": L}``:
    records the replication lag of DB cluster C (identifier or ARN; it must
    exist in that account and region) as L milliseconds (>= 0), and puts it
    into moto's CloudWatch of that account and region as AWS does: metric
    ``AuroraGlobalDBReplicationLag``, namespace ``AWS/RDS``, dimension
    ``DBClusterIdentifier=<identifier>``, unit ``Milliseconds``, timestamp
    now (wall clock, as CloudWatch's).  Answers the recorded entry (below).
``GET /_dm/rds/replication-lag?account=A[&region=R][&db_cluster=C]``
    ``{"lags": [{"account", "region", "db_cluster", "db_cluster_arn",
    "lag_ms", "time"}, ...]}``: the latest value recorded per DB cluster
    (``db_cluster`` the identifier, ``time`` the emulator's clock when it was
    recorded), sorted by region and identifier; ``db_cluster`` filters by
    identifier or ARN.

``POST /_dm/reset[?account=A]`` also clears the recorded lags and the
durations (not the CloudWatch datapoints, and not operations in progress).
Fault rules see these requests as service ``rds``, actions
``SwitchoverGlobalCluster`` / ``FailoverGlobalCluster`` / ...
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from moto.core.responses import ActionResult
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBCluster, GlobalCluster, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

from .lifecycle_hooks import now

GLOBAL_REGION = "us-east-1"  # where moto keeps the global clusters of an account
METRIC_NAMESPACE = "AWS/RDS"
LAG_METRIC = "AuroraGlobalDBReplicationLag"
MAX_DURATION = 86400
_ACCOUNT = re.compile(r"[0-9]{12}")
_MARK = "_dm_rds_global_clusters"
_OP = "_dm_operation"  # attribute of a moto GlobalCluster: its Operation in progress
_SYNC = "_dm_sync"  # attribute of a moto DBCluster: (status, until) while resyncing

# Serialises switchovers, failovers and their completion.
_LOCK = threading.RLock()
# Accounts with an operation in progress or a member resyncing.
_ACTIVE: set[str] = set()
_DURATIONS: dict[str, float] = {}
_LAGS: dict[tuple[str, str, str], dict[str, Any]] = {}


@dataclass
class Operation:
    data_loss: bool
    source: DBCluster | None  # the writer being demoted (None: there was none)
    target: DBCluster
    started: float
    duration: float

    @property
    def deadline(self) -> float:
        return self.started + self.duration

    @property
    def status(self) -> str:
        return "failing-over" if self.data_loss else "switching-over"


def _error(code: str, message: str) -> RDSClientError:
    return RDSClientError(code, message)


def _global_backend(account: str) -> RDSBackend | None:
    """The backend holding the account's global clusters, if it exists (none is created)."""
    regional = dict.get(rds_backends, account)
    return dict.get(regional, GLOBAL_REGION) if regional else None


def _find_global(backend: RDSBackend, identifier: str) -> GlobalCluster:
    name = identifier
    if identifier.startswith("arn:") and ":global-cluster:" in identifier:
        name = identifier.rsplit(":global-cluster:", 1)[1]
    found = backend.global_clusters.get(name)
    if found is None:
        raise _error("GlobalClusterNotFoundFault", f"GlobalCluster {identifier} not found.")
    return found


def _find_cluster(account: str, region: str, identifier: str) -> DBCluster | None:
    """The DB cluster an ARN (or an identifier, in ``region``) names, if it exists."""
    name = identifier
    if identifier.startswith("arn:"):
        parts = identifier.split(":")
        if len(parts) != 7 or parts[2] != "rds" or parts[5] != "cluster" or parts[4] != account:
            return None
        region, name = parts[3], parts[6]
    regional = dict.get(rds_backends, account)
    backend = dict.get(regional, region) if regional else None
    if backend is None:
        return None
    return backend.clusters.get(name)


def _writer(gc: GlobalCluster) -> DBCluster | None:
    return next((m for m in gc.members if m.is_writer), None)


# ---------------------------------------------------------------------------
# Operations


def start_operation(
    account: str, region: str, gc: GlobalCluster, target_identifier: str, data_loss: bool
) -> GlobalCluster:
    with _LOCK:
        current: Operation | None = getattr(gc, _OP, None)
        name = gc.global_cluster_identifier
        if current is not None:
            raise _error(
                "InvalidGlobalClusterStateFault",
                f"Global cluster {name} is {current.status}; wait for the operation to finish.",
            )
        target = _find_cluster(account, region, target_identifier)
        if target is None:
            raise _error("DBClusterNotFoundFault", f"DBCluster {target_identifier} not found.")
        if not any(m is target for m in gc.members):
            raise _error(
                "InvalidGlobalClusterStateFault",
                f"DB cluster {target.db_cluster_arn} is not a member of global cluster {name}.",
            )
        if target.is_writer:
            raise _error(
                "InvalidGlobalClusterStateFault",
                f"DB cluster {target.db_cluster_arn} is already the primary cluster of global cluster {name}.",
            )
        source = _writer(gc)
        if source is None and not data_loss:
            raise _error(
                "InvalidGlobalClusterStateFault",
                f"Global cluster {name} has no primary cluster to switch over from.",
            )
        duration = _DURATIONS.get(account, 0.0)
        operation = Operation(data_loss, source, target, now(account), duration)
        setattr(gc, _OP, operation)
        gc.status = operation.status
        _ACTIVE.add(account)
        return gc


def _complete(gc: GlobalCluster, operation: Operation) -> None:
    setattr(gc, _OP, None)
    gc.status = "available"
    if not any(m is operation.target for m in gc.members):
        return  # the target left the global cluster meanwhile: nothing to promote
    for member in gc.members:
        member.is_writer = member is operation.target
    source = operation.source
    if operation.data_loss and source is not None and any(m is source for m in gc.members):
        setattr(source, _SYNC, ("pending-resync", operation.deadline + operation.duration))


def settle(account: str) -> None:
    """Completes the account's operations (and resyncs) that are due by now."""
    if account not in _ACTIVE:
        return
    with _LOCK:
        backend = _global_backend(account)
        if backend is None:
            _ACTIVE.discard(account)
            return
        clock = now(account)
        busy = False
        for gc in list(backend.global_clusters.values()):
            operation: Operation | None = getattr(gc, _OP, None)
            if operation is not None:
                if clock >= operation.deadline:
                    _complete(gc, operation)
                else:
                    busy = True
            for member in gc.members:
                sync = getattr(member, _SYNC, None)
                if sync is not None:
                    if clock >= sync[1]:
                        setattr(member, _SYNC, None)
                    else:
                        busy = True
        if not busy:
            _ACTIVE.discard(account)


# ---------------------------------------------------------------------------
# Patches of moto


def _patch_models() -> None:
    members_property = GlobalCluster.global_cluster_members
    original_members = members_property.fget

    def global_cluster_members(self: GlobalCluster) -> list[dict[str, Any]]:
        members = original_members(self)
        by_arn = {m.db_cluster_arn: m for m in self.members}
        for member in members:
            cluster = by_arn.get(member["DBClusterArn"])
            sync = getattr(cluster, _SYNC, None) if cluster is not None else None
            member["SynchronizationStatus"] = sync[0] if sync else "connected"
        return members

    def failover_state(self: GlobalCluster) -> dict[str, Any] | None:
        operation: Operation | None = getattr(self, _OP, None)
        if operation is None:
            return None
        state: dict[str, Any] = {
            "Status": operation.status,
            "ToDbClusterArn": operation.target.db_cluster_arn,
            "IsDataLossAllowed": operation.data_loss,
        }
        if operation.source is not None:
            state["FromDbClusterArn"] = operation.source.db_cluster_arn
        return state

    GlobalCluster.global_cluster_members = property(global_cluster_members)  # type: ignore[assignment,method-assign]
    GlobalCluster.failover_state = property(failover_state)  # type: ignore[attr-defined]

    original_create = RDSBackend.create_global_cluster

    @functools.wraps(original_create)
    def create_global_cluster(self: RDSBackend, *args: Any, **kwargs: Any) -> GlobalCluster:
        gc = original_create(self, *args, **kwargs)
        if kwargs.get("source_db_cluster_identifier") is not None and len(gc.members) == 1:
            source = gc.members[0]
            source.is_writer = True
            source.global_cluster_identifier = gc.global_cluster_identifier
        return gc

    original_delete = RDSBackend.delete_db_cluster

    @functools.wraps(original_delete)
    def delete_db_cluster(self: RDSBackend, cluster_identifier: str, *args: Any, **kwargs: Any) -> DBCluster:
        cluster = self.clusters.get(cluster_identifier)
        deleted = original_delete(self, cluster_identifier, *args, **kwargs)
        if cluster is not None:
            _detach(self.account_id, cluster)
        return deleted

    setattr(create_global_cluster, _MARK, True)
    RDSBackend.create_global_cluster = create_global_cluster  # type: ignore[method-assign]
    RDSBackend.delete_db_cluster = delete_db_cluster  # type: ignore[method-assign]


def _detach(account: str, cluster: DBCluster) -> GlobalCluster | None:
    """Takes ``cluster`` out of its global cluster (in any region); returns that global cluster."""
    backend = _global_backend(account)
    with _LOCK:
        for gc in list(backend.global_clusters.values()) if backend is not None else []:
            if any(m is cluster for m in gc.members):
                gc.members.remove(cluster)
                cluster.global_cluster_identifier = None
                cluster.is_writer = False
                setattr(cluster, _SYNC, None)
                return gc
    return None


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _patch_responses() -> None:
    original_call_action = RDSResponse.call_action

    @functools.wraps(original_call_action)
    def call_action(self: RDSResponse) -> Any:
        if _ACTIVE:
            settle(self.current_account)
        return original_call_action(self)

    def _required(self: RDSResponse, name: str) -> str:
        value = self.params.get(name)
        if not isinstance(value, str) or not value:
            raise _error("MissingParameter", f"The request must contain the parameter {name}")
        return value

    def switchover_global_cluster(self: RDSResponse) -> ActionResult:
        gc = _find_global(self.global_backend, _required(self, "GlobalClusterIdentifier"))
        target = _required(self, "TargetDbClusterIdentifier")
        gc = start_operation(self.current_account, self.region, gc, target, data_loss=False)
        return ActionResult({"GlobalCluster": gc})

    def failover_global_cluster(self: RDSResponse) -> ActionResult:
        identifier = _required(self, "GlobalClusterIdentifier")
        target = _required(self, "TargetDbClusterIdentifier")
        allow_data_loss = _flag(self.params.get("AllowDataLoss"))
        switchover = _flag(self.params.get("Switchover"))
        if allow_data_loss and switchover:
            raise _error(
                "InvalidParameterCombination",
                "AllowDataLoss and Switchover cannot be specified together.",
            )
        gc = _find_global(self.global_backend, identifier)
        gc = start_operation(self.current_account, self.region, gc, target, data_loss=bool(allow_data_loss))
        return ActionResult({"GlobalCluster": gc})

    def describe_global_clusters(self: RDSResponse) -> ActionResult:
        clusters = list(self.global_backend.describe_global_clusters())
        identifier = self.params.get("GlobalClusterIdentifier")
        if identifier:
            clusters = [_find_global(self.global_backend, identifier)]
        for spec in self.params.get("Filters") or []:
            name = spec.get("Name")
            if name != "region":
                raise _error("InvalidParameterValue", f"Unrecognized filter name: {name}")
            regions = set(spec.get("Values") or [])
            clusters = [c for c in clusters if any(m.region in regions for m in c.members)]
        return ActionResult({"GlobalClusters": clusters})

    def remove_from_global_cluster(self: RDSResponse) -> ActionResult:
        gc = _find_global(self.global_backend, _required(self, "GlobalClusterIdentifier"))
        identifier = _required(self, "DbClusterIdentifier")
        cluster = _find_cluster(self.current_account, self.region, identifier)
        if cluster is None:
            raise _error("DBClusterNotFoundFault", f"DBCluster {identifier} not found.")
        with _LOCK:
            name = gc.global_cluster_identifier
            if not any(m is cluster for m in gc.members):
                raise _error(
                    "InvalidGlobalClusterStateFault",
                    f"DB cluster {cluster.db_cluster_arn} is not a member of global cluster {name}.",
                )
            current: Operation | None = getattr(gc, _OP, None)
            if current is not None and (cluster is current.target or cluster is current.source):
                raise _error(
                    "InvalidGlobalClusterStateFault",
                    f"Global cluster {name} is {current.status}; wait for the operation to finish.",
                )
            _detach(self.current_account, cluster)
        return ActionResult({"GlobalCluster": gc})

    setattr(switchover_global_cluster, _MARK, True)
    RDSResponse.remove_from_global_cluster = remove_from_global_cluster  # type: ignore[method-assign]
    RDSResponse.call_action = call_action  # type: ignore[method-assign]
    RDSResponse.switchover_global_cluster = switchover_global_cluster  # type: ignore[attr-defined]
    RDSResponse.failover_global_cluster = failover_global_cluster  # type: ignore[attr-defined]
    RDSResponse.describe_global_clusters = describe_global_clusters  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# Control routes


def _json_object(body: bytes, fields: set[str], example: str) -> dict[str, Any]:
    data = json.loads(body.decode("utf-8") or "null")
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object like {example}")
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    return data


def _account(value: Any) -> str:
    if not isinstance(value, str) or not _ACCOUNT.fullmatch(value):
        raise ValueError("account (12 digits) is required")
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _number(data: dict[str, Any], name: str, high: float) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number in 0..={high:g}")
    if not 0 <= value <= high:
        raise ValueError(f"{name} must be a number in 0..={high:g}")
    return float(value)


def _duration_answer(account: str) -> dict[str, Any]:
    return {"account": account, "seconds": _DURATIONS.get(account, 0.0)}


def _post_duration(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    data = _json_object(body, {"account", "seconds"}, '{"account": "123456789012", "seconds": 60}')
    account = _account(data.get("account"))
    seconds = _number(data, "seconds", MAX_DURATION)
    with _LOCK:
        _DURATIONS[account] = seconds
    settle(account)
    return 200, _duration_answer(account)


def _get_duration(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    account = _account(params.get("account"))
    settle(account)
    return 200, _duration_answer(account)


def _publish_lag(account: str, region: str, identifier: str, lag_ms: float) -> None:
    from moto.cloudwatch.models import cloudwatch_backends

    cloudwatch_backends[account][region].put_metric_data(
        METRIC_NAMESPACE,
        [
            {
                "MetricName": LAG_METRIC,
                "Dimensions": [{"Name": "DBClusterIdentifier", "Value": identifier}],
                "Value": lag_ms,
                "Unit": "Milliseconds",
            }
        ],
    )


def _post_lag(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    data = _json_object(
        body,
        {"account", "region", "db_cluster", "lag_ms"},
        '{"account": "123456789012", "region": "eu-west-1", "db_cluster": "c", "lag_ms": 250}',
    )
    account = _account(data.get("account"))
    region = _text(data, "region")
    name = _text(data, "db_cluster")
    lag_ms = _number(data, "lag_ms", 1e12)
    if name.startswith("arn:") and name.split(":")[3:4] != [region]:
        raise ValueError(f"db_cluster {name} is not in region {region}")
    cluster = _find_cluster(account, region, name)
    if cluster is None:
        return 404, {"error": f"DB cluster {name} not found in account {account}, region {region}"}
    entry = {
        "account": account,
        "region": region,
        "db_cluster": cluster.db_cluster_identifier,
        "db_cluster_arn": cluster.db_cluster_arn,
        "lag_ms": lag_ms,
        "time": now(account),
    }
    with _LOCK:
        _LAGS[(account, region, cluster.db_cluster_identifier)] = entry
    _publish_lag(account, region, cluster.db_cluster_identifier, lag_ms)
    return 200, entry


def _get_lag(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    account = _account(params.get("account"))
    region = params.get("region") or None
    name = params.get("db_cluster") or None
    with _LOCK:
        found = [
            dict(entry)
            for (acct, reg, _), entry in sorted(_LAGS.items())
            if acct == account
            and (region is None or reg == region)
            and (name is None or name in (entry["db_cluster"], entry["db_cluster_arn"]))
        ]
    return 200, {"lags": found}


def clear(account: str | None) -> None:
    with _LOCK:
        for key in [k for k in _LAGS if account is None or k[0] == account]:
            del _LAGS[key]
        if account is None:
            _DURATIONS.clear()
        else:
            _DURATIONS.pop(account, None)


def install() -> None:
    from ..faults import add_control_route, add_reset_hook

    if not getattr(RDSBackend.create_global_cluster, _MARK, False):
        _patch_models()
    if not getattr(getattr(RDSResponse, "switchover_global_cluster", None), _MARK, False):
        _patch_responses()
    add_control_route("POST", "rds/failover-duration", _post_duration)
    add_control_route("GET", "rds/failover-duration", _get_duration)
    add_control_route("POST", "rds/replication-lag", _post_lag)
    add_control_route("GET", "rds/replication-lag", _get_lag)
    add_reset_hook("rds_global_clusters", clear)
