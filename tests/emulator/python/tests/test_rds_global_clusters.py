"""Aurora global databases (plugin ``rds_global_clusters``), driven with boto3 against the emulator."""

from __future__ import annotations

import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import client, control, fresh_account

PRIMARY_REGION = "us-east-1"
SECONDARY_REGION = "eu-west-1"
THIRD_REGION = "ap-southeast-2"


def error_of(caught: pytest.ExceptionInfo[ClientError], status: int, code: str) -> str:
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response
    assert response["Error"]["Code"] == code, response
    assert response["Error"]["Type"] == "Sender"
    return str(response["Error"]["Message"])


class GlobalDb:
    """A global database ``gdb`` of a fresh account: writer ``primary`` in
    us-east-1, secondary ``secondary`` in eu-west-1."""

    def __init__(self, endpoint: str, engine: str = "aurora-postgresql") -> None:
        self.endpoint = endpoint
        self.account = fresh_account()
        self.rds = {
            region: client(endpoint, "rds", self.account, region)
            for region in (PRIMARY_REGION, SECONDARY_REGION, THIRD_REGION)
        }
        self.engine = engine
        created = self.rds[PRIMARY_REGION].create_global_cluster(
            GlobalClusterIdentifier="gdb", Engine=engine, EngineVersion="15.4"
        )["GlobalCluster"]
        assert created["GlobalClusterMembers"] == []
        self.primary = self.add_member(PRIMARY_REGION, "primary", writer=True)
        self.secondary = self.add_member(SECONDARY_REGION, "secondary")

    def add_member(self, region: str, name: str, writer: bool = False) -> str:
        extra: dict[str, Any] = {"MasterUsername": "dm", "MasterUserPassword": "password123"} if writer else {}
        cluster = self.rds[region].create_db_cluster(
            DBClusterIdentifier=name,
            Engine=self.engine,
            EngineVersion="15.4",
            GlobalClusterIdentifier="gdb",
            **extra,
        )["DBCluster"]
        return str(cluster["DBClusterArn"])

    def describe(self, region: str = PRIMARY_REGION, name: str = "gdb") -> dict[str, Any]:
        found = self.rds[region].describe_global_clusters(GlobalClusterIdentifier=name)["GlobalClusters"]
        assert len(found) == 1
        return dict(found[0])

    def writers(self, region: str = PRIMARY_REGION) -> dict[str, bool]:
        return {m["DBClusterArn"]: m["IsWriter"] for m in self.describe(region)["GlobalClusterMembers"]}

    def sync(self) -> dict[str, str]:
        return {m["DBClusterArn"]: m["SynchronizationStatus"] for m in self.describe()["GlobalClusterMembers"]}

    def switchover(self, target: str, region: str = SECONDARY_REGION, name: str = "gdb") -> dict[str, Any]:
        answer = self.rds[region].switchover_global_cluster(GlobalClusterIdentifier=name, TargetDbClusterIdentifier=target)
        return dict(answer["GlobalCluster"])

    def failover(self, target: str, region: str = SECONDARY_REGION, name: str = "gdb", **extra: Any) -> dict[str, Any]:
        answer = self.rds[region].failover_global_cluster(
            GlobalClusterIdentifier=name, TargetDbClusterIdentifier=target, **extra
        )
        return dict(answer["GlobalCluster"])

    def set_duration(self, seconds: float) -> None:
        status, body = control(self.endpoint, "POST", "rds/failover-duration", {"account": self.account, "seconds": seconds})
        assert (status, body) == (200, {"account": self.account, "seconds": float(seconds)})

    def advance(self, seconds: float) -> None:
        status, body = control(self.endpoint, "POST", "clock", {"advance_seconds": seconds, "account": self.account})
        assert status == 200, body


@pytest.fixture
def gdb(endpoint: str) -> GlobalDb:
    return GlobalDb(endpoint)


# ---------------------------------------------------------------------------
# Creating and describing


