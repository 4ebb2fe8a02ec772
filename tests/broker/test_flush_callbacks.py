"""flush() returns once every callback of what it waited for ran, as kafka-python's does.

A benchmark that timed each send to its callback and summed up after flush() missed the
last commits' records (about one in ten of 200,000): their callbacks were still running.
"""

from __future__ import annotations

import threading
from pathlib import Path

from broker import KafkaAdminClient, KafkaProducer, NewTopic


def test_flush_waits_for_the_callbacks(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with KafkaAdminClient(data_dir=d) as admin:
        admin.create_topics([NewTopic("t", 1, 1)])
    ran = []
    lock = threading.Lock()

    def slow(_md: object) -> None:
        with lock:
            ran.append(1)
        if len(ran) % 1000 == 0:
            threading.Event().wait(0.01)  # a callback that takes a while now and then

    with KafkaProducer(data_dir=d) as producer:
        for _ in range(20_000):
            producer.send("t", b"x" * 100).add_callback(slow)
        producer.flush(timeout=60)
        assert len(ran) == 20_000


def test_a_callback_that_flushes_does_not_wait_for_itself(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with KafkaAdminClient(data_dir=d) as admin:
        admin.create_topics([NewTopic("t", 1, 1)])
    with KafkaProducer(data_dir=d) as producer:
        flushed = threading.Event()

        def flush_inside(_md: object) -> None:
            producer.flush(timeout=5)
            flushed.set()

        producer.send("t", b"x").add_callback(flush_inside)
        producer.flush(timeout=10)
        assert flushed.is_set()
