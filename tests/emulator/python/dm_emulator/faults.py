"""WSGI middleware: fault injection and request counting, controlled over HTTP.

Control routes (same server, JSON):

``POST /_dm/faults``
    ``{"service": "autoscaling", "action": "DescribeAutoScalingGroups",
    "status": 503, "code": "ServiceUnavailable", "count": 2, "skip": 0,
    "account": "111122223333", "message": "optional"}`` -- the next ``count``
    matching requests fail with ``status`` and an error body shaped like the
    service's protocol.  ``skip`` (optional, default 0) lets the first
    ``skip`` matching requests through untouched first, so a fault can hit
    partway through a sequence: ``{"service": "s3", "action": "UploadPart",
    "status": 503, "code": "SlowDown", "count": 2, "skip": 2}`` fails the 3rd
    and 4th ``UploadPart`` requests (the 3rd part and the SDK's first retry
    of it) and lets every other one through.  ``account`` (optional)
    restricts the rule to requests of that account, ``region`` (optional) to
    requests whose SigV4 credential scope names that region
    (``Credential=AKID/date/REGION/service/aws4_request``, or the
    ``X-Amz-Credential`` of a presigned URL; a request without one matches
    no rule that names a region); ``action`` may be
    ``"*"``.  Rules are tried in the order they were added; a request
    consumes at most one fault, from the first rule that is past its
    ``skip``.  Every rule still skipping counts every matching request that
    arrives (also one another rule fails): ``skip`` counts attempts, as
    ``/_dm/count`` does, from the moment the rule is armed.
``GET /_dm/faults``
    The rules still pending, with what is left of their ``skip`` and ``count``.
``GET /_dm/requests[?account=A][&service=S][&action=X]``
    ``{"service:Action": n, ...}`` -- requests seen (faulted ones included),
    all accounts summed unless ``account`` is given.
``GET /_dm/count?service=S&action=X[&account=A]``
    ``{"count": n}`` for one ``service:action``.
``POST /_dm/reset[?account=A]``
    Clears faults, counts and region outages (only that account's, if given:
    an outage of every account stays), and whatever
    the plugins registered with ``add_reset_hook`` clears (e.g. recorded
    Lambda invocations).
``POST /_dm/region-outage``
    ``{"region": "us-east-1", "down": true, "account": "111122223333"}``
    (``account`` optional): while a region is down, every AWS request signed
    for it (the region of its SigV4 credential scope; any service; only that
    account's if ``account`` is given) fails with HTTP 503
    ``ServiceUnavailable`` in the service's own error shape (the shapes of
    the injected faults), without reaching moto, and is still counted (by
    ``/_dm/count``, and by the ``skip`` of matching fault rules, which it
    does not consume).  ``"down": false`` lifts that outage (the one with the
    same region and account).  Answers ``{"ok": true, "outages": [...]}``.
    Route 53 (and IAM, and every other global service) is signed for
    ``us-east-1``: an outage of ``us-east-1`` takes its API down too, as on
    AWS, where the Route 53 control plane is in us-east-1.  The ``/_dm/``
    routes are never affected.
``GET /_dm/region-outage``
    ``{"outages": [{"region": "us-east-1", "account": null}, ...]}``.
``GET /_dm/health``
    ``{"ok": true}``.

Plugins add their own routes with ``add_control_route`` (e.g.
``/_dm/lambda/...`` from ``plugins.lambda_async_invoke``); they are listed in
the plugin's docstring.

The service is the SigV4 credential scope's service
(``Credential=AKID/date/region/SERVICE/aws4_request``); the action is the
form body's (or query string's) ``Action=``, else the part of ``X-Amz-Target``
after the last dot, else (REST services) the HTTP method, e.g. ``lambda:POST``.
A Smithy rpcv2 CBOR request's action is the operation in its path
(``monitoring:PutMetricData``), and its injected errors are CBOR.

S3's action is its operation, derived from the method, the path (path-style
``/bucket/key``, or a virtual-hosted bucket in ``Host``), the query string
and ``x-amz-copy-source`` (see ``s3_operation``), or the ``x-id`` query
parameter when the SDK sends one: ``PutObject``, ``GetObject``,
``HeadObject``, ``DeleteObject``, ``CopyObject`` (PUT with
``x-amz-copy-source``), ``DeleteObjects`` (POST ``?delete``),
``ListObjectsV2`` (GET bucket ``?list-type=2``), ``ListObjects``,
``ListBuckets``, ``CreateBucket``, ``HeadBucket``, ``DeleteBucket``,
``CreateMultipartUpload`` (POST key ``?uploads``), ``UploadPart`` (PUT
``?partNumber&uploadId``), ``UploadPartCopy``, ``CompleteMultipartUpload``
(POST ``?uploadId``), ``AbortMultipartUpload`` (DELETE ``?uploadId``),
``ListParts``, ``ListMultipartUploads`` (GET bucket ``?uploads``),
``GetBucketLifecycleConfiguration`` / ``PutBucketLifecycleConfiguration`` /
``DeleteBucketLifecycle`` (``?lifecycle``), and the other bucket and object
subresources (``?policy``, ``?tagging``, ``?versioning``, ``?acl``, ...).  A
request it cannot name keeps the HTTP method as its action.  Counts report
the operation (``s3:UploadPart``); a rule, ``/_dm/count`` or the ``action``
filter of ``/_dm/requests`` given a bare HTTP method (``"PUT"``, ``"GET"``,
...) still matches every S3 request of that method, as before.  Injected
S3 errors are S3's XML (``<Error><Code>SlowDown</Code><Message>...``), so an
SDK classifies 503 ``SlowDown`` as throttling and 500 ``InternalError`` as a
transient server error, as on AWS.  Route 53's and CloudFront's (rest-xml
too, but wrapped like the Query protocol's) are ``<ErrorResponse><Error><Type>
<Code><Message></Error><RequestId></ErrorResponse>``: the AWS SDK for Rust
reads the code of those services only there (``route53:POST`` 400
``PriorRequestNotComplete`` is retried as throttling).
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from .plugins.accounts import resolve_account
from .plugins.cloudwatch_cbor import fault_response as rpc_v2_cbor_fault
from .plugins.cloudwatch_cbor import rpc_operation

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

CONTROL_PREFIX = "/_dm/"
_SCOPE = re.compile(r"Credential=[^/,\s]*/[^/,\s]*/[^/,\s]*/([^/,\s]+)/")
_SCOPE_REGION = re.compile(r"Credential=[^/,\s]*/[^/,\s]*/([^/,\s]+)/[^/,\s]+/")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_OUTAGE_MESSAGE = "Service Unavailable: the region {region} is down (dm_emulator region outage)"
# Services whose wire protocol is rest-xml.
_REST_XML = {"s3", "s3-control", "route53", "cloudfront"}
# The rest-xml services whose errors are wrapped in <ErrorResponse> (S3's are not),
# with the namespace AWS gives it.
_REST_XML_WRAPPED = {
    "route53": "https://route53.amazonaws.com/doc/2013-04-01/",
    "cloudfront": "http://cloudfront.amazonaws.com/doc/2020-05-31/",
}
_DEFAULT_MESSAGE = "Fault injected by dm_emulator"
_PARAMS_KEY = "dm_emulator.params"

# (params of the query string, request body) -> (HTTP status, JSON payload).
# A ValueError means a bad request (400, its text as the error).
ControlHandler = Callable[[dict[str, str], bytes], tuple[int, Any]]
_EXTRA_ROUTES: dict[tuple[str, str], ControlHandler] = {}
# name -> hook(account or None), run by POST /_dm/reset after the faults' reset.
_RESET_HOOKS: dict[str, Callable[[str | None], None]] = {}


def add_control_route(method: str, route: str, handler: ControlHandler) -> None:
    """Serves ``METHOD /_dm/<route>`` with ``handler``; registering again replaces it."""
    _EXTRA_ROUTES[(method.upper(), route.strip("/"))] = handler


def add_reset_hook(name: str, hook: Callable[[str | None], None]) -> None:
    """Runs ``hook(account)`` on every ``POST /_dm/reset`` (``None``: all accounts)."""
    _RESET_HOOKS[name] = hook


@dataclass
class FaultRule:
    service: str
    action: str
    status: int
    code: str
    count: int
    account: str | None = None
    message: str | None = None
    skip: int = 0
    region: str | None = None

    @staticmethod
    def from_json(data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("fault rule must be a JSON object")
        unknown = set(data) - {f for f in FaultRule.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")

        def text(name: str, required: bool = True) -> str | None:
            value = data.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
            return value

        def integer(name: str, low: int, high: int, default: int | None = None) -> int:
            value = data.get(name)
            if value is None and default is not None:
                return default
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..={high}")
            return value

        return FaultRule(
            service=str(text("service")).lower(),
            action=str(text("action")),
            status=integer("status", 400, 599),
            code=str(text("code")),
            count=integer("count", 1, 1_000_000),
            account=text("account", required=False),
            message=text("message", required=False),
            skip=integer("skip", 0, 1_000_000, default=0),
            region=text("region", required=False),
        )

    def matches(
        self, service: str, action: str, account: str, method: str | None = None, region: str | None = None
    ) -> bool:
        """``method``: the HTTP method, for services whose actions are derived
        from it (S3); a rule naming a bare method then matches too.
        ``region``: the request's SigV4 region, if it has one."""
        return (
            self.service == service
            and (self.action == "*" or self.action == action or (method is not None and self.action == method))
            and (self.account is None or self.account == account)
            and (self.region is None or self.region == region)
        )


