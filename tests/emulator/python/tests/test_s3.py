"""S3 as the log rotation and diagnostics use it: fault rules by operation name
with ``skip``, S3 error bodies, and what moto does (with ``s3_multipart_uploads``
and ``s3_lifecycle``) for multipart uploads, listings, ETags and lifecycle rules.

Requests go through boto3, or by hand (``raw``) where the AWS SDK for Rust sends
something boto3 does not (``x-id``, CRC64NVME checksums).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import sys
import time
import zlib
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from conftest import PACKAGE_ROOT, client, control, fresh_account

sys.path.insert(0, str(PACKAGE_ROOT))
from dm_emulator.faults import s3_operation  # noqa: E402  (the classifier's own unit tests)

MiB = 1024 * 1024
NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def new_bucket(endpoint: str, retries: int = 1) -> tuple[str, Any, str]:
    """A fresh account, its S3 client and a bucket in it."""
    account = fresh_account()
    s3 = client(endpoint, "s3", account, retries=retries)
    bucket = f"dm-s3-{account}"
    s3.create_bucket(Bucket=bucket)
    return account, s3, bucket


def arm(endpoint: str, **rule: Any) -> dict[str, Any]:
    status, body = control(endpoint, "POST", "faults", rule)
    assert status == 200, body
    return body["rule"]  # type: ignore[no-any-return]


def requests_of(endpoint: str, account: str) -> dict[str, int]:
    status, counts = control(endpoint, "GET", f"requests?account={account}")
    assert status == 200
    return counts  # type: ignore[no-any-return]


def pending_faults(endpoint: str, account: str) -> list[dict[str, Any]]:
    _, body = control(endpoint, "GET", "faults")
    return [r for r in body["faults"] if r["account"] == account]


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def raw(
    endpoint: str,
    account: str,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One S3 request by hand, SigV4-signed in looks only (moto checks no
    signature); (status, headers in lower case, body)."""
    authority = urlsplit(endpoint).netloc
    connection = http.client.HTTPConnection(authority, timeout=30)
    try:
        sent = {
            "Authorization": f"AWS4-HMAC-SHA256 Credential={account}/20260101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=x",
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
            "x-amz-date": "20260101T000000Z",
            "Content-Length": str(len(body)),
            **(headers or {}),
        }
        connection.request(method, target, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def crc32_header(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def crc64nvme(data: bytes) -> int:
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x9A6C9329AC4BC9B5 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def crc64nvme_header(data: bytes) -> str:
    return base64.b64encode(crc64nvme(data).to_bytes(8, "big")).decode()


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(parts: list[bytes]) -> str:
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


# ---------------------------------------------------------------------------
# Operation names


def environ(method: str, target: str, host: str = "127.0.0.1:5000", **headers: str) -> dict[str, Any]:
    path, _, query = target.partition("?")
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "HTTP_HOST": host, **headers}


@pytest.mark.parametrize(
    ("method", "target", "operation"),
    [
        ("GET", "/", "ListBuckets"),
        ("PUT", "/b", "CreateBucket"),
        ("HEAD", "/b", "HeadBucket"),
        ("DELETE", "/b", "DeleteBucket"),
        ("GET", "/b?list-type=2&prefix=logs%2F&continuation-token=t&encoding-type=url", "ListObjectsV2"),
        ("GET", "/b/?list-type=2", "ListObjectsV2"),
        ("GET", "/b?prefix=logs%2F&marker=m", "ListObjects"),
        ("GET", "/b", "ListObjects"),
        ("GET", "/b?versions", "ListObjectVersions"),
        ("POST", "/b?delete", "DeleteObjects"),
        ("POST", "/b?delete=", "DeleteObjects"),
        ("GET", "/b?uploads", "ListMultipartUploads"),
        ("GET", "/b?uploads&prefix=logs%2F&key-marker=k&upload-id-marker=u&max-uploads=2", "ListMultipartUploads"),
        ("GET", "/b?lifecycle", "GetBucketLifecycleConfiguration"),
        ("PUT", "/b?lifecycle", "PutBucketLifecycleConfiguration"),
        ("DELETE", "/b?lifecycle", "DeleteBucketLifecycle"),
        ("GET", "/b?location", "GetBucketLocation"),
        ("PUT", "/b?policy", "PutBucketPolicy"),
        ("DELETE", "/b?tagging", "DeleteBucketTagging"),
        ("GET", "/b?versioning", "GetBucketVersioning"),
        ("GET", "/b?metrics", "ListBucketMetricsConfigurations"),
        ("GET", "/b?metrics&id=m", "GetBucketMetricsConfiguration"),
        ("PUT", "/b/logs/2026/01/01/00.gz", "PutObject"),
        ("GET", "/b/k", "GetObject"),
        ("GET", "/b/k?partNumber=1&versionId=v&response-content-type=text%2Fplain", "GetObject"),
        ("HEAD", "/b/k", "HeadObject"),
        ("DELETE", "/b/k", "DeleteObject"),
        ("POST", "/b/k?uploads", "CreateMultipartUpload"),
        ("PUT", "/b/k?partNumber=3&uploadId=abc", "UploadPart"),
        ("POST", "/b/k?uploadId=abc", "CompleteMultipartUpload"),
        ("DELETE", "/b/k?uploadId=abc", "AbortMultipartUpload"),
        ("GET", "/b/k?uploadId=abc&max-parts=10", "ListParts"),
        ("GET", "/b/k?tagging", "GetObjectTagging"),
        ("PUT", "/b/k?acl", "PutObjectAcl"),
        ("POST", "/b/k?restore", "RestoreObject"),
        # the Smithy SDKs (Rust included) name some operations in ?x-id=
        ("GET", "/b/k?x-id=GetObject", "GetObject"),
        ("PUT", "/b/k?partNumber=1&uploadId=abc&x-id=UploadPart", "UploadPart"),
        ("DELETE", "/b/k?uploadId=abc&x-id=AbortMultipartUpload", "AbortMultipartUpload"),
        # presigned URLs
        ("GET", "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Signature=s", "GetObject"),
        # not known: None (the middleware then uses the HTTP method)
        ("GET", "/b?no-such-subresource", None),
        ("POST", "/b", None),
        ("POST", "/b/k", None),
        ("PUT", "/b?uploads", None),
        ("GET", "/b/k?x-id=lowercase", "GetObject"),
    ],
)
def test_s3_operation_names(method: str, target: str, operation: str | None) -> None:
    assert s3_operation(environ(method, target)) == operation


def test_s3_operation_names_of_copies_and_virtual_hosts() -> None:
    copy = {"HTTP_X_AMZ_COPY_SOURCE": "/src/key"}
    assert s3_operation(environ("PUT", "/b/k", **copy)) == "CopyObject"
    assert s3_operation(environ("PUT", "/b/k?partNumber=1&uploadId=u", **copy)) == "UploadPartCopy"
    virtual = ("b.s3.us-east-1.amazonaws.com", "b.s3.amazonaws.com", "b.localhost:5000", "x.b.s3-eu-west-1.amazonaws.com")
    for host in virtual:
        assert s3_operation(environ("GET", "/?list-type=2", host)) == "ListObjectsV2", host
        assert s3_operation(environ("PUT", "/logs/k", host)) == "PutObject", host
        assert s3_operation(environ("GET", "/", host)) == "ListObjects", host
    for host in ("localhost:5000", "127.0.0.1", "[::1]:5000", "s3.us-east-1.amazonaws.com", "emulator:4566"):
        assert s3_operation(environ("GET", "/", host)) == "ListBuckets", host
        assert s3_operation(environ("GET", "/b?list-type=2", host)) == "ListObjectsV2", host
        assert s3_operation(environ("PUT", "/b/k", host)) == "PutObject", host


def test_s3_requests_are_counted_by_operation(endpoint: str) -> None:
    account, s3, bucket = new_bucket(endpoint)
    s3.put_object(Bucket=bucket, Key="logs/a", Body=b"a")
    s3.copy_object(Bucket=bucket, Key="logs/b", CopySource={"Bucket": bucket, "Key": "logs/a"})
    s3.head_object(Bucket=bucket, Key="logs/a")
    s3.get_object(Bucket=bucket, Key="logs/a")["Body"].read()
    s3.list_objects_v2(Bucket=bucket, Prefix="logs/")
    s3.list_objects(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="logs/c")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="logs/c", UploadId=upload, PartNumber=1, Body=b"c")["ETag"]
    s3.list_parts(Bucket=bucket, Key="logs/c", UploadId=upload)
    s3.list_multipart_uploads(Bucket=bucket, Prefix="logs/")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="logs/c", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    other = s3.create_multipart_upload(Bucket=bucket, Key="logs/d")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="logs/d", UploadId=other)
    rule = {"ID": "okera-dm-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 7}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})
    s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    s3.delete_bucket_lifecycle(Bucket=bucket)
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "logs/a"}, {"Key": "logs/b"}]})
    s3.delete_object(Bucket=bucket, Key="logs/c")
    s3.head_bucket(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)
    s3.list_buckets()

    assert requests_of(endpoint, account) == {
        "s3:AbortMultipartUpload": 1,
        "s3:CompleteMultipartUpload": 1,
        "s3:CopyObject": 1,
        "s3:CreateBucket": 1,
        "s3:CreateMultipartUpload": 2,
        "s3:DeleteBucket": 1,
        "s3:DeleteBucketLifecycle": 1,
        "s3:DeleteObject": 1,
        "s3:DeleteObjects": 1,
        "s3:GetBucketLifecycleConfiguration": 1,
        "s3:GetObject": 1,
        "s3:HeadBucket": 1,
        "s3:HeadObject": 1,
        "s3:ListBuckets": 1,
        "s3:ListMultipartUploads": 1,
        "s3:ListObjects": 1,
        "s3:ListObjectsV2": 1,
        "s3:ListParts": 1,
        "s3:PutBucketLifecycleConfiguration": 1,
        "s3:PutObject": 1,
        "s3:UploadPart": 1,
    }
    count = f"count?service=s3&account={account}&action="
    assert control(endpoint, "GET", count + "UploadPart") == (200, {"count": 1})
    assert control(endpoint, "GET", count + "DELETE") == (200, {"count": 4})
    assert control(endpoint, "GET", count + "POST") == (200, {"count": 4})


