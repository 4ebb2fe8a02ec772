"""The Kafka-semantics conformance suite through the listener, with aiokafka.

Beside the kafka-python run (test_conformance_wire.py): aiokafka asks for other API
versions and does its own batching, offset resets and metadata, so both clients are
shown passing the same assertions against the box.  aiokafka is asyncio; the suite is
synchronous, so each client runs on a background loop (``_aiokafka_sync``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiokafka.admin
import aiokafka.structs
import pytest

from tests.broker.conformance import *  # noqa: F403 - the shared tests are collected here
from tests.broker.conformance import KafkaImpl

from ._aiokafka_sync import Admin, Consumer, Loop, Producer
from ._server import ThreadedListener


@pytest.fixture(scope="module")
def _listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedListener]:
    with ThreadedListener(Path(tmp_path_factory.mktemp("conformance-aiokafka")) / "log") as srv:
        yield srv


@pytest.fixture(scope="module")
def _loop() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.close()


@pytest.fixture
def kafka_impl(_listener: ThreadedListener, _loop: Loop) -> KafkaImpl:
    def producer(**kw: Any) -> Producer:
        return Producer(_loop, acks="all", linger_ms=0, **kw)

    def consumer(*topics: str, **kw: Any) -> Consumer:
        return Consumer(_loop, *topics, **kw)

    return KafkaImpl(
        name="the box's Kafka listener (aiokafka)",
        KafkaProducer=producer,
        KafkaConsumer=consumer,
        KafkaAdminClient=lambda **kw: Admin(_loop, **kw),
        NewTopic=aiokafka.admin.NewTopic,
        TopicPartition=aiokafka.structs.TopicPartition,
        OffsetAndMetadata=aiokafka.structs.OffsetAndMetadata,
        connect={"bootstrap_servers": _listener.bootstrap},
        consumer_extra={"fetch_max_wait_ms": 100},
    )
