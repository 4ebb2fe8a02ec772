"""The body of a ``LogTransaction``'s commit, run by the log's writer connection.

Kept apart from ``_transaction`` (which collects the operations in memory) so that
``_log`` can call it without importing the client-facing side.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from ._errors import CommitFailedError, UnknownTopicOrPartitionError
from ._group_offsets import upsert_group_offsets
from ._pending import Pending

if TYPE_CHECKING:
    from ._log import Log


def write_transaction(log: Log, conn: sqlite3.Connection, records: list[Pending],
                      offsets: dict[tuple[str, str, int], tuple[int, str]],
                      expected: dict[tuple[str, str, int], int | None],
                      state: dict[tuple[str, bytes], bytes | None]) -> None:
    """The body of a transaction; the caller owns ``BEGIN``/``COMMIT`` and the connection."""
    for (group, topic, part), want in expected.items():
        row = conn.execute(
            "SELECT offset FROM group_offsets WHERE group_id=? AND topic=? AND partition=?",
            (group, topic, part),
        ).fetchone()
        have = row[0] if row else None
        if have != want:
            raise CommitFailedError(
                f"group {group!r} has committed offset {have} for {topic}[{part}], not {want} as "
                "this transaction expected: another member of the group moved it (two runners of "
                "one group?); nothing was written"
            )
    if records:
        log.assign_partitions(conn, records)
        log.insert_records(conn, records)
    if offsets:
        # Kafka answers UNKNOWN_TOPIC_OR_PARTITION too: an offset kept for a partition that
        # does not exist would apply to a topic created later under that name.
        for topic, part in {(t, p) for (_g, t, p) in offsets}:
            if conn.execute("SELECT 1 FROM partitions WHERE topic=? AND partition=?", (topic, part)).fetchone() is None:
                raise UnknownTopicOrPartitionError(
                    f"commit_offsets: no partition {part} of topic {topic!r} in this log; nothing was written")
        now = log.clock.wall_ms()
        upsert_group_offsets(conn, [(g, t, p, off, meta, now) for (g, t, p), (off, meta) in offsets.items()])
    if state:
        puts = [(s, k, v) for (s, k), v in state.items() if v is not None]
        dels = [(s, k) for (s, k), v in state.items() if v is None]
        if puts:
            conn.executemany(
                "INSERT INTO state(store, key, value) VALUES (?,?,?)"
                " ON CONFLICT(store, key) DO UPDATE SET value=excluded.value",
                puts,
            )
        if dels:
            conn.executemany("DELETE FROM state WHERE store=? AND key=?", dels)
