"""``StreamsRunner``: runs a topology over the local log, exactly once.

One batch at a time: read up to ``max_batch_records`` input records (a fixed
share per partition, in partition order, so a batch depends only on the
committed offsets and the log), push each through the compiled processors,
then commit the batch's output records, state changes and input offsets in
one ``LogTransaction``.  Nothing of a batch is visible before its commit, and
a batch that failed to commit is forgotten: state is reloaded and the input
read again.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import os
import threading
import time
from collections.abc import Callable
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
    LogTransaction,
    NewTopic,
    SystemClock,
    TopicAlreadyExistsError,
    TopicPartition,
)

from ._dsl import SINK, SOURCE, Node, Table, Topology
from ._errors import FencedError, StreamsError, TopologyError
from ._record import Record, decode_value, encode_value
from ._status import PartitionProgress, StreamsStatus
from ._store import StateStore, key_text, text_key
from ._windows import AGGREGATORS, HoppingWindows, TumblingWindows

__all__ = ["StreamsRunner"]

log = logging.getLogger("edge.streams")

DEFAULT_BATCH_RECORDS = 5000
#: The header naming the input record an output came from: ``topic/partition/offset``.
SOURCE_HEADER = "streams.source"
_ASSIGN_REFRESH_S = 1.0
_RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0)

Forward = Callable[[Record], None]
# Built once: json.dumps with options builds an encoder per call.
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_dumps_sorted = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class _Context:
    """What the processors of one input record share: where it came from, where the batch goes."""

    __slots__ = ("task", "src", "raw", "txn")

    def __init__(self) -> None:
        self.task = 0                  # the input partition number (a Kafka Streams task)
        self.src = b""                 # SOURCE_HEADER value of the input record
        self.raw: ConsumerRecord | None = None
        self.txn: LogTransaction | None = None


class _Counters:
    __slots__ = ("records_in", "records_out", "late", "dead_lettered", "deduplicated",
                 "transactions", "errors", "last_error", "skipped", "last_commit_ms")

    def __init__(self) -> None:
        self.records_in = self.records_out = self.late = self.dead_lettered = 0
        self.deduplicated = self.transactions = self.skipped = 0
        self.errors: dict[str, int] = {}
        self.last_error: str | None = None
        self.last_commit_ms: int | None = None


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
        self._counters = _Counters()
        self._ctx = _Context()
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
            self._closers: list[Callable[[], None]] = []  # per aggregate: close due windows
            self._node_stores: dict[str, StateStore] = {}
            self._entries: dict[str, Forward] = {}
            self._heaps: list[Callable[[], None]] = []   # rebuild window indexes after a load
            self._expirers: list[Callable[[], None]] = []  # forget dedupe ids past their time
            for node in topology.nodes:
                for store in node.stores:
                    self._node_stores[node.name] = StateStore(
                        f"{self.group_id}/{store}", raw=node.kind in ("PROCESSOR", "TOTABLE"))
                    self._stores.append(self._node_stores[node.name])
            self._sources: dict[str, list[Forward]] = {}
            self._compile()
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
        for rebuild in self._heaps:
            rebuild()
        self._sync_assignment(force=True)

    def _sync_assignment(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_assign < _ASSIGN_REFRESH_S:
            return
        self._last_assign = now
        assert self._consumer is not None
        existing = set(self._admin.list_topics())
        wanted = []
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

    # -- compiling the topology -----------------------------------------------------------------

    def _compile(self) -> None:
        compiled: dict[str, Forward] = {}

        def build(node: Node) -> Forward:
            if node.name not in compiled:
                kids = [build(c) for c in node.children]
                compiled[node.name] = self._make(node, kids)
            return compiled[node.name]

        for node in self.topology.nodes:
            if node.kind == SOURCE:
                fwd = _fan_out([build(c) for c in node.children])
                for topic in node.params["topics"]:
                    self._sources.setdefault(topic, []).append(fwd)
        self._source_fwd = {t: _fan_out(fs) for t, fs in self._sources.items()}

    def _make(self, node: Node, kids: list[Forward]) -> Forward:
        forward = _fan_out(kids)
        fail = self._failure_handler(node)
        kind, p = node.kind, node.params
        if kind == "MAP":
            fn = p["fn"]

            def map_(rec: Record) -> None:
                try:
                    out = fn(rec)
                    if not isinstance(out, Record):
                        raise TypeError(f"map must return a Record, got {type(out).__name__}")
                except Exception as exc:  # a processor bug goes to the dead letters
                    fail(rec, exc)
                    return
                forward(out)
            return map_
        if kind == "FILTER":
            pred = p["fn"]

            def filter_(rec: Record) -> None:
                try:
                    keep = pred(rec)
                except Exception as exc:
                    fail(rec, exc)
                    return
                if keep:
                    forward(rec)
            return filter_
        if kind == "FLATMAP":
            fn = p["fn"]

            def flat_map(rec: Record) -> None:
                try:
                    outs = list(fn(rec))
                    for out in outs:
                        if not isinstance(out, Record):
                            raise TypeError(f"flat_map must yield Records, got {type(out).__name__}")
                except Exception as exc:
                    fail(rec, exc)
                    return
                for out in outs:
                    forward(out)
            return flat_map
        if kind == "KEY-SELECT":
            fn = p["fn"]

            def select_key(rec: Record) -> None:
                try:
                    key = fn(rec)
                    if key is not None and type(key) is not bytes:
                        raise TypeError(f"select_key must return bytes or None, got {type(key).__name__}")
                except Exception as exc:
                    fail(rec, exc)
                    return
                forward(Record(key, rec.value, rec.timestamp_ms, rec.headers))
            return select_key
        if kind == "BRANCH":
            preds = list(zip(p["preds"], kids, strict=True))

            def branch(rec: Record) -> None:
                target = None
                try:
                    for pred, kid in preds:
                        if pred(rec):
                            target = kid
                            break
                except Exception as exc:
                    fail(rec, exc)
                    return
                if target is not None:
                    target(rec)
            return branch
        if kind == "BRANCHCHILD":
            return forward
        if kind == "PROCESSOR":
            return self._make_keyed_step(node, forward, fail)
        if kind == "AGGREGATE":
            return self._make_aggregate(node, forward, fail)
        if kind == "DEDUPE":
            return self._make_dedupe(node, forward, fail)
        if kind == "TOTABLE":
            return self._make_table(node)
        if kind == SINK:
            return self._make_sink(node, fail)
        raise TopologyError(f"processor {node.name!r}: unknown kind {kind!r}")

    def _make_keyed_step(self, node: Node, forward: Forward, fail: Callable[..., None]) -> Forward:
        step = node.params["step"]
        store = self._node_stores[node.name]
        data, dirty = store.data, store.dirty

        def keyed_step(rec: Record) -> None:
            k = (key_text(rec.key),)
            try:
                raw = data.get(k)
                state = json.loads(raw) if raw is not None else step.initial_state()
                new_state, outs = step.apply(state, rec)
                outs = list(outs or ())
                for out in outs:
                    if not isinstance(out, Record):
                        raise TypeError(f"KeyedStep.apply must emit Records, got {type(out).__name__}")
                new_raw = None if new_state is None else _dumps(new_state).encode()
            except Exception as exc:
                fail(rec, exc)
                return
            if new_raw is None:
                data.pop(k, None)
            else:
                data[k] = new_raw
            dirty.add(k)
            for out in outs:
                forward(out)
        return keyed_step

    def _make_aggregate(self, node: Node, forward: Forward, fail: Callable[..., None]) -> Forward:
        windows: TumblingWindows | HoppingWindows = node.params["windows"]
        agg = node.params["aggregator"]
        value_fn = node.params["value"]
        # A custom aggregate that JSON cannot hold would fail the batch's commit again and
        # again; checked per record, it sends that record to the dead letters instead.
        custom = agg not in AGGREGATORS.values()
        size, grace = windows.size_ms, windows.grace_ms
        store = self._node_stores[node.name]
        data, dirty = store.data, store.dirty
        # Open windows per task, by end: (end, key, start), so the oldest closes first.
        heaps: dict[int, list[tuple[int, str | None, int]]] = {}
        ctx = self._ctx
        wms = self._watermarks.data
        late = self._late_sender(node)

        def rebuild() -> None:
            heaps.clear()
            for task, key, start in data:
                heaps.setdefault(task, []).append((start + size, key, start))
            for h in heaps.values():
                heapq.heapify(h)
        self._heaps.append(rebuild)

        def close_due() -> None:
            task = ctx.task
            h = heaps.get(task)
            if not h:
                return
            wm = wms.get((task,))
            if wm is None:
                return
            while h and h[0][0] + grace <= wm:
                end, key, start = heapq.heappop(h)
                pk = (task, key, start)
                entry = data.pop(pk)
                dirty.add(pk)
                acc, count, max_ts, src = entry
                saved, saved_raw = ctx.src, ctx.raw
                ctx.src, ctx.raw = src.encode(), None  # results link to the window's last record
                try:
                    try:
                        result = agg.result(acc)
                    except Exception as exc:
                        fail(Record(text_key(key), {"start": start, "end": end, "aggregate": acc},
                                    max_ts), exc)
                        continue
                    forward(Record(text_key(key),
                                   {"start": start, "end": end, "value": result, "count": count},
                                   max_ts))
                finally:
                    ctx.src, ctx.raw = saved, saved_raw
        self._closers.append(close_due)

        def aggregate(rec: Record) -> None:
            task = ctx.task
            wm = wms.get((task,))
            ts = rec.timestamp_ms
            starts = windows.starts_for(ts)
            if wm is not None:
                missed = [s for s in starts if s + size + grace <= wm]
                if missed:
                    late(rec, missed, size, grace, wm)
                    if len(missed) == len(starts):
                        return
                    starts = starts[len(missed):]  # starts are oldest first: the missed lead
            try:
                v = value_fn(rec)
                key = key_text(rec.key)
                updates = []
                for s in starts:
                    pk = (task, key, s)
                    entry = data.get(pk)
                    acc = agg.add(agg.initial() if entry is None else entry[0], v)
                    if custom:
                        _dumps(acc)
                    updates.append((pk, entry, acc))
            except Exception as exc:
                fail(rec, exc)
                return
            src = ctx.src.decode()
            for pk, entry, acc in updates:
                if entry is None:
                    data[pk] = [acc, 1, ts, src]
                    heapq.heappush(heaps.setdefault(task, []), (pk[2] + size, pk[1], pk[2]))
                else:
                    entry[0] = acc
                    entry[1] += 1
                    if ts > entry[2]:
                        entry[2] = ts
                    entry[3] = src
                dirty.add(pk)
        return aggregate

    def _make_dedupe(self, node: Node, forward: Forward, fail: Callable[..., None]) -> Forward:
        within = node.params["within_ms"]
        id_fn = node.params["id"]
        store = self._node_stores[node.name]
        data, dirty = store.data, store.dirty
        ctx = self._ctx
        wms = self._watermarks.data
        counters = self._counters

        def dedupe(rec: Record) -> None:
            task = ctx.task
            try:
                ident = _dumps_sorted(id_fn(rec))
            except Exception as exc:
                fail(rec, exc)
                return
            pk = (task, key_text(rec.key), ident)
            seen = data.get(pk)
            ts = rec.timestamp_ms
            wm = wms.get((task,), ts)
            # An id is forgotten once the watermark is `within` past it; decided by
            # timestamps, not by when the entry is removed, so batches do not matter.
            if seen is not None and seen + within > wm and abs(ts - seen) < within:
                counters.deduplicated += 1
                return
            data[pk] = ts
            dirty.add(pk)
            forward(rec)

        def expire() -> None:
            for pk in [pk for pk, seen in data.items()
                       if seen + within <= wms.get((pk[0],), seen)]:
                del data[pk]
                dirty.add(pk)
        self._expirers.append(expire)
        return dedupe

    def _make_table(self, node: Node) -> Forward:
        store = self._node_stores[node.name]
        data, dirty = store.data, store.dirty

        def to_table(rec: Record) -> None:
            k = (key_text(rec.key),)
            v = encode_value(rec.value) if rec.value is not None else None
            if v is None:
                data.pop(k, None)
            else:
                data[k] = v
            dirty.add(k)
        return _guarded(to_table, self._failure_handler(node))

    def _make_sink(self, node: Node, fail: Callable[..., None]) -> Forward:
        topic = node.params["topic"]
        nparts = self._partitions[topic]
        ctx = self._ctx
        counters = self._counters

        def sink(rec: Record) -> None:
            try:
                value = encode_value(rec.value)
            except (TypeError, ValueError) as exc:
                fail(rec, exc)
                return
            hs = rec.headers
            if hs and hs[-1][0] == SOURCE_HEADER:  # our own link from an earlier topology
                hs = hs[:-1]
            key = rec.key
            assert ctx.txn is not None
            ctx.txn.send(topic, value, key, [*hs, (SOURCE_HEADER, ctx.src)],
                         None if key is not None else ctx.task % nparts, rec.timestamp_ms)
            counters.records_out += 1
        return sink

    # -- dead letters and late records -----------------------------------------------------------

    def _failure_handler(self, node: Node) -> Callable[[Record, BaseException], None]:
        topology = self.topology.name.encode()
        name = node.name.encode()
        ctx = self._ctx
        counters = self._counters
        dlq = self.dead_letter_topic

        def fail(rec: Record, exc: BaseException) -> None:
            what = f"{type(exc).__name__}: {exc}"
            counters.errors[node.name] = counters.errors.get(node.name, 0) + 1
            counters.last_error = f"{node.name}: {what}"
            counters.dead_lettered += 1
            if counters.errors[node.name] in (1, 10, 100, 1000) or counters.errors[node.name] % 10000 == 0:
                log.warning("topology %s: processor %s failed on %s (%s); %d so far, record "
                            "dead-lettered", self.topology.name, node.name, ctx.src.decode(), what,
                            counters.errors[node.name])
            raw = ctx.raw
            # The input record as it was read: what an operator replays after a fix.
            key, value = (raw.key, raw.value) if raw is not None else (rec.key, _json_or_none(rec.value))
            headers = [*(raw.headers if raw is not None else rec.headers),
                       ("reason", what.encode()),
                       ("streams.error.type", type(exc).__name__.encode()),
                       ("streams.error.message", str(exc).encode()),
                       ("streams.processor", name),
                       ("streams.topology", topology),
                       (SOURCE_HEADER, ctx.src)]
            assert ctx.txn is not None
            ctx.txn.send(dlq, value if value is not None or key is not None else b"", key,
                         headers, None if key is not None else ctx.task % self._partitions[dlq],
                         rec.timestamp_ms)
        return fail

    def _late_sender(self, node: Node) -> Callable[..., None]:
        topic = self.late_topic
        ctx = self._ctx
        counters = self._counters
        topology, name = self.topology.name.encode(), node.name.encode()
        fail = self._failure_handler(node)

        def late(rec: Record, missed: list[int], size: int, grace: int, wm: int) -> None:
            try:
                value = encode_value(rec.value)
            except (TypeError, ValueError) as exc:
                fail(rec, exc)
                return
            counters.late += 1
            windows = ",".join(f"{s}-{s + size}" for s in missed)
            headers = [*rec.headers,
                       ("reason", f"late: window(s) {windows} closed at watermark {wm} "
                                  f"(grace {grace} ms)".encode()),
                       ("streams.late.windows", windows.encode()),
                       ("streams.watermark", str(wm).encode()),
                       ("streams.grace_ms", str(grace).encode()),
                       ("streams.processor", name),
                       ("streams.topology", topology),
                       (SOURCE_HEADER, ctx.src)]
            assert ctx.txn is not None
            ctx.txn.send(topic, value if value is not None or rec.key is not None else b"", rec.key,
                         headers, None if rec.key is not None else ctx.task % self._partitions[topic],
                         rec.timestamp_ms)
        return late

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
        closers = self._closers
        sources = self._source_fwd
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
            for expire in self._expirers:
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


def _fan_out(kids: list[Forward]) -> Forward:
    if len(kids) == 1:
        return kids[0]
    if not kids:
        return _drop

    def fan_out(rec: Record) -> None:
        for kid in kids:
            kid(rec)
    return fan_out


def _drop(rec: Record) -> None:
    return None


def _guarded(fn: Forward, fail: Callable[[Record, BaseException], None]) -> Forward:
    def guarded(rec: Record) -> None:
        try:
            fn(rec)
        except Exception as exc:
            fail(rec, exc)
    return guarded


def _json_or_none(value: Any) -> bytes | None:
    try:
        return encode_value(value)
    except (TypeError, ValueError):
        return repr(value).encode()
