"""What a reading must be before it joins a commit: the per-device event check.

A reading that reaches the log's group commit and is refused there takes the
commit's other records with it, and its device's message comes back for ever
(MQTT redelivers what was not acknowledged). So the sink checks each reading
first, cheaply, and refuses it with ``ReadingRejected`` (the adapter then
dead-letters the frame and acknowledges it):

- every quantity within its physical range (``devices.RANGES``; per device,
  ``devices[i].ranges`` replaces bounds), specials as null with a status;
- the key (device id) and header text encodable as UTF-8, the value as JSON;
- a device-stamped time an integer not before ``devices[i].earliest_time``
  (2000-01-01 unless configured) and not more than a day ahead of the box's
  clock when that clock is trusted (synced or GPS). Times the box stamps itself
  are not checked: a box without an RTC starts in 1970, and its readings are
  still readings (the ``clock`` header says how far to trust them).

``device_check_settings`` reads the two per-device keys for ``edge/_config.py``.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Mapping
from typing import Any

from devices import (
    EARLIEST_TIMESTAMP_MS,
    MAX_AHEAD_MS,
    RANGES,
    Reading,
    ReadingRejected,
    checked_event_value,
    with_overrides,
)

__all__ = ["EventCheck", "device_check_settings"]


class EventCheck:
    """One device's check of its readings; ``value`` and ``timestamp`` raise ``ReadingRejected``."""

    __slots__ = ("earliest_ms", "max_ahead_ms", "ranges")

    def __init__(self, overrides: Mapping[str, tuple[float, float]] | None = None,
                 earliest_ms: int = EARLIEST_TIMESTAMP_MS, max_ahead_ms: int = MAX_AHEAD_MS) -> None:
        self.ranges = with_overrides(overrides or {})
        self.earliest_ms = earliest_ms
        self.max_ahead_ms = max_ahead_ms

    def value(self, reading: Reading) -> dict[str, Any]:
        """The event's JSON object, every quantity within its range."""
        return checked_event_value(reading, self.ranges)

    def earliest(self, reading: Reading, ts: object) -> None:
        """Refuse a device-stamped time that is not an int ms at or after ``earliest_ms``."""
        if type(ts) is not int or ts < self.earliest_ms:
            raise ReadingRejected(
                f"{reading.device_id}: timestamp {ts!r} ms is before {_iso(self.earliest_ms)} "
                "(the device's clock is not set? devices[].earliest_time allows older times)",
                reading.schema)

    def ahead(self, reading: Reading, ts: int, now_ms: int) -> None:
        """Refuse a device-stamped time more than ``max_ahead_ms`` after ``now_ms`` (trusted)."""
        if ts > now_ms + self.max_ahead_ms:
            raise ReadingRejected(
                f"{reading.device_id}: timestamp {ts!r} ms ({_iso(ts)}) is more than "
                f"{self.max_ahead_ms // 3_600_000} h ahead of the box's trusted clock "
                f"({_iso(now_ms)})", reading.schema)


def _iso(ms: int) -> str:
    try:
        return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return "beyond the calendar"


def device_check_settings(raw: Mapping[str, Any], path: str,
                          bad: Callable[..., None]) -> tuple[dict[str, tuple[float, float]], int]:
    """``ranges`` and ``earliest_time`` of one ``[[devices]]`` table.

    ``bad(key_path, expected, got)`` is called for each problem (``edge/_config.py``'s
    collector). ``ranges = { temperature_c = [-55, 125] }`` replaces a quantity's bounds
    for this device; ``earliest_time`` is a TOML date, an offset date-time or ms since
    the epoch.
    """
    overrides: dict[str, tuple[float, float]] = {}
    ranges = raw.get("ranges", {})
    if not isinstance(ranges, dict):
        bad(f"{path}.ranges", "a table of quantity = [low, high]", ranges)
        ranges = {}
    for name, bounds in ranges.items():
        key = f"{path}.ranges.{name}"
        if name not in RANGES:
            bad(key, "a quantity of the event schema: " + ", ".join(sorted(RANGES)), name)
            continue
        if not (isinstance(bounds, list) and len(bounds) == 2
                and all(isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b)
                        for b in bounds) and bounds[0] < bounds[1]):
            bad(key, f"[low, high], two numbers with low < high (in {RANGES[name].unit or 'its unit'})",
                bounds)
            continue
        overrides[name] = (bounds[0], bounds[1])
    earliest = EARLIEST_TIMESTAMP_MS
    if "earliest_time" in raw:
        v = raw["earliest_time"]
        ms = _ms_of(v)
        if ms is None:
            bad(f"{path}.earliest_time", "a date (1990-01-01), an offset date-time "
                "(1990-01-01T00:00:00Z) or ms since 1970, not before 1970", v)
        else:
            earliest = ms
    return overrides, earliest


def _ms_of(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            return None  # a local time of which zone? STYLE: never naive
        v = int(v.timestamp() * 1000)
    elif isinstance(v, _dt.date):
        v = int(_dt.datetime(v.year, v.month, v.day, tzinfo=_dt.UTC).timestamp() * 1000)
    if isinstance(v, int):  # not before 1970: a Kafka record's time is not negative
        return v if 0 <= v < 2**63 else None
    return None
