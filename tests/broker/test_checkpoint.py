"""WAL checkpoints run beside the writer, not inside its commits (broker/_checkpoint.py).

A checkpoint inside the committing connection held every record queued meanwhile for
the whole copy and its fsync: the p99 of send-to-durable latency at 5,000 records/s.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from broker import KafkaProducer, LogConfig
from broker._checkpoint import DEFAULT_PAGES, Checkpointer
from broker._log import Log

FRAME = 4096 + 24


def _wal_frames(data_dir: Path) -> int:
    wal = data_dir / "log.db-wal"
    return (wal.stat().st_size - 32) // FRAME if wal.exists() else 0


def test_the_checkpointer_keeps_the_wal_short_and_the_writer_checkpoints_only_as_a_backstop(
        tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path, durability="no-fsync")
    with KafkaProducer(log_config=cfg) as producer:
        lg = producer._log
        backstop = lg._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert backstop == Checkpointer.backstop_pages(DEFAULT_PAGES)
        # One record per commit: ~2 frames each, so this writes well past the backstop's
        # frames; without the checkpointer the WAL would grow to the backstop.
        for i in range(3 * DEFAULT_PAGES):
            producer.send("t", b"x" * 300, key=b"k%d" % i).get(10)
        stats = dict(lg._checkpointer.stats)
        frames = _wal_frames(tmp_path)
    assert stats["checkpoints"] >= 2, stats
    assert stats["finished_by_writer"] >= 2, stats  # each rewound the WAL at the next commit
    assert frames < 2 * DEFAULT_PAGES, f"the WAL grew to {frames} frames: it was not rewound"


class _Gate:
    """The checkpointer's real connection, whose checkpoint waits until the test opens the gate."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.entered = threading.Event()
        self.release = threading.Event()

    def execute(self, sql: str) -> sqlite3.Cursor:
        self.entered.set()
        self.release.wait(30)
        return self.conn.execute(sql)

    def close(self) -> None:
        self.conn.close()


def test_records_are_committed_while_a_checkpoint_runs(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake beside the real test above: a checkpoint held open, to show no commit waits for it.
    gates: list[_Gate] = []
    real = Log._checkpoint_conn

    def gated(self: Log) -> _Gate:
        gates.append(_Gate(real(self)))
        return gates[-1]

    monkeypatch.setattr(Log, "_checkpoint_conn", gated)
    cfg = LogConfig(data_dir=tmp_path, durability="no-fsync")
    with KafkaProducer(log_config=cfg) as producer:
        i = 0
        while not gates or not gates[0].entered.is_set():
            producer.send("t", b"x" * 300).get(10)
            i += 1
            assert i < 20 * DEFAULT_PAGES, "no checkpoint started"
        after = [producer.send("t", b"y" * 300) for _ in range(100)]
        assert [f.get(10).offset for f in after] == list(range(i, i + 100))
        gates[0].release.set()
    assert gates[0].release.is_set()
