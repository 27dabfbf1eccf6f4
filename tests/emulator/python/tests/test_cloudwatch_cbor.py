"""CloudWatch over Smithy rpcv2 CBOR, and alarm evaluation with state-change events.

Requests are built two ways, neither with the emulator's own CBOR code:

* by hand, byte for byte as the AWS SDK for Rust sends them (path, headers,
  structures as indefinite-length maps, doubles as 64-bit floats,
  timestamps as tag 1 + double; see ``rust_like``);
* with botocore, whose model of CloudWatch lists ``smithy-rpc-v2-cbor``
  among its protocols: a client whose model keeps only that protocol
  serializes and parses rpcv2 CBOR itself (``cbor_client``).

Responses are decoded with botocore's CBOR parser.
"""

from __future__ import annotations

import copy
import gzip
import http.client
import json
import struct
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import RpcV2CBORParser

from conftest import PACKAGE_ROOT, client, control, fresh_account

sys.path.insert(0, str(PACKAGE_ROOT))
from dm_emulator import cbor  # noqa: E402  (only for the codec's own unit tests)

SERVICE_PATH = "/service/GraniteServiceVersion20100801/operation/"
NAMESPACE = "DM/Test"


# ---------------------------------------------------------------------------
# Requests as the Rust SDK builds them


class Ts:
    """A timestamp member: tag 1, epoch seconds as a double."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def rust_like(value: Any) -> bytes:
    """CBOR as aws-smithy-cbor (minicbor) writes it."""
    if isinstance(value, dict):
        return b"\xbf" + b"".join(rust_like(k) + rust_like(v) for k, v in value.items()) + b"\xff"
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(rust_like(v) for v in value)
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, Ts):
        return b"\xc1\xfb" + struct.pack(">d", value.seconds)
    raise TypeError(value)


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError(n)


def decode(body: bytes) -> Any:
    parser = RpcV2CBORParser()
    return parser.parse_data_item(parser.get_peekable_stream_from_bytes(body))


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def document(self) -> Any:
        return decode(self.body) if self.body else None


def send(
    endpoint: str,
    account: str,
    operation: str,
    body: bytes | None,
    *,
    path: str | None = None,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> Answer:
    """One request with the Rust SDK's headers (and a SigV4-looking signature)."""
    request_headers = {
        "content-type": "application/cbor",
        "smithy-protocol": "rpc-v2-cbor",
        "accept": "application/cbor",
        "x-amzn-query-mode": "true",
        "x-amz-date": "20260101T000000Z",
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={account}/20260101/{region}/monitoring/aws4_request, "
            "SignedHeaders=accept;content-length;content-type;host;smithy-protocol;x-amz-date, Signature=0"
        ),
        "user-agent": "aws-sdk-rust/1.0 os/linux lang/rust",
        "amz-sdk-invocation-id": "00000000-0000-0000-0000-000000000000",
        "amz-sdk-request": "attempt=1; max=1",
    }
    if body is None:
        del request_headers["content-type"]
    request_headers.update(headers or {})
    request_headers = {k: v for k, v in request_headers.items() if v is not None}
    parts = urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path or SERVICE_PATH + operation, body=body or b"", headers=request_headers)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def call(endpoint: str, account: str, operation: str, params: dict[str, Any]) -> Any:
    answer = send(endpoint, account, operation, rust_like(params))
    assert answer.status == 200, (answer.status, answer.document)
    assert answer.headers["smithy-protocol"] == "rpc-v2-cbor"
    if answer.body:
        assert answer.headers["content-type"] == "application/cbor"
        assert int(answer.headers["content-length"]) == len(answer.body)
    return answer.document


def cbor_client(endpoint: str, account: str):  # type: ignore[no-untyped-def]
    """A botocore CloudWatch client that can only speak rpcv2 CBOR."""
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    load = loader.load_service_model

    def rpc_v2_only(name: str, type_name: str, api_version: str | None = None) -> Any:
        model = load(name, type_name, api_version)
        if name == "cloudwatch" and type_name == "service-2":
            model = copy.deepcopy(model)
            model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
            model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
        return model

    loader.load_service_model = rpc_v2_only
    cw = session.create_client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=account,
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    assert cw.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
    return cw