def test_members_in_two_regions_are_one_writer_and_one_secondary(gdb: GlobalDb) -> None:
    for region in (PRIMARY_REGION, SECONDARY_REGION, THIRD_REGION):
        described = gdb.describe(region)
        assert described["Status"] == "available"
        assert "FailoverState" not in described
        assert described["GlobalClusterArn"] == f"arn:aws:rds::{gdb.account}:global-cluster:gdb"
        members = {m["DBClusterArn"]: m for m in described["GlobalClusterMembers"]}
        assert set(members) == {gdb.primary, gdb.secondary}
        assert members[gdb.primary]["IsWriter"] is True
        assert members[gdb.primary]["Readers"] == [gdb.secondary]
        assert members[gdb.secondary]["IsWriter"] is False
        assert {m["SynchronizationStatus"] for m in members.values()} == {"connected"}
    assert gdb.primary == f"arn:aws:rds:{PRIMARY_REGION}:{gdb.account}:cluster:primary"
    assert gdb.secondary == f"arn:aws:rds:{SECONDARY_REGION}:{gdb.account}:cluster:secondary"
    secondary = gdb.rds[SECONDARY_REGION].describe_db_clusters(DBClusterIdentifier="secondary")["DBClusters"][0]
    assert secondary["GlobalClusterIdentifier"] == "gdb"


def test_describe_by_identifier_and_region_filter(gdb: GlobalDb) -> None:
    rds = gdb.rds[SECONDARY_REGION]
    rds.create_global_cluster(GlobalClusterIdentifier="other", Engine="aurora-mysql")
    assert {g["GlobalClusterIdentifier"] for g in rds.describe_global_clusters()["GlobalClusters"]} == {"gdb", "other"}
    assert gdb.describe(name="GDB")["GlobalClusterIdentifier"] == "gdb"
    assert gdb.describe(name=f"arn:aws:rds::{gdb.account}:global-cluster:gdb")["GlobalClusterIdentifier"] == "gdb"
    with pytest.raises(ClientError) as caught:
        rds.describe_global_clusters(GlobalClusterIdentifier="missing")
    assert "missing" in error_of(caught, 404, "GlobalClusterNotFoundFault")

    def in_regions(*regions: str) -> list[str]:
        found = rds.describe_global_clusters(Filters=[{"Name": "region", "Values": list(regions)}])
        return [g["GlobalClusterIdentifier"] for g in found["GlobalClusters"]]

    assert in_regions(SECONDARY_REGION) == ["gdb"]
    assert in_regions(THIRD_REGION, PRIMARY_REGION) == ["gdb"]
    assert in_regions(THIRD_REGION) == []
    with pytest.raises(ClientError) as caught:
        rds.describe_global_clusters(Filters=[{"Name": "engine", "Values": ["aurora-mysql"]}])
    error_of(caught, 400, "InvalidParameterValue")


def test_global_cluster_from_an_existing_cluster_makes_it_the_writer(endpoint: str) -> None:
    account = fresh_account()
    east = client(endpoint, "rds", account, PRIMARY_REGION)
    west = client(endpoint, "rds", account, SECONDARY_REGION)
    arn = east.create_db_cluster(
        DBClusterIdentifier="solo", Engine="aurora-mysql", MasterUsername="dm", MasterUserPassword="password123"
    )["DBCluster"]["DBClusterArn"]
    created = east.create_global_cluster(GlobalClusterIdentifier="g", SourceDBClusterIdentifier=arn)["GlobalCluster"]
    assert [(m["DBClusterArn"], m["IsWriter"]) for m in created["GlobalClusterMembers"]] == [(arn, True)]
    assert east.describe_db_clusters(DBClusterIdentifier="solo")["DBClusters"][0]["GlobalClusterIdentifier"] == "g"
    replica = west.create_db_cluster(DBClusterIdentifier="replica", Engine="aurora-mysql", GlobalClusterIdentifier="g")
    members = west.describe_global_clusters(GlobalClusterIdentifier="g")["GlobalClusters"][0]["GlobalClusterMembers"]
    assert {m["DBClusterArn"]: m["IsWriter"] for m in members} == {arn: True, replica["DBCluster"]["DBClusterArn"]: False}


# ---------------------------------------------------------------------------
# Switchover


