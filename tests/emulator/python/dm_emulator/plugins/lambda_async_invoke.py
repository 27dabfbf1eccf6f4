"""Lambda ``Invoke`` with ``InvocationType=Event`` answers like AWS and records the call.

AWS queues an asynchronous invocation and answers 202 with an empty body; the
function runs later.  moto 5.2.5 runs the function at once, in Docker
(``LambdaBackend.invoke`` -> ``LambdaFunction.invoke``), and without Docker
answers 202 with the Docker error text as the body.  We wrap
``LambdaBackend.invoke`` (and ``LambdaSimpleBackend.invoke``, which overrides
it): when the request's ``X-Amz-Invocation-Type`` is ``Event``, the function is
looked up (a missing one still raises moto's 404 ResourceNotFoundException),
the payload is checked to be JSON (AWS: 400 InvalidRequestContentException),
the invocation is recorded in memory and the answer is 202 with an empty body.
Nothing runs.  ``RequestResponse`` and ``DryRun`` keep moto's behaviour, and
so do moto's internal invocations (SQS/SNS/EventBridge targets), which send
no invocation type.

Control routes (registered with ``dm_emulator.faults``):

``POST /_dm/lambda/functions``
    ``{"account": "123456789012", "region": "us-west-2", "name": "fn"}``
    creates a stub function (``python3.12``, a one-line zip) in moto's Lambda
    backend of that account and region, and the IAM role it needs
    (``dm-emulator-lambda-stub``) in moto's IAM backend of that account if
    missing.  Answers ``{"arn": "...", "created": true}``; a function of that
    name that exists already is left alone (``"created": false``).  The stub
    never runs: invoke it with ``Event``.
``GET /_dm/lambda/invocations[?account=A][&function=F][&region=R]``
    ``{"invocations": [{"account", "region", "function", "function_name",
    "function_arn", "qualifier", "payload", "time"}, ...]}`` in the order they
    were received.  ``function`` is the name as given in the request path
    (name, ARN or partial ARN); the filter ``function=F`` matches it, the
    function's name or its unqualified ARN.  ``payload`` is the request body
    as UTF-8 text, ``time`` seconds since the epoch.

``POST /_dm/reset[?account=A]`` also clears the recorded invocations.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import threading
import time
import zipfile
from dataclasses import asdict, dataclass
from typing import Any

from moto.awslambda.exceptions import LambdaClientError, UnknownFunctionException
from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend

_MARK = "_dm_lambda_async_invoke"
_LOCK = threading.Lock()
_CREATE_LOCK = threading.Lock()
_INVOCATIONS: list[Invocation] = []

STUB_ROLE = "dm-emulator-lambda-stub"
_ASSUME_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
_ACCOUNT = re.compile(r"[0-9]{12}")
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InvalidRequestContentError(LambdaClientError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            "InvalidRequestContentException",
            f"Could not parse request body into json: {detail}",
        )


@dataclass(frozen=True)
class Invocation:
    account: str
    region: str
    function: str  # as given in the request path: name, ARN or partial ARN
    function_name: str
    function_arn: str  # unqualified
    qualifier: str | None
    payload: str
    time: float

    def matches(self, account: str | None, function: str | None, region: str | None) -> bool:
        return (
            (account is None or self.account == account)
            and (region is None or self.region == region)
            and (function is None or function in (self.function, self.function_name, self.function_arn))
        )


def record(invocation: Invocation) -> None:
    with _LOCK:
        _INVOCATIONS.append(invocation)


def invocations(
    account: str | None = None, function: str | None = None, region: str | None = None
) -> list[Invocation]:
    """The recorded Event invocations, oldest first, filtered."""
    with _LOCK:
        return [i for i in _INVOCATIONS if i.matches(account, function, region)]


def clear(account: str | None = None) -> None:
    with _LOCK:
        if account is None:
            _INVOCATIONS.clear()
        else:
            _INVOCATIONS[:] = [i for i in _INVOCATIONS if i.account != account]


def _header(headers: Any, name: str) -> str | None:
    """Case-insensitive lookup in werkzeug headers or a plain dict."""
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        lowered = name.lower()
        for key, candidate in headers.items():
            if str(key).lower() == lowered:
                return candidate
    return value


def _text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, (bytes, bytearray)):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidRequestContentError(f"payload is not UTF-8 ({err})") from err
    return str(body)


def _wrap(cls: type) -> None:
    original = cls.__dict__["invoke"]
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def invoke(self, function_name, qualifier, body, headers, response_headers):  # type: ignore[no-untyped-def]
        if _header(headers, "X-Amz-Invocation-Type") != "Event":
            return original(self, function_name, qualifier, body, headers, response_headers)
        fn = self.get_function(function_name, qualifier)  # 404 if missing, as before
        payload = _text(body)
        if payload.strip():
            try:
                json.loads(payload)
            except ValueError as err:
                raise InvalidRequestContentError(str(err)) from err
        record(
            Invocation(
                account=self.account_id,
                region=self.region_name,
                function=function_name,
                function_name=fn.function_name,
                function_arn=_unqualified_arn(fn),
                qualifier=qualifier,
                payload=payload,
                time=time.time(),
            )
        )
        response_headers["Content-Length"] = "0"
        return b""  # not None: moto's response layer then answers 202

    setattr(invoke, _MARK, True)
    cls.invoke = invoke  # type: ignore[attr-defined]


def _unqualified_arn(fn: Any) -> str:
    from moto.awslambda.utils import make_function_arn

    return make_function_arn(fn.region, fn.account_id, fn.function_name)


# ---------------------------------------------------------------------------
# Stub functions


def _stub_zip() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "index.py",
            "def handler(event, context):\n    raise RuntimeError('dm_emulator stub: never runs')\n",
        )
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _ensure_role(account: str, region: str) -> str:
    from moto.iam.exceptions import NotFoundException as IAMNotFoundException
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    iam = iam_backends[account][get_partition(region)]
    try:
        return iam.get_role(STUB_ROLE).arn
    except IAMNotFoundException:
        return iam.create_role(
            role_name=STUB_ROLE,
            assume_role_policy_document=_ASSUME_ROLE_POLICY,
            path="/",
            permissions_boundary=None,
            description="dm_emulator: role of stub Lambda functions",
            tags=[],
            max_session_duration=None,
        ).arn


def create_stub_function(account: str, region: str, name: str) -> tuple[str, bool]:
    """(ARN, created) of a stub function ``name`` in moto's backend."""
    from moto.awslambda.utils import get_backend

    if not _ACCOUNT.fullmatch(account):
        raise ValueError(f"account must be 12 digits, not {account!r}")
    if not _FUNCTION_NAME.fullmatch(name):
        raise ValueError(f"name must match [A-Za-z0-9_-]{{1,64}}, not {name!r}")
    with _CREATE_LOCK:
        try:
            backend = get_backend(account, region)
        except KeyError as err:
            raise ValueError(f"unknown region {region!r}") from err
        try:
            return _unqualified_arn(backend.get_function(name)), False
        except UnknownFunctionException:
            pass
        role = _ensure_role(account, region)
        fn = backend.create_function(
            {
                "FunctionName": name,
                "Runtime": "python3.12",
                "Role": role,
                "Handler": "index.handler",
                "Code": {"ZipFile": _stub_zip()},
                "Description": "dm_emulator stub function; it never runs",
                "Timeout": 3,
                "MemorySize": 128,
            }
        )
        return _unqualified_arn(fn), True


# ---------------------------------------------------------------------------
# Control routes


def _string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _post_function(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    data = json.loads(body.decode("utf-8") or "null")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with account, region and name")
    unknown = set(data) - {"account", "region", "name"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    arn, created = create_stub_function(_string(data, "account"), _string(data, "region"), _string(data, "name"))
    return 200, {"arn": arn, "created": created}


def _get_invocations(params: dict[str, str], body: bytes) -> tuple[int, Any]:
    found = invocations(
        account=params.get("account") or None,
        function=params.get("function") or None,
        region=params.get("region") or None,
    )
    return 200, {"invocations": [asdict(i) for i in found]}


def install() -> None:
    from ..faults import add_control_route, add_reset_hook

    _wrap(LambdaBackend)
    _wrap(LambdaSimpleBackend)
    add_control_route("POST", "lambda/functions", _post_function)
    add_control_route("GET", "lambda/invocations", _get_invocations)
    add_reset_hook("lambda_async_invoke", clear)
