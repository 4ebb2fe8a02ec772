"""GPS built-ins: haversine against known distances, the track's rules, geofence crossings."""

from __future__ import annotations

import math

import pytest

from edge.streams.builtins import (
    EARTH_RADIUS_M,
    Circle,
    Geofence,
    GpsTrack,
    ParamError,
    Polygon,
    haversine_m,
    point_in_polygon,
)

# -- haversine ---------------------------------------------------------------------------------


def test_haversine_rosetta_code_reference():
    # Rosetta Code "Haversine formula": Nashville BNA (36.12, -86.67) to Los Angeles LAX
    # (33.94, -118.40) on a sphere of radius 6372.8 km is 2887.2599506071106 km.
    d = haversine_m(36.12, -86.67, 33.94, -118.40, radius_m=6_372_800)
    assert d == pytest.approx(2_887_259.9506071106, abs=1e-3)


@pytest.mark.parametrize(("a", "b", "km", "tol_km"), [
    # city centres; published great-circle distances, rounded
    ((51.5074, -0.1278), (48.8566, 2.3522), 343.5, 1.0),     # London - Paris
    ((40.7128, -74.0060), (34.0522, -118.2437), 3936, 5),    # New York - Los Angeles
    ((-33.8688, 151.2093), (-37.8136, 144.9631), 713.4, 2),  # Sydney - Melbourne
    ((52.5200, 13.4050), (48.1351, 11.5820), 504.4, 1.5),    # Berlin - Munich
])
def test_haversine_city_pairs(a, b, km, tol_km):
    assert haversine_m(*a, *b) / 1000 == pytest.approx(km, abs=tol_km)
    assert haversine_m(*a, *b) == pytest.approx(haversine_m(*b, *a))


def test_haversine_exact_geometry():
    quarter = math.pi * EARTH_RADIUS_M / 2
    assert haversine_m(0, 0, 90, 0) == pytest.approx(quarter)          # equator to pole
    assert haversine_m(0, 0, 0, 90) == pytest.approx(quarter)          # along the equator
    assert haversine_m(0, 0, 0, 180) == pytest.approx(2 * quarter)     # antipodes
    assert haversine_m(10, 179.9, 10, -179.9) < 25_000                 # across the antimeridian
    assert haversine_m(47.1, 8.5, 47.1, 8.5) == 0


# -- the track ---------------------------------------------------------------------------------

M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180


def fix(lat, lon, **kw):
    return {"lat": lat, "lon": lon, **kw}


def track(step, fixes):
    state, out = step.initial_state(), []
    for ts, f in fixes:
        state, emitted = step.step(state, f, ts, "car-1")
        out.extend(emitted)
    return state, out


def north(m):
    return 52.0 + m / M_PER_DEG_LAT


def test_track_distance_and_speed_from_successive_fixes():
    fixes = [(0, fix(north(0), 13.0)), (1000, fix(north(10), 13.0)), (2000, fix(north(30), 13.0)),
             (4000, fix(north(60), 13.0))]
    state, out = track(GpsTrack(), fixes)
    assert [o["track"] for o in out] == ["first", "ok", "ok", "ok"]
    assert [o["distance_m"] for o in out] == pytest.approx([0, 10, 20, 30], abs=1e-3)
    assert [o["speed_derived_mps"] for o in out] == pytest.approx([None, 10, 20, 15], abs=1e-3)
    assert out[-1]["distance_total_m"] == pytest.approx(60, abs=1e-3)
    assert out[-1]["lat"] == fixes[-1][1]["lat"]     # the fix's own fields pass through
    assert state["total_m"] == pytest.approx(60, abs=1e-6)


def test_track_a_single_outlier_adds_no_distance():
    fixes = [(0, fix(north(0), 13.0)), (1000, fix(north(10), 13.0)),
             (2000, fix(north(5000), 13.0)),          # 5 km in 1 s: multipath outlier
             (3000, fix(north(30), 13.0)),            # back on the road: also a jump
             (4000, fix(north(40), 13.0))]
    _, out = track(GpsTrack(max_speed_mps=100), fixes)
    assert [o["track"] for o in out] == ["first", "ok", "jump", "jump", "ok"]
    assert out[-1]["distance_total_m"] == pytest.approx(20, abs=1e-3)   # 10 + 10, no 5 km


def test_track_a_relocation_costs_one_leg_then_tracking_goes_on():
    fixes = [(0, fix(north(0), 13.0)), (1000, fix(north(5000), 13.0)),
             (2000, fix(north(5010), 13.0))]
    _, out = track(GpsTrack(), fixes)
    assert [o["track"] for o in out] == ["first", "jump", "ok"]
    assert out[-1]["distance_total_m"] == pytest.approx(10, abs=1e-3)


def test_track_stale_jitter_and_no_fix():
    step = GpsTrack(min_distance_m=5)
    fixes = [(1000, fix(north(0), 13.0)),
             (1000, fix(north(50), 13.0)),            # same timestamp: stale, anchor stays
             (2000, fix(north(3), 13.0)),             # 3 m of jitter: still
             (3000, fix(north(4), 13.0)),             # 4 m from the anchor: still
             (4000, fix(north(6), 13.0)),             # 6 m from the anchor: counted
             (5000, fix(north(90), 13.0, valid=False)),
             (5000, fix(north(90), 13.0, fix_quality=0)),
             (5000, {"lat": "NaN", "lon": 13.0}),
             (6000, fix(north(16), 13.0))]
    state, out = track(step, fixes)
    assert [o["track"] for o in out] == ["first", "stale", "still", "still", "ok",
                                         "no_fix", "no_fix", "no_fix", "ok"]
    assert out[-1]["distance_total_m"] == pytest.approx(16, abs=1e-3)
    assert "distance_m" not in out[5]
    assert out[2]["speed_derived_mps"] == 0.0


