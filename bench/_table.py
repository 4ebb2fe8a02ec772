"""Benchmark tables: every run's value kept, medians and spread shown, ratios from the same row.

A Table has columns (ours first, then peers) and rows; each cell holds the values of all
runs. Rendering shows ``median [min–max]`` and, per peer, ``ours ÷ peer`` of the medians,
so a reader (and tests/bench) can recompute every ratio from the row it sits in.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


def fmt_number(v: float) -> str:
    """A measured value with as many digits as the noise of this machine allows."""
    a = abs(v)
    if float(v).is_integer() and a < 1000:
        return f"{v:.0f}"  # counts (events lost, records) are whole numbers
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_cell(values: list[float]) -> str:
    """``median [min–max]`` over the runs; ``—`` when nothing was measured."""
    if not values:
        return "—"
    med = fmt_number(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} [{fmt_number(min(values))}–{fmt_number(max(values))}]"


def fmt_ratio(r: float | None) -> str:
    """Three significant digits: 53.1x, 6.70x, 0.0214x."""
    if r is None:
        return "—"
    if r >= 1000:
        return f"{r:,.0f}x"
    return f"{r:#.3g}".rstrip(".") + "x"


@dataclass
class Row:
    measure: str
    #: True when a bigger number is better (records/s); False for latency, memory, CPU.
    higher_is_better: bool
    values: dict[str, list[float]] = field(default_factory=dict)
    #: False for figures whose ratio means nothing (counts of losses, growth that may be < 0).
    compare: bool = True

    def median(self, column: str) -> float | None:
        vals = self.values.get(column) or []
        return statistics.median(vals) if vals else None

    def ratio(self, ours: str, peer: str) -> float | None:
        """median(ours) / median(peer), or None if either is missing or the peer's is 0."""
        if not self.compare:
            return None
        a, b = self.median(ours), self.median(peer)
        if a is None or b is None or b == 0:
            return None
        return a / b


@dataclass
class Table:
    """One benchmark table; ``columns[0]`` is ours, the rest are peers run in the same run."""

    key: str
    title: str
    columns: list[str]
    notes: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    #: False for a table whose columns are not peers but projections (the Pi's CPU budget).
    ratios: bool = True

    @property
    def ours(self) -> str:
        return self.columns[0]

    @property
    def peers(self) -> list[str]:
        return self.columns[1:]

    def row(self, measure: str, higher_is_better: bool, compare: bool = True) -> Row:
        """The row named measure, created (in order of first use) if new."""
        for r in self.rows:
            if r.measure == measure:
                return r
        r = Row(measure, higher_is_better, compare=compare)
        self.rows.append(r)
        return r

    def add(self, measure: str, column: str, value: float | None, *,
            higher_is_better: bool = True, compare: bool = True) -> None:
        """Record one run's value (None = not measured in that run, left out)."""
        if column not in self.columns:
            raise ValueError(f"table {self.key!r} has no column {column!r}; it has {self.columns}")
        row = self.row(measure, higher_is_better, compare)
        if value is not None:
            row.values.setdefault(column, []).append(float(value))

    def markdown(self) -> str:
        peers = self.peers if self.ratios else []
        ratio_heads = [f"{self.ours} ÷ {p}" for p in peers]
        head = ["measure", *self.columns, *ratio_heads]
        lines = ["| " + " | ".join(head) + " |",
                 "|---|" + "---:|" * (len(head) - 1)]
        for r in self.rows:
            arrow = "" if not r.compare else " ↑" if r.higher_is_better else " ↓"
            cells = [fmt_cell(r.values.get(c, [])) for c in self.columns]
            ratios = [fmt_ratio(r.ratio(self.ours, p)) for p in peers]
            lines.append(f"| {r.measure}{arrow} | " + " | ".join(cells + ratios) + " |")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "title": self.title, "columns": self.columns, "notes": self.notes,
            "rows": [{"measure": r.measure, "higher_is_better": r.higher_is_better,
                      "compare": r.compare, "values": r.values,
                      "medians": {c: r.median(c) for c in self.columns if c in r.values},
                      "ratios": {p: r.ratio(self.ours, p) for p in self.peers}}
                     for r in self.rows],
        }
