"""A warning said at most once a minute, with how many were held back.

A log kept full drops or rejects on almost every commit; a line each time is
thousands of lines an hour into journald, which is more SD-card wear than the
records themselves.  The counts are in the ledger and ``describe_log()``.
"""

from __future__ import annotations

import logging
import threading
import time


class QuietWarning:
    """``warn(fmt, *args)``: logged now if the last was ``interval_s`` ago, else counted."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._last = float("-inf")
        self._held = 0
        self._lock = threading.Lock()

    def warn(self, fmt: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval_s:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        if held:
            fmt += " (and %d more like it in the last minute, not logged)"
            args += (held,)
        self._log.warning(fmt, *args)