def test_requests_as_the_rust_sdk_sends_them_are_named(endpoint: str) -> None:
    account, s3, bucket = new_bucket(endpoint)
    status, _, _ = raw(endpoint, account, "PUT", f"/{bucket}/k?x-id=PutObject", b"body")
    assert status == 200
    status, _, body = raw(endpoint, account, "GET", f"/{bucket}/k?x-id=GetObject")
    assert (status, body) == (200, b"body")
    status, _, _ = raw(endpoint, account, "GET", f"/{bucket}?list-type=2&prefix=")
    assert status == 200
    assert requests_of(endpoint, account) == {
        "s3:CreateBucket": 1,
        "s3:GetObject": 1,
        "s3:ListObjectsV2": 1,
        "s3:PutObject": 1,
    }


# ---------------------------------------------------------------------------
# Faults by operation, partway through (skip), and S3's error bodies


def test_the_third_upload_part_fails_twice(endpoint: str) -> None:
    account, s3, bucket = new_bucket(endpoint)
    rule = arm(
        endpoint,
        service="s3",
        action="UploadPart",
        status=503,
        code="SlowDown",
        message="Please reduce your request rate.",
        count=2,
        skip=2,
        account=account,
    )
    assert rule["skip"] == 2
    upload = s3.create_multipart_upload(Bucket=bucket, Key="logs/big")["UploadId"]

    def part(number: int) -> str:
        return s3.upload_part(  # type: ignore[no-any-return]
            Bucket=bucket, Key="logs/big", UploadId=upload, PartNumber=number, Body=bytes([number]) * 1024
        )["ETag"]

    part(1)
    assert pending_faults(endpoint, account)[0]["skip"] == 1
    part(2)
    assert [(r["skip"], r["count"]) for r in pending_faults(endpoint, account)] == [(0, 2)]
    for left in (1, 0):
        with pytest.raises(ClientError) as caught:
            part(3)
        assert error_of(caught) == (503, "SlowDown")
        assert caught.value.response["Error"]["Message"] == "Please reduce your request rate."
        assert [r["count"] for r in pending_faults(endpoint, account)] == ([left] if left else [])
    part(3)
    part(4)
    # Other operations never matched the rule.
    assert requests_of(endpoint, account) == {"s3:CreateBucket": 1, "s3:CreateMultipartUpload": 1, "s3:UploadPart": 6}


