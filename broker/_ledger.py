"""The drop ledger: what the quota dropped, kept within a share of the quota of its own.

Each drop under the quota writes one entry per topic (and per kind: replicated
or not) to ``DROP_LEDGER_TOPIC``: the dropped offsets as ranges, how many,
how many bytes, and why.  A log kept full for long drops again and again, so
the ledger would grow until it owned the quota (seen: 600 entries and no data
in a 200 kB quota).  It is bounded instead:

* entries the uplink (a protected group) has replicated go first, before any
  data record (``_retention``);
* past its share (``QuotaShares.ledger_bytes``), the oldest entries are
  summarised: deleted, and replaced by one entry per topic that names the same
  offsets with adjacent ranges joined, the same count and bytes, and how many
  entries it stands for (``summary_of``).  The ledger then takes at most half
  its share, so this happens now and then, not on every drop.  Entries already
  replicated are deleted without a summary: they are upstream.  Summaries are
  counted (``ledger_summarised_entries`` in ``describe_log``) and logged.

Ranges stay exact unless one partition would need more than ``_MAX_RANGES``
ranges in a summary (gaps left by age retention between drops): then the
closest ranges are joined across their gap, the entry says ``approximate``,
and ``count`` stays the exact number of records dropped.  When even one summary
per topic would not fit (a log of many topics), the summaries are folded into
one per kind with ``topic`` ``"*"``: the counts, bytes and the topics with most
records dropped (``topics``), no offsets, ``approximate``.

Functions here run inside the writer's transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from ._config import DROP_LEDGER_TOPIC
from ._errors import ConfigError
from ._storage import OFFSET_RANGE_SQL, RECORD_OVERHEAD, SETTLE_SQL, offset_range

if TYPE_CHECKING:
    from ._log import Log

log = logging.getLogger("broker.retention")

QUOTA_REASON = "disk quota reached, policy drop-oldest"
_MAX_RANGES = 16
# A coarse summary (see _coarse) names the topics with most records dropped, up to this many.
_MAX_TOPICS_NAMED = 20
COARSE_TOPIC = "*"


def entry_value(topic: str, unreplicated: bool, entry: dict[str, Any], wall_ms: int) -> dict[str, Any]:
    """The ledger record for one drop of ``topic``'s records (``entry``: ranges, count, bytes)."""
    # ``unreplicated``: some protected group still needed the records; ``unread_by`` names
    # which (the uplink's group: not upstream; a topology's: not processed).
    unread = sorted(entry.get("unread_by", ()))
    reason = QUOTA_REASON
    if unreplicated:
        reason += f" (records not yet replicated or processed: unread by {', '.join(unread)})"
    value = {
        "topic": topic,
        "ranges": [{"partition": p, "from_offset": a, "to_offset": b - 1}
                   for p, (a, b) in sorted(entry["ranges"].items())],
        "count": entry["count"],
        "bytes": entry["bytes"],
        "reason": reason,
        "unreplicated": unreplicated,
        "wall_ms": wall_ms,
    }
    if unreplicated:
        value["unread_by"] = unread
    return value


def cost(dropped: dict[tuple[str, bool], dict[str, Any]], wall_ms: int) -> int:
    """Bytes the ledger records for ``dropped`` will take under the quota."""
    return sum(
        len(json.dumps(entry_value(t, u, e, wall_ms), separators=(",", ":"))) + RECORD_OVERHEAD
        for (t, u), e in dropped.items() if t != DROP_LEDGER_TOPIC
    )


def caller_entry(topic: str, ranges: list[tuple[int, int, int]], reason: str, wall_ms: int,
                 fields: dict[str, Any]) -> dict[str, Any]:
    """A ledger record for drops a client reports (``record_drops``), checked so summaries can read it."""
    if not isinstance(topic, str) or not topic:
        raise ConfigError(f"record_drops: topic: expected a topic name, got {topic!r}")
    if not isinstance(reason, str) or not reason:
        raise ConfigError(f"record_drops: reason: expected a non-empty string, got {reason!r}")
    spans = []
    for r in ranges:
        if (not isinstance(r, tuple | list) or len(r) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in r)
                or r[0] < 0 or not 0 <= r[1] <= r[2]):
            raise ConfigError("record_drops: ranges: expected (partition, from_offset, to_offset) with "
                              f"0 <= from_offset <= to_offset, got {r!r}")
        spans.append({"partition": r[0], "from_offset": r[1], "to_offset": r[2]})
    if not spans:
        raise ConfigError("record_drops: ranges: expected at least one range")
    taken = {"topic", "ranges", "count", "reason", "wall_ms", "summary_of"} & set(fields)
    if taken:
        raise ConfigError(f"record_drops: {', '.join(sorted(taken))} cannot be passed as extra fields")
    value = {"topic": topic, "ranges": spans,
             "count": sum(s["to_offset"] - s["from_offset"] + 1 for s in spans),
             "bytes": 0, "reason": reason, "unreplicated": False, "wall_ms": wall_ms}
    value.update(fields)
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"record_drops: fields: expected JSON values ({exc})") from None
    return value


