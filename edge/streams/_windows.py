"""Event-time windows and aggregators: pure functions of timestamps and values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ._errors import TopologyError

__all__ = [
    "AGGREGATORS", "Aggregator", "HoppingWindows", "TumblingWindows", "Windows", "aggregator_for",
]


def _positive(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TopologyError(f"{name}: expected a positive integer of milliseconds, got {value!r}")
    return value


def _grace(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TopologyError(f"grace_ms: expected an integer of milliseconds >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class TumblingWindows:
    """Fixed, non-overlapping windows ``[n*size, (n+1)*size)`` of event time (ms).

    A window closes, and its result is emitted, once the watermark of its
    partition reaches ``end + grace_ms``; a record for a closed window is late.
    """

    size_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        _positive("size_ms", self.size_ms)
        _grace(self.grace_ms)

    @property
    def advance_ms(self) -> int:
        return self.size_ms

    def starts_for(self, timestamp_ms: int) -> list[int]:
        """The start of the one window that holds ``timestamp_ms``."""
        return [timestamp_ms - timestamp_ms % self.size_ms]

    def describe(self) -> str:
        return f"tumbling {self.size_ms} ms, grace {self.grace_ms} ms"


@dataclass(frozen=True)
class HoppingWindows:
    """Overlapping windows of ``size_ms`` starting every ``advance_ms`` (``advance_ms <= size_ms``).

    A record belongs to every window ``[k*advance, k*advance + size)`` that
    holds its timestamp.  Closing and lateness as for ``TumblingWindows``.
    """

    size_ms: int
    advance_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        _positive("size_ms", self.size_ms)
        _positive("advance_ms", self.advance_ms)
        _grace(self.grace_ms)
        if self.advance_ms > self.size_ms:
            raise TopologyError(
                f"advance_ms: expected at most size_ms ({self.size_ms}), got {self.advance_ms} "
                "(windows would leave gaps; use a smaller advance or TumblingWindows)"
            )

    def starts_for(self, timestamp_ms: int) -> list[int]:
        """The starts of every window that holds ``timestamp_ms``, oldest first."""
        last = timestamp_ms - timestamp_ms % self.advance_ms
        starts = []
        start = last
        while start > timestamp_ms - self.size_ms:
            starts.append(start)
            start -= self.advance_ms
        starts.reverse()
        return starts

    def describe(self) -> str:
        return f"hopping {self.size_ms} ms every {self.advance_ms} ms, grace {self.grace_ms} ms"


Windows = TumblingWindows | HoppingWindows


@runtime_checkable
class Aggregator(Protocol):
    """A custom aggregate: ``initial()``, ``add(agg, value) -> agg``, ``result(agg)``.

    ``agg`` must be JSON-serialisable (it is stored in the state store
    between batches and across restarts); return a new one from ``add`` or
    change it in place and return it.  ``result`` is what the output record
    carries under ``"value"``.
    """

    def initial(self) -> Any: ...

    def add(self, agg: Any, value: Any) -> Any: ...

    def result(self, agg: Any) -> Any: ...


class _Count:
    def initial(self) -> int:
        return 0

    def add(self, agg: int, value: Any) -> int:
        return agg + 1

    def result(self, agg: int) -> int:
        return agg


class _Sum:
    def initial(self) -> float:
        return 0

    def add(self, agg: float, value: float) -> float:
        return agg + value

    def result(self, agg: float) -> float:
        return agg


class _Min:
    def initial(self) -> float | None:
        return None

    def add(self, agg: float | None, value: float) -> float:
        return value if agg is None or value < agg else agg

    def result(self, agg: float | None) -> float | None:
        return agg


class _Max:
    def initial(self) -> float | None:
        return None

    def add(self, agg: float | None, value: float) -> float:
        return value if agg is None or value > agg else agg

    def result(self, agg: float | None) -> float | None:
        return agg


class _Mean:
    def initial(self) -> list[float]:
        return [0, 0]

    def add(self, agg: list[float], value: float) -> list[float]:
        return [agg[0] + value, agg[1] + 1]

    def result(self, agg: list[float]) -> float | None:
        return agg[0] / agg[1] if agg[1] else None


AGGREGATORS: dict[str, Aggregator] = {
    "count": _Count(), "sum": _Sum(), "min": _Min(), "max": _Max(), "mean": _Mean(),
}


def aggregator_for(spec: str | Aggregator) -> Aggregator:
    """The aggregator a name stands for, or ``spec`` itself when it is one."""
    if isinstance(spec, str):
        agg = AGGREGATORS.get(spec)
        if agg is None:
            raise TopologyError(
                f"aggregate: expected one of {', '.join(AGGREGATORS)} or an Aggregator, got {spec!r}"
            )
        return agg
    if not isinstance(spec, Aggregator):
        raise TopologyError(
            "aggregate: expected a name or an object with initial(), add(agg, value) and "
            f"result(agg), got {type(spec).__name__}"
        )
    return spec
