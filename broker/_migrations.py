"""Upgrading a log written by an older version of this software, in place.

A field box is upgraded with its backlog on disk: the new version must open the
old file and keep every record, offset and group position in it.  Each schema
change is a step here, taking the log from version ``n`` to ``n + 1``.
``_storage.connect`` runs the steps a log lacks, in order, each in one
``BEGIN IMMEDIATE`` transaction together with its version bump, so a power cut
or a full disk leaves the log at a version it really has, never between two.

A step that changes a table does it the way SQLite documents for what ``ALTER
TABLE`` cannot do (https://sqlite.org/lang_altertable.html#otheralter): create
the new table, copy, drop the old one, rename, all inside the step.  Tables
here are ``WITHOUT ROWID``, which sqlite-utils' ``transform()`` cannot rebuild
(it copies a ``rowid`` they do not have), hence hand-written SQL.

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


#: STEPS[i] takes a log from schema i + 1 to i + 2.  Append only: a shipped step never changes.
STEPS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _v1_to_v2,
)

#: The schema this software writes: one past the last step.
SCHEMA_VERSION = len(STEPS) + 1
