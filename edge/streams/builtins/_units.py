"""Unit normalisation: readings into the units of the event log (°C, mmHg, m/s, metres).

The codecs already normalise what they decode (docs/design.md, "Events"), so this
step is for what they cannot know: a generic MQTT JSON mapping that yields
``speed_kmh`` or ``alt_ft``, a vendor field in °F, a console producer.

A field is recognised by the unit suffix of its name (``temperature_f``,
``pressure_kpa``, ``speed_kmh``, ``speed_mph``, ``speed_knots``, ``alt_ft``,
``odometer_km``, ``odometer_mi``) or named explicitly with its unit
(``fields = { speed = "km/h" }``). The normalised value goes to the field
with the normal suffix (``temperature_c``, ``pressure_mmhg``, ``speed_mps``,
``alt_m``); a normalised field that is already there (a codec wrote it) is
left alone (of two fields for one target, the first wins). Originals are kept, as the codecs keep theirs, unless
``keep_original=False``. Values that are not finite numbers (``"NaN"``,
``"+INF"``, text) are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from edge.streams.builtins._params import ParamError, numeric_field

__all__ = ["UNITS", "NormaliseUnits", "convert"]

_MMHG_PER_KPA = 760 / 101.325  # 1 atm = 101.325 kPa = 760 mmHg (the codecs use the same)

#: unit -> (normal suffix, conversion to the normal unit)
UNITS: dict[str, tuple[str, Callable[[float], float]]] = {
    "C": ("c", lambda v: v),
    "F": ("c", lambda v: (v - 32) * 5 / 9),
    "K": ("c", lambda v: v - 273.15),
    "mmHg": ("mmhg", lambda v: v),
    "kPa": ("mmhg", lambda v: v * _MMHG_PER_KPA),
    "m/s": ("mps", lambda v: v),
    "km/h": ("mps", lambda v: v / 3.6),
    "mph": ("mps", lambda v: v * 0.44704),  # 1 mi = 1609.344 m exactly
    "kn": ("mps", lambda v: v * 1852 / 3600),  # 1 knot = 1852 m/h exactly
    "m": ("m", lambda v: v),
    "ft": ("m", lambda v: v * 0.3048),  # international foot, exact
    "km": ("m", lambda v: v * 1000),
    "mi": ("m", lambda v: v * 1609.344),
}
_ALIASES = {"°C": "C", "degC": "C", "°F": "F", "degF": "F", "kmh": "km/h", "kph": "km/h",
            "knots": "kn", "kt": "kn", "mps": "m/s", "mmhg": "mmHg", "kpa": "kPa"}
#: field-name suffix -> unit, for the suffixes that say a unit other than the normal one
_SUFFIXES = {"f": "F", "kpa": "kPa", "kmh": "km/h", "kph": "km/h", "mph": "mph",
             "knots": "kn", "kn": "kn", "ft": "ft", "km": "km", "mi": "mi"}


def _unit(name: str) -> str | None:
    name = _ALIASES.get(name, name)
    return name if name in UNITS else None


def convert(value: float, unit: str) -> tuple[float, str]:
    """``value`` in ``unit`` as (value in the normal unit, the normal suffix); ValueError if unknown."""
    u = _unit(unit)
    if u is None:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(sorted(UNITS))}")
    suffix, fn = UNITS[u]
    return fn(value), suffix


class NormaliseUnits:
    """Stateless: a reading's value with its fields in normal units (see the module doc).

    ``fields`` names fields and their units explicitly; ``auto`` also
    converts every field whose name ends in a known unit suffix;
    ``decimals`` rounds converted values (default 3, as the codecs do).
    Raises ``ParamError`` for an unknown unit or a bad parameter.
    """

    name = "normalise_units"

    def __init__(self, fields: Mapping[str, str] | None = None, auto: bool = True,
                 keep_original: bool = True, decimals: int = 3) -> None:
        if not isinstance(auto, bool):
            raise ParamError("auto", "true or false", auto)
        if not isinstance(keep_original, bool):
            raise ParamError("keep_original", "true or false", keep_original)
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 12:
            raise ParamError("decimals", "an integer in 0..12", decimals)
        if fields is not None and not isinstance(fields, Mapping):
            raise ParamError("fields", 'a table of field = "unit" (e.g. { speed = "km/h" })', fields)
        self.fields: dict[str, str] = {}
        for field, unit in (fields or {}).items():
            u = _unit(unit) if isinstance(unit, str) else None
            if u is None:
                raise ParamError(f"fields.{field}", "a unit: " + ", ".join(
                    f'"{k}"' for k in sorted(UNITS)), unit)
            self.fields[field] = u
        self.auto = auto
        self.keep_original = keep_original
        self.decimals = decimals

    def _plan(self, value: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """(source field, unit, target field) for every field of ``value`` to convert."""
        plan = []
        for field, unit in self.fields.items():
            if field in value:
                suffix = UNITS[unit][0]
                base, _, end = field.rpartition("_")
                stem = base if base and _SUFFIXES.get(end) == unit else field
                plan.append((field, unit, f"{stem}_{suffix}"))
        if self.auto:
            for field in value:
                base, _, end = field.rpartition("_")
                if base and end in _SUFFIXES and field not in self.fields:
                    unit = _SUFFIXES[end]
                    plan.append((field, unit, f"{base}_{UNITS[unit][0]}"))
        return plan

    def __call__(self, value: Any) -> Any:
        """The normalised value (a new dict); anything but a JSON object passes as it is."""
        if not isinstance(value, dict):
            return value
        out = dict(value)
        for field, unit, target in self._plan(value):
            v = numeric_field(value, field)
            if v is None or field == target:
                continue
            if target not in out:  # a codec's own value, or an earlier field's, stays
                out[target] = round(UNITS[unit][1](v), self.decimals)
            if not self.keep_original:
                out.pop(field, None)
        return out
