"""What every codec and MQTT convention looks like, and the guard that keeps
anything but ``DecodeError`` from escaping a decoder."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from devices._errors import DecodeError
from devices._reading import Arrival, Reading

__all__ = ["Codec", "Convention", "guard_decode"]


@runtime_checkable
class Codec(Protocol):
    """Frames of one serial/file format in, readings out, and back.

    ``decode`` may return several readings or none (a stateful codec such as
    NMEA returns a fix only when an epoch is complete) and raises only
    ``DecodeError``. ``arrival`` is when the frame arrived, an argument like the
    frame: a codec that holds frames back (NMEA) keeps it with them; the others
    ignore it. ``encode`` gives the bytes of one frame (NMEA: the lines
    of one epoch) including any line ending the format uses.
    """

    name: str

    def decode(self, frame: bytes, device_id: str,
               arrival: Arrival | None = None) -> list[Reading]: ...

    def encode(self, reading: Reading) -> bytes: ...


@runtime_checkable
class Convention(Protocol):
    """An MQTT payload convention: (topic, payload) in, readings out, and back."""

    name: str

    def decode(self, topic: str, payload: bytes) -> list[Reading]: ...

    def encode(self, reading: Reading) -> tuple[str, bytes]: ...


# A decoder returns one reading (a GATT or w1 value) or a list (an MQTT payload).
F = TypeVar("F", bound=Callable[..., list[Reading] | Reading])


def guard_decode(codec: str, raw_arg: int = 0) -> Callable[[F], F]:
    """Wrap a decoder so any stray exception becomes a ``DecodeError``.

    Our decoders raise ``DecodeError`` themselves with a precise reason; this
    is the last line, so a bug meeting odd input still dead-letters the frame
    instead of killing the adapter. ``raw_arg`` is the index of the bytes
    argument (not counting ``self``).
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except DecodeError:
                raise
            except Exception as exc:  # translating is the point
                raw = _find_raw(args, raw_arg)
                raise DecodeError(raw, f"unexpected {type(exc).__name__}: {exc}", codec) from exc

        return inner  # type: ignore[return-value]  # it takes and returns what fn does

    return wrap


def _find_raw(args: tuple, index: int) -> bytes:
    # Methods get self first; prefer the first bytes-like argument (an MQTT
    # decoder's payload, not its topic), else the first str.
    for a in args[index:]:
        if isinstance(a, bytes | bytearray | memoryview):
            return bytes(a)
    for a in args[index:]:
        if isinstance(a, str):
            return a.encode("utf-8", "surrogateescape")
    return b""
