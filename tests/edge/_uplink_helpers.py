"""Helpers shared by the uplink tests: local producing, upstream reading, checks."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

from aiokafka import AIOKafkaConsumer

from broker import KafkaAdminClient, KafkaProducer, NewTopic

# Event times near now: records stamped years ago are deleted by the cluster's time-based
# retention (7 days) at its first retention pass, which a long test session reaches.
TS0 = int(time.time() * 1000) - 3_600_000


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_local_topics(data_dir, topics: dict[str, int], priority: dict[str, int] | None = None) -> None:
    with KafkaAdminClient(data_dir) as admin:
        admin.create_topics([
            NewTopic(t, n, topic_configs={"priority": str((priority or {}).get(t, 0))})
            for t, n in topics.items()])


def produce_local(data_dir, topic: str, n: int, keys: int, start: int = 0, size: int = 0) -> None:
    """n records on ``topic``: key k<i % keys>, value '<topic>:<i>' (padded to ``size``)."""
    with KafkaProducer(data_dir) as producer:
        futures = [
            producer.send(topic, f"{topic}:{i}".encode().ljust(size, b"."), key=f"k{i % keys}".encode(),
                          headers=[("src", b"test"), ("i", str(i).encode())], timestamp_ms=TS0 + i)
            for i in range(start, start + n)
        ]
        for f in futures:
            f.get(timeout=30)


async def read_upstream(servers: str, topics: list[str], expected: int, timeout_s: float = 60,
                        settle_s: float = 1.0) -> list:
    """Read ``topics`` read_committed from the beginning until ``expected`` records came
    (and ``settle_s`` more seconds brought none: a duplicate would show)."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=servers, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    out = []
    try:
        deadline = time.monotonic() + timeout_s
        quiet_since = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            got = [r for recs in batch.values() for r in recs]
            out.extend(got)
            if len(out) >= expected:
                if got or quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= settle_s:
                    break
    finally:
        await consumer.stop()
    return out


def check_exactly_once(records, expected: dict[str, int]) -> None:
    """Every value '<topic>:<i>' for i < expected[topic] exactly once, in order per key."""
    seen: dict[str, list[int]] = defaultdict(list)
    per_key: dict[tuple[str, bytes], list[int]] = defaultdict(list)
    for r in records:
        topic, i = r.value.split(b".")[0].decode().rsplit(":", 1) if b"." in r.value else \
            r.value.decode().rsplit(":", 1)
        seen[topic].append(int(i))
        per_key[(topic, r.key)].append(int(i))
    for topic, n in expected.items():
        got = seen.get(topic, [])
        dupes = len(got) - len(set(got))
        missing = set(range(n)) - set(got)
        assert not dupes and not missing, (
            f"{topic}: {len(got)} records, {dupes} duplicates, {len(missing)} missing "
            f"(first {sorted(missing)[:5]})")
    for key, values in per_key.items():
        assert values == sorted(values), f"order broken for {key}"


async def wait_for(predicate, timeout_s: float = 30, what: str = "condition", uplink=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        task = getattr(uplink, "_task", None)
        if task is not None and task.done() and task.exception() is not None:
            raise AssertionError(f"the uplink crashed while waiting for {what}") from task.exception()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def explain_missing(servers: str, topic: str, records, expected: int) -> str:
    """Where the missing values sit upstream when read uncommitted (for a failure message)."""
    seen = {int(r.value.decode().rsplit(":", 1)[1]) for r in records}
    missing = set(range(expected)) - seen
    raw = await read_upstream_uncommitted(servers, topic)
    where = [(r.partition, r.offset, dict(r.headers).get("edge.offset")) for r in raw
             if int(r.value.decode().rsplit(":", 1)[1]) in missing]
    first_seen = {}
    for r in records:
        first_seen.setdefault(r.partition, r.offset)
    return (f"{len(missing)} missing; uncommitted read has {len(raw)} records; missing ones at"
            f" (partition, offset, edge.offset) {where[:3]}...{where[-3:]}; first committed offset"
            f" per partition {first_seen}")


async def read_upstream_uncommitted(servers: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=servers, isolation_level="read_uncommitted",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out = []
    try:
        for _ in range(30):
            batch = await consumer.getmany(timeout_ms=300)
            if not batch and out:
                break
            out.extend(r for recs in batch.values() for r in recs)
    finally:
        await consumer.stop()
    return out
