"""How long the uplink waits before it connects again.

Exponential, from ``backoff_initial_s`` to ``backoff_max_s``. It starts again from the
initial delay only after the connection did some good: records went up, or it stayed
up for ``backoff_max_s``. Resetting on every connect that works made a cluster that
takes the connection and then fails the same request each time (it refused a record
and the whole transaction with it) cost a reconnect four times a second, for ever.
"""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    """``failed(progress, online_s)`` after each failed attempt returns the wait before the
    next: ``progress`` whether records went up since the last connect, ``online_s`` how
    long that connection was up (None: it never came up)."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"Backoff needs 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self._initial = initial_s
        self._max = max_s
        self._next = initial_s

    def failed(self, progress: bool = False, online_s: float | None = None) -> float:
        if progress or (online_s is not None and online_s >= self._max):
            self._next = self._initial
        delay = self._next
        self._next = min(self._next * 2, self._max)
        return delay