def ledger_bytes(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT coalesce(sum(bytes), 0) FROM partition_ends WHERE topic=?",
                       (DROP_LEDGER_TOPIC,)).fetchone()
    return int(row[0])


def bound(lg: Log, conn: sqlite3.Connection, share: int, floor: int | None) -> int:
    """Summarise the oldest entries if the ledger takes more than ``share`` bytes.

    ``floor``: the lowest ledger offset some protected group still needs (None:
    no protected group reads the ledger, so no entry is upstream yet).  Returns
    how many entries were summarised or, being upstream, deleted.
    """
    row = conn.execute("SELECT log_start_offset, next_offset, bytes FROM partition_ends WHERE topic=? AND partition=0",
                       (DROP_LEDGER_TOPIC,)).fetchone()
    if row is None or row[2] <= share:
        return 0
    start, nxt, size = row
    target = share // 2
    groups: dict[tuple[str, bool, str], dict[str, Any]] = {}
    end, freed, upstream = start, 0, 0
    for off, value, rec_size in conn.execute(
        f"SELECT offset, value, coalesce(length(value),0)+{RECORD_OVERHEAD} FROM records"
        f" WHERE {OFFSET_RANGE_SQL} ORDER BY id",
        offset_range(DROP_LEDGER_TOPIC, 0, start, nxt - 1),
    ):
        if size - freed + _summary_cost(groups) <= target:
            break
        end, freed = off + 1, freed + rec_size
        if floor is not None and off < floor:
            upstream += 1  # replicated already: upstream knows, no summary needed
            continue
        _absorb(groups, off, value)
    if end == start:
        return 0
    conn.execute(SETTLE_SQL, (DROP_LEDGER_TOPIC, 0))  # bytes counts every kept entry before some go
    conn.execute(f"DELETE FROM records WHERE {OFFSET_RANGE_SQL}", offset_range(DROP_LEDGER_TOPIC, 0, start, end - 1))
    conn.execute("UPDATE partitions SET log_start_offset=?, bytes=max(0, bytes-?) WHERE topic=? AND partition=0",
                 (end, freed, DROP_LEDGER_TOPIC))
    summarised = end - start - upstream
    summaries = _summaries(groups)
    if sum(len(json.dumps(v, separators=(",", ":"))) + RECORD_OVERHEAD for v in summaries) > target:
        # One summary per topic is itself past the share (a log of many topics): keep the
        # counts and which topics, not the offsets, rather than refuse new data.
        summaries = _coarse(summaries)
    for value in summaries:
        lg.append_internal(conn, DROP_LEDGER_TOPIC, value)
    _bump(conn, "ledger_summarised_entries", end - start)
    log.warning("drop ledger over its share of %d bytes: %d entries summarised in %d, %d upstream ones deleted",
                share, summarised, len(summaries), upstream)
    return end - start


