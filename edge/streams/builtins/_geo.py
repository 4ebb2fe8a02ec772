"""Geometry on the Earth for GPS built-ins: great-circle distance and fences.

Pure functions of degrees and metres. Distances use the haversine formula on
a sphere of the mean Earth radius (IUGG, 6,371,008.8 m): within about 0.5 %
of the ellipsoidal distance, far finer than the error of a consumer GPS fix
for the legs between fixes that a tracker sees.

Fence geometry works in a local equirectangular projection around the point
tested, which is accurate for fences up to some tens of kilometres across.
Polygons must not cross the antimeridian (longitude ±180°); a fence that
needs to is two polygons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["EARTH_RADIUS_M", "haversine_m", "point_in_polygon", "distance_to_polygon_edge_m"]

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float,
                radius_m: float = EARTH_RADIUS_M) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    # min(): rounding can push a (antipodal points) a hair over 1.
    return 2 * radius_m * math.asin(math.sqrt(min(1.0, a)))


def point_in_polygon(lat: float, lon: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Whether (lat, lon) lies inside ``polygon`` (a ring of (lat, lon) vertices).

    Even-odd ray casting in the lat/lon plane: the ring may be given open or
    closed (first vertex repeated) and in either winding. A point exactly on
    an edge may count as either side; fences that must not flap there use an
    exit margin (see ``Geofence``).
    """
    inside = False
    n = len(polygon)
    j = n - 1
    for i in range(n):
        yi, xi = polygon[i]
        yj, xj = polygon[j]
        # Does the edge (j -> i) straddle the point's latitude, with the crossing east of it?
        if (yi > lat) != (yj > lat):
            x_cross = xi + (lat - yi) * (xj - xi) / (yj - yi)
            if lon < x_cross:
                inside = not inside
        j = i
    return inside


def distance_to_polygon_edge_m(lat: float, lon: float,
                               polygon: Sequence[tuple[float, float]]) -> float:
    """Shortest distance in metres from (lat, lon) to the polygon's boundary.

    Uses a local equirectangular projection centred on the point, so it is
    accurate for fences up to tens of kilometres across.
    """
    m_per_deg_lat = math.pi * EARTH_RADIUS_M / 180
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(lat))

    def xy(p: tuple[float, float]) -> tuple[float, float]:
        return (p[1] - lon) * m_per_deg_lon, (p[0] - lat) * m_per_deg_lat

    best = math.inf
    n = len(polygon)
    for i in range(n):
        ax, ay = xy(polygon[i - 1])
        bx, by = xy(polygon[i])
        dx, dy = bx - ax, by - ay
        seg2 = dx * dx + dy * dy
        # Projection of the origin (the point) onto the segment, clamped to its ends.
        t = 0.0 if seg2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / seg2))
        best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best