def test_sdk_retries_s3_throttling_and_server_errors(endpoint: str) -> None:
    account, s3, bucket = new_bucket(endpoint, retries=3)
    arm(endpoint, service="s3", action="PutObject", status=503, code="SlowDown", count=2, account=account)
    arm(endpoint, service="s3", action="GetObject", status=500, code="InternalError", count=2, skip=1, account=account)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")  # 2 faults, then through
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"  # skipped
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"  # 2 faults, then through
    assert requests_of(endpoint, account) == {"s3:CreateBucket": 1, "s3:GetObject": 4, "s3:PutObject": 3}


def test_injected_s3_errors_are_s3_xml(endpoint: str) -> None:
    account, s3, bucket = new_bucket(endpoint)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    arm(endpoint, service="s3", action="ListObjectsV2", status=503, code="SlowDown", count=1, account=account)
    status, headers, body = raw(endpoint, account, "GET", f"/{bucket}?list-type=2")
    assert status == 503
    assert headers["content-type"] == "application/xml"
    assert headers["x-amz-request-id"]
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>'), text
    assert f"<RequestId>{headers['x-amz-request-id']}</RequestId></Error>" in text

    arm(endpoint, service="s3", action="HeadObject", status=500, code="InternalError", count=1, account=account)
    status, headers, body = raw(endpoint, account, "HEAD", f"/{bucket}/k")
    assert (status, body, headers["content-length"]) == (500, b"", "0")
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 1


