"""Bad input at scale: the disk quota reached over the wire, a thousand connections at once."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaStorageError

import broker

from ._server import ThreadedListener, raw_request, read_frame


def test_a_produce_over_the_disk_quota_gets_kafkas_error_a_log_line_and_writes_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = broker.LogConfig(data_dir=tmp_path / "log", quota_bytes=broker.MIN_QUOTA_BYTES,
                           durability="no-fsync")
    with ThreadedListener(tmp_path / "log", log_config=cfg) as srv:
        broker.KafkaAdminClient(log_config=cfg).create_topics([broker.NewTopic("full", 1)])
        producer = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all", retries=0, linger_ms=0)
        acked = 0
        with pytest.raises(KafkaStorageError):
            for i in range(100):
                producer.send("full", bytes([i % 256]) * 20_000).get(timeout=10)
                acked += 1
        producer.close()
        assert 0 < acked < 100
        (desc,) = broker.KafkaAdminClient(log_config=cfg).describe_topics(["full"])
        assert desc.partitions[0].records == acked  # the refused record is nowhere
        assert "a produce to full[0] failed" in caplog.text and "quota" in caplog.text
        assert raw_request(srv.port, 18, 0) is not None  # and the listener serves on


def test_a_thousand_connections_at_once_are_served_and_one_more_is_closed(tmp_path: Path) -> None:
    with ThreadedListener(tmp_path / "log", max_connections=1000) as srv:
        request = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
        frame = struct.pack(">i", len(request)) + request
        conns = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(1000)]
        try:
            for s in conns:
                s.sendall(frame)
            answered = sum(1 for s in conns if (r := read_frame(s)) is not None and r[4:6] == b"\x00\x00")
            assert answered == 1000
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as extra:
                assert read_frame(extra) is None
            m = srv.metrics()
            assert m["connections"] == 1000 and m["connections_refused"] == 1
        finally:
            for s in conns:
                s.close()
