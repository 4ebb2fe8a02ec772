"""Produce requests into the log: one SQLite transaction for everything that queued up.

Records of a request's batch must get contiguous offsets (the client computes each one as
the base offset plus its index) and an idempotent producer's sequence state must be
durable with the records it describes, so a retry after a crash is still recognised.
Both hold for one ``LogTransaction`` (the broker's producer path for atomic writes).  To
keep the fsyncs few, requests arriving while a commit is in flight are written together
in the next one, and that transaction is committed ``shared``: the log's writer thread
writes it inside its own group commit, so inside ``edge run`` the wire's batches and the
devices' appends share one COMMIT and one fsync.  A commit that fails (the disk quota, a topic deleted meanwhile) is retried per
partition write, so one bad write fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode

from .._admin import KafkaAdminClient
from .._clock import Clock
from .._errors import (
    BrokerError,
    ConfigError,
    LogFullError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from .._producer import KafkaProducer
from ._metrics import ListenerMetrics
from ._recordbatch import Batch
from ._sequences import (
    EXPIRY_MS,
    STORE,
    ProducerEntry,
    Verdict,
    advanced,
    check,
    parse_state_key,
    state_key,
)

log = logging.getLogger("broker.wire")


@dataclass
class PartitionWrite:
    """The batches of one partition in one Produce request, and what became of them."""

    topic: str
    partition: int
    batches: list[Batch]
    error: ErrorCode = ErrorCode.none
    message: str | None = None
    base_offset: int = -1
    done: asyncio.Future[None] | None = None
    _updates: dict[tuple[int, str, int], ProducerEntry] = field(default_factory=dict)


def _error_for(exc: BrokerError) -> ErrorCode:
    if isinstance(exc, LogFullError | StorageError):
        return ErrorCode.kafka_storage_error
    if isinstance(exc, UnknownTopicOrPartitionError):
        return ErrorCode.unknown_topic_or_partition
    if isinstance(exc, ConfigError):
        return ErrorCode.invalid_record
    return ErrorCode.unknown_server_error


class Appender:
    """Queue partition writes; one task commits whatever is queued, one transaction at a time."""

    def __init__(self, producer: KafkaProducer, admin: KafkaAdminClient, run_blocking: Any,
                 metrics: ListenerMetrics, clock: Clock) -> None:
        self._metrics = metrics
        self._clock = clock
        # Entries whose newest offset is known in memory but stored as -1 (see _commit).
        self._dirty: dict[tuple[int, str, int], ProducerEntry] = {}
        self._producer = producer
        self._admin = admin
        self._run_blocking = run_blocking
        self._queue: list[PartitionWrite] = []
        self._wake = asyncio.Event()
        self._entries: dict[tuple[int, str, int], ProducerEntry] | None = None
        self.commits = 0

    async def load(self) -> None:
        """Read the persisted producer entries (once, before the first write)."""
        raw = await self._run_blocking(self._admin.read_state_store, STORE)
        entries = {}
        expired: list[bytes] = []
        horizon = self._clock.wall_ms() - EXPIRY_MS
        for key, value in raw.items():
            try:
                entry = ProducerEntry.decode(value)
                if entry.written_ms < horizon:
                    expired.append(key)
                else:
                    entries[parse_state_key(key)] = entry
            except (ValueError, KeyError, TypeError):
                log.warning("Kafka listener: ignored an unreadable producer entry %r", key[:80])
        if expired:
            await self._run_blocking(self._forget, expired)
            log.info("Kafka listener: forgot %d idempotent producer entries silent for over %d h",
                     len(expired), EXPIRY_MS // 3_600_000)
        self._entries = entries

    def _forget(self, keys: list[bytes]) -> None:
        txn = self._producer.begin_transaction()
        for key in keys:
            txn.put_state(STORE, key, None)
        txn.commit()

    async def write(self, writes: list[PartitionWrite]) -> None:
        """Write ``writes`` durably (or set their errors); returns when all are settled."""
        loop = asyncio.get_running_loop()
        for w in writes:
            w.done = loop.create_future()
            self._queue.append(w)
        self._wake.set()
        await asyncio.gather(*(w.done for w in writes if w.done is not None))

    async def run(self) -> None:
        """The commit loop (a server task): never raises for one write's failure."""
        if self._entries is None:
            await self.load()
        while True:
            await self._wake.wait()
            self._wake.clear()
            todo, self._queue = self._queue, []
            if not todo:
                continue
            try:
                await self._commit_all(todo)
            finally:
                for w in todo:
                    if w.done is not None and not w.done.done():
                        w.done.set_result(None)

    async def _commit_all(self, todo: list[PartitionWrite]) -> None:
        assert self._entries is not None
        entries = self._entries
        planned: list[PartitionWrite] = []
        pending: dict[tuple[int, str, int], ProducerEntry] = {}
        for w in todo:
            if self._judge(w, entries, pending):
                planned.append(w)
        if not planned:
            return
        try:
            await self._run_blocking(self._commit, planned)
        except BrokerError as exc:
            if len(planned) == 1:
                self._fail(planned[0], exc)
                return
            for w in planned:  # alone, each write succeeds or fails for itself
                try:
                    await self._run_blocking(self._commit, [w])
                except BrokerError as one:
                    self._fail(w, one)
                else:
                    entries.update(w._updates)
            return
        for w in planned:
            entries.update(w._updates)

    def _judge(self, w: PartitionWrite, entries: dict[tuple[int, str, int], ProducerEntry],
               pending: dict[tuple[int, str, int], ProducerEntry]) -> bool:
        """Decide each idempotent batch; False if nothing of ``w`` is to be written."""
        for b in w.batches:
            if b.producer_id < 0:
                continue
            key = (b.producer_id, w.topic, w.partition)
            entry = pending[key] if key in pending else entries.get(key)
            verdict, offset = check(entry, b)
            if verdict is Verdict.DUPLICATE and len(w.batches) == 1:
                w.base_offset = offset
                self._metrics.duplicates += 1
                log.info("Kafka listener: a retried batch of producer %d to %s[%d] (sequences %d..%d) "
                         "answered with its offset %d, not written again", b.producer_id, w.topic,
                         w.partition, b.base_sequence, b.last_sequence, offset)
                return False
            if verdict is Verdict.FENCED:
                w.error, w.message = ErrorCode.invalid_producer_epoch, "a newer producer epoch wrote here"
                return False
            if verdict is not Verdict.WRITE:
                w.error = ErrorCode.out_of_order_sequence_number
                w.message = f"sequence {b.base_sequence} does not follow the last one written"
                return False
            # The offset is known only once committed (-1 until then): a later write of the
            # same producer in this round already follows this batch.
            pending[key] = w._updates[key] = advanced(entry, b, -1, self._clock.wall_ms())
        return True

    def _commit(self, planned: list[PartitionWrite]) -> None:
        """One LogTransaction for every planned write (blocking: runs in an I/O thread).

        The producer entries are stored with the records.  Their newest batch's offset is
        assigned by this very commit, so it is stored as -1, filled in memory after it, and
        stored whole with the next commit of anything (or at close): only a retry after a
        crash right after its batch's commit is answered without the first write's offset,
        and still never written twice.
        """
        txn = self._producer.begin_transaction()
        firsts: list[list[int]] = []
        updated = {k for w in planned for k in w._updates}
        carried = {k: e for k, e in self._dirty.items() if k not in updated}
        try:
            for (pid, topic, part), entry in carried.items():
                txn.put_state(STORE, state_key(pid, topic, part), entry.encode())
            for w in planned:
                starts = []
                for b in w.batches:
                    starts.append(len(txn))
                    for r in b.records:
                        txn.send(w.topic, r.value, r.key, r.headers or None, w.partition, r.timestamp)
                firsts.append(starts)
                for (pid, topic, part), entry in w._updates.items():
                    txn.put_state(STORE, state_key(pid, topic, part), entry.encode())
            metadata = txn.commit(shared=True)  # one fsync with the service's appends
        except BaseException:
            txn.abort()
            raise
        self.commits += 1
        for k in carried:
            self._dirty.pop(k, None)
        for w, starts in zip(planned, firsts, strict=True):
            offsets = [metadata[i].offset for i in starts]
            w.base_offset = offsets[0] if offsets else -1
            for b, off in zip(w.batches, offsets, strict=True):
                if b.producer_id < 0:
                    continue
                entry = w._updates[(b.producer_id, w.topic, w.partition)]
                entry.batches = [(f, last, off if (f, last) == (b.base_sequence, b.last_sequence) and o == -1 else o)
                                 for f, last, o in entry.batches]
                self._dirty[(b.producer_id, w.topic, w.partition)] = entry

    def persist_offsets(self) -> None:
        """Store the entries whose offsets only memory has yet (blocking; at close)."""
        if not self._dirty:
            return
        txn = self._producer.begin_transaction()
        for (pid, topic, part), entry in list(self._dirty.items()):
            txn.put_state(STORE, state_key(pid, topic, part), entry.encode())
        try:
            txn.commit()
        except BrokerError as exc:  # a retry after the restart is then answered with offset -1
            log.warning("Kafka listener: could not store %d producers' last offsets at close: %s",
                        len(self._dirty), exc)
            return
        self._dirty.clear()

    def _fail(self, w: PartitionWrite, exc: BrokerError) -> None:
        w.error = _error_for(exc)
        w.message = str(exc)[:300]
        w._updates.clear()
        log.warning("Kafka listener: a produce to %s[%d] failed: %s", w.topic, w.partition, exc)
