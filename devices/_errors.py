"""Errors raised by device codecs and transports.

One root, leaves chosen by how a caller reacts; retry loops read
``retriable`` instead of testing ``isinstance`` against a list::

    DeviceError                 root of everything devices/ raises on purpose
    ├── DecodeError             a frame does not decode; send it to the dead
    │                           letter sink with its raw bytes (retriable=False)
    │   └── ReadingRejected     it decoded, but a reading is not an event: a value
    │                           outside its physical range, a time outside the
    │                           window, text that cannot be encoded. Raised by a
    │                           check or by a sink when called; the adapter puts
    │                           the frame's raw bytes on the dead letter
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
    "ReadingRejected",
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


class ReadingRejected(DecodeError):
    """A decoded reading that must not become an event; dead-letter its frame.

    Raised without the frame's bytes (a check sees only the reading): the adapter
    that catches it dead-letters the bytes of the item the reading came from.
    """

    def __init__(self, reason: str, codec: str, raw: bytes = b"") -> None:
        super().__init__(raw, reason, codec)

    def __reduce__(self):  # keep it picklable across process pools
        return (type(self), (self.reason, self.codec, self.raw))


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
