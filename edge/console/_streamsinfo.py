"""What the console needs from the ``[[streams]]`` config: alert topics, thresholds, geofences.

Pure functions of the parsed config (``edge.streams._config.TopologyConfig``), so the
pages draw the same fever line and fences that the topologies judge by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ALERT_DEFAULT_TOPICS", "alert_kind", "alert_topics", "geofences", "thresholds"]

#: Each alerting built-in and the topic it writes to when the step names none
#: (edge/streams/builtins/_registry.py).
ALERT_DEFAULT_TOPICS = {"fever": "alerts", "threshold": "alerts",
                        "blood_pressure": "alerts.blood_pressure", "geofence": "alerts.geofence"}

#: ACC/AHA 2017 bands as the blood_pressure built-in classifies them (lowest first):
#: a reading is in the highest band whose systolic *or* diastolic minimum it reaches.
BP_BANDS = [
    {"name": "normal", "systolic_min": 0, "diastolic_min": 0},
    {"name": "elevated", "systolic_min": 120, "diastolic_min": None},
    {"name": "hypertension_stage_1", "systolic_min": 130, "diastolic_min": 80},
    {"name": "hypertension_stage_2", "systolic_min": 140, "diastolic_min": 90},
    {"name": "hypertensive_crisis", "systolic_min": 180.01, "diastolic_min": 120.01},
]


def _steps(topologies: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(topology, step) for every built-in step of every enabled topology."""
    return [(t, s) for t in topologies if getattr(t, "enabled", True)
            for s in getattr(t, "steps", ())]


def alert_topics(topologies: Sequence[Any]) -> list[str]:
    """The topics alerting built-ins write to, each once, in config order."""
    out: list[str] = []
    for _, s in _steps(topologies):
        if s.builtin in ALERT_DEFAULT_TOPICS:
            topic = s.params.get("topic", ALERT_DEFAULT_TOPICS[s.builtin])
            if topic not in out:
                out.append(topic)
    return out


def alert_kind(schema: str | None, value: Any) -> str:
    """``fever``, ``bp`` or ``geofence`` for an alert record (by its ``schema`` header)."""
    if schema == "edge.alert.blood_pressure":
        return "bp"
    if schema == "edge.alert.geofence":
        return "geofence"
    name = value.get("alert") if isinstance(value, dict) else None
    # A threshold step names its alert ("fever" by the fever built-in); others keep theirs.
    return str(name) if name else "fever"


def thresholds(topologies: Sequence[Any]) -> dict[str, Any]:
    """The fever raise level (None without a fever step) and the BP category bands."""
    fever = None
    for _, s in _steps(topologies):
        if s.builtin == "fever":
            fever = float(s.params.get("raise_at", 38.0))
            break
        if s.builtin == "threshold" and s.params.get("alert") == "fever":
            fever = float(s.params["raise_at"])
            break
    return {"fever_c": fever, "bp_bands": BP_BANDS}


def geofences(topologies: Sequence[Any]) -> list[dict[str, Any]]:
    """Every configured fence: circles (lat, lon, radius_m) and polygons ([[lat, lon], ...])."""
    out: list[dict[str, Any]] = []
    for _, s in _steps(topologies):
        if s.builtin != "geofence":
            continue
        for f in s.params.get("fences", ()):
            if "polygon" in f:
                out.append({"name": f.get("name"), "kind": "polygon",
                            "polygon": [[float(a), float(b)] for a, b in f["polygon"]]})
            else:
                out.append({"name": f.get("name"), "kind": "circle", "lat": float(f["lat"]),
                            "lon": float(f["lon"]), "radius_m": float(f["radius_m"])})
    return out
