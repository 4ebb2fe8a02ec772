"""A record on its way into the log: what the writer and transactions carry until commit."""

from __future__ import annotations

from ._future import FutureRecordMetadata


class Pending:
    """One record with its encoded headers, its quota size and the future to resolve.

    ``partition`` is None until the writer places the record (murmur2 of the key,
    else round robin).
    """

    __slots__ = ("topic", "partition", "key", "value", "headers", "timestamp", "size", "future")

    def __init__(self, topic: str, partition: int | None, key: bytes | None, value: bytes | None,
                 headers: str | None, timestamp: int, size: int, future: FutureRecordMetadata) -> None:
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
        self.size = size
        self.future = future
