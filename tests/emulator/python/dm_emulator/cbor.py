"""Just enough CBOR (RFC 8949) for the Smithy rpcv2 CBOR protocol.

``loads`` decodes one data item: integers, byte and text strings (definite
or indefinite length), arrays, maps (definite or indefinite), tags, half /
single / double floats, ``true``, ``false``, ``null`` and ``undefined``
(decoded as ``None``).  Tag 1 (epoch-based date/time) becomes an aware UTC
``datetime``; tags 2 and 3 (bignums) become ``int``; any other tag becomes
``Tagged(tag, value)``.  ``dumps`` encodes ``None``, ``bool``, ``int``,
``float`` (always as a 64-bit double), ``str``, ``bytes``, lists and tuples
(definite arrays), dicts (definite maps), ``datetime`` (tag 1 with the epoch
seconds as a double, naive ones taken as UTC) and ``Tagged``.

No third-party package is needed, so the pinned requirements stay as they are.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

_BREAK = 0xFF
MAX_DEPTH = 64


class CBORDecodeError(ValueError):
    """The bytes are not one well-formed CBOR data item."""


@dataclass(frozen=True)
class Tagged:
    tag: int
    value: Any


def epoch_seconds(value: datetime) -> float:
    """Seconds since the epoch; a naive ``datetime`` is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def from_epoch_seconds(seconds: float) -> datetime:
    if not math.isfinite(seconds):
        raise CBORDecodeError(f"timestamp {seconds!r} is not finite")
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError) as err:
        raise CBORDecodeError(f"timestamp {seconds!r} is out of range") from err


# ---------------------------------------------------------------------------
# Decoding


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise CBORDecodeError(f"truncated CBOR: wanted {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def argument(self, info: int) -> int:
        if info < 24:
            return info
        if info == 24:
            return self.byte()
        if info == 25:
            return int.from_bytes(self.take(2), "big")
        if info == 26:
            return int.from_bytes(self.take(4), "big")
        if info == 27:
            return int.from_bytes(self.take(8), "big")
        raise CBORDecodeError(f"reserved additional information {info} at offset {self.pos - 1}")

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CBORDecodeError("CBOR nested too deeply")
        start = self.pos
        initial = self.byte()
        major, info = initial >> 5, initial & 0x1F
        if major == 0:
            return self.argument(info)
        if major == 1:
            return -1 - self.argument(info)
        if major in (2, 3):
            raw = self.string(major, info)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise CBORDecodeError(f"text string at offset {start} is not UTF-8") from err
        if major == 4:
            if info == 31:
                items = []
                while self.peek() != _BREAK:
                    items.append(self.item(depth + 1))
                self.pos += 1
                return items
            return [self.item(depth + 1) for _ in range(self.argument(info))]
        if major == 5:
            result: dict[Any, Any] = {}
            if info == 31:
                while self.peek() != _BREAK:
                    self.pair(result, depth)
                self.pos += 1
            else:
                for _ in range(self.argument(info)):
                    self.pair(result, depth)
            return result
        if major == 6:
            tag = self.argument(info)
            value = self.item(depth + 1)
            if tag == 1:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise CBORDecodeError(f"tag 1 at offset {start} does not hold a number")
                return from_epoch_seconds(value)
            if tag in (2, 3) and isinstance(value, bytes):
                number = int.from_bytes(value, "big")
                return number if tag == 2 else -1 - number
            return Tagged(tag, value)
        # major 7
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            raise CBORDecodeError(f"unexpected break at offset {start}")
        raise CBORDecodeError(f"unsupported simple value {info} at offset {start}")

    def pair(self, result: dict[Any, Any], depth: int) -> None:
        if self.peek() is None:
            raise CBORDecodeError("truncated CBOR map")
        key = self.item(depth + 1)
        if isinstance(key, (list, dict)):
            raise CBORDecodeError("a CBOR map key is an array or a map")
        result[key] = self.item(depth + 1)

    def string(self, major: int, info: int) -> bytes:
        if info != 31:
            return self.take(self.argument(info))
        chunks = []
        while True:
            if self.peek() == _BREAK:
                self.pos += 1
                return b"".join(chunks)
            initial = self.byte()
            if initial >> 5 != major or initial & 0x1F == 31:
                raise CBORDecodeError("bad chunk in an indefinite-length string")
            chunks.append(self.take(self.argument(initial & 0x1F)))


def loads(data: bytes) -> Any:
    """Decodes exactly one CBOR data item (trailing bytes are an error)."""
    reader = _Reader(bytes(data))
    value = reader.item(0)
    if reader.pos != len(reader.data):
        raise CBORDecodeError(f"{len(reader.data) - reader.pos} trailing bytes after the CBOR data item")
    return value


# ---------------------------------------------------------------------------
# Encoding


def _head(major: int, argument: int) -> bytes:
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            return bytes([major << 5 | info]) + argument.to_bytes(size, "big")
    raise ValueError(f"{argument} does not fit in a CBOR head")


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply for CBOR")
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        if 0 <= value < 1 << 64:
            out += _head(0, value)
        elif -(1 << 64) <= value < 0:
            out += _head(1, -1 - value)
        else:
            magnitude = value if value >= 0 else -1 - value
            raw = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
            out += _head(6, 2 if value >= 0 else 3) + _head(2, len(raw)) + raw
    elif isinstance(value, float):
        out += b"\xfb" + struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += _head(3, len(raw)) + raw
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += _head(2, len(raw)) + raw
    elif isinstance(value, datetime):
        out += _head(6, 1) + b"\xfb" + struct.pack(">d", epoch_seconds(value))
    elif isinstance(value, Tagged):
        out += _head(6, value.tag)
        _encode(value.value, out, depth + 1)
    elif isinstance(value, (list, tuple)):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out += _head(5, len(value))
        for key, item in value.items():
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as CBOR")


def dumps(value: Any) -> bytes:
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)
