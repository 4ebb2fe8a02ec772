"""Splitting a byte stream into frames: by terminator or by fixed length (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LineFraming:
    """Frames end with `terminator`; a trailing CR is stripped when `strip_cr`.

    A line longer than `max_length` bytes is cut and emitted as it is, so a
    stream with no terminators still reaches the codec (and its dead letters)
    instead of growing a buffer without bound.
    """

    terminator: bytes = b"\n"
    strip_cr: bool = True
    max_length: int = 4096

    def __post_init__(self) -> None:
        if not self.terminator:
            raise ValueError("line terminator must not be empty, got b''")
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1 byte, got {self.max_length!r}")


@dataclass(frozen=True)
class FixedLengthFraming:
    """Every frame is exactly `length` bytes (binary protocols without delimiters)."""

    length: int

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"frame length must be >= 1 byte, got {self.length!r}")


Framing = LineFraming | FixedLengthFraming


class Framer:
    """Accumulates bytes and returns whole frames; keeps the partial tail."""

    def __init__(self, framing: Framing) -> None:
        self._framing = framing
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return the frames it completed (possibly none)."""
        self._buf += data
        f = self._framing
        frames: list[bytes] = []
        if isinstance(f, FixedLengthFraming):
            n = f.length
            whole = len(self._buf) - len(self._buf) % n
            frames = [bytes(self._buf[i : i + n]) for i in range(0, whole, n)]
            del self._buf[:whole]
            return frames
        term, start = f.terminator, 0
        while True:
            end = self._buf.find(term, start)
            if end < 0:
                break
            frames.append(self._line(self._buf[start:end], f.strip_cr))
            start = end + len(term)
        del self._buf[:start]
        while len(self._buf) >= f.max_length:
            frames.append(bytes(self._buf[: f.max_length]))
            del self._buf[: f.max_length]
        return frames

    def flush(self) -> bytes:
        """Return and forget the partial frame (b"" if none)."""
        tail = bytes(self._buf)
        self._buf.clear()
        return tail

    @staticmethod
    def _line(raw: bytearray, strip_cr: bool) -> bytes:
        if strip_cr and raw.endswith(b"\r"):
            raw = raw[:-1]
        return bytes(raw)
