"""Fetch on the raw protocol: byte limits, the long poll woken by a commit, offsets out of range."""

from __future__ import annotations

import datetime
import io
import threading
from typing import Any

from kafka.record.default_records import DefaultRecordBatch
from kio.schema.fetch.v11.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.fetch.v11.response import FetchResponse
from kio.serial import entity_reader, entity_writer

import broker

from ._server import ThreadedListener, raw_request


def _fetch(port: int, topic: str, offset: int, *, part_max: int = 1 << 20, max_bytes: int = 1 << 20,
           min_bytes: int = 1, max_wait_ms: int = 0, isolation: int = 0) -> Any:
    req = FetchRequest(
        replica_id=-1, max_wait=datetime.timedelta(milliseconds=max_wait_ms), min_bytes=min_bytes,  # type: ignore[arg-type]
        max_bytes=max_bytes, isolation_level=isolation, session_id=0, session_epoch=-1,  # type: ignore[arg-type]
        topics=(FetchTopic(topic=topic, partitions=(FetchPartition(  # type: ignore[arg-type]
            partition=0, current_leader_epoch=-1, fetch_offset=offset, log_start_offset=-1,  # type: ignore[arg-type]
            partition_max_bytes=part_max),)),), forgotten_topics_data=(), rack_id="")  # type: ignore[arg-type]
    buf = io.BytesIO()
    entity_writer(FetchRequest)(buf, req)
    resp = raw_request(port, 1, 11, buf.getvalue())
    assert resp is not None
    return entity_reader(FetchResponse)(resp, 4)[0].responses[0].partitions[0]


def _offsets(records: bytes | None) -> list[int]:
    return [r.offset for r in DefaultRecordBatch(records)] if records else []


def test_partition_max_bytes_bounds_a_fetch_but_one_record_always_comes(listener: ThreadedListener) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("big", 1)])
    with broker.KafkaProducer(listener.data_dir) as p:
        for i in range(10):
            p.send("big", bytes([65 + i]) * 1000)
        p.flush()
    whole = _fetch(listener.port, "big", 0)
    assert _offsets(whole.records) == list(range(10)) and whole.high_watermark == 10
    assert _offsets(_fetch(listener.port, "big", 3, part_max=2500).records) == [3, 4]
    assert _offsets(_fetch(listener.port, "big", 3, part_max=10).records) == [3]
    # read_committed sees the same records: every record in the log is committed
    committed = _fetch(listener.port, "big", 0, isolation=1)
    assert _offsets(committed.records) == list(range(10)) and committed.last_stable_offset == 10


def test_a_waiting_fetch_is_answered_with_the_record_a_commit_brings(listener: ThreadedListener) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("poll", 1)])
    producer = broker.KafkaProducer(listener.data_dir)

    def produce_once_the_fetch_waits() -> None:
        # The listener counts a request when it arrives, before the fetch reads or waits;
        # a commit after that point wakes it (none is missed between its read and its wait).
        while listener.metrics()["requests"].get("Fetch", 0) < 1:
            threading.Event().wait(0.01)
        producer.send("poll", b"woken").get(10)

    t = threading.Thread(target=produce_once_the_fetch_waits)
    t.start()
    part = _fetch(listener.port, "poll", 0, max_wait_ms=20_000)
    t.join()
    producer.close()
    assert [r.value for r in DefaultRecordBatch(part.records)] == [b"woken"]


def test_an_offset_beyond_the_end_is_offset_out_of_range(listener: ThreadedListener) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("oor", 1)])
    part = _fetch(listener.port, "oor", 5)
    assert part.error_code.value == 1 and part.high_watermark == 0
