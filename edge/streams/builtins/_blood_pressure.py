"""Blood pressure categories (ACC/AHA 2017) and alerts when a patient's category changes.

The categories and their boundaries, in mmHg, from the 2017 ACC/AHA guideline
(Whelton PK et al., "2017 ACC/AHA/AAPA/ABC/ACPM/AGS/APhA/ASH/ASPC/NMA/PCNA
Guideline for the Prevention, Detection, Evaluation, and Management of High
Blood Pressure in Adults", Hypertension 2018;71:e13-e115, Table 6; the
hypertensive crisis threshold, SBP >180 and/or DBP >120 mm Hg, from the same
guideline's section on hypertensive crises (emergencies and urgencies) and
the AHA's public "Understanding Blood Pressure Readings" chart). Checked on
2026-11-27 against several tabulations of the guideline, which agree on every
boundary below:

==========================  ===================  =====  ==================
category                    systolic                    diastolic
==========================  ===================  =====  ==================
normal                      < 120                and    < 80
elevated                    120-129              and    < 80
hypertension_stage_1        130-139              or     80-89
hypertension_stage_2        >= 140               or     >= 90
hypertensive_crisis         > 180                and/or > 120
==========================  ===================  =====  ==================

"Individuals with SBP and DBP in 2 categories should be designated to the
higher BP category" (Table 6, note), so a reading's category is the higher
of its systolic and its diastolic category. Readings with fractions (a kPa
cuff converted to mmHg) are placed on the continuous scale: 129.5 systolic is
elevated, 130 is stage 1; 180 is stage 2 and 180.01 a crisis.

The guideline classifies the *average* of repeated readings on separate
occasions; one cuff reading classified here is a flag for a clinician, not a
diagnosis.
"""

from __future__ import annotations

from typing import Any

from edge.streams.builtins._base import KeyedBuiltin
from edge.streams.builtins._params import ParamError, numeric_field, text

__all__ = ["BP_CATEGORIES", "BloodPressureAlert", "classify_blood_pressure"]

#: The categories, lowest first (an alert's ``severity`` is the index).
BP_CATEGORIES = ("normal", "elevated", "hypertension_stage_1", "hypertension_stage_2",
                 "hypertensive_crisis")
_LABELS = {"normal": "Normal", "elevated": "Elevated",
           "hypertension_stage_1": "Hypertension stage 1",
           "hypertension_stage_2": "Hypertension stage 2",
           "hypertensive_crisis": "Hypertensive crisis"}


def _systolic_level(s: float) -> int:
    if s > 180:
        return 4
    if s >= 140:
        return 3
    if s >= 130:
        return 2
    if s >= 120:
        return 1
    return 0


def _diastolic_level(d: float) -> int:
    if d > 120:
        return 4
    if d >= 90:
        return 3
    if d >= 80:
        return 2
    return 0  # no "elevated" by diastolic: elevated needs a diastolic < 80


def classify_blood_pressure(systolic_mmhg: float, diastolic_mmhg: float) -> str:
    """The ACC/AHA 2017 category of one reading (a name from ``BP_CATEGORIES``).

    The higher of the systolic and diastolic categories. Raises ValueError
    for pressures that are not positive.
    """
    if not systolic_mmhg > 0 or not diastolic_mmhg > 0:
        raise ValueError(f"pressures must be > 0 mmHg, got {systolic_mmhg}/{diastolic_mmhg}")
    return BP_CATEGORIES[max(_systolic_level(systolic_mmhg), _diastolic_level(diastolic_mmhg))]


class BloodPressureAlert(KeyedBuiltin):
    """Classify each reading; an alert event when the category changes, or is at/above a level.

    Per patient (key): the first classified reading emits (its ``previous``
    is None), then every change of category, up or down. ``repeat_at`` (a
    category, default ``"hypertensive_crisis"``, or ``"never"``) also emits
    every reading at or above it even when unchanged: a second crisis
    reading in a row is not silent. Readings without finite positive
    systolic and diastolic values are passed over.
    """

    output_schema = "edge.alert.blood_pressure"
    name = "blood_pressure"

    def __init__(self, *, repeat_at: str = "hypertensive_crisis",
                 systolic_field: str = "systolic_mmhg", diastolic_field: str = "diastolic_mmhg",
                 alert: str = "blood_pressure") -> None:
        if repeat_at != "never" and repeat_at not in BP_CATEGORIES:
            raise ParamError("repeat_at", "a category (" + ", ".join(
                f'"{c}"' for c in BP_CATEGORIES) + ') or "never"', repeat_at)
        self.repeat_level = (len(BP_CATEGORIES) if repeat_at == "never"
                             else BP_CATEGORIES.index(repeat_at))
        self.systolic_field = text("systolic_field", systolic_field)
        self.diastolic_field = text("diastolic_field", diastolic_field)
        self.alert = text("alert", alert)

    def initial_state(self) -> dict[str, Any]:
        return {"category": None}

    def step(self, state: dict[str, Any], value: Any, timestamp_ms: int, device: str | None
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(new state, alert events) for one reading of one patient; pure."""
        s = numeric_field(value, self.systolic_field)
        d = numeric_field(value, self.diastolic_field)
        if s is None or d is None or s <= 0 or d <= 0:
            return state, []
        category = classify_blood_pressure(s, d)
        level = BP_CATEGORIES.index(category)
        previous = state["category"]
        if category != previous:
            reason = "change"
        elif level >= self.repeat_level:
            reason = "at_or_above"
        else:
            return state, []
        event = {"alert": self.alert, "category": category, "label": _LABELS[category],
                 "severity": level, "previous": previous, "reason": reason, "device": device,
                 "systolic_mmhg": s, "diastolic_mmhg": d, "timestamp_ms": timestamp_ms}
        return {"category": category}, [event]
