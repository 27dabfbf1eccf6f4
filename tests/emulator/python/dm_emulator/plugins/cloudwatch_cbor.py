"""CloudWatch over the Smithy RPC v2 CBOR protocol, as the current AWS SDKs speak it.

The AWS SDK for Rust (and every SDK generated from the current model) calls
CloudWatch with ``smithy.protocols#rpcv2Cbor``::

    POST /service/GraniteServiceVersion20100801/operation/PutMetricData
    smithy-protocol: rpc-v2-cbor
    Content-Type: application/cbor
    Accept: application/cbor
    <CBOR map of the operation's input>

moto 5.2.5 only speaks CloudWatch's Query and JSON protocols and answers such
a request 404.  We wrap ``DomainDispatcherApplication.__call__``: a request
with ``smithy-protocol: rpc-v2-cbor`` is claimed, its CBOR body decoded
(a gzip ``Content-Encoding`` undone) and converted, shape by shape along
botocore's model of the service, into the awsJson 1.0 request moto already
understands (``X-Amz-Target: GraniteServiceVersion20100801.<Operation>``;
tag-1 timestamps become epoch seconds, byte strings base64).  moto's JSON
answer is converted back along the output shape and encoded as CBOR:
timestamps as tag 1 with a double, ``double``/``float`` members as doubles,
structures as definite-length maps.  Every answer carries
``smithy-protocol: rpc-v2-cbor``; one with a body ``Content-Type:
application/cbor``; operations without output answer 200 with no body.

Errors are CBOR maps ``{"__type": "com.amazonaws.cloudwatch#<Shape>",
"message": "..."}`` with the status moto chose (the model's ``httpError``),
and, CloudWatch being ``awsQueryCompatible``, ``x-amzn-query-error:
<Code>;Sender|Receiver``.  The request itself can fail with:

* 404 ``UnknownOperationException``: the path is not
  ``[prefix]/service/{service}/operation/{operation}``, or names a service
  or operation the model does not have;
* 405 ``MethodNotAllowedException``: not ``POST``;
* 415 ``UnsupportedMediaTypeException``: a body whose Content-Type is not
  ``application/cbor``;
* 400 ``SerializationException``: ``X-Amz-Target``/``X-Amzn-Target`` set
  (the spec says to reject it), a body that is not one CBOR map, or a
  member of the wrong type;
* 501 ``NotImplemented``: an operation of the model moto does not implement.

The service segment may also be the absolute shape id with ``.`` for ``#``
(``com.amazonaws.cloudwatch.GraniteServiceVersion20100801``).  Other
services speaking rpcv2 CBOR can be added with ``register_service``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import io
import json
import re
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import cbor

_MARK = "_dm_cloudwatch_cbor"
RPC_V2_CBOR = "rpc-v2-cbor"
CBOR_CONTENT_TYPE = "application/cbor"
_PATH = re.compile(r"(?:/.*)?/service/([^/]+)/operation/([^/]+)/?")
_CORAL = "com.amazon.coral.service"


@dataclass(frozen=True)
class Service:
    shape_name: str  # GraniteServiceVersion20100801
    namespace: str  # com.amazonaws.cloudwatch
    botocore_name: str  # cloudwatch
    target_prefix: str  # X-Amz-Target prefix of its awsJson protocol
    sigv4_name: str  # monitoring


_SERVICES: dict[str, Service] = {}


def register_service(service: Service) -> None:
    """Serves ``service`` over rpcv2 CBOR (by shape name and absolute id)."""
    _SERVICES[service.shape_name] = service
    _SERVICES[f"{service.namespace}.{service.shape_name}"] = service


register_service(
    Service(
        shape_name="GraniteServiceVersion20100801",
        namespace="com.amazonaws.cloudwatch",
        botocore_name="cloudwatch",
        target_prefix="GraniteServiceVersion20100801",
        sigv4_name="monitoring",
    )
)


@functools.lru_cache(maxsize=None)
def service_model(botocore_name: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(botocore_name)


class RpcError(Exception):
    def __init__(self, status: int, code: str, message: str, namespace: str = _CORAL) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.namespace = namespace


def _bad_input(message: str) -> RpcError:
    return RpcError(400, "SerializationException", message)


# ---------------------------------------------------------------------------
# Shape-driven conversion


def _path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def cbor_to_json(shape: Any, value: Any, path: str = "") -> Any:
    """A decoded CBOR input value -> the awsJson value moto's parser expects."""
    kind = shape.type_name
    where = path or "input"
    if kind == "structure":
        if not isinstance(value, dict):
            raise _bad_input(f"{where}: expected a map")
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _bad_input(f"{where}: a map key is not a text string")
            member = shape.members.get(key)
            if member is None or item is None:
                continue  # unknown members are ignored, nulls omitted
            out[key] = cbor_to_json(member, item, _path(path, key))
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise _bad_input(f"{where}: expected an array")
        return [cbor_to_json(shape.member, item, f"{where}[{i}]") for i, item in enumerate(value) if item is not None]
    if kind == "map":
        if not isinstance(value, dict):
            raise _bad_input(f"{where}: expected a map")
        return {
            str(k): cbor_to_json(shape.value, v, _path(path, str(k))) for k, v in value.items() if v is not None
        }
    if kind == "timestamp":
        if isinstance(value, datetime):
            return round(cbor.epoch_seconds(value), 3)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise _bad_input(f"{where}: expected a timestamp (tag 1)")
    if kind == "blob":
        if not isinstance(value, bytes):
            raise _bad_input(f"{where}: expected a byte string")
        return base64.b64encode(value).decode("ascii")
    if kind == "string":
        if not isinstance(value, str):
            raise _bad_input(f"{where}: expected a text string")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _bad_input(f"{where}: expected a boolean")
        return value
    if kind in ("integer", "long", "short", "byte"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad_input(f"{where}: expected an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise _bad_input(f"{where}: expected an integer, not {value!r}")
            value = int(value)
        return value
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad_input(f"{where}: expected a number")
        if value != value or value in (float("inf"), float("-inf")):
            # JSON cannot carry these; moto would not accept them either.
            raise _bad_input(f"{where}: {value!r} is not supported")
        return float(value)
    return value


def json_to_cbor(shape: Any, value: Any) -> Any:
    """moto's awsJson output value -> the value to encode as CBOR."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None or item is None:
                continue
            out[key] = json_to_cbor(member, item)
        return out
    if kind == "list":
        return [json_to_cbor(shape.member, item) for item in value if item is not None]
    if kind == "map":
        return {k: json_to_cbor(shape.value, v) for k, v in value.items() if v is not None}
    if kind == "timestamp":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cbor.from_epoch_seconds(float(value))
        if isinstance(value, str):
            from dateutil import parser as date_parser

            parsed = date_parser.isoparse(value)
            return parsed
        return value
    if kind == "blob":
        if isinstance(value, str):
            try:
                return base64.b64decode(value)
            except (binascii.Error, ValueError):
                return value.encode("utf-8")
        return value
    if kind in ("double", "float"):
        return float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else value
    if kind in ("integer", "long", "short", "byte"):
        if isinstance(value, (float, str)) and not isinstance(value, bool):
            try:
                return int(float(value))
            except ValueError:
                return value
        return value
    if kind == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    return value


# ---------------------------------------------------------------------------
# WSGI


def _header(environ: dict[str, Any], name: str) -> str:
    return str(environ.get("HTTP_" + name.upper().replace("-", "_")) or "")


def is_rpc_v2_cbor(environ: dict[str, Any]) -> bool:
    return _header(environ, "smithy-protocol").strip().lower() == RPC_V2_CBOR


def rpc_operation(environ: dict[str, Any]) -> str | None:
    """The operation of an rpcv2 CBOR request (for counts and faults), or None."""
    if not is_rpc_v2_cbor(environ):
        return None
    match = _PATH.fullmatch(str(environ.get("PATH_INFO") or ""))
    return match.group(2) if match else None


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length_text = str(environ.get("CONTENT_LENGTH") or "").strip()
    if length_text:
        try:
            length = int(length_text)
        except ValueError:
            length = 0
        return stream.read(length) if length > 0 else b""
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


def _decompress(body: bytes, encoding: str) -> bytes:
    for token in [t.strip().lower() for t in encoding.split(",") if t.strip()][::-1]:
        if token == "gzip":
            body = gzip.decompress(body)
        elif token == "deflate":
            body = zlib.decompress(body)
        elif token != "identity":
            raise RpcError(415, "UnsupportedMediaTypeException", f"unsupported Content-Encoding {token!r}")
    return body


def error_headers_and_body(
    status: int, type_id: str, message: str, query_error: str | None, request_id: str | None = None
) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of an rpcv2 CBOR error (used by the faults middleware too)."""
    body = cbor.dumps({"__type": type_id, "message": message})
    headers = [
        ("smithy-protocol", RPC_V2_CBOR),
        ("Content-Type", CBOR_CONTENT_TYPE),
        ("x-amzn-RequestId", request_id or str(uuid.uuid4())),
    ]
    if query_error:
        headers.append(("x-amzn-query-error", query_error))
    headers.append(("Content-Length", str(len(body))))
    return headers, body


def fault_response(
    environ: dict[str, Any], status: int, code: str, message: str
) -> tuple[list[tuple[str, str]], bytes]:
    """The rpcv2 CBOR error for an injected fault (``dm_emulator.faults``)."""
    match = _PATH.fullmatch(str(environ.get("PATH_INFO") or ""))
    service = _SERVICES.get(match.group(1)) if match else None
    namespace = service.namespace if service else _CORAL
    fault = "Sender" if status < 500 else "Receiver"
    return error_headers_and_body(status, f"{namespace}#{code}", message, f"{code};{fault}")


def _respond(
    start_response: Callable[..., Any], status: int, headers: list[tuple[str, str]], body: bytes
) -> Iterable[bytes]:
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    start_response(f"{status} {phrase}", headers)
    return [body]


def _error(start_response: Callable[..., Any], err: RpcError, request_id: str | None = None) -> Iterable[bytes]:
    fault = "Sender" if err.status < 500 else "Receiver"
    headers, body = error_headers_and_body(
        err.status, f"{err.namespace}#{err.code}", err.message, f"{err.code};{fault}", request_id
    )
    return _respond(start_response, err.status, headers, body)


def _moto_implements(service: Service, operation: str) -> bool:
    if service.botocore_name != "cloudwatch":
        return True
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.utils import camelcase_to_underscores

    return callable(getattr(CloudWatchResponse, camelcase_to_underscores(operation), None))


def handle(
    dispatch: Callable[..., Any], environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """Serves one rpcv2 CBOR request through ``dispatch`` (moto's WSGI app, awsJson)."""
    try:
        service, operation, json_body = _translate_request(environ)
    except RpcError as err:
        return _error(start_response, err)

    inner = dict(environ)
    inner["PATH_INFO"] = "/"
    for key in ("RAW_URI", "REQUEST_URI"):
        if key in inner:
            inner[key] = "/" + (f"?{inner['QUERY_STRING']}" if inner.get("QUERY_STRING") else "")
    for key in ("HTTP_CONTENT_ENCODING", "HTTP_SMITHY_PROTOCOL", "HTTP_ACCEPT", "HTTP_TRANSFER_ENCODING"):
        inner.pop(key, None)
    inner["REQUEST_METHOD"] = "POST"
    inner["CONTENT_TYPE"] = "application/x-amz-json-1.0"
    inner["HTTP_X_AMZ_TARGET"] = f"{service.target_prefix}.{operation}"
    inner["CONTENT_LENGTH"] = str(len(json_body))
    inner["wsgi.input"] = io.BytesIO(json_body)
    inner.pop("wsgi.input_terminated", None)

    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = list(headers)
        return lambda data: None

    result = dispatch(inner, capture)
    try:
        raw = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if callable(close):
            close()
    status = captured.get("status", 500)
    moto_headers = {k.lower(): v for k, v in captured.get("headers", [])}
    request_id = moto_headers.get("x-amzn-requestid") or str(uuid.uuid4())
    model = service_model(service.botocore_name)
    op_model = model.operation_model(operation)

    if status == 200:
        try:
            document = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError):
            return _error(
                start_response,
                RpcError(500, "InternalFailure", f"dm_emulator: moto answered {operation} with non-JSON"),
                request_id,
            )
        headers = [("smithy-protocol", RPC_V2_CBOR), ("x-amzn-RequestId", request_id)]
        if op_model.output_shape is None:
            headers.append(("Content-Length", "0"))
            return _respond(start_response, 200, headers, b"")
        body = cbor.dumps(json_to_cbor(op_model.output_shape, document if isinstance(document, dict) else {}))
        headers += [("Content-Type", CBOR_CONTENT_TYPE), ("Content-Length", str(len(body)))]
        return _respond(start_response, 200, headers, body)

    return _moto_error(start_response, service, status, moto_headers, raw, request_id)


def _moto_error(
    start_response: Callable[..., Any],
    service: Service,
    status: int,
    moto_headers: dict[str, str],
    raw: bytes,
    request_id: str,
) -> Iterable[bytes]:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        document = None
    if not isinstance(document, dict):
        text = raw.decode("utf-8", "replace")
        text = re.sub(r"<[^>]+>", " ", text)
        text = " ".join(text.split())[:500]
        code = "InternalFailure" if status >= 500 else "ValidationError"
        return _error(start_response, RpcError(status, code, text or f"HTTP {status}", service.namespace), request_id)
    type_text = str(document.get("__type") or moto_headers.get("x-amzn-errortype") or "")
    name = type_text.split(":", 1)[0].rsplit("#", 1)[-1] or ("InternalFailure" if status >= 500 else "ValidationError")
    message = str(document.get("message") or document.get("Message") or "")
    query_error = moto_headers.get("x-amzn-query-error")
    if not query_error:
        query_error = f"{name};{'Sender' if status < 500 else 'Receiver'}"
    headers, body = error_headers_and_body(status, f"{service.namespace}#{name}", message, query_error, request_id)
    return _respond(start_response, status, headers, body)


def _translate_request(environ: dict[str, Any]) -> tuple[Service, str, bytes]:
    path = str(environ.get("PATH_INFO") or "")
    match = _PATH.fullmatch(path)
    if match is None:
        raise RpcError(404, "UnknownOperationException", f"{path} is not /service/{{service}}/operation/{{operation}}")
    service = _SERVICES.get(match.group(1))
    operation = match.group(2)
    if service is None:
        raise RpcError(404, "UnknownOperationException", f"unknown service {match.group(1)!r}")
    model = service_model(service.botocore_name)
    if operation not in model.operation_names:
        raise RpcError(404, "UnknownOperationException", f"{service.shape_name} has no operation {operation!r}")
    if str(environ.get("REQUEST_METHOD", "")).upper() != "POST":
        raise RpcError(405, "MethodNotAllowedException", "rpcv2 CBOR requests must be POST")
    if _header(environ, "x-amz-target") or _header(environ, "x-amzn-target"):
        raise _bad_input("an rpcv2 CBOR request must not carry X-Amz-Target or X-Amzn-Target")
    body = _read_body(environ)
    content_type = str(environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    if body and content_type != CBOR_CONTENT_TYPE:
        raise RpcError(
            415, "UnsupportedMediaTypeException", f"Content-Type must be {CBOR_CONTENT_TYPE}, not {content_type!r}"
        )
    encoding = _header(environ, "content-encoding")
    if body and encoding:
        try:
            body = _decompress(body, encoding)
        except (OSError, EOFError, zlib.error) as err:
            raise _bad_input(f"cannot decode the {encoding} body: {err}") from err
    if not _moto_implements(service, operation):
        raise RpcError(
            501, "NotImplemented", f"dm_emulator: moto does not implement {operation}", service.namespace
        )
    try:
        document = cbor.loads(body) if body else {}
    except cbor.CBORDecodeError as err:
        raise _bad_input(f"malformed CBOR body: {err}") from err
    op_model = model.operation_model(operation)
    if op_model.input_shape is None:
        converted: Any = {}
    else:
        if not isinstance(document, dict):
            raise _bad_input("the body must be a CBOR map")
        converted = cbor_to_json(op_model.input_shape, document)
    return service, operation, json.dumps(converted).encode("utf-8")


def install() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def __call__(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not is_rpc_v2_cbor(environ):
            return original(self, environ, start_response)
        return handle(lambda env, sr: original(self, env, sr), environ, start_response)

    setattr(__call__, _MARK, True)
    DomainDispatcherApplication.__call__ = __call__  # type: ignore[method-assign]
