"""The partitions row is settled now and then, not in every commit: the records are the truth.

A commit that also rewrote its partition's row (next offset, bytes kept) wrote one page more
than its records: a quarter of a small commit.  The row now lags by up to
``SETTLE_RECORDS`` records, and everything that reads a high watermark or a size reads the
live values (the ``partition_ends`` view), so nothing outside the file can tell.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker import KafkaConsumer, LogConfig, ManualClock, TopicPartition
from broker._storage import SETTLE_RECORDS

from ._helpers import clients, create, offsets

PER_RECORD = 60 + 40  # a 60-byte value, no key or headers, and the per-record overhead


def _stored(cfg: LogConfig, topic: str) -> tuple[int, int]:
    with sqlite3.connect(Path(cfg.data_dir) / "log.db") as c:
        row = c.execute("SELECT next_offset, bytes FROM partitions WHERE topic=? AND partition=0", (topic,)).fetchone()
    c.close()
    return row


def test_a_lagging_row_is_never_seen_and_catches_up(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path / "log", clock=ManualClock(), retention_check_interval_s=1e9)
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        for _ in range(10):
            producer.send("t", b"v" * 60)
        producer.flush()
        assert _stored(cfg, "t") == (0, 0)  # not written by those commits
        part = admin.describe_topics(["t"])[0].partitions[0]
        assert (part.high_watermark, part.records, part.size_bytes) == (10, 10, 10 * PER_RECORD)
        assert admin.describe_log()["topics"]["t"] == {"partitions": 1, "records": 10, "bytes": 10 * PER_RECORD}
    with KafkaConsumer(data_dir=cfg.data_dir) as consumer:
        assert consumer.end_offsets([TopicPartition("t", 0)]) == {TopicPartition("t", 0): 10}
    with clients(cfg) as (admin, producer):  # a new process goes on from the records, not the row
        assert producer.send("t", b"v" * 60).get(10).offset == 10
        futures = [producer.send("t", b"v" * 60) for _ in range(SETTLE_RECORDS)]
        producer.flush()
        assert futures[-1].get(10).offset == SETTLE_RECORDS + 10
        stored = _stored(cfg, "t")
        assert SETTLE_RECORDS <= stored[0] <= SETTLE_RECORDS + 11 and stored[1] == stored[0] * PER_RECORD


def test_retention_by_size_counts_the_unsettled_records(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path / "log", clock=ManualClock(), retention_check_interval_s=1e9)
    with clients(cfg) as (admin, producer):
        create(admin, "t", retention_bytes=3 * PER_RECORD)
        for _ in range(10):
            producer.send("t", b"v" * 60).get(10)
        assert _stored(cfg, "t") == (0, 0)
        assert admin.run_retention() == {"t": 7}
        assert offsets(cfg, "t") == {(0, 7), (0, 8), (0, 9)}
        assert _stored(cfg, "t") == (10, 3 * PER_RECORD)  # settled before the delete
        part = admin.describe_topics(["t"])[0].partitions[0]
        assert (part.log_start_offset, part.high_watermark, part.size_bytes) == (7, 10, 3 * PER_RECORD)
        assert producer.send("t", b"v" * 60).get(10).offset == 10
