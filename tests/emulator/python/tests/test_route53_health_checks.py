"""Route 53 health checks that follow CloudWatch alarms (plugin
``route53_health_checks``), the DNS answer of ``/_dm/route53/resolve``, and
the failover record checks of ``route53_changes``, driven with boto3."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import client, control, fresh_account

ZONE = "failover.example."
ALARM_REGION = "us-west-2"


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


class Dns:
    """A fresh account with a hosted zone, Route 53 and CloudWatch (ALARM_REGION) clients."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.account = fresh_account()
        self.r53 = client(endpoint, "route53", self.account)
        self.cw = client(endpoint, "cloudwatch", self.account, ALARM_REGION)
        self.zone = self.r53.create_hosted_zone(Name=ZONE, CallerReference=f"zone-{self.account}")["HostedZone"]["Id"]

    def alarm(self, name: str, state: str | None = None) -> None:
        self.cw.put_metric_alarm(
            AlarmName=name,
            Namespace="Okera/DM",
            MetricName="RegionServing",
            Dimensions=[{"Name": "Region", "Value": name}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="LessThanThreshold",
        )
        if state is not None:
            self.set_state(name, state)

    def set_state(self, name: str, state: str) -> None:
        self.cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")

    def health_check(self, alarm: str, reference: str | None = None, **config: Any) -> str:
        full = {
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {"Region": ALARM_REGION, "Name": alarm},
            "InsufficientDataHealthStatus": "Unhealthy",
            **config,
        }
        created = self.r53.create_health_check(CallerReference=reference or f"hc-{alarm}", HealthCheckConfig=full)
        return str(created["HealthCheck"]["Id"])

    def status(self, health_check: str) -> list[str]:
        observations = self.r53.get_health_check_status(HealthCheckId=health_check)["HealthCheckObservations"]
        return [o["StatusReport"]["Status"] for o in observations]

    def healthy(self, health_check: str) -> bool:
        statuses = self.status(health_check)
        assert statuses and all(s.startswith(("Success: ", "Failure: ")) for s in statuses), statuses
        assert len({s.split(":", 1)[0] for s in statuses}) == 1, statuses
        return statuses[0].startswith("Success: ")

    def change(self, *changes: tuple[str, dict[str, Any]]) -> None:
        self.r53.change_resource_record_sets(
            HostedZoneId=self.zone,
            ChangeBatch={"Changes": [{"Action": a, "ResourceRecordSet": rs} for a, rs in changes]},
        )

    def resolve(self, name: str, kind: str | None = None, zone: str | None = None) -> tuple[int, Any]:
        query = {"account": self.account, "zone": zone or self.zone, "name": name}
        if kind:
            query["type"] = kind
        return control(self.endpoint, "GET", "route53/resolve?" + urllib.parse.urlencode(query))

    def answer(self, name: str) -> tuple[list[str], str | None]:
        status, body = self.resolve(name)
        assert status == 200, body
        return body["values"], (body["record"] or {}).get("setIdentifier")


def failover(name: str, side: str, ident: str, value: str, health_check: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Name": name,
        "Type": "A",
        "TTL": 60,
        "SetIdentifier": ident,
        "Failover": side,
        "ResourceRecords": [{"Value": value}],
    }
    if health_check:
        record["HealthCheckId"] = health_check
    return record


def simple(name: str, value: str) -> dict[str, Any]:
    return {"Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": value}]}