def test_track_parameters_are_checked():
    with pytest.raises(ParamError) as exc:
        GpsTrack(max_speed_mps=0)
    assert exc.value.key == "max_speed_mps"
    with pytest.raises(ParamError):
        GpsTrack(min_distance_m=-1)


# -- geofences ---------------------------------------------------------------------------------

# A square of about 1.1 km x 0.7 km around King's Cross, London.
SQUARE = [[51.525, -0.130], [51.525, -0.120], [51.535, -0.120], [51.535, -0.130]]


def test_point_in_polygon():
    ring = [tuple(p) for p in SQUARE]
    assert point_in_polygon(51.530, -0.125, ring)
    assert not point_in_polygon(51.530, -0.135, ring)
    assert not point_in_polygon(51.540, -0.125, ring)
    assert point_in_polygon(51.530, -0.125, ring + [ring[0]])       # closed ring works too
    assert point_in_polygon(51.530, -0.125, list(reversed(ring)))   # either winding
    # a concave "L": the notch is outside
    ell = [(0, 0), (0, 2), (1, 2), (1, 1), (2, 1), (2, 0)]
    assert point_in_polygon(0.5, 1.5, ell) and not point_in_polygon(1.5, 1.5, ell)


def events(step, fixes):
    state, out = step.initial_state(), []
    for ts, (lat, lon) in enumerate(fixes):
        state, emitted = step.step(state, {"lat": lat, "lon": lon}, ts, "car-1")
        out.extend(emitted)
    return state, [(e["event"], e["fence"], e["timestamp_ms"]) for e in out]


def test_geofence_polygon_crossing_enter_then_leave():
    fence = Geofence([{"name": "kings-cross", "polygon": SQUARE}])
    path = [(51.530, -0.140), (51.530, -0.132), (51.530, -0.128), (51.530, -0.125),
            (51.530, -0.121), (51.530, -0.118), (51.530, -0.110)]
    state, evs = events(fence, path)
    assert evs == [("enter", "kings-cross", 2), ("leave", "kings-cross", 5)]
    assert state == {"inside": []}


def test_geofence_circle_crossing_and_first_fix_inside():
    depot = Circle("depot", 48.8566, 2.3522, 200.0)
    fence = Geofence([depot])
    step_m = 1 / M_PER_DEG_LAT
    path = [(48.8566 + 150 * step_m, 2.3522),       # first fix already inside: enter
            (48.8566 + 199 * step_m, 2.3522),
            (48.8566 + 201 * step_m, 2.3522),       # just outside: leave
            (48.8566 + 500 * step_m, 2.3522),
            (48.8566 - 100 * step_m, 2.3522)]       # back in from the south
    _, evs = events(fence, path)
    assert evs == [("enter", "depot", 0), ("leave", "depot", 2), ("enter", "depot", 4)]


def test_geofence_exit_margin_stops_flapping_on_the_edge():
    step_m = 1 / M_PER_DEG_LAT
    jitter = [(48.8566 + (200 + d) * step_m, 2.3522) for d in (-3, 2, -1, 4, -2, 3, 1, 30)]
    _, flappy = events(Geofence([Circle("depot", 48.8566, 2.3522, 200.0)]), jitter)
    assert len(flappy) == 6                                   # without a margin: it flaps
    _, calm = events(Geofence([Circle("depot", 48.8566, 2.3522, 200.0)], exit_margin_m=10),
                     jitter)
    assert calm == [("enter", "depot", 0), ("leave", "depot", 7)]


def test_geofence_several_fences_and_unusable_fixes():
    fence = Geofence([Circle("a", 0.0, 0.0, 1000), Polygon("b", ((0, 0), (0, 1), (1, 1), (1, 0)))],
                     exit_margin_m=0)
    state, out = fence.step(fence.initial_state(), {"lat": 0.001, "lon": 0.001}, 1, "x")
    assert [(e["event"], e["fence"]) for e in out] == [("enter", "a"), ("enter", "b")]
    assert fence.step(state, {"lat": 0.5}, 2, "x") == (state, [])
    assert fence.step(state, {"lat": 0.5, "lon": 0.5, "valid": False}, 3, "x") == (state, [])
    state, out = fence.step(state, {"lat": 0.5, "lon": 0.5}, 4, "x")
    assert [(e["event"], e["fence"]) for e in out] == [("leave", "a")]


@pytest.mark.parametrize(("fences", "key"), [
    ([], "fences"),
    ([{"name": "x", "polygon": [[0, 0], [0, 1]]}], "fences[0].polygon"),
    ([{"name": "x", "polygon": [[0, 0], [0, 1], [95, 1]]}], "fences[0].polygon[2]"),
    ([{"name": "x", "polygon": [[0, -170], [1, 170], [1, -170]]}], "fences[0].polygon"),
    ([{"name": "x", "lat": 1, "lon": 2}], "fences[0].radius_m"),
    ([{"name": "x", "lat": 1, "lon": 2, "radius_m": -5}], "fences[0].radius_m"),
    ([{"name": "x", "lat": 91, "lon": 2, "radius_m": 5}], "fences[0].lat"),
    ([{"name": "x", "lat": 1, "lon": 2, "radius": 5}], "fences[0].radius"),
    ([{"lat": 1, "lon": 2, "radius_m": 5}], "fences[0].name"),
    ([{"name": "x", "lat": 1, "lon": 2, "radius_m": 5}] * 2, "fences[1].name"),
])
def test_geofence_bad_fences_name_the_key(fences, key):
    with pytest.raises(ParamError) as exc:
        Geofence(fences)
    assert exc.value.key == key
