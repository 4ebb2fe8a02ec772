"""The topology builder: ``Topology``, ``Stream`` and friends, and ``describe()``.

Building a topology only records nodes; ``_compile`` turns them into callables
and ``StreamsRunner`` runs those (neither is imported here).  Names follow Kafka Streams (``KSTREAM-MAP-0000000001``) unless given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker import TOPIC_NAME_RULE, is_topic_name

from ._errors import StreamsError, TopologyError
from ._record import Record
from ._step import KeyedStep
from ._windows import Aggregator, HoppingWindows, TumblingWindows, aggregator_for

__all__ = ["GroupedStream", "Stream", "Table", "Topology", "WindowedStream"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9._-]{1,200}$")

# Kinds of node, and how describe() shows them.
SOURCE, SINK = "SOURCE", "SINK"


@dataclass(eq=False)
class Node:
    """One processor of a topology (internal: the runner compiles these)."""

    name: str
    kind: str  # SOURCE, MAP, FILTER, FLATMAP, KEY-SELECT, BRANCH, BRANCHCHILD, PROCESSOR,
    #            AGGREGATE, DEDUPE, TOTABLE, SINK
    params: dict[str, Any] = field(default_factory=dict)
    parents: list[Node] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)


def _check_topic(what: str, topic: object) -> str:
    if not is_topic_name(topic):
        raise TopologyError(f"{what}: invalid topic name {topic!r}: expected {TOPIC_NAME_RULE}")
    return topic


def _check_callable(what: str, fn: object) -> None:
    if not callable(fn):
        raise TopologyError(f"{what}: expected a function, got {type(fn).__name__}")


class Topology:
    """A named graph of processors: sources read topics, sinks write them.

    The name identifies the topology in the log: its consumer group is
    ``streams.<name>`` and its state stores are named after it, so renaming
    a topology starts it from scratch.  Build it, then run it with
    ``StreamsRunner``::

        t = Topology("vitals")
        t.source("readings.temperature").filter(lambda r: r.value["c"] > 38).to("alerts.fever")
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise TopologyError(
                f"Topology name: expected 1 to 200 characters of ASCII letters, digits, "
                f"'.', '_' or '-' (it names a consumer group and topics), got {name!r}"
            )
        self.name = name
        self.nodes: list[Node] = []
        self.tables: dict[str, Table] = {}
        self._index = 0

    @property
    def group_id(self) -> str:
        """The consumer group whose offsets say what this topology has processed."""
        return f"streams.{self.name}"

    def source(self, topics: str | Iterable[str], name: str | None = None) -> Stream:
        """A stream of the records of ``topics`` (one topic or several), in offset order per partition."""
        topic_list = [topics] if isinstance(topics, str) else list(topics)
        if not topic_list:
            raise TopologyError("source: expected a topic or a list of topics, got none")
        for t in topic_list:
            _check_topic("source", t)
        node = self._add(SOURCE, name, {"topics": topic_list}, parent=None)
        return Stream(self, node)

    # -- what the runner reads ------------------------------------------------------------------

    @property
    def source_topics(self) -> list[str]:
        out: list[str] = []
        for n in self.nodes:
            if n.kind == SOURCE:
                out.extend(t for t in n.params["topics"] if t not in out)
        return out

    @property
    def sink_topics(self) -> list[str]:
        out: list[str] = []
        for n in self.nodes:
            if n.kind == SINK and n.params["topic"] not in out:
                out.append(n.params["topic"])
        return out

    @property
    def stores(self) -> list[str]:
        return [s for n in self.nodes for s in n.stores]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # -- building -------------------------------------------------------------------------------

    def _add(self, kind: str, name: str | None, params: dict[str, Any], parent: Node | None,
             store: bool = False) -> Node:
        index = self._index
        self._index += 1
        if name is None:
            name = f"KSTREAM-{kind}-{index:010d}"
        elif not isinstance(name, str) or not _NAME_RE.match(name):
            raise TopologyError(
                f"processor name: expected 1 to 200 characters of ASCII letters, digits, "
                f"'.', '_' or '-', got {name!r}"
            )
        if any(n.name == name for n in self.nodes):
            raise TopologyError(f"processor name {name!r} is used twice in topology {self.name!r}")
        node = Node(name, kind, params)
        if store:
            node.stores.append(f"{name}-STORE")
        if parent is not None:
            node.parents.append(parent)
            parent.children.append(node)
        self.nodes.append(node)
        return node

    # -- describe -------------------------------------------------------------------------------

    def subtopologies(self) -> list[list[Node]]:
        """Connected groups of processors, each in the order they were added."""
        seen: dict[int, int] = {}
        groups: list[list[Node]] = []
        for n in self.nodes:
            if id(n) in seen:
                continue
            gid = len(groups)
            stack, members = [n], []
            while stack:
                m = stack.pop()
                if id(m) in seen:
                    continue
                seen[id(m)] = gid
                members.append(m)
                stack.extend(m.parents)
                stack.extend(m.children)
            order = {id(x): i for i, x in enumerate(self.nodes)}
            groups.append(sorted(members, key=lambda x: order[id(x)]))
        return groups

    def describe(self) -> str:
        """The topology as Kafka Streams' ``TopologyDescription`` prints it (plus its name)."""
        lines = [f"Topology: {self.name} (consumer group {self.group_id})", "Topologies:"]
        for i, group in enumerate(self.subtopologies()):
            lines.append(f"   Sub-topology: {i}")
            for n in group:
                if n.kind == SOURCE:
                    lines.append(f"    Source: {n.name} (topics: [{', '.join(n.params['topics'])}])")
                elif n.kind == SINK:
                    lines.append(f"    Sink: {n.name} (topic: {n.params['topic']})")
                else:
                    lines.append(f"    Processor: {n.name} (stores: [{', '.join(n.stores)}])")
                if n.kind != SINK:
                    kids = ", ".join(c.name for c in n.children) or "none"
                    lines.append(f"      --> {kids}")
                if n.parents:
                    lines.append(f"      <-- {', '.join(p.name for p in n.parents)}")
            lines.append("")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


