"""The embedded partitioned log: Kafka's ideas and kafka-python's API on one SQLite file.

>>> from broker import KafkaProducer, KafkaConsumer
>>> producer = KafkaProducer(data_dir="/tmp/log", value_serializer=lambda v: json.dumps(v).encode())
>>> producer.send("readings", {"c": 21.5}, key=b"room-1").get(timeout=10)
>>> for record in KafkaConsumer("readings", data_dir="/tmp/log", auto_offset_reset="earliest"):
...     print(record.offset, record.value)
"""

from typing import TYPE_CHECKING, Any

from ._admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions
from ._clock import Clock, ManualClock, SystemClock
from ._config import (
    DROP_LEDGER_TOPIC,
    MAX_COMMIT_INTERVAL_MS,
    MAX_PARTITIONS,
    MIN_QUOTA_BYTES,
    Durability,
    FullPolicy,
    LogConfig,
    TopicConfig,
)
from ._consumer import KafkaConsumer
from ._errors import (
    BrokerError,
    ClosedError,
    CommitFailedError,
    ConfigError,
    CorruptLogError,
    GroupIdNotFoundError,
    InvalidPartitionsError,
    InvalidTopicError,
    KafkaTimeoutError,
    LogFullError,
    LogLockedError,
    LogVersionError,
    OffsetOutOfRangeError,
    ReadOnlyLogError,
    SerializationError,
    StorageError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from ._future import FutureRecordMetadata
from ._murmur2 import default_partition, murmur2
from ._producer import KafkaProducer
from ._records import (
    ConsumerGroupDescription,
    ConsumerRecord,
    GroupOffset,
    NewTopic,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    PartitionDescription,
    RawRecord,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)
from ._topic_names import TOPIC_NAME_RULE, is_internal_topic, is_topic_name
from ._transaction import LogTransaction

if TYPE_CHECKING:
    from .wire import ListenerConfig, WireServer

__version__ = "0.1.0"

# The wire listener's names load on first use: its schema library (kio) costs a second at
# import where hypothesis is installed, which every CLI start would otherwise pay.
_LAZY = {"ListenerConfig": "broker.wire", "WireServer": "broker.wire"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'broker' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "DROP_LEDGER_TOPIC",
    "MAX_PARTITIONS",
    "MAX_COMMIT_INTERVAL_MS",
    "MIN_QUOTA_BYTES",
    "TOPIC_NAME_RULE",
    "BrokerError",
    "Clock",
    "ClosedError",
    "CommitFailedError",
    "ConfigError",
    "ConfigResource",
    "ConfigResourceType",
    "ConsumerGroupDescription",
    "ConsumerRecord",
    "CorruptLogError",
    "Durability",
    "FullPolicy",
    "FutureRecordMetadata",
    "GroupIdNotFoundError",
    "GroupOffset",
    "InvalidPartitionsError",
    "InvalidTopicError",
    "KafkaAdminClient",
    "KafkaConsumer",
    "KafkaProducer",
    "KafkaTimeoutError",
    "ListenerConfig",
    "LogConfig",
    "LogFullError",
    "LogLockedError",
    "LogVersionError",
    "LogTransaction",
    "ManualClock",
    "NewPartitions",
    "NewTopic",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "OffsetOutOfRangeError",
    "PartitionDescription",
    "RawRecord",
    "ReadOnlyLogError",
    "RecordMetadata",
    "SerializationError",
    "StorageError",
    "SystemClock",
    "TopicAlreadyExistsError",
    "TopicConfig",
    "TopicDescription",
    "TopicPartition",
    "UnknownTopicOrPartitionError",
    "WireServer",
    "default_partition",
    "is_internal_topic",
    "is_topic_name",
    "murmur2",
]
