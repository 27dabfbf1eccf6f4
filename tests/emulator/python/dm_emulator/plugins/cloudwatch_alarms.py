"""CloudWatch metric alarms evaluate, change state and emit state-change events.

AWS evaluates every metric alarm each minute; a change of state is an
EventBridge event ``CloudWatch Alarm State Change``.  moto 5.2.5 never
evaluates: an alarm stays ``OK`` ("Unchecked: Initial alarm creation")
whatever data arrives.  Here (every protocol: Query, JSON, rpcv2 CBOR):

* ``PutMetricAlarm`` creates an alarm in ``INSUFFICIENT_DATA``, like AWS;
  updating an existing alarm keeps its state (moto reset it to ``OK``).
* An alarm is evaluated lazily: when alarms are described
  (``DescribeAlarms``, ``DescribeAlarmsForMetric``, ``DescribeAlarmHistory``),
  when metric data is put, and when the alarm is created or updated.
* Evaluation: the metric (``Namespace``, ``MetricName``, exactly these
  ``Dimensions``, ``Unit`` if set; or the single ``MetricStat`` query of a
  ``Metrics`` alarm) is cut into periods aligned to multiples of ``Period``
  since the epoch.  The window is the ``EvaluationPeriods`` most recent
  periods, ending with the current period if it has data, else with the
  previous one.  Each period's ``Statistic`` (``SampleCount``, ``Average``,
  ``Sum``, ``Minimum``, ``Maximum``, or an ``ExtendedStatistic`` ``pNN``)
  is compared with ``Threshold`` by ``ComparisonOperator``; a period without
  data is missing.  With ``M`` = ``DatapointsToAlarm`` (default
  ``EvaluationPeriods``) and ``TreatMissingData``:

  - ``breaching`` / ``notBreaching``: missing periods count as breaching /
    not breaching; ``ALARM`` if at least ``M`` breach, else ``OK``;
  - ``missing`` (the default): no data in the window -> ``INSUFFICIENT_DATA``;
    else ``ALARM`` if at least ``min(M, periods with data)`` breach, else ``OK``;
  - ``ignore``: like ``missing``, except that no data keeps the current state.

  Metric-math alarms with expressions, anomaly-detection operators and
  composite alarms are not evaluated.
* ``SetAlarmState`` sets the state as in AWS; the alarm then keeps it until
  matching metric data is put or the alarm is updated (AWS re-evaluates
  within a minute; describing here does not undo the state at once).
* Every change of state (evaluated or set) gets ``StateReason``,
  ``StateReasonData`` and ``StateUpdatedTimestamp`` like AWS, a
  ``StateUpdate`` history item, and an event; creating and updating an alarm
  add ``ConfigurationUpdate`` items.  ``DescribeAlarmHistory`` (which moto
  lacks) answers from these items (``AlarmName``, ``HistoryItemType``,
  ``StartDate``, ``EndDate``, ``ScanBy``, ``MaxRecords``/``NextToken``).
* ``DescribeAlarms`` combines its filters like AWS (``AlarmNames`` or
  ``AlarmNamePrefix`` with ``StateValue`` and ``ActionPrefix``), returns
  composite alarms only if ``AlarmTypes`` asks for them, sorts by name and
  pages with ``MaxRecords``/``NextToken`` (moto applied only the first filter).

Control route (registered with ``dm_emulator.faults``):

``GET /_dm/alarm-events?account=A[&since=N][&region=R][&alarm=NAME]``
    ``{"events": [{"seq": 1, "region", "alarm", "event": {...}, "json": "..."}, ...],
    "last_seq": m}``: the alarm state-change events of account A (required)
    with ``seq`` > N (default 0), oldest first.  ``seq`` counts per account
    from 1 and is never reused (not even after a reset); ``last_seq`` is the
    account's highest so far.  ``event`` is the EventBridge event and
    ``json`` the same as the exact text to deliver.  The account's alarms
    are evaluated first, as when they are described::

        {"version": "0", "id": "...", "detail-type": "CloudWatch Alarm State Change",
         "source": "aws.cloudwatch", "account": "...", "time": "2026-01-01T00:00:00Z",
         "region": "...", "resources": ["arn:aws:cloudwatch:...:alarm:NAME"],
         "detail": {"alarmName": "NAME",
                    "state": {"value": "ALARM", "reason": "...", "reasonData": "...",
                              "timestamp": "2026-01-01T00:00:00.000+0000"},
                    "previousState": {...},
                    "configuration": {"description": "...", "metrics": [{"id": "...",
                        "metricStat": {"metric": {"namespace": "...", "name": "...",
                        "dimensions": {...}}, "period": 60, "stat": "Average"},
                        "returnData": true}]}}}

``POST /_dm/reset[?account=A]`` also clears the recorded events (not their
sequence numbers) and the alarm history (of that account).
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import cbor

_MARK = "_dm_cloudwatch_alarms"
_LOCK = threading.RLock()
_EVENTS: list[AlarmEvent] = []
_HISTORY: dict[tuple[str, str], list[dict[str, Any]]] = {}
_SEQ: dict[str, int] = {}  # account -> last sequence number

_OPERATORS = {
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", lambda v, t: v >= t),
    "GreaterThanThreshold": ("greater than", lambda v, t: v > t),
    "LessThanThreshold": ("less than", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("less than or equal to", lambda v, t: v <= t),
}
_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


@dataclass(frozen=True)
class AlarmEvent:
    seq: int
    account: str
    region: str
    alarm: str
    json: str  # the EventBridge event, as JSON text

    def answer(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "account": self.account,
            "region": self.region,
            "alarm": self.alarm,
            "event": json.loads(self.json),
            "json": self.json,
        }


def events(
    account: str | None = None, since: int = 0, region: str | None = None, alarm: str | None = None
) -> list[AlarmEvent]:
    with _LOCK:
        return [
            e
            for e in _EVENTS
            if e.seq > since
            and (account is None or e.account == account)
            and (region is None or e.region == region)
            and (alarm is None or e.alarm == alarm)
        ]


def clear(account: str | None = None) -> None:
    with _LOCK:
        if account is None:
            _EVENTS.clear()
            _HISTORY.clear()
            return
        _EVENTS[:] = [e for e in _EVENTS if e.account != account]
        for key in [k for k in _HISTORY if k[0] == account]:
            del _HISTORY[key]


# ---------------------------------------------------------------------------
# Formatting


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _naive_utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def _event_timestamp(value: datetime) -> str:
    """``2019-10-02T17:04:40.989+0000``, as in AWS's alarm events."""
    value = _aware(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _number(value: float) -> str:
    return repr(float(value))


def _short_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%d/%m/%y %H:%M:%S")


# ---------------------------------------------------------------------------
# Evaluation


@dataclass
class _Spec:
    namespace: str
    name: str
    dimensions: dict[str, str]
    stat: str
    period: int
    unit: str | None


def _supported_stat(stat: str) -> bool:
    if stat in ("SampleCount", "Average", "Sum", "Minimum", "Maximum"):
        return True
    try:
        return stat[:1] == "p" and 0 <= float(stat[1:]) <= 100
    except ValueError:
        return False


def _spec(alarm: Any) -> _Spec | None:
    spec = _raw_spec(alarm)
    return spec if spec is not None and _supported_stat(spec.stat) and spec.period > 0 else None


def _raw_spec(alarm: Any) -> _Spec | None:
    if getattr(alarm, "rule", None) is not None:
        return None
    if alarm.comparison_operator not in _OPERATORS or alarm.threshold is None:
        return None
    queries = list(alarm.metric_data_queries or [])
    if queries:
        returned = [q for q in queries if str(q.return_data).lower() not in ("false", "0")] or queries
        if len(queries) != 1 and len(returned) != 1:
            return None
        query = returned[0] if len(returned) == 1 else queries[0]
        stat = query.metric_stat
        if query.expression or stat is None or stat.metric is None:
            return None
        dims = {d.name: d.value for d in stat.metric.dimensions or []}
        period = stat.period or query.period
        return _Spec(stat.metric.namespace, stat.metric.metric_name, dims, str(stat.stat), int(period or 60), stat.unit)
    statistic = alarm.statistic or alarm.extended_statistic
    if not alarm.metric_name or not statistic or not alarm.period:
        return None
    dims = {d.name: d.value for d in alarm.dimensions or []}
    return _Spec(alarm.namespace, alarm.metric_name, dims, str(statistic), int(alarm.period), alarm.unit)


def _datapoints(backend: Any, spec: _Spec) -> list[Any]:
    data = list(backend.metric_data)
    if spec.namespace and spec.namespace.startswith("AWS/"):
        try:
            data += list(backend.aws_metric_data)
        except Exception:  # noqa: BLE001 - a provider failing must not break evaluation
            pass
    found = []
    for md in data:
        if md.namespace != spec.namespace or md.name != spec.name:
            continue
        if spec.unit and md.unit != spec.unit:
            continue
        if {d.name: d.value for d in md.dimensions} != spec.dimensions:
            continue
        found.append(md)
    return found


def _statistic(stat: str, points: list[Any]) -> tuple[float | None, float]:
    """(value of the statistic, sample count) over one period's datapoints."""
    singles = [float(p.value) for p in points if hasattr(p, "value")]
    aggregates = [p for p in points if not hasattr(p, "value")]
    count = len(singles) + sum(float(a.sample_count) for a in aggregates)
    if count <= 0:
        return None, 0.0
    total = sum(singles) + sum(float(a.sum) for a in aggregates)
    minimum = min(singles + [float(a.min) for a in aggregates])
    maximum = max(singles + [float(a.max) for a in aggregates])
    if stat == "SampleCount":
        return count, count
    if stat == "Sum":
        return total, count
    if stat == "Average":
        return total / count, count
    if stat == "Minimum":
        return minimum, count
    if stat == "Maximum":
        return maximum, count
    if stat.startswith("p"):
        percentile = float(stat[1:])
        if not singles:
            return None, count
        ordered = sorted(singles)
        rank = max(1, math.ceil(percentile / 100 * len(ordered)))
        return ordered[rank - 1], count
    return None, count


@dataclass
class _Outcome:
    state: str
    reason: str
    reason_data: str


def _evaluate(backend: Any, alarm: Any, now: float) -> _Outcome | None:
    spec = _spec(alarm)
    if spec is None:
        return None
    n = int(alarm.evaluation_periods or 1)
    m = int(alarm.datapoints_to_alarm or n)
    m = max(1, min(m, n))
    treat = alarm.treat_missing_data or "missing"
    words, compare = _OPERATORS[alarm.comparison_operator]
    threshold = float(alarm.threshold)

    buckets: dict[int, list[Any]] = {}
    for md in _datapoints(backend, spec):
        seconds = cbor.epoch_seconds(md.timestamp)
        buckets.setdefault(int(seconds // spec.period), []).append(md)
    current = int(now // spec.period)
    last = current if current in buckets else current - 1
    window = list(range(last - n + 1, last + 1))

    evaluated = []  # (start seconds, value or None, sample count), oldest first
    for bucket in window:
        value, count = _statistic(spec.stat, buckets.get(bucket, []))
        evaluated.append((bucket * spec.period, value, count))
    present = [(start, v) for start, v, _ in evaluated if v is not None]
    breaching = [(start, v) for start, v in present if compare(v, threshold)]
    missing = n - len(present)

    if treat in ("breaching", "notBreaching"):
        breaching_total = len(breaching) + (missing if treat == "breaching" else 0)
        state = "ALARM" if breaching_total >= m else "OK"
    elif not present:
        if treat == "ignore":
            return None
        state = "INSUFFICIENT_DATA"
    else:
        state = "ALARM" if len(breaching) >= min(m, len(present)) else "OK"

    recent = sorted(present, reverse=True)
    shown = ", ".join(f"{_number(v)} ({_short_time(start)})" for start, v in recent)
    if state == "INSUFFICIENT_DATA":
        reason = f"Insufficient Data: {n} datapoint{'s were' if n != 1 else ' was'} unknown."
    elif not present:
        reason = (
            f"Threshold Crossed: no datapoints were received for {n} period{'s' if n != 1 else ''} and "
            f"{missing} missing datapoint{'s were' if missing != 1 else ' was'} treated as "
            f"[{'Breaching' if treat == 'breaching' else 'NonBreaching'}]."
        )
    else:
        if state == "ALARM":
            count, verb = len(breaching), "were" if len(breaching) != 1 else "was"
            shown = ", ".join(f"{_number(v)} ({_short_time(start)})" for start, v in sorted(breaching, reverse=True))
            comparison = f"{verb} {words}"
            transition = f"minimum {m} datapoint{'s' if m != 1 else ''} for OK -> ALARM transition"
        else:
            count = len(present)
            comparison = f"{'were' if count != 1 else 'was'} not {words}"
            transition = "minimum 1 datapoint for ALARM -> OK transition"
        reason = (
            f"Threshold Crossed: {count} out of the last {n} datapoints [{shown}] "
            f"{comparison} the threshold ({_number(threshold)}) ({transition})."
        )
        if missing and treat in ("breaching", "notBreaching"):
            reason = reason[:-1] + (
                f" and {missing} missing datapoint{'s were' if missing != 1 else ' was'} treated as "
                f"[{'Breaching' if treat == 'breaching' else 'NonBreaching'}]."
            )
    reason_data = {
        "version": "1.0",
        "queryDate": _event_timestamp(_naive_utc(now)),
        "startDate": _event_timestamp(_naive_utc(window[0] * spec.period)),
        ("extendedStatistic" if spec.stat.startswith("p") else "statistic"): spec.stat,
        "period": spec.period,
        "recentDatapoints": [v for _, v in present],
        "threshold": threshold,
        "evaluatedDatapoints": [
            {"timestamp": _event_timestamp(_naive_utc(start)), "sampleCount": float(count), "value": v}
            for start, v, count in reversed(evaluated)
            if v is not None
        ],
    }
    if spec.unit:
        reason_data["unit"] = spec.unit
    return _Outcome(state, reason, json.dumps(reason_data, separators=(",", ":")))


def _configuration(alarm: Any) -> dict[str, Any]:
    metrics = []
    queries = list(alarm.metric_data_queries or [])
    if queries:
        for query in queries:
            item: dict[str, Any] = {"id": query.id}
            if query.label:
                item["label"] = query.label
            if query.expression:
                item["expression"] = query.expression
            stat = query.metric_stat
            if stat is not None and stat.metric is not None:
                item["metricStat"] = {
                    "metric": {
                        "namespace": stat.metric.namespace,
                        "name": stat.metric.metric_name,
                        "dimensions": {d.name: d.value for d in stat.metric.dimensions or []},
                    },
                    "period": int(stat.period) if stat.period else None,
                    "stat": stat.stat,
                }
                if stat.unit:
                    item["metricStat"]["unit"] = stat.unit
            item["returnData"] = str(query.return_data).lower() not in ("false", "0")
            metrics.append(item)
    elif alarm.metric_name:
        metric_stat: dict[str, Any] = {
            "metric": {
                "namespace": alarm.namespace,
                "name": alarm.metric_name,
                "dimensions": {d.name: d.value for d in alarm.dimensions or []},
            },
            "period": int(alarm.period) if alarm.period else None,
            "stat": alarm.statistic or alarm.extended_statistic,
        }
        if alarm.unit:
            metric_stat["unit"] = alarm.unit
        metric_id = str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn))
        metrics.append({"id": metric_id, "metricStat": metric_stat, "returnData": True})
    configuration: dict[str, Any] = {"metrics": metrics}
    if alarm.description:
        configuration = {"description": alarm.description, **configuration}
    return configuration


def _state(value: str, reason: str, reason_data: str | None, timestamp: datetime) -> dict[str, Any]:
    state: dict[str, Any] = {"value": value, "reason": reason}
    if reason_data and reason_data != "{}":
        state["reasonData"] = reason_data
    state["timestamp"] = _event_timestamp(timestamp)
    return state


def _history(backend: Any) -> list[dict[str, Any]]:
    return _HISTORY.setdefault((backend.account_id, backend.region_name), [])


def _alarm_type(alarm: Any) -> str:
    return "CompositeAlarm" if getattr(alarm, "rule", None) is not None else "MetricAlarm"


def _add_history(backend: Any, alarm: Any, kind: str, summary: str, data: dict[str, Any]) -> None:
    _history(backend).append(
        {
            "AlarmName": alarm.name,
            "AlarmType": _alarm_type(alarm),
            "Timestamp": datetime.now(timezone.utc).replace(tzinfo=None),
            "HistoryItemType": kind,
            "HistorySummary": summary,
            "HistoryData": json.dumps(data, separators=(",", ":")),
        }
    )


def _change_state(backend: Any, alarm: Any, value: str, reason: str, reason_data: str | None) -> None:
    """Sets the alarm's state (moto's ``update_state``) and records history and event."""
    previous = _state(alarm.state_value, alarm.state_reason, alarm.state_reason_data, alarm.state_updated_timestamp)
    old_value, old_reason = alarm.state_value, alarm.state_reason
    alarm.update_state(reason, reason_data, value)
    current = _state(alarm.state_value, alarm.state_reason, alarm.state_reason_data, alarm.state_updated_timestamp)
    new_state: dict[str, Any] = {"stateValue": value, "stateReason": reason}
    if reason_data and reason_data != "{}":
        try:
            new_state["stateReasonData"] = json.loads(reason_data)
        except ValueError:
            pass
    _add_history(
        backend,
        alarm,
        "StateUpdate",
        f"Alarm updated from {old_value} to {value}",
        {"version": "1.0", "oldState": {"stateValue": old_value, "stateReason": old_reason}, "newState": new_state},
    )
    now = _aware(alarm.state_updated_timestamp)
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": backend.account_id,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": backend.region_name,
        "resources": [alarm.alarm_arn],
        "detail": {
            "alarmName": alarm.name,
            "state": current,
            "previousState": previous,
            "configuration": _configuration(alarm),
        },
    }
    seq = _SEQ.get(backend.account_id, 0) + 1
    _SEQ[backend.account_id] = seq
    _EVENTS.append(
        AlarmEvent(
            seq=seq,
            account=backend.account_id,
            region=backend.region_name,
            alarm=alarm.name,
            json=json.dumps(event, separators=(",", ":")),
        )
    )


def evaluate_alarm(backend: Any, alarm: Any, now: float | None = None) -> None:
    with _LOCK:
        if getattr(alarm, "_dm_hold", False):
            return
        outcome = _evaluate(backend, alarm, time.time() if now is None else now)
        if outcome is None or outcome.state == alarm.state_value:
            return
        _change_state(backend, alarm, outcome.state, outcome.reason, outcome.reason_data)


def evaluate_all(backend: Any, now: float | None = None) -> None:
    with _LOCK:
        for alarm in list(backend.alarms.values()):
            evaluate_alarm(backend, alarm, now)


def evaluate_account(account: str) -> None:
    """Evaluates the alarms of every region ``account`` has used (creating no backend)."""
    from moto.cloudwatch.models import cloudwatch_backends

    regional = dict.get(cloudwatch_backends, account)
    if regional:
        for backend in list(dict.values(regional)):
            evaluate_all(backend)


# ---------------------------------------------------------------------------
# Patches of moto's backend and responses


def _patch_backend() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    original_put_alarm = CloudWatchBackend.put_metric_alarm
    original_put_data = CloudWatchBackend.put_metric_data
    original_set_state = CloudWatchBackend.set_alarm_state
    original_describe = CloudWatchBackend.describe_alarms

    @functools.wraps(original_put_alarm)
    def put_metric_alarm(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("name", args[0] if args else None)
        with _LOCK:
            old = self.alarms.get(name)
            alarm = original_put_alarm(self, *args, **kwargs)
            if old is not None and old is not alarm:
                alarm.state_value = old.state_value
                alarm.state_reason = old.state_reason
                alarm.state_reason_data = old.state_reason_data
                alarm.state_updated_timestamp = old.state_updated_timestamp
                alarm.history = old.history
                summary = f'Alarm "{alarm.name}" updated'
            else:
                alarm.state_value = "INSUFFICIENT_DATA"
                alarm.state_reason = "Unchecked: Initial alarm creation"
                alarm.state_reason_data = "{}"
                summary = f'Alarm "{alarm.name}" created'
            alarm._dm_hold = False
            data = {"version": "1.0", "type": "Create" if old is None else "Update"}
            _add_history(self, alarm, "ConfigurationUpdate", summary, data)
            evaluate_alarm(self, alarm)
        return alarm

    @functools.wraps(original_put_data)
    def put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        result = original_put_data(self, namespace, metric_data, *args, **kwargs)
        names = {m.get("MetricName") for m in metric_data or []}
        with _LOCK:
            for alarm in list(self.alarms.values()):
                spec = _spec(alarm)
                if spec is not None and spec.namespace == namespace and spec.name in names:
                    alarm._dm_hold = False
            evaluate_all(self)
        return result

    @functools.wraps(original_set_state)
    def set_alarm_state(self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
        with _LOCK:
            alarm = self.alarms.get(alarm_name)
            if alarm is None or state_value not in _STATES:
                # moto raises the errors AWS raises (ResourceNotFound, validation).
                return original_set_state(self, alarm_name, reason, reason_data, state_value)
            if reason_data is not None:
                try:
                    json.loads(reason_data)
                except ValueError:
                    return original_set_state(self, alarm_name, reason, reason_data, state_value)
            alarm._dm_hold = True
            if alarm.state_value == state_value:
                return None
            _change_state(self, alarm, state_value, reason, reason_data)
        return None

    @functools.wraps(original_describe)
    def describe_alarms(self: Any) -> Any:
        evaluate_all(self)
        return original_describe(self)

    for attribute, replacement in (
        ("put_metric_alarm", put_metric_alarm),
        ("put_metric_data", put_metric_data),
        ("set_alarm_state", set_alarm_state),
        ("describe_alarms", describe_alarms),
    ):
        setattr(replacement, _MARK, True)
        setattr(CloudWatchBackend, attribute, replacement)


def _timestamp_param(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return cbor.epoch_seconds(value)
    if isinstance(value, (int, float)):
        return float(value)
    from botocore.utils import parse_timestamp

    return cbor.epoch_seconds(parse_timestamp(str(value)))


def _page(items: list[Any], token: Any, max_records: Any) -> tuple[list[Any], str | None]:
    from moto.cloudwatch.exceptions import InvalidParameterValue

    start = 0
    if token:
        try:
            start = int(str(token))
        except ValueError as err:
            raise InvalidParameterValue("The value for parameter NextToken is not valid.") from err
    size = int(max_records) if max_records else 100
    size = max(1, min(size, 100))
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)


def _patch_responses() -> None:
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    def describe_alarms(self: Any) -> Any:
        backend = self.cloudwatch_backend
        alarms = list(backend.describe_alarms())  # evaluates
        names = self._get_param("AlarmNames") or []
        prefix = self._get_param("AlarmNamePrefix")
        state = self._get_param("StateValue")
        action_prefix = self._get_param("ActionPrefix")
        types = self._get_param("AlarmTypes") or ["MetricAlarm"]
        if names:
            alarms = [a for a in alarms if a.name in names]
        if prefix:
            alarms = [a for a in alarms if a.name.startswith(prefix)]
        if state:
            alarms = [a for a in alarms if a.state_value == state]
        if action_prefix:
            alarms = [a for a in alarms if any(str(x).startswith(action_prefix) for x in a.alarm_actions or [])]
        alarms.sort(key=lambda a: a.name)
        metric = [a for a in alarms if a.rule is None] if "MetricAlarm" in types else []
        composite = [a for a in alarms if a.rule is not None] if "CompositeAlarm" in types else []
        page, token = _page(metric + composite, self._get_param("NextToken"), self._get_param("MaxRecords"))
        result: dict[str, Any] = {
            "MetricAlarms": [a for a in page if a.rule is None],
            "CompositeAlarms": [a for a in page if a.rule is not None],
        }
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def describe_alarm_history(self: Any) -> Any:
        backend = self.cloudwatch_backend
        backend.describe_alarms()  # evaluates
        name = self._get_param("AlarmName")
        kind = self._get_param("HistoryItemType")
        types = self._get_param("AlarmTypes") or ["MetricAlarm", "CompositeAlarm"]
        start = _timestamp_param(self._get_param("StartDate"))
        end = _timestamp_param(self._get_param("EndDate"))
        with _LOCK:
            items = list(_history(backend))
        selected = []
        for item in items:
            seconds = cbor.epoch_seconds(item["Timestamp"])
            if name and item["AlarmName"] != name:
                continue
            if kind and item["HistoryItemType"] != kind:
                continue
            if item["AlarmType"] not in types:
                continue
            if start is not None and seconds < start:
                continue
            if end is not None and seconds > end:
                continue
            selected.append(item)
        if (self._get_param("ScanBy") or "TimestampDescending") == "TimestampDescending":
            selected.reverse()
        page, token = _page(selected, self._get_param("NextToken"), self._get_param("MaxRecords"))
        result: dict[str, Any] = {"AlarmHistoryItems": page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    setattr(describe_alarms, _MARK, True)
    CloudWatchResponse.describe_alarms = describe_alarms  # type: ignore[method-assign]
    CloudWatchResponse.describe_alarm_history = describe_alarm_history  # type: ignore[attr-defined]


def _get_events(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    account = params.get("account") or ""
    if not account:
        raise ValueError("account is required")
    since_text = params.get("since") or "0"
    try:
        since = int(since_text)
    except ValueError as err:
        raise ValueError(f"since must be an integer, not {since_text!r}") from err
    evaluate_account(account)
    found = events(
        account=account,
        since=since,
        region=params.get("region") or None,
        alarm=params.get("alarm") or None,
    )
    with _LOCK:
        last = _SEQ.get(account, 0)
    return 200, {"events": [e.answer() for e in found], "last_seq": last}


def install() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    from ..faults import add_control_route, add_reset_hook

    if not getattr(CloudWatchBackend.put_metric_alarm, _MARK, False):
        _patch_backend()
        _patch_responses()
    add_control_route("GET", "alarm-events", _get_events)
    add_reset_hook("cloudwatch_alarms", clear)
