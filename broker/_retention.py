"""Retention by age and size, and dropping under the disk quota.

Rules, in the order they bind:

* Records at or above the committed offset of every *protected* consumer
  group are never removed by age or size retention: the uplink's group (not
  upstream yet) protects every topic, a stream topology's group only its
  input topics (not processed yet).  A protected group with no commit on a
  partition it covers protects all of that partition.
* Under the disk quota with policy ``drop-oldest``, already-replicated records
  go first, lowest-priority topics first; then, if that is not enough,
  unreplicated ones (still needed by a protected group: not upstream or not
  processed; the ledger names the groups) in the same order.  Drop-ledger
  entries go here only once a protected group has read them (they are
  upstream then), and before any data record; the others are summarised when
  the ledger outgrows its share of the quota (``_ledger``), never dropped
  unrecorded.
* Every quota drop is counted, logged, and recorded in the drop-ledger topic,
  so whoever reads the log upstream knows what is missing.  How much a drop
  must free, in pages of the database, is ``_quota``'s business.

Functions here run inside the writer's transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from . import _ledger
from ._config import DROP_LEDGER_TOPIC
from ._quietlog import QuietWarning
from ._storage import OFFSET_RANGE_SQL, RECORD_OVERHEAD, SETTLE_SQL, offset_range

if TYPE_CHECKING:
    from ._log import Log

log = logging.getLogger("broker.retention")
_drop_warning = QuietWarning(log)

_SIZE_SQL = f"coalesce(length(key),0)+coalesce(length(value),0)+coalesce(length(headers),0)+{RECORD_OVERHEAD}"
_CHUNK = 1000


def protected_needs(conn: sqlite3.Connection) -> dict[tuple[str, int], dict[str, int]]:
    """For each protected partition, the lowest offset each protected group still needs.

    A group protects every topic, or only those listed for it in
    ``protected_group_topics`` (a stream topology's inputs).  Partitions no
    protected group covers are absent.
    """
    scopes: dict[str, set[str] | None] = {
        g: None for (g,) in conn.execute("SELECT group_id FROM protected_groups")}
    if not scopes:
        return {}
    for g, t in conn.execute("SELECT group_id, topic FROM protected_group_topics"):
        if g in scopes:
            scopes[g] = (scopes[g] or set()) | {t}
    commits: dict[tuple[str, int], dict[str, int]] = {}
    marks = ",".join("?" * len(scopes))
    for g, t, p, off in conn.execute(
            f"SELECT group_id, topic, partition, offset FROM group_offsets WHERE group_id IN ({marks})",
            tuple(scopes)):
        commits.setdefault((t, p), {})[g] = off
    needs: dict[tuple[str, int], dict[str, int]] = {}
    for topic, part, start in conn.execute("SELECT topic, partition, log_start_offset FROM partitions"):
        done = commits.get((topic, part), {})
        # A group without a commit here has read nothing: it needs everything.
        need = {g: max(start, done.get(g, start)) for g, scope in scopes.items()
                if scope is None or topic in scope}
        if need:
            needs[(topic, part)] = need
    return needs


def protected_floors(conn: sqlite3.Connection) -> dict[tuple[str, int], int]:
    """For each protected partition, the lowest offset some protected group still needs."""
    return {tp: min(need.values()) for tp, need in protected_needs(conn).items()}


def _bump(conn: sqlite3.Connection, key: str, n: int) -> None:
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, 0)", (key,))
    conn.execute("UPDATE meta SET value=value+? WHERE key=?", (n, key))


def _delete_prefix(conn: sqlite3.Connection, topic: str, part: int, start: int, end: int, freed: int) -> None:
    conn.execute(SETTLE_SQL, (topic, part))  # bytes counts every kept record before some go
    conn.execute(f"DELETE FROM records WHERE {OFFSET_RANGE_SQL}", offset_range(topic, part, start, end - 1))
    conn.execute(
        "UPDATE partitions SET log_start_offset=?, bytes=max(0, bytes-?) WHERE topic=? AND partition=?",
        (end, freed, topic, part),
    )


def apply_retention(lg: Log, conn: sqlite3.Connection) -> dict[str, int]:
    """Remove records past their topic's age or size limit; returns counts per topic."""
    now = lg.log_now()
    floors = protected_floors(conn)
    removed: dict[str, int] = {}
    rows = conn.execute(
        "SELECT t.name, t.retention_ms, t.retention_bytes, p.partition, p.log_start_offset, p.next_offset, p.bytes"
        " FROM topics t JOIN partition_ends p ON p.topic = t.name"
        " WHERE t.retention_ms >= 0 OR t.retention_bytes >= 0"
    ).fetchall()
    for topic, ret_ms, ret_bytes, part, start, nxt, size in rows:
        limit = min(nxt, floors.get((topic, part), nxt))
        if limit <= start:
            continue
        cutoff = now - ret_ms if ret_ms >= 0 else None
        excess = size - ret_bytes if ret_bytes >= 0 else 0
        end, freed = start, 0
        for off, log_time, rec_size in conn.execute(
            f"SELECT offset, log_time, {_SIZE_SQL} FROM records WHERE {OFFSET_RANGE_SQL} ORDER BY id",
            offset_range(topic, part, start, limit - 1),
        ):
            old = cutoff is not None and log_time < cutoff
            big = freed < excess
            if not (old or big):
                break
            end, freed = off + 1, freed + rec_size
        if end > start:
            _delete_prefix(conn, topic, part, start, end, freed)
            removed[topic] = removed.get(topic, 0) + (end - start)
    if removed:
        total = sum(removed.values())
        lg.stats["expired"] += total
        _bump(conn, "expired_records", total)
        log.info("retention removed %d record(s): %s", total, removed)
    return removed


def drop_for_quota(lg: Log, conn: sqlite3.Connection, need: int, ledger_share: int, headroom: int = 0) -> int:
    """Drop the oldest records, least precious first, until ``need`` bytes (logical) are freed.

    ``headroom`` more bytes go too (so that a full log drops now and then, not on
    every send), from unreplicated records only if replicated ones could not make
    even the room needed: then unreplicated ones go anyway, and a log that holds
    nothing else (the uplink offline) would otherwise drop, and write a ledger
    entry, on every transaction.
    Also frees the room the drop-ledger records take; then keeps the ledger
    within ``ledger_share`` bytes (``_ledger.bound``).  Returns the logical
    bytes freed.  The caller (``_quota``) turns pages into bytes and asks
    again if the pages freed were not enough.
    """
    wall_ms = lg.clock.wall_ms()
    needs = protected_needs(conn)
    floors = {tp: min(need.values()) for tp, need in needs.items()}
    parts = conn.execute(
        "SELECT p.topic, p.partition, p.log_start_offset, p.next_offset, t.priority"
        " FROM partition_ends p JOIN topics t ON t.name = p.topic"
    ).fetchall()
    # Replicated ledger entries are upstream already and only describe other drops: they go
    # before any data record, replicated or not (priority -inf).
    state = {(t, p): [start, nxt, float("-inf") if t == DROP_LEDGER_TOPIC else prio]
             for t, p, start, nxt, prio in parts}
    dropped: dict[tuple[str, bool], dict[str, Any]] = {}
    freed = 0

    def short() -> bool:
        return freed < goal + _ledger.cost(dropped, wall_ms)

    goal = need + headroom
    for unreplicated in (False, True):
        if unreplicated and freed >= need + _ledger.cost(dropped, wall_ms):
            break  # replicated records made the room needed: the headroom never costs unreplicated ones
        for prio in sorted({v[2] for v in state.values()}):
            while short():
                # The partition whose first droppable record is oldest, and how old
                # the runner-up's is: drop from the first only down to that age, so
                # records go oldest first across partitions, not partition by partition.
                best, bound = None, None
                for (t, p), (start, nxt, pr) in state.items():
                    if pr != prio:
                        continue
                    if t == DROP_LEDGER_TOPIC:
                        # Ledger entries go here only once a protected group (the uplink) has
                        # read them; the rest are summarised when the ledger outgrows its
                        # share (_ledger.bound), never dropped unrecorded.
                        if unreplicated or (t, p) not in floors:
                            continue
                        limit = min(nxt, floors[(t, p)])
                    else:
                        limit = nxt if unreplicated else min(nxt, floors.get((t, p), nxt))
                    if start >= limit:
                        continue
                    first = conn.execute(
                        f"SELECT log_time FROM records WHERE {OFFSET_RANGE_SQL}", offset_range(t, p, start, start)
                    ).fetchone()
                    age_key = first[0] if first else 0
                    if best is None or age_key < best[0]:
                        if best is not None:
                            bound = best[0]
                        best = (age_key, t, p, start, limit)
                    elif bound is None or age_key < bound:
                        bound = age_key
                if best is None:
                    break
                _, t, p, start, limit = best
                target = goal + _ledger.cost(dropped, wall_ms)
                end, chunk_freed = start, 0
                for off, log_time, rec_size in conn.execute(
                    f"SELECT offset, log_time, {_SIZE_SQL} FROM records WHERE {OFFSET_RANGE_SQL}"
                    " ORDER BY id LIMIT ?",
                    (*offset_range(t, p, start, limit - 1), _CHUNK),
                ):
                    if end > start and bound is not None and log_time > bound:
                        break
                    end, chunk_freed = off + 1, chunk_freed + rec_size
                    if freed + chunk_freed >= target:
                        break
                if end == start:  # a gap (records already gone): move the start on
                    end = limit
                _delete_prefix(conn, t, p, start, end, chunk_freed)
                state[(t, p)][0] = end
                freed += chunk_freed
                entry = dropped.setdefault((t, unreplicated), {"ranges": {}, "count": 0, "bytes": 0})
                lo, _hi = entry["ranges"].get(p, (start, end))
                entry["ranges"][p] = (min(lo, start), end)
                entry["count"] += end - start
                entry["bytes"] += chunk_freed
                if unreplicated:
                    entry.setdefault("unread_by", set()).update(
                        g for g, need in needs.get((t, p), {}).items() if need < end)
            if not short():
                break
        if not short():
            break
    total = 0
    for (topic, unreplicated), entry in dropped.items():
        if topic == DROP_LEDGER_TOPIC:  # replicated already; no ledger of the ledger
            log.info("dropped %d replicated drop-ledger entries under the quota", entry["count"])
            continue
        total += entry["count"]
        value = _ledger.entry_value(topic, unreplicated, entry, wall_ms)
        _drop_warning.warn("dropped %d record(s) of %s: %s", entry["count"], topic, value["reason"])
        lg.append_internal(conn, DROP_LEDGER_TOPIC, value)
    if total:
        lg.stats["dropped"] += total
        _bump(conn, "dropped_records", total)
    _ledger.bound(lg, conn, ledger_share, floors.get((DROP_LEDGER_TOPIC, 0)))
    return freed
