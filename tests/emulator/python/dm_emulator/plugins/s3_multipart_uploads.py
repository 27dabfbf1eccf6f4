"""``ListMultipartUploads`` as AWS answers it: real initiation times, key order, pages.

moto 5.2.5 answers every upload with ``Initiated`` 2010-11-10T20:48:33Z (a
constant), in the order the uploads were created, and ignores ``max-uploads``,
``key-marker`` and ``upload-id-marker`` (one page, ``IsTruncated`` false).  A
client that ages incomplete uploads (abort those begun more than N hours ago)
would see every upload as ancient and abort the ones in progress.

We record when each upload is created (``FakeMultipart``), on the emulator's
clock (``plugins.lifecycle_hooks.now(account)``: the wall clock unless a test
moved it), and replace ``S3Response.list_multipart_uploads``:

* ``Initiated`` is that time (to the second, ``…T12:34:56.000Z``, as S3
  writes its timestamps);
* uploads are sorted by key, then by initiation time (then upload id), as AWS
  documents;
* ``prefix`` filters by key; ``delimiter`` is still ignored (as moto does);
* ``max-uploads`` (default and at most 1000; not an integer or negative: 400
  ``InvalidArgument``) cuts the page; ``IsTruncated``, ``NextKeyMarker`` and
  ``NextUploadIdMarker`` (the last upload of the page) continue it;
* ``key-marker`` alone starts after that key; with ``upload-id-marker`` it
  starts after that upload of that key (an upload id it does not know: after
  the uploads of that key with a lower id); ``upload-id-marker`` without
  ``key-marker`` is ignored, as on AWS.

Completed and aborted uploads leave the listing (moto already does that).

Control route (to test the aging of uploads without waiting):

``POST /_dm/s3/multipart-initiated``
    ``{"account": "111122223333", "bucket": "b", "upload_id": "…",
    "initiated": 1767225600.0}`` sets an upload's initiation time (seconds
    since the epoch; listed to the second).  Answers ``{"ok": true,
    "initiated": "2026-01-01T00:00:00.000Z"}``; 404 if the
    account has no such bucket or the bucket no such upload, 400 for a bad
    body.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from typing import Any

from .lifecycle_hooks import now

_MARK = "_dm_s3_multipart_uploads"
_INITIATED = "_dm_initiated"
_MAX_UPLOADS = 1000
_ACCOUNT = re.compile(r"[0-9]{12}")


def initiated(upload: Any) -> float:
    """When ``upload`` (a moto ``FakeMultipart``) was created, seconds since the epoch."""
    value = getattr(upload, _INITIATED, None)
    if value is None:  # created before the plugin was installed
        value = time.time()
        setattr(upload, _INITIATED, value)
    return float(value)


def iso_time(seconds: float) -> str:
    """As S3 writes its timestamps: whole seconds, ``.000Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(math.floor(seconds)))


def page(
    uploads: list[Any],
    prefix: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
) -> tuple[list[Any], bool]:
    """The uploads of one page (moto ``FakeMultipart``s), and whether more follow."""
    ordered = sorted(
        (u for u in uploads if u.key_name.startswith(prefix)),
        key=lambda u: (u.key_name, initiated(u), u.id),
    )
    if key_marker:
        if upload_id_marker:
            same_key = [u for u in ordered if u.key_name == key_marker]
            ids = [u.id for u in same_key]
            if upload_id_marker in ids:
                after_marker = same_key[ids.index(upload_id_marker) + 1 :]
            else:
                after_marker = [u for u in same_key if u.id > upload_id_marker]
            ordered = after_marker + [u for u in ordered if u.key_name > key_marker]
        else:
            ordered = [u for u in ordered if u.key_name > key_marker]
    return ordered[:max_uploads], len(ordered) > max_uploads


def install() -> None:
    from moto.core.responses import ActionResult
    from moto.s3.exceptions import InvalidArgumentError
    from moto.s3.models import FakeMultipart
    from moto.s3.responses import S3Response

    from ..faults import add_control_route

    original_init = FakeMultipart.__init__
    if getattr(original_init, _MARK, False):
        return

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        setattr(self, _INITIATED, now(getattr(self, "account_id", None)))

    def list_multipart_uploads(self: Any) -> Any:
        def param(name: str) -> str:
            value = self.querystring.get(name, [""])[0]
            return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")

        max_text = param("max-uploads")
        if max_text:
            try:
                max_uploads = int(max_text)
            except ValueError:
                max_uploads = -1
            if max_uploads < 0:
                raise InvalidArgumentError(
                    "Provided max-uploads not an integer or within integer range", "max-uploads", max_text
                )
            max_uploads = min(max_uploads, _MAX_UPLOADS)
        else:
            max_uploads = _MAX_UPLOADS
        prefix, key_marker, upload_id_marker = param("prefix"), param("key-marker"), param("upload-id-marker")
        uploads = list(self.backend.list_multipart_uploads(self.bucket_name).values())
        listed, truncated = page(uploads, prefix, key_marker, upload_id_marker if key_marker else "", max_uploads)
        result: dict[str, Any] = {
            "Bucket": self.bucket_name,
            "KeyMarker": key_marker,
            "UploadIdMarker": upload_id_marker if key_marker else "",
            "MaxUploads": max_uploads,
            "IsTruncated": truncated,
            "Uploads": [
                {
                    "Key": upload.key_name,
                    "UploadId": upload.id,
                    "Initiator": {
                        "ID": f"arn:aws:iam::{self.current_account}:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de",
                        "DisplayName": "user1-11111a31-17b5-4fb7-9df5-b111111f13de",
                    },
                    "Owner": {
                        "ID": "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a",
                        "DisplayName": "webfile",
                    },
                    "StorageClass": "STANDARD",
                    "Initiated": iso_time(initiated(upload)),
                    "ChecksumAlgorithm": upload.metadata.get("x-amz-checksum-algorithm"),
                    "ChecksumType": upload.metadata.get("x-amz-checksum-type"),
                }
                for upload in listed
            ],
        }
        if prefix:
            result["Prefix"] = prefix
        if listed:
            result["NextKeyMarker"] = listed[-1].key_name
            result["NextUploadIdMarker"] = listed[-1].id
        self.data["Action"] = "ListMultipartUploads"
        return self.serialized(ActionResult(result))

    setattr(__init__, _MARK, True)
    FakeMultipart.__init__ = __init__  # type: ignore[method-assign]
    S3Response.list_multipart_uploads = list_multipart_uploads  # type: ignore[method-assign]
    add_control_route("POST", "s3/multipart-initiated", _post_initiated)


def _post_initiated(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    from moto.s3.models import s3_backends

    data = json.loads(body or b"null")
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(data) - {"account", "bucket", "upload_id", "initiated"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    account, bucket_name, upload_id = data.get("account"), data.get("bucket"), data.get("upload_id")
    if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
        raise ValueError("account must be 12 digits")
    for name, value in (("bucket", bucket_name), ("upload_id", upload_id)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
    when = data.get("initiated")
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not 0 <= when < 253402300800:
        raise ValueError("initiated must be seconds since the epoch (a number, before the year 10000)")
    bucket = s3_backends[account]["aws"].buckets.get(bucket_name)
    if bucket is None:
        return 404, {"error": f"account {account} has no bucket {bucket_name}"}
    upload = bucket.multiparts.get(upload_id)
    if upload is None:
        return 404, {"error": f"bucket {bucket_name} has no multipart upload {upload_id}"}
    setattr(upload, _INITIATED, float(when))
    return 200, {"ok": True, "initiated": iso_time(float(when))}
