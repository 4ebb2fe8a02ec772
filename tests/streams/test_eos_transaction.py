"""``LogTransaction``: records, group offsets and state rows are committed all together or not at all."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from broker import (
    ClosedError,
    CommitFailedError,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    LogFullError,
    NewTopic,
    TopicPartition,
    UnknownTopicOrPartitionError,
    default_partition,
)

GROUP = "streams.t"
TP0 = TopicPartition("in", 0)


@pytest.fixture
def log(tmp_path: Path):
    cfg = LogConfig(data_dir=tmp_path, auto_create_topics=False)
    admin = KafkaAdminClient(log_config=cfg)
    admin.create_topics([NewTopic("in", 1), NewTopic("out", 3)])
    producer = KafkaProducer(log_config=cfg)
    yield cfg, admin, producer
    producer.close()
    admin.close()


def _records(cfg: LogConfig, topic: str) -> list[tuple[int, int, bytes | None, bytes | None]]:
    with KafkaConsumer(topic, log_config=cfg, auto_offset_reset="earliest", consumer_timeout_ms=200) as c:
        return sorted((r.partition, r.offset, r.key, r.value) for r in c)


def test_records_offsets_and_state_commit_together(log) -> None:
    cfg, admin, producer = log
    txn = producer.begin_transaction()
    for i in range(5):
        txn.send("out", f"v{i}".encode(), key=f"k{i}".encode(), headers=[("h", b"1")], timestamp_ms=1000 + i)
    txn.commit_offsets(GROUP, {TP0: 7}, expected={TP0: None})
    txn.put_state("s", b"a", b"1")
    txn.put_state("s", b"b", b"2")
    assert len(txn) == 5
    metas = txn.commit()
    assert [m.partition for m in metas] == [default_partition(f"k{i}".encode(), 3) for i in range(5)]
    assert all(m.offset >= 0 for m in metas)
    assert len(_records(cfg, "out")) == 5
    assert admin.list_consumer_group_offsets(GROUP)[TP0].offset == 7
    assert admin.read_state_store("s") == {b"a": b"1", b"b": b"2"}
    assert admin.list_state_stores() == ["s"]

    txn = producer.begin_transaction()
    txn.commit_offsets(GROUP, {TP0: 9}, expected={TP0: 7})
    txn.put_state("s", b"a", None)
    txn.put_state("s", b"b", b"3")
    assert txn.commit() == []
    assert admin.read_state_store("s") == {b"b": b"3"}
    txn = producer.begin_transaction()
    txn.send("out", b"quiet", key=b"k0")
    assert txn.commit(metadata=False) == []
    assert len(_records(cfg, "out")) == 6
    assert admin.list_consumer_group_offsets(GROUP)[TP0].offset == 9


def test_a_moved_group_offset_fences_the_whole_transaction(log) -> None:
    cfg, admin, producer = log
    first = producer.begin_transaction()
    first.commit_offsets(GROUP, {TP0: 5}, expected={TP0: None})
    first.commit()
    stale = producer.begin_transaction()
    stale.send("out", b"x", key=b"k")
    stale.put_state("s", b"k", b"v")
    stale.commit_offsets(GROUP, {TP0: 6}, expected={TP0: 3})
    with pytest.raises(CommitFailedError, match="committed offset 5 for in\\[0\\], not 3"):
        stale.commit()
    assert _records(cfg, "out") == []
    assert admin.read_state_store("s") == {}
    assert admin.list_consumer_group_offsets(GROUP)[TP0].offset == 5
    with pytest.raises(ClosedError):
        stale.commit()


def test_one_bad_record_rolls_back_the_others(log) -> None:
    cfg, admin, producer = log
    txn = producer.begin_transaction()
    txn.send("out", b"fine", key=b"k")
    txn.send("nope", b"no such topic")
    txn.put_state("s", b"k", b"v")
    txn.commit_offsets(GROUP, {TP0: 1})
    with pytest.raises(UnknownTopicOrPartitionError, match="nope"):
        txn.commit()
    txn = producer.begin_transaction()
    txn.send("out", b"fine", partition=7)
    with pytest.raises(UnknownTopicOrPartitionError, match="partitions 0..2, not 7"):
        txn.commit()
    assert _records(cfg, "out") == []
    assert admin.read_state_store("s") == {}
    assert admin.list_consumer_group_offsets(GROUP) == {}


def test_quota_rejects_the_whole_transaction(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path, quota_bytes=256 * 1024)
    with KafkaProducer(log_config=cfg) as producer:
        txn = producer.begin_transaction()
        for _ in range(15):
            txn.send("out", b"x" * 3000)  # 15 of a 4 KiB page each fit the quota; 30 do not
        txn.commit()
        txn = producer.begin_transaction()
        for _ in range(15):
            txn.send("out", b"y" * 3000)
        txn.commit_offsets(GROUP, {TP0: 1})
        with pytest.raises(LogFullError):
            txn.commit()
    values = [v for _p, _o, _k, v in _records(cfg, "out")]
    assert values == [b"x" * 3000] * 15
    with KafkaAdminClient(log_config=cfg) as admin:
        assert admin.list_consumer_group_offsets(GROUP) == {}


def test_transactions_and_plain_sends_share_the_writer_without_repeating_offsets(log) -> None:
    cfg, _admin, producer = log
    stop = threading.Event()

    def plain() -> None:
        while not stop.is_set():
            producer.send("out", b"plain", partition=0).get(timeout=30)

    t = threading.Thread(target=plain)
    t.start()
    try:
        for i in range(50):
            txn = producer.begin_transaction()
            for _ in range(20):
                txn.send("out", b"txn", partition=0)
            txn.commit_offsets(GROUP, {TP0: i + 1}, expected={TP0: i or None})
            metas = txn.commit()
            offs = [m.offset for m in metas]
            assert offs == list(range(offs[0], offs[0] + 20)), "a transaction's records are contiguous"
    finally:
        stop.set()
        t.join()
    rows = _records(cfg, "out")
    assert [o for _p, o, _k, _v in rows] == list(range(len(rows)))
    assert sum(v == b"txn" for *_x, v in rows) == 1000


def test_spent_transactions_and_bad_arguments_are_refused(log) -> None:
    _cfg, _admin, producer = log
    txn = producer.begin_transaction()
    with pytest.raises(Exception, match="bytes"):
        txn.put_state("s", "not-bytes", b"v")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="non-negative"):
        txn.commit_offsets(GROUP, {TP0: -1})
    txn.abort()
    txn.abort()
    with pytest.raises(ClosedError):
        txn.send("out", b"x")
