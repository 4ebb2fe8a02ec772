"""``LogTransaction``: records, consumer-group offsets and state rows committed as one.

Kafka Streams gets exactly-once from Kafka transactions: the output records
and the input offsets (``send_offsets_to_transaction``) become visible
together or not at all, and its state lives in changelog topics written in
the same transaction.  Here all three are rows of one SQLite database, so
one SQLite transaction does it::

    txn = producer.begin_transaction()
    txn.send("alerts", b'{"c": 39.1}', key=b"ward3-bed2", headers=[...], timestamp_ms=ts)
    txn.commit_offsets("streams.vitals", {TopicPartition("readings", 0): 1042},
                       expected={TopicPartition("readings", 0): 1000})
    txn.put_state("streams.vitals/fever", b"ward3-bed2", b'{"on": true}')
    metadata = txn.commit()     # durable when it returns; all of it or nothing

Nothing touches the database until ``commit()``: operations are collected
in memory, then written in one ``BEGIN IMMEDIATE ... COMMIT`` on the log's
writer connection (serialised with the group-committed appends of
producers in this process, and with other processes by SQLite's write
lock).  With ``Durability.FSYNC`` the commit is fsynced before ``commit()``
returns.  ``expected`` fences a second runner of the same group: if the
group's committed offset of a partition is not what the caller last saw,
the whole transaction is rolled back with ``CommitFailedError``.

State rows live in the ``state(store, key, value)`` table, readable with
plain SQL or ``KafkaAdminClient.read_state_store``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._checks import (
    check_commit_offsets,
    check_offset,
    check_record,
    check_topic_for_write,
    check_topic_partition,
)
from ._errors import (
    ClosedError,
    ConfigError,
    SerializationError,
)
from ._future import FutureRecordMetadata, _Round
from ._headers import encode_headers
from ._pending import Pending
from ._records import OffsetAndMetadata, RecordMetadata, TopicPartition
from ._serializer import Serializer, serialize
from ._storage import record_sizes

if TYPE_CHECKING:
    from ._log import Log


__all__ = ["LogTransaction"]


class LogTransaction:
    """Appends, group offset commits and state writes that commit atomically and durably.

    Obtain one from ``KafkaProducer.begin_transaction()``.  Not thread-safe;
    use each transaction once: after ``commit()`` or ``abort()`` it is spent.
    """

    def __init__(self, log: Log, key_serializer: Serializer | None = None,
                 value_serializer: Serializer | None = None) -> None:
        self._log = log
        self._key_ser = key_serializer
        self._value_ser = value_serializer
        self._round = _Round()
        self._records: list[Pending] = []
        self._offsets: dict[tuple[str, str, int], tuple[int, str]] = {}
        self._expected: dict[tuple[str, str, int], int | None] = {}
        self._state: dict[tuple[str, bytes], bytes | None] = {}
        self._topics_ok: set[str] = set()
        self._done = False

    def __len__(self) -> int:
        """How many records this transaction will append."""
        return len(self._records)

    def send(self, topic: str, value: Any = None, key: Any = None,
             headers: Sequence[tuple[str, bytes | None]] | None = None, partition: int | None = None,
             timestamp_ms: int | None = None) -> None:
        """Add a record to append at commit, as ``KafkaProducer.send`` would.

        Keyed records go to ``murmur2(key) % partitions`` unless ``partition``
        is given.  Serializers are the producer's.  Offsets are known only
        after ``commit()``, which returns them.
        """
        if self._done:
            self._check_open()
        if type(topic) is not str or topic not in self._topics_ok:  # a list is not even hashable
            check_topic_for_write(topic)
            self._topics_ok.add(topic)
        if value is None and key is None:
            raise ConfigError("send() needs a value or a key (both were None)")
        # bytes without a serializer (stream processing's case) skip the general path
        k = key if (self._key_ser is None and (key is None or type(key) is bytes)) else \
            serialize(key, self._key_ser, "key", topic)
        v = value if (self._value_ser is None and (value is None or type(value) is bytes)) else \
            serialize(value, self._value_ser, "value", topic)
        check_record(partition, timestamp_ms, headers)
        ts = self._log.clock.wall_ms() if timestamp_ms is None else timestamp_ms
        hdr = encode_headers(headers) if headers else None
        size, ksize, vsize, hsize = record_sizes(k, v, hdr)
        fut = FutureRecordMetadata(self._round, topic, partition, ts, ksize, vsize, hsize)
        self._records.append(Pending(topic, partition, k, v, hdr, ts, size, fut))

    def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
                       *, expected: Mapping[TopicPartition, int | None] | None = None) -> None:
        """Commit ``offsets`` for ``group_id`` with this transaction (Kafka's
        ``send_offsets_to_transaction``).

        ``expected``: what the caller believes the group has committed now
        (None: never committed).  If the log disagrees at commit time, the
        transaction fails with ``CommitFailedError`` and nothing is written.
        """
        self._check_open()
        if not isinstance(group_id, str) or not group_id:
            raise ConfigError(f"group_id: expected a non-empty string, got {group_id!r}")
        for tp, off, meta in check_commit_offsets(offsets, "commit_offsets"):
            self._offsets[(group_id, tp.topic, tp.partition)] = (off, meta)
        if expected is not None and not isinstance(expected, Mapping):
            raise ConfigError(f"commit_offsets: expected: expected a dict of TopicPartition to offset or None, "
                              f"got {expected!r:.80}")
        for tp, want in (expected or {}).items():
            tp = check_topic_partition(tp, "commit_offsets: expected")
            if want is not None:
                check_offset(want, f"commit_offsets: expected offset for {tp.topic}[{tp.partition}]")
            self._expected[(group_id, tp.topic, tp.partition)] = want

    def put_state(self, store: str, key: bytes, value: bytes | None) -> None:
        """Set ``key`` of state store ``store`` to ``value`` at commit (None deletes the key)."""
        self._check_open()
        if not isinstance(store, str) or not store:
            raise ConfigError(f"store: expected a non-empty string, got {store!r}")
        if type(key) is not bytes:
            raise SerializationError(f"state key for store {store!r} must be bytes, got {type(key).__name__}")
        if value is not None and type(value) is not bytes:
            raise SerializationError(
                f"state value for store {store!r} must be bytes or None, got {type(value).__name__}"
            )
        self._state[(store, key)] = value

    def commit(self, metadata: bool = True, *, shared: bool = False) -> list[RecordMetadata]:
        """Write everything in one SQLite transaction; return where each sent record landed.

        ``metadata=False`` returns ``[]`` instead, sparing a tuple per record
        to a caller that does not need the offsets.  ``shared=True``: the log's
        writer thread writes it within its next group commit, sharing that commit's
        fsync with the producers' appends queued meanwhile (still all or nothing).

        Blocks until durable.  Raises ``CommitFailedError`` (fenced by
        ``expected``), ``UnknownTopicOrPartitionError``, ``LogFullError``
        (quota with the ``reject`` policy: nothing is written, not even the
        records that would fit), ``LogLockedError`` or ``StorageError``; after
        any of them nothing of the transaction is in the log.
        """
        self._check_open()
        self._done = True
        try:
            self._log.commit_transaction(self._records, self._offsets, self._expected, self._state,
                                         shared=shared)
        finally:
            self._round.done()
        return [p.future._metadata() for p in self._records] if metadata else []

    def abort(self) -> None:
        """Forget everything added; nothing was written.  Safe to call twice."""
        if not self._done:
            self._done = True
            self._round.done()

    def _check_open(self) -> None:
        if self._done:
            raise ClosedError("this transaction was already committed or aborted; begin a new one")
