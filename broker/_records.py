"""The value types of the log's API, named and shaped as in kafka-python."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._headers import decode_headers


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int


class OffsetAndMetadata(NamedTuple):
    """A committed offset: the next offset the group will read."""

    offset: int
    metadata: str = ""


class OffsetAndTimestamp(NamedTuple):
    """The answer of ``offsets_for_times``: the first offset at or after a time."""

    offset: int
    timestamp: int


class RecordMetadata(NamedTuple):
    """Where a record was durably written."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    serialized_key_size: int
    serialized_value_size: int
    serialized_header_size: int


class ConsumerRecord(NamedTuple):
    """One record read from the log, as kafka-python's consumer yields it.

    ``timestamp`` is the event time in ms since the epoch
    (``timestamp_type`` 0, CreateTime, as in Kafka).
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: Any
    value: Any
    headers: list[tuple[str, bytes | None]]  # a header value may be null, as in Kafka
    checksum: None
    serialized_key_size: int
    serialized_value_size: int
    serialized_header_size: int


class RawRecord(NamedTuple):
    """One record as the log stores it, from ``KafkaConsumer.poll_raw``.

    For readers that pass records on (the uplink) rather than look into them: key and
    value are the stored bytes (no deserializer applied) and the headers are still the
    stored JSON text, ``header_text`` (None when there are none); ``decoded_headers()``
    turns it into ``ConsumerRecord.headers``' list when it is needed.  Decoding it costs
    more than reading the row, and many records carry the same header text.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    header_text: str | None

    def decoded_headers(self) -> list[tuple[str, bytes | None]]:
        """The headers as ``ConsumerRecord.headers`` has them: ``[(key, value bytes or None)]``."""
        return decode_headers(self.header_text)


@dataclass(frozen=True)
class NewTopic:
    """A topic to create, as in ``kafka.admin.NewTopic``.

    ``replication_factor`` is accepted for portability and must be 1 (or -1):
    the box has one disk.  ``topic_configs`` takes Kafka's config names
    (``retention.ms``, ``retention.bytes``) plus ``priority``.
    """

    name: str
    num_partitions: int = 1
    replication_factor: int = 1
    replica_assignments: dict[int, list[int]] | None = None
    topic_configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicDescription:
    """What ``describe_topics`` tells about one topic."""

    name: str
    partitions: list[PartitionDescription]
    config: dict[str, str]
    priority: int

    @property
    def size_bytes(self) -> int:
        return sum(p.size_bytes for p in self.partitions)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)


@dataclass(frozen=True)
class PartitionDescription:
    """Offsets and size of one partition."""

    partition: int
    log_start_offset: int
    high_watermark: int
    records: int
    size_bytes: int


@dataclass(frozen=True)
class GroupOffset:
    """One row of ``describe_consumer_group``: committed offset and lag."""

    topic: str
    partition: int
    committed: int | None
    log_end_offset: int
    lag: int | None


@dataclass(frozen=True)
class ConsumerGroupDescription:
    """A consumer group's committed offsets and whether retention protects it.

    ``protected_topics``: the topics the protection covers when it covers only
    some (a stream topology's inputs); ``None`` when it covers every topic or
    the group is not protected.
    """

    group_id: str
    protected: bool
    offsets: list[GroupOffset]
    protected_topics: tuple[str, ...] | None = None
