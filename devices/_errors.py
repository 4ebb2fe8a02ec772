"""Errors raised by device codecs and transports.

One root, leaves chosen by how a caller reacts; retry loops read
``retriable`` instead of testing ``isinstance`` against a list::

    DeviceError                 root of everything devices/ raises on purpose
    ├── DecodeError             a frame does not decode; send it to the dead
    │                           letter sink with its raw bytes (retriable=False)
    ├── EncodeError             a reading cannot be put into a format (a value
    │                           out of the format's range, a missing field)
    ├── CodecConfigError        a codec or convention was configured wrongly
    │                           (bad regex, unknown codec name)
    └── TransportError          a port, socket or file failed; reconnecting
                                may help (retriable=True). Transports add
                                their own leaves under it in their module.
"""

from __future__ import annotations

__all__ = [
    "CodecConfigError",
    "DecodeError",
    "DeviceError",
    "EncodeError",
    "TransportError",
]


class DeviceError(Exception):
    """Root of the errors that devices/ raises on purpose."""

    retriable: bool = False


class DecodeError(DeviceError):
    """A frame could not be decoded.

    Carries the exact bytes that arrived (``raw``), a reason a person can act
    on, and the name of the codec that refused it, so the adapter can put all
    three on the dead-letter topic.
    """

    retriable = False

    def __init__(self, raw: bytes, reason: str, codec: str) -> None:
        self.raw = bytes(raw)
        self.reason = reason
        self.codec = codec
        super().__init__(f"{codec}: {reason} (raw {_preview(self.raw)})")

    def __reduce__(self):  # keep it picklable across process pools
        return (type(self), (self.raw, self.reason, self.codec))


class EncodeError(DeviceError, ValueError):
    """A reading cannot be encoded in the requested format."""


class CodecConfigError(DeviceError, ValueError):
    """A codec or MQTT convention was configured with a bad value."""


class TransportError(DeviceError):
    """A transport failed in a way that reconnecting may cure."""

    retriable = True


def _preview(raw: bytes, limit: int = 48) -> str:
    """Show the start of a frame for a log line, never megabytes of it."""
    if len(raw) <= limit:
        return repr(raw)
    return f"{raw[:limit]!r}... ({len(raw)} bytes)"
