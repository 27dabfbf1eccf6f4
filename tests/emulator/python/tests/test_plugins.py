"""The emulator as a black box: a subprocess on a free loopback port, driven with boto3."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import PACKAGE_ROOT, client, control, fresh_account, start_emulator


def make_group(endpoint: str, account: str, name: str, max_size: int = 2) -> None:
    ec2 = client(endpoint, "ec2", account)
    templates = ec2.describe_launch_templates()["LaunchTemplates"]
    if not any(t["LaunchTemplateName"] == "dm-test-lt" for t in templates):
        ec2.create_launch_template(
            LaunchTemplateName="dm-test-lt",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
        )
    client(endpoint, "autoscaling", account).create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=1,
        MaxSize=max_size,
        DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateName": "dm-test-lt", "Version": "$Latest"},
        AvailabilityZones=["us-east-1a"],
    )


def groups(endpoint: str, account: str) -> dict[str, dict]:  # type: ignore[type-arg]
    found = client(endpoint, "autoscaling", account).describe_auto_scaling_groups()
    return {g["AutoScalingGroupName"]: g for g in found["AutoScalingGroups"]}


def test_duplicate_group_name_fails_and_keeps_the_first_group(endpoint: str) -> None:
    account = fresh_account()
    make_group(endpoint, account, "g1", max_size=2)
    before = groups(endpoint, account)["g1"]

    with pytest.raises(ClientError) as caught:
        make_group(endpoint, account, "g1", max_size=7)

    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "AlreadyExists"
    assert error["Error"]["Type"] == "Sender"
    assert error["Error"]["Message"] == (
        "AutoScalingGroup by this name already exists - A group with the name g1 already exists"
    )
    after = groups(endpoint, account)
    assert list(after) == ["g1"]
    assert after["g1"]["MaxSize"] == 2
    assert after["g1"]["AutoScalingGroupARN"] == before["AutoScalingGroupARN"]
    assert after["g1"]["Instances"] == before["Instances"]


def test_group_name_is_reusable_after_delete(endpoint: str) -> None:
    account = fresh_account()
    make_group(endpoint, account, "g1")
    asg = client(endpoint, "autoscaling", account)
    asg.delete_auto_scaling_group(AutoScalingGroupName="g1", ForceDelete=True)
    make_group(endpoint, account, "g1", max_size=3)
    assert groups(endpoint, account)["g1"]["MaxSize"] == 3


def test_concurrent_creates_of_one_name_have_one_winner(endpoint: str) -> None:
    account = fresh_account()
    make_group(endpoint, account, "warmup")  # creates the launch template
    outcomes: list[str] = []

    def create() -> None:
        try:
            make_group(endpoint, account, "race")
            outcomes.append("created")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["AlreadyExists"] * 7 + ["created"]


def test_twelve_digit_access_keys_are_separate_accounts(endpoint: str) -> None:
    a, b = fresh_account(), fresh_account()
    make_group(endpoint, a, "shared-name", max_size=2)
    make_group(endpoint, b, "shared-name", max_size=4)  # no AlreadyExists: other account
    make_group(endpoint, b, "only-b")

    in_a, in_b = groups(endpoint, a), groups(endpoint, b)
    assert sorted(in_a) == ["shared-name"]
    assert sorted(in_b) == ["only-b", "shared-name"]
    assert in_a["shared-name"]["MaxSize"] == 2
    assert in_b["shared-name"]["MaxSize"] == 4
    assert f":{a}:" in in_a["shared-name"]["AutoScalingGroupARN"]
    assert f":{b}:" in in_b["shared-name"]["AutoScalingGroupARN"]
    assert client(endpoint, "sts", a).get_caller_identity()["Account"] == a


def test_other_access_keys_keep_moto_default_account(endpoint: str) -> None:
    for key in ("AKIAIOSFODNN7EXAMPLE", "testing", "1234567890123"):
        assert client(endpoint, "sts", key).get_caller_identity()["Account"] == "123456789012"


def test_fault_fails_exactly_count_requests_then_passes(endpoint: str) -> None:
    account = fresh_account()
    status, _ = control(
        endpoint,
        "POST",
        "faults",
        {
            "service": "autoscaling",
            "action": "DescribeAutoScalingGroups",
            "status": 503,
            "code": "ServiceUnavailable",
            "count": 2,
            "account": account,
        },
    )
    assert status == 200
    asg = client(endpoint, "autoscaling", account)
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            asg.describe_auto_scaling_groups()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert caught.value.response["Error"]["Type"] == "Receiver"
    assert asg.describe_auto_scaling_groups()["AutoScalingGroups"] == []


def test_fault_scoped_to_an_account_spares_others(endpoint: str) -> None:
    target, bystander = fresh_account(), fresh_account()
    rule = {"service": "ec2", "action": "DescribeInstances", "status": 400, "code": "RequestLimitExceeded"}
    control(endpoint, "POST", "faults", {**rule, "count": 1, "account": target})
    client(endpoint, "ec2", bystander).describe_instances()  # unaffected
    with pytest.raises(ClientError) as caught:
        client(endpoint, "ec2", target).describe_instances()
    assert caught.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    client(endpoint, "ec2", target).describe_instances()


def test_s3_fault_by_bare_http_method_still_matches(endpoint: str) -> None:
    account = fresh_account()
    s3 = client(endpoint, "s3", account)
    bucket = f"dm-test-{account}"
    control(
        endpoint,
        "POST",
        "faults",
        {"service": "s3", "action": "PUT", "status": 500, "code": "InternalError", "count": 1, "account": account},
    )
    with pytest.raises(ClientError) as caught:
        s3.create_bucket(Bucket=bucket)
    assert caught.value.response["Error"]["Code"] == "InternalError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"
    # Counts name the operation; a bare method still counts its requests.
    _, counts = control(endpoint, "GET", f"requests?account={account}")
    assert counts == {"s3:CreateBucket": 2, "s3:GetObject": 1, "s3:PutObject": 1}
    assert control(endpoint, "GET", f"count?service=s3&action=PUT&account={account}") == (200, {"count": 3})
    assert control(endpoint, "GET", f"count?service=s3&action=GET&account={account}") == (200, {"count": 1})
    assert control(endpoint, "GET", f"requests?account={account}&service=s3&action=PUT") == (
        200,
        {"s3:CreateBucket": 2, "s3:PutObject": 1},
    )


def test_faults_survive_sdk_retries_only_count_times(endpoint: str) -> None:
    account = fresh_account()
    control(
        endpoint,
        "POST",
        "faults",
        {"service": "autoscaling", "action": "*", "status": 503, "code": "ServiceUnavailable", "count": 2, "account": account},
    )
    # The SDK retries 503s; 3 attempts are enough to get through 2 faults.
    client(endpoint, "autoscaling", account, retries=3).describe_auto_scaling_groups()
    _, counts = control(endpoint, "GET", f"requests?account={account}")
    assert counts == {"autoscaling:DescribeAutoScalingGroups": 3}


def test_json_protocol_faults_parse_in_the_sdk(endpoint: str) -> None:
    account = fresh_account()
    control(
        endpoint,
        "POST",
        "faults",
        {"service": "events", "action": "ListRules", "status": 400, "code": "ThrottlingException", "count": 1, "account": account},
    )
    events = client(endpoint, "events", account)
    with pytest.raises(ClientError) as caught:
        events.list_rules()
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert events.list_rules()["Rules"] == []


def test_request_counts_per_account_and_total(endpoint: str) -> None:
    a, b = fresh_account(), fresh_account()
    for _ in range(3):
        client(endpoint, "autoscaling", a).describe_auto_scaling_groups()
    client(endpoint, "autoscaling", b).describe_auto_scaling_groups()
    client(endpoint, "sts", b).get_caller_identity()

    assert control(endpoint, "GET", f"requests?account={a}") == (200, {"autoscaling:DescribeAutoScalingGroups": 3})
    assert control(endpoint, "GET", f"requests?account={b}") == (
        200,
        {"autoscaling:DescribeAutoScalingGroups": 1, "sts:GetCallerIdentity": 1},
    )
    assert control(endpoint, "GET", f"count?service=autoscaling&action=DescribeAutoScalingGroups&account={a}") == (
        200,
        {"count": 3},
    )
    _, total = control(endpoint, "GET", "requests")
    assert isinstance(total, dict)
    assert total["autoscaling:DescribeAutoScalingGroups"] >= 4


def test_bad_fault_rules_are_rejected(endpoint: str) -> None:
    good = {"service": "ec2", "action": "X", "status": 500, "code": "E", "count": 1}
    for bad in ({**good, "count": 0}, {**good, "status": 200}, {**good, "bogus": 1}, {"service": "ec2"}):
        status, body = control(endpoint, "POST", "faults", bad)
        assert status == 400, bad
        assert "error" in body
    assert control(endpoint, "GET", "nope")[0] == 404


def test_reset_clears_faults_and_counts() -> None:
    proc, url = start_emulator()  # own server: reset is global
    try:
        account = fresh_account()
        control(url, "POST", "faults", {"service": "sts", "action": "*", "status": 500, "code": "X", "count": 5})
        with pytest.raises(ClientError):
            client(url, "sts", account).get_caller_identity()
        assert control(url, "POST", "reset", {}) == (200, {"ok": True})
        assert control(url, "GET", "faults") == (200, {"faults": []})
        assert control(url, "GET", "requests") == (200, {})
        client(url, "sts", account).get_caller_identity()
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_host_is_refused(host: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dm_emulator", "--host", host, "--port", "0"],
        env=dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT)),
        stdin=subprocess.PIPE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "DM_EMULATOR_READY" not in result.stdout
    assert "refusing" in result.stderr


def test_exits_when_stdin_closes() -> None:
    proc, _ = start_emulator()
    assert proc.stdin is not None
    proc.stdin.close()
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        pytest.fail("emulator kept running after stdin closed")
    assert proc.returncode == 0


# ---------------------------------------------------------------------------
# lambda_async_invoke


def make_function(endpoint: str, account: str, name: str, region: str = "us-east-1") -> str:
    status, body = control(endpoint, "POST", "lambda/functions", {"account": account, "region": region, "name": name})
    assert status == 200, body
    assert isinstance(body, dict)
    return str(body["arn"])


def recorded(endpoint: str, query: str) -> list[dict]:  # type: ignore[type-arg]
    status, body = control(endpoint, "GET", f"lambda/invocations?{query}")
    assert status == 200, body
    assert isinstance(body, dict)
    return list(body["invocations"])


def test_stub_function_is_created_once_with_its_role(endpoint: str) -> None:
    account = fresh_account()
    arn = make_function(endpoint, account, "okera-dm-reconciler", region="us-west-2")
    assert arn == f"arn:aws:lambda:us-west-2:{account}:function:okera-dm-reconciler"
    again = control(
        endpoint,
        "POST",
        "lambda/functions",
        {"account": account, "region": "us-west-2", "name": "okera-dm-reconciler"},
    )
    assert again == (200, {"arn": arn, "created": False})
    make_function(endpoint, account, "second", region="us-west-2")  # the role exists by now

    lam = boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id=account,
        aws_secret_access_key="secret",
    )
    config = lam.get_function(FunctionName="okera-dm-reconciler")["Configuration"]
    assert config["FunctionArn"] == arn
    assert config["Role"] == f"arn:aws:iam::{account}:role/dm-emulator-lambda-stub"
    role = client(endpoint, "iam", account).get_role(RoleName="dm-emulator-lambda-stub")["Role"]
    assert role["Arn"] == config["Role"]
    # Only in that account and region.
    with pytest.raises(ClientError):
        client(endpoint, "lambda", account).get_function(FunctionName="okera-dm-reconciler")
    with pytest.raises(ClientError):
        client(endpoint, "lambda", fresh_account()).get_function(FunctionName="okera-dm-reconciler")


def test_event_invoke_answers_202_empty_and_is_recorded(endpoint: str) -> None:
    account = fresh_account()
    arn = make_function(endpoint, account, "fn")
    lam = client(endpoint, "lambda", account)
    first = lam.invoke(FunctionName="fn", InvocationType="Event", Payload=b'{"run": 1}')
    assert first["StatusCode"] == 202
    assert first["Payload"].read() == b""
    assert "FunctionError" not in first
    second = lam.invoke(FunctionName=arn, InvocationType="Event", Payload='{"run": "\u00e9"}'.encode())
    assert second["StatusCode"] == 202
    assert second["Payload"].read() == b""

    found = recorded(endpoint, f"account={account}&function=fn")
    assert [(i["function"], i["payload"], i["region"]) for i in found] == [
        ("fn", '{"run": 1}', "us-east-1"),
        (arn, '{"run": "\u00e9"}', "us-east-1"),
    ]
    assert all(i["account"] == account and i["function_arn"] == arn for i in found)
    assert found[0]["time"] <= found[1]["time"]
    assert recorded(endpoint, f"account={account}&function={arn}") == found
    assert recorded(endpoint, f"account={account}&function=other") == []
    assert recorded(endpoint, f"account={fresh_account()}") == []


def test_event_invoke_of_a_missing_function_is_404_and_not_recorded(endpoint: str) -> None:
    account = fresh_account()
    make_function(endpoint, account, "exists")
    with pytest.raises(ClientError) as caught:
        client(endpoint, "lambda", account).invoke(FunctionName="missing", InvocationType="Event", Payload=b"{}")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # A function of another account is missing too.
    with pytest.raises(ClientError) as caught:
        client(endpoint, "lambda", fresh_account()).invoke(FunctionName="exists", InvocationType="Event", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert recorded(endpoint, f"account={account}") == []


def test_event_invoke_with_a_payload_that_is_not_json_is_rejected(endpoint: str) -> None:
    account = fresh_account()
    make_function(endpoint, account, "fn")
    with pytest.raises(ClientError) as caught:
        client(endpoint, "lambda", account).invoke(FunctionName="fn", InvocationType="Event", Payload=b"not json")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert caught.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert recorded(endpoint, f"account={account}") == []


def test_request_response_invoke_keeps_moto_behaviour(endpoint: str) -> None:
    account = fresh_account()
    make_function(endpoint, account, "fn")
    lam = client(endpoint, "lambda", account)
    # moto runs the function in Docker (absent here: an error as the result),
    # in any case not an empty 202, and nothing is recorded.
    result = lam.invoke(FunctionName="fn", InvocationType="RequestResponse", Payload=b"{}")
    assert result["StatusCode"] == 200
    dry = lam.invoke(FunctionName="fn", InvocationType="DryRun", Payload=b"{}")
    assert dry["StatusCode"] == 204
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName="missing", InvocationType="RequestResponse", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert recorded(endpoint, f"account={account}") == []


def test_lambda_faults_use_the_http_method_as_action(endpoint: str) -> None:
    account = fresh_account()
    make_function(endpoint, account, "fn")
    rule = {"service": "lambda", "action": "POST", "status": 429, "code": "TooManyRequestsException"}
    control(endpoint, "POST", "faults", {**rule, "count": 1, "account": account})
    lam = client(endpoint, "lambda", account)
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName="fn", InvocationType="Event", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert recorded(endpoint, f"account={account}") == []
    assert lam.invoke(FunctionName="fn", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
    assert len(recorded(endpoint, f"account={account}")) == 1


def test_bad_stub_function_requests_are_rejected(endpoint: str) -> None:
    good = {"account": fresh_account(), "region": "us-east-1", "name": "fn"}
    for bad in (
        {**good, "account": "12"},
        {**good, "region": "mars-north-1"},
        {**good, "name": "bad name"},
        {**good, "extra": 1},
        {"account": good["account"]},
        [],
    ):
        status, body = control(endpoint, "POST", "lambda/functions", bad)
        assert status == 400, bad
        assert "error" in body


def test_reset_clears_recorded_invocations_per_account_or_all() -> None:
    proc, url = start_emulator()  # own server: reset is global
    try:
        a, b = fresh_account(), fresh_account()
        for account in (a, b):
            make_function(url, account, "fn")
            client(url, "lambda", account).invoke(FunctionName="fn", InvocationType="Event", Payload=b"{}")
        assert len(recorded(url, "function=fn")) == 2
        assert control(url, "POST", f"reset?account={a}", {}) == (200, {"ok": True})
        assert recorded(url, f"account={a}") == []
        assert len(recorded(url, f"account={b}")) == 1
        assert control(url, "POST", "reset", {}) == (200, {"ok": True})
        assert recorded(url, "") == []
        # The functions themselves stay.
        client(url, "lambda", a).invoke(FunctionName="fn", InvocationType="Event", Payload=b"{}")
        assert len(recorded(url, f"account={a}")) == 1
    finally:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------
# Pages of DescribeAutoScalingGroups (moto's) and DescribeInstances (plugin ``ec2_instance_pages``)


def test_fifty_named_groups_come_in_one_page_of_max_records_100(endpoint: str) -> None:
    account = fresh_account()
    asg = client(endpoint, "autoscaling", account)
    names = [f"dm-page-{i:02d}" for i in range(50)]
    for name in names:
        make_group(endpoint, account, name)
    make_group(endpoint, account, "dm-not-asked")
    page = asg.describe_auto_scaling_groups(AutoScalingGroupNames=names, MaxRecords=100)
    assert sorted(g["AutoScalingGroupName"] for g in page["AutoScalingGroups"]) == names
    assert "NextToken" not in page


def tagged_instances(ec2, **kwargs):  # type: ignore[no-untyped-def]
    pages = []
    token = None
    while True:
        page = ec2.describe_instances(
            Filters=[{"Name": "tag:LaunchedBy", "Values": ["dm"]}], **kwargs, **({"NextToken": token} if token else {})
        )
        pages.append([(r["ReservationId"], i["InstanceId"]) for r in page["Reservations"] for i in r["Instances"]])
        token = page.get("NextToken")
        if not token:
            return pages


def test_describe_instances_pages_count_instances_not_reservations(endpoint: str) -> None:
    account = fresh_account()
    ec2 = client(endpoint, "ec2", account)
    tagged = {"ResourceType": "instance", "Tags": [{"Key": "LaunchedBy", "Value": "dm"}]}
    launched: list[str] = []
    for count, tags in ((7, [tagged]), (2, []), (3, [tagged]), (1, []), (1, [tagged]), (1, [tagged])):
        found = ec2.run_instances(ImageId="ami-12c6146b", MinCount=count, MaxCount=count, TagSpecifications=tags)
        if tags:
            launched += [i["InstanceId"] for i in found["Instances"]]
    assert len(launched) == 12
    pages = tagged_instances(ec2, MaxResults=5)
    assert [len(p) for p in pages] == [5, 5, 2]
    ids = [instance_id for p in pages for _, instance_id in p]
    assert ids == launched  # all, in launch order, no duplicates
    # A reservation that does not fit goes on over the next page, under the same id.
    assert pages[0][0][0] == pages[1][0][0]
    # Without MaxResults: one page; the paginator sees the same.
    assert tagged_instances(ec2) == [[pair for p in pages for pair in p]]
    paginated = [
        i["InstanceId"]
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:LaunchedBy", "Values": ["dm"]}], PaginationConfig={"PageSize": 5}
        )
        for r in page["Reservations"]
        for i in r["Instances"]
    ]
    assert paginated == launched
    # Tokens the emulator did not issue and MaxResults outside 5..1000 are refused.
    for kwargs in ({"MaxResults": 5, "NextToken": "bogus"}, {"MaxResults": 4}, {"MaxResults": 1001}):
        with pytest.raises(ClientError) as caught:
            ec2.describe_instances(**kwargs)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    # With InstanceIds, moto's code: the instances asked for.
    found = ec2.describe_instances(InstanceIds=launched[:2])["Reservations"]
    assert [i["InstanceId"] for r in found for i in r["Instances"]] == launched[:2]
