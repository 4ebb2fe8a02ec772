"""``Record``: what flows between processors, and how values become bytes and back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Record", "decode_value", "encode_value"]


@dataclass(slots=True)
class Record:
    """One record inside a topology.

    ``key``: bytes or None.  ``value``: the JSON-decoded event value when the
    stored bytes are JSON, else the bytes themselves (None for a tombstone).
    ``timestamp_ms``: event time in ms since the epoch; windows and watermarks
    use it, and output records keep it.  ``headers``: (name, bytes or None) pairs,
    carried to the output.  ``topic``/``partition``/``offset``: where the
    record was read, for a record straight from a source topic; None for one
    a processor made (``with_value``, ``with_key``, a ``KeyedStep``).
    """

    key: bytes | None
    value: Any
    timestamp_ms: int
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def with_value(self, value: Any) -> Record:
        """A derived record: same key, timestamp and headers, this value."""
        return Record(self.key, value, self.timestamp_ms, list(self.headers))

    def with_key(self, key: bytes | None) -> Record:
        """A derived record: same value, timestamp and headers, this key."""
        return Record(key, self.value, self.timestamp_ms, list(self.headers))

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None


_loads = json.loads
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def decode_value(raw: bytes | None) -> Any:
    """Stored bytes as a processor sees them: JSON when they parse as JSON, else the bytes."""
    if raw is None:
        return None
    try:
        # str first: json.loads(bytes) spends time guessing an encoding; JSON is UTF-8.
        return _loads(raw.decode())
    except ValueError:  # UnicodeDecodeError included: not JSON, so the bytes themselves
        return raw


def encode_value(value: Any) -> bytes | None:
    """A processor's value as stored bytes: bytes as they are, None as None, else compact JSON.

    Raises ``TypeError`` or ``ValueError`` for a value JSON cannot hold (the
    record then goes to the dead-letter topic like any processor failure).
    """
    if value is None:
        return None
    if type(value) is bytes:
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return _dumps(value).encode()
