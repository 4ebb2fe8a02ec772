"""Fault injection on encoded frames (pure, driven by a seeded Random)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    """Probabilities per emitted reading (0..1) of each fault; `burst_size` readings per burst."""

    corrupt: float = 0.0  # break the checksum (NMEA) or a byte (other formats)
    garbage: float = 0.0  # a line of random bytes before the frame
    truncate: float = 0.0  # cut the frame short
    unplug: float = 0.0  # serial only: close the pty and open a new one
    burst: float = 0.0  # the next `burst_size` readings without pacing
    burst_size: int = 20

    def __post_init__(self) -> None:
        for name in ("corrupt", "garbage", "truncate", "unplug", "burst"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fault rate {name} must be within 0..1, got {p!r}")
        if self.burst_size < 1:
            raise ValueError(f"burst_size must be >= 1, got {self.burst_size!r}")


def corrupt_frame(frame: bytes, rng: random.Random) -> bytes:
    """Damage `frame` so that a decoder must refuse it, keeping its line ending."""
    body, end = _split_end(frame)
    if body.startswith(b"$") and b"*" in body:
        # Wrong checksum on every sentence of the epoch: the fix must not appear.
        lines = [ln for ln in frame.split(b"\n") if ln]
        out = []
        for ln in lines:
            ln = ln.rstrip(b"\r")
            star = ln.rfind(b"*")
            good = ln[star + 1 : star + 3]
            bad = b"00" if good != b"00" else b"FF"
            out.append(ln[: star + 1] + bad + b"\r\n")
        return b"".join(out)
    if not body:
        return b"\xff" + end
    i = rng.randrange(len(body))
    # 0xFF is neither ASCII text, hex, nor valid UTF-8: refused by every text codec.
    return body[:i] + b"\xff" + body[i + 1 :] + end


def truncate_frame(frame: bytes, rng: random.Random) -> bytes:
    """The first part of `frame` (at least one byte shorter), with its line ending kept."""
    body, end = _split_end(frame)
    if len(body) <= 1:
        return end
    return body[: rng.randrange(1, len(body))] + end


def garbage(rng: random.Random, newline: bool = True) -> bytes:
    """A burst of line noise: random non-newline bytes, then a newline if asked."""
    n = rng.randint(3, 40)
    noise = bytes(b for b in rng.randbytes(n) if b not in (0x0A, 0x0D)) or b"\x00"
    return noise + (b"\n" if newline else b"")


def _split_end(frame: bytes) -> tuple[bytes, bytes]:
    if frame.endswith(b"\r\n"):
        return frame[:-2], b"\r\n"
    if frame.endswith(b"\n"):
        return frame[:-1], b"\n"
    return frame, b""
