"""Events per second over a sliding window: what `edge status` shows per device."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable


class EventRate:
    """Counts events in one-second buckets and reports events/s over the last ``window_s``.

    Until the window has filled (just after a start) the rate is over the time
    since the start, so a device that just came up is not shown slower than it is.
    ``now`` is a monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, window_s: float = 60.0, now: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.window_s = window_s
        self._now = now
        self._start = now()
        self._buckets: collections.deque[list[int]] = collections.deque()  # [second, count]
        self._total = 0

    def add(self, n: int = 1) -> None:
        """Count ``n`` events now."""
        sec = int(self._now())
        if self._buckets and self._buckets[-1][0] == sec:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([sec, n])
            self._prune(sec)
        self._total += n

    def _prune(self, now_s: float) -> None:
        while self._buckets and self._buckets[0][0] <= now_s - self.window_s:
            self._total -= self._buckets.popleft()[1]

    def count(self) -> int:
        """Events in the window."""
        self._prune(self._now())
        return self._total

    def span_s(self) -> float:
        """The seconds the rate is taken over: the window, or the time since the start."""
        return min(self.window_s, max(1.0, self._now() - self._start))

    def per_second(self) -> float:
        """Events per second over the window."""
        return self.count() / self.span_s()