class State:
    """Pending faults and request counts; shared by all server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        # (account, "svc:Action", HTTP method if the action was derived from it, else None)
        self._counts: Counter[tuple[str, str, str | None]] = Counter()
        # (region, account or None for every account) of the regions that are down.
        self._outages: list[tuple[str, str | None]] = []

    def add_rule(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def set_outage(self, region: str, account: str | None, down: bool) -> None:
        with self._lock:
            key = (region, account)
            if down and key not in self._outages:
                self._outages.append(key)
            elif not down and key in self._outages:
                self._outages.remove(key)

    def outages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"region": region, "account": account} for region, account in self._outages]

    def _down(self, region: str | None, account: str) -> bool:
        return region is not None and any(
            r == region and (a is None or a == account) for r, a in self._outages
        )

    def record(
        self, service: str, action: str, account: str, method: str | None = None, region: str | None = None
    ) -> FaultRule | None:
        """Counts the request; returns the fault to answer with, if any.

        A request to a region that is down gets the outage's 503 (it counts
        matching rules still skipping down, and consumes none).  Otherwise
        every matching rule still skipping counts the request down; the
        first matching rule past its skip (if any) fails it."""
        with self._lock:
            self._counts[(account, f"{service}:{action}", method)] += 1
            down = self._down(region, account)
            chosen: FaultRule | None = None
            if down:
                chosen = FaultRule(
                    service=service,
                    action=action,
                    status=503,
                    code="ServiceUnavailable",
                    count=1,
                    account=account,
                    message=_OUTAGE_MESSAGE.format(region=region),
                    region=region,
                )
            for rule in list(self._rules):
                if not rule.matches(service, action, account, method, region):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                elif chosen is None:
                    chosen = rule
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
            return chosen

    def counts(self, account: str | None, service: str | None = None, action: str | None = None) -> dict[str, int]:
        """``{"svc:Action": n}``, optionally only ``service`` and ``action``
        (for S3 ``action`` may also be an HTTP method: its requests, by operation)."""
        with self._lock:
            total: Counter[str] = Counter()
            for (acct, key, method), n in self._counts.items():
                if account is not None and acct != account:
                    continue
                svc, act = key.split(":", 1)
                if service and svc != service.lower():
                    continue
                if action and act != action and method != action:
                    continue
                total[key] += n
            return dict(sorted(total.items()))

    def count(self, account: str | None, service: str, action: str) -> int:
        """Requests of ``service:action`` (for S3 ``action`` may be an HTTP method)."""
        return sum(self.counts(account, service, action).values())

    def reset(self, account: str | None) -> None:
        with self._lock:
            if account is None:
                self._rules.clear()
                self._counts.clear()
                self._outages.clear()
                return
            self._rules = [r for r in self._rules if r.account != account]
            self._outages = [o for o in self._outages if o[1] != account]
            for key in [k for k in self._counts if k[0] == account]:
                del self._counts[key]


def _read_body(environ: dict[str, Any]) -> bytes:
    """Reads the whole request body and re-wraps wsgi.input so moto still sees it."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text.strip():
        try:
            length = int(length_text)
        except ValueError:
            length = 0
        body = stream.read(length) if length > 0 else b""
    elif environ.get("wsgi.input_terminated"):
        # Chunked transfer encoding: werkzeug's dev server de-chunks to EOF.
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