def _coarse(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summaries folded into one per kind, naming topics and counts but no offsets."""
    kinds: dict[tuple[bool, str], dict[str, Any]] = {}
    for v in summaries:
        key = (bool(v["unreplicated"]), str(v.get("dead_letter_topic", "")))
        k = kinds.setdefault(key, {
            "topic": COARSE_TOPIC, "ranges": [], "count": 0, "bytes": 0, "reason": v["reason"],
            "unreplicated": key[0], "wall_ms": 0, "from_wall_ms": 0, "summary_of": 0,
            "approximate": True, "topics": {}})
        k["count"] += v["count"]
        k["bytes"] += v["bytes"]
        k["summary_of"] += v["summary_of"]
        k["wall_ms"] = max(k["wall_ms"], v["wall_ms"])
        k["from_wall_ms"] = min(k["from_wall_ms"] or v["from_wall_ms"], v["from_wall_ms"])
        if k["reason"] != v["reason"]:
            k["reason"] = QUOTA_REASON
        for t, n in (v.get("topics") or {v["topic"]: v["count"]}).items():
            k["topics"][t] = k["topics"].get(t, 0) + n
        if v.get("unread_by"):
            k["unread_by"] = sorted(set(k.get("unread_by", [])) | set(v["unread_by"]))
        if key[1]:
            k["dead_letter_topic"] = key[1]
    for k in kinds.values():
        named = sorted(k["topics"].items(), key=lambda tn: -tn[1])
        k["topics"] = dict(named[:_MAX_TOPICS_NAMED])
        if len(named) > _MAX_TOPICS_NAMED:
            k["other_topics"] = len(named) - _MAX_TOPICS_NAMED
    return list(kinds.values())


def _absorb(groups: dict[tuple[str, bool, str], dict[str, Any]], off: int, raw: bytes | None) -> None:
    """Fold one ledger record into the summary being built."""
    try:
        e = json.loads(raw or b"")
        topic, ranges, count = e["topic"], e["ranges"], int(e["count"])
        spans = [(int(r["partition"]), int(r["from_offset"]), int(r["to_offset"])) for r in ranges]
    except (ValueError, KeyError, TypeError):
        # Not an entry of ours (someone produced to the ledger): counted, not lost silently.
        e, topic, spans, count = {}, "", [], 0
    unreplicated = bool(e.get("unreplicated", False))
    # An entry for a record the cluster refused (kept in a local dead-letter topic, written
    # by the uplink) is no quota drop: it stays apart, and says where the record is.
    kept_in = str(e.get("dead_letter_topic") or "")
    g = groups.setdefault((topic, unreplicated, kept_in), {
        "ranges": {}, "count": 0, "bytes": 0, "entries": 0, "unread_by": set(), "reasons": set(),
        "from_wall_ms": None, "to_wall_ms": None, "approximate": False, "unreadable": []})
    if not topic:
        g["unreadable"].append(off)
        return
    g["count"] += count
    for t, n in (e.get("topics") or {}).items():  # a coarse summary's per-topic counts
        g.setdefault("topics", {})[t] = g.get("topics", {}).get(t, 0) + int(n)
    g["bytes"] += int(e.get("bytes", 0) or 0)
    g["entries"] += int(e.get("summary_of", 1) or 1)
    g["unread_by"].update(e.get("unread_by", ()))
    g["reasons"].add(str(e.get("reason", "")))
    g["approximate"] = g["approximate"] or bool(e.get("approximate", False))
    for k in ("from_wall_ms", "wall_ms"), ("to_wall_ms", "wall_ms"):
        w = e.get(k[0], e.get(k[1]))
        if isinstance(w, int):
            cur = g[k[0]]
            g[k[0]] = w if cur is None else (min(cur, w) if k[0] == "from_wall_ms" else max(cur, w))
    for p, a, b in spans:
        g["ranges"].setdefault(p, []).append((a, b))


def _joined(spans: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], bool]:
    """Adjacent and overlapping ranges joined; at most ``_MAX_RANGES``, closing the smallest gaps."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    approximate = False
    while len(out) > _MAX_RANGES:
        i = min(range(len(out) - 1), key=lambda j: out[j + 1][0] - out[j][1])
        out[i:i + 2] = [(out[i][0], out[i + 1][1])]
        approximate = True
    return out, approximate


def _summaries(groups: dict[tuple[str, bool, str], dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for (topic, unreplicated, kept_in), g in sorted(groups.items()):
        ranges, approx = [], g["approximate"]
        for p, spans in sorted(g["ranges"].items()):
            joined, a = _joined(spans)
            approx = approx or a
            ranges += [{"partition": p, "from_offset": x, "to_offset": y} for x, y in joined]
        reasons = sorted(r for r in g["reasons"] if r)
        value: dict[str, Any] = {
            "topic": topic, "ranges": ranges, "count": g["count"], "bytes": g["bytes"],
            "reason": (reasons[0] if len(reasons) == 1 else QUOTA_REASON if not reasons
                       else "; ".join(reasons)),
            "unreplicated": unreplicated,
            "wall_ms": g["to_wall_ms"] or 0,
            "from_wall_ms": g["from_wall_ms"] or 0,
            "summary_of": g["entries"],
        }
        if unreplicated:
            value["unread_by"] = sorted(g["unread_by"])
        if kept_in:
            value["dead_letter_topic"] = kept_in
        if approx:
            value["approximate"] = True  # ranges joined across gaps; count is exact
        if g["unreadable"]:
            value["unreadable_entries"] = len(g["unreadable"])
        if g.get("topics"):
            value["topics"] = g["topics"]
        out.append(value)
    return out


def _summary_cost(groups: dict[tuple[str, bool, str], dict[str, Any]]) -> int:
    # An upper bound, cheap enough to ask after every entry absorbed: ranges as if none
    # joined (up to the cap), every name and reason in full.
    total = 0
    for (topic, _u, kept_in), g in groups.items():
        total += 400 + RECORD_OVERHEAD + len(topic) + len(kept_in) + sum(len(r) + 4 for r in g["reasons"])
        total += sum(len(n) + 3 for n in g["unread_by"])
        total += sum(64 * min(len(s), _MAX_RANGES) for s in g["ranges"].values())
    return total


def _bump(conn: sqlite3.Connection, key: str, n: int) -> None:
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, 0)", (key,))
    conn.execute("UPDATE meta SET value=value+? WHERE key=?", (n, key))