def test_s3_fault_drains_a_large_body_and_the_connection_goes_on(endpoint: str) -> None:
    account, s3, bucket = new_bucket(endpoint, retries=2)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    arm(endpoint, service="s3", action="UploadPart", status=500, code="InternalError", count=1, account=account)
    data = b"p" * (5 * MiB)
    etag = s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=1, Body=data)["ETag"]
    assert etag == md5_etag(data)
    assert requests_of(endpoint, account)["s3:UploadPart"] == 2


def test_skip_counts_every_matching_request_even_one_another_rule_fails(endpoint: str) -> None:
    account = fresh_account()
    sts = client(endpoint, "sts", account)
    first = {"service": "sts", "action": "GetCallerIdentity", "status": 400, "code": "Throttling", "account": account}
    arm(endpoint, **first, count=1)
    arm(endpoint, **{**first, "code": "Later"}, count=1, skip=2)
    outcomes = []
    for _ in range(5):
        try:
            sts.get_caller_identity()
            outcomes.append("ok")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])
    # The second rule skips requests 1 (failed by the first rule) and 2, fails 3.
    assert outcomes == ["Throttling", "ok", "Later", "ok", "ok"]
    assert pending_faults(endpoint, account) == []


def test_skip_is_optional_and_checked(endpoint: str) -> None:
    good = {"service": "s3", "action": "PutObject", "status": 503, "code": "SlowDown", "count": 1}
    assert arm(endpoint, **good, account=fresh_account())["skip"] == 0
    assert arm(endpoint, **good, skip=None, account=fresh_account())["skip"] == 0
    for bad in (-1, 1_000_001, "2", True, 1.5):
        status, body = control(endpoint, "POST", "faults", {**good, "skip": bad})
        assert status == 400, bad
        assert "skip" in body["error"]