def test_switchover_promotes_the_target_and_demotes_the_writer(gdb: GlobalDb) -> None:
    answer = gdb.switchover(gdb.secondary)
    # The answer shows the switchover in progress, the roles not changed yet.
    assert answer["Status"] == "switching-over"
    assert answer["FailoverState"] == {
        "Status": "switching-over",
        "FromDbClusterArn": gdb.primary,
        "ToDbClusterArn": gdb.secondary,
        "IsDataLossAllowed": False,
    }
    assert {m["DBClusterArn"]: m["IsWriter"] for m in answer["GlobalClusterMembers"]} == {
        gdb.primary: True,
        gdb.secondary: False,
    }
    # With the default duration (0) the next request sees it done.
    described = gdb.describe(SECONDARY_REGION)
    assert described["Status"] == "available"
    assert "FailoverState" not in described
    assert gdb.writers() == {gdb.primary: False, gdb.secondary: True}
    members = {m["DBClusterArn"]: m for m in described["GlobalClusterMembers"]}
    assert members[gdb.secondary]["Readers"] == [gdb.primary]
    assert members[gdb.primary]["Readers"] == []
    assert set(gdb.sync().values()) == {"connected"}
    # And back (regional rotation / fail back), this time from the other region.
    gdb.switchover(gdb.primary, region=PRIMARY_REGION)
    assert gdb.writers(SECONDARY_REGION) == {gdb.primary: True, gdb.secondary: False}


def test_switchover_with_three_regions_keeps_one_writer(gdb: GlobalDb) -> None:
    third = gdb.add_member(THIRD_REGION, "third")
    gdb.switchover(third, region=THIRD_REGION)
    assert gdb.writers() == {gdb.primary: False, gdb.secondary: False, third: True}
    members = {m["DBClusterArn"]: m for m in gdb.describe()["GlobalClusterMembers"]}
    assert sorted(members[third]["Readers"]) == sorted([gdb.primary, gdb.secondary])


def test_switchover_takes_the_configured_duration_on_the_emulator_clock(gdb: GlobalDb) -> None:
    gdb.set_duration(90)
    gdb.switchover(gdb.secondary)
    described = gdb.describe()
    assert described["Status"] == "switching-over"
    assert described["FailoverState"]["Status"] == "switching-over"
    assert gdb.writers() == {gdb.primary: True, gdb.secondary: False}
    # A second operation while one is in progress is refused.
    with pytest.raises(ClientError) as caught:
        gdb.switchover(gdb.secondary)
    assert "switching-over" in error_of(caught, 400, "InvalidGlobalClusterStateFault")
    with pytest.raises(ClientError) as caught:
        gdb.failover(gdb.secondary, AllowDataLoss=True)
    error_of(caught, 400, "InvalidGlobalClusterStateFault")
    gdb.advance(60)
    assert gdb.describe()["Status"] == "switching-over"
    gdb.advance(31)
    described = gdb.describe()
    assert described["Status"] == "available" and "FailoverState" not in described
    assert gdb.writers() == {gdb.primary: False, gdb.secondary: True}
    status, body = control(gdb.endpoint, "GET", f"rds/failover-duration?account={gdb.account}")
    assert (status, body) == (200, {"account": gdb.account, "seconds": 90.0})


def test_switchover_of_an_unknown_global_cluster_is_not_found(gdb: GlobalDb) -> None:
    with pytest.raises(ClientError) as caught:
        gdb.switchover(gdb.secondary, name="missing")
    assert "missing" in error_of(caught, 404, "GlobalClusterNotFoundFault")
    with pytest.raises(ClientError) as caught:
        gdb.failover(gdb.secondary, name="missing", AllowDataLoss=True)
    error_of(caught, 404, "GlobalClusterNotFoundFault")


