"""Compiling a topology: its nodes (``_dsl.Node``) into plain callables, one per processor.

``compile_topology`` turns each node into a function of one ``Record`` that does its work
and calls its children's; a source topic maps to the function of its source node. The
processors share a ``Context`` (the input record being processed, the open transaction)
with the runner, which sets it per record, and count into its ``Counters``. Their state
lives in the runner's ``StateStore``s, and the hooks they leave (close due windows, forget
old dedupe ids, rebuild window indexes after a load) are called by the runner
(``_runner.StreamsRunner``), which knows nothing of processor kinds.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker import ConsumerRecord, LogTransaction

from ._dsl import SINK, SOURCE, Node, Topology
from ._errors import TopologyError
from ._record import Record, encode_value
from ._store import StateStore, key_text, text_key
from ._windows import AGGREGATORS, HoppingWindows, TumblingWindows

__all__ = ["SOURCE_HEADER", "CompiledTopology", "Context", "Counters", "Forward",
           "compile_topology"]

log = logging.getLogger("edge.streams")

#: The header naming the input record an output came from: ``topic/partition/offset``.
SOURCE_HEADER = "streams.source"

Forward = Callable[[Record], None]
# Built once: json.dumps with options builds an encoder per call.
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_dumps_sorted = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class Context:
    """What the processors of one input record share: where it came from, where the batch goes."""

    __slots__ = ("task", "src", "raw", "txn")

    def __init__(self) -> None:
        self.task = 0                  # the input partition number (a Kafka Streams task)
        self.src = b""                 # SOURCE_HEADER value of the input record
        self.raw: ConsumerRecord | None = None
        self.txn: LogTransaction | None = None


class Counters:
    """What a runner counts, written by the processors and read by ``status()``."""

    __slots__ = ("records_in", "records_out", "late", "dead_lettered", "deduplicated",
                 "transactions", "errors", "last_error", "skipped", "last_commit_ms")

    def __init__(self) -> None:
        self.records_in = self.records_out = self.late = self.dead_lettered = 0
        self.deduplicated = self.transactions = self.skipped = 0
        self.errors: dict[str, int] = {}
        self.last_error: str | None = None
        self.last_commit_ms: int | None = None


@dataclass(frozen=True)
class CompiledTopology:
    """A topology as callables, and the hooks the runner calls around them."""

    sources: dict[str, Forward]  # per input topic: hand it a record of that topic
    closers: list[Callable[[], None]]  # per aggregate: close the due windows of ctx.task
    rebuilders: list[Callable[[], None]]  # after state is loaded: rebuild window indexes
    expirers: list[Callable[[], None]]  # after a batch: forget dedupe ids past their time


def compile_topology(topology: Topology, *, ctx: Context, counters: Counters,
                     stores: dict[str, StateStore], watermarks: StateStore,
                     partitions: dict[str, int], dead_letter_topic: str,
                     late_topic: str) -> CompiledTopology:
    """Compile `topology`'s nodes. ``stores``: each stateful node's store by node name;
    ``watermarks``: the event-time watermark per task; ``partitions``: partition counts of
    the sink, late and dead-letter topics (read when a record is sent)."""
    return _Compiler(topology, ctx, counters, stores, watermarks, partitions, dead_letter_topic,
                     late_topic).compile()


class _Compiler:
    def __init__(self, topology: Topology, ctx: Context, counters: Counters,
                 stores: dict[str, StateStore], watermarks: StateStore,
                 partitions: dict[str, int], dead_letter_topic: str, late_topic: str) -> None:
        self.topology = topology
        self._ctx = ctx
        self._counters = counters
        self._node_stores = stores
        self._watermarks = watermarks
        self._partitions = partitions
        self.dead_letter_topic = dead_letter_topic
        self.late_topic = late_topic
        self._closers: list[Callable[[], None]] = []
        self._rebuilders: list[Callable[[], None]] = []
        self._expirers: list[Callable[[], None]] = []

    def compile(self) -> CompiledTopology:
        compiled: dict[str, Forward] = {}
        sources: dict[str, list[Forward]] = {}

        def build(node: Node) -> Forward:
            if node.name not in compiled:
                kids = [build(c) for c in node.children]
                compiled[node.name] = self._make(node, kids)
            return compiled[node.name]

        for node in self.topology.nodes:
            if node.kind == SOURCE:
                fwd = _fan_out([build(c) for c in node.children])
                for topic in node.params["topics"]:
                    sources.setdefault(topic, []).append(fwd)
        return CompiledTopology({t: _fan_out(fs) for t, fs in sources.items()}, self._closers,
                                self._rebuilders, self._expirers)

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
        self._rebuilders.append(rebuild)

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
