"""Threshold alerts with hysteresis and blood-pressure categories: hand-checked cases."""

from __future__ import annotations

import pytest

from edge.streams import Record
from edge.streams.builtins import (
    BP_CATEGORIES,
    BloodPressureAlert,
    ParamError,
    ThresholdAlert,
    classify_blood_pressure,
    fever_alert,
)


def run(step, values, device="bed-1"):
    """Feed values through a keyed built-in's pure step; return every event it emits."""
    state, events = step.initial_state(), []
    for ts, v in enumerate(values):
        state, out = step.step(state, v, 1_000 * ts, device)
        events.extend(out)
    return events


def temps(*cs):
    return [{"temperature_c": c} for c in cs]


# -- fever: hysteresis -------------------------------------------------------------------------


def test_fever_raises_at_38_and_clears_only_below_37_5():
    events = run(fever_alert(), temps(37.0, 38.0, 37.9, 38.1, 37.5, 37.6, 38.2, 37.49, 37.9,
                                      37.99, 38.0))
    assert [(e["state"], e["value"], e["timestamp_ms"]) for e in events] == [
        ("raise", 38.0, 1000),     # 38.0 is ">= 38.0"
        ("clear", 37.49, 7000),    # 37.5 and 37.6 are not "below 37.5": still raised
        ("raise", 38.0, 10000),    # 37.99 does not raise
    ]
    assert events[0]["alert"] == "fever" and events[0]["device"] == "bed-1"
    assert events[0]["threshold"] == 38.0 and events[1]["threshold"] == 37.5
    assert events[1]["raised_ms"] == 1000


def test_fever_wobbling_around_the_threshold_raises_once():
    wobble = [38.0 + d for d in (-0.2, 0.1, -0.3, 0.2, -0.1, 0.05, -0.4, 0.3, -0.45)]
    events = run(fever_alert(), temps(*wobble))
    assert [e["state"] for e in events] == ["raise"]
    # a plain threshold without hysteresis would have flapped: count the crossings to show it
    crossings = sum(1 for a, b in zip(wobble, wobble[1:], strict=False) if (a >= 38) != (b >= 38))
    assert crossings >= 7


def test_fever_levels_are_configurable_and_checked():
    events = run(fever_alert(raise_at=39.0, clear_at=38.0), temps(38.5, 39.0, 38.5, 37.9))
    assert [(e["state"], e["value"]) for e in events] == [("raise", 39.0), ("clear", 37.9)]
    with pytest.raises(ParamError) as exc:
        fever_alert(raise_at=38.0, clear_at=38.5)
    assert exc.value.key == "clear_at" and "<= raise_at" in str(exc.value)


def test_threshold_below_for_a_falling_value():
    step = ThresholdAlert("spo2_pct", 90, 92, direction="below", alert="low_spo2")
    events = run(step, [{"spo2_pct": v} for v in (95, 90, 91, 92, 92.5, 89)])
    assert [(e["state"], e["value"]) for e in events] == [
        ("raise", 90.0), ("clear", 92.5), ("raise", 89.0)]


def test_threshold_passes_over_unusable_values_without_changing_state():
    step = fever_alert()
    events = run(step, [{"temperature_c": 38.5}, {"temperature_c": "NaN"}, {"other": 1}, "hello",
                        None, {"temperature_c": True}, {"temperature_c": 37.0}])
    assert [e["state"] for e in events] == ["raise", "clear"]


def test_threshold_state_is_per_key_and_json():
    import json

    step = fever_alert()
    s1, out = step.step(step.initial_state(), {"temperature_c": 39}, 5, "a")
    assert json.loads(json.dumps(s1)) == s1 == {"active": True, "since_ms": 5}
    s2, out2 = step.step(step.initial_state(), {"temperature_c": 37}, 6, "b")
    assert out and not out2 and s2 == step.initial_state()


def test_apply_makes_alert_records_with_the_input_key_and_an_alert_schema():
    step = fever_alert()
    rec = Record(b"bed-7", {"temperature_c": 38.4}, 1_700_000_000_000,
                 [("source", b"/dev/pts/3"), ("schema", b"gatt.0x2A1C")], "temperature", 0, 12)
    state, out = step.apply(step.initial_state(), rec)
    (alert,) = out
    assert alert.key == b"bed-7" and alert.timestamp_ms == rec.timestamp_ms
    assert alert.value["device"] == "bed-7" and alert.value["state"] == "raise"
    assert alert.header("schema") == b"edge.alert.threshold"
    assert alert.header("source") == b"/dev/pts/3"
    assert step.apply(state, rec) == (state, [])


