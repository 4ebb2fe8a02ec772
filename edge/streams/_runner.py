"""``StreamsRunner``: runs a topology over the local log, exactly once.

One batch at a time: read up to ``max_batch_records`` input records (a fixed
share per partition, in partition order, so a batch depends only on the
committed offsets and the log), push each through the processors that
``_compile.compile_topology`` made of the topology,
then commit the batch's output records, state changes and input offsets in
one ``LogTransaction``.  Nothing of a batch is visible before its commit, and
a batch that failed to commit is forgotten: state is reloaded and the input
read again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from broker import (
    BrokerError,
    Clock,
    CommitFailedError,
    ConsumerRecord,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    NewTopic,
    SystemClock,
    TopicAlreadyExistsError,
    TopicPartition,
)

from ._compile import Context, Counters, compile_topology
from ._dsl import SOURCE, Table, Topology
from ._errors import FencedError, StreamsError, TopologyError
from ._record import Record, decode_value
from ._status import PartitionProgress, StreamsStatus
from ._store import StateStore, key_text, text_key

__all__ = ["StreamsRunner"]

log = logging.getLogger("edge.streams")

DEFAULT_BATCH_RECORDS = 5000
_ASSIGN_REFRESH_S = 1.0
_RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class StreamsRunner:
    """Run ``topology`` over the log in ``log`` (a data directory or a ``LogConfig``).

    Each batch of input records is processed and then committed in one SQLite
    transaction of the log: the output records, the state-store changes and
    the input offsets (group ``streams.<topology>``) together, durable before
    the next batch starts.  A crash at any point leaves either all of a batch
    or none of it, so a restarted runner resumes exactly where the committed
    state says, and no record is lost or counted twice.  A partition the
    group never committed is read from its earliest record.

    ``protect_input`` (default on): the group is registered with the log as
    protected on the source topics (``KafkaAdminClient.protect_consumer_group``),
    so age and size retention never remove input this topology has not
    processed, and the disk quota's ``drop-oldest`` drops it only after
    everything no protected group needs (as for the uplink's records).  The
    protection outlives the runner, like a committed offset: a topology taken
    out of service is released with ``protect_consumer_group(group, False)``
    (the service does that for topologies no longer in its config).

    ``dead_letter_topic``: where a record goes when a processor raises on it
    (headers name the error, the processor, the topology and the source).
    ``late_topic``: where records later than a window's grace go (default
    ``<topology>.late``).  ``clock``: wall time for status only (event time
    always comes from record timestamps).  ``max_batch_records``: input
    records per transaction (more is faster, and holds the write lock longer).

    ``process_available()`` processes what is in the log now (tests, tools);
    ``await run()`` processes until cancelled or ``stop()``, waking on each
    commit to the log; ``close()`` releases the log; ``status()`` reports
    progress.  Raises ``FencedError`` when another runner of the same
    topology commits; storage errors come out as ``broker.BrokerError``.
    """

    def __init__(self, topology: Topology, log: str | os.PathLike[str] | LogConfig, *,
                 dead_letter_topic: str = "dead-letters", late_topic: str | None = None,
                 clock: Clock | None = None, max_batch_records: int = DEFAULT_BATCH_RECORDS,
                 protect_input: bool = True) -> None:
        if not isinstance(topology, Topology):
            raise TopologyError(f"StreamsRunner: expected a Topology, got {type(topology).__name__}")
        if not any(n.kind == SOURCE for n in topology.nodes):
            raise TopologyError(f"topology {topology.name!r} has no source: call topology.source(topic)")
        if not isinstance(max_batch_records, int) or max_batch_records < 1:
            raise TopologyError(f"max_batch_records: expected an integer >= 1, got {max_batch_records!r}")
        self.topology = topology
        self.log_config = log if isinstance(log, LogConfig) else LogConfig(data_dir=Path(log))
        self.dead_letter_topic = dead_letter_topic
        self.late_topic = late_topic or f"{topology.name}.late"
        self.clock = clock or SystemClock()
        self.max_batch_records = max_batch_records
        self.group_id = topology.group_id
        self._counters = Counters()
        self._ctx = Context()
        self._state = "created"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # run()'s worker
        self._lock = threading.Lock()  # guards the committed offsets status() reads
        self._admin = KafkaAdminClient(log_config=self.log_config)
        self._producer: KafkaProducer | None = None
        self._consumer: KafkaConsumer | None = None
        try:
            if protect_input:
                # Before the first read: from here on retention keeps what the group has not
                # committed past, on the inputs only (an unscoped group would hold every topic).
                self._admin.protect_consumer_group(self.group_id, topics=topology.source_topics)
            self._producer = KafkaProducer(log_config=self.log_config)
            self._consumer = KafkaConsumer(
                log_config=self.log_config, enable_auto_commit=False, auto_offset_reset="earliest",
                max_poll_records=max_batch_records)
            self._partitions: dict[str, int] = {}
            self._ensure_topics()
            self._stores: list[StateStore] = []
            self._watermarks = StateStore(f"{self.group_id}/__watermarks")
            self._stores.append(self._watermarks)
            self._node_stores: dict[str, StateStore] = {}
            for node in topology.nodes:
                for store in node.stores:
                    self._node_stores[node.name] = StateStore(
                        f"{self.group_id}/{store}", raw=node.kind in ("PROCESSOR", "TOTABLE"))
                    self._stores.append(self._node_stores[node.name])
            self._compiled = compile_topology(
                topology, ctx=self._ctx, counters=self._counters, stores=self._node_stores,
                watermarks=self._watermarks, partitions=self._partitions,
                dead_letter_topic=dead_letter_topic, late_topic=self.late_topic)
            self._assigned: list[TopicPartition] = []
            self._positions: dict[TopicPartition, int] = {}
            self._committed: dict[TopicPartition, int] = {}
            self._last_assign = -1e9
            self._load()
        except BaseException:
            self.close()
            raise
        for table in topology.tables.values():
            table._runner = self

    # -- set-up -------------------------------------------------------------------------------

    def _ensure_topics(self) -> None:
        """Create missing sink, late and dead-letter topics, so keyless records can be placed."""
        wanted = [*self.topology.sink_topics, self.late_topic, self.dead_letter_topic]
        existing = set(self._admin.list_topics())
        n = self.log_config.default_partitions
        for topic in wanted:
            if topic not in existing:
                try:
                    self._admin.create_topics([NewTopic(topic, n, 1)])
                except TopicAlreadyExistsError:
                    pass  # another process created it meanwhile
        for desc in self._admin.describe_topics(wanted):
            self._partitions[desc.name] = len(desc.partitions)

    def _load(self) -> None:
        """Committed offsets and state, into memory (at start, and after a failed commit)."""
        offsets = self._admin.list_consumer_group_offsets(self.group_id)
        with self._lock:
            self._committed = {tp: om.offset for tp, om in offsets.items()}
        self._positions = dict(self._committed)
        for store in self._stores:
            store.load(self._admin)
        for rebuild in self._compiled.rebuilders:
            rebuild()
        self._sync_assignment(force=True)

    def _sync_assignment(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_assign < _ASSIGN_REFRESH_S:
            return
        self._last_assign = now
        assert self._consumer is not None
        existing = set(self._admin.list_topics())
        wanted: list[TopicPartition] = []
        for desc in self._admin.describe_topics([t for t in self.topology.source_topics if t in existing]):
            wanted.extend(TopicPartition(desc.name, p.partition) for p in desc.partitions)
        wanted.sort()
        if wanted != self._assigned or force:
            self._consumer.assign(wanted)
            starts = self._consumer.beginning_offsets(wanted)
            for tp in wanted:
                pos = self._positions.get(tp, starts[tp])
                self._positions[tp] = pos
                self._consumer.seek(tp, pos)
            self._assigned = wanted

    # -- running --------------------------------------------------------------------------------

    def process_available(self) -> int:
        """Process every record in the input topics now, batch by batch; return how many.

        Blocks (SQLite); each batch is committed before the next is read.
        """
        self._check_open()
        total = 0
        while True:
            n = self._process_batch()
            if n == 0:
                if self._state == "created":
                    self._state = "idle"
                return total
            total += n

    def _read_batch(self) -> tuple[list[ConsumerRecord], dict[TopicPartition, int]]:
        """Up to ``max_batch_records`` records: each partition with a backlog, in order, an equal share."""
        assert self._consumer is not None
        self._sync_assignment()
        consumer = self._consumer
        ends = consumer.end_offsets(self._assigned)
        backlog = [tp for tp in self._assigned if self._positions[tp] < ends[tp]]
        if not backlog:
            return [], {}
        share = max(1, -(-self.max_batch_records // len(backlog)))
        out: list[ConsumerRecord] = []
        done: dict[TopicPartition, int] = {}  # the offsets to commit after this batch
        consumer.pause(*self._assigned)
        for tp in backlog:
            consumer.resume(tp)
            got = consumer.poll(timeout_ms=0, max_records=share).get(tp, [])
            consumer.pause(tp)
            if got and got[0].offset != self._positions[tp]:
                skipped = got[0].offset - self._positions[tp]
                self._counters.skipped += skipped
                log.warning("topology %s: %d record(s) of %s[%d] were removed by retention before "
                            "they were processed", self.topology.name, skipped, tp.topic, tp.partition)
            if got:
                out.extend(got)
                done[tp] = got[-1].offset + 1
        return out, done

    def _process_batch(self) -> int:
        assert self._producer is not None
        batch, done = self._read_batch()
        if not batch:
            return 0
        ctx = self._ctx
        txn = ctx.txn = self._producer.begin_transaction()
        wms = self._watermarks.data
        wm_dirty = self._watermarks.dirty
        closers = self._compiled.closers
        sources = self._compiled.sources
        try:
            for r in batch:
                task = r.partition
                ctx.task = task
                ctx.raw = r
                ctx.src = f"{r.topic}/{task}/{r.offset}".encode()
                ts = r.timestamp
                wk = (task,)
                wm = wms.get(wk)
                if wm is None or ts > wm:
                    wms[wk] = ts
                    wm_dirty.add(wk)
                    for close in closers:
                        close()
                rec = Record(r.key, decode_value(r.value), ts, r.headers, r.topic, task, r.offset)
                sources[r.topic](rec)
            for expire in self._compiled.expirers:
                expire()
            for store in self._stores:
                store.write(txn)
            txn.commit_offsets(self.group_id, done,
                               expected={tp: self._committed.get(tp) for tp in done})
            txn.commit(metadata=False)
        except CommitFailedError as exc:
            self._state = "fenced"
            raise FencedError(
                f"topology {self.topology.name!r}: {exc}; stopping (is it running twice?)"
            ) from exc
        except BaseException:
            txn.abort()
            self._load()  # forget the batch: memory back to the committed state
            raise
        finally:
            ctx.txn = None
            ctx.raw = None
        self._positions.update(done)
        with self._lock:
            self._committed.update(done)
        self._counters.records_in += len(batch)
        self._counters.transactions += 1
        self._counters.last_commit_ms = self.clock.wall_ms()
        return len(batch)

    async def run(self) -> None:
        """Process records as they arrive until cancelled or ``stop()``.

        The work runs in one dedicated thread; cancelling lets the current
        batch finish (and commit) before ``run`` returns.  Retriable log
        errors (locked, full) are retried with backoff; others are raised.
        """
        self._check_open()
        self._stop.clear()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        def work() -> None:
            try:
                self._loop()
            except BaseException as exc:  # handed to the awaiting task
                loop.call_soon_threadsafe(settle, exc)
            else:
                loop.call_soon_threadsafe(settle, None)

        thread = self._thread = threading.Thread(target=work, name=f"streams:{self.topology.name}",
                                                 daemon=True)
        thread.start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            self._stop.set()
            await asyncio.to_thread(thread.join)
            raise
        finally:
            self._stop.set()

    def stop(self) -> None:
        """Ask ``run()`` to return after the current batch."""
        self._stop.set()

    def _loop(self) -> None:
        self._state = "running"
        try:
            self._loop_until_stopped()
        finally:
            if self._state == "running":
                self._state = "stopped"

    def _loop_until_stopped(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                n = self._process_batch()
                failures = 0
            except BrokerError as exc:
                if not exc.retriable:
                    raise
                delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                failures += 1
                self._counters.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("topology %s: %s; retrying in %.1f s", self.topology.name, exc, delay)
                self._stop.wait(delay)
                continue
            if n == 0:
                self._wait_for_records(0.5)

    def _wait_for_records(self, timeout_s: float) -> None:
        """Sleep until a commit brings input (or ``timeout_s``), leaving positions as they were."""
        assert self._consumer is not None
        self._consumer.resume(*self._assigned)
        got = self._consumer.poll(timeout_ms=timeout_s * 1000, max_records=1)
        for tp in got:
            self._consumer.seek(tp, self._positions.get(tp, got[tp][0].offset))

    # -- status and tables ----------------------------------------------------------------------

    def status(self) -> StreamsStatus:
        """Counters since start, lag and watermarks per input partition (callable from any thread)."""
        c = self._counters
        parts = []
        with self._lock:
            committed = dict(self._committed)
        if self._state != "closed":
            existing = set(self._admin.list_topics())
            for desc in self._admin.describe_topics(
                    [t for t in self.topology.source_topics if t in existing]):
                for p in desc.partitions:
                    done = committed.get(TopicPartition(desc.name, p.partition), p.log_start_offset)
                    parts.append(PartitionProgress(
                        desc.name, p.partition, done, p.high_watermark,
                        max(0, p.high_watermark - done), self._watermarks.data.get((p.partition,))))
        return StreamsStatus(
            topology=self.topology.name, group_id=self.group_id, state=self._state,
            records_in=c.records_in, records_out=c.records_out, late=c.late,
            dead_lettered=c.dead_lettered, deduplicated=c.deduplicated,
            transactions=c.transactions, errors=dict(c.errors), last_error=c.last_error,
            partitions=parts, skipped=c.skipped, last_commit_ms=c.last_commit_ms)

    def _table_view(self, table: Table) -> _TableView:
        self._check_open()
        return _TableView(self._node_stores[table.node.name])

    # -- lifetime -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state == "closed":
            raise StreamsError(f"the runner of topology {self.topology.name!r} was closed")
        if self._state == "fenced":
            raise FencedError(f"the runner of topology {self.topology.name!r} was fenced; start a new one")

    def close(self) -> None:
        """Release the log; safe to call twice.  Committed work stays committed."""
        if self._state == "closed":
            return
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()  # run()'s worker finishes (and commits) its batch first
        self._state = "closed"
        for table in self.topology.tables.values():
            if table._runner is self:
                table._runner = None
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
        if self._producer is not None:
            self._producer.close()
        self._admin.close()

    def __enter__(self) -> StreamsRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TableView:
    """A read view of a ``to_table`` store: keys and values decoded as records are."""

    def __init__(self, store: StateStore) -> None:
        self._data = store.data

    def get(self, key: bytes | None, default: Any = None) -> Any:
        raw = self._data.get((key_text(key),))
        return default if raw is None else decode_value(raw)

    def items(self) -> list[tuple[bytes | None, Any]]:
        return [(text_key(k[0]), decode_value(v)) for k, v in list(self._data.items())]

    def __len__(self) -> int:
        return len(self._data)
