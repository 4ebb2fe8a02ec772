"""Fetch: records as uncompressed v2 batches, long-polled on the log's commit notification.

A request waits up to ``max_wait`` for ``min_bytes``, woken by any commit to the log (in
this process or another).  Every record in the log is committed, so read_committed and
read_uncommitted see the same records and the last stable offset is the high watermark.
No fetch sessions: session id 0 tells clients to send full requests.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

from kio.schema.errors import ErrorCode

from .._headers import decode_headers
from .._storage import OFFSET_RANGE_SQL, offset_range
from ._commits import CommitSignal
from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._recordbatch import BatchBuilder
from ._registry import Registry
from ._schema import build, nested, response_class

API_KEY = 1
MIN_VERSION, MAX_VERSION = 4, 12  # v4: isolation levels and v2 batches; v13 names topics by id

# A row costs its key, value and headers plus this much in a batch (varints, attributes).
_RECORD_OVERHEAD = 20
_MAX_ROWS = 10_000


def install(registry: Registry) -> None:
    registry.register(API_KEY, MIN_VERSION, MAX_VERSION, handle)


def commit_signal(ctx: ServerContext) -> CommitSignal:
    sig = ctx.extensions.get("commits")
    if sig is None:
        sig = ctx.extensions["commits"] = CommitSignal(ctx.log.config.data_dir)
        ctx.on_close(sig.close)
    return sig


PartitionResult = tuple[ErrorCode, int, int, bytes | None]  # error, high watermark, log start, records


def read_partitions(ctx: ServerContext, wanted: list[tuple[str, int, int, int]], max_bytes: int
                    ) -> tuple[dict[tuple[str, int], PartitionResult], int]:
    """Records from each (topic, partition, offset, partition max bytes); blocking SQLite reads.

    At least one record of the first partition that has one is returned whatever its
    size, as Kafka does, so a record larger than the limits still gets through.
    """
    conn = ctx.log.reader()
    out: dict[tuple[str, int], PartitionResult] = {}
    total = 0
    meta: dict[tuple[str, int], tuple[int, int]] = {}
    for topic in {w[0] for w in wanted}:
        for part, start, end in conn.execute(
                "SELECT partition, log_start_offset, next_offset FROM partition_ends WHERE topic=?", (topic,)):
            meta[(topic, part)] = (start, end)
    for topic, part, offset, part_max in wanted:
        bounds = meta.get((topic, part))
        if bounds is None:
            out[(topic, part)] = (ErrorCode.unknown_topic_or_partition, -1, -1, None)
            continue
        start, end = bounds
        if offset < start or offset > end:
            out[(topic, part)] = (ErrorCode.offset_out_of_range, end, start, None)
            continue
        room = min(part_max, max_bytes - total)
        if offset == end or (room <= 0 and total > 0):
            out[(topic, part)] = (ErrorCode.none, end, start, None)
            continue
        batch = BatchBuilder()
        size = 0
        for off, ts, key, value, hdr in conn.execute(
                "SELECT offset, timestamp, key, value, headers FROM records"
                f" WHERE {OFFSET_RANGE_SQL} ORDER BY id LIMIT ?",
                (*offset_range(topic, part, offset), _MAX_ROWS)):
            n = _RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0) + (len(hdr) if hdr else 0)
            if batch.count and size + n > room:
                break
            if not batch.count and total > 0 and n > room:
                break
            batch.add(off, ts, key, value, decode_headers(hdr))
            size += n
        data = batch.finish() if batch.count else None
        total += len(data) if data else 0
        out[(topic, part)] = (ErrorCode.none, end, start, data)
    return out, total


async def handle(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(API_KEY, header.api_version)
    topic_cls, part_cls = nested(cls, "FetchableTopicResponse"), nested(cls, "PartitionData")
    wanted = [(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
              for t in request.topics for p in t.partitions]
    max_wait = request.max_wait.total_seconds() if isinstance(request.max_wait, datetime.timedelta) \
        else request.max_wait / 1000
    deadline = time.monotonic() + max(0.0, min(max_wait, ctx.config.request_timeout_s))
    signal = commit_signal(ctx)
    max_bytes = request.max_bytes if request.max_bytes > 0 else 0x7FFFFFFF
    while True:
        mark = signal.mark()
        results, total = await ctx.run_blocking(read_partitions, ctx, wanted, max_bytes)
        left = deadline - time.monotonic()
        errors = any(r[0] is not ErrorCode.none for r in results.values())
        if total >= max(request.min_bytes, 1) or errors or left <= 0 or not wanted:
            break
        await signal.wait(mark, left)
        if asyncio.current_task() is None:  # pragma: no cover - keeps the loop honest under cancel
            break
    by_topic: dict[str, list[Any]] = {}
    for topic, part, _offset, _max in wanted:
        code, hw, start, data = results[(topic, part)]
        by_topic.setdefault(topic, []).append(build(
            part_cls, partition_index=part, error_code=code, high_watermark=hw, last_stable_offset=hw,
            log_start_offset=start, aborted_transactions=None if code is not ErrorCode.none else (),
            preferred_read_replica=-1, records=data or b""))
    return build(cls, throttle_time=datetime.timedelta(0), error_code=ErrorCode.none, session_id=0,
                 responses=tuple(build(topic_cls, topic=t, partitions=tuple(ps)) for t, ps in by_topic.items()))