# -- blood pressure: ACC/AHA 2017 boundaries ---------------------------------------------------

BOUNDARIES = [
    # (systolic, diastolic, category) -- each boundary from both sides
    (119, 79, "normal"),
    (119.99, 79.99, "normal"),
    (120, 79, "elevated"),
    (129, 79, "elevated"),
    (129.99, 79, "elevated"),
    (130, 79, "hypertension_stage_1"),
    (139, 79, "hypertension_stage_1"),
    (139.99, 79, "hypertension_stage_1"),
    (140, 79, "hypertension_stage_2"),
    (180, 79, "hypertension_stage_2"),
    (180.01, 79, "hypertensive_crisis"),
    (181, 79, "hypertensive_crisis"),
    (119, 80, "hypertension_stage_1"),   # diastolic alone: 80-89 is stage 1
    (119, 89, "hypertension_stage_1"),
    (119, 89.99, "hypertension_stage_1"),
    (119, 90, "hypertension_stage_2"),
    (119, 120, "hypertension_stage_2"),
    (119, 121, "hypertensive_crisis"),
    (125, 80, "hypertension_stage_1"),   # elevated needs diastolic < 80: the higher category wins
    (125, 79, "elevated"),
    (135, 95, "hypertension_stage_2"),
    (145, 85, "hypertension_stage_2"),
    (185, 70, "hypertensive_crisis"),
    (170, 125, "hypertensive_crisis"),
    (90, 60, "normal"),
]


@pytest.mark.parametrize(("sys_", "dia", "category"), BOUNDARIES)
def test_blood_pressure_categories_at_their_boundaries(sys_, dia, category):
    assert classify_blood_pressure(sys_, dia) == category


def test_blood_pressure_rejects_non_positive_pressures():
    with pytest.raises(ValueError):
        classify_blood_pressure(0, 80)
    with pytest.raises(ValueError):
        classify_blood_pressure(120, -1)


def bp(s, d):
    return {"systolic_mmhg": s, "diastolic_mmhg": d}


def test_blood_pressure_alerts_on_change_and_repeats_a_crisis():
    events = run(BloodPressureAlert(), [bp(118, 76), bp(117, 75), bp(124, 78), bp(126, 79),
                                        bp(142, 91), bp(190, 100), bp(186, 95), bp(150, 92),
                                        bp(115, 70)])
    assert [(e["category"], e["previous"], e["reason"]) for e in events] == [
        ("normal", None, "change"),
        ("elevated", "normal", "change"),
        ("hypertension_stage_2", "elevated", "change"),
        ("hypertensive_crisis", "hypertension_stage_2", "change"),
        ("hypertensive_crisis", "hypertensive_crisis", "at_or_above"),  # a crisis is never silent
        ("hypertension_stage_2", "hypertensive_crisis", "change"),
        ("normal", "hypertension_stage_2", "change"),
    ]
    assert [e["severity"] for e in events] == [0, 1, 3, 4, 4, 3, 0]
    assert events[3]["label"] == "Hypertensive crisis"
    assert events[3]["systolic_mmhg"] == 190 and events[3]["timestamp_ms"] == 5000


def test_blood_pressure_repeat_level_is_configurable():
    values = [bp(142, 85), bp(145, 85), bp(150, 85)]
    assert len(run(BloodPressureAlert(repeat_at="hypertension_stage_2"), values)) == 3
    assert len(run(BloodPressureAlert(repeat_at="never"), [bp(200, 130)] * 3)) == 1
    with pytest.raises(ParamError) as exc:
        BloodPressureAlert(repeat_at="stage_9")
    assert exc.value.key == "repeat_at" and "hypertensive_crisis" in exc.value.expected


def test_blood_pressure_passes_over_unusable_readings():
    events = run(BloodPressureAlert(), [bp("NaN", 80), bp(120, None), {"systolic_mmhg": 120},
                                        bp(0, 0), bp(121, 70)])
    assert [e["category"] for e in events] == ["elevated"]


def test_blood_pressure_categories_are_ordered():
    assert BP_CATEGORIES[0] == "normal" and BP_CATEGORIES[-1] == "hypertensive_crisis"
