"""The physical range of every quantity of the event schema, and the check against it.

``RANGES`` is the single source: ``docs/ranges.md`` is rendered from it
(``ranges_markdown()``, and a test keeps the two equal). A bound is what the
world (or the quantity's definition) allows, not what a typical sensor reads: a
device's own measuring range is narrower and can be configured per device
(``edge.toml``: ``devices[i].ranges``), which replaces the bounds for that device.

``checked_event_value`` turns a reading's values into the event's JSON object in
one pass and refuses what an event must not carry: a number outside its range, a
non-number (``true``, ``""``, an object) where a quantity is expected, a NaN or
infinity anywhere, a reserved IEEE-11073 code. It raises ``ReadingRejected`` (a
``DecodeError``), so the frame goes to the dead-letter topic with a reason that
names the field and the range. A device's legitimate special value (GATT NaN "no
reading", NRes, +INF/-INF "out of the device's range") is kept as an explicit
``null`` with its status beside it: ``"systolic_mmhg": null,
"systolic_mmhg_status": "NaN"``.

Pure: no I/O, no clock. Quantities a codec makes up that are not in the table are
the device's own fields: they pass when JSON can carry them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from devices._errors import ReadingRejected
from devices._reading import Reading, SpecialValue

__all__ = [
    "EARLIEST_TIMESTAMP_MS",
    "MAX_AHEAD_MS",
    "RANGES",
    "Range",
    "check_reading",
    "checked_event_value",
    "ranges_markdown",
    "with_overrides",
]


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds of one quantity, its unit, and why the bounds are where they are."""

    low: float
    high: float
    unit: str
    why: str

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"Range.{name} must be a finite number, got {v!r}")
        if not self.low < self.high:
            raise ValueError(f"Range: low must be below high, got {self.low!r}..{self.high!r}")


_F_PER_C = 9 / 5
_KPA_PER_MMHG = 101.325 / 760


def _f(c: Range) -> Range:
    return Range(round(c.low * _F_PER_C + 32, 2), round(c.high * _F_PER_C + 32, 2), "°F",
                 "temperature_c's range in °F")


def _kpa(mmhg: Range) -> Range:
    return Range(mmhg.low, round(mmhg.high * _KPA_PER_MMHG, 2), "kPa",
                 "the mmHg range in kPa")


_TEMPERATURE_C = Range(-273.15, 2000.0, "°C", "absolute zero; above any thermocouple's reach")
_PRESSURE_MMHG = Range(0.0, 400.0, "mmHg", "a cuff pressure is not negative; above any cuff's range")

#: Quantity (event field) -> its range. The single source of the ranges and their doc.
RANGES: Mapping[str, Range] = MappingProxyType({
    # gps
    "lat": Range(-90.0, 90.0, "degrees", "latitude"),
    "lon": Range(-180.0, 180.0, "degrees", "longitude"),
    "alt_m": Range(-1000.0, 100_000.0, "m", "below the Dead Sea shore; above a balloon's ceiling"),
    "geoid_separation_m": Range(-200.0, 200.0, "m", "the geoid lies within -106..+85 m of WGS84"),
    "speed_mps": Range(0.0, 600.0, "m/s", "a speed is not negative; above a receiver's 515 m/s limit"),
    "course_deg": Range(0.0, 360.0, "degrees", "an angle from true north"),
    "accuracy_m": Range(0.0, 1_000_000.0, "m", "an accuracy radius is not negative"),
    "hdop": Range(0.0, 100.0, "", "a dilution of precision is positive; receivers cap it at 99.99"),
    "pdop": Range(0.0, 100.0, "", "as hdop"),
    "vdop": Range(0.0, 100.0, "", "as hdop"),
    "satellites_used": Range(0, 255, "", "a count, at most what four constellations fly"),
    "satellites_in_view": Range(0, 1000, "", "a count, per signal and constellation summed"),
    "fix_quality": Range(0, 8, "", "the GGA quality codes 0..8"),
    # temperature
    "temperature_c": _TEMPERATURE_C,
    "temperature_f": _f(_TEMPERATURE_C),
    "humidity_pct": Range(0.0, 100.0, "%", "relative humidity"),
    "pressure_hpa": Range(0.0, 2000.0, "hPa", "not negative; twice sea level covers any weather"),
    "voltage_mv": Range(0.0, 60_000.0, "mV", "a battery or supply voltage"),
    "linkquality": Range(0, 255, "", "Zigbee LQI"),
    "battery_pct": Range(0.0, 100.0, "%", "a charge level"),
    # blood pressure
    "systolic_mmhg": _PRESSURE_MMHG,
    "diastolic_mmhg": _PRESSURE_MMHG,
    "mean_arterial_pressure_mmhg": _PRESSURE_MMHG,
    "systolic_kpa": _kpa(_PRESSURE_MMHG),
    "diastolic_kpa": _kpa(_PRESSURE_MMHG),
    "mean_arterial_pressure_kpa": _kpa(_PRESSURE_MMHG),
    "pulse_bpm": Range(0.0, 350.0, "beats/min", "a rate is not negative; above any human heart"),
    "user_id": Range(0, 255, "", "the 0x2A35 user index (255: unknown user)"),
})