# S3 operations, by subresource (a query parameter naming what the request is
# about) and HTTP method; a request may carry several subresources, the first
# one in table order that has an entry for its method names the operation.
def _crud(name: str, delete: str | None = None, get: str = "Get", put: str = "Put") -> dict[str, str]:
    table = {"GET": f"{get}{name}", "PUT": f"{put}{name}"}
    if delete is not None:
        table["DELETE"] = delete
    return table


_S3_BUCKET_SUBRESOURCES: dict[str, dict[str, str]] = {
    "lifecycle": {
        "GET": "GetBucketLifecycleConfiguration",
        "PUT": "PutBucketLifecycleConfiguration",
        "DELETE": "DeleteBucketLifecycle",
    },
    "uploads": {"GET": "ListMultipartUploads"},
    "versions": {"GET": "ListObjectVersions"},
    "delete": {"POST": "DeleteObjects"},
    "policy": _crud("BucketPolicy", "DeleteBucketPolicy"),
    "policyStatus": {"GET": "GetBucketPolicyStatus"},
    "versioning": _crud("BucketVersioning"),
    "tagging": _crud("BucketTagging", "DeleteBucketTagging"),
    "cors": _crud("BucketCors", "DeleteBucketCors"),
    "encryption": _crud("BucketEncryption", "DeleteBucketEncryption"),
    "acl": _crud("BucketAcl"),
    "location": {"GET": "GetBucketLocation"},
    "logging": _crud("BucketLogging"),
    "notification": _crud("BucketNotificationConfiguration"),
    "publicAccessBlock": _crud("PublicAccessBlock", "DeletePublicAccessBlock"),
    "ownershipControls": _crud("BucketOwnershipControls", "DeleteBucketOwnershipControls"),
    "website": _crud("BucketWebsite", "DeleteBucketWebsite"),
    "replication": _crud("BucketReplication", "DeleteBucketReplication"),
    "object-lock": _crud("ObjectLockConfiguration"),
    "accelerate": _crud("BucketAccelerateConfiguration"),
    "requestPayment": _crud("BucketRequestPayment"),
    "analytics": _crud("BucketAnalyticsConfiguration", "DeleteBucketAnalyticsConfiguration"),
    "inventory": _crud("BucketInventoryConfiguration", "DeleteBucketInventoryConfiguration"),
    "metrics": _crud("BucketMetricsConfiguration", "DeleteBucketMetricsConfiguration"),
    "intelligent-tiering": _crud(
        "BucketIntelligentTieringConfiguration", "DeleteBucketIntelligentTieringConfiguration"
    ),
}
# GET of these without ?id= lists the configurations.
_S3_LISTED_CONFIGURATIONS = {
    "analytics": "ListBucketAnalyticsConfigurations",
    "inventory": "ListBucketInventoryConfigurations",
    "metrics": "ListBucketMetricsConfigurations",
    "intelligent-tiering": "ListBucketIntelligentTieringConfigurations",
}
_S3_OBJECT_SUBRESOURCES: dict[str, dict[str, str]] = {
    "uploads": {"POST": "CreateMultipartUpload"},
    "uploadId": {
        "PUT": "UploadPart",
        "POST": "CompleteMultipartUpload",
        "DELETE": "AbortMultipartUpload",
        "GET": "ListParts",
    },
    "tagging": _crud("ObjectTagging", "DeleteObjectTagging"),
    "acl": _crud("ObjectAcl"),
    "attributes": {"GET": "GetObjectAttributes"},
    "retention": _crud("ObjectRetention"),
    "legal-hold": _crud("ObjectLegalHold"),
    "restore": {"POST": "RestoreObject"},
    "select": {"POST": "SelectObjectContent"},
    "torrent": {"GET": "GetObjectTorrent"},
    "renameObject": {"PUT": "RenameObject"},
}
# Ordinary parameters (not subresources).  A request with a parameter outside
# these and the tables is not named (its action stays the HTTP method).
_S3_BUCKET_PARAMS = frozenset(
    {
        "prefix",
        "delimiter",
        "marker",
        "max-keys",
        "encoding-type",
        "list-type",
        "continuation-token",
        "fetch-owner",
        "start-after",
        "key-marker",
        "upload-id-marker",
        "max-uploads",
        "version-id-marker",
        "id",
        "x-id",
        "max-buckets",
        "bucket-region",
    }
)
_S3_OBJECT_PARAMS = frozenset(
    {"versionId", "partNumber", "max-parts", "part-number-marker", "select-type", "x-id"}
)
_S3_DEFAULT_OBJECT_OPERATIONS = {
    "GET": "GetObject",
    "HEAD": "HeadObject",
    "PUT": "PutObject",
    "DELETE": "DeleteObject",
}
_S3_DEFAULT_BUCKET_OPERATIONS = {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}
_OPERATION_NAME = re.compile(r"[A-Z][A-Za-z0-9]{2,63}")
_IPV4 = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_S3_PATH_STYLE_HOST = re.compile(r"s3([.-](dualstack|fips))?([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?")
_S3_VIRTUAL_HOST = re.compile(r"(.+?)\.s3([.-][a-z0-9-]+)*\.amazonaws\.com(\.cn)?")


