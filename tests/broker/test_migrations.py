"""A log written by an older version is upgraded in place and keeps its backlog.

The old files are made here, from the schema as that version shipped it (frozen
below, never imported from ``broker``: the point is what older code wrote).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import broker._migrations as migrations
from broker import (
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    NewTopic,
    StorageError,
    TopicPartition,
)
from broker._storage import SCHEMA_VERSION

# Schema 1 as commit 0291882 shipped it (no protected_group_topics, no state).
V1_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, retention_ms INTEGER NOT NULL,"
    " retention_bytes INTEGER NOT NULL, priority INTEGER NOT NULL, created_ms INTEGER NOT NULL)",
    "CREATE TABLE partitions (topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,"
    " log_start_offset INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (topic, partition)) WITHOUT ROWID",
    "CREATE TABLE records (topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " timestamp INTEGER NOT NULL, log_time INTEGER NOT NULL, key BLOB, value BLOB, headers TEXT,"
    " PRIMARY KEY (topic, partition, offset)) WITHOUT ROWID",
    "CREATE TABLE group_offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,"
    " offset INTEGER NOT NULL, metadata TEXT NOT NULL DEFAULT '', commit_ms INTEGER NOT NULL,"
    " PRIMARY KEY (group_id, topic, partition)) WITHOUT ROWID",
    "CREATE TABLE protected_groups (group_id TEXT PRIMARY KEY) WITHOUT ROWID",
]

BACKLOG = 500


def make_v1_log(data_dir: Path, *, records: int = BACKLOG) -> None:
    """A log as version 1 left it: a WAL database with a topic of 2 partitions holding
    ``records`` records, the uplink's group protected and committed part way."""
    data_dir.mkdir(parents=True)
    conn = sqlite3.connect(data_dir / "log.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    for ddl in V1_SCHEMA:
        conn.execute(ddl)
    conn.execute("INSERT INTO meta VALUES ('schema_version', 1), ('log_clock_ms', 123456)")
    conn.execute("INSERT INTO topics VALUES ('readings', 2, -1, -1, 0, 1700000000000)")
    per = [records - records // 2, records // 2]
    for part in (0, 1):
        conn.execute("INSERT INTO partitions VALUES ('readings', ?, ?, 0, ?)", (part, per[part], per[part] * 60))
        conn.executemany(
            "INSERT INTO records VALUES ('readings', ?, ?, ?, 1000, ?, ?, ?)",
            [(part, off, 1700000000000 + off, f"car-{part}".encode(), f'{{"n": {off}}}'.encode(),
              '[["source","gps"]]') for off in range(per[part])])
    conn.execute("INSERT INTO protected_groups VALUES ('uplink')")
    conn.execute("INSERT INTO group_offsets VALUES ('uplink', 'readings', 0, 100, '', 1700000000000)")
    conn.execute("COMMIT")
    conn.close()


def schema_version(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "log.db") as conn:
        return conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]


def test_a_v1_log_is_upgraded_and_keeps_its_backlog(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_v1_log(d)
    assert SCHEMA_VERSION > 1
    with KafkaProducer(data_dir=d) as producer:
        assert schema_version(d) == SCHEMA_VERSION
        # Offsets go on from the old high watermarks.
        meta = producer.send("readings", b'{"n": "new"}', partition=1).get(timeout=10)
        assert meta.offset == BACKLOG // 2
    with KafkaConsumer(data_dir=d, auto_offset_reset="earliest", consumer_timeout_ms=500) as consumer:
        consumer.assign([TopicPartition("readings", 0), TopicPartition("readings", 1)])
        got = list(consumer)
    assert len(got) == BACKLOG + 1
    old = [r for r in got if r.value != b'{"n": "new"}']
    assert {(r.partition, r.offset) for r in old} == \
        {(0, o) for o in range(BACKLOG - BACKLOG // 2)} | {(1, o) for o in range(BACKLOG // 2)}
    assert all(r.headers == [("source", b"gps")] for r in old)
    with KafkaAdminClient(data_dir=d) as admin:
        group = admin.describe_consumer_group("uplink")
        assert group.protected
        assert admin.list_consumer_group_offsets("uplink")[TopicPartition("readings", 0)].offset == 100
        # What schema 2 added works on the upgraded log.
        admin.protect_consumer_group("streams.vitals", topics=["readings"])
    txn = KafkaProducer(data_dir=d)
    try:
        t = txn.begin_transaction()
        t.put_state("streams.vitals/s", b"k", b"v")
        t.commit()
    finally:
        txn.close()


def test_an_upgraded_log_opens_again_without_a_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "log"
    make_v1_log(d, records=10)
    KafkaProducer(data_dir=d).close()
    ran = []
    monkeypatch.setattr(migrations, "STEPS", tuple(
        (lambda conn, s=s: (ran.append(s), s(conn))) for s in migrations.STEPS))
    KafkaProducer(data_dir=d).close()
    assert ran == []


def test_a_step_that_fails_leaves_the_log_whole_at_its_version(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "log"
    make_v1_log(d, records=10)

    def half_done(conn: sqlite3.Connection) -> None:
        migrations.STEPS_ORIGINAL[0](conn)  # the real step's writes, then a failure
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(migrations, "STEPS_ORIGINAL", migrations.STEPS, raising=False)
    monkeypatch.setattr(migrations, "STEPS", (half_done, *migrations.STEPS[1:]))
    with pytest.raises(StorageError, match="upgrading .* from log schema 1 to 2.*left whole at schema 1"):
        KafkaProducer(data_dir=d)
    assert schema_version(d) == 1
    with sqlite3.connect(d / "log.db") as conn:
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "state" not in tables  # the step's own writes were rolled back with it
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 10
    monkeypatch.undo()
    with KafkaProducer(data_dir=d):  # the real step, next start
        assert schema_version(d) == SCHEMA_VERSION


def test_a_new_log_is_created_at_the_current_version(tmp_path: Path) -> None:
    KafkaProducer(data_dir=tmp_path / "log").close()
    assert schema_version(tmp_path / "log") == SCHEMA_VERSION


def test_records_are_keyed_by_partition_and_offset_after_the_upgrade(tmp_path: Path) -> None:
    # Schema 3: one integer key per record, partitions.id << 44 | offset (appends go to the
    # end of the B-tree), which every read and delete by offset relies on.
    d = tmp_path / "log"
    make_v1_log(d, records=20)
    with KafkaProducer(data_dir=d) as producer:
        producer.send("readings", b"new", partition=0).get(timeout=10)
    with sqlite3.connect(d / "log.db") as conn:
        ids = dict(conn.execute("SELECT partition, id FROM partitions WHERE topic='readings'"))
        assert sorted(ids.values()) == [1, 2]
        rows = conn.execute("SELECT id, partition, offset FROM records").fetchall()
        assert len(rows) == 21 and all(i == (ids[p] << 44) + o for i, p, o in rows)
        assert "WITHOUT ROWID" not in conn.execute("SELECT sql FROM sqlite_master WHERE name='records'").fetchone()[0]
    with KafkaAdminClient(data_dir=d) as admin:
        admin.delete_topics(["readings"])
        admin.create_topics([NewTopic("readings", 1, 1), NewTopic("other", 1, 1)])
    with sqlite3.connect(d / "log.db") as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0  # deleted with its topic
        assert sorted(i for (i,) in conn.execute("SELECT id FROM partitions")) == [1, 2]
    with KafkaConsumer("readings", data_dir=d, auto_offset_reset="earliest", consumer_timeout_ms=300) as consumer:
        assert list(consumer) == []


def test_records_of_no_partition_stop_the_upgrade_and_the_log_stays_whole(tmp_path: Path) -> None:
    d = tmp_path / "log"
    make_v1_log(d, records=10)
    with sqlite3.connect(d / "log.db") as conn:
        conn.execute("INSERT INTO records VALUES ('gone', 0, 0, 1, 1000, NULL, x'00', NULL)")
    with pytest.raises(StorageError, match=r"schema 2 to 3.*1 of 11 records belong to no partition"
                                           r".*left whole at schema 2"):
        KafkaProducer(data_dir=d)
    assert schema_version(d) == 2
    with sqlite3.connect(d / "log.db") as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 11
