"""``KafkaProducer``: kafka-python's producer, writing to the local log."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from ._admin import known_partition_count, topic_partition_count
from ._checks import check_record, check_topic_for_write
from ._client import open_log
from ._config import LogConfig, validate_topic_name
from ._errors import ClosedError, ConfigError, KafkaTimeoutError, UnknownTopicOrPartitionError
from ._future import FutureRecordMetadata, _Round
from ._records import RecordMetadata
from ._serializer import Serializer, serialize
from ._transaction import LogTransaction

BUFFER_MEMORY = 33_554_432  # kafka-python's buffer_memory default (32 MiB)
MAX_BLOCK_MS = 60_000  # kafka-python's max_block_ms default
# What a queued record holds in memory beyond its key, value and header bytes: its
# Pending, its future and the objects they point to (~260 bytes measured with
# tracemalloc, 20,000 records queued behind a held writer). Counted so that
# buffer_memory bounds the memory the queue takes, not only the payload: a caller that
# sends one shared 200-byte value over and over queues little payload but much overhead.
RECORD_OVERHEAD = 256


class KafkaProducer:
    """Append records to the local log, as kafka-python's ``KafkaProducer`` does to Kafka.

    ``send`` does not block on the disk: it queues the record and returns a
    future that resolves once the record is durable (see ``Durability``).
    Concurrent sends share one transaction and one fsync.  Thread-safe.

    As in kafka-python, the records queued and not yet committed may take at most
    ``buffer_memory`` bytes (key, value, headers and a fixed per-record overhead);
    ``send`` blocks while they would exceed it and raises ``KafkaTimeoutError`` after
    ``max_block_ms``.

    >>> producer = KafkaProducer(data_dir="/var/lib/edge/log",
    ...                          value_serializer=lambda v: json.dumps(v).encode())
    >>> producer.send("readings", {"t": 21.5}, key=b"room-1").get(timeout=10)
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *,
                 key_serializer: Serializer | None = None,
                 value_serializer: Serializer | None = None,
                 log_config: LogConfig | None = None, buffer_memory: int = BUFFER_MEMORY,
                 max_block_ms: int = MAX_BLOCK_MS, **kafka_options: Any) -> None:
        for name, value in (("buffer_memory", buffer_memory), ("max_block_ms", max_block_ms)):
            if type(value) is not int or value < (1 if name == "buffer_memory" else 0):
                raise ConfigError(f"KafkaProducer: {name}: expected an integer "
                                  f"{'> 0 (bytes)' if name == 'buffer_memory' else '>= 0 (ms)'}, got {value!r:.80}")
        for name, fn in (("key_serializer", key_serializer), ("value_serializer", value_serializer)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name}: expected a function returning bytes, got {fn!r:.80}")
        self._log = open_log(data_dir, log_config, kafka_options, "KafkaProducer")
        self._key_serializer = key_serializer
        self._value_serializer = value_serializer
        self._topics_ok: set[str] = set()
        self._partition_counts: dict[str, int] = {}
        self._closed = False
        self._buffer_memory = buffer_memory
        self._max_block_s = max_block_ms / 1000
        self._queued = 0  # bytes of this producer's records not yet committed (or failed)
        self._room = threading.Condition(threading.Lock())
        # Bytes per commit round: a round resolves all its futures at once, so one
        # callback per round (on its first future) releases them, not one per record.
        self._round_bytes: dict[_Round, int] = {}

    def send(self, topic: str, value: Any = None, key: Any = None,
             headers: Sequence[tuple[str, bytes | None]] | None = None, partition: int | None = None,
             timestamp_ms: int | None = None, *, awaited: bool = True) -> FutureRecordMetadata:
        """Queue a record; return a future of its ``RecordMetadata``.

        Keyed records go to ``murmur2(key) % partitions`` as in Kafka; keyless
        ones rotate.  Raises ``SerializationError`` for a key/value that is not
        bytes without a serializer; failures at commit time (``LogFullError``,
        unknown topic) are raised by ``future.get()``.  Blocks while ``buffer_memory``
        is full and raises ``KafkaTimeoutError`` if no room comes within ``max_block_ms``.

        ``awaited`` (not in kafka-python): False says nobody holds an acknowledgement for
        this record (a serial reading, unlike an MQTT QoS 1 delivery), so under a
        ``commit_interval_ms`` it waits out the interval instead of counting towards the
        early commit start; either way the future resolves only once the record is durable.
        """
        if self._closed:
            raise ClosedError("send() on a closed KafkaProducer")
        if type(topic) is not str or topic not in self._topics_ok:  # a list is not even hashable
            check_topic_for_write(topic)
            self._topics_ok.add(topic)
        if value is None and key is None:
            raise ConfigError("send() needs a value or a key (both were None)")
        k = serialize(key, self._key_serializer, "key", topic)
        v = serialize(value, self._value_serializer, "value", topic)
        if partition is not None or timestamp_ms is not None or headers is not None:
            check_record(partition, timestamp_ms, headers)
            if partition is not None and partition >= self._partition_counts.get(topic, 0):
                self._check_partition_exists(topic, partition)
        size = RECORD_OVERHEAD + (len(k) if k else 0) + (len(v) if v else 0)
        if headers:
            size += sum(len(name) + (len(hv) if hv is not None else 0) for name, hv in headers)
        with self._room:
            if self._queued + size > self._buffer_memory and self._queued:
                self._wait_for_room(size, topic)
            self._queued += size
        try:
            fut = self._log.append(topic, partition, k, v, headers, timestamp_ms, awaited)
        except BaseException:
            self._release(size)
            raise
        self._account(fut, size)
        return fut

    def _wait_for_room(self, size: int, topic: str) -> None:
        """Block (lock held) until ``size`` more bytes fit, as kafka-python's send() does when
        its buffer is full; raise KafkaTimeoutError after max_block_ms.

        A record alone larger than the buffer is let through once the queue is empty, rather
        than refused: the log takes records up to its own size limit whatever this bound.
        """
        if threading.current_thread() is self._log._writer:
            # A send from a callback runs in the writer thread, which alone releases room:
            # waiting here would wait for ourselves until max_block_ms.
            return
        deadline = time.monotonic() + self._max_block_s
        while self._queued and self._queued + size > self._buffer_memory:
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                raise KafkaTimeoutError(
                    f"send to {topic!r}: {self._queued:,} bytes of records are waiting to be committed, "
                    f"over buffer_memory={self._buffer_memory:,}, and none was committed within "
                    f"max_block_ms={round(self._max_block_s * 1000)} (is the disk very slow, or the log "
                    "locked by another process?); retry later, or raise buffer_memory or max_block_ms"
                )
            self._room.wait(left)

    def _account(self, fut: FutureRecordMetadata, size: int) -> None:
        """Charge ``size`` to the commit round of ``fut``; the round's end releases it."""
        rnd = fut._round
        with self._room:
            if rnd in self._round_bytes:
                self._round_bytes[rnd] += size
                return
            self._round_bytes[rnd] = size
        # Outside our lock: on a round already done the callback runs here and now. A
        # record charged late to a round that is done gets a fresh entry, released at once.
        fut.add_both(self._round_done, rnd)

    def _round_done(self, rnd: _Round, _result: object) -> None:
        with self._room:
            self._queued -= self._round_bytes.pop(rnd, 0)
            self._room.notify_all()

    def _release(self, size: int) -> None:
        with self._room:
            self._queued -= size
            self._room.notify_all()

    def _check_partition_exists(self, topic: str, partition: int) -> None:
        """Refuse a partition the topic does not have now, as kafka-python's send() does.

        The count is cached per topic and read again only when a partition beyond it is
        asked for (a topic may grow); the writer checks again at commit, where a topic
        that shrank by being re-created is caught.
        """
        n = known_partition_count(self._log, topic)
        if n is None:  # not created yet: the writer creates it (auto-create) or fails the future
            return
        self._partition_counts[topic] = n
        if partition >= n:
            raise UnknownTopicOrPartitionError(f"topic {topic!r} has partitions 0..{n - 1}, not {partition}")

    async def send_and_wait(self, topic: str, value: Any = None, key: Any = None,
                            headers: Sequence[tuple[str, bytes | None]] | None = None,
                            partition: int | None = None, timestamp_ms: int | None = None) -> RecordMetadata:
        """``send`` for asyncio code: returns once the record is durable, without blocking the loop."""
        # Imported here: asyncio (and the ssl it loads) is ~10 MB of a process that does not
        # use it otherwise, such as a plain producer on a Pi.
        import asyncio

        fut = self.send(topic, value, key, headers, partition, timestamp_ms)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[RecordMetadata] = loop.create_future()

        def done(result: Any) -> None:
            if waiter.done():
                return
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)

        fut.add_both(lambda r: loop.call_soon_threadsafe(done, r))
        return await waiter

    def begin_transaction(self) -> LogTransaction:
        """A transaction: records, consumer-group offsets and state rows committed as one.

        Kafka's ``begin_transaction``/``send_offsets_to_transaction``/
        ``commit_transaction`` in one object (see ``LogTransaction``); this
        producer's serializers apply to its ``send``.  Records sent with
        ``send()`` meanwhile are not part of it.
        """
        if self._closed:
            raise ClosedError("begin_transaction() on a closed KafkaProducer")
        return LogTransaction(self._log, self._key_serializer, self._value_serializer)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record sent so far is durable (or failed); ``timeout`` in seconds."""
        self._log.flush(timeout)

    def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of ``topic``."""
        validate_topic_name(topic)
        return set(range(topic_partition_count(self._log, topic)))

    def metrics(self) -> dict[str, int]:
        """Counters of the log this producer writes to (commits, records, drops)."""
        return dict(self._log.stats)

    def close(self, timeout: float | None = None) -> None:
        """Flush and release the log; safe to call twice."""
        if self._closed:
            return
        try:
            self._log.flush(timeout)
        finally:
            self._closed = True
            self._log.release()

    def __enter__(self) -> KafkaProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
