"""Route 53 as the DM's DNS adapter uses it, with ``route53_changes``: UPSERT
leaves one set, DELETE answers as AWS does, batches are all or nothing, a
caller reference makes one hosted zone, and injected faults are Route 53's XML.
"""

from __future__ import annotations

import http.client
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from conftest import PACKAGE_ROOT, client, control, fresh_account

sys.path.insert(0, str(PACKAGE_ROOT))
from dm_emulator.plugins.route53_changes import name_key, values_of  # noqa: E402

ZONE = "dm-test.example."


def new_zone(endpoint: str, name: str = ZONE) -> tuple[str, Any, str]:
    """A fresh account, its Route 53 client and a hosted zone's id in it."""
    account = fresh_account()
    r53 = client(endpoint, "route53", account)
    zone = r53.create_hosted_zone(Name=name, CallerReference=f"ref-{account}")["HostedZone"]["Id"]
    return account, r53, zone


def record(name: str, values: list[str], ttl: int = 60, kind: str = "A") -> dict[str, Any]:
    return {"Name": name, "Type": kind, "TTL": ttl, "ResourceRecords": [{"Value": v} for v in values]}


def change(r53: Any, zone: str, *changes: tuple[str, dict[str, Any]]) -> None:
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": rs} for action, rs in changes]},
    )


def sets(r53: Any, zone: str, **kwargs: Any) -> list[tuple[str, str, int, list[str]]]:
    """The zone's sets other than NS and SOA: (name, type, TTL, values)."""
    listed = r53.list_resource_record_sets(HostedZoneId=zone, **kwargs)["ResourceRecordSets"]
    return [
        (s["Name"], s["Type"], s.get("TTL"), [r["Value"] for r in s.get("ResourceRecords", [])])
        for s in listed
        if s["Type"] not in ("NS", "SOA")
    ]


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = caught.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def test_names_compare_without_case_or_final_dot() -> None:
    assert name_key("A.Example.") == name_key("a.example") == "a.example"
    assert values_of([{"Value": "2"}, "1"]) == ["1", "2"]


