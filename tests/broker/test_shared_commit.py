"""Transactions committed with ``shared=True`` ride the writer's group commit: one COMMIT
(one fsync) with the appends queued meanwhile, each still all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import broker
from broker import LogConfig, TopicPartition

# Appends wait up to this long for company (linger): long enough that a shared transaction
# arriving meanwhile is what starts the commit.
LINGER_MS = 5000


def _setup(tmp_path: Path) -> tuple[LogConfig, broker.KafkaProducer]:
    cfg = LogConfig(tmp_path / "log", auto_create_topics=False, commit_interval_ms=LINGER_MS)
    producer = broker.KafkaProducer(log_config=cfg)
    broker.KafkaAdminClient(log_config=cfg).create_topics([broker.NewTopic("readings", 2)])
    return cfg, producer


def test_a_shared_transaction_and_the_appends_queued_meanwhile_are_one_commit(tmp_path: Path) -> None:
    _cfg, producer = _setup(tmp_path)
    with producer:
        fut = producer.send("readings", b"device", partition=0)
        before = producer.metrics()["commits"]
        txn = producer.begin_transaction()
        txn.send("readings", b"wire-1", partition=1)
        txn.send("readings", b"wire-2", partition=1)
        txn.put_state("wire.producers", b"k", b"v")
        meta = txn.commit(shared=True)
        assert fut.is_done and fut.get().offset == 0  # written by the same commit, not after the linger
        assert [m.offset for m in meta] == [0, 1]
        assert producer.metrics()["commits"] == before + 1
        assert producer.metrics()["records"] == 3
        admin = broker.KafkaAdminClient(tmp_path / "log")
        assert admin.read_state_store("wire.producers") == {b"k": b"v"}


def test_a_refused_shared_transaction_fails_alone_and_leaves_nothing(tmp_path: Path) -> None:
    _cfg, producer = _setup(tmp_path)
    with producer:
        fut = producer.send("readings", b"device", partition=0)
        bad = producer.begin_transaction()
        bad.send("readings", b"never", partition=0)
        bad.send("readings", b"nowhere", partition=7)  # no such partition: the whole transaction fails
        bad.put_state("wire.producers", b"k", b"v")
        good = producer.begin_transaction()
        good.send("readings", b"wire", partition=0)
        with pytest.raises(broker.UnknownTopicOrPartitionError):
            bad.commit(shared=True)
        assert fut.get(timeout=30).offset == 0  # committed with the refused one, which left no gap
        assert [m.offset for m in good.commit(shared=True)] == [1]
    with broker.KafkaConsumer(data_dir=tmp_path / "log", auto_offset_reset="earliest") as c:
        c.assign([TopicPartition("readings", 0)])
        values = [r.value for rs in c.poll(timeout_ms=500).values() for r in rs]
    assert sorted(values) == [b"device", b"wire"]
    assert broker.KafkaAdminClient(tmp_path / "log").read_state_store("wire.producers") == {}