# ---------------------------------------------------------------------------
# Multipart uploads


def test_parts_below_5_mib_are_refused_at_complete_unless_last(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    parts = [b"a" * 100, b"b" * 100]
    etags = [
        s3.upload_part(Bucket=bucket, Key="small", UploadId=upload, PartNumber=n, Body=body)["ETag"]
        for n, body in enumerate(parts, 1)
    ]  # UploadPart takes any size, as on AWS
    completed = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]}
    with pytest.raises(ClientError) as caught:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=upload, MultipartUpload=completed)
    assert error_of(caught) == (400, "EntityTooSmall")
    # The upload stays, to be completed properly or aborted.
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket=bucket, Key="small")
    assert error_of(caught) == (404, "404")

    # 5 MiB exactly, then a short last part: fine.
    parts = [b"x" * (5 * MiB), b"tail"]
    big = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="big", UploadId=big, PartNumber=n, Body=body)["ETag"]
        for n, body in enumerate(parts, 1)
    ]
    assert etags == [md5_etag(p) for p in parts]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=big,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert done["ETag"] == multipart_etag(parts)
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["ETag"] == multipart_etag(parts)
    assert got["Body"].read() == b"".join(parts)
    # A single part under 5 MiB is its own last part.
    one = s3.create_multipart_upload(Bucket=bucket, Key="one")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="one", UploadId=one, PartNumber=1, Body=b"short")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="one", UploadId=one, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert s3.get_object(Bucket=bucket, Key="one")["Body"].read() == b"short"


def test_list_multipart_uploads_by_prefix_until_completed_or_aborted(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    before = time.time()
    keys = ["logs/b", "logs/a", "diag/x", "logs/a"]
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys]
    listed = s3.list_multipart_uploads(Bucket=bucket, Prefix="logs/")
    assert listed["Prefix"] == "logs/"
    assert listed["IsTruncated"] is False
    # By key, then by initiation.
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [
        ("logs/a", ids[1]),
        ("logs/a", ids[3]),
        ("logs/b", ids[0]),
    ]
    for upload in listed["Uploads"]:
        assert before - 2 <= upload["Initiated"].timestamp() <= time.time() + 2

    etag = s3.upload_part(Bucket=bucket, Key="logs/b", UploadId=ids[0], PartNumber=1, Body=b"b")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="logs/b", UploadId=ids[0], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    s3.abort_multipart_upload(Bucket=bucket, Key="logs/a", UploadId=ids[1])
    left = s3.list_multipart_uploads(Bucket=bucket, Prefix="logs/")
    assert [u["UploadId"] for u in left["Uploads"]] == [ids[3]]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [ids[2], ids[3]]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket, Prefix="none/")
    # Aborting an aborted or completed upload: NoSuchUpload, as on AWS.
    for key, upload in (("logs/a", ids[1]), ("logs/b", ids[0])):
        with pytest.raises(ClientError) as caught:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        assert error_of(caught) == (404, "NoSuchUpload")