def test_a_cloudwatch_health_check_is_stored_and_returned_as_aws_does(endpoint: str) -> None:
    dns = Dns(endpoint)
    dns.alarm("serving-a")
    created = dns.r53.create_health_check(
        CallerReference="hc-1",
        HealthCheckConfig={
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {"Region": ALARM_REGION, "Name": "serving-a"},
            "InsufficientDataHealthStatus": "LastKnownStatus",
            "Inverted": False,
        },
    )
    check = created["HealthCheck"]
    assert created["Location"] == f"https://route53.amazonaws.com/2013-04-01/healthcheck/{check['Id']}"
    expected_config = {
        "Type": "CLOUDWATCH_METRIC",
        "Inverted": False,
        "Disabled": False,
        "AlarmIdentifier": {"Region": ALARM_REGION, "Name": "serving-a"},
        "InsufficientDataHealthStatus": "LastKnownStatus",
    }
    assert check["HealthCheckConfig"] == expected_config
    assert check["CallerReference"] == "hc-1"
    assert check["HealthCheckVersion"] == 1
    assert check["CloudWatchAlarmConfiguration"] == {
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "LessThanThreshold",
        "Period": 60,
        "MetricName": "RegionServing",
        "Namespace": "Okera/DM",
        "Statistic": "Maximum",
        "Dimensions": [{"Name": "Region", "Value": "serving-a"}],
    }
    got = dns.r53.get_health_check(HealthCheckId=check["Id"])["HealthCheck"]
    assert got["HealthCheckConfig"] == expected_config
    listed = dns.r53.list_health_checks()["HealthChecks"]
    assert [(h["Id"], h["HealthCheckConfig"]) for h in listed] == [(check["Id"], expected_config)]

    # The same reference and configuration: the same health check; another configuration: 409.
    again = dns.r53.create_health_check(
        CallerReference="hc-1",
        HealthCheckConfig={
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {"Region": ALARM_REGION, "Name": "serving-a"},
            "InsufficientDataHealthStatus": "LastKnownStatus",
            "Inverted": False,
        },
    )
    assert again["HealthCheck"]["Id"] == check["Id"]
    with pytest.raises(ClientError) as caught:
        dns.r53.create_health_check(
            CallerReference="hc-1",
            HealthCheckConfig={
                "Type": "CLOUDWATCH_METRIC",
                "AlarmIdentifier": {"Region": ALARM_REGION, "Name": "serving-a"},
                "InsufficientDataHealthStatus": "Healthy",
            },
        )
    assert error_of(caught)[:2] == (409, "HealthCheckAlreadyExists")
    assert len(dns.r53.list_health_checks()["HealthChecks"]) == 1

    # A deleted health check's reference stays used.
    dns.r53.delete_health_check(HealthCheckId=check["Id"])
    with pytest.raises(ClientError) as caught:
        dns.health_check("serving-a", reference="hc-1", InsufficientDataHealthStatus="LastKnownStatus")
    assert error_of(caught)[:2] == (409, "HealthCheckAlreadyExists")

    # No alarm identifier: InvalidInput.
    with pytest.raises(ClientError) as caught:
        dns.r53.create_health_check(CallerReference="hc-2", HealthCheckConfig={"Type": "CLOUDWATCH_METRIC"})
    assert error_of(caught)[:2] == (400, "InvalidInput")


def test_health_check_status_follows_the_alarm(endpoint: str) -> None:
    dns = Dns(endpoint)
    dns.alarm("serving-a")  # INSUFFICIENT_DATA: no data yet
    unhealthy_on_missing = dns.health_check("serving-a", reference="u")
    healthy_on_missing = dns.health_check("serving-a", reference="h", InsufficientDataHealthStatus="Healthy")
    last_known = dns.health_check("serving-a", reference="l", InsufficientDataHealthStatus="LastKnownStatus")
    inverted = dns.health_check("serving-a", reference="i", Inverted=True, InsufficientDataHealthStatus="Healthy")
    disabled = dns.health_check("serving-a", reference="d", Disabled=True)
    no_alarm = dns.health_check("missing-alarm", reference="m")

    assert not dns.healthy(unhealthy_on_missing)
    assert dns.healthy(healthy_on_missing)
    assert dns.healthy(last_known)  # nothing known yet: healthy
    assert not dns.healthy(inverted)
    assert dns.healthy(disabled)
    assert not dns.healthy(no_alarm)
    statuses = dns.status(unhealthy_on_missing)
    assert len(statuses) == 3
    assert "serving-a" in statuses[0] and "insufficient data" in statuses[0]

    dns.set_state("serving-a", "ALARM")
    assert not dns.healthy(last_known)
    assert not dns.healthy(healthy_on_missing)
    assert dns.healthy(inverted)
    assert dns.healthy(disabled)
    assert "ALARM" in dns.status(healthy_on_missing)[0]
    # Data that puts the alarm back to INSUFFICIENT_DATA is not possible with
    # SetAlarmState's hold; set it explicitly.
    dns.set_state("serving-a", "INSUFFICIENT_DATA")
    assert not dns.healthy(last_known)  # the last known status: unhealthy
    dns.set_state("serving-a", "OK")
    assert dns.healthy(last_known) and dns.healthy(unhealthy_on_missing)
    dns.set_state("serving-a", "INSUFFICIENT_DATA")
    assert dns.healthy(last_known)
    assert not dns.healthy(unhealthy_on_missing)


