"""The fleet's inventory: every box's latest reported state, from one compacted read.

Pure: ``box_state`` parses one reported record, ``render_status`` draws the table that
``edge fleet status`` prints (80 columns), ``inventory_json`` what ``--json`` prints.
A record that does not parse is not dropped: it shows as a box in state ``unreadable``
with the reason, so a box that reports garbage is seen, not hidden.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BoxState", "box_state", "group_members", "inventory_json", "render_status"]

#: Default age after which a box whose last report is older counts as offline (s): two of
#: the boxes' default heartbeats ([control] heartbeat = 300 s), so one late report is not
#: an outage.
DEFAULT_STALE_S = 600.0


@dataclass(frozen=True)
class BoxState:
    """What one box last reported, as the inventory shows it."""

    edge_id: str
    ts_ms: int | None
    software_version: str | None = None
    applied_version: int | None = None
    applied_hash: str | None = None
    applied_target: str | None = None
    groups: tuple[str, ...] | None = None  # None: a box from before reports carried them
    desired_result: dict[str, Any] | None = None
    uplink_state: str | None = None
    lag: int | None = None
    last_error: str | None = None
    unreadable: str | None = None  # why the record did not parse
    reported: dict[str, Any] = field(default_factory=dict, repr=False)

    def state(self, now_ms: int, stale_s: float = DEFAULT_STALE_S) -> str:
        """``offline`` (no report for ``stale_s``), else the uplink's state, else ``online``."""
        if self.unreadable is not None:
            return "unreadable"
        if self.ts_ms is None or now_ms - self.ts_ms > stale_s * 1000:
            return "offline"
        return self.uplink_state or "online"

    def result_text(self) -> str:
        """``applied v7``, ``refused v8``, ``rolled back v9``: the last desired state's fate."""
        r = self.desired_result
        if not r:
            return "-"
        verb = str(r.get("result") or r.get("status") or "?").replace("_", " ")
        version, reason = r.get("version"), r.get("reason")
        if version is not None:
            return f"{verb} v{version}"
        # refused before its version could be trusted: say why in a word (unsigned, ...)
        return f"{verb} {reason}" if isinstance(reason, str) and len(reason) <= 12 else verb

    def result_detail(self) -> str | None:
        """The errors or reason that go with a refused or rolled-back result."""
        r = self.desired_result or {}
        errors = r.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(map(str, errors))
        for key in ("reason", "detail", "error"):
            if r.get(key):
                return str(r[key])
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _lag(uplink: dict[str, Any]) -> int | None:
    lag = uplink.get("lag")
    if isinstance(lag, dict):  # per topic or partition: the box's total backlog
        values = [_int(v) for v in lag.values()]
        return sum(v for v in values if v is not None) if values else None
    return _int(lag) if lag is not None else _int(uplink.get("lag_records"))


def box_state(key: bytes, value: bytes) -> BoxState:
    """One reported record (key = edge id, value = the reported JSON) as a ``BoxState``."""
    edge_id = key.decode("utf-8", "replace")
    try:
        doc = json.loads(value)
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        return BoxState(edge_id, None, unreadable=f"not reported state: {exc}")
    applied: dict[str, Any] = doc["applied"] if isinstance(doc.get("applied"), dict) else {}
    uplink: dict[str, Any] = doc["uplink"] if isinstance(doc.get("uplink"), dict) else {}
    result = doc.get("desired_result")
    groups = doc.get("groups")
    last_error = doc.get("last_error")
    return BoxState(
        edge_id=str(doc.get("edge_id") or edge_id),
        ts_ms=_int(doc.get("ts_ms")),
        software_version=doc.get("software_version") if isinstance(
            doc.get("software_version"), str) else None,
        applied_version=_int(applied.get("version")),
        applied_hash=applied.get("hash") if isinstance(applied.get("hash"), str) else None,
        applied_target=applied.get("target") if isinstance(applied.get("target"), str) else None,
        groups=tuple(map(str, groups)) if isinstance(groups, list) else None,
        desired_result=result if isinstance(result, dict) else None,
        uplink_state=uplink.get("state") if isinstance(uplink.get("state"), str) else None,
        lag=_lag(uplink),
        last_error=str(last_error) if last_error else None,
        reported=doc,
    )


def group_members(boxes: list[BoxState], group: str, now_ms: int,
                  stale_s: float = DEFAULT_STALE_S) -> tuple[set[str], set[str]]:
    """(online, offline) ids of the boxes whose latest report lists ``group``: who a group
    command should be answered by, and who is not expected to answer soon."""
    members = [b for b in boxes if b.groups is not None and group in b.groups]
    offline = {b.edge_id for b in members if b.state(now_ms, stale_s) in ("offline", "unreadable")}
    return {b.edge_id for b in members} - offline, offline


def _age(ms: int | None, now_ms: int) -> str:
    if ms is None:
        return "never"
    s = max(0, now_ms - ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


_COLUMNS = (("EDGE", 18, "<"), ("APPLIED", 7, ">"), ("LAST DESIRED", 18, "<"),
            ("STATE", 10, "<"), ("LAG", 8, ">"), ("LAST SEEN", 10, ">"))


def _row(cells: list[str]) -> str:
    return " ".join(f"{_cut(c, w):{a}{w}}" for c, (_, w, a) in zip(cells, _COLUMNS, strict=True))


def render_status(boxes: list[BoxState], now_ms: int, stale_s: float = DEFAULT_STALE_S,
                  width: int = 80) -> str:
    """The inventory as a table of one box a line, then the boxes' errors, then a summary."""
    if not boxes:
        return "no box has reported yet\n"
    lines = [_row([name for name, _, _ in _COLUMNS])]
    notes: list[str] = []
    for b in sorted(boxes, key=lambda b: b.edge_id):
        lines.append(_row([
            b.edge_id, "-" if b.applied_version is None else f"v{b.applied_version}",
            b.result_text(), b.state(now_ms, stale_s), "-" if b.lag is None else str(b.lag),
            _age(b.ts_ms, now_ms)]))
        for what, text in (("", b.unreadable), (f"{b.result_text()}: ", b.result_detail()),
                           ("last error: ", b.last_error)):
            if text:
                notes.append(f"{b.edge_id}: {what}{text}")
    states = Counter(b.state(now_ms, stale_s) for b in boxes)
    versions = Counter(b.applied_version for b in boxes)
    summary = (f"{len(boxes)} box{'es' if len(boxes) != 1 else ''}: "
               + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + "; applied "
               + ", ".join(f"{'none' if v is None else f'v{v}'} x{n}" for v, n in
                           sorted(versions.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))))
    out = lines + [""] + [w for n in notes for w in textwrap.wrap(
        n, width, subsequent_indent="    ", break_on_hyphens=False)]
    out += ([""] if notes else []) + textwrap.wrap(summary, width)
    return "\n".join(out) + "\n"


def inventory_json(boxes: list[BoxState], now_ms: int, stale_s: float = DEFAULT_STALE_S) -> str:
    """``--json``: one object per box, the derived state and age beside what it reported."""
    out = []
    for b in sorted(boxes, key=lambda b: b.edge_id):
        d = asdict(b)
        d["state"] = b.state(now_ms, stale_s)
        d["last_seen_s"] = None if b.ts_ms is None else max(0, now_ms - b.ts_ms) / 1000
        out.append(d)
    return json.dumps(out, indent=2, sort_keys=True) + "\n"
