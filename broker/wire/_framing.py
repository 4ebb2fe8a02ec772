"""Kafka's request frames as pure functions of bytes: the size prefix and the request header.

A request is ``int32 size`` then ``size`` bytes: ``int16 api_key, int16 api_version,
int32 correlation_id, nullable string client_id`` (header v1), then, for flexible
versions (header v2), tagged fields; then the body.  The client id stays a classic
int16-length string in v2 too (Kafka's RequestHeader.json: flexibleVersions none), which
is why the header is read here rather than by the schema library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_HEAD = struct.Struct(">hhih")
_SIZE = struct.Struct(">i")


class FrameError(ValueError):
    """A frame that cannot be a Kafka request: answered by closing the connection."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def read_size(prefix: bytes, max_request_bytes: int) -> int:
    """The frame size from its 4-byte prefix; FrameError if negative or over the limit."""
    (size,) = _SIZE.unpack(prefix)
    if size < 0:
        raise FrameError(f"negative frame size {size}")
    if size > max_request_bytes:
        raise FrameError(f"request of {size} bytes is larger than max_request_bytes={max_request_bytes}")
    if size < _HEAD.size:
        raise FrameError(f"frame of {size} bytes is shorter than a request header")
    return size


def read_header(frame: bytes) -> tuple[RequestHeader, int]:
    """The v1 part of the header and the offset after it (tagged fields not yet skipped)."""
    if len(frame) < _HEAD.size:
        raise FrameError(f"frame of {len(frame)} bytes is shorter than a request header")
    api_key, version, corr, n = _HEAD.unpack_from(frame, 0)
    pos = _HEAD.size
    client_id: str | None = None
    if n >= 0:
        if pos + n > len(frame):
            raise FrameError(f"client_id of {n} bytes runs past the frame's end")
        try:
            client_id = frame[pos:pos + n].decode()
        except UnicodeDecodeError:
            raise FrameError("client_id is not UTF-8") from None
        pos += n
    elif n != -1:
        raise FrameError(f"client_id length {n}")
    return RequestHeader(api_key, version, corr, client_id), pos


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """An unsigned varint at ``pos``: (value, position after it)."""
    shift = value = 0
    while True:
        if pos >= len(buf):
            raise FrameError("varint runs past the frame's end")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise FrameError("varint longer than 5 bytes")


def skip_tagged_fields(buf: bytes, pos: int) -> int:
    """The position after a tagged-field section (the header's: none are defined)."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise FrameError("tagged field runs past the frame's end")
    return pos


def frame(correlation_id: int, body: bytes, *, flexible_header: bool) -> bytes:
    """A response frame: size, correlation id, (an empty tag section for header v1), body."""
    head = struct.pack(">i", correlation_id) + (b"\x00" if flexible_header else b"")
    return _SIZE.pack(len(head) + len(body)) + head + body