#: Device-stamped event times before this are refused unless a device is configured
#: otherwise (``devices[i].earliest_time``): 2000-01-01T00:00:00Z, before any of our devices.
EARLIEST_TIMESTAMP_MS = 946_684_800_000
#: Device-stamped event times more than this ahead of a trusted clock are refused (a day:
#: a device's clock may be off by its time zone, not by more).
MAX_AHEAD_MS = 86_400_000

# Specials a device sends on purpose: kept as null with the status. RESERVED is no value.
_STATUS = {s: s.value for s in SpecialValue if s is not SpecialValue.RESERVED}


def with_overrides(overrides: Mapping[str, tuple[float, float]]) -> Mapping[str, Range]:
    """RANGES with some quantities' bounds replaced (a device's own measuring range).

    Raises ``ValueError`` for a quantity not in ``RANGES`` or bounds not low < high.
    """
    if not overrides:
        return RANGES
    table = dict(RANGES)
    for name, (low, high) in overrides.items():
        base = RANGES.get(name)
        if base is None:
            raise ValueError(f"{name!r} is not a quantity of the event schema "
                             f"(one of {', '.join(sorted(RANGES))})")
        table[name] = Range(low, high, base.unit, "configured for this device")
    return MappingProxyType(table)


def checked_event_value(reading: Reading, ranges: Mapping[str, Range] = RANGES) -> dict[str, Any]:
    """The event's JSON object for ``reading``, every quantity checked against ``ranges``.

    A fresh dict. Raises ``ReadingRejected`` naming the field, the value and the range.
    One pass over the values: this runs for every event.
    """
    out: dict[str, Any] = {}
    get = ranges.get
    for k, v in reading.values.items():
        t = type(v)
        r = get(k)
        if r is None:  # the device's own field: anything JSON carries, nothing non-finite
            if t is str or t is int or t is bool or v is None:
                out[k] = v
            elif t is float:
                if v - v != 0.0:  # NaN or ±inf, without a function call
                    raise _rejected(reading, f"field {k!r} is {v!r}, not a finite number")
                out[k] = v
            else:
                out[k] = _plain(v, k, reading, 0)
            continue
        if t is float or t is int:
            if not r.low <= v <= r.high:  # also refuses NaN
                raise _rejected(reading, f"{k} = {_show(v)} is outside {_span(r)} ({r.why})")
            out[k] = v
        elif v is None:
            out[k] = None
        elif t is SpecialValue and v in _STATUS:
            out[k] = None
            out[k + "_status"] = _STATUS[v]
        else:
            what = "a reserved IEEE-11073 code" if v is SpecialValue.RESERVED else _show(v)
            raise _rejected(reading, f"{k} is {what}, expected a number in {_span(r)}")
    return out


def check_reading(reading: Reading, ranges: Mapping[str, Range] = RANGES) -> Reading:
    """``reading`` itself if its values are within ``ranges``; raises ``ReadingRejected``."""
    checked_event_value(reading, ranges)
    return reading


_MAX_DEPTH = 32  # a device field nests a few levels (a status dict, a list of talkers)


def _plain(v: Any, k: str, reading: Reading, depth: int) -> Any:
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    if t is float:
        if v - v != 0.0:
            raise _rejected(reading, f"field {k!r} holds {v!r}, not a finite number")
        return v
    if isinstance(v, SpecialValue):
        return v.value
    if depth >= _MAX_DEPTH:
        raise _rejected(reading, f"field {k!r} nests deeper than {_MAX_DEPTH} levels")
    if isinstance(v, Mapping):
        out = {}
        for key, item in v.items():
            if not isinstance(key, str):
                raise _rejected(reading, f"field {k!r} has a key {key!r} that is not text")
            out[key] = _plain(item, k, reading, depth + 1)
        return out
    if isinstance(v, list | tuple):
        return [_plain(item, k, reading, depth + 1) for item in v]
    if isinstance(v, int | float | str):  # subclasses (an IntEnum, a numpy scalar)
        return _plain(_base(v), k, reading, depth)
    raise _rejected(reading, f"field {k!r} holds a value of type {t.__name__}, which JSON cannot carry")


def _base(v: Any) -> Any:
    for base in (bool, int, float, str):
        if isinstance(v, base):
            return base(v)
    return v


def _show(v: Any, limit: int = 40) -> str:
    """``repr(v)`` for a reason, cut short: a device may send a 400-digit number or a megabyte."""
    # A huge int by its magnitude: str() of one past 4,300 digits raises.
    text = repr(v) if not (type(v) is int and v.bit_length() > 128) \
        else f"{'-' if v < 0 else ''}~1e{int(v.bit_length() * 0.30103)}"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _span(r: Range) -> str:
    return f"{r.low:g}..{r.high:g}{' ' + r.unit if r.unit else ''}"


def _rejected(reading: Reading, reason: str) -> ReadingRejected:
    return ReadingRejected(f"{reading.device_id}: {reason}", reading.schema)


def ranges_markdown() -> str:
    """The range table as Markdown (``docs/ranges.md`` is this text)."""
    lines = [
        "| quantity | low | high | unit | why |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in RANGES.items():
        lines.append(f"| `{name}` | {r.low:g} | {r.high:g} | {r.unit} | {r.why} |")
    return "\n".join(lines) + "\n"