def test_the_alarm_is_evaluated_before_the_health_check_answers(endpoint: str) -> None:
    dns = Dns(endpoint)
    dns.alarm("serving-a")
    check = dns.health_check("serving-a")
    assert not dns.healthy(check)
    # RegionServing = 1 is not below the threshold: the alarm evaluates to OK.
    dns.cw.put_metric_data(
        Namespace="Okera/DM",
        MetricData=[{"MetricName": "RegionServing", "Dimensions": [{"Name": "Region", "Value": "serving-a"}], "Value": 1}],
    )
    assert dns.healthy(check)


def test_update_and_list_health_checks(endpoint: str) -> None:
    dns = Dns(endpoint)
    ids = [dns.health_check(f"alarm-{i}", reference=f"r{i}") for i in range(3)]
    first = dns.r53.list_health_checks(MaxItems="2")
    assert [h["Id"] for h in first["HealthChecks"]] == ids[:2]
    assert first["IsTruncated"] is True and first["NextMarker"] == ids[2] and first["MaxItems"] == "2"
    rest = dns.r53.list_health_checks(Marker=first["NextMarker"], MaxItems="2")
    assert [h["Id"] for h in rest["HealthChecks"]] == ids[2:]
    assert rest["IsTruncated"] is False and "NextMarker" not in rest

    updated = dns.r53.update_health_check(
        HealthCheckId=ids[0],
        HealthCheckVersion=1,
        AlarmIdentifier={"Region": "eu-west-1", "Name": "other"},
        InsufficientDataHealthStatus="Healthy",
    )["HealthCheck"]
    assert updated["HealthCheckVersion"] == 2
    assert updated["HealthCheckConfig"]["AlarmIdentifier"] == {"Region": "eu-west-1", "Name": "other"}
    assert updated["HealthCheckConfig"]["InsufficientDataHealthStatus"] == "Healthy"
    assert dns.healthy(ids[0])
    with pytest.raises(ClientError) as caught:
        dns.r53.update_health_check(HealthCheckId=ids[0], HealthCheckVersion=1, Inverted=True)
    assert error_of(caught)[:2] == (409, "HealthCheckVersionMismatch")


def test_other_health_check_types_keep_moto_behaviour(endpoint: str) -> None:
    dns = Dns(endpoint)
    created = dns.r53.create_health_check(
        CallerReference="http",
        HealthCheckConfig={"Type": "HTTP", "IPAddress": "10.0.0.1", "Port": 8080, "ResourcePath": "/health"},
    )["HealthCheck"]
    assert created["HealthCheckConfig"]["Port"] == 8080
    assert dns.healthy(created["Id"])