def _s3_bucket_and_key(environ: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) of an S3 request; either may be empty.  Path-style for
    hosts that are IP addresses, ``localhost``, dotless or ``s3[.region].amazonaws.com``
    (as moto decides), else the bucket is in the host."""
    path = str(environ.get("PATH_INFO") or "/")
    host = str(environ.get("HTTP_HOST") or "").lower()
    if host.startswith("["):  # [IPv6]:port
        name = host[1 : host.find("]")] if "]" in host else host
        path_style = True
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        path_style = (
            not name
            or "." not in name
            or name.startswith(("localhost", "localstack", "host.docker.internal"))
            or _IPV4.fullmatch(name) is not None
            or _S3_PATH_STYLE_HOST.fullmatch(name) is not None
        )
    if path_style:
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key
    match = _S3_VIRTUAL_HOST.fullmatch(name)
    bucket = match.group(1) if match else name.split(".", 1)[0]
    return bucket, path[1:] if path.startswith("/") else path


def s3_operation(environ: dict[str, Any]) -> str | None:
    """The S3 operation of a request (``UploadPart``, ``ListObjectsV2``, ...),
    or None if it cannot tell."""
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    params = parse_qs(str(environ.get("QUERY_STRING") or ""), keep_blank_values=True)
    explicit = params.get("x-id", [""])[0]
    if _OPERATION_NAME.fullmatch(explicit):
        return explicit  # the Smithy SDKs name some operations themselves: ?x-id=GetObject
    # Presigned URLs carry X-Amz-* parameters; GetObject takes response-* overrides.
    names = {n for n in params if not n.lower().startswith("x-amz-") and not n.startswith("response-")}
    bucket, key = _s3_bucket_and_key(environ)
    copy = bool(environ.get("HTTP_X_AMZ_COPY_SOURCE"))
    if not bucket:
        return "ListBuckets" if method == "GET" and names <= _S3_BUCKET_PARAMS else None
    if key:
        table, plain = _S3_OBJECT_SUBRESOURCES, _S3_OBJECT_PARAMS
    else:
        table, plain = _S3_BUCKET_SUBRESOURCES, _S3_BUCKET_PARAMS
    if names - table.keys() - plain:
        return None
    for subresource, operations in table.items():
        if subresource not in names:
            continue
        operation = operations.get(method)
        if operation is None:
            return None
        if not key and method == "GET" and subresource in _S3_LISTED_CONFIGURATIONS and "id" not in names:
            return _S3_LISTED_CONFIGURATIONS[subresource]
        if operation == "UploadPart" and copy:
            return "UploadPartCopy"
        return operation
    if key:
        if method == "PUT" and copy:
            return "CopyObject"
        return _S3_DEFAULT_OBJECT_OPERATIONS.get(method)
    if method == "GET":
        return "ListObjectsV2" if params.get("list-type", [""])[0] == "2" else "ListObjects"
    return _S3_DEFAULT_BUCKET_OPERATIONS.get(method)


def http_method_alias(service: str, environ: dict[str, Any]) -> str | None:
    """The HTTP method, for services whose action is derived from it (S3):
    rules and counts given a bare method still match their requests."""
    if service == "s3":
        return str(environ.get("REQUEST_METHOD", "GET")).upper()
    return None


def request_region(environ: dict[str, Any]) -> str | None:
    """The region of a SigV4 request's credential scope (header or presigned URL), if any."""
    match = _SCOPE_REGION.search(str(environ.get("HTTP_AUTHORIZATION") or ""))
    if match:
        return match.group(1)
    query = str(environ.get("QUERY_STRING") or "")
    if "X-Amz-Credential" in query:
        credential = parse_qs(query).get("X-Amz-Credential", [""])[0].split("/")
        if len(credential) >= 5 and credential[2]:
            return credential[2]
    return None


