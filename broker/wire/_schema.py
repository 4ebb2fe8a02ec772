"""Kafka's message schemas through kio (generated from Kafka 3.9's JSON message definitions).

Every request and response class of every version comes from kio; this module only
looks them up by (api_key, version), reads a request body and writes a response body.
``build`` makes a message of any version from one set of keyword arguments, passing only
the fields that version has, so a handler describes its answer once for all versions.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import struct
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from ._framing import FrameError, skip_tagged_fields

_FRAME_HEAD = struct.Struct(">ii")  # size, correlation id
_SIZE = struct.Struct(">i")


@functools.cache
def request_class(api_key: int, version: int) -> Any:
    return load_request_schema(api_key, version)


@functools.cache
def response_class(api_key: int, version: int) -> Any:
    return load_response_schema(api_key, version)


def nested(cls: Any, name: str) -> Any:
    """A nested class of ``cls``'s module by name (MetadataResponseTopic beside MetadataResponse)."""
    import sys

    return getattr(sys.modules[cls.__module__], name)


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def build(cls: Any, **values: Any) -> Any:
    """``cls(**values)`` with the values of fields ``cls`` does not have left out."""
    names = _field_names(cls)
    return cls(**{k: v for k, v in values.items() if k in names})


def read_request(api_key: int, version: int, frame: bytes, pos: int) -> Any:
    """The request body after the header's v1 part at ``pos``; FrameError if malformed."""
    cls = request_class(api_key, version)
    if cls.__flexible__:
        pos = skip_tagged_fields(frame, pos)
    try:
        body, size = entity_reader(cls)(frame, pos)
    except FrameError:
        raise
    except Exception as exc:  # kio raises what its readers hit: struct.error, ValueError, IndexError...
        raise FrameError(f"malformed {cls.__name__} v{version}: {type(exc).__name__}: {exc}") from exc
    if pos + size != len(frame):
        raise FrameError(f"{cls.__name__} v{version} ends {len(frame) - pos - size} bytes before the frame does")
    return body


def response_frame(correlation_id: int, response: Any) -> bytes:
    """The whole response frame (size, header, body), written into one buffer.

    Framing a body written on its own copied it once more (a fetch's megabyte each time);
    BytesIO.getvalue() hands its buffer over without a copy.
    """
    buf = io.BytesIO()
    cls = type(response)
    flexible = cls.__header_schema__.__version__ >= 1
    buf.write(_FRAME_HEAD.pack(0, correlation_id))
    if flexible:
        buf.write(b"\x00")  # the header's empty tagged-field section
    entity_writer(cls)(buf, response)
    size = buf.tell() - 4
    buf.seek(0)
    buf.write(_SIZE.pack(size))
    return buf.getvalue()


def write_response(response: Any) -> tuple[bytes, bool]:
    """The response body and whether its header is v1 (with tagged fields)."""
    buf = io.BytesIO()
    cls = type(response)
    entity_writer(cls)(buf, response)
    return buf.getvalue(), cls.__header_schema__.__version__ >= 1