def test_failover_records_answer_the_healthy_side(endpoint: str) -> None:
    dns = Dns(endpoint)
    dns.alarm("serving-east", state="OK")
    dns.alarm("serving-west", state="OK")
    east = dns.health_check("serving-east")
    west = dns.health_check("serving-west")
    name = "api.failover.example."
    dns.change(
        ("UPSERT", failover(name, "PRIMARY", "us-east-1", "10.0.0.1", east)),
        ("UPSERT", failover(name, "SECONDARY", "us-west-2", "10.0.1.1", west)),
    )
    status, body = dns.resolve("API.failover.example")
    assert status == 200
    assert body == {
        "name": "api.failover.example.",
        "type": "A",
        "values": ["10.0.0.1"],
        "record": {"setIdentifier": "us-east-1", "failover": "PRIMARY", "healthCheckId": east},
    }
    dns.set_state("serving-east", "ALARM")
    assert dns.answer(name) == (["10.0.1.1"], "us-west-2")
    dns.set_state("serving-west", "ALARM")  # all unhealthy: all count as healthy
    assert dns.answer(name) == (["10.0.0.1"], "us-east-1")
    dns.set_state("serving-east", "OK")
    assert dns.answer(name) == (["10.0.0.1"], "us-east-1")

    # An UPSERT of one set replaces only that set.
    dns.change(("UPSERT", failover(name, "SECONDARY", "us-west-2", "10.0.1.2", west)))
    dns.set_state("serving-east", "ALARM")
    dns.set_state("serving-west", "OK")
    assert dns.answer(name) == (["10.0.1.2"], "us-west-2")
    listed = dns.r53.list_resource_record_sets(HostedZoneId=dns.zone)["ResourceRecordSets"]
    assert sorted((s["SetIdentifier"], s["Failover"]) for s in listed if s.get("SetIdentifier")) == [
        ("us-east-1", "PRIMARY"),
        ("us-west-2", "SECONDARY"),
    ]
    # A primary without health check is healthy.
    dns.change(("UPSERT", failover(name, "PRIMARY", "us-east-1", "10.0.0.9")))
    assert dns.answer(name) == (["10.0.0.9"], "us-east-1")


def test_simple_alias_and_missing_names(endpoint: str) -> None:
    dns = Dns(endpoint)
    dns.alarm("serving-east", state="ALARM")
    east = dns.health_check("serving-east")
    dns.change(
        ("UPSERT", {"Name": "www.failover.example.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "10.0.0.2"}, {"Value": "10.0.0.1"}]}),
        ("UPSERT", failover("east.failover.example.", "PRIMARY", "east", "10.0.0.7", east)),
        ("UPSERT", {"Name": "txt.failover.example.", "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": '"hello"'}]}),
    )
    status, body = dns.resolve("www.failover.example.")
    assert (status, body["values"]) == (200, ["10.0.0.1", "10.0.0.2"])
    assert body["record"] == {"setIdentifier": None, "failover": None, "healthCheckId": None}
    zone_id = dns.zone.rsplit("/", 1)[-1]
    # An alias to a name in the zone is followed; with EvaluateTargetHealth, a
    # target that answers nothing makes it unhealthy.
    dns.change(
        ("UPSERT", {
            "Name": "app.failover.example.", "Type": "A", "SetIdentifier": "primary", "Failover": "PRIMARY",
            "AliasTarget": {"HostedZoneId": zone_id, "DNSName": "nothing.failover.example.", "EvaluateTargetHealth": True},
        }),
        ("UPSERT", {
            "Name": "app.failover.example.", "Type": "A", "SetIdentifier": "secondary", "Failover": "SECONDARY",
            "AliasTarget": {"HostedZoneId": zone_id, "DNSName": "www.failover.example.", "EvaluateTargetHealth": True},
        }),
    )
    assert dns.answer("app.failover.example") == (["10.0.0.1", "10.0.0.2"], "secondary")
    # The only set (unhealthy) is answered: all unhealthy means all healthy.
    assert dns.answer("east.failover.example") == (["10.0.0.7"], "east")
    status, body = dns.resolve("txt.failover.example", kind="txt")
    assert (status, body["type"], body["values"]) == (200, "TXT", ['"hello"'])
    for missing in ("nothing.failover.example", "www.failover.example."):
        status, body = dns.resolve(missing, kind="AAAA" if missing.startswith("www") else None)
        assert (status, body["values"], body["record"]) == (200, [], None)
    assert dns.resolve("www.failover.example", zone=zone_id)[1]["values"] == ["10.0.0.1", "10.0.0.2"]
    assert dns.resolve("www.failover.example", zone="/hostedzone/ZNOPE")[0] == 404
    assert control(endpoint, "GET", "route53/resolve?account=12&zone=Z&name=a")[0] == 400


