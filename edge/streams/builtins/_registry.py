"""The built-ins a config can name: ``{ builtin = "fever", topic = "alerts" }``.

Each entry turns a table of parameters into a function that attaches the
built-in after a stream. A *transform* (``normalise_units``, ``gps_track``)
changes the records, and the chain goes on with the changed ones; a *tap*
(``threshold``, ``fever``, ``blood_pressure``, ``geofence``, ``downsample``)
writes what it derives to its own ``topic`` and the chain goes on with the
records it was given.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge.streams import Stream
from edge.streams.builtins._blood_pressure import BloodPressureAlert
from edge.streams.builtins._downsample import Downsample
from edge.streams.builtins._geofence import Geofence
from edge.streams.builtins._gps import GpsTrack
from edge.streams.builtins._params import ParamError
from edge.streams.builtins._params import topic as check_topic
from edge.streams.builtins._threshold import ThresholdAlert, fever_alert
from edge.streams.builtins._units import NormaliseUnits

__all__ = ["BUILTINS", "Attach", "BuiltinSpec", "make_builtin"]

#: attach(stream, label) -> the stream the chain continues with
Attach = Callable[[Stream, str | None], Stream]


@dataclass(frozen=True)
class BuiltinSpec:
    """One built-in a config can name."""

    name: str
    kind: str  # "transform" or "tap"
    summary: str
    make: Callable[..., Attach]

    @property
    def params(self) -> list[str]:
        return list(inspect.signature(self.make).parameters)


def _tap(step: Any, topic: str) -> Attach:
    sink = check_topic("topic", topic)

    def attach(stream: Stream, label: str | None) -> Stream:
        stream.process(step, name=label).to(sink, name=f"{label}-sink" if label else None)
        return stream

    return attach


def _normalise_units(fields: Mapping[str, str] | None = None, auto: bool = True,
                     keep_original: bool = True, decimals: int = 3) -> Attach:
    normalise = NormaliseUnits(fields, auto=auto, keep_original=keep_original, decimals=decimals)
    return lambda stream, label: stream.map(lambda r: r.with_value(normalise(r.value)), name=label)


def _threshold(field: str, raise_at: float, clear_at: float, direction: str = "above",
               alert: str = "threshold", topic: str = "alerts") -> Attach:
    return _tap(ThresholdAlert(field, raise_at, clear_at, direction=direction, alert=alert), topic)


def _fever(raise_at: float = 38.0, clear_at: float = 37.5, field: str = "temperature_c",
           alert: str = "fever", topic: str = "alerts") -> Attach:
    return _tap(fever_alert(raise_at, clear_at, field, alert), topic)


def _blood_pressure(repeat_at: str = "hypertensive_crisis", systolic_field: str = "systolic_mmhg",
                    diastolic_field: str = "diastolic_mmhg", alert: str = "blood_pressure",
                    topic: str = "alerts.blood_pressure") -> Attach:
    return _tap(BloodPressureAlert(repeat_at=repeat_at, systolic_field=systolic_field,
                                   diastolic_field=diastolic_field, alert=alert), topic)


def _gps_track(max_speed_mps: float = 100.0, min_distance_m: float = 0.0) -> Attach:
    step = GpsTrack(max_speed_mps=max_speed_mps, min_distance_m=min_distance_m)
    return lambda stream, label: stream.process(step, name=label)


def _geofence(fences: list[Mapping[str, Any]], exit_margin_m: float = 0.0,
              topic: str = "alerts.geofence") -> Attach:
    return _tap(Geofence(fences, exit_margin_m=exit_margin_m), topic)


def _downsample(fields: list[str], topic: str, window_s: float = 60.0, grace_s: float = 5.0,
                decimals: int = 3) -> Attach:
    ds = Downsample(fields, topic, window_s=window_s, grace_s=grace_s, decimals=decimals)

    def attach(stream: Stream, label: str | None) -> Stream:
        ds.attach(stream, label)
        return stream

    return attach


BUILTINS: dict[str, BuiltinSpec] = {s.name: s for s in (
    BuiltinSpec("normalise_units", "transform",
                "fields into °C, mmHg, m/s and metres (by name suffix or fields table)",
                _normalise_units),
    BuiltinSpec("gps_track", "transform",
                "adds distance_m, distance_total_m, speed_derived_mps to each fix", _gps_track),
    BuiltinSpec("threshold", "tap", "raise/clear alerts on a field, with hysteresis", _threshold),
    BuiltinSpec("fever", "tap", "raise at >= 38.0 °C, clear below 37.5 °C", _fever),
    BuiltinSpec("blood_pressure", "tap",
                "ACC/AHA 2017 category alerts on change (and at/above repeat_at)", _blood_pressure),
    BuiltinSpec("geofence", "tap", "enter/leave events for polygons and circles", _geofence),
    BuiltinSpec("downsample", "tap",
                "one averaged reading per device per window to its own topic", _downsample),
)}


def make_builtin(name: str, params: Mapping[str, Any]) -> Attach:
    """Validate ``params`` for built-in ``name``; returns its attach function.

    Raises ``ParamError`` naming the parameter (``builtin`` for an unknown name).
    """
    spec = BUILTINS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ParamError("builtin", "a built-in: " + ", ".join(f'"{n}"' for n in BUILTINS), name)
    sig = inspect.signature(spec.make)
    for key in params:
        if key not in sig.parameters:
            raise ParamError(key, f"a parameter of {name}: " + ", ".join(sig.parameters), key)
    for key, p in sig.parameters.items():
        if p.default is inspect.Parameter.empty and key not in params:
            raise ParamError(key, f"a value ({name} needs {key})")
    try:
        return spec.make(**params)
    except ParamError:
        raise
    except (TypeError, ValueError) as exc:  # a wrong type that slipped past a check
        raise ParamError(next(iter(params), "builtin"), f"parameters that {name} accepts "
                         f"({exc})", dict(params)) from exc