class Stream:
    """A stream of records flowing out of one processor; each method adds a processor after it.

    A stream can feed several processors (call two methods on it): each gets
    every record.  Functions you pass run once per record, in the runner's
    thread; if one raises, that record goes to the dead-letter topic.
    """

    def __init__(self, topology: Topology, node: Node) -> None:
        self.topology = topology
        self.node = node

    def _then(self, kind: str, name: str | None, params: dict[str, Any], store: bool = False) -> Stream:
        return Stream(self.topology, self.topology._add(kind, name, params, self.node, store))

    def map(self, fn: Callable[[Record], Record], name: str | None = None) -> Stream:
        """Replace each record by ``fn(record)`` (a ``Record``; ``record.with_value(...)`` helps)."""
        _check_callable("map", fn)
        return self._then("MAP", name, {"fn": fn})

    def filter(self, pred: Callable[[Record], bool], name: str | None = None) -> Stream:
        """Keep the records for which ``pred(record)`` is true."""
        _check_callable("filter", pred)
        return self._then("FILTER", name, {"fn": pred})

    def flat_map(self, fn: Callable[[Record], Iterable[Record]], name: str | None = None) -> Stream:
        """Replace each record by the records ``fn(record)`` yields (none, one or many)."""
        _check_callable("flat_map", fn)
        return self._then("FLATMAP", name, {"fn": fn})

    def select_key(self, fn: Callable[[Record], bytes | None], name: str | None = None) -> Stream:
        """Give each record the key ``fn(record)`` (bytes or None); the sink partitions by it."""
        _check_callable("select_key", fn)
        return self._then("KEY-SELECT", name, {"fn": fn})

    def branch(self, *preds: Callable[[Record], bool], name: str | None = None) -> list[Stream]:
        """One stream per predicate: a record goes to the first whose predicate is true.

        Records no predicate matches are dropped (add ``lambda r: True`` last to keep them).
        """
        if not preds:
            raise TopologyError("branch: expected at least one predicate")
        for p in preds:
            _check_callable("branch", p)
        parent = self._then("BRANCH", name, {"preds": list(preds)})
        base = parent.node.name
        return [parent._then("BRANCHCHILD", f"{base}-{i}" if name else None, {"index": i})
                for i in range(len(preds))]

    def process(self, step: KeyedStep, name: str | None = None) -> Stream:
        """Run ``step`` with per-key state from the state store (see ``KeyedStep``)."""
        if not isinstance(step, KeyedStep):
            raise TopologyError(
                f"process: expected a KeyedStep (initial_state() and apply(state, record)), "
                f"got {type(step).__name__}"
            )
        return self._then("PROCESSOR", name, {"step": step}, store=True)

    def group_by_key(self) -> GroupedStream:
        """Group records by their current key, for windowed aggregation."""
        return GroupedStream(self)

    def dedupe(self, within_ms: int, id: Callable[[Record], Any] | None = None,
               name: str | None = None) -> Stream:
        """Drop a record when one with the same key and ``id(record)`` was seen within ``within_ms``.

        "Within" is by event time: a record is a duplicate when a kept record of
        the same key and id has a timestamp less than ``within_ms`` away.  Ids
        are remembered until the partition's watermark is ``within_ms`` past
        them.  The default id is ``record.value["id"]``.
        """
        if not isinstance(within_ms, int) or isinstance(within_ms, bool) or within_ms <= 0:
            raise TopologyError(f"dedupe: within_ms: expected a positive integer, got {within_ms!r}")
        id_fn = id if id is not None else _value_id
        _check_callable("dedupe id", id_fn)
        return self._then("DEDUPE", name, {"within_ms": within_ms, "id": id_fn}, store=True)

    def to_table(self, name: str) -> Table:
        """Keep the latest value per key in a table named ``name`` (readable while running)."""
        if name in self.topology.tables:
            raise TopologyError(f"to_table: a table named {name!r} exists in this topology")
        node = self.topology._add("TOTABLE", None, {"table": name}, self.node)
        node.stores.append(name)
        table = Table(name, self.topology, node)
        self.topology.tables[name] = table
        return table

    def to(self, topic: str, name: str | None = None) -> None:
        """Write every record to ``topic``: keyed records to ``murmur2(key) % partitions``,
        keyless ones to the input record's partition number (modulo the output's count)."""
        _check_topic("to", topic)
        self.topology._add(SINK, name, {"topic": topic}, self.node)


