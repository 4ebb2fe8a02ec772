"""The Kafka-semantics conformance suite, run against a real Apache Kafka cluster.

The same tests run against the local log in ``tests/broker/test_conformance_local.py``;
passing both shows the log's Kafka behaviour side by side with Kafka's own.
"""

from __future__ import annotations

import kafka
import pytest
from kafka.structs import OffsetAndMetadata

from deploy.kafka import KafkaCluster
from tests.broker.conformance import *  # noqa: F403 - the shared tests are collected here
from tests.broker.conformance import KafkaImpl


def _offset_and_metadata(offset: int, metadata: str = "") -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, metadata, -1)


@pytest.fixture
def kafka_impl(kafka_cluster: KafkaCluster) -> KafkaImpl:
    return KafkaImpl(
        name="Apache Kafka",
        KafkaProducer=lambda **kw: kafka.KafkaProducer(acks="all", linger_ms=0, **kw),
        KafkaConsumer=kafka.KafkaConsumer,
        KafkaAdminClient=kafka.KafkaAdminClient,
        NewTopic=kafka.admin.NewTopic,
        TopicPartition=kafka.TopicPartition,
        OffsetAndMetadata=_offset_and_metadata,
        connect={"bootstrap_servers": kafka_cluster.bootstrap_servers},
        consumer_extra={"fetch_max_wait_ms": 100},
    )