def test_failover_record_changes_are_checked_as_aws_does(endpoint: str) -> None:
    dns = Dns(endpoint)
    name = "api.failover.example."
    no_identifier = failover(name, "PRIMARY", "x", "10.0.0.1")
    del no_identifier["SetIdentifier"]
    with pytest.raises(ClientError) as caught:
        dns.change(("CREATE", no_identifier))
    assert error_of(caught) == (
        400,
        "InvalidInput",
        "Invalid request: Missing field 'SetIdentifier' in Change with "
        "[Action=CREATE, Name=api.failover.example., Type=A, SetIdentifier=null]",
    )
    no_policy = failover(name, "PRIMARY", "x", "10.0.0.1")
    del no_policy["Failover"]
    with pytest.raises(ClientError) as caught:
        dns.change(("UPSERT", no_policy))
    status, code, message = error_of(caught)
    assert (status, code) == (400, "InvalidInput")
    assert message.startswith("Invalid request: Expected exactly one of [Weight, Region, Failover,")
    with pytest.raises(ClientError) as caught:
        dns.change(("UPSERT", failover(name, "PRIMARY", "a", "10.0.0.1", "0f0e0d0c-0000-4000-8000-000000000000")))
    assert error_of(caught)[:2] == (404, "NoSuchHealthCheck")

    dns.change(("CREATE", failover(name, "PRIMARY", "a", "10.0.0.1")))
    with pytest.raises(ClientError) as caught:
        dns.change(("CREATE", failover(name, "PRIMARY", "b", "10.0.0.2")))
    status, code, message = error_of(caught)
    assert (status, code) == (400, "InvalidChangeBatch")
    assert "failover value PRIMARY" in message
    with pytest.raises(ClientError) as caught:
        dns.change(("CREATE", failover(name, "SECONDARY", "a", "10.0.0.2")))
    assert error_of(caught) == (
        400,
        "InvalidChangeBatch",
        "[Tried to create resource record set [name='api.failover.example.', type='A', set-identifier='a'] "
        "but it already exists]",
    )
    with pytest.raises(ClientError) as caught:
        dns.change(("UPSERT", simple(name, "10.0.0.3")))
    assert error_of(caught) == (
        400,
        "InvalidChangeBatch",
        "[RRSet with DNS name api.failover.example., type A cannot be created as weighted sets exist with the "
        "same name and type.]",
    )
    dns.change(("UPSERT", simple("www.failover.example.", "10.0.0.3")))
    with pytest.raises(ClientError) as caught:
        dns.change(("UPSERT", failover("WWW.failover.example", "PRIMARY", "a", "10.0.0.1")))
    assert error_of(caught) == (
        400,
        "InvalidChangeBatch",
        "[RRSet with DNS name www.failover.example., type A, SetIdentifier a cannot be created as a non-weighted "
        "set exists with the same name and type.]",
    )
    # Refused batches changed nothing; a batch may swap the two sides.
    dns.change(("CREATE", failover(name, "SECONDARY", "b", "10.0.0.2")))
    dns.change(
        ("UPSERT", failover(name, "SECONDARY", "a", "10.0.0.1")),
        ("UPSERT", failover(name, "PRIMARY", "b", "10.0.0.2")),
    )
    assert dns.answer(name) == (["10.0.0.2"], "b")
    listed = dns.r53.list_resource_record_sets(HostedZoneId=dns.zone)["ResourceRecordSets"]
    assert sorted((s["Name"], s.get("SetIdentifier"), s.get("Failover")) for s in listed if s["Type"] == "A") == [
        (name, "a", "SECONDARY"),
        (name, "b", "PRIMARY"),
        ("www.failover.example.", None, None),
    ]
    # A health check in use cannot be deleted.
    dns.alarm("serving-a", state="OK")
    check = dns.health_check("serving-a")
    dns.change(("UPSERT", failover(name, "PRIMARY", "b", "10.0.0.2", check)))
    with pytest.raises(ClientError) as caught:
        dns.r53.delete_health_check(HealthCheckId=check)
    assert error_of(caught)[:2] == (400, "HealthCheckInUse")
