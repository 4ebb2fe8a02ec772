"""Idempotent producers: a retried batch is answered, never written twice."""

from __future__ import annotations

import datetime
import io
import threading
import time
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.record.default_records import DefaultRecordBatchBuilder
from kio.schema.produce.v7.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v7.response import ProduceResponse
from kio.serial import entity_reader, entity_writer

import broker
from tests.fixtures.tcp_proxy import TcpProxy

from ._server import ThreadedListener, raw_request


def _batch(pid: int, epoch: int, seq: int, values: list[bytes]) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=pid,
                                  producer_epoch=epoch, base_sequence=seq, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=1_700_000_000_000 + i, key=None, value=v, headers=[])
    return bytes(b.build())


def _produce(port: int, topic: str, batch: bytes) -> tuple[int, int]:
    req = ProduceRequest(transactional_id=None, acks=-1, timeout=datetime.timedelta(seconds=5),
                         topic_data=(TopicProduceData(name=topic, partition_data=(
                             PartitionProduceData(index=0, records=batch),)),))  # type: ignore[arg-type]
    buf = io.BytesIO()
    entity_writer(ProduceRequest)(buf, req)
    resp = raw_request(port, 0, 7, buf.getvalue())
    assert resp is not None
    body: Any = entity_reader(ProduceResponse)(resp, 4)[0]
    part = body.responses[0].partition_responses[0]
    return int(part.error_code.value), int(part.base_offset)


def _values(data_dir: Path, topic: str) -> list[bytes]:
    with broker.KafkaConsumer(topic, data_dir=data_dir, auto_offset_reset="earliest") as c:
        out: list[bytes] = []
        while batch := c.poll(timeout_ms=200):
            out += [r.value for rs in batch.values() for r in rs]
        return out


def test_a_retried_batch_gets_its_first_offset_and_is_not_written_again(listener: ThreadedListener) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("idem", 1)])
    first = _batch(4242, 0, 0, [b"a", b"b", b"c"])
    assert _produce(listener.port, "idem", first) == (0, 0)
    assert _produce(listener.port, "idem", first) == (0, 0)  # the retry: same answer, nothing written
    assert _produce(listener.port, "idem", _batch(4242, 0, 3, [b"d"])) == (0, 3)
    assert _produce(listener.port, "idem", _batch(4242, 0, 9, [b"x"]))[0] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert _produce(listener.port, "idem", _batch(4242, 1, 0, [b"e"])) == (0, 4)  # a new epoch starts at 0
    assert _produce(listener.port, "idem", _batch(4242, 0, 4, [b"y"]))[0] == 47  # INVALID_PRODUCER_EPOCH
    assert _values(listener.data_dir, "idem") == [b"a", b"b", b"c", b"d", b"e"]


def test_sequences_survive_a_restart(tmp_path: Path) -> None:
    batch = _batch(77, 0, 0, [b"once"])
    with ThreadedListener(tmp_path / "log") as srv:
        broker.KafkaAdminClient(srv.data_dir).create_topics([broker.NewTopic("idem", 1)])
        assert _produce(srv.port, "idem", batch) == (0, 0)
    with ThreadedListener(tmp_path / "log") as srv:
        assert _produce(srv.port, "idem", batch) == (0, 0)  # a retry: its first write's offset
        assert _values(srv.data_dir, "idem") == [b"once"]


def test_an_idempotent_producer_whose_connection_is_cut_mid_batch_writes_nothing_twice(
        listener: ThreadedListener) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("cut", 1)])
    with TcpProxy("127.0.0.1", listener.port) as proxy:
        assert listener.server is not None and listener.server.ctx is not None
        listener.server.ctx.advertised_port = proxy.port  # Metadata sends the client through the proxy
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{proxy.port}", enable_idempotence=True,
                                 acks="all", linger_ms=5, request_timeout_ms=3000, retries=1000,
                                 reconnect_backoff_ms=20, retry_backoff_ms=20)
        n = 400
        futures = []
        done = threading.Event()

        def send() -> None:
            for i in range(n):
                futures.append(producer.send("cut", str(i).encode()))
                if i % 20 == 0:
                    time.sleep(0.01)
            done.set()

        sender = threading.Thread(target=send)
        sender.start()
        cuts = 0
        while not done.is_set() or cuts < 3:
            time.sleep(0.05)
            proxy.cut()  # resets every live connection: a request may be written, its answer lost
            time.sleep(0.05)
            proxy.restore()
            cuts += 1
        sender.join()
        producer.flush(timeout=60)
        offsets = [f.get(timeout=30).offset for f in futures]
        producer.close()
    values = _values(listener.data_dir, "cut")
    assert values == [str(i).encode() for i in range(n)]  # each once, in order
    assert offsets == list(range(n))


def test_a_producer_silent_for_a_day_is_forgotten_at_the_next_start(tmp_path: Path) -> None:
    clock = broker.ManualClock()
    cfg = broker.LogConfig(data_dir=tmp_path / "log", durability="no-fsync", clock=clock)
    with ThreadedListener(tmp_path / "log", log_config=cfg) as srv:
        broker.KafkaAdminClient(log_config=cfg).create_topics([broker.NewTopic("idem", 1)])
        assert _produce(srv.port, "idem", _batch(1, 0, 0, [b"old"])) == (0, 0)
        clock.advance(23 * 3600)
        assert _produce(srv.port, "idem", _batch(2, 0, 0, [b"recent"])) == (0, 1)
    clock.advance(2 * 3600)  # producer 1 is now 25 h silent, producer 2 2 h
    with ThreadedListener(tmp_path / "log", log_config=cfg) as srv:
        assert _produce(srv.port, "idem", _batch(2, 0, 0, [b"recent"])) == (0, 1)  # still a retry
        assert _produce(srv.port, "idem", _batch(1, 0, 0, [b"old"])) == (0, 2)  # forgotten: written
        stored = broker.KafkaAdminClient(log_config=cfg).read_state_store("__wire.producers")
    assert sorted(stored) == [b"1/0/idem", b"2/0/idem"]  # 1's entry is its new write's
