"""``KafkaConsumer.poll_raw``: the records ``poll`` returns, as stored, positions shared with ``poll``."""

from __future__ import annotations

from pathlib import Path

from broker import (
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    NewTopic,
    RawRecord,
    TopicPartition,
)

HEADERS = [("source", b"mqtt://h:1883/c"), ("bad", b"\xff\x00"), ("none", None)]


def _write(data_dir: Path) -> None:
    with KafkaAdminClient(data_dir) as admin:
        admin.create_topics([NewTopic("t", num_partitions=2)])
    with KafkaProducer(data_dir) as producer:
        futures = [producer.send("t", f"v{i}".encode(), key=f"k{i % 5}".encode(),
                                 headers=HEADERS if i % 3 == 0 else None, timestamp_ms=1000 + i)
                   for i in range(40)]
        futures.append(producer.send("t", None, key=b"tombstone", partition=1, timestamp_ms=5))
        for f in futures:
            f.get(timeout=30)


def _all_records(data_dir: Path) -> list:
    with KafkaConsumer("t", data_dir=data_dir, auto_offset_reset="earliest",
                       consumer_timeout_ms=500) as consumer:
        return list(consumer)


def test_raw_records_are_the_records_as_stored(tmp_path: Path) -> None:
    _write(tmp_path)
    expected = _all_records(tmp_path)
    with KafkaConsumer("t", data_dir=tmp_path, auto_offset_reset="earliest") as consumer:
        raw: list[RawRecord] = []
        while batch := consumer.poll_raw(timeout_ms=0, max_records=7):
            assert len(batch) <= 7
            raw.extend(batch)
    assert len(raw) == len(expected) == 41
    key = lambda r: (r.partition, r.offset)  # noqa: E731
    for r, e in zip(sorted(raw, key=key), sorted(expected, key=key), strict=True):
        assert (r.topic, r.partition, r.offset, r.timestamp, r.key, r.value) == (
            e.topic, e.partition, e.offset, e.timestamp, e.key, e.value)
        assert r.decoded_headers() == e.headers
        assert (r.header_text is None) == (not e.headers)
        assert e.serialized_header_size == (len(r.header_text) if r.header_text else -1)
    with_headers = [r for r in raw if r.header_text]
    assert with_headers and all(r.decoded_headers() == HEADERS for r in with_headers)


def test_raw_reads_skip_deserializers_and_share_positions_with_poll(tmp_path: Path) -> None:
    _write(tmp_path)
    tp = TopicPartition("t", 0)
    with KafkaConsumer(data_dir=tmp_path, group_id="g", enable_auto_commit=False,
                       auto_offset_reset="earliest", value_deserializer=bytes.upper) as consumer:
        consumer.assign([tp])
        first = consumer.poll_raw(max_records=3)
        assert [r.offset for r in first] == [0, 1, 2]
        assert all(r.value.startswith(b"v") for r in first)   # as stored, not deserialized
        assert consumer.position(tp) == 3
        after = consumer.poll(max_records=2)[tp]
        assert [r.offset for r in after] == [3, 4]
        assert after[0].value.startswith(b"V")
        consumer.seek(tp, 1)
        assert consumer.poll_raw(max_records=1)[0].offset == 1
        consumer.commit({tp: 2})
        consumer.pause(tp)
        assert consumer.poll_raw(timeout_ms=50) == []
        consumer.resume(tp)
        assert consumer.poll_raw(max_records=1)[0].offset == 2


def test_raw_read_rereads_what_iteration_fetched_but_did_not_hand_out(tmp_path: Path) -> None:
    _write(tmp_path)
    with KafkaConsumer("t", data_dir=tmp_path, auto_offset_reset="earliest",
                       consumer_timeout_ms=500, max_poll_records=10) as consumer:
        first = next(consumer)   # fetched up to 10, handed out 1
        rest = []
        while batch := consumer.poll_raw(max_records=100):
            rest.extend(batch)
    seen = {(first.partition, first.offset)} | {(r.partition, r.offset) for r in rest}
    assert len(rest) == 40 and len(seen) == 41


def test_poll_raw_waits_for_a_commit_and_times_out_empty(tmp_path: Path) -> None:
    _write(tmp_path)
    with KafkaConsumer("t", data_dir=tmp_path, auto_offset_reset="latest") as consumer:
        consumer.poll_raw()  # positions at the end
        assert consumer.poll_raw(timeout_ms=100) == []
        with KafkaProducer(tmp_path) as producer:
            producer.send("t", b"late", key=b"k0").get(timeout=30)
        got = consumer.poll_raw(timeout_ms=5000)
        assert [r.value for r in got] == [b"late"]
