"""Produce requests into the log: one SQLite transaction for everything that queued up.

Records of a request's batch must get contiguous offsets (the client computes each one as
the base offset plus its index) and an idempotent producer's sequence state must be
durable with the records it describes, so a retry after a crash is still recognised.
Both hold for one ``LogTransaction`` (the broker's producer path for atomic writes).  To
keep the fsyncs few, requests arriving while a commit is in flight are written together
in the next one: group commit at the listener, one fsync for all the connections
waiting.  A commit that fails (the disk quota, a topic deleted meanwhile) is retried per
partition write, so one bad write fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode

from .._admin import KafkaAdminClient
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
from ._sequences import STORE, ProducerEntry, Verdict, advanced, check, parse_state_key, state_key

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
                 metrics: ListenerMetrics) -> None:
        self._metrics = metrics
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
        for key, value in raw.items():
            try:
                entries[parse_state_key(key)] = ProducerEntry.decode(value)
            except (ValueError, KeyError, TypeError):
                log.warning("Kafka listener: ignored an unreadable producer entry %r", key[:80])
        self._entries = entries

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
            pending[key] = w._updates[key] = advanced(entry, b, -1)
        return True

    def _commit(self, planned: list[PartitionWrite]) -> None:
        """One LogTransaction for every planned write (blocking: runs in an I/O thread).

        The producer entries are stored with the records.  Their newest batch's offset is
        assigned by this very commit, so it is stored as -1 and filled in memory after it
        (and on disk with the next write of that producer): only a retry that spans a
        restart is answered without its first write's offset, and still never written twice.
        """
        txn = self._producer.begin_transaction()
        firsts: list[list[int]] = []
        try:
            for w in planned:
                starts = []
                for b in w.batches:
                    starts.append(len(txn))
                    for r in b.records:
                        txn.send(w.topic, r.value, r.key, r.headers or None, w.partition, r.timestamp)
                firsts.append(starts)
                for (pid, topic, part), entry in w._updates.items():
                    txn.put_state(STORE, state_key(pid, topic, part), entry.encode())
            metadata = txn.commit()
        except BaseException:
            txn.abort()
            raise
        self.commits += 1
        for w, starts in zip(planned, firsts, strict=True):
            offsets = [metadata[i].offset for i in starts]
            w.base_offset = offsets[0] if offsets else -1
            for b, off in zip(w.batches, offsets, strict=True):
                if b.producer_id < 0:
                    continue
                entry = w._updates[(b.producer_id, w.topic, w.partition)]
                entry.batches = [(f, last, off if (f, last) == (b.base_sequence, b.last_sequence) and o == -1 else o)
                                 for f, last, o in entry.batches]

    def _fail(self, w: PartitionWrite, exc: BrokerError) -> None:
        w.error = _error_for(exc)
        w.message = str(exc)[:300]
        w._updates.clear()
        log.warning("Kafka listener: a produce to %s[%d] failed: %s", w.topic, w.partition, exc)