def test_upsert_replaces_the_values(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    change(r53, zone, ("UPSERT", record("a.dm-test.example", ["10.0.0.1"])))
    change(r53, zone, ("UPSERT", record("a.dm-test.example.", ["10.0.0.2", "10.0.0.3"], ttl=30)))
    assert sets(r53, zone) == [("a.dm-test.example.", "A", 30, ["10.0.0.2", "10.0.0.3"])]


def test_upsert_in_another_case_replaces_the_set(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    change(r53, zone, ("UPSERT", record("a.dm-test.example.", ["10.0.0.1"])))
    change(r53, zone, ("UPSERT", record("A.dm-test.example.", ["10.0.0.2"])))
    assert [values for (_, _, _, values) in sets(r53, zone)] == [["10.0.0.2"]]


def test_create_keeps_moto_duplicates_and_upsert_leaves_one_set(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    change(r53, zone, ("CREATE", record("d.dm-test.example.", ["10.0.0.1"])))
    with pytest.raises(ClientError) as caught:
        change(r53, zone, ("CREATE", record("d.dm-test.example.", ["10.0.0.1"])))
    assert error_of(caught)[:2] == (400, "InvalidChangeBatch")
    # moto (not AWS) adds a second set when the values differ: DESIGN.md §4.
    change(r53, zone, ("CREATE", record("d.dm-test.example.", ["10.0.0.2"])))
    assert sets(r53, zone) == [
        ("d.dm-test.example.", "A", 60, ["10.0.0.1"]),
        ("d.dm-test.example.", "A", 60, ["10.0.0.2"]),
    ]
    change(r53, zone, ("UPSERT", record("d.dm-test.example.", ["10.0.0.3"])))
    assert sets(r53, zone) == [("d.dm-test.example.", "A", 60, ["10.0.0.3"])]


def test_delete_of_one_duplicate_removes_only_that_set(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    change(r53, zone, ("CREATE", record("d.dm-test.example.", ["10.0.0.1"])))
    change(r53, zone, ("CREATE", record("d.dm-test.example.", ["10.0.0.2"])))
    change(r53, zone, ("DELETE", record("d.dm-test.example.", ["10.0.0.2"])))
    assert sets(r53, zone) == [("d.dm-test.example.", "A", 60, ["10.0.0.1"])]


def test_delete_of_a_missing_set_is_invalid_change_batch_not_found(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    with pytest.raises(ClientError) as caught:
        change(r53, zone, ("DELETE", record("never.dm-test.example", ["10.0.0.1"])))
    assert error_of(caught) == (
        400,
        "InvalidChangeBatch",
        "[Tried to delete resource record set [name='never.dm-test.example.', type='A'] but it was not found]",
    )


def test_second_delete_is_not_found(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    change(r53, zone, ("UPSERT", record("a.dm-test.example.", ["10.0.0.1"])))
    change(r53, zone, ("DELETE", record("A.dm-test.example", ["10.0.0.1"])))
    assert sets(r53, zone) == []
    with pytest.raises(ClientError) as caught:
        change(r53, zone, ("DELETE", record("a.dm-test.example.", ["10.0.0.1"])))
    status, code, message = error_of(caught)
    assert (status, code) == (400, "InvalidChangeBatch")
    assert "but it was not found" in message


def test_delete_with_old_values_is_refused_and_keeps_the_set(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    change(r53, zone, ("UPSERT", record("a.dm-test.example.", ["10.0.0.1"])))
    change(r53, zone, ("UPSERT", record("a.dm-test.example.", ["10.0.0.2", "10.0.0.3"])))
    for stale in (record("a.dm-test.example.", ["10.0.0.1"]), record("a.dm-test.example.", ["10.0.0.2", "10.0.0.3"], ttl=61)):
        with pytest.raises(ClientError) as caught:
            change(r53, zone, ("DELETE", stale))
        assert error_of(caught) == (
            400,
            "InvalidChangeBatch",
            "[Tried to delete resource record set [name='a.dm-test.example.', type='A'] "
            "but the values provided do not match the current values]",
        )
    # Values in another order are the same set.
    change(r53, zone, ("DELETE", record("a.dm-test.example.", ["10.0.0.3", "10.0.0.2"])))
    assert sets(r53, zone) == []


def test_a_batch_is_all_or_nothing(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    change(r53, zone, ("UPSERT", record("keep.dm-test.example.", ["10.0.0.1"])))
    with pytest.raises(ClientError):
        change(
            r53,
            zone,
            ("UPSERT", record("new.dm-test.example.", ["10.0.0.9"])),
            ("DELETE", record("keep.dm-test.example.", ["10.0.0.1"])),
            ("DELETE", record("gone.dm-test.example.", ["10.0.0.1"])),
        )
    assert sets(r53, zone) == [("keep.dm-test.example.", "A", 60, ["10.0.0.1"])]
    # DELETE then CREATE of one name in one batch: the classic replace.
    change(
        r53,
        zone,
        ("DELETE", record("keep.dm-test.example.", ["10.0.0.1"])),
        ("CREATE", record("keep.dm-test.example.", ["10.0.0.5"])),
    )
    assert sets(r53, zone) == [("keep.dm-test.example.", "A", 60, ["10.0.0.5"])]


def test_listing_starts_at_a_name_and_pages(endpoint: str) -> None:
    _, r53, zone = new_zone(endpoint)
    for name in ("a", "aa", "b", "z"):
        change(r53, zone, ("UPSERT", record(f"{name}.dm-test.example.", ["10.0.0.1"])))
    change(r53, zone, ("UPSERT", record("a.dm-test.example.", ['"txt"'], kind="TXT")))
    first = r53.list_resource_record_sets(HostedZoneId=zone, StartRecordName="a.dm-test.example", MaxItems="1")
    assert [(s["Name"], s["Type"]) for s in first["ResourceRecordSets"]] == [("a.dm-test.example.", "A")]
    assert (first["IsTruncated"], first["NextRecordName"], first["NextRecordType"]) == (
        True,
        "a.dm-test.example.",
        "TXT",
    )
    rest = sets(r53, zone, StartRecordName=first["NextRecordName"], StartRecordType=first["NextRecordType"])
    assert [(n, t) for (n, t, _, _) in rest] == [
        ("a.dm-test.example.", "TXT"),
        ("aa.dm-test.example.", "A"),
        ("b.dm-test.example.", "A"),
        ("z.dm-test.example.", "A"),
    ]


def test_a_caller_reference_makes_one_zone_even_after_it_is_deleted(endpoint: str) -> None:
    account = fresh_account()
    r53 = client(endpoint, "route53", account)
    zone = r53.create_hosted_zone(Name="once.example", CallerReference="dm-zone-once")["HostedZone"]["Id"]
    with pytest.raises(ClientError) as caught:
        r53.create_hosted_zone(Name="once.example", CallerReference="dm-zone-once")
    status, code, _ = error_of(caught)
    assert (status, code) == (409, "HostedZoneAlreadyExists")
    assert [z["Id"] for z in r53.list_hosted_zones_by_name(DNSName="once.example")["HostedZones"]] == [zone]
    r53.delete_hosted_zone(Id=zone)
    with pytest.raises(ClientError) as caught:
        r53.create_hosted_zone(Name="once.example", CallerReference="dm-zone-once")
    assert error_of(caught)[1] == "HostedZoneAlreadyExists"
    r53.create_hosted_zone(Name="once.example", CallerReference="dm-zone-twice")
    # Another account has its own references.
    client(endpoint, "route53", fresh_account()).create_hosted_zone(Name="once.example", CallerReference="dm-zone-once")


def test_missing_zone_is_404_no_such_hosted_zone(endpoint: str) -> None:
    r53 = client(endpoint, "route53", fresh_account())
    with pytest.raises(ClientError) as caught:
        change(r53, "/hostedzone/ZNOTTHERE", ("UPSERT", record("a.dm-test.example.", ["10.0.0.1"])))
    assert error_of(caught)[:2] == (404, "NoSuchHostedZone")


def test_route53_faults_are_wrapped_error_responses(endpoint: str) -> None:
    account, r53, zone = new_zone(endpoint)
    status, _ = control(
        endpoint,
        "POST",
        "faults",
        {"service": "route53", "action": "POST", "status": 400, "code": "PriorRequestNotComplete", "count": 2, "account": account},
    )
    assert status == 200
    # By hand: the body is what the AWS SDK for Rust parses.
    connection = http.client.HTTPConnection(urlsplit(endpoint).netloc, timeout=30)
    try:
        connection.request(
            "POST",
            f"/2013-04-01/hostedzone/{zone.rsplit('/', 1)[-1]}/rrset/",
            body=b"<ChangeResourceRecordSetsRequest/>",
            headers={
                "Authorization": f"AWS4-HMAC-SHA256 Credential={account}/20260101/us-east-1/route53/aws4_request, "
                "SignedHeaders=host, Signature=x",
                "x-amz-date": "20260101T000000Z",
            },
        )
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    assert response.status == 400
    assert '<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type>' in text
    assert "<Code>PriorRequestNotComplete</Code>" in text
    with pytest.raises(ClientError) as caught:
        change(r53, zone, ("UPSERT", record("a.dm-test.example.", ["10.0.0.1"])))
    assert error_of(caught)[:2] == (400, "PriorRequestNotComplete")
    change(r53, zone, ("UPSERT", record("a.dm-test.example.", ["10.0.0.1"])))
    _, counts = control(endpoint, "GET", f"requests?account={account}")
    assert counts["route53:POST"] == 4  # the zone, two faulted, one through
