"""Clocks: the wall clock for timestamps, and the log clock for retention.

A Raspberry Pi has no real-time clock: it boots in 1970 or at its last
shutdown time and jumps, maybe by years, when NTP or GPS sets it.  Kafka
measures retention age from record timestamps; here that would expire a
week's backlog the moment the clock jumps forward.  So age is measured on
the *log clock*: milliseconds of elapsed running time, persisted in the
database and advanced only by a monotonic clock.  It never jumps, and
time the box spends switched off does not age records (it errs on keeping).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the log needs of a clock; inject a ``ManualClock`` in tests."""

    def wall_ms(self) -> int:
        """Milliseconds since the epoch by the system clock (may jump)."""
        ...

    def monotonic_ms(self) -> int:
        """Milliseconds on a clock that never goes back or jumps."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told: for tests of time without sleeping."""

    def __init__(self, wall_ms: int = 1_700_000_000_000, monotonic_ms: int = 0) -> None:
        self._wall = wall_ms
        self._mono = monotonic_ms

    def wall_ms(self) -> int:
        return self._wall

    def monotonic_ms(self) -> int:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward, as real time passing does."""
        step = int(seconds * 1000)
        self._wall += step
        self._mono += step

    def set_wall(self, wall_ms: int) -> None:
        """Jump the wall clock only, as NTP does on a box without an RTC."""
        self._wall = wall_ms
