"""Bytes the service writes to disk: the figure an SD card wears out by.

``/proc/self/io``'s ``write_bytes`` counts what this process caused to be written to
the storage layer (the log's WAL frames, checkpoints, fsyncs of the notify file), not
what it asked ``write()`` for. Sampled by the housekeeping pass, it gives a total, the
bytes per record over a sliding window, and the volume a day of the same load would
write, to set beside the card's rated endurance (TBW).
"""

from __future__ import annotations

import collections
from typing import Any

DAY_S = 86_400
WINDOW_S = 600.0  # checkpoints come in bursts: a minute at a few events/s swings widely


def process_write_bytes(path: str = "/proc/self/io") -> int | None:
    """This process's ``write_bytes`` so far, or None where the kernel does not say
    (not Linux, or a kernel without task I/O accounting)."""
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class DiskWrites:
    """Samples of (monotonic seconds, bytes written, records written) over ``window_s``.

    The projection is the bytes written over the window times 86,400 / the window,
    where the window is the last ``window_s`` seconds, or the time since the first
    sample while fewer have passed. Time is an argument: tests pass their own.
    """

    def __init__(self, window_s: float = WINDOW_S) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.window_s = window_s
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()
        self.total = 0  # bytes written by this process, as of the last sample

    def sample(self, now_s: float, written: int, records: int) -> int:
        """Record a sample; returns the bytes written since the previous one (for a counter)."""
        delta = written - self.total if self._samples else written
        self.total = written
        self._samples.append((now_s, written, records))
        # Keep the newest sample at or before the window's start: it is the window's base.
        while len(self._samples) > 1 and self._samples[1][0] <= now_s - self.window_s:
            self._samples.popleft()
        return max(0, delta)

    def describe(self) -> dict[str, Any] | None:
        """The figures /health shows, or None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, b0, r0), (t1, b1, r1) = self._samples[0], self._samples[-1]
        span = t1 - t0
        if span <= 0:
            return None
        written, records = b1 - b0, r1 - r0
        return {
            "bytes_written": b1,
            "window_s": round(span, 1),
            "bytes_written_window": written,
            "records_window": records,
            "bytes_per_record": round(written / records) if records else None,
            "projected_bytes_per_day": round(written * DAY_S / span),
        }
