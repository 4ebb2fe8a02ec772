"""Geofences: an event when a device enters or leaves a configured polygon or circle.

Fences are given in degrees: a circle by centre and radius in metres, a
polygon by its ring of ``[lat, lon]`` vertices (not crossing the
antimeridian; see ``_geo``). State per device is the sorted list of fences
it is inside, so a restart neither repeats nor misses a crossing. A device's
first usable fix inside a fence is an ``enter`` (it was not known to be
inside before).

``exit_margin_m`` is hysteresis at the edge: a device inside a fence leaves
it only once it is that far outside, so fixes jittering on the line do not
flap enter/leave. Fixes without a usable position (see ``fix_position``)
change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.streams.builtins._base import KeyedBuiltin
from edge.streams.builtins._geo import distance_to_polygon_edge_m, haversine_m, point_in_polygon
from edge.streams.builtins._gps import fix_position
from edge.streams.builtins._params import ParamError, number, text

__all__ = ["Circle", "Geofence", "Polygon", "fence_from_params"]


@dataclass(frozen=True)
class Circle:
    """A circular fence: centre (degrees) and radius (metres)."""

    name: str
    lat: float
    lon: float
    radius_m: float

    def contains(self, lat: float, lon: float, margin_m: float = 0.0) -> bool:
        return haversine_m(self.lat, self.lon, lat, lon) <= self.radius_m + margin_m


@dataclass(frozen=True)
class Polygon:
    """A polygon fence: a ring of (lat, lon) vertices in degrees, at least 3."""

    name: str
    points: tuple[tuple[float, float], ...]

    def contains(self, lat: float, lon: float, margin_m: float = 0.0) -> bool:
        if point_in_polygon(lat, lon, self.points):
            return True
        return margin_m > 0 and distance_to_polygon_edge_m(lat, lon, self.points) <= margin_m


Fence = Circle | Polygon


def fence_from_params(p: Mapping[str, Any], where: str) -> Fence:
    """A fence from a config table: ``{name, lat, lon, radius_m}`` or ``{name, polygon}``.

    ``where`` prefixes the keys in a ``ParamError`` (e.g. ``"fences[0]"``).
    """
    if not isinstance(p, Mapping):
        raise ParamError(where, "a table with name and lat/lon/radius_m, or name and polygon", p)
    name = text(f"{where}.name", p.get("name"))
    if "polygon" in p:
        extra = set(p) - {"name", "polygon"}
        if extra:
            raise ParamError(f"{where}.{sorted(extra)[0]}", "only name and polygon in a polygon "
                             "fence", sorted(extra)[0])
        raw = p["polygon"]
        if not isinstance(raw, list) or len(raw) < 3:
            raise ParamError(f"{where}.polygon", "an array of at least 3 [lat, lon] points", raw)
        points = []
        for i, pt in enumerate(raw):
            if not isinstance(pt, list) or len(pt) != 2:
                raise ParamError(f"{where}.polygon[{i}]", "a [lat, lon] pair in degrees", pt)
            lat = number(f"{where}.polygon[{i}]", pt[0])
            lon = number(f"{where}.polygon[{i}]", pt[1])
            if not -90 <= lat <= 90 or not -180 <= lon <= 180:
                raise ParamError(f"{where}.polygon[{i}]", "a [lat, lon] pair in degrees", pt)
            points.append((lat, lon))
        lons = [q[1] for q in points]
        if max(lons) - min(lons) > 180:
            raise ParamError(f"{where}.polygon", "a polygon that does not cross the antimeridian "
                             "(split it in two)", raw)
        return Polygon(name, tuple(points))
    extra = set(p) - {"name", "lat", "lon", "radius_m"}
    if extra:
        raise ParamError(f"{where}.{sorted(extra)[0]}", "one of the keys lat, lon, name, "
                         "polygon, radius_m", sorted(extra)[0])
    for key in ("lat", "lon", "radius_m"):
        if key not in p:
            raise ParamError(f"{where}.{key}", "a number (a circle needs lat, lon and "
                             "radius_m; a polygon fence needs polygon)")
    lat = number(f"{where}.lat", p["lat"])
    lon = number(f"{where}.lon", p["lon"])
    if not -90 <= lat <= 90:
        raise ParamError(f"{where}.lat", "a latitude in -90..90", p["lat"])
    if not -180 <= lon <= 180:
        raise ParamError(f"{where}.lon", "a longitude in -180..180", p["lon"])
    return Circle(name, lat, lon, number(f"{where}.radius_m", p["radius_m"], positive=True))


class Geofence(KeyedBuiltin):
    """Enter/leave events for a set of fences, per device.

    ``fences``: ``Circle``/``Polygon`` objects or config tables (see
    ``fence_from_params``), with distinct names. Raises ``ParamError``.
    """

    output_schema = "edge.alert.geofence"
    name = "geofence"

    def __init__(self, fences: Sequence[Fence | Mapping[str, Any]], *,
                 exit_margin_m: float = 0.0) -> None:
        if not isinstance(fences, list | tuple) or not fences:
            raise ParamError("fences", "a non-empty array of fences", fences)
        self.fences: list[Fence] = [
            f if isinstance(f, Circle | Polygon) else fence_from_params(f, f"fences[{i}]")
            for i, f in enumerate(fences)]
        names = [f.name for f in self.fences]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise ParamError(f"fences[{i}].name", "a fence name not used before", n)
        self.exit_margin_m = number("exit_margin_m", exit_margin_m, at_least=0)

    def initial_state(self) -> dict[str, Any]:
        return {"inside": []}

    def step(self, state: dict[str, Any], value: Any, timestamp_ms: int, device: str | None
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(new state, enter/leave events) for one fix; pure."""
        pos = fix_position(value)
        if pos is None:
            return state, []
        lat, lon = pos
        was = set(state["inside"])
        now = {f.name for f in self.fences
               if f.contains(lat, lon, self.exit_margin_m if f.name in was else 0.0)}
        if now == was:
            return state, []
        events = [{"event": ev, "fence": f.name, "device": device, "lat": lat, "lon": lon,
                   "timestamp_ms": timestamp_ms}
                  for f in self.fences
                  for ev in (("enter",) if f.name in now - was else
                             ("leave",) if f.name in was - now else ())]
        return {"inside": sorted(now)}, events