def test_list_multipart_uploads_in_pages(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in ("p/a", "p/b", "p/b", "p/c", "q/d")]
    seen: list[str] = []
    markers: dict[str, str] = {}
    pages = 0
    while True:
        page = s3.list_multipart_uploads(Bucket=bucket, Prefix="p/", MaxUploads=2, **markers)
        pages += 1
        assert page["MaxUploads"] == 2
        seen += [u["UploadId"] for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert (seen, pages) == (ids[:4], 2)
    # key-marker alone starts after that key; upload-id-marker alone is ignored.
    after_b = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="p/b")
    assert [u["UploadId"] for u in after_b["Uploads"]] == ids[3:]
    ignored = s3.list_multipart_uploads(Bucket=bucket, UploadIdMarker=ids[1])
    assert [u["UploadId"] for u in ignored["Uploads"]] == ids
    assert s3.list_multipart_uploads(Bucket=bucket, MaxUploads=5000)["MaxUploads"] == 1000
    with pytest.raises(ClientError) as caught:
        s3.list_multipart_uploads(Bucket=bucket, MaxUploads=-1)
    assert error_of(caught) == (400, "InvalidArgument")


def test_upload_initiation_follows_the_clock_and_can_be_set(endpoint: str) -> None:
    account, s3, bucket = new_bucket(endpoint)
    status, _ = control(endpoint, "POST", "clock", {"advance_seconds": 86400, "account": account})
    assert status == 200
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    (listed,) = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert abs(listed["Initiated"].timestamp() - (time.time() + 86400)) < 5

    route = "s3/multipart-initiated"
    three_days_ago = time.time() - 3 * 86400
    answer = {"account": account, "bucket": bucket, "upload_id": upload, "initiated": 1767225600.25}
    assert control(endpoint, "POST", route, answer) == (200, {"ok": True, "initiated": "2026-01-01T00:00:00.000Z"})
    (listed,) = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert listed["Initiated"].timestamp() == 1767225600  # to the second, as S3 lists it
    control(endpoint, "POST", route, {**answer, "initiated": three_days_ago})
    (listed,) = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert listed["Initiated"].timestamp() == int(three_days_ago)

    assert control(endpoint, "POST", route, {**answer, "upload_id": "nope"})[0] == 404
    assert control(endpoint, "POST", route, {**answer, "bucket": "nope"})[0] == 404
    assert control(endpoint, "POST", route, {**answer, "account": fresh_account()})[0] == 404
    bad_fields: list[dict[str, Any]] = [{"initiated": "x"}, {"initiated": -1}, {"account": "12"}, {"x": 1}]
    for bad in ({**answer, **fields} for fields in bad_fields):
        assert control(endpoint, "POST", route, bad)[0] == 400, bad


def test_streaming_bodies_in_aws_chunked_encoding_with_a_crc32_trailer(endpoint: str) -> None:
    """What aws-sdk-s3 sends for a body it cannot read up front (a file, a
    stream): ``aws-chunked`` with the checksum as a trailer.  (An in-memory
    body gets ``x-amz-checksum-crc32`` as a header instead.)"""
    account, s3, bucket = new_bucket(endpoint)
    data = b"log line\n" * 2000
    body = (
        f"{len(data):x}\r\n".encode()
        + data
        + b"\r\n0\r\nx-amz-checksum-crc32:"
        + crc32_header(data).encode()
        + b"\r\n\r\n"
    )
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    status, answer, _ = raw(endpoint, account, "PUT", f"/{bucket}/put?x-id=PutObject", body, headers)
    assert (status, answer["etag"]) == (200, md5_etag(data))
    got = s3.get_object(Bucket=bucket, Key="put", ChecksumMode="ENABLED")
    assert (got["Body"].read(), got["ChecksumCRC32"]) == (data, crc32_header(data))

    upload = s3.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
    target = f"/{bucket}/parts?partNumber=1&uploadId={upload}&x-id=UploadPart"
    status, answer, _ = raw(endpoint, account, "PUT", target, body, headers)
    assert (status, answer["etag"]) == (200, md5_etag(data))
    parts = {"Parts": [{"PartNumber": 1, "ETag": answer["etag"]}]}
    s3.complete_multipart_upload(Bucket=bucket, Key="parts", UploadId=upload, MultipartUpload=parts)
    assert s3.get_object(Bucket=bucket, Key="parts")["Body"].read() == data


