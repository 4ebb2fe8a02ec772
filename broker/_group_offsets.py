"""Writing consumer-group offsets: the one upsert that the consumer, the admin client and
transactions share, so the three cannot drift apart (a column added to one only)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

_UPSERT = (
    "INSERT INTO group_offsets(group_id, topic, partition, offset, metadata, commit_ms)"
    " VALUES (?,?,?,?,?,?) ON CONFLICT(group_id, topic, partition) DO UPDATE SET"
    " offset=excluded.offset, metadata=excluded.metadata, commit_ms=excluded.commit_ms"
)

#: One row to write: (group_id, topic, partition, offset, metadata, commit_ms).
OffsetRow = tuple[str, str, int, int, str, int]


def upsert_group_offsets(conn: sqlite3.Connection, rows: Iterable[OffsetRow]) -> None:
    """Set each row's committed offset; the caller owns the transaction."""
    conn.executemany(_UPSERT, rows)
