"""Properties of the built-ins on random input (hypothesis), and their public face."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

import edge.streams.builtins as builtins
from edge.streams.builtins import (
    BP_CATEGORIES,
    EARTH_RADIUS_M,
    MeanOfFields,
    classify_blood_pressure,
    fever_alert,
    haversine_m,
    point_in_polygon,
)

temps = st.lists(st.floats(35.0, 41.0, allow_nan=False), max_size=200)


@given(temps)
def test_fever_events_are_exactly_the_hysteresis_edges(values):
    step = fever_alert()  # raise >= 38.0, clear < 37.5
    state, events = step.initial_state(), []
    for i, v in enumerate(values):
        state, out = step.step(state, {"temperature_c": v}, i, "bed")
        events.extend(out)
    # raise and clear alternate, starting with a raise
    assert [e["state"] for e in events] == ["raise", "clear"] * (len(events) // 2) + (
        ["raise"] if len(events) % 2 else [])
    # between two edges nothing would have triggered the next one earlier
    edges = [e["timestamp_ms"] for e in events] + [len(values)]
    active, start = False, 0
    for e, at in zip(events + [None], edges, strict=True):
        between = values[start:at]
        if active:
            assert all(v >= 37.5 for v in between)
        else:
            assert all(v < 38.0 for v in between)
        if e is not None:
            v = values[at]
            assert (v >= 38.0) if e["state"] == "raise" else (v < 37.5)
            active, start = e["state"] == "raise", at + 1
    assert state["active"] == active


pressures = st.floats(40, 260, allow_nan=False)


@given(pressures, pressures, st.floats(0, 60), st.floats(0, 60))
def test_blood_pressure_category_never_falls_when_a_pressure_rises(s, d, ds, dd):
    before = BP_CATEGORIES.index(classify_blood_pressure(s, d))
    assert BP_CATEGORIES.index(classify_blood_pressure(s + ds, d)) >= before
    assert BP_CATEGORIES.index(classify_blood_pressure(s, d + dd)) >= before


lat = st.floats(-89.9, 89.9)
lon = st.floats(-180, 180)


@given(lat, lon, lat, lon, lat, lon)
def test_haversine_is_a_metric_on_the_sphere(a1, o1, a2, o2, a3, o3):
    ab, ba = haversine_m(a1, o1, a2, o2), haversine_m(a2, o2, a1, o1)
    assert math.isclose(ab, ba, rel_tol=1e-9, abs_tol=1e-6)
    assert 0 <= ab <= math.pi * EARTH_RADIUS_M + 1e-6
    assert ab <= haversine_m(a1, o1, a3, o3) + haversine_m(a3, o3, a2, o2) + 1e-3


@given(lat, lon, lat, lon)
def test_haversine_agrees_with_the_spherical_law_of_cosines(a1, o1, a2, o2):
    p1, p2, dl = math.radians(a1), math.radians(a2), math.radians(o2 - o1)
    c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    reference = EARTH_RADIUS_M * math.acos(max(-1.0, min(1.0, c)))
    # the law of cosines loses precision for short distances: compare where it is good
    if reference > 10_000:
        assert math.isclose(haversine_m(a1, o1, a2, o2), reference, rel_tol=1e-6)


@given(st.floats(-60, 60), st.floats(-170, 170), st.floats(0.001, 5), st.floats(0.001, 5),
       st.floats(-0.5, 1.5), st.floats(-0.5, 1.5))
def test_point_in_a_rectangle_is_inside_exactly_within_its_bounds(la, lo, h, w, fy, fx):
    ring = [(la, lo), (la, lo + w), (la + h, lo + w), (la + h, lo)]
    py, px = la + fy * h, lo + fx * w
    if min(abs(fy), abs(fy - 1), abs(fx), abs(fx - 1)) < 1e-6:
        return  # on an edge: either side is allowed
    assert point_in_polygon(py, px, ring) == (0 < fy < 1 and 0 < fx < 1)


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(-100, 100)), min_size=1))
def test_mean_of_fields_is_the_mean_of_each_field(pairs):
    agg = MeanOfFields(["a", "b"], decimals=9)
    acc = agg.initial()
    for f, v in pairs:
        acc = agg.add(acc, {f: v})
    result = agg.result(acc)
    for f in ("a", "b"):
        vs = [v for g, v in pairs if g == f]
        if vs:
            assert math.isclose(result[f], sum(vs) / len(vs), abs_tol=1e-6)
        else:
            assert f not in result


def test_public_face_of_the_builtins():
    assert sorted(builtins.__all__) == sorted([
        "BP_CATEGORIES", "BUILTINS", "EARTH_RADIUS_M", "UNITS", "BloodPressureAlert",
        "BuiltinSpec", "Circle", "Downsample", "GpsTrack", "Geofence", "MeanOfFields",
        "NormaliseUnits", "ParamError", "Polygon", "ThresholdAlert", "classify_blood_pressure",
        "convert", "fever_alert", "fix_position", "haversine_m", "make_builtin",
        "point_in_polygon"])
    for name in builtins.__all__:
        assert getattr(builtins, name) is not None
    assert issubclass(builtins.ParamError, ValueError)
    from edge import EdgeError

    assert issubclass(builtins.ParamError, EdgeError)