# ---------------------------------------------------------------------------
# Listings and ETags


def test_list_objects_v2_pages_with_etags(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    bodies = {f"logs/{i}": f"body {i}".encode() for i in range(5)}
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    listed: dict[str, tuple[str, int]] = {}
    token: dict[str, str] = {}
    pages = 0
    while True:
        page = s3.list_objects_v2(Bucket=bucket, Prefix="logs/", MaxKeys=2, **token)
        pages += 1
        listed.update({o["Key"]: (o["ETag"], o["Size"]) for o in page["Contents"]})
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = {"ContinuationToken": page["NextContinuationToken"]}
    assert pages == 3
    assert listed == {k: (md5_etag(b), len(b)) for k, b in bodies.items()}
    assert list(listed) == sorted(listed)
    # The same ETag from HEAD and GET; a new body, a new ETag.
    assert s3.head_object(Bucket=bucket, Key="logs/0")["ETag"] == md5_etag(bodies["logs/0"])
    assert s3.get_object(Bucket=bucket, Key="logs/0")["ETag"] == md5_etag(bodies["logs/0"])
    s3.put_object(Bucket=bucket, Key="logs/0", Body=b"changed")
    (first,) = s3.list_objects_v2(Bucket=bucket, Prefix="logs/0")["Contents"]
    assert first["ETag"] == md5_etag(b"changed")


def test_delete_objects_with_a_crc32_checksum_and_missing_keys(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    sent: dict[str, Any] = {}
    s3.meta.events.register("before-send.s3.DeleteObjects", lambda request, **_: sent.update(request.headers))
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "missing"}]})
    assert "Content-MD5" not in sent and "x-amz-checksum-crc32" in sent
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["a", "missing"]  # AWS reports both as deleted
    assert "Errors" not in answer
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


# ---------------------------------------------------------------------------
# Lifecycle configuration

DM_RULES = [
    {
        "ID": "okera-dm-logs",
        "Filter": {"Prefix": "dm/logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 14},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
    },
    {"ID": "okera-dm-diag", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 30}},
]
FOREIGN_TAG_RULE = {
    "ID": "archive-tagged",
    "Filter": {"Tag": {"Key": "archive", "Value": "yes"}},
    "Status": "Enabled",
    "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}, {"Days": 365, "StorageClass": "DEEP_ARCHIVE"}],
}


def test_no_lifecycle_configuration_is_a_404(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(caught) == (404, "NoSuchLifecycleConfiguration")


def test_lifecycle_rules_round_trip_with_a_foreign_rule(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    sent: dict[str, Any] = {}
    s3.meta.events.register(
        "before-send.s3.PutBucketLifecycleConfiguration", lambda request, **_: sent.update(request.headers)
    )
    rules = [FOREIGN_TAG_RULE, *DM_RULES]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    # boto3, like the current aws-sdk-s3, sends a CRC32 checksum and no Content-MD5.
    assert "Content-MD5" not in sent
    assert sent["x-amz-sdk-checksum-algorithm"] == b"CRC32"
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert got["Rules"] == rules
    assert got["TransitionDefaultMinimumObjectSize"] == "all_storage_classes_128K"

    # A client rewriting only its own rules: the foreign one goes back as it came.
    mine = [{**DM_RULES[0], "Expiration": {"Days": 7}}]
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [got["Rules"][0], *mine]}
    )
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == [FOREIGN_TAG_RULE, *mine]

    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_of(caught) == (404, "NoSuchLifecycleConfiguration")