def classify(environ: dict[str, Any]) -> tuple[str, str]:
    """(service, action) of an AWS request, as used for counts and faults."""
    authorization = environ.get("HTTP_AUTHORIZATION") or ""
    query = environ.get("QUERY_STRING") or ""
    match = _SCOPE.search(authorization)
    if match:
        service = match.group(1).lower()
    else:
        credential = parse_qs(query).get("X-Amz-Credential", [""])[0].split("/")
        service = credential[3].lower() if len(credential) >= 5 else "unknown"

    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    if service == "s3":
        return service, s3_operation(environ) or method
    if service in _REST_XML:
        return service, method
    rpc_action = rpc_operation(environ)  # Smithy rpcv2 CBOR: /service/S/operation/ACTION
    if rpc_action:
        return service, rpc_action

    params = parse_qs(query)
    content_type = str(environ.get("CONTENT_TYPE") or "")
    if "Action" not in params and content_type.startswith("application/x-www-form-urlencoded"):
        body = _read_body(environ)
        try:
            params = parse_qs(body.decode("utf-8"))
        except UnicodeDecodeError:
            params = {}
    environ[_PARAMS_KEY] = params
    action = params.get("Action", [None])[0]
    if not action:
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            action = str(target).rsplit(".", 1)[-1]
    return service, action or method


