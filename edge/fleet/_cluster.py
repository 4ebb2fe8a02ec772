"""The fleet's few conversations with the cluster: create the control topics, read a
compacted topic to its end, produce a record, follow topics.

Every aiokafka error is translated here (``translate``) into a ``ClusterError`` that says
which cluster and what failed; nothing else in edge/fleet imports aiokafka's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from broker import default_partition
from edge.uplink._secrets import mask

from ._connection import FleetConnection
from ._errors import ClusterError, PartitionsChanged

__all__ = ["Record", "TopicSpec", "check_placement", "ensure_topics", "follow", "produce",
           "read_compacted",
           "scan", "translate"]

T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """One record as the fleet reads it: the key and value as bytes (a tombstone's is None)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


#: A compacted control topic's settings (docs/fleet.md): the head segment rolls hourly so
#: a quiet topic is compacted at all (Kafka never cleans the active segment, and a
#: reported topic written only by heartbeats would keep every one of them for a week:
#: `edge fleet status` reads it all); cleaned once a tenth is stale; a retired box's
#: tombstone stays a day for readers to see.
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "3600000",
             "min.cleanable.dirty.ratio": "0.1", "delete.retention.ms": "86400000"}


@dataclass(frozen=True)
class TopicSpec:
    """A control topic the fleet creates when it is missing."""

    name: str
    partitions: int
    compacted: bool
    replication_factor: int | None = None  # None: the cluster's default.replication.factor

    def new_topic(self, brokers: int) -> NewTopic:
        """As a NewTopic; without a replication factor, 3 (or as many as there are brokers)."""
        configs = dict(COMPACTED if self.compacted else {})
        return NewTopic(self.name, self.partitions, self.replication_factor or min(3, brokers),
                        topic_configs=configs)


