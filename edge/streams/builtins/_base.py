"""What makes a built-in's pure ``step()`` a ``KeyedStep`` the engine can run."""

from __future__ import annotations

from typing import Any

from edge.streams import Record

__all__ = ["KeyedBuiltin"]


class KeyedBuiltin:
    """Mixin: ``apply(state, record)`` around a pure ``step(state, value, ts, device)``.

    Output records keep the input's key and timestamp. ``output_schema``
    None keeps the input headers (a reading enriched in place); a string
    replaces the ``schema`` header (an alert is not the reading it came from).
    """

    name: str
    output_schema: str | None = None

    def initial_state(self) -> Any:  # pragma: no cover - every built-in defines it
        raise NotImplementedError

    def step(self, state: Any, value: Any, timestamp_ms: int, device: str | None
             ) -> tuple[Any, list[Any]]:  # pragma: no cover
        raise NotImplementedError

    def apply(self, state: Any, record: Record) -> tuple[Any, list[Record]]:
        device = None if record.key is None else record.key.decode("utf-8", "replace")
        new, values = self.step(state, record.value, record.timestamp_ms, device)
        if not values:
            return new, []
        headers = list(record.headers)
        if self.output_schema is not None:
            headers = [h for h in headers if h[0] != "schema"]
            headers.append(("schema", self.output_schema.encode()))
        return new, [Record(record.key, v, record.timestamp_ms, list(headers)) for v in values]