def alarm_events(endpoint: str, account: str, since: int = 0) -> tuple[list[dict[str, Any]], int]:
    status, answer = control(endpoint, "GET", f"alarm-events?account={account}&since={since}")
    assert status == 200, answer
    assert isinstance(answer, dict)
    for item in answer["events"]:
        assert json.loads(item["json"]) == item["event"]
        assert item["account"] == account
    return answer["events"], answer["last_seq"]


def states(endpoint: str, account: str) -> dict[str, str]:
    found = call(endpoint, account, "DescribeAlarms", {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"]})
    return {a["AlarmName"]: a["StateValue"] for a in found.get("MetricAlarms", [])}


def put_value(endpoint: str, account: str, metric: str, value: float, at: float | None = None) -> None:
    call(
        endpoint,
        account,
        "PutMetricData",
        {
            "Namespace": NAMESPACE,
            "MetricData": [
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": "Cluster", "Value": "c1"}],
                    "Value": float(value),
                    "Timestamp": Ts(time.time() if at is None else at),
                }
            ],
        },
    )


def put_alarm(endpoint: str, account: str, name: str, metric: str, **extra: Any) -> None:
    params = {
        "AlarmName": name,
        "Namespace": NAMESPACE,
        "MetricName": metric,
        "Dimensions": [{"Name": "Cluster", "Value": "c1"}],
        "Statistic": "Average",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 3.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    params.update(extra)
    call(endpoint, account, "PutMetricAlarm", {k: v for k, v in params.items() if v is not None})


# ---------------------------------------------------------------------------
# The protocol


def test_put_metric_data_and_read_it_back_over_cbor(endpoint: str) -> None:
    account = fresh_account()
    now = float(int(time.time()))
    assert (
        call(
            endpoint,
            account,
            "PutMetricData",
            {
                "Namespace": NAMESPACE,
                "MetricData": [
                    {
                        "MetricName": "Requests",
                        "Dimensions": [{"Name": "Cluster", "Value": "c1"}, {"Name": "Node", "Value": "n1"}],
                        "Value": 2.5,
                        "Unit": "Count",
                        "Timestamp": Ts(now),
                        "StorageResolution": 60,
                    },
                    {
                        "MetricName": "Requests",
                        "Dimensions": [{"Name": "Cluster", "Value": "c1"}, {"Name": "Node", "Value": "n1"}],
                        "Values": [1.0, 4.0],
                        "Counts": [2.0, 1.0],
                        "Unit": "Count",
                        "Timestamp": Ts(now),
                    },
                ],
            },
        )
        is None
    )  # no output shape: 200 and no body

    metrics = call(endpoint, account, "ListMetrics", {"Namespace": NAMESPACE})
    assert metrics["Metrics"] == [
        {
            "Namespace": NAMESPACE,
            "MetricName": "Requests",
            "Dimensions": [{"Name": "Cluster", "Value": "c1"}, {"Name": "Node", "Value": "n1"}],
        }
    ]

    dims = [{"Name": "Cluster", "Value": "c1"}, {"Name": "Node", "Value": "n1"}]
    answer = send(
        endpoint,
        account,
        "GetMetricStatistics",
        rust_like(
            {
                "Namespace": NAMESPACE,
                "MetricName": "Requests",
                "Dimensions": dims,
                "StartTime": Ts(now - 600),
                "EndTime": Ts(now + 60),
                "Period": 60,
                "Statistics": ["Sum", "SampleCount", "Maximum"],
                "Unit": "Count",
            }
        ),
    )
    assert answer.status == 200
    stats = answer.document
    assert stats["Label"] == "Requests"
    [point] = stats["Datapoints"]
    assert point["Sum"] == 8.5 and point["SampleCount"] == 4.0 and point["Maximum"] == 4.0
    assert point["Timestamp"] == datetime.fromtimestamp(now, timezone.utc)
    # Doubles and timestamps on the wire: tag 1 + a 64-bit float, as the spec says.
    assert b"\xc1\xfb" + struct.pack(">d", now) in answer.body
    assert b"\xfb" + struct.pack(">d", 8.5) in answer.body

    data = call(
        endpoint,
        account,
        "GetMetricData",
        {
            "MetricDataQueries": [
                {
                    "Id": "total",
                    "MetricStat": {
                        "Metric": {"Namespace": NAMESPACE, "MetricName": "Requests", "Dimensions": dims},
                        "Period": 60,
                        "Stat": "Sum",
                    },
                    "ReturnData": True,
                }
            ],
            "StartTime": Ts(now - 600),
            "EndTime": Ts(now + 60),
        },
    )
    [result] = data["MetricDataResults"]
    assert result["Id"] == "total" and result["StatusCode"] == "Complete"
    assert result["Values"] == [8.5]
    assert len(result["Timestamps"]) == 1 and isinstance(result["Timestamps"][0], datetime)


def test_alarm_operations_round_trip_over_cbor(endpoint: str) -> None:
    account = fresh_account()
    put_alarm(endpoint, account, "dm-a-high", "Load", AlarmDescription="load too high", TreatMissingData="notBreaching")
    put_alarm(endpoint, account, "dm-a-low", "Load", ComparisonOperator="LessThanThreshold")
    put_alarm(endpoint, account, "other", "Load", Threshold=100.0, TreatMissingData="breaching")

    everything = call(endpoint, account, "DescribeAlarms", {})
    assert [a["AlarmName"] for a in everything["MetricAlarms"]] == ["dm-a-high", "dm-a-low", "other"]
    high = everything["MetricAlarms"][0]
    assert high["AlarmDescription"] == "load too high"
    assert high["Threshold"] == 3.0 and high["Period"] == 60 and high["EvaluationPeriods"] == 1
    assert high["Dimensions"] == [{"Name": "Cluster", "Value": "c1"}]
    assert isinstance(high["StateUpdatedTimestamp"], datetime)
    assert high["AlarmArn"] == f"arn:aws:cloudwatch:us-east-1:{account}:alarm:dm-a-high"

    by_name = call(endpoint, account, "DescribeAlarms", {"AlarmNames": ["other", "missing"]})
    assert [a["AlarmName"] for a in by_name["MetricAlarms"]] == ["other"]
    by_prefix = call(endpoint, account, "DescribeAlarms", {"AlarmNamePrefix": "dm-a-"})
    assert [a["AlarmName"] for a in by_prefix["MetricAlarms"]] == ["dm-a-high", "dm-a-low"]
    # Filters combine (moto applied only the first one).
    in_alarm = call(endpoint, account, "DescribeAlarms", {"AlarmNamePrefix": "dm-a-", "StateValue": "ALARM"})
    assert in_alarm["MetricAlarms"] == []
    alarming = call(endpoint, account, "DescribeAlarms", {"StateValue": "ALARM"})["MetricAlarms"]
    assert [a["AlarmName"] for a in alarming] == ["other"]
    paged = call(endpoint, account, "DescribeAlarms", {"MaxRecords": 2})
    assert [a["AlarmName"] for a in paged["MetricAlarms"]] == ["dm-a-high", "dm-a-low"]
    rest = call(endpoint, account, "DescribeAlarms", {"MaxRecords": 2, "NextToken": paged["NextToken"]})
    assert [a["AlarmName"] for a in rest["MetricAlarms"]] == ["other"] and "NextToken" not in rest

    assert call(
        endpoint, account, "SetAlarmState", {"AlarmName": "dm-a-low", "StateValue": "ALARM", "StateReason": "drill"}
    ) is None
    low = call(endpoint, account, "DescribeAlarms", {"AlarmNames": ["dm-a-low"]})["MetricAlarms"][0]
    assert (low["StateValue"], low["StateReason"]) == ("ALARM", "drill")

    history = call(endpoint, account, "DescribeAlarmHistory", {"AlarmName": "dm-a-low"})["AlarmHistoryItems"]
    assert [h["HistoryItemType"] for h in history] == ["StateUpdate", "ConfigurationUpdate"]
    assert history[0]["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    assert json.loads(history[0]["HistoryData"])["newState"] == {"stateValue": "ALARM", "stateReason": "drill"}
    assert isinstance(history[0]["Timestamp"], datetime)
    only_config = call(
        endpoint,
        account,
        "DescribeAlarmHistory",
        {"HistoryItemType": "ConfigurationUpdate", "ScanBy": "TimestampAscending"},
    )["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in only_config] == [
        'Alarm "dm-a-high" created',
        'Alarm "dm-a-low" created',
        'Alarm "other" created',
    ]

    assert call(endpoint, account, "DeleteAlarms", {"AlarmNames": ["dm-a-high", "other"]}) is None
    assert list(states(endpoint, account)) == ["dm-a-low"]


def test_botocore_rpc_v2_cbor_client_works(endpoint: str) -> None:
    account = fresh_account()
    cw = cbor_client(endpoint, account)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    cw.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[{"MetricName": "Latency", "Value": 7.0, "Timestamp": now, "Unit": "Milliseconds"}],
    )
    cw.put_metric_alarm(
        AlarmName="latency",
        Namespace=NAMESPACE,
        MetricName="Latency",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    [alarm] = cw.describe_alarms(AlarmNames=["latency"])["MetricAlarms"]
    assert alarm["StateValue"] == "ALARM"
    assert alarm["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [7.0 (")
    stats = cw.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName="Latency",
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )
    assert [p["Maximum"] for p in stats["Datapoints"]] == [7.0]
    with pytest.raises(ClientError) as caught:
        cw.set_alarm_state(AlarmName="nope", StateValue="OK", StateReason="x")
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Error"]["Code"] == "ResourceNotFound"
    assert error["Error"]["Type"] == "Sender"


def test_request_compression_is_undone(endpoint: str) -> None:
    account = fresh_account()
    body = rust_like(
        {"Namespace": NAMESPACE, "MetricData": [{"MetricName": "Zipped", "Value": 1.0, "Timestamp": Ts(time.time())}]}
    )
    answer = send(endpoint, account, "PutMetricData", gzip.compress(body), headers={"content-encoding": "gzip"})
    assert answer.status == 200, answer.document
    names = [m["MetricName"] for m in call(endpoint, account, "ListMetrics", {})["Metrics"]]
    assert names == ["Zipped"]


def test_empty_body_is_an_empty_input(endpoint: str) -> None:
    answer = send(endpoint, fresh_account(), "ListMetrics", None)
    assert answer.status == 200
    assert answer.document == {"Metrics": []}


def assert_rpc_error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert answer.headers["content-type"] == "application/cbor"
    assert "x-amzn-errortype" not in answer.headers
    document = answer.document
    assert document["__type"].rsplit("#", 1)[-1] == code, document
    assert "#" in document["__type"]
    assert isinstance(document["message"], str) and document["message"]
    return document


def test_unknown_operation_is_a_404_rpc_error(endpoint: str) -> None:
    answer = send(endpoint, fresh_account(), "DescribeEverything", rust_like({}))
    assert_rpc_error(answer, 404, "UnknownOperationException")
    path = "/service/NoSuchService/operation/ListMetrics"
    answer = send(endpoint, fresh_account(), "ListMetrics", rust_like({}), path=path)
    assert_rpc_error(answer, 404, "UnknownOperationException")


def test_absolute_service_id_is_accepted_and_a_path_prefix_ignored(endpoint: str) -> None:
    account = fresh_account()
    for path in (
        "/service/com.amazonaws.cloudwatch.GraniteServiceVersion20100801/operation/ListMetrics",
        "/v1/service/GraniteServiceVersion20100801/operation/ListMetrics",
    ):
        assert send(endpoint, account, "ListMetrics", rust_like({}), path=path).status == 200


def test_malformed_requests_are_rpc_errors(endpoint: str) -> None:
    account = fresh_account()
    truncated = rust_like({"Namespace": NAMESPACE})[:-3]
    document = assert_rpc_error(send(endpoint, account, "ListMetrics", truncated), 400, "SerializationException")
    assert "malformed CBOR" in document["message"]
    assert_rpc_error(send(endpoint, account, "ListMetrics", b"\x1c"), 400, "SerializationException")
    assert_rpc_error(send(endpoint, account, "ListMetrics", rust_like([1, 2])), 400, "SerializationException")
    wrong_type = rust_like({"Namespace": 5})
    document = assert_rpc_error(send(endpoint, account, "ListMetrics", wrong_type), 400, "SerializationException")
    assert "Namespace" in document["message"]
    assert_rpc_error(
        send(
            endpoint,
            account,
            "ListMetrics",
            rust_like({}),
            headers={"x-amz-target": "GraniteServiceVersion20100801.ListMetrics"},
        ),
        400,
        "SerializationException",
    )
    assert_rpc_error(
        send(endpoint, account, "ListMetrics", b"{}", headers={"content-type": "application/json"}),
        415,
        "UnsupportedMediaTypeException",
    )
    assert_rpc_error(send(endpoint, account, "ListMetrics", None, method="GET"), 405, "MethodNotAllowedException")


def test_modelled_errors_keep_their_status_and_query_code(endpoint: str) -> None:
    account = fresh_account()
    answer = send(
        endpoint, account, "SetAlarmState", rust_like({"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"})
    )
    assert_rpc_error(answer, 404, "ResourceNotFound")
    assert answer.document["__type"] == "com.amazonaws.cloudwatch#ResourceNotFound"
    assert answer.headers["x-amzn-query-error"] == "ResourceNotFound;Sender"
    put_alarm(endpoint, account, "a", "Load")
    answer = send(
        endpoint, account, "SetAlarmState", rust_like({"AlarmName": "a", "StateValue": "BAD", "StateReason": "x"})
    )
    assert_rpc_error(answer, 400, "ValidationException")
    assert answer.headers["x-amzn-query-error"] == "ValidationError;Sender"


def test_injected_faults_answer_in_cbor_and_are_counted_by_operation(endpoint: str) -> None:
    account = fresh_account()
    status, _ = control(
        endpoint,
        "POST",
        "faults",
        {
            "service": "monitoring",
            "action": "PutMetricData",
            "status": 503,
            "code": "ServiceUnavailable",
            "count": 1,
            "account": account,
        },
    )
    assert status == 200
    answer = send(endpoint, account, "PutMetricData", rust_like({"Namespace": NAMESPACE, "MetricData": []}))
    document = assert_rpc_error(answer, 503, "ServiceUnavailable")
    assert document["message"] == "Fault injected by dm_emulator"
    assert answer.headers["x-amzn-query-error"] == "ServiceUnavailable;Receiver"
    put_value(endpoint, account, "Load", 1.0)  # the fault is used up
    status, counted = control(endpoint, "GET", f"count?service=monitoring&action=PutMetricData&account={account}")
    assert (status, counted) == (200, {"count": 2})


def test_query_and_json_protocols_still_work(endpoint: str) -> None:
    account = fresh_account()
    default = client(endpoint, "cloudwatch", account)
    assert default.meta.service_model.resolved_protocol == "json"
    default.put_metric_data(Namespace=NAMESPACE, MetricData=[{"MetricName": "Json", "Value": 9.0}])
    default.put_metric_alarm(
        AlarmName="json-alarm",
        Namespace=NAMESPACE,
        MetricName="Json",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanThreshold",
    )
    assert default.describe_alarms()["MetricAlarms"][0]["StateValue"] == "ALARM"

    session = botocore.session.get_session()
    query_model = session.get_component("data_loader").load_service_model("cloudwatch", "service-2")
    assert "query" in query_model["metadata"]["protocols"]
    body = "Action=ListMetrics&Version=2010-08-01"
    request = urllib.request.Request(
        f"{endpoint}/",
        data=body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={account}/20260101/us-east-1/monitoring/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        xml = response.read().decode()
    assert "<ListMetricsResponse" in xml and "<MetricName>Json</MetricName>" in xml


# ---------------------------------------------------------------------------
# Alarm evaluation and events


def test_alarm_goes_ok_alarm_ok_with_events(endpoint: str) -> None:
    account = fresh_account()
    _, start = alarm_events(endpoint, account)
    put_value(endpoint, account, "Load", 1.0)
    put_alarm(endpoint, account, "load-high", "Load", AlarmDescription="DM load")
    assert states(endpoint, account) == {"load-high": "OK"}

    put_value(endpoint, account, "Load", 20.0)  # average of the period: 10.5 > 3
    assert states(endpoint, account) == {"load-high": "ALARM"}
    put_value(endpoint, account, "Load", -30.0)  # average now below 3 (or only -30 in a new period)
    assert states(endpoint, account) == {"load-high": "OK"}

    found, last = alarm_events(endpoint, account, since=start)
    transitions = [(e["event"]["detail"]["previousState"]["value"], e["event"]["detail"]["state"]["value"]) for e in found]
    assert transitions == [
        ("INSUFFICIENT_DATA", "OK"),
        ("OK", "ALARM"),
        ("ALARM", "OK"),
    ]
    seqs = [e["seq"] for e in found]
    assert seqs == [1, 2, 3] and last == 3  # per account, from 1
    event = found[1]["event"]
    assert event["source"] == "aws.cloudwatch"
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["account"] == account and event["region"] == "us-east-1"
    assert event["resources"] == [f"arn:aws:cloudwatch:us-east-1:{account}:alarm:load-high"]
    detail = event["detail"]
    assert detail["alarmName"] == "load-high"
    assert detail["state"]["reason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [")
    assert "was greater than the threshold (3.0)" in detail["state"]["reason"]
    assert json.loads(detail["state"]["reasonData"])["threshold"] == 3.0
    assert detail["state"]["timestamp"].endswith("+0000")
    assert detail["previousState"]["reason"] == found[0]["event"]["detail"]["state"]["reason"]
    assert detail["configuration"] == {
        "description": "DM load",
        "metrics": [
            {
                "id": detail["configuration"]["metrics"][0]["id"],
                "metricStat": {
                    "metric": {"namespace": NAMESPACE, "name": "Load", "dimensions": {"Cluster": "c1"}},
                    "period": 60,
                    "stat": "Average",
                },
                "returnData": True,
            }
        ],
    }
    # since= returns only newer events; the alarm's own fields match the last one.
    assert [e["seq"] for e in alarm_events(endpoint, account, since=seqs[1])[0]] == [seqs[2]]
    [alarm] = call(endpoint, account, "DescribeAlarms", {"AlarmNames": ["load-high"]})["MetricAlarms"]
    assert alarm["StateReason"] == found[2]["event"]["detail"]["state"]["reason"]
    assert alarm["StateReasonData"] == found[2]["event"]["detail"]["state"]["reasonData"]
    # Another account sees none of them.
    assert alarm_events(endpoint, fresh_account())[0] == []


def test_datapoints_to_alarm_m_out_of_n(endpoint: str) -> None:
    account = fresh_account()
    # The current period and the two before it (the window keeps ending with
    # this period until the next one has data, so a minute boundary is harmless).
    now = time.time()
    put_value(endpoint, account, "Errors", 10.0, at=now)
    put_value(endpoint, account, "Errors", 0.0, at=now - 60)
    put_value(endpoint, account, "Errors", 10.0, at=now - 120)
    put_alarm(endpoint, account, "two-of-three", "Errors", EvaluationPeriods=3, DatapointsToAlarm=2)
    put_alarm(endpoint, account, "three-of-three", "Errors", EvaluationPeriods=3)
    assert states(endpoint, account) == {"three-of-three": "OK", "two-of-three": "ALARM"}


def test_metric_stat_and_percentile_alarms(endpoint: str) -> None:
    account = fresh_account()
    now = time.time()
    for value in (1.0, 2.0, 3.0, 100.0):
        put_value(endpoint, account, "Latency", value, at=now - 60)
    metric = {"Namespace": NAMESPACE, "MetricName": "Latency", "Dimensions": [{"Name": "Cluster", "Value": "c1"}]}
    call(
        endpoint,
        account,
        "PutMetricAlarm",
        {
            "AlarmName": "max-via-metrics",
            "Metrics": [
                {"Id": "m1", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Maximum"}, "ReturnData": True}
            ],
            "EvaluationPeriods": 2,
            "DatapointsToAlarm": 1,
            "Threshold": 50.0,
            "ComparisonOperator": "GreaterThanThreshold",
        },
    )
    for percentile in ("p50", "p90"):
        put_alarm(
            endpoint,
            account,
            percentile,
            "Latency",
            Statistic=None,
            ExtendedStatistic=percentile,
            EvaluationPeriods=2,
            DatapointsToAlarm=1,
        )
    assert states(endpoint, account) == {"max-via-metrics": "ALARM", "p50": "OK", "p90": "ALARM"}
    [event] = [e for e in alarm_events(endpoint, account)[0] if e["alarm"] == "max-via-metrics"]
    [query] = event["event"]["detail"]["configuration"]["metrics"]
    assert query["id"] == "m1" and query["returnData"] is True
    assert query["metricStat"]["stat"] == "Maximum" and query["metricStat"]["metric"]["name"] == "Latency"


def test_treat_missing_data(endpoint: str) -> None:
    account = fresh_account()
    for treat in ("missing", "breaching", "notBreaching", "ignore"):
        put_alarm(endpoint, account, f"quiet-{treat}", "Quiet", TreatMissingData=treat)
    assert states(endpoint, account) == {
        "quiet-breaching": "ALARM",
        "quiet-ignore": "INSUFFICIENT_DATA",  # stays as created
        "quiet-missing": "INSUFFICIENT_DATA",
        "quiet-notBreaching": "OK",
    }
    [breaching] = call(endpoint, account, "DescribeAlarms", {"AlarmNames": ["quiet-breaching"]})["MetricAlarms"]
    assert "treated as [Breaching]" in breaching["StateReason"]

    # Data outside the window is still missing; "ignore" keeps whatever state it had.
    for name in ("quiet-ignore", "quiet-missing"):
        call(endpoint, account, "SetAlarmState", {"AlarmName": name, "StateValue": "ALARM", "StateReason": "set"})
    put_value(endpoint, account, "Quiet", 0.0, at=time.time() - 3600)  # re-evaluates both
    assert states(endpoint, account) == {
        "quiet-breaching": "ALARM",
        "quiet-ignore": "ALARM",
        "quiet-missing": "INSUFFICIENT_DATA",
        "quiet-notBreaching": "OK",
    }
    # Present data decides for every treatment.
    put_value(endpoint, account, "Quiet", 1.0)
    assert set(states(endpoint, account).values()) == {"OK"}


def test_set_alarm_state_records_an_event_and_holds(endpoint: str) -> None:
    account = fresh_account()
    put_value(endpoint, account, "Cpu", 1.0)
    put_alarm(endpoint, account, "cpu", "Cpu")
    _, before = alarm_events(endpoint, account)
    call(
        endpoint,
        account,
        "SetAlarmState",
        {"AlarmName": "cpu", "StateValue": "ALARM", "StateReason": "testing", "StateReasonData": '{"why": 1}'},
    )
    [event] = alarm_events(endpoint, account, since=before)[0]
    state = event["event"]["detail"]["state"]
    assert (state["value"], state["reason"], state["reasonData"]) == ("ALARM", "testing", '{"why": 1}')
    assert event["event"]["detail"]["previousState"]["value"] == "OK"
    # Describing does not undo it at once; the next matching data re-evaluates.
    assert states(endpoint, account) == {"cpu": "ALARM"}
    # The same state again is no change and no event.
    call(endpoint, account, "SetAlarmState", {"AlarmName": "cpu", "StateValue": "ALARM", "StateReason": "again"})
    assert alarm_events(endpoint, account, since=event["seq"])[0] == []
    put_value(endpoint, account, "Cpu", 1.0)
    assert states(endpoint, account) == {"cpu": "OK"}
    assert [e["event"]["detail"]["state"]["value"] for e in alarm_events(endpoint, account, since=event["seq"])[0]] == [
        "OK"
    ]


def test_updating_an_alarm_keeps_its_state(endpoint: str) -> None:
    account = fresh_account()
    put_value(endpoint, account, "Mem", 50.0)
    put_alarm(endpoint, account, "mem", "Mem")
    assert states(endpoint, account) == {"mem": "ALARM"}
    _, before = alarm_events(endpoint, account)
    put_alarm(endpoint, account, "mem", "Mem", Threshold=40.0)  # still breaching
    assert states(endpoint, account) == {"mem": "ALARM"}
    assert alarm_events(endpoint, account, since=before)[0] == []
    put_alarm(endpoint, account, "mem", "Mem", Threshold=80.0)
    assert states(endpoint, account) == {"mem": "OK"}


def test_reset_clears_events_of_one_account(endpoint: str) -> None:
    keep, drop = fresh_account(), fresh_account()
    for account in (keep, drop):
        put_alarm(endpoint, account, "x", "Nothing", TreatMissingData="breaching")
    assert len(alarm_events(endpoint, keep)[0]) == 1 and len(alarm_events(endpoint, drop)[0]) == 1
    status, _ = control(endpoint, "POST", f"reset?account={drop}")
    assert status == 200
    assert alarm_events(endpoint, drop) == ([], 1)  # sequence numbers are not reused
    assert len(alarm_events(endpoint, keep)[0]) == 1
    assert call(endpoint, drop, "DescribeAlarmHistory", {})["AlarmHistoryItems"] == []
    call(endpoint, drop, "SetAlarmState", {"AlarmName": "x", "StateValue": "OK", "StateReason": "after reset"})
    assert [e["seq"] for e in alarm_events(endpoint, drop)[0]] == [2]


def test_alarm_events_route_rejects_bad_queries(endpoint: str) -> None:
    status, answer = control(endpoint, "GET", f"alarm-events?account={fresh_account()}&since=abc")
    assert status == 400 and "since" in answer["error"]  # type: ignore[index]
    status, answer = control(endpoint, "GET", "alarm-events")
    assert status == 400 and "account" in answer["error"]  # type: ignore[index]


# ---------------------------------------------------------------------------
# The codec (no emulator)


def test_cbor_codec_reads_what_sdks_write() -> None:
    assert cbor.loads(bytes.fromhex("bf6161f5ff")) == {"a": True}
    assert cbor.loads(bytes.fromhex("9f0102ff")) == [1, 2]
    assert cbor.loads(bytes.fromhex("7f626869616cff")) == "hil"
    assert cbor.loads(bytes.fromhex("5f42010241ffff")) == b"\x01\x02\xff"
    assert cbor.loads(bytes.fromhex("f93c00")) == 1.0  # half precision
    assert cbor.loads(bytes.fromhex("fa3fc00000")) == 1.5
    assert cbor.loads(bytes.fromhex("f7")) is None  # undefined -> null
    assert cbor.loads(bytes.fromhex("3903e7")) == -1000
    assert cbor.loads(bytes.fromhex("c249010000000000000000")) == 1 << 64
    assert cbor.loads(bytes.fromhex("c11a5f5e1000")) == datetime(2020, 9, 13, 12, 26, 40, tzinfo=timezone.utc)
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    assert cbor.loads(cbor.dumps({"t": when}))["t"] == when
    assert cbor.dumps(1.0) == b"\xfb" + struct.pack(">d", 1.0)
    assert cbor.dumps(when)[:2] == b"\xc1\xfb"
    for bad in ("", "bf6161", "62ff", "1c", "ff", "a1", "0000", "c1f5", "7f01ff"):
        with pytest.raises(cbor.CBORDecodeError):
            cbor.loads(bytes.fromhex(bad))
    with pytest.raises(cbor.CBORDecodeError):
        cbor.loads(b"\x81" * 100 + b"\x00")


def test_botocore_decodes_what_the_codec_writes() -> None:
    value = {"a": [1, -2, 2.5, "x", b"y", True, None], "b": {"c": datetime(2026, 1, 1, tzinfo=timezone.utc)}}
    decoded = decode(cbor.dumps(value))
    assert decoded["a"][:6] == [1, -2, 2.5, "x", b"y", True]
    assert decoded["b"]["c"] == datetime(2026, 1, 1, tzinfo=timezone.utc)
