"""Route 53 health checks that follow CloudWatch alarms, and the DNS answer of a name.

moto 5.2.5 stores health checks but knows nothing of ``CLOUDWATCH_METRIC``
ones: ``AlarmIdentifier`` and ``InsufficientDataHealthStatus`` are dropped,
``GetHealthCheck`` reports such a check with moto's defaults of an HTTP check
(``Port`` 80, ``RequestInterval`` 30, ...), and ``GetHealthCheckStatus``
answers "Success: HTTP Status Code: 200" for every health check whatever its
alarm says.  ``CreateHealthCheck`` ignores ``CallerReference`` (a retried
request makes a second health check), ``ListHealthChecks`` ignores ``Marker``
and ``MaxItems`` (one page, no ``IsTruncated``), ``UpdateHealthCheck`` never
increments ``HealthCheckVersion``.  And nothing answers DNS queries, so no
test could see which record of a failover pair Route 53 would serve.  With
this plugin:

* ``CreateHealthCheck`` with ``HealthCheckConfig.Type`` ``CLOUDWATCH_METRIC``
  stores ``AlarmIdentifier`` (``Region``, ``Name``; required: 400
  ``InvalidInput`` without it), ``InsufficientDataHealthStatus``
  (``Healthy`` | ``Unhealthy`` | ``LastKnownStatus``; default
  ``LastKnownStatus``), ``Inverted`` and ``Disabled``.  ``GetHealthCheck``,
  ``ListHealthChecks`` and the create answer give its ``HealthCheckConfig`` as
  AWS does for that type (``Type``, ``Inverted``, ``Disabled``,
  ``AlarmIdentifier``, ``InsufficientDataHealthStatus``; no address, port or
  interval) and, while the alarm exists in the emulator's CloudWatch,
  ``CloudWatchAlarmConfiguration`` (the alarm's metric, statistic, period,
  evaluation periods, threshold, comparison operator and dimensions).  The
  alarm need not exist (it is looked up when the check is evaluated).  The
  create answer has a ``Location`` header.
* ``CallerReference`` as AWS documents it (every health check type): the same
  reference with the same ``HealthCheckConfig`` returns the existing health
  check (no second one); the same reference with another configuration, or
  the reference of a deleted health check, is 409 ``HealthCheckAlreadyExists``.
  An ``UpdateHealthCheck`` becomes part of the configuration the reference
  is compared with.
* ``UpdateHealthCheck`` also updates ``AlarmIdentifier`` and
  ``InsufficientDataHealthStatus``, increments ``HealthCheckVersion``, and
  with ``HealthCheckVersion`` other than the current one is 409
  ``HealthCheckVersionMismatch``.
* ``ListHealthChecks`` pages: ``MaxItems`` (default 100, at most 1000),
  ``Marker`` (the id of the first health check of the page; unknown: 400
  ``InvalidInput``), ``IsTruncated``, ``NextMarker``, ``MaxItems`` echoed.
* ``GetHealthCheckStatus`` of a ``CLOUDWATCH_METRIC`` check evaluates it now:
  the alarm ``AlarmIdentifier.Name`` in moto's CloudWatch of (account,
  ``AlarmIdentifier.Region``) is first evaluated the way ``cloudwatch_alarms``
  evaluates alarms when they are described (its ``evaluate_alarm``); then
  ``OK`` is healthy, ``ALARM`` unhealthy, and ``INSUFFICIENT_DATA`` (or no
  such alarm) per ``InsufficientDataHealthStatus``: ``Healthy``,
  ``Unhealthy``, or ``LastKnownStatus``: the status the alarm last gave the
  check (``OK`` / ``ALARM`` seen at an evaluation), healthy if it never gave
  one.  ``Inverted`` then flips the result; a ``Disabled`` check is always
  healthy.  The answer is AWS's shape: ``HealthCheckObservations``, one per
  health checker region (``us-east-1``, ``us-west-2``, ``eu-west-1``), each
  with ``Region``, ``IPAddress`` and ``StatusReport`` (``Status`` "Success:
  ..." or "Failure: ..." naming the alarm and its state, ``CheckedTime``).
  Other health check types keep moto's answer (always "Success").
* Deleting a health check a record set still uses is 400 ``HealthCheckInUse``.

Record-change validation for failover records lives in ``route53_changes``.

Control route (registered with ``dm_emulator.faults``):

``GET /_dm/route53/resolve?account=A&zone=Z&name=N[&type=T]``
    What Route 53 would answer now for name N (any case, final dot or not)
    and type T (default ``A``) in hosted zone Z of account A (the id with or
    without ``/hostedzone/``; unknown: 404)::

        {"name": "api.example.com.", "type": "A", "values": ["10.0.0.1"],
         "record": {"setIdentifier": "us-east-1", "failover": "PRIMARY",
                    "healthCheckId": "..."}}

    ``values`` sorted; ``record`` the set answered (``setIdentifier``,
    ``failover`` and ``healthCheckId`` null for a simple set), or null with
    ``values`` [] when the name has no set of that type.  Simple sets: their
    values (the union, if moto's ``CREATE`` made duplicates).  Failover sets:
    the ``PRIMARY`` if it is healthy, else the ``SECONDARY`` if it is healthy,
    else (all unhealthy: Route 53 then treats them all as healthy) the
    ``PRIMARY`` (or the only set there is).  A set is healthy when it has no
    health check (or one that no longer exists), or its health check is
    healthy (evaluated as ``GetHealthCheckStatus`` does; HTTP, TCP and
    calculated checks count as healthy, as moto reports them), and, for an
    alias with ``EvaluateTargetHealth``, when its target answers something.
    An alias to a name in the same zone is followed (its values are the
    target's answer for the same type; a loop answers nothing); an alias to
    anything else answers its ``DNSName``.  Other routing policies (weighted,
    latency, ...) answer the first healthy set by ``SetIdentifier`` (all
    unhealthy: the first), not a weighted or nearest choice.

The route answers ``{"error": ...}`` with 400 for a missing or bad
parameter.  Health checks and the last known statuses are moto's resources
(``POST /_dm/reset`` leaves them).
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.route53.exceptions import InvalidInput, NoSuchHostedZone, Route53ClientError
from moto.route53.models import HealthCheck, Route53Backend, route53_backends
from moto.route53.responses import Route53

from . import cloudwatch_alarms
from .route53_changes import _LOCK, name_key, values_of

CLOUDWATCH_METRIC = "CLOUDWATCH_METRIC"
INSUFFICIENT_DATA_STATUSES = ("Healthy", "Unhealthy", "LastKnownStatus")
DEFAULT_INSUFFICIENT_DATA = "LastKnownStatus"
# Where the observations of GetHealthCheckStatus come from (a few of AWS's checker regions).
CHECKER_REGIONS = (("us-east-1", "127.0.13.37"), ("us-west-2", "127.0.13.38"), ("eu-west-1", "127.0.13.39"))
MAX_ITEMS = 1000
DEFAULT_MAX_ITEMS = 100
MAX_ALIAS_DEPTH = 8
PARTITION = "aws"
_ACCOUNT = re.compile(r"[0-9]{12}")
_MARK = "_dm_route53_health_checks"
_REFERENCES = "_dm_health_check_references"  # backend attribute: reference -> health check id
# Attributes of a moto HealthCheck.
_ACCOUNT_OF = "_dm_account"
_ALARM = "_dm_alarm"  # {"Region", "Name"}
_INSUFFICIENT = "_dm_insufficient_data"
_LAST_HEALTHY = "_dm_last_healthy"  # what the alarm last said (True: OK, False: ALARM)
_REQUEST = "_dm_request"  # the configuration its caller reference stands for
# HealthCheckConfig members UpdateHealthCheck can change (same names in both requests).
_UPDATABLE = (
    "IPAddress",
    "Port",
    "ResourcePath",
    "FullyQualifiedDomainName",
    "SearchString",
    "FailureThreshold",
    "HealthThreshold",
    "Inverted",
    "Disabled",
    "EnableSNI",
    "ChildHealthChecks",
    "Regions",
    "AlarmIdentifier",
    "InsufficientDataHealthStatus",
)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _normalized(value: Any) -> Any:
    """A request value compared without regard to how the XML spelled it."""
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in sorted(value.items()) if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------
# Evaluation


def _alarm(account: str, region: str, name: str) -> Any:
    """The CloudWatch alarm, evaluated now, or None (no backend is created)."""
    from moto.cloudwatch.models import cloudwatch_backends

    regional = dict.get(cloudwatch_backends, account)
    backend = dict.get(regional, region) if regional else None
    if backend is None:
        return None
    alarm = backend.alarms.get(name)
    if alarm is not None:
        cloudwatch_alarms.evaluate_alarm(backend, alarm)
    return alarm


def evaluate(health_check: HealthCheck) -> tuple[bool, str]:
    """(healthy, the StatusReport text) of a health check, now."""
    if health_check.type_ != CLOUDWATCH_METRIC:
        return True, "Success: HTTP Status Code: 200. Resolved IP: 127.0.13.37. OK"
    if _flag(health_check.disabled):
        return True, "Success: The health check is disabled; Route 53 considers it healthy."
    account = getattr(health_check, _ACCOUNT_OF, None) or ""
    identifier = getattr(health_check, _ALARM, None) or {}
    region, name = str(identifier.get("Region", "")), str(identifier.get("Name", ""))
    with _LOCK:
        alarm = _alarm(account, region, name) if account and region and name else None
        state = alarm.state_value if alarm is not None else None
        if state == "OK":
            healthy = True
            setattr(health_check, _LAST_HEALTHY, True)
            reason = f"CloudWatch alarm {name} ({region}) is in state OK."
        elif state == "ALARM":
            healthy = False
            setattr(health_check, _LAST_HEALTHY, False)
            reason = f"CloudWatch alarm {name} ({region}) is in state ALARM."
        else:
            policy = getattr(health_check, _INSUFFICIENT, None) or DEFAULT_INSUFFICIENT_DATA
            if policy == "Healthy":
                healthy = True
            elif policy == "Unhealthy":
                healthy = False
            else:
                healthy = bool(getattr(health_check, _LAST_HEALTHY, True))
            what = "has insufficient data" if alarm is not None else "does not exist"
            reason = f"CloudWatch alarm {name} ({region}) {what}; InsufficientDataHealthStatus is {policy}."
    if _flag(health_check.inverted):
        healthy = not healthy
        reason += " The health check is inverted."
    return healthy, ("Success: " if healthy else "Failure: ") + reason


# ---------------------------------------------------------------------------
# Patches of moto


def _alarm_configuration(self: HealthCheck) -> dict[str, Any] | None:
    if self.type_ != CLOUDWATCH_METRIC:
        return None
    account = getattr(self, _ACCOUNT_OF, None)
    identifier = getattr(self, _ALARM, None) or {}
    if not account or not identifier:
        return None
    from moto.cloudwatch.models import cloudwatch_backends

    regional = dict.get(cloudwatch_backends, account)
    backend = dict.get(regional, str(identifier.get("Region"))) if regional else None
    alarm = backend.alarms.get(str(identifier.get("Name"))) if backend is not None else None
    if alarm is None or not alarm.metric_name or not alarm.statistic:
        return None
    configuration: dict[str, Any] = {
        "EvaluationPeriods": int(alarm.evaluation_periods),
        "Threshold": float(alarm.threshold),
        "ComparisonOperator": alarm.comparison_operator,
        "Period": int(alarm.period),
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        "Statistic": alarm.statistic,
    }
    dimensions = [{"Name": d.name, "Value": d.value} for d in alarm.dimensions or []]
    if dimensions:
        configuration["Dimensions"] = dimensions
    return configuration


def _patch_models() -> None:
    config_property = HealthCheck.health_check_config
    original_config = config_property.fget

    def health_check_config(self: HealthCheck) -> dict[str, Any]:
        if self.type_ != CLOUDWATCH_METRIC:
            return original_config(self)
        config: dict[str, Any] = {
            "Type": self.type_,
            "Inverted": _flag(self.inverted),
            "Disabled": _flag(self.disabled),
            "AlarmIdentifier": getattr(self, _ALARM, None),
            "InsufficientDataHealthStatus": getattr(self, _INSUFFICIENT, None) or DEFAULT_INSUFFICIENT_DATA,
        }
        return config

    HealthCheck.health_check_config = property(health_check_config)  # type: ignore[assignment,method-assign]
    HealthCheck.cloud_watch_alarm_configuration = property(_alarm_configuration)  # type: ignore[attr-defined]

    original_delete = Route53Backend.delete_health_check

    @functools.wraps(original_delete)
    def delete_health_check(self: Route53Backend, health_check_id: str) -> None:
        with _LOCK:
            for zone in list(self.zones.values()):
                for rrset in zone.rrsets:
                    if rrset.health_check_id == health_check_id:
                        raise Route53ClientError(
                            "HealthCheckInUse",
                            f"The health check {health_check_id} is in use by a resource record set "
                            f"({rrset.name}, {rrset.type}) and cannot be deleted.",
                        )
            original_delete(self, health_check_id)

    setattr(delete_health_check, _MARK, True)
    Route53Backend.delete_health_check = delete_health_check  # type: ignore[method-assign]


def _references(backend: Route53Backend) -> dict[str, str]:
    return backend.__dict__.setdefault(_REFERENCES, {})


def _check_cloudwatch_config(config: dict[str, Any]) -> None:
    identifier = config.get("AlarmIdentifier")
    if not isinstance(identifier, dict) or not identifier.get("Region") or not identifier.get("Name"):
        raise InvalidInput(
            "Invalid parameter: AlarmIdentifier with Region and Name is required for a health check of type "
            "CLOUDWATCH_METRIC"
        )
    status = config.get("InsufficientDataHealthStatus")
    if status is not None and status not in INSUFFICIENT_DATA_STATUSES:
        raise InvalidInput(
            f"Invalid parameter: InsufficientDataHealthStatus {status} is not one of Healthy, Unhealthy, "
            "LastKnownStatus"
        )


def _set_cloudwatch(health_check: HealthCheck, config: dict[str, Any]) -> None:
    identifier = config.get("AlarmIdentifier")
    if isinstance(identifier, dict):
        setattr(health_check, _ALARM, {"Region": str(identifier["Region"]), "Name": str(identifier["Name"])})
    status = config.get("InsufficientDataHealthStatus")
    if status is not None:
        setattr(health_check, _INSUFFICIENT, status)


def _created(health_check: HealthCheck) -> ActionResult:
    return ActionResult(
        {
            "HealthCheck": health_check,
            "Location": f"https://route53.amazonaws.com/2013-04-01/healthcheck/{health_check.id}",
        }
    )


def _patch_responses() -> None:
    original_create = Route53.create_health_check
    original_update = Route53.update_health_check
    original_status = Route53.get_health_check_status

    @functools.wraps(original_create)
    def create_health_check(self: Route53) -> ActionResult:
        reference = self._get_param("CallerReference")
        config = self._get_param("HealthCheckConfig") or {}
        backend = self.backend
        with _LOCK:
            references = _references(backend)
            wanted = _normalized(config)
            if reference and reference in references:
                existing = backend.health_checks.get(references[reference])
                if existing is None or getattr(existing, _REQUEST, None) != wanted:
                    raise Route53ClientError(
                        "HealthCheckAlreadyExists",
                        f"A health check with caller reference {reference} already exists (or existed) with "
                        "other settings.",
                    )
                return _created(existing)
            if config.get("Type") == CLOUDWATCH_METRIC:
                _check_cloudwatch_config(config)
            result = original_create(self)
            health_check = result.result["HealthCheck"]  # type: ignore[index]
            setattr(health_check, _ACCOUNT_OF, self.current_account)
            setattr(health_check, _REQUEST, wanted)
            if config.get("Type") == CLOUDWATCH_METRIC:
                setattr(health_check, _INSUFFICIENT, DEFAULT_INSUFFICIENT_DATA)
                _set_cloudwatch(health_check, config)
            if reference:
                references[reference] = health_check.id
            return _created(health_check)

    @functools.wraps(original_update)
    def update_health_check(self: Route53) -> ActionResult:
        backend = self.backend
        with _LOCK:
            health_check = backend.get_health_check(self._get_param("HealthCheckId"))
            version = self._get_param("HealthCheckVersion")
            if version is not None and int(version) != int(health_check.health_check_version):
                raise Route53ClientError(
                    "HealthCheckVersionMismatch",
                    f"The value of HealthCheckVersion ({version}) does not match the current version "
                    f"({health_check.health_check_version}) of the health check.",
                )
            changes = {name: self._get_param(name) for name in _UPDATABLE}
            changes = {k: v for k, v in changes.items() if v is not None and v != []}
            if health_check.type_ == CLOUDWATCH_METRIC:
                merged = dict(health_check.health_check_config)
                merged.update(changes)
                _check_cloudwatch_config(merged)
            original_update(self)
            if health_check.type_ == CLOUDWATCH_METRIC:
                _set_cloudwatch(health_check, changes)
            request = getattr(health_check, _REQUEST, None)
            if isinstance(request, dict):
                request.update(_normalized(changes))
            health_check.health_check_version = int(health_check.health_check_version) + 1
            return ActionResult({"HealthCheck": health_check})

    def list_health_checks(self: Route53) -> ActionResult:
        checks = list(self.backend.list_health_checks())
        marker = self._get_param("Marker")
        max_text = self._get_param("MaxItems")
        try:
            max_items = int(max_text) if max_text not in (None, "") else DEFAULT_MAX_ITEMS
        except ValueError:
            raise InvalidInput(f"Invalid parameter: MaxItems {max_text} is not a number") from None
        max_items = max(1, min(max_items, MAX_ITEMS))
        start = 0
        if marker:
            ids = [c.id for c in checks]
            if marker not in ids:
                raise InvalidInput(f"Invalid parameter: Marker {marker} names no health check")
            start = ids.index(marker)
        page = checks[start : start + max_items]
        truncated = start + max_items < len(checks)
        result: dict[str, Any] = {
            "HealthChecks": page,
            "IsTruncated": truncated,
            "MaxItems": str(max_items),
        }
        if marker:
            result["Marker"] = marker
        if truncated:
            result["NextMarker"] = checks[start + max_items].id
        return ActionResult(result)

    @functools.wraps(original_status)
    def get_health_check_status(self: Route53) -> ActionResult:
        health_check = self.backend.get_health_check(self._get_param("HealthCheckId"))
        if health_check.type_ != CLOUDWATCH_METRIC:
            return original_status(self)
        _, status = evaluate(health_check)
        checked = datetime.now(timezone.utc).replace(tzinfo=None)
        observations = [
            {"Region": region, "IPAddress": address, "StatusReport": {"Status": status, "CheckedTime": checked}}
            for region, address in CHECKER_REGIONS
        ]
        return ActionResult({"HealthCheckObservations": observations})

    setattr(create_health_check, _MARK, True)
    Route53.create_health_check = create_health_check  # type: ignore[method-assign]
    Route53.update_health_check = update_health_check  # type: ignore[method-assign]
    Route53.list_health_checks = list_health_checks  # type: ignore[method-assign]
    Route53.get_health_check_status = get_health_check_status  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# The DNS answer


def _record(rrset: Any) -> dict[str, Any]:
    return {
        "setIdentifier": rrset.set_identifier or None,
        "failover": rrset.failover or None,
        "healthCheckId": rrset.health_check_id or None,
    }


class _Resolver:
    def __init__(self, backend: Route53Backend, zone: Any) -> None:
        self.backend = backend
        self.zone = zone
        self.zone_key = name_key(zone.name)
        self.active: set[tuple[str, str]] = set()  # aliases being followed (loops answer nothing)

    def answer(self, name: str, kind: str, depth: int = 0) -> tuple[list[str], Any]:
        """(values, the set answered or None) for ``name`` and ``kind``."""
        key = (name_key(name), kind)
        if depth > MAX_ALIAS_DEPTH or key in self.active:
            return [], None
        sets = [s for s in self.zone.rrsets if name_key(str(s.name)) == key[0] and s.type == kind]
        if not sets:
            return [], None
        self.active.add(key)
        try:
            simple = [s for s in sets if not s.set_identifier]
            if simple:
                values: set[str] = set()
                for rrset in simple:
                    values.update(self.values(rrset, depth))
                return sorted(values), simple[0]
            chosen = self.choose([s for s in sets if s.set_identifier], depth)
            return sorted(set(self.values(chosen, depth))), chosen
        finally:
            self.active.discard(key)

    def choose(self, sets: list[Any], depth: int) -> Any:
        failover = [s for s in sets if s.failover]
        if failover:
            primary = next((s for s in failover if s.failover == "PRIMARY"), None)
            secondary = next((s for s in failover if s.failover == "SECONDARY"), None)
            for candidate in (primary, secondary):
                if candidate is not None and self.healthy(candidate, depth):
                    return candidate
            return primary or secondary
        ordered = sorted(sets, key=lambda s: str(s.set_identifier))
        return next((s for s in ordered if self.healthy(s, depth)), ordered[0])

    def healthy(self, rrset: Any, depth: int) -> bool:
        if rrset.health_check_id:
            health_check = self.backend.health_checks.get(rrset.health_check_id)
            if health_check is not None and not evaluate(health_check)[0]:
                return False
        alias = rrset.alias_target
        if alias and _flag(alias.get("EvaluateTargetHealth", False)):
            return bool(self.values(rrset, depth))
        return True

    def values(self, rrset: Any, depth: int) -> list[str]:
        alias = rrset.alias_target
        if not alias:
            return values_of(rrset.records)
        target = str(alias.get("DNSName", ""))
        target_key = name_key(target)
        zone_id = str(alias.get("HostedZoneId", "")).replace("/hostedzone/", "")
        same_zone = zone_id == self.zone.resource_id or (
            not zone_id and (target_key == self.zone_key or target_key.endswith("." + self.zone_key))
        )
        if same_zone:
            return self.answer(target, rrset.type, depth + 1)[0]
        return [target_key]


def resolve(account: str, zone_id: str, name: str, kind: str = "A") -> dict[str, Any]:
    """The answer of ``GET /_dm/route53/resolve``; NoSuchHostedZone if the zone is unknown."""
    regional = dict.get(route53_backends, account)
    backend = dict.get(regional, PARTITION) if regional else None
    if backend is None:
        raise NoSuchHostedZone(zone_id)
    with _LOCK:
        zone = backend.get_hosted_zone(zone_id)
        values, chosen = _Resolver(backend, zone).answer(name, kind)
    return {
        "name": name_key(name) + ".",
        "type": kind,
        "values": values,
        "record": _record(chosen) if chosen is not None else None,
    }


def _get_resolve(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    account = params.get("account") or ""
    if not _ACCOUNT.fullmatch(account):
        raise ValueError("account (12 digits) is required")
    zone = params.get("zone") or ""
    name = params.get("name") or ""
    if not zone or not name:
        raise ValueError("zone and name are required")
    kind = (params.get("type") or "A").upper()
    try:
        return 200, resolve(account, zone, name, kind)
    except NoSuchHostedZone:
        return 404, {"error": f"no hosted zone {zone} in account {account}"}


def install() -> None:
    from ..faults import add_control_route

    if not getattr(Route53Backend.delete_health_check, _MARK, False):
        _patch_models()
    if not getattr(Route53.create_health_check, _MARK, False):
        _patch_responses()
    add_control_route("GET", "route53/resolve", _get_resolve)