def _value_id(record: Record) -> Any:
    return record.value["id"]


class GroupedStream:
    """A stream grouped by key; window it with ``windowed_by``."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def windowed_by(self, windows: TumblingWindows | HoppingWindows) -> WindowedStream:
        if not isinstance(windows, TumblingWindows | HoppingWindows):
            raise TopologyError(
                f"windowed_by: expected TumblingWindows or HoppingWindows, got {type(windows).__name__}"
            )
        return WindowedStream(self._stream, windows)


class WindowedStream:
    """A grouped stream cut into event-time windows; ``aggregate`` makes one result per window."""

    def __init__(self, stream: Stream, windows: TumblingWindows | HoppingWindows) -> None:
        self._stream = stream
        self.windows = windows

    def aggregate(self, aggregator: str | Aggregator,
                  value: Callable[[Record], Any] | None = None, name: str | None = None) -> Stream:
        """One record per key and window, emitted once when the window closes (final results).

        ``aggregator``: ``"count"``, ``"sum"``, ``"min"``, ``"max"``, ``"mean"`` or
        an ``Aggregator``.  ``value(record)`` picks what is aggregated (default:
        the record's value).  The result record has the group's key, the
        largest timestamp of the window's records, and the value
        ``{"start": ms, "end": ms, "value": result, "count": records}``.
        A record for windows that are all closed goes to the late topic.
        """
        agg = aggregator_for(aggregator)
        value_fn = value if value is not None else _whole_value
        _check_callable("aggregate value", value_fn)
        label = aggregator if isinstance(aggregator, str) else type(aggregator).__name__
        return self._stream._then(
            "AGGREGATE", name,
            {"windows": self.windows, "aggregator": agg, "value": value_fn, "label": label},
            store=True,
        )


def _whole_value(record: Record) -> Any:
    return record.value


class TableOwner(Protocol):
    """What serves a ``Table``'s reads: the ``StreamsRunner`` of its topology, once open."""

    def _table_view(self, table: Table) -> Any: ...


class Table:
    """The latest value per key written by ``Stream.to_table``.

    Read it while a ``StreamsRunner`` of its topology runs in this process:
    it shows the committed state plus the batch being processed.
    """

    def __init__(self, name: str, topology: Topology, node: Node) -> None:
        self.name = name
        self.topology = topology
        self.node = node
        self._runner: TableOwner | None = None

    def _store(self) -> Any:
        if self._runner is None:
            raise StreamsError(
                f"table {self.name!r} of topology {self.topology.name!r} is not open: "
                "create a StreamsRunner for the topology first"
            )
        return self._runner._table_view(self)

    def get(self, key: bytes | None, default: Any = None) -> Any:
        """The latest value of ``key`` (decoded as record values are), or ``default``."""
        return self._store().get(key, default)

    def items(self) -> Iterator[tuple[bytes | None, Any]]:
        """Every (key, latest value) pair, in no particular order."""
        return iter(list(self._store().items()))

    def __len__(self) -> int:
        return len(self._store())