def _protocol(environ: dict[str, Any], service: str) -> str:
    if rpc_operation(environ) is not None:
        return "rpc-v2-cbor"
    if service == "ec2":
        return "ec2"
    if service in _REST_XML:
        return "rest-xml"
    content_type = str(environ.get("CONTENT_TYPE") or "")
    if environ.get("HTTP_X_AMZ_TARGET") or "amz-json" in content_type:
        return "json"
    if content_type.startswith("application/x-www-form-urlencoded") or "Action=" in str(
        environ.get("QUERY_STRING") or ""
    ):
        return "query"
    return "rest-json"


def error_response(environ: dict[str, Any], service: str, rule: FaultRule) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of the error AWS would send for this fault."""
    request_id = str(uuid.uuid4())
    code = escape(rule.code)
    message = escape(rule.message or _DEFAULT_MESSAGE)
    fault_type = "Sender" if rule.status < 500 else "Receiver"
    protocol = _protocol(environ, service)
    if protocol == "rpc-v2-cbor":
        return rpc_v2_cbor_fault(environ, rule.status, rule.code, rule.message or _DEFAULT_MESSAGE)
    if protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        headers = [("Content-Type", "text/xml;charset=UTF-8")]
    elif protocol == "rest-xml" and service in _REST_XML_WRAPPED:
        # Route 53 and CloudFront wrap the error, as the Query protocol does; the
        # AWS SDK for Rust finds the code only inside <ErrorResponse><Error>.
        namespace = escape(_REST_XML_WRAPPED[service], {'"': "&quot;"})
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<ErrorResponse xmlns="{namespace}">'
            f"<Error><Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    elif protocol == "rest-xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        headers = [
            ("Content-Type", "application/xml"),
            ("x-amz-request-id", request_id),
            ("x-amz-id-2", request_id),
        ]
    elif protocol == "query":
        version = environ.get(_PARAMS_KEY, {}).get("Version", [""])[0]
        doc = f"http://{service}.amazonaws.com/doc/{version + '/' if version else ''}"
        namespace = escape(doc, {'"': "&quot;"})
        body = (
            f'<ErrorResponse xmlns="{namespace}">'
            f"<Error><Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    else:
        content_type = str(environ.get("CONTENT_TYPE") or "")
        if protocol == "json" and "amz-json" not in content_type:
            content_type = "application/x-amz-json-1.1"
        elif protocol == "rest-json":
            content_type = "application/json"
        body = json.dumps({"__type": rule.code, "message": rule.message or _DEFAULT_MESSAGE})
        headers = [
            ("Content-Type", content_type),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", rule.code),
            ("x-amzn-query-error", f"{rule.code};{fault_type}"),
        ]
    encoded = body.encode("utf-8")
    if str(environ.get("REQUEST_METHOD", "")).upper() == "HEAD":
        encoded = b""
    headers.append(("Content-Length", str(len(encoded))))
    return headers, encoded


def _status_line(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


class FaultsMiddleware:
    def __init__(self, app: WSGIApp, state: State | None = None, log: bool = True) -> None:
        self.app = app
        self.state = state or State()
        self.log = log

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response, path[len(CONTROL_PREFIX) :])

        service, action = classify(environ)
        account = resolve_account(environ)
        region = request_region(environ)
        rule = self.state.record(service, action, account, http_method_alias(service, environ), region)
        if rule is None:
            if not self.log:
                return self.app(environ, start_response)

            def logging_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
                self._log(account, service, action, environ, status.split(" ", 1)[0])
                return start_response(status, headers, exc_info)

            return self.app(environ, logging_start_response)
        _read_body(environ)  # drain, so keep-alive connections stay in sync
        headers, body = error_response(environ, service, rule)
        start_response(_status_line(rule.status), headers)
        if self.log:
            outage = rule.message == _OUTAGE_MESSAGE.format(region=region)
            what = f"region {region} down" if outage else f"injected {rule.code}"
            self._log(account, service, action, environ, f"{rule.status} ({what})")
        return [body]

    @staticmethod
    def _log(account: str, service: str, action: str, environ: dict[str, Any], outcome: str) -> None:
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {account} {service}:{action} {method} {path} -> {outcome}\n")

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any], route: str) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        params = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING") or "").items()}
        account = params.get("account") or None
        try:
            if route == "health" and method == "GET":
                return _json(start_response, 200, {"ok": True})
            if route == "faults" and method == "POST":
                body = _read_body(environ)
                try:
                    rule = FaultRule.from_json(json.loads(body or b"null"))
                except (ValueError, UnicodeDecodeError) as err:
                    return _json(start_response, 400, {"error": str(err)})
                self.state.add_rule(rule)
                if self.log:
                    sys.stderr.write(f"{time.strftime('%H:%M:%S')} fault armed: {asdict(rule)}\n")
                return _json(start_response, 200, {"ok": True, "rule": asdict(rule)})
            if route == "faults" and method == "GET":
                return _json(start_response, 200, {"faults": self.state.rules()})
            if route == "region-outage" and method == "POST":
                body = _read_body(environ)
                try:
                    region, outage_account, down = _outage_from_json(json.loads(body or b"null"))
                except (ValueError, UnicodeDecodeError) as err:
                    return _json(start_response, 400, {"error": str(err)})
                self.state.set_outage(region, outage_account, down)
                if self.log:
                    what = "down" if down else "up"
                    sys.stderr.write(
                        f"{time.strftime('%H:%M:%S')} region {region} {what} (account {outage_account or 'all'})\n"
                    )
                return _json(start_response, 200, {"ok": True, "outages": self.state.outages()})
            if route == "region-outage" and method == "GET":
                return _json(start_response, 200, {"outages": self.state.outages()})
            if route == "requests" and method == "GET":
                counts = self.state.counts(account, params.get("service"), params.get("action"))
                return _json(start_response, 200, counts)
            if route == "count" and method == "GET":
                service = (params.get("service") or "").lower()
                action = params.get("action") or ""
                if not service or not action:
                    return _json(start_response, 400, {"error": "service and action are required"})
                count = self.state.count(account, service, action)
                return _json(start_response, 200, {"count": count})
            if route == "reset" and method == "POST":
                _read_body(environ)
                self.state.reset(account)
                for hook in list(_RESET_HOOKS.values()):
                    hook(account)
                if self.log:
                    sys.stderr.write(f"{time.strftime('%H:%M:%S')} reset (account {account or 'all'})\n")
                return _json(start_response, 200, {"ok": True})
            handler = _EXTRA_ROUTES.get((method, route.strip("/")))
            if handler is not None:
                body = _read_body(environ)
                try:
                    status, payload = handler(params, body)
                except ValueError as err:  # includes bad JSON and bad UTF-8
                    return _json(start_response, 400, {"error": str(err)})
                return _json(start_response, status, payload)
        except Exception as err:  # noqa: BLE001 - report, never kill the server thread
            return _json(start_response, 500, {"error": repr(err)})
        return _json(start_response, 404, {"error": f"no route {method} {CONTROL_PREFIX}{route}"})


def _outage_from_json(data: Any) -> tuple[str, str | None, bool]:
    """(region, account or None, down) of a ``POST /_dm/region-outage`` body."""
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object like {"region": "us-east-1", "down": true}')
    unknown = set(data) - {"region", "down", "account"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    region = data.get("region")
    if not isinstance(region, str) or not region:
        raise ValueError("region must be a non-empty string")
    down = data.get("down")
    if not isinstance(down, bool):
        raise ValueError("down must be true or false")
    account = data.get("account")
    if account is not None and (not isinstance(account, str) or not _ACCOUNT_ID.fullmatch(account)):
        raise ValueError("account must be 12 digits")
    return region, account, down


def _json(start_response: Callable[..., Any], status: int, payload: Any) -> Iterable[bytes]:
    body = json.dumps(payload).encode("utf-8")
    start_response(
        _status_line(status),
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
