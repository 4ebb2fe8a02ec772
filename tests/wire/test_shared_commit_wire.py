"""A produce over the wire shares the log's group commit with the service's appends."""

from __future__ import annotations

from pathlib import Path

from kafka import KafkaProducer

import broker
from broker import LogConfig

from ._server import ThreadedListener


def test_an_acks_all_produce_is_committed_with_the_appends_waiting_for_their_commit(tmp_path: Path) -> None:
    # The service's appends linger up to 5 s for company; the wire's batch arriving meanwhile
    # starts the commit, and both are in it: one COMMIT, one fsync.
    cfg = LogConfig(tmp_path / "log", auto_create_topics=False, commit_interval_ms=5000)
    with ThreadedListener(tmp_path / "log", log_config=cfg) as srv, broker.KafkaProducer(log_config=cfg) as device:
        broker.KafkaAdminClient(log_config=cfg).create_topics([broker.NewTopic("readings", 1)])
        client = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all", enable_idempotence=True)
        try:
            client.partitions_for("readings")  # metadata first: the produce below is one request
            fut = device.send("readings", b"from-a-device")
            before = device.metrics()["commits"]
            meta = client.send("readings", b"over-the-wire").get(timeout=30)
            assert fut.is_done  # written by the commit the wire's batch started, not after the linger
            assert {fut.get().offset, meta.offset} == {0, 1}
            # the batch, its producer's sequence state and the device's record: one commit
            assert device.metrics()["commits"] == before + 1
        finally:
            client.close()
