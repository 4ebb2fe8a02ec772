"""The Kafka-semantics conformance suite, run against the local log.

The same tests run against a real Apache Kafka cluster in
``tests/deploy/test_conformance_kafka.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import broker
from tests.broker.conformance import *  # noqa: F403 - the shared tests are collected here
from tests.broker.conformance import KafkaImpl


@pytest.fixture
def kafka_impl(tmp_path: Path) -> Iterator[KafkaImpl]:
    yield KafkaImpl(
        name="local log",
        KafkaProducer=broker.KafkaProducer,
        KafkaConsumer=broker.KafkaConsumer,
        KafkaAdminClient=broker.KafkaAdminClient,
        NewTopic=broker.NewTopic,
        TopicPartition=broker.TopicPartition,
        OffsetAndMetadata=broker.OffsetAndMetadata,
        connect={"data_dir": tmp_path / "log"},
        consumer_extra={},
    )
