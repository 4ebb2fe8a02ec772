"""Kafka semantics, written once, run against the local log and a real Kafka cluster.

A test module imports these tests and provides a ``kafka_impl`` fixture (a
``KafkaImpl``): ``test_conformance_local.py`` points them at ``broker``;
``tests/deploy/test_conformance_kafka.py`` points them at Apache Kafka
through kafka-python.  Every claim that the log "behaves like Kafka" is a
test here, so both sides are shown passing the same assertions.

Only the public kafka-python 2.x API is used in the tests, through the
implementation's classes, exactly as user code would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker import default_partition

WAIT_S = 30.0


@dataclass
class KafkaImpl:
    """One implementation of Kafka's client API and how to connect it."""

    name: str
    KafkaProducer: Callable[..., Any]
    KafkaConsumer: Callable[..., Any]
    KafkaAdminClient: Callable[..., Any]
    NewTopic: Callable[..., Any]
    TopicPartition: Callable[..., Any]
    OffsetAndMetadata: Callable[..., Any]
    connect: dict[str, Any]  # {"data_dir": ...} or {"bootstrap_servers": ...}
    consumer_extra: dict[str, Any]

    def topic(self, partitions: int = 1) -> str:
        name = f"conf-{uuid.uuid4().hex[:10]}"
        admin = self.KafkaAdminClient(**self.connect)
        try:
            admin.create_topics([self.NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            admin.close()
        self._wait_for_topic(name, partitions)
        return name

    def _wait_for_topic(self, name: str, partitions: int) -> None:
        deadline = time.monotonic() + WAIT_S
        probe = self.consumer()
        try:
            while time.monotonic() < deadline:
                parts = probe.partitions_for_topic(name)
                if parts and len(parts) == partitions:
                    return
                time.sleep(0.1)
        finally:
            probe.close()
        raise AssertionError(f"{self.name}: topic {name} did not appear with {partitions} partitions")

    def producer(self, **kw: Any) -> Any:
        return self.KafkaProducer(**self.connect, **kw)

    def consumer(self, *topics: str, **kw: Any) -> Any:
        return self.KafkaConsumer(*topics, **self.connect, **self.consumer_extra, **kw)


def consume(consumer: Any, n: int, timeout_s: float = WAIT_S) -> list[Any]:
    """Poll until ``n`` records came (or fail after ``timeout_s``)."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            out.extend(recs)
    assert len(out) >= n, f"got {len(out)} of {n} records within {timeout_s} s"
    return out


def quiet(consumer: Any, wait_s: float = 1.0) -> list[Any]:
    """Records that arrive within ``wait_s`` (expected: none)."""
    out: list[Any] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=200).values():
            out.extend(recs)
    return out


# -- the tests -------------------------------------------------------------------------------------

def test_keyed_records_land_on_kafkas_murmur2_partition(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic(partitions=6)
    keys = [f"device-{i}".encode() for i in range(60)] + [b"car-17", b"ward3-bed2", b""]
    producer = kafka_impl.producer()
    try:
        metas = [producer.send(topic, b"v", key=k) for k in keys]
        producer.flush()
        got = {k: f.get(timeout=WAIT_S).partition for k, f in zip(keys, metas, strict=True)}
    finally:
        producer.close()
    assert got == {k: default_partition(k, 6) for k in keys}
    assert len(set(got.values())) == 6  # the keys spread over every partition


def test_offsets_start_at_zero_and_are_contiguous_per_partition(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic(partitions=3)
    producer = kafka_impl.producer()
    try:
        futs = [producer.send(topic, f"{i}".encode(), key=f"k{i % 7}".encode()) for i in range(90)]
        producer.flush()
        metas = [f.get(timeout=WAIT_S) for f in futs]
    finally:
        producer.close()
    by_part: dict[int, list[int]] = {}
    for m in metas:
        by_part.setdefault(m.partition, []).append(m.offset)
    for offsets in by_part.values():
        assert offsets == list(range(len(offsets)))
    consumer = kafka_impl.consumer(auto_offset_reset="earliest")
    try:
        consumer.subscribe([topic])
        recs = consume(consumer, 90)
    finally:
        consumer.close()
    for part, offsets in by_part.items():
        assert [r.offset for r in recs if r.partition == part] == offsets


def test_per_key_order_is_kept(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic(partitions=4)
    producer = kafka_impl.producer()
    try:
        for i in range(200):
            producer.send(topic, str(i).encode(), key=f"dev-{i % 10}".encode())
        producer.flush()
    finally:
        producer.close()
    consumer = kafka_impl.consumer(topic, auto_offset_reset="earliest")
    try:
        recs = consume(consumer, 200)
    finally:
        consumer.close()
    for d in range(10):
        seq = [int(r.value) for r in recs if r.key == f"dev-{d}".encode()]
        assert seq == sorted(seq) and len(seq) == 20


def test_earliest_reads_history_latest_only_new(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic()
    tp = kafka_impl.TopicPartition(topic, 0)
    producer = kafka_impl.producer()
    try:
        for i in range(5):
            producer.send(topic, f"old-{i}".encode())
        producer.flush()
        earliest = kafka_impl.consumer(auto_offset_reset="earliest")
        latest = kafka_impl.consumer(auto_offset_reset="latest")
        try:
            earliest.assign([tp])
            latest.assign([tp])
            assert earliest.position(tp) == 0
            assert latest.position(tp) == 5
            producer.send(topic, b"new")
            producer.flush()
            assert [r.value for r in consume(earliest, 6)] == [f"old-{i}".encode() for i in range(5)] + [b"new"]
            assert [r.value for r in consume(latest, 1)] == [b"new"]
        finally:
            earliest.close()
            latest.close()
    finally:
        producer.close()


def test_group_resumes_from_committed_offsets(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic(partitions=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    producer = kafka_impl.producer()
    try:
        for i in range(10):
            producer.send(topic, f"a{i}".encode(), key=f"k{i}".encode())
        producer.flush()
        first = kafka_impl.consumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
        try:
            assert len(consume(first, 10)) == 10
            first.commit()
        finally:
            first.close()
        for i in range(4):
            producer.send(topic, f"b{i}".encode(), key=f"k{i}".encode())
        producer.flush()
    finally:
        producer.close()
    second = kafka_impl.consumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        values = sorted(r.value for r in consume(second, 4))
        assert values == [b"b0", b"b1", b"b2", b"b3"]
        assert quiet(second) == []
        committed = {p: second.committed(kafka_impl.TopicPartition(topic, p)) for p in (0, 1)}
    finally:
        second.close()
    assert sum(committed.values()) == 10  # what the first consumer committed, per partition


def test_committing_an_older_offset_rewinds_the_group(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic()
    tp = kafka_impl.TopicPartition(topic, 0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    producer = kafka_impl.producer()
    try:
        for i in range(6):
            producer.send(topic, str(i).encode())
        producer.flush()
    finally:
        producer.close()
    c = kafka_impl.consumer(group_id=group, enable_auto_commit=False)
    try:
        c.assign([tp])
        c.commit({tp: kafka_impl.OffsetAndMetadata(6, "")})
        c.commit({tp: kafka_impl.OffsetAndMetadata(2, "")})  # "reset to offset 2"
        assert c.committed(tp) == 2
    finally:
        c.close()
    again = kafka_impl.consumer(group_id=group, enable_auto_commit=False)
    try:
        again.assign([tp])
        assert [r.value for r in consume(again, 4)] == [b"2", b"3", b"4", b"5"]
    finally:
        again.close()


def test_seek_seek_to_beginning_and_end(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic()
    tp = kafka_impl.TopicPartition(topic, 0)
    producer = kafka_impl.producer()
    try:
        for i in range(10):
            producer.send(topic, str(i).encode())
        producer.flush()
    finally:
        producer.close()
    c = kafka_impl.consumer(auto_offset_reset="earliest")
    try:
        c.assign([tp])
        c.seek(tp, 7)
        assert [r.value for r in consume(c, 3)] == [b"7", b"8", b"9"]
        c.seek_to_beginning(tp)
        assert c.position(tp) == 0
        c.seek_to_end(tp)
        assert c.position(tp) == 10
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 10}
    finally:
        c.close()


def test_offsets_for_times_finds_first_record_at_or_after(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic()
    tp = kafka_impl.TopicPartition(topic, 0)
    base = 1_700_000_000_000
    producer = kafka_impl.producer()
    try:
        for i in range(5):
            producer.send(topic, str(i).encode(), timestamp_ms=base + i * 1000)
        producer.flush()
    finally:
        producer.close()
    c = kafka_impl.consumer()
    try:
        found = c.offsets_for_times({tp: base + 2500})
        assert (found[tp].offset, found[tp].timestamp) == (3, base + 3000)
        assert c.offsets_for_times({tp: base + 10_000})[tp] is None
        assert c.offsets_for_times({tp: 0})[tp].offset == 0
    finally:
        c.close()


def test_key_value_headers_and_timestamp_round_trip(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic()
    headers = [("source", b"serial"), ("edge", b"box-1"), ("raw", bytes(range(256)))]
    producer = kafka_impl.producer()
    try:
        producer.send(topic, b'{"c": 21.5}', key=b"room-1", headers=headers, timestamp_ms=1_700_000_123_456)
        producer.send(topic, key=b"tombstone")  # a key with no value, as in a compacted topic's delete
        producer.flush()
    finally:
        producer.close()
    c = kafka_impl.consumer(topic, auto_offset_reset="earliest")
    try:
        first, second = consume(c, 2)
    finally:
        c.close()
    assert (first.key, first.value, first.timestamp) == (b"room-1", b'{"c": 21.5}', 1_700_000_123_456)
    assert list(first.headers) == headers
    assert (second.key, second.value) == (b"tombstone", None)


def test_serializers_apply_to_keys_and_values(kafka_impl: KafkaImpl) -> None:
    import json

    topic = kafka_impl.topic()
    producer = kafka_impl.producer(value_serializer=lambda v: json.dumps(v).encode(),
                                   key_serializer=str.encode)
    try:
        producer.send(topic, {"lat": 52.1, "lon": 4.3}, key="car-17")
        producer.flush()
    finally:
        producer.close()
    c = kafka_impl.consumer(topic, auto_offset_reset="earliest",
                            value_deserializer=json.loads, key_deserializer=bytes.decode)
    try:
        (rec,) = consume(c, 1)
    finally:
        c.close()
    assert (rec.key, rec.value) == ("car-17", {"lat": 52.1, "lon": 4.3})


def test_admin_lists_and_deletes_topics(kafka_impl: KafkaImpl) -> None:
    topic = kafka_impl.topic(partitions=2)
    admin = kafka_impl.KafkaAdminClient(**kafka_impl.connect)
    try:
        assert topic in admin.list_topics()
        admin.delete_topics([topic])
        deadline = time.monotonic() + WAIT_S
        while topic in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert topic not in admin.list_topics()
    finally:
        admin.close()
