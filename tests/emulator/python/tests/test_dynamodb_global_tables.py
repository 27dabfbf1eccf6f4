"""DynamoDB global tables with multi-Region strong consistency (plugin
``dynamodb_global_tables``), driven with boto3 against the emulator."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import client, control, fresh_account

HOME, REPLICA, WITNESS, OTHER = "us-east-2", "us-east-1", "us-west-2", "eu-west-1"


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


class Fence:
    """A table ``fence`` (key ``pk``) of a fresh account in HOME, with clients for four regions."""

    def __init__(self, endpoint: str, name: str = "fence") -> None:
        self.account = fresh_account()
        self.name = name
        self.ddb = {r: client(endpoint, "dynamodb", self.account, r) for r in (HOME, REPLICA, WITNESS, OTHER)}
        self.ddb[HOME].create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def update(self, region: str = HOME, **kwargs: Any) -> dict[str, Any]:
        return dict(self.ddb[region].update_table(TableName=self.name, **kwargs)["TableDescription"])

    def mrsc(self) -> dict[str, Any]:
        """Two replicas and a witness."""
        return self.update(
            ReplicaUpdates=[{"Create": {"RegionName": REPLICA}}],
            GlobalTableWitnessUpdates=[{"Create": {"RegionName": WITNESS}}],
            MultiRegionConsistency="STRONG",
        )

    def describe(self, region: str) -> dict[str, Any]:
        return dict(self.ddb[region].describe_table(TableName=self.name)["Table"])

    def put(self, via: str, pk: str, **attrs: Any) -> None:
        item = {"pk": {"S": pk}, **{k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in attrs.items()}}
        self.ddb[via].put_item(TableName=self.name, Item=item)

    def get(self, region: str, pk: str) -> dict[str, Any] | None:
        return self.ddb[region].get_item(TableName=self.name, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")


def replicas(description: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["RegionName"], r["ReplicaStatus"]) for r in description.get("Replicas", [])]


def test_mrsc_with_a_witness_shares_one_table_across_regions(endpoint: str) -> None:
    fence = Fence(endpoint)
    answer = fence.mrsc()
    assert replicas(answer) == [(REPLICA, "ACTIVE")]
    assert answer["MultiRegionConsistency"] == "STRONG"
    assert answer["GlobalTableWitnesses"] == [{"RegionName": WITNESS, "WitnessStatus": "ACTIVE"}]

    home, replica = fence.describe(HOME), fence.describe(REPLICA)
    assert replicas(home) == [(REPLICA, "ACTIVE")]
    assert replicas(replica) == [(HOME, "ACTIVE")]
    for description, region in ((home, HOME), (replica, REPLICA)):
        assert description["GlobalTableVersion"] == "2019.11.21"
        assert description["MultiRegionConsistency"] == "STRONG"
        assert description["TableArn"] == f"arn:aws:dynamodb:{region}:{fence.account}:table/fence"
    # The witness holds no table; a region outside the group neither.
    for region in (WITNESS, OTHER):
        with pytest.raises(ClientError) as caught:
            fence.describe(region)
        assert error_of(caught)[:2] == (400, "ResourceNotFoundException")
    assert fence.ddb[REPLICA].list_tables()["TableNames"] == ["fence"]
    assert fence.ddb[OTHER].list_tables()["TableNames"] == []

    # A write through one replica is read through the other at once, both ways.
    fence.put(HOME, "leader", epoch=1, region=HOME)
    assert fence.get(REPLICA, "leader") == {"pk": {"S": "leader"}, "epoch": {"N": "1"}, "region": {"S": HOME}}
    fence.ddb[REPLICA].update_item(
        TableName="fence",
        Key={"pk": {"S": "leader"}},
        UpdateExpression="SET epoch = :next",
        ConditionExpression="epoch = :seen",
        ExpressionAttributeValues={":seen": {"N": "1"}, ":next": {"N": "2"}},
    )
    assert fence.get(HOME, "leader")["epoch"] == {"N": "2"}  # type: ignore[index]
    # The replica's own ARN names the table there too.
    arn = f"arn:aws:dynamodb:{REPLICA}:{fence.account}:table/fence"
    assert fence.ddb[REPLICA].describe_table(TableName=arn)["Table"]["TableName"] == "fence"


def test_three_replicas_and_eventual_consistency(endpoint: str) -> None:
    fence = Fence(endpoint)
    answer = fence.update(
        ReplicaUpdates=[{"Create": {"RegionName": REPLICA}}, {"Create": {"RegionName": WITNESS}}],
        MultiRegionConsistency="STRONG",
    )
    assert replicas(answer) == [(REPLICA, "ACTIVE"), (WITNESS, "ACTIVE")]
    assert "GlobalTableWitnesses" not in answer
    assert replicas(fence.describe(WITNESS)) == [(HOME, "ACTIVE"), (REPLICA, "ACTIVE")]

    mrec = Fence(endpoint, name="events")
    fence.put(HOME, "x")  # another table's items do not matter
    answer = mrec.update(ReplicaUpdates=[{"Create": {"RegionName": OTHER}}])
    assert answer["MultiRegionConsistency"] == "EVENTUAL"
    assert replicas(mrec.describe(OTHER)) == [(HOME, "ACTIVE")]
    mrec.put(OTHER, "a")
    assert mrec.get(HOME, "a") == {"pk": {"S": "a"}}


def test_mrsc_is_validated_as_aws_does(endpoint: str) -> None:
    fence = Fence(endpoint)
    bad: list[dict[str, Any]] = [
        # Two regions in all, four in all.
        {"ReplicaUpdates": [{"Create": {"RegionName": REPLICA}}], "MultiRegionConsistency": "STRONG"},
        {
            "ReplicaUpdates": [{"Create": {"RegionName": REPLICA}}, {"Create": {"RegionName": OTHER}}],
            "GlobalTableWitnessUpdates": [{"Create": {"RegionName": WITNESS}}],
            "MultiRegionConsistency": "STRONG",
        },
        # A witness without strong consistency; a witness where a replica is.
        {"ReplicaUpdates": [{"Create": {"RegionName": REPLICA}}], "GlobalTableWitnessUpdates": [{"Create": {"RegionName": WITNESS}}]},
        {
            "ReplicaUpdates": [{"Create": {"RegionName": REPLICA}}],
            "GlobalTableWitnessUpdates": [{"Create": {"RegionName": REPLICA}}],
            "MultiRegionConsistency": "STRONG",
        },
        # A replica in the table's own region, or in no region.
        {"ReplicaUpdates": [{"Create": {"RegionName": HOME}}]},
        {"ReplicaUpdates": [{"Create": {"RegionName": "xx-nowhere-1"}}]},
        {"ReplicaUpdates": [{"Delete": {"RegionName": REPLICA}}]},
        {"MultiRegionConsistency": "STRONG"},
    ]
    for kwargs in bad:
        with pytest.raises(ClientError) as caught:
            fence.update(**kwargs)
        assert error_of(caught)[:2] == (400, "ValidationException"), kwargs
    assert "Replicas" not in fence.describe(HOME)
    assert fence.ddb[REPLICA].list_tables()["TableNames"] == []

    # Strong consistency only on an empty table.
    fence.put(HOME, "leader", epoch=1)
    with pytest.raises(ClientError) as caught:
        fence.mrsc()
    status, code, message = error_of(caught)
    assert (status, code) == (400, "ValidationException")
    assert "empty" in message
    assert fence.ddb[REPLICA].list_tables()["TableNames"] == []


def test_a_replica_where_a_table_of_that_name_exists_is_refused(endpoint: str) -> None:
    fence = Fence(endpoint)
    fence.ddb[REPLICA].create_table(
        TableName="fence",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ClientError) as caught:
        fence.mrsc()
    assert error_of(caught) == (
        400,
        "ValidationException",
        "Failed to create a the new replica of table with name: 'fence' because one or more replicas "
        "already existed as tables.",
    )
    with pytest.raises(ClientError) as caught:
        fence.ddb[OTHER].update_table(TableName="missing", ReplicaUpdates=[{"Create": {"RegionName": HOME}}])
    assert error_of(caught) == (400, "ResourceNotFoundException", "Requested resource not found: Table: missing not found")


def test_delete_table_in_a_replica_region_removes_only_that_replica(endpoint: str) -> None:
    fence = Fence(endpoint)
    fence.update(ReplicaUpdates=[{"Create": {"RegionName": REPLICA}}, {"Create": {"RegionName": OTHER}}])
    fence.put(REPLICA, "leader", epoch=3)
    fence.ddb[REPLICA].delete_table(TableName="fence")
    assert fence.ddb[REPLICA].list_tables()["TableNames"] == []
    assert replicas(fence.describe(HOME)) == [(OTHER, "ACTIVE")]
    assert replicas(fence.describe(OTHER)) == [(HOME, "ACTIVE")]
    assert fence.get(OTHER, "leader") == {"pk": {"S": "leader"}, "epoch": {"N": "3"}}

    # Deleting the table in its first region leaves it, a single-region table, in the last one.
    fence.ddb[HOME].delete_table(TableName="fence")
    last = fence.describe(OTHER)
    assert "Replicas" not in last and "MultiRegionConsistency" not in last
    assert last["TableArn"] == f"arn:aws:dynamodb:{OTHER}:{fence.account}:table/fence"
    assert fence.get(OTHER, "leader") is not None
    # The region can have a new table of that name, unrelated.
    fence.ddb[HOME].create_table(
        TableName="fence",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert fence.get(HOME, "leader") is None


def test_mrsc_replica_and_witness_are_removed_together(endpoint: str) -> None:
    fence = Fence(endpoint)
    fence.mrsc()
    with pytest.raises(ClientError) as caught:
        fence.update(ReplicaUpdates=[{"Delete": {"RegionName": REPLICA}}])
    assert error_of(caught)[:2] == (400, "ValidationException")
    answer = fence.update(
        ReplicaUpdates=[{"Delete": {"RegionName": REPLICA}}],
        GlobalTableWitnessUpdates=[{"Delete": {"RegionName": WITNESS}}],
    )
    assert "Replicas" not in answer and "GlobalTableWitnesses" not in answer
    assert fence.ddb[REPLICA].list_tables()["TableNames"] == []


def test_conditional_claims_racing_from_two_regions_have_one_winner(endpoint: str) -> None:
    fence = Fence(endpoint)
    fence.mrsc()
    rounds = 8
    for epoch in range(rounds):
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def claim(region: str, seen: int = epoch) -> None:
            values: dict[str, Any] = {":seen": {"N": str(seen)}}
            barrier.wait()
            try:
                fence.ddb[region].put_item(
                    TableName="fence",
                    Item={"pk": {"S": "leader"}, "epoch": {"N": str(seen + 1)}, "region": {"S": region}},
                    ConditionExpression="attribute_not_exists(pk) OR epoch = :seen",
                    ExpressionAttributeValues=values,
                )
                outcomes[region] = "won"
            except ClientError as err:
                outcomes[region] = err.response["Error"]["Code"]

        threads = [threading.Thread(target=claim, args=(r,)) for r in (HOME, REPLICA)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes.values()) == ["ConditionalCheckFailedException", "won"], outcomes
        winner = next(r for r, o in outcomes.items() if o == "won")
        for region in (HOME, REPLICA):
            assert fence.get(region, "leader") == {
                "pk": {"S": "leader"},
                "epoch": {"N": str(epoch + 1)},
                "region": {"S": winner},
            }


def test_reset_leaves_global_tables_consistent(endpoint: str) -> None:
    fence = Fence(endpoint)
    fence.mrsc()
    fence.put(REPLICA, "leader", epoch=1)
    assert control(endpoint, "POST", f"reset?account={fence.account}")[0] == 200
    assert control(endpoint, "POST", "reset")[0] == 200
    # Each region that has the table is a replica of it and sees the same items.
    assert replicas(fence.describe(HOME)) == [(REPLICA, "ACTIVE")]
    assert replicas(fence.describe(REPLICA)) == [(HOME, "ACTIVE")]
    assert fence.ddb[WITNESS].list_tables()["TableNames"] == []
    fence.put(HOME, "leader", epoch=2)
    assert fence.get(REPLICA, "leader")["epoch"] == {"N": "2"}  # type: ignore[index]
