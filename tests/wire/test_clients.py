"""Real Kafka clients against the listener: the seed-style lab unchanged, aiokafka, and the
log's own API and CLI seeing the same records at the same offsets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

import broker

from ._server import ThreadedListener

REPO = Path(__file__).resolve().parents[2]


def test_the_seed_lab_runs_unchanged(listener: ThreadedListener) -> None:
    bootstrap_servers = listener.bootstrap
    # -- the lab, as written against Kafka (only the address differs) --
    admin_client = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="test")
    topic_list = [NewTopic(name="bankbranch", num_partitions=2, replication_factor=1)]
    admin_client.create_topics(new_topics=topic_list)
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers,
                             value_serializer=lambda v: json.dumps(v).encode("utf-8"))
    producer.send("bankbranch", {"atmid": 1, "transid": 100})
    producer.send("bankbranch", {"atmid": 2, "transid": 101})
    producer.flush()
    consumer = KafkaConsumer("bankbranch", bootstrap_servers=bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    seen = [json.loads(msg.value) for msg in consumer]
    # -- end of the lab --
    consumer.close()
    producer.close()
    assert sorted(seen, key=lambda v: v["transid"]) == [{"atmid": 1, "transid": 100}, {"atmid": 2, "transid": 101}]
    with pytest.raises(TopicAlreadyExistsError):
        admin_client.create_topics(new_topics=topic_list)
    admin_client.delete_topics(["bankbranch"])
    assert admin_client.list_topics() == []
    admin_client.close()


def test_records_produced_over_the_wire_are_the_logs_and_the_other_way_round(listener: ThreadedListener) -> None:
    local = broker.KafkaProducer(listener.data_dir)
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("readings", 2)])
    local.send("readings", b"from-api", key=b"k1", headers=[("source", b"api")]).get(10)
    producer = KafkaProducer(bootstrap_servers=listener.bootstrap, acks="all")
    md = producer.send("readings", b"from-wire", key=b"k1", headers=[("source", b"wire")]).get(10)
    producer.close()
    # same partition for the same key (murmur2 on both sides), the next offset
    assert (md.partition, md.offset) == (broker.default_partition(b"k1", 2), 1)
    local.close()
    consumer = KafkaConsumer(bootstrap_servers=listener.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000)
    consumer.assign([TopicPartition("readings", md.partition)])
    wire_seen = [(m.offset, m.key, m.value, m.headers) for m in consumer]
    consumer.close()
    assert wire_seen == [(0, b"k1", b"from-api", [("source", b"api")]),
                         (1, b"k1", b"from-wire", [("source", b"wire")])]
    out = subprocess.run(
        [sys.executable, "-m", "broker", "console-consumer", "--data-dir", str(listener.data_dir), "--topic",
         "readings", "--from-beginning", "--timeout-ms", "1000", "--property", "print.offset=true"],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert "from-wire" in out.stdout and "from-api" in out.stdout, out.stderr


async def test_aiokafka_produces_and_consumes(listener: ThreadedListener) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("events", 3)])
    producer = AIOKafkaProducer(bootstrap_servers=listener.bootstrap, enable_idempotence=True,
                                compression_type="gzip")
    await producer.start()
    try:
        sent = [await producer.send_and_wait("events", f"v{i}".encode(), key=f"k{i % 5}".encode(),
                                             headers=[("i", str(i).encode())]) for i in range(30)]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer("events", bootstrap_servers=listener.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    got = []
    try:
        while len(got) < 30:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            got += [(m.partition, m.offset, m.value) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    assert sorted(got) == sorted((md.partition, md.offset, f"v{i}".encode()) for i, md in enumerate(sent))


def test_an_unknown_topic_is_refused_without_auto_creation(listener: ThreadedListener) -> None:
    producer = KafkaProducer(bootstrap_servers=listener.bootstrap, max_block_ms=1500)
    with pytest.raises(Exception, match="not present in metadata|KafkaTimeoutError"):
        producer.send("nosuch", b"x").get(5)
    producer.close()
    assert "nosuch" not in broker.KafkaAdminClient(listener.data_dir).list_topics()


def test_auto_creation_when_switched_on(tmp_path: Path) -> None:
    with ThreadedListener(tmp_path / "log", auto_create_topics=True) as srv:
        producer = KafkaProducer(bootstrap_servers=srv.bootstrap)
        md = producer.send("fresh", b"x").get(10)
        producer.close()
        assert md.offset == 0
        assert broker.KafkaAdminClient(srv.data_dir).list_topics() == ["fresh"]
