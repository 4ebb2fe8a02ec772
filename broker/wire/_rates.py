"""Requests per second by API over a sliding window (the listener's /health and status).

The counters say how much was served since the start; a rate says what the clients do
now, which is what someone looking at a busy box wants.  One-second buckets per API,
so the cost is a few integers per API whatever the load.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

WINDOW_S = 10.0  # short enough to show a client that just stopped, long enough to smooth bursts


class RatesByKey:
    """Events per second for each key over the last ``window_s`` seconds.

    Until the window has filled (just after a start) a rate is over the time since the
    start, so a listener that just came up is not shown slower than it is.  ``now`` is a
    monotonic clock in seconds (injectable for tests).  Not thread-safe: the caller locks.
    """

    def __init__(self, window_s: float = WINDOW_S, now: Callable[[], float] = time.monotonic) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s: expected seconds > 0, got {window_s!r}")
        self.window_s = window_s
        self._now = now
        self._start = now()
        self._buckets: dict[str, collections.deque[list[int]]] = {}  # key -> [second, count]

    def add(self, key: str, n: int = 1) -> None:
        sec = int(self._now())
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = collections.deque()
        if b and b[-1][0] == sec:
            b[-1][1] += n
        else:
            b.append([sec, n])
            while b[0][0] <= sec - self.window_s:
                b.popleft()

    def per_second(self) -> dict[str, float]:
        """Each key's events per second over the window (keys silent for a window are left out)."""
        now = self._now()
        span = min(self.window_s, max(1.0, now - self._start))
        out: dict[str, float] = {}
        for key, b in list(self._buckets.items()):
            while b and b[0][0] <= now - self.window_s:
                b.popleft()
            if not b:
                del self._buckets[key]
                continue
            out[key] = round(sum(n for _, n in b) / span, 2)
        return out
