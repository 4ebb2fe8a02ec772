"""Turning a producer's key or value into the bytes the log stores.

Shared by ``KafkaProducer.send`` and ``LogTransaction.send``, which apply the
same serializers and must refuse the same things with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import SerializationError

Serializer = Callable[[Any], bytes]


def serialize(obj: Any, serializer: Serializer | None, what: str, topic: str) -> bytes | None:
    """``obj`` as bytes (None stays None); ``what`` is "key" or "value", named in errors.

    Raises ``SerializationError`` if the serializer fails or yields something that
    is not bytes, or if there is no serializer and ``obj`` is not bytes.
    """
    if obj is None:
        return None
    if serializer is None and type(obj) is bytes:
        return obj
    if serializer is not None:
        try:
            obj = serializer(obj)
        except Exception as exc:
            raise SerializationError(
                f"{what}_serializer failed for a {what} of topic {topic!r}: {type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, bytearray | memoryview):
        return bytes(obj)
    raise SerializationError(
        f"{what} for topic {topic!r} is {type(obj).__name__}, not bytes: pass "
        f"{what}_serializer= (e.g. lambda v: json.dumps(v).encode()) or send bytes"
    )
