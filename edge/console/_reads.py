"""Reads of the log for the console's API, each in a worker thread, never on the event loop.

A read is a SQLite query that grows with what it scans, so every one runs in this
module's own small thread pool (``MAX_READS`` at once: a burst of page loads queues
here rather than taking every thread the service has). Consumers are opened once
and reused, one per read in flight (SQLite connections opened with
``check_same_thread=False``); none joins a group or commits anything.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from broker import (
    KafkaAdminClient,
    KafkaConsumer,
    LogConfig,
    RawRecord,
    TopicPartition,
    default_partition,
)
from edge.console._streamsinfo import alert_kind

__all__ = ["MAX_READS", "LogReads", "decode_value"]

#: Reads of the log running at once; more wait their turn.
MAX_READS = 2
#: The most records one request scans (a key filter over a long topic stops there and
#: says where to go on in ``next``).
MAX_SCAN = 200_000
_BATCH = 2000
#: Records read past the first one stamped after a readings range, for late ones.
LATE_SCAN = 2000
_T = TypeVar("_T")


def decode_value(raw: bytes | None) -> Any:
    """The JSON a value holds, else its text (undecodable bytes escaped), None for none."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "backslashreplace")


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


class LogReads:
    """The console's reads of one log; ``await reads.run(fn, ...)`` runs ``fn(consumer, ...)``
    in the pool. ``close()`` after the last read."""

    def __init__(self, log_config: LogConfig) -> None:
        self._config = log_config
        self._pool = ThreadPoolExecutor(MAX_READS, thread_name_prefix="console-read")
        self._idle: list[KafkaConsumer] = []
        self._all: list[KafkaConsumer] = []
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(consumer, *args)`` in a worker thread, with a consumer of its own."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._with_consumer, fn, args)

    def _with_consumer(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        with self._lock:
            consumer = self._idle.pop() if self._idle else None
        if consumer is None:
            consumer = KafkaConsumer(log_config=self._config, enable_auto_commit=False)
            with self._lock:
                self._all.append(consumer)
        try:
            return fn(consumer, *args)
        finally:
            consumer.assign([])
            with self._lock:
                self._idle.append(consumer)

    def admin(self) -> KafkaAdminClient:
        """The admin client the reads share (opened on first use, in a worker thread)."""
        with self._lock:
            if self._admin is None:
                self._admin = KafkaAdminClient(log_config=self._config)
            return self._admin

    def close(self) -> None:
        """Wait for reads in flight, then close every consumer; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        for c in self._all:
            c.close(autocommit=False)
        if self._admin is not None:
            self._admin.close()

    # -- the reads (each runs in a worker thread with its own consumer) -------------------------

    def topics(self, consumer: KafkaConsumer, oldest_cache: dict[str, tuple[float, int | None]],
               max_age_s: float) -> list[dict[str, Any]]:
        """Every topic with partitions, records, bytes and its oldest record's time.

        The oldest times (a query per partition) are kept in ``oldest_cache`` for
        ``max_age_s``: retention moves them seldom, and only forward."""
        out = []
        now = time.monotonic()
        for desc in self.admin().describe_topics():
            cached = oldest_cache.get(desc.name)
            if cached is not None and cached[1] is not None and now - cached[0] < max_age_s:
                out.append(self._topic_row(desc, cached[1]))
                continue
            oldest: int | None = None
            for p in desc.partitions:
                if p.records == 0:
                    continue
                tp = TopicPartition(desc.name, p.partition)
                consumer.assign([tp])
                consumer.seek(tp, p.log_start_offset)
                first = consumer.poll_raw(0, max_records=1)
                if first and (oldest is None or first[0].timestamp < oldest):
                    oldest = first[0].timestamp
            oldest_cache[desc.name] = (now, oldest)
            out.append(self._topic_row(desc, oldest))
        return out

    @staticmethod
    def _topic_row(desc: Any, oldest: int | None) -> dict[str, Any]:
        return {"name": desc.name, "partitions": len(desc.partitions),
                "records": sum(p.records for p in desc.partitions),
                "bytes": sum(p.size_bytes for p in desc.partitions), "oldest_ms": oldest}

    def partitions(self, consumer: KafkaConsumer, topic: str) -> int | None:
        """The topic's partition count, None when there is no such topic."""
        parts = consumer.partitions_for_topic(topic)
        return None if parts is None else len(parts)

    def records(self, consumer: KafkaConsumer, topic: str, *, partition: int | None,
                offset: int | None, time_ms: int | None, start: str, key: bytes | None,
                limit: int) -> dict[str, Any]:
        """A page of a topic, as the console consumer would print it (see API.md)."""
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in parts if partition is None or p == partition]
        if not tps:
            return {"records": [], "next": {}}
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        if offset is not None:
            for tp in tps:
                consumer.seek(tp, min(max(offset, begins[tp]), ends[tp]))
        elif time_ms is not None:
            found = consumer.offsets_for_times({tp: time_ms for tp in tps})
            for tp in tps:
                hit = found[tp]
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
        elif start == "beginning":
            consumer.seek_to_beginning(*tps)
        else:
            # The end: the last ``limit`` records of each partition, newest ``limit`` kept
            # (without a key filter; with one, the scan goes back further).
            back = limit if key is None else MAX_SCAN // max(1, len(tps))
            for tp in tps:
                consumer.seek(tp, max(begins[tp], ends[tp] - back))
        picked: list[RawRecord] = []
        nxt = {tp.partition: consumer.position(tp) for tp in tps}
        scanned = 0
        tail = start == "end" and offset is None and time_ms is None
        kept: list[RawRecord] = []  # the tail: at most limit per partition (or the key's)
        while scanned < MAX_SCAN and (tail or len(picked) < limit):
            batch = consumer.poll_raw(0, max_records=_BATCH)
            if not batch:
                break
            for r in batch:
                scanned += 1
                if key is not None and r.key != key:
                    nxt[r.partition] = r.offset + 1
                    continue
                if tail:
                    kept.append(r)
                    nxt[r.partition] = r.offset + 1
                elif len(picked) < limit:
                    picked.append(r)
                    nxt[r.partition] = r.offset + 1
        rows = (sorted(kept, key=lambda r: (r.timestamp, r.partition, r.offset))[-limit:]
                if tail else picked)
        return {"records": [self._record(topic, r) for r in rows],
                "next": {str(p): o for p, o in nxt.items()}}

    def _record(self, topic: str, r: RawRecord) -> dict[str, Any]:
        headers = {k: _text(v) for k, v in r.decoded_headers()}
        out: dict[str, Any] = {"partition": r.partition, "offset": r.offset, "ts_ms": r.timestamp,
                               "key": _text(r.key), "value": decode_value(r.value),
                               "headers": headers}
        if "reason" in headers and "codec" in headers:  # a dead letter: the raw frame
            out["raw_hex"] = (r.value or b"").hex()
            out["reason"] = headers["reason"]
        return out

    def readings(self, consumer: KafkaConsumer, topic: str, device: str, since_ms: int,
                 until_ms: int, limit: int) -> list[dict[str, Any]]:
        """A device's readings in [since_ms, until_ms], the newest ``limit``, in time order."""
        n = self.partitions(consumer, topic)
        if n is None:
            return []
        key = device.encode()
        tp = TopicPartition(topic, default_partition(key, n))
        consumer.assign([tp])
        hit = consumer.offsets_for_times({tp: since_ms}).get(tp)
        if hit is None:
            return []
        consumer.seek(tp, hit.offset)
        kept: deque[RawRecord] = deque(maxlen=limit)
        scanned = 0
        past_end = 0  # records read since the first one past the range
        while scanned < MAX_SCAN and past_end < LATE_SCAN:
            batch = consumer.poll_raw(0, max_records=_BATCH)
            if not batch:
                break
            scanned += len(batch)
            for r in batch:
                if past_end or r.timestamp > until_ms:
                    past_end += 1
                # Event times are only mostly in order in a partition (a device's own clock, a
                # backlog replayed, another key's readings): a record past the range does not
                # end the scan at once, or an earlier-stamped one written after it is missed.
                if r.key == key and since_ms <= r.timestamp <= until_ms:
                    kept.append(r)
        return [{"ts_ms": r.timestamp, "partition": r.partition, "offset": r.offset,
                 "value": decode_value(r.value)}
                for r in sorted(kept, key=lambda r: (r.timestamp, r.offset))]

    def counts(self, consumer: KafkaConsumer, topic: str, key: bytes | None, since_ms: int,
               until_ms: int, bucket_ms: int) -> list[int]:
        """Records per ``bucket_ms`` in [since_ms, until_ms) by record time, oldest first.

        ``key``: count only that key's records (a topic several devices share), else all.
        At most ``MAX_SCAN`` records are read, the newest: past that the oldest buckets
        come out short rather than the read taking seconds."""
        out = [0] * max(0, (until_ms - since_ms) // bucket_ms)
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in parts]
        if key is not None and parts:
            tps = [TopicPartition(topic, default_partition(key, len(parts)))]
        if not tps or not out:
            return out
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        found = consumer.offsets_for_times({tp: since_ms for tp in tps})
        for tp in tps:
            hit = found.get(tp)
            start = hit.offset if hit is not None else ends[tp]
            consumer.seek(tp, max(start, ends[tp] - MAX_SCAN // len(tps)))
        scanned = 0
        while scanned < MAX_SCAN:
            batch = consumer.poll_raw(0, max_records=_BATCH)
            if not batch:
                break
            scanned += len(batch)
            for r in batch:
                if since_ms <= r.timestamp < until_ms and (key is None or r.key == key):
                    out[(r.timestamp - since_ms) // bucket_ms] += 1
        return out

    def alerts(self, consumer: KafkaConsumer, topics: Iterable[str], limit: int
               ) -> list[dict[str, Any]]:
        """The newest ``limit`` alerts of the alert topics, oldest first."""
        found: list[dict[str, Any]] = []
        for topic in topics:
            for rec in self.records(consumer, topic, partition=None, offset=None, time_ms=None,
                                    start="end", key=None, limit=limit)["records"]:
                found.append(alert_item(topic, rec["ts_ms"], rec["key"], rec["value"],
                                        rec["headers"].get("schema")))
        found.sort(key=lambda a: a["ts_ms"])
        return found[-limit:]


def alert_item(topic: str, ts_ms: int, key: str | None, value: Any, schema: str | None
               ) -> dict[str, Any]:
    """One /api/alerts item (and SSE ``alert`` event)."""
    device = key if key is not None else (value.get("device") if isinstance(value, dict) else None)
    return {"ts_ms": ts_ms, "kind": alert_kind(schema, value), "device": device, "topic": topic,
            "value": value}


def now_ms() -> int:
    return time.time_ns() // 1_000_000
