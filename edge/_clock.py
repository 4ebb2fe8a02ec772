"""Is the box's clock trustworthy? (A Raspberry Pi has no RTC: until NTP or GPS sets it, it is not.)"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time

#: Before this the clock cannot be right (a build of this software did not exist yet).
PLAUSIBLE_AFTER_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_TIME_ERROR = 5  # adjtimex's "clock not synchronized"
_SYNC_FLAG = "/run/systemd/timesync/synchronized"


class _Timex(ctypes.Structure):
    # Only the leading fields matter (modes); the rest is padding big enough for struct timex.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 256)]


def _kernel_synced() -> bool | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


def clock_status(now_ms: int | None = None) -> str:
    """"synced" (NTP says so), "unsynced" (the time cannot be right) or "unknown".

    Stamped on every event as the ``clock`` header, so a consumer can tell
    event times it can trust from those of a box that just booted without a clock.
    """
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if now_ms < PLAUSIBLE_AFTER_MS:
        return "unsynced"
    if os.path.exists(_SYNC_FLAG) or _kernel_synced():
        return "synced"
    return "unknown"