def translate(conn: FleetConnection, what: str, exc: BaseException) -> ClusterError:
    """One line for a failed request to the cluster: what was asked, where, and why."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        why = f"no answer within {conn.request_timeout_s:g} s (is it running? --timeout)"
    else:
        name, text = type(exc).__name__, str(exc)
        why = text if text.startswith(name) else f"{name}: {text}" if text else name
    return ClusterError(f"{what} at {conn.bootstrap_servers}: {mask(why)}")


async def _bounded(conn: FleetConnection, what: str, step: Callable[[], Awaitable[T]]) -> T:
    try:
        return await asyncio.wait_for(step(), conn.request_timeout_s)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise translate(conn, what, exc) from exc


async def ensure_topics(conn: FleetConnection, specs: Iterable[TopicSpec]) -> None:
    """Create whichever of ``specs`` the cluster lacks; one made meanwhile by another is fine."""
    specs = list(specs)
    admin = AIOKafkaAdminClient(**conn.client_options())
    try:
        await _bounded(conn, "connecting to the cluster", admin.start)
        existing = set(await _bounded(conn, "listing topics", admin.list_topics))
        if all(s.name in existing for s in specs):
            return
        cluster = await _bounded(conn, "describing the cluster", admin.describe_cluster)
        new = [s.new_topic(len(cluster["brokers"])) for s in specs if s.name not in existing]
        response = await _bounded(conn, "creating the control topics",
                                  lambda: admin.create_topics(new))
        for topic, code, *rest in response.topic_errors:
            if code and for_code(code) is not TopicAlreadyExistsError:
                raise ClusterError(f"creating topic {topic!r} at {conn.bootstrap_servers} was "
                                   f"refused: {for_code(code).__name__}: {rest[0] if rest else ''}"
                                   " (an ACL? create it by hand: docs/fleet.md)")
    finally:
        await admin.close()


def _consumer(conn: FleetConnection) -> AIOKafkaConsumer:
    # No group: the fleet CLI reads; it never commits offsets nor joins the boxes' groups.
    # read_committed: a box's transactional producer may abort a reported record.
    return AIOKafkaConsumer(**conn.client_options(), group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", isolation_level="read_committed")


async def _partitions(conn: FleetConnection, topics: list[str],
                      wait: bool = False) -> list[TopicPartition]:
    """The partitions of those of ``topics`` that exist (the admin's metadata request asks
    for them by name and creates none; a consumer's ``topics()`` does not tell them).
    ``wait``: until every one of them shows its partitions (a topic just created is not
    in every broker's metadata at once)."""
    admin = AIOKafkaAdminClient(**conn.client_options())
    deadline = time.monotonic() + conn.request_timeout_s
    try:
        await _bounded(conn, "connecting to the cluster", admin.start)
        while True:
            described = await _bounded(conn, "reading the control topics' metadata",
                                       lambda: admin.describe_topics(topics))
            found = {t["topic"]: sorted(p["partition"] for p in t["partitions"])
                     for t in described if not t["error_code"] and t["partitions"]}
            if not wait or len(found) == len(set(topics)):
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"topics {', '.join(sorted(set(topics) - set(found)))} at "
                                   f"{conn.bootstrap_servers} do not show their partitions after "
                                   f"{conn.request_timeout_s:g} s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return [TopicPartition(t, p) for t in topics if t in found for p in found[t]]


async def check_placement(conn: FleetConnection, topic: str, sample: int = 50) -> None:
    """Refuse (PartitionsChanged) when ``topic``'s oldest records do not sit in the
    partition their key hashes to under its partition count now.

    Boxes read only the partitions their keys hash to (PROTOCOL.md), so partitions added
    to the desired or commands topic move a box's key where it does not look until it
    reconnects, and leave its older records where it no longer would. Nothing on the
    cluster records the count a topic was created with; its records do: each was written
    by the default partitioner under the count of its day. The oldest of each partition
    are the ones that can predate a change, so up to ``sample`` of them are read: one
    fetch a partition, whatever the topic's size. A topic that does not exist is fine.
    """
    tps = await _partitions(conn, [topic])
    if not tps:
        return
    count = len(tps)
    consumer = _consumer(conn)
    try:
        await _bounded(conn, "connecting to the cluster", consumer.start)
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await _bounded(
            conn, f"reading the end offsets of {topic!r}", lambda: consumer.end_offsets(tps))
        await consumer.seek_to_beginning(*tps)
        todo = {tp for tp in tps if ends[tp] > 0 and await consumer.position(tp) < ends[tp]}
        deadline = time.monotonic() + conn.request_timeout_s
        while todo and time.monotonic() < deadline:
            try:
                batches = await consumer.getmany(*todo, timeout_ms=200, max_records=sample)
            except KafkaError as exc:
                raise translate(conn, f"reading {topic!r}", exc) from exc
            for tp, records in batches.items():
                todo.discard(tp)
                for r in records[:sample]:
                    if r.key is not None and default_partition(r.key, count) != tp.partition:
                        raise PartitionsChanged(
                            f"topic {topic!r} at {conn.bootstrap_servers} has {count} partitions, "
                            f"but its record at {tp.partition}/{r.offset} (key "
                            f"{r.key.decode(errors='replace')!r}) was written when the key "
                            f"hashed there: partitions were added. Boxes read only the "
                            f"partition their key hashes to, so they would miss what is sent "
                            f"now. Recreate the topic with its old count, or delete and "
                            f"re-create it and set every desired state again (docs/fleet.md)")
            for tp in list(todo):  # only markers or compacted gaps before the end: nothing to see
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()


async def read_compacted(conn: FleetConnection, topic: str) -> dict[bytes, Record]:
    """The latest record of every key of ``topic``, read once from its start to its end.

    A key whose latest record is a tombstone is absent. A topic that does not exist reads
    as empty: no box has reported yet, or no desired state was ever set.
    """
    latest: dict[bytes, Record] = {}

    def keep(record: Record) -> None:
        if record.value is None:
            latest.pop(record.key or b"", None)
        else:
            latest[record.key or b""] = record

    await scan(conn, topic, keep)
    return latest


async def scan(conn: FleetConnection, topic: str, each: Callable[[Record], None]) -> None:
    """Call ``each`` with every keyed record of ``topic`` from its start to its end offsets
    (as they are when the scan starts); nothing for a topic that does not exist."""
    consumer = _consumer(conn)
    try:
        tps = await _partitions(conn, [topic])
        if not tps:
            return
        await _bounded(conn, "connecting to the cluster", consumer.start)
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await _bounded(
            conn, f"reading the end offsets of {topic!r}", lambda: consumer.end_offsets(tps))
        await consumer.seek_to_beginning(*tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + conn.request_timeout_s
        while todo:
            try:
                batches = await consumer.getmany(*todo, timeout_ms=200)
            except KafkaError as exc:
                raise translate(conn, f"reading {topic!r}", exc) from exc
            for tp, records in batches.items():
                for r in records:
                    if r.key is not None:  # else not the protocol's: every control record has one
                        each(Record(topic, tp.partition, r.offset, r.timestamp, r.key, r.value))
                deadline = time.monotonic() + conn.request_timeout_s  # progress: wait again
            # position, not the last record's offset: transaction markers and compacted
            # gaps leave the end offset with no record at end - 1
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
            if todo and time.monotonic() > deadline:
                raise ClusterError(f"reading {topic!r} at {conn.bootstrap_servers}: stuck before "
                                   f"its end offsets for {conn.request_timeout_s:g} s")
    finally:
        await consumer.stop()


async def produce(conn: FleetConnection, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
    """Write one record, acknowledged by every in-sync replica; (partition, offset)."""
    producer = AIOKafkaProducer(**conn.client_options(), acks="all", enable_idempotence=True)
    try:
        await _bounded(conn, "connecting to the cluster", producer.start)
        meta = await _bounded(conn, f"writing to {topic!r}",
                              lambda: producer.send_and_wait(topic, value=value, key=key))
        return meta.partition, meta.offset
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def follow(conn: FleetConnection, topics: list[str],
                 from_beginning: bool = False) -> AsyncIterator[AsyncIterator[Record]]:
    """Records of ``topics`` as they arrive, from their current ends (or starts).

    The positions are taken when the context is entered, so a command produced inside it
    never misses its first result.
    """
    consumer = _consumer(conn)
    try:
        tps = await _partitions(conn, topics, wait=True)
        await _bounded(conn, "connecting to the cluster", consumer.start)
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before anything is produced
            await _bounded(conn, "reading the end offsets", functools.partial(consumer.position, tp))

        async def records() -> AsyncIterator[Record]:
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=500)
                except KafkaError as exc:
                    raise translate(conn, "following " + ", ".join(topics), exc) from exc
                for tp, rs in sorted(batches.items(), key=lambda kv: kv[0].partition):
                    for r in rs:
                        yield Record(tp.topic, tp.partition, r.offset, r.timestamp, r.key, r.value)

        yield records()
    finally:
        await consumer.stop()


def now_ms() -> int:
    return int(time.time() * 1000)