def test_switchover_to_an_unknown_cluster_is_not_found(gdb: GlobalDb) -> None:
    missing = f"arn:aws:rds:{SECONDARY_REGION}:{gdb.account}:cluster:missing"
    with pytest.raises(ClientError) as caught:
        gdb.switchover(missing)
    assert missing in error_of(caught, 404, "DBClusterNotFoundFault")
    other_account = f"arn:aws:rds:{SECONDARY_REGION}:111122223333:cluster:secondary"
    with pytest.raises(ClientError) as caught:
        gdb.switchover(other_account)
    error_of(caught, 404, "DBClusterNotFoundFault")
    # A plain identifier names a cluster of the request's region.
    with pytest.raises(ClientError) as caught:
        gdb.switchover("secondary", region=PRIMARY_REGION)
    error_of(caught, 404, "DBClusterNotFoundFault")
    gdb.switchover("secondary", region=SECONDARY_REGION)
    assert gdb.writers() == {gdb.primary: False, gdb.secondary: True}


def test_switchover_to_a_cluster_outside_the_global_cluster_is_refused(gdb: GlobalDb) -> None:
    outsider = gdb.rds[SECONDARY_REGION].create_db_cluster(
        DBClusterIdentifier="outsider", Engine="aurora-postgresql", MasterUsername="dm", MasterUserPassword="password123"
    )["DBCluster"]["DBClusterArn"]
    with pytest.raises(ClientError) as caught:
        gdb.switchover(outsider)
    assert "not a member" in error_of(caught, 400, "InvalidGlobalClusterStateFault")
    assert gdb.writers() == {gdb.primary: True, gdb.secondary: False}


def test_switchover_to_the_writer_is_refused(gdb: GlobalDb) -> None:
    with pytest.raises(ClientError) as caught:
        gdb.switchover(gdb.primary)
    assert "already the primary" in error_of(caught, 400, "InvalidGlobalClusterStateFault")
    with pytest.raises(ClientError) as caught:
        gdb.failover(gdb.primary, AllowDataLoss=True)
    error_of(caught, 400, "InvalidGlobalClusterStateFault")
    assert gdb.describe()["Status"] == "available"


# ---------------------------------------------------------------------------
# Failover


def test_failover_with_data_loss_promotes_and_the_old_primary_rejoins(gdb: GlobalDb) -> None:
    gdb.set_duration(30)
    answer = gdb.failover(gdb.secondary, AllowDataLoss=True)
    assert answer["Status"] == "failing-over"
    assert answer["FailoverState"] == {
        "Status": "failing-over",
        "FromDbClusterArn": gdb.primary,
        "ToDbClusterArn": gdb.secondary,
        "IsDataLossAllowed": True,
    }
    gdb.advance(31)
    described = gdb.describe()
    assert described["Status"] == "available" and "FailoverState" not in described
    # The old primary is a secondary again (not detached), resynchronising.
    assert gdb.writers() == {gdb.primary: False, gdb.secondary: True}
    assert gdb.sync() == {gdb.primary: "pending-resync", gdb.secondary: "connected"}
    gdb.advance(31)
    assert gdb.sync() == {gdb.primary: "connected", gdb.secondary: "connected"}


def test_failover_with_data_loss_completes_at_once_by_default(gdb: GlobalDb) -> None:
    assert gdb.failover(gdb.secondary, AllowDataLoss=True)["FailoverState"]["IsDataLossAllowed"] is True
    assert gdb.writers(SECONDARY_REGION) == {gdb.primary: False, gdb.secondary: True}
    assert set(gdb.sync().values()) == {"connected"}


@pytest.mark.parametrize("extra", [{}, {"Switchover": True}, {"AllowDataLoss": False}])
def test_failover_without_data_loss_is_a_switchover(gdb: GlobalDb, extra: dict[str, Any]) -> None:
    answer = gdb.failover(gdb.secondary, **extra)
    assert answer["Status"] == "switching-over"
    assert answer["FailoverState"]["Status"] == "switching-over"
    assert answer["FailoverState"]["IsDataLossAllowed"] is False
    assert gdb.writers() == {gdb.primary: False, gdb.secondary: True}
    assert set(gdb.sync().values()) == {"connected"}


def test_failover_with_data_loss_and_switchover_is_refused(gdb: GlobalDb) -> None:
    with pytest.raises(ClientError) as caught:
        gdb.failover(gdb.secondary, AllowDataLoss=True, Switchover=True)
    error_of(caught, 400, "InvalidParameterCombination")
    assert gdb.writers() == {gdb.primary: True, gdb.secondary: False}


