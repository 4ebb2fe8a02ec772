"""``broker.__all__`` is exactly the public API we mean to export, and every name in it exists."""

from __future__ import annotations

import broker

EXPECTED = {
    # clients, as in kafka-python
    "KafkaProducer", "KafkaConsumer", "KafkaAdminClient",
    # value types, as in kafka-python
    "NewTopic", "NewPartitions", "ConfigResource", "ConfigResourceType", "TopicPartition",
    "OffsetAndMetadata", "OffsetAndTimestamp", "RecordMetadata", "ConsumerRecord",
    "FutureRecordMetadata",
    # a record as stored, for readers that pass records on (the uplink)
    "RawRecord",
    # transactions: records, group offsets and state rows committed as one
    "LogTransaction",
    # descriptions returned by the admin client
    "TopicDescription", "PartitionDescription", "ConsumerGroupDescription", "GroupOffset",
    # settings and clocks
    "LogConfig", "TopicConfig", "Durability", "FullPolicy", "DROP_LEDGER_TOPIC", "MAX_PARTITIONS",
    "MAX_COMMIT_INTERVAL_MS",
    "MIN_QUOTA_BYTES",
    "Clock", "SystemClock", "ManualClock",
    # Kafka's topic-name rule, shared with edge/ (config, streams, uplink)
    "TOPIC_NAME_RULE", "is_topic_name", "is_internal_topic",
    # Kafka's partitioner
    "murmur2", "default_partition",
    # errors: one root, leaves chosen by how a caller reacts
    "BrokerError", "ConfigError", "InvalidTopicError", "InvalidPartitionsError", "SerializationError",
    "UnknownTopicOrPartitionError", "TopicAlreadyExistsError", "GroupIdNotFoundError", "OffsetOutOfRangeError", "LogFullError",
    "StorageError", "LogLockedError", "CorruptLogError", "LogVersionError", "ReadOnlyLogError",
    "KafkaTimeoutError", "ClosedError",
    "CommitFailedError",
    # Kafka's wire protocol over the log (broker.wire has the rest: registry, context)
    "WireServer", "ListenerConfig",
}


def test_all_is_exactly_what_we_mean_to_export() -> None:
    assert len(broker.__all__) == len(set(broker.__all__)), "a name is listed twice"
    assert set(broker.__all__) == EXPECTED


def test_every_exported_name_exists_and_is_public() -> None:
    for name in broker.__all__:
        assert hasattr(broker, name), name
        obj = getattr(broker, name)
        module = getattr(obj, "__module__", None)
        if module is not None and not isinstance(obj, str):
            assert module.startswith("broker"), f"{name} comes from {module}"


def test_every_error_descends_from_broker_error() -> None:
    errors = [getattr(broker, n) for n in broker.__all__ if n.endswith("Error")]
    assert len(errors) == 18
    for err in errors:
        assert issubclass(err, broker.BrokerError)
        assert isinstance(err.retriable, bool)
    retriable = {e.__name__ for e in errors if e.retriable}
    assert retriable == {"LogFullError", "LogLockedError", "KafkaTimeoutError"}


def test_version() -> None:
    assert broker.__version__.count(".") == 2
