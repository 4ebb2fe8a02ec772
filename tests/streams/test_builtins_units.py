"""Unit normalisation, downsampling's aggregator and the registry that configs name built-ins by."""

from __future__ import annotations

import pytest

from edge.streams import Aggregator, KeyedStep, Topology
from edge.streams.builtins import (
    BUILTINS,
    BloodPressureAlert,
    Downsample,
    Geofence,
    GpsTrack,
    MeanOfFields,
    NormaliseUnits,
    ParamError,
    ThresholdAlert,
    convert,
    make_builtin,
)

# -- units -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "unit", "normal", "suffix"), [
    (98.6, "F", 37.0, "c"), (32, "°F", 0.0, "c"), (-40, "F", -40.0, "c"), (273.15, "K", 0.0, "c"),
    (16, "kPa", 120.0098, "mmhg"), (101.325, "kPa", 760.0, "mmhg"),
    (36, "km/h", 10.0, "mps"), (10, "mph", 4.4704, "mps"), (10, "knots", 5.1444, "mps"),
    (1000, "ft", 304.8, "m"), (1.5, "km", 1500.0, "m"), (1, "mi", 1609.344, "m"),
])
def test_convert_known_units(value, unit, normal, suffix):
    got, got_suffix = convert(value, unit)
    assert got == pytest.approx(normal, abs=1e-4) and got_suffix == suffix


def test_convert_unknown_unit():
    with pytest.raises(ValueError, match="furlong"):
        convert(1, "furlong")


def test_normalise_by_suffix_keeps_originals_and_codec_values():
    n = NormaliseUnits()
    out = n({"temperature_f": 98.6, "systolic_kpa": 16, "speed_kmh": 36, "alt_ft": 1000,
             "odometer_mi": 2, "speed_knots": 10, "lat": 52.0, "pulse_bpm": 70})
    assert out["temperature_c"] == 37.0 and out["systolic_mmhg"] == 120.01
    assert out["speed_mps"] == 10.0            # from speed_kmh, the first; speed_knots does not overwrite it
    assert out["alt_m"] == 304.8 and out["odometer_m"] == 3218.688
    assert out["lat"] == 52.0 and out["pulse_bpm"] == 70 and out["temperature_f"] == 98.6
    # a codec already wrote temperature_c (rounded its own way): left alone
    assert n({"temperature_f": 100.0, "temperature_c": 37.778})["temperature_c"] == 37.778


def test_normalise_explicit_fields_drop_originals_and_odd_values():
    n = NormaliseUnits({"speed": "km/h", "height_ft": "ft"}, auto=False, keep_original=False)
    assert n({"speed": 72, "height_ft": 10, "temp_f": 50}) == {
        "speed_mps": 20.0, "height_m": 3.048, "temp_f": 50}            # auto off: temp_f stays
    assert n({"speed": "NaN"}) == {"speed": "NaN"}                      # not a number: untouched
    assert n("hello") == "hello" and n(None) is None and n([1]) == [1]


def test_normalise_parameters_are_checked():
    with pytest.raises(ParamError) as exc:
        NormaliseUnits({"speed": "furlong/fortnight"})
    assert exc.value.key == "fields.speed" and '"km/h"' in exc.value.expected
    with pytest.raises(ParamError) as exc:
        NormaliseUnits(decimals=-1)
    assert exc.value.key == "decimals"


# -- downsampling's aggregator -----------------------------------------------------------------


def test_mean_of_fields_averages_each_field_over_its_own_values():
    agg = MeanOfFields(["temperature_c", "humidity_pct"])
    assert isinstance(agg, Aggregator)
    a = agg.initial()
    for v in ({"temperature_c": 20.0, "humidity_pct": 40}, {"temperature_c": 21.0},
              {"temperature_c": 22.5}):
        a = agg.add(a, v)
    assert agg.result(a) == {"temperature_c": 21.167, "humidity_pct": 40.0}
    assert agg.result(agg.initial()) == {}


def test_downsample_picks_numbers_and_shapes_the_window_result():
    ds = Downsample(["temperature_c"], "temperature.1m", window_s=60, grace_s=2)
    assert ds.windows.size_ms == 60_000 and ds.windows.grace_ms == 2_000
    assert ds.values_of({"temperature_c": 21.5, "x": 1}) == {"temperature_c": 21.5}
    assert ds.values_of({"temperature_c": "NaN"}) == {} and ds.values_of("hello") == {}
    assert Downsample.reading_of({"start": 0, "end": 60_000, "value": {"temperature_c": 21.0},
                                  "count": 3}) == {
        "temperature_c": 21.0, "count": 3, "window_start_ms": 0, "window_end_ms": 60_000}
    for bad, key in (({"fields": []}, "fields"), ({"topic": "no spaces"}, "topic"),
                     ({"window_s": 0}, "window_s"), ({"grace_s": -1}, "grace_s")):
        kw = {"fields": ["t"], "topic": "t.1m", **bad}
        with pytest.raises(ParamError) as exc:
            Downsample(kw.pop("fields"), kw.pop("topic"), **kw)
        assert exc.value.key == key


# -- registry ----------------------------------------------------------------------------------


def test_keyed_builtins_are_keyed_steps():
    for step in (ThresholdAlert("t", 1, 0), BloodPressureAlert(), GpsTrack(),
                 Geofence([{"name": "a", "lat": 0, "lon": 0, "radius_m": 1}])):
        assert isinstance(step, KeyedStep)


def test_every_builtin_attaches_to_a_topology_and_taps_write_their_topic():
    params = {
        "normalise_units": {}, "gps_track": {}, "threshold": {"field": "x", "raise_at": 2,
                                                              "clear_at": 1},
        "fever": {}, "blood_pressure": {}, "downsample": {"fields": ["x"], "topic": "x.1m"},
        "geofence": {"fences": [{"name": "a", "lat": 0, "lon": 0, "radius_m": 10}]},
    }
    assert set(params) == set(BUILTINS)
    for name, p in params.items():
        t = Topology(f"t-{name}")
        src = t.source("in")
        out = make_builtin(name, p)(src, f"01-{name}")
        out.to("out")
        if BUILTINS[name].kind == "tap":
            assert out is src and len(t.sink_topics) == 2
        else:
            assert out is not src and t.sink_topics == ["out"]
    t = Topology("defaults")
    make_builtin("blood_pressure", {})(t.source("bp"), None)
    assert t.sink_topics == ["alerts.blood_pressure"]


@pytest.mark.parametrize(("name", "params", "key", "expected"), [
    ("fevr", {}, "builtin", '"fever"'),
    ("fever", {"raise": 39}, "raise", "a parameter of fever: raise_at"),
    ("threshold", {"field": "x", "raise_at": 1}, "clear_at", "threshold needs clear_at"),
    ("fever", {"raise_at": "hot"}, "raise_at", "a number"),
    ("fever", {"topic": "bad topic"}, "topic", "a topic name"),
    ("downsample", {"fields": ["x"]}, "topic", "downsample needs topic"),
])
def test_make_builtin_errors_name_the_parameter(name, params, key, expected):
    with pytest.raises(ParamError) as exc:
        make_builtin(name, params)
    assert exc.value.key == key and expected in exc.value.expected
