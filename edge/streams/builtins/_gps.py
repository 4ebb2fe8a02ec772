"""GPS derived values: distance travelled and speed from successive fixes of one device.

Each fix passes through with three fields added: ``distance_m`` (metres
since the previous counted fix, by haversine), ``distance_total_m`` (the
device's running total) and ``speed_derived_mps`` (that distance over the
time between the two fixes' timestamps), plus ``track`` saying how the fix
was counted:

- ``"first"``: the device's first usable fix; distance 0, no speed.
- ``"ok"``: counted.
- ``"still"``: moved less than ``min_distance_m`` (receiver jitter at a
  standstill would otherwise add up to kilometres a day); not counted, and
  the anchor stays where it was, so a slow real drift is counted once it
  exceeds the minimum.
- ``"jump"``: the implied speed is above ``max_speed_mps`` (a multipath
  outlier, or a tracker carried switched off): *not* counted, but the fix
  becomes the new anchor. A single outlier thus costs its two legs (out and
  back) and no distance; a real relocation costs one leg and tracking goes
  on from the new place.
- ``"stale"``: its timestamp is not after the anchor's (out of order or a
  repeat); not counted, the anchor stays.
- ``"no_fix"``: no usable position (``valid`` false, ``fix_quality`` 0,
  ``fix_mode`` "none", lat/lon missing or out of range); passed on
  unchanged apart from ``track``.
"""

from __future__ import annotations

from typing import Any

from edge.streams.builtins._base import KeyedBuiltin
from edge.streams.builtins._geo import haversine_m
from edge.streams.builtins._params import number, numeric_field

__all__ = ["GpsTrack", "fix_position"]


def fix_position(value: Any) -> tuple[float, float] | None:
    """(lat, lon) of a GPS event value when it is a usable fix, else None."""
    lat, lon = numeric_field(value, "lat"), numeric_field(value, "lon")
    if lat is None or lon is None or not -90 <= lat <= 90 or not -180 <= lon <= 180:
        return None
    if value.get("valid") is False or value.get("fix_quality") == 0 \
            or value.get("fix_mode") == "none":
        return None
    return lat, lon


class GpsTrack(KeyedBuiltin):
    """Distance travelled and speed per device (see the module doc for the rules).

    ``max_speed_mps`` (default 100 m/s, 360 km/h) marks impossible jumps;
    ``min_distance_m`` (default 0) ignores jitter below it.
    """

    name = "gps_track"

    def __init__(self, *, max_speed_mps: float = 100.0, min_distance_m: float = 0.0) -> None:
        self.max_speed_mps = number("max_speed_mps", max_speed_mps, positive=True)
        self.min_distance_m = number("min_distance_m", min_distance_m, at_least=0)

    def initial_state(self) -> dict[str, Any]:
        return {"lat": None, "lon": None, "ts": None, "total_m": 0.0}

    def step(self, state: dict[str, Any], value: Any, timestamp_ms: int, device: str | None
             ) -> tuple[dict[str, Any], list[Any]]:
        """(new state, [the fix with derived fields]) for one fix; pure."""
        pos = fix_position(value)
        if pos is None:
            return state, [dict(value, track="no_fix") if isinstance(value, dict) else value]
        lat, lon = pos
        total = state["total_m"]
        anchor = {"lat": lat, "lon": lon, "ts": timestamp_ms, "total_m": total}
        if state["ts"] is None:
            return anchor, [dict(value, distance_m=0.0, distance_total_m=round(total, 3),
                                 speed_derived_mps=None, track="first")]
        dt_s = (timestamp_ms - state["ts"]) / 1000
        d = haversine_m(state["lat"], state["lon"], lat, lon)
        if dt_s <= 0:
            track, new, counted, speed = "stale", state, 0.0, None
        elif d / dt_s > self.max_speed_mps:
            track, new, counted, speed = "jump", anchor, 0.0, None
        elif d < self.min_distance_m:
            track, new, counted, speed = "still", state, 0.0, 0.0
        else:
            total += d
            track, counted, speed = "ok", d, d / dt_s
            new = dict(anchor, total_m=total)
        out = dict(value, distance_m=round(counted, 3), distance_total_m=round(total, 3),
                   speed_derived_mps=None if speed is None else round(speed, 3), track=track)
        return new, [out]