def test_lifecycle_rules_moto_would_change_come_back_unchanged(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    rules = [
        {
            "ID": "big-only",
            "Filter": {"ObjectSizeGreaterThan": 1_000_000},
            "Status": "Enabled",
            "Expiration": {"Days": 3},
        },
        {
            "ID": "and",
            "Filter": {
                "And": {
                    "Prefix": "a/",
                    "Tags": [{"Key": "k", "Value": "v"}, {"Key": "k2", "Value": "v2"}],
                    "ObjectSizeLessThan": 500,
                }
            },
            "Status": "Disabled",
            "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
        },
        {
            "ID": "versions",
            "Filter": {},
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 5, "NewerNoncurrentVersions": 2},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == rules


def test_lifecycle_configurations_aws_refuses(endpoint: str) -> None:
    _, s3, bucket = new_bucket(endpoint)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": DM_RULES})
    refused: list[tuple[list[dict[str, Any]], str]] = [
        ([], "MalformedXML"),  # remove every rule with DeleteBucketLifecycle
        ([DM_RULES[0], {**DM_RULES[1], "ID": DM_RULES[0]["ID"]}], "InvalidArgument"),
        ([{**DM_RULES[1], "Prefix": "a/"}], "MalformedXML"),  # Prefix and Filter: moto's own check
    ]
    for rules, code in refused:
        with pytest.raises(ClientError) as caught:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        assert error_of(caught) == (400, code), rules
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == DM_RULES


RUST_LIKE_LIFECYCLE = (
    # as aws-sdk-s3 serialises BucketLifecycleConfiguration (members in model order)
    f'<LifecycleConfiguration xmlns="{NAMESPACE}">'
    "<Rule><Expiration><Days>14</Days></Expiration><ID>okera-dm-logs</ID>"
    "<Filter><Prefix>dm/logs/</Prefix></Filter><Status>Enabled</Status>"
    "<AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation>"
    "</AbortIncompleteMultipartUpload></Rule>"
    "<Rule><ID>archive-tagged</ID><Filter><Tag><Key>archive</Key><Value>yes</Value></Tag></Filter>"
    "<Status>Enabled</Status><Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition></Rule>"
    "</LifecycleConfiguration>"
).encode()


@pytest.mark.parametrize(
    "checksum",
    [
        {"x-amz-sdk-checksum-algorithm": "CRC32", "x-amz-checksum-crc32": crc32_header(RUST_LIKE_LIFECYCLE)},
        {
            "x-amz-sdk-checksum-algorithm": "CRC64NVME",
            "x-amz-checksum-crc64nvme": crc64nvme_header(RUST_LIKE_LIFECYCLE),
        },
        {"Content-MD5": base64.b64encode(hashlib.md5(RUST_LIKE_LIFECYCLE).digest()).decode()},
    ],
    ids=["crc32", "crc64nvme", "md5"],
)
def test_put_lifecycle_with_the_checksums_sdks_send(endpoint: str, checksum: dict[str, str]) -> None:
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888  # the CRC-64/NVME check value
    account, s3, bucket = new_bucket(endpoint)
    headers = {"Content-Type": "application/xml", **checksum}
    status, _, body = raw(endpoint, account, "PUT", f"/{bucket}?lifecycle", RUST_LIKE_LIFECYCLE, headers)
    assert status == 200, body
    status, answer_headers, body = raw(endpoint, account, "GET", f"/{bucket}?lifecycle")
    assert status == 200, body
    assert answer_headers["x-amz-transition-default-minimum-object-size"] == "all_storage_classes_128K"
    rules = RUST_LIKE_LIFECYCLE[RUST_LIKE_LIFECYCLE.index(b"<Rule>") : RUST_LIKE_LIFECYCLE.rindex(b"</Rule>") + 7]
    prologue = f'<?xml version="1.0" encoding="UTF-8"?>\n<LifecycleConfiguration xmlns="{NAMESPACE}">'.encode()
    assert body == prologue + rules + b"</LifecycleConfiguration>"
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in got] == ["okera-dm-logs", "archive-tagged"]
    assert requests_of(endpoint, account)["s3:PutBucketLifecycleConfiguration"] == 1
