"""Threshold alerts with hysteresis: raise at one level, clear only past another.

A reading that crosses the raise level raises the alert once; readings in
the band between the two levels change nothing, so a temperature wobbling
around 38.0 °C raises one fever alert, not one per reading. The alert clears
once when a reading passes the clear level. State per key (device) is one
small JSON object, kept by the engine with the input offsets, so a restart
neither repeats nor loses an edge.

Readings are judged in log order (the order the device sent them); a reading
without a finite number in the field is passed over and changes nothing.
"""

from __future__ import annotations

from typing import Any

from edge.streams.builtins._base import KeyedBuiltin
from edge.streams.builtins._params import ParamError, choice, number, numeric_field, text

__all__ = ["ThresholdAlert", "fever_alert"]


class ThresholdAlert(KeyedBuiltin):
    """Raise/clear alert on one numeric field, with hysteresis.

    ``direction="above"``: raise when ``value >= raise_at``, clear when
    ``value < clear_at`` (``clear_at <= raise_at``). ``direction="below"``:
    raise when ``value <= raise_at``, clear when ``value > clear_at``
    (``clear_at >= raise_at``). ``alert`` names the alert in its events.
    Raises ``ParamError`` for levels in the wrong order.
    """

    output_schema = "edge.alert.threshold"
    name = "threshold"

    def __init__(self, field: str, raise_at: float, clear_at: float, *,
                 direction: str = "above", alert: str = "threshold") -> None:
        self.field = text("field", field)
        self.raise_at = number("raise_at", raise_at)
        self.clear_at = number("clear_at", clear_at)
        self.direction = choice("direction", direction, ("above", "below"))
        self.alert = text("alert", alert)
        if direction == "above" and self.clear_at > self.raise_at:
            raise ParamError("clear_at", f"a number <= raise_at ({self.raise_at:g}) for an "
                             'alert "above"', clear_at)
        if direction == "below" and self.clear_at < self.raise_at:
            raise ParamError("clear_at", f"a number >= raise_at ({self.raise_at:g}) for an "
                             'alert "below"', clear_at)

    def initial_state(self) -> dict[str, Any]:
        return {"active": False, "since_ms": None}

    def _raises(self, v: float) -> bool:
        return v >= self.raise_at if self.direction == "above" else v <= self.raise_at

    def _clears(self, v: float) -> bool:
        return v < self.clear_at if self.direction == "above" else v > self.clear_at

    def step(self, state: dict[str, Any], value: Any, timestamp_ms: int, device: str | None
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(new state, alert events) for one reading of one device; pure."""
        v = numeric_field(value, self.field)
        if v is None:
            return state, []
        if not state["active"] and self._raises(v):
            edge, threshold = "raise", self.raise_at
            new: dict[str, Any] = {"active": True, "since_ms": timestamp_ms}
        elif state["active"] and self._clears(v):
            edge, threshold = "clear", self.clear_at
            new = {"active": False, "since_ms": None}
        else:
            return state, []
        event = {"alert": self.alert, "state": edge, "device": device, "field": self.field,
                 "value": v, "threshold": threshold, "direction": self.direction,
                 "timestamp_ms": timestamp_ms}
        if edge == "clear":
            event["raised_ms"] = state["since_ms"]
        return new, [event]


def fever_alert(raise_at: float = 38.0, clear_at: float = 37.5, field: str = "temperature_c",
                alert: str = "fever") -> ThresholdAlert:
    """A fever alert: raise at >= 38.0 °C, clear below 37.5 °C (both configurable)."""
    return ThresholdAlert(field, raise_at, clear_at, direction="above", alert=alert)
