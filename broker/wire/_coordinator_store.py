"""Committed offsets of wire clients' groups, in the log's own ``group_offsets`` table.

The same rows the Python API's consumers, ``KafkaAdminClient`` and ``edge-consumer-groups``
read and write (through ``_group_offsets.upsert_group_offsets``), so a group's position is
one thing whichever way it was committed. Every method blocks on SQLite: the coordinator
calls them on its own thread, never on the event loop.
"""

from __future__ import annotations

from .._group_offsets import upsert_group_offsets
from .._log import Log
from .._storage import transaction, translate
from ._group_errors import NONE, OFFSET_METADATA_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION

#: Kafka's offset.metadata.max.bytes.
MAX_METADATA_BYTES = 4096

#: (topic, partition, offset, metadata) of one committed partition.
Committed = tuple[str, int, int, str]


class GroupOffsetStore:
    """Reads and writes one log's consumer-group offsets; not thread-safe (one thread)."""

    def __init__(self, log: Log) -> None:
        self._log = log

    def commit(self, group_id: str, offsets: list[Committed]) -> list[int]:
        """Commit what can be committed; one Kafka error code per row (0: committed)."""
        conn = self._log.reader()
        errors: list[int] = []
        rows = []
        now = self._log.clock.wall_ms()
        try:
            for topic, partition, offset, metadata in offsets:
                if len(metadata.encode()) > MAX_METADATA_BYTES:
                    errors.append(OFFSET_METADATA_TOO_LARGE)
                elif conn.execute("SELECT 1 FROM partitions WHERE topic=? AND partition=?",
                                  (topic, partition)).fetchone() is None:
                    errors.append(UNKNOWN_TOPIC_OR_PARTITION)
                else:
                    errors.append(NONE)
                    rows.append((group_id, topic, partition, offset, metadata, now))
            if rows:
                with transaction(conn):
                    upsert_group_offsets(conn, rows)
        except Exception as exc:
            raise translate(exc, f"committing offsets of group {group_id!r}") from exc
        if rows:
            self._log.notify()
        return errors

    def fetch(self, group_id: str, partitions: list[tuple[str, int]] | None) -> list[Committed]:
        """Committed offsets of ``partitions`` (-1 where none), or of every partition if None."""
        try:
            got = {(t, p): (o, m) for t, p, o, m in self._log.reader().execute(
                "SELECT topic, partition, offset, metadata FROM group_offsets WHERE group_id=?"
                " ORDER BY topic, partition", (group_id,))}
        except Exception as exc:
            raise translate(exc, f"reading offsets of group {group_id!r}") from exc
        if partitions is None:
            return [(t, p, o, m) for (t, p), (o, m) in got.items()]
        return [(t, p, *got.get((t, p), (-1, ""))) for t, p in partitions]

    def groups(self) -> list[str]:
        """Groups the log knows without members: they committed, or are protected from retention."""
        try:
            return [g for (g,) in self._log.reader().execute(
                "SELECT group_id FROM group_offsets UNION SELECT group_id FROM protected_groups ORDER BY 1")]
        except Exception as exc:
            raise translate(exc, "listing consumer groups") from exc

    def exists(self, group_id: str) -> bool:
        try:
            return self._log.reader().execute(
                "SELECT 1 FROM group_offsets WHERE group_id=? UNION ALL"
                " SELECT 1 FROM protected_groups WHERE group_id=? LIMIT 1",
                (group_id, group_id)).fetchone() is not None
        except Exception as exc:
            raise translate(exc, f"reading group {group_id!r}") from exc

    def delete(self, group_id: str) -> None:
        """Forget the group's offsets and retention protection, as ``delete_consumer_groups``."""
        conn = self._log.reader()
        try:
            with transaction(conn):
                for table in ("group_offsets", "protected_groups", "protected_group_topics"):
                    conn.execute(f"DELETE FROM {table} WHERE group_id=?", (group_id,))
        except Exception as exc:
            raise translate(exc, f"deleting group {group_id!r}") from exc
        self._log.notify()

    def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> None:
        conn = self._log.reader()
        try:
            with transaction(conn):
                conn.executemany("DELETE FROM group_offsets WHERE group_id=? AND topic=? AND partition=?",
                                 [(group_id, t, p) for t, p in partitions])
        except Exception as exc:
            raise translate(exc, f"deleting offsets of group {group_id!r}") from exc
        self._log.notify()
