"""The Kafka-semantics conformance suite through the listener, with kafka-python.

The same tests run against the local API (tests/broker/test_conformance_local.py) and a
real Kafka cluster (tests/deploy/test_conformance_kafka.py): here the client is Kafka's
own protocol, the log behind it the box's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kafka
import pytest
from kafka.structs import OffsetAndMetadata

from tests.broker.conformance import *  # noqa: F403 - the shared tests are collected here
from tests.broker.conformance import KafkaImpl

from ._server import ThreadedListener


@pytest.fixture(scope="module")
def _listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedListener]:
    with ThreadedListener(Path(tmp_path_factory.mktemp("conformance")) / "log") as srv:
        yield srv


def _offset_and_metadata(offset: int, metadata: str = "") -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, metadata, -1)


@pytest.fixture
def kafka_impl(_listener: ThreadedListener) -> KafkaImpl:
    return KafkaImpl(
        name="the box's Kafka listener",
        KafkaProducer=lambda **kw: kafka.KafkaProducer(acks="all", linger_ms=0, **kw),
        KafkaConsumer=kafka.KafkaConsumer,
        KafkaAdminClient=kafka.KafkaAdminClient,
        NewTopic=kafka.admin.NewTopic,
        TopicPartition=kafka.TopicPartition,
        OffsetAndMetadata=_offset_and_metadata,
        connect={"bootstrap_servers": _listener.bootstrap},
        consumer_extra={"fetch_max_wait_ms": 100},
    )