def test_failover_after_the_primary_is_gone_promotes_the_target(gdb: GlobalDb) -> None:
    gdb.rds[PRIMARY_REGION].delete_db_cluster(DBClusterIdentifier="primary", SkipFinalSnapshot=True)
    assert gdb.writers() == {gdb.secondary: False}
    with pytest.raises(ClientError) as caught:
        gdb.switchover(gdb.secondary)
    assert "no primary" in error_of(caught, 400, "InvalidGlobalClusterStateFault")
    answer = gdb.failover(gdb.secondary, AllowDataLoss=True)
    assert "FromDbClusterArn" not in answer["FailoverState"]
    assert gdb.writers() == {gdb.secondary: True}


def test_failover_over_the_query_protocol_parses_allow_data_loss(gdb: GlobalDb) -> None:
    body = urllib.parse.urlencode(
        {
            "Action": "FailoverGlobalCluster",
            "Version": "2014-10-31",
            "GlobalClusterIdentifier": "gdb",
            "TargetDbClusterIdentifier": gdb.secondary,
            "AllowDataLoss": "true",
        }
    ).encode()
    request = urllib.request.Request(
        f"{gdb.endpoint}/",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={gdb.account}/20260101/{SECONDARY_REGION}/rds/aws4_request, "
            "SignedHeaders=host, Signature=x",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    assert "<IsDataLossAllowed>true</IsDataLossAllowed>" in text, text
    assert "<Status>failing-over</Status>" in text, text
    assert gdb.writers() == {gdb.primary: False, gdb.secondary: True}


# ---------------------------------------------------------------------------
# Detaching


def test_remove_from_global_cluster_works_in_any_region(gdb: GlobalDb) -> None:
    third = gdb.add_member(THIRD_REGION, "third")
    answer = gdb.rds[SECONDARY_REGION].remove_from_global_cluster(
        GlobalClusterIdentifier="gdb", DbClusterIdentifier=gdb.secondary
    )["GlobalCluster"]
    assert {m["DBClusterArn"] for m in answer["GlobalClusterMembers"]} == {gdb.primary, third}
    detached = gdb.rds[SECONDARY_REGION].describe_db_clusters(DBClusterIdentifier="secondary")["DBClusters"][0]
    assert "GlobalClusterIdentifier" not in detached
    with pytest.raises(ClientError) as caught:
        gdb.rds[SECONDARY_REGION].remove_from_global_cluster(GlobalClusterIdentifier="gdb", DbClusterIdentifier=gdb.secondary)
    error_of(caught, 400, "InvalidGlobalClusterStateFault")
    with pytest.raises(ClientError) as caught:
        gdb.switchover(gdb.secondary)
    error_of(caught, 400, "InvalidGlobalClusterStateFault")
    # Deleting a member outside us-east-1 takes it out of the global cluster too.
    gdb.rds[THIRD_REGION].delete_db_cluster(DBClusterIdentifier="third", SkipFinalSnapshot=True)
    assert gdb.writers() == {gdb.primary: True}


# ---------------------------------------------------------------------------
# Replication lag


def test_replication_lag_is_recorded_and_published_to_cloudwatch(gdb: GlobalDb) -> None:
    payload = {"account": gdb.account, "region": SECONDARY_REGION, "db_cluster": "secondary", "lag_ms": 250}
    status, entry = control(gdb.endpoint, "POST", "rds/replication-lag", payload)
    assert status == 200, entry
    assert entry["db_cluster"] == "secondary" and entry["db_cluster_arn"] == gdb.secondary
    assert entry["lag_ms"] == 250.0
    payload = {"account": gdb.account, "region": SECONDARY_REGION, "db_cluster": gdb.secondary, "lag_ms": 1200.5}
    assert control(gdb.endpoint, "POST", "rds/replication-lag", payload)[0] == 200
    status, body = control(gdb.endpoint, "GET", f"rds/replication-lag?account={gdb.account}")
    assert status == 200
    assert [(e["region"], e["db_cluster"], e["lag_ms"]) for e in body["lags"]] == [
        (SECONDARY_REGION, "secondary", 1200.5)
    ]
    for query in (f"region={SECONDARY_REGION}", "db_cluster=secondary", f"db_cluster={urllib.parse.quote(gdb.secondary)}"):
        status, body = control(gdb.endpoint, "GET", f"rds/replication-lag?account={gdb.account}&{query}")
        assert [e["lag_ms"] for e in body["lags"]] == [1200.5], query
    status, body = control(gdb.endpoint, "GET", f"rds/replication-lag?account={gdb.account}&region={PRIMARY_REGION}")
    assert (status, body) == (200, {"lags": []})

    cloudwatch = client(gdb.endpoint, "cloudwatch", gdb.account, SECONDARY_REGION)
    now = datetime.now(timezone.utc)
    stats = cloudwatch.get_metric_statistics(
        Namespace="AWS/RDS",
        MetricName="AuroraGlobalDBReplicationLag",
        Dimensions=[{"Name": "DBClusterIdentifier", "Value": "secondary"}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=3600,
        Statistics=["Maximum", "SampleCount"],
    )["Datapoints"]
    assert [(d["Maximum"], d["SampleCount"], d["Unit"]) for d in stats] == [(1200.5, 2.0, "Milliseconds")]

    status, _ = control(gdb.endpoint, "POST", f"reset?account={gdb.account}", {})
    assert status == 200
    assert control(gdb.endpoint, "GET", f"rds/replication-lag?account={gdb.account}") == (200, {"lags": []})


@pytest.mark.parametrize(
    "change",
    [
        {"lag_ms": -1},
        {"lag_ms": True},
        {"lag_ms": "5"},
        {"account": "123"},
        {"region": ""},
        {"db_cluster": None},
        {"extra": 1},
        {"db_cluster": "arn:aws:rds:us-east-1:000000000000:cluster:primary"},
    ],
)
def test_bad_replication_lags_are_rejected(gdb: GlobalDb, change: dict[str, Any]) -> None:
    payload = {"account": gdb.account, "region": SECONDARY_REGION, "db_cluster": "secondary", "lag_ms": 5, **change}
    status, body = control(gdb.endpoint, "POST", "rds/replication-lag", payload)
    assert status == 400, body
    assert "error" in body


def test_replication_lag_of_an_unknown_cluster_is_not_found(gdb: GlobalDb) -> None:
    payload = {"account": gdb.account, "region": PRIMARY_REGION, "db_cluster": "secondary", "lag_ms": 5}
    status, body = control(gdb.endpoint, "POST", "rds/replication-lag", payload)
    assert status == 404 and "secondary" in body["error"]
    assert control(gdb.endpoint, "GET", "rds/replication-lag")[0] == 400


def test_bad_durations_are_rejected(endpoint: str) -> None:
    account = fresh_account()
    for payload in (
        {"account": account, "seconds": -1},
        {"account": account, "seconds": 86401},
        {"account": account},
        {"seconds": 5},
        {"account": account, "seconds": 5, "extra": True},
        [],
    ):
        status, body = control(endpoint, "POST", "rds/failover-duration", payload)
        assert status == 400 and "error" in body, payload
    assert control(endpoint, "GET", "rds/failover-duration")[0] == 400


# ---------------------------------------------------------------------------
# Faults


@pytest.mark.parametrize("action", ["SwitchoverGlobalCluster", "FailoverGlobalCluster"])
def test_faults_apply_to_switchover_and_failover(gdb: GlobalDb, action: str) -> None:
    rule = {"service": "rds", "action": action, "status": 503, "code": "ServiceUnavailable", "count": 1, "account": gdb.account}
    assert control(gdb.endpoint, "POST", "faults", rule)[0] == 200
    call = gdb.switchover if action == "SwitchoverGlobalCluster" else gdb.failover
    with pytest.raises(ClientError) as caught:
        call(gdb.secondary)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert response["Error"]["Code"] == "ServiceUnavailable"
    assert gdb.writers() == {gdb.primary: True, gdb.secondary: False}
    call(gdb.secondary)
    assert gdb.writers() == {gdb.primary: False, gdb.secondary: True}
    status, body = control(gdb.endpoint, "GET", f"count?service=rds&action={action}&account={gdb.account}")
    assert (status, body) == (200, {"count": 2})
