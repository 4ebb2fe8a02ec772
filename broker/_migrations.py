"""Upgrading a log written by an older version of this software, in place.

A field box is upgraded with its backlog on disk: the new version must open the
old file and keep every record, offset and group position in it.  Each schema
change is a step here, taking the log from version ``n`` to ``n + 1``.
``_storage.connect`` runs the steps a log lacks, in order, each in one
``BEGIN IMMEDIATE`` transaction together with its version bump, so a power cut
or a full disk leaves the log at a version it really has, never between two.

A step that changes a table does it the way SQLite documents for what ``ALTER
TABLE`` cannot do (https://sqlite.org/lang_altertable.html#otheralter): create
the new table, copy, drop the old one, rename, all inside the step.  Most tables
here are ``WITHOUT ROWID``, which sqlite-utils' ``transform()`` cannot rebuild
(it copies a ``rowid`` they do not have), hence hand-written SQL.

A step that copies the records needs free disk for a second copy of them and a WAL
as large (the quota's WAL share does not bound one migration): on a full disk it
fails, the log stays whole at the old schema, and the error says so.

Older software refuses a log of a newer schema (``LogVersionError``) rather
than write to a file it does not understand: a box cannot be downgraded past
a migration without moving its log aside.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    # Schema 1 shipped without these two tables; later versions created them at every
    # connect with IF NOT EXISTS (a schema lookup per connection, and none on a read-only
    # disk).  From 2 on every log has them.  IF NOT EXISTS: many 1s already do.
    # One statement per execute(): executescript() would COMMIT the step's transaction first.
    conn.execute("""
        CREATE TABLE IF NOT EXISTS protected_group_topics (
            group_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            PRIMARY KEY (group_id, topic)
        ) WITHOUT ROWID""")
    conn.execute("""
        CREATE TABLE IF NOT EXISTS state (
            store TEXT NOT NULL,
            key BLOB NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (store, key)
        ) WITHOUT ROWID""")
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('log_clock_ms', 0)")


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    # Records keyed by one integer, partitions.id << 44 | offset, not WITHOUT ROWID on
    # (topic, partition, offset): appends then take fresh leaves instead of rebalancing full
    # ones with their siblings, about half the pages per commit (_storage.OFFSET_BITS).
    conn.execute("ALTER TABLE partitions ADD COLUMN id INTEGER NOT NULL DEFAULT 0")
    conn.execute("""
        UPDATE partitions SET id = (SELECT count(*) FROM partitions q WHERE q.topic < partitions.topic
                                    OR (q.topic = partitions.topic AND q.partition <= partitions.partition))""")
    conn.execute("""
        CREATE TABLE records_v3 (
            id INTEGER PRIMARY KEY,
            topic TEXT NOT NULL,
            partition INTEGER NOT NULL,
            offset INTEGER NOT NULL,
            timestamp INTEGER NOT NULL,
            log_time INTEGER NOT NULL,
            key BLOB,
            value BLOB,
            headers TEXT
        )""")
    # In key order, so the copy itself appends.
    conn.execute("""
        INSERT INTO records_v3 (id, topic, partition, offset, timestamp, log_time, key, value, headers)
        SELECT (p.id << 44) + r.offset, r.topic, r.partition, r.offset, r.timestamp, r.log_time,
               r.key, r.value, r.headers
        FROM partitions p JOIN records r ON r.topic = p.topic AND r.partition = p.partition
        ORDER BY p.id, r.offset""")
    (copied,), (had,) = (conn.execute("SELECT count(*) FROM records_v3").fetchone(),
                         conn.execute("SELECT count(*) FROM records").fetchone())
    if copied != had:  # records of no partition: never written by this software
        raise sqlite3.IntegrityError(
            f"{had - copied} of {had} records belong to no partition in the partitions table")
    conn.execute("DROP TABLE records")
    conn.execute("ALTER TABLE records_v3 RENAME TO records")


#: STEPS[i] takes a log from schema i + 1 to i + 2.  Append only: a shipped step never changes.
STEPS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _v1_to_v2,
    _v2_to_v3,
)

#: The schema this software writes: one past the last step.
SCHEMA_VERSION = len(STEPS) + 1
