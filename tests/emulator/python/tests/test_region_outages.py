"""Region-scoped fault rules and region outages (``faults.py``), driven with boto3."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import client, control, fresh_account


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def outage(endpoint: str, region: str, down: bool, account: str | None = None) -> list[dict[str, object]]:
    body: dict[str, object] = {"region": region, "down": down}
    if account is not None:
        body["account"] = account
    status, answer = control(endpoint, "POST", "region-outage", body)
    assert status == 200, answer
    return list(answer["outages"])


def count(endpoint: str, account: str, service: str, action: str) -> int:
    status, answer = control(endpoint, "GET", f"count?service={service}&action={action}&account={account}")
    assert status == 200
    return int(answer["count"])


def test_a_fault_rule_with_a_region_matches_only_that_region(endpoint: str) -> None:
    account = fresh_account()
    rule = {
        "service": "ec2",
        "action": "DescribeInstances",
        "status": 503,
        "code": "Unavailable",
        "count": 1,
        "account": account,
        "region": "us-west-2",
    }
    assert control(endpoint, "POST", "faults", rule)[0] == 200
    client(endpoint, "ec2", account, "us-east-1").describe_instances()
    with pytest.raises(ClientError) as caught:
        client(endpoint, "ec2", account, "us-west-2").describe_instances()
    assert error_of(caught)[:2] == (503, "Unavailable")
    client(endpoint, "ec2", account, "us-west-2").describe_instances()
    assert count(endpoint, account, "ec2", "DescribeInstances") == 3
    status, answer = control(endpoint, "POST", "faults", {**rule, "region": ""})
    assert status == 400 and "region" in answer["error"]


def test_a_region_outage_fails_every_service_of_that_region(endpoint: str) -> None:
    account, bystander = fresh_account(), fresh_account()
    assert outage(endpoint, "eu-west-1", True, account) == [{"region": "eu-west-1", "account": account}]
    assert control(endpoint, "GET", "region-outage")[1]["outages"] == [{"region": "eu-west-1", "account": account}]

    down = {
        "ec2 (EC2 XML)": lambda: client(endpoint, "ec2", account, "eu-west-1").describe_instances(),
        "autoscaling (Query XML)": lambda: client(endpoint, "autoscaling", account, "eu-west-1").describe_auto_scaling_groups(),
        "dynamodb (JSON)": lambda: client(endpoint, "dynamodb", account, "eu-west-1").list_tables(),
        "s3 (S3 XML)": lambda: client(endpoint, "s3", account, "eu-west-1").list_buckets(),
        "cloudwatch": lambda: client(endpoint, "cloudwatch", account, "eu-west-1").describe_alarms(),
    }
    for what, call in down.items():
        with pytest.raises(ClientError) as caught:
            call()
        status, code, message = error_of(caught)
        assert (status, code) == (503, "ServiceUnavailable"), what
        assert "eu-west-1" in message, what
    # Still counted; other regions and accounts are up.
    assert count(endpoint, account, "ec2", "DescribeInstances") == 1
    client(endpoint, "ec2", account, "eu-west-2").describe_instances()
    client(endpoint, "ec2", bystander, "eu-west-1").describe_instances()
    # Control routes are never affected.
    assert control(endpoint, "GET", "health") == (200, {"ok": True})

    assert outage(endpoint, "eu-west-1", False, account) == []
    client(endpoint, "ec2", account, "eu-west-1").describe_instances()


def test_an_outage_of_us_east_1_takes_route53_down_and_reset_lifts_it(endpoint: str) -> None:
    account, other = fresh_account(), fresh_account()
    outage(endpoint, "us-east-1", True, account)
    outage(endpoint, "ap-south-1", True)  # every account
    with pytest.raises(ClientError) as caught:
        client(endpoint, "route53", account).list_hosted_zones()
    assert error_of(caught)[:2] == (503, "ServiceUnavailable")
    with pytest.raises(ClientError):
        client(endpoint, "sqs", other, "ap-south-1").list_queues()
    client(endpoint, "route53", other).list_hosted_zones()

    # A fault rule still skipping counts outage-failed requests down, and is not consumed by them.
    rule = {"service": "route53", "action": "GET", "status": 400, "code": "Throttling", "count": 1, "account": account, "skip": 1}
    assert control(endpoint, "POST", "faults", rule)[0] == 200
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            client(endpoint, "route53", account).list_hosted_zones()
        assert error_of(caught)[:2] == (503, "ServiceUnavailable")
    armed = [r for r in control(endpoint, "GET", "faults")[1]["faults"] if r["account"] == account]
    assert [(r["skip"], r["count"], r["region"]) for r in armed] == [(0, 1, None)]
    outage(endpoint, "us-east-1", False, account)
    with pytest.raises(ClientError) as caught:
        client(endpoint, "route53", account).list_hosted_zones()
    assert error_of(caught)[:2] == (400, "Throttling")
    client(endpoint, "route53", account).list_hosted_zones()
    assert count(endpoint, account, "route53", "GET") == 5

    outage(endpoint, "us-east-1", True, account)
    assert control(endpoint, "POST", f"reset?account={account}")[0] == 200
    # That account's outage is gone (and its rule); the outage of every account stays.
    assert control(endpoint, "GET", "region-outage")[1]["outages"] == [{"region": "ap-south-1", "account": None}]
    client(endpoint, "route53", account).list_hosted_zones()
    outage(endpoint, "ap-south-1", False)
    client(endpoint, "sqs", other, "ap-south-1").list_queues()


def test_bad_outage_requests_are_400(endpoint: str) -> None:
    for body in (
        {"region": "us-east-1"},
        {"region": "", "down": True},
        {"region": "us-east-1", "down": "yes"},
        {"region": "us-east-1", "down": True, "account": "12"},
        {"region": "us-east-1", "down": True, "extra": 1},
        [],
    ):
        status, answer = control(endpoint, "POST", "region-outage", body)
        assert status == 400, body
        assert answer["error"]
