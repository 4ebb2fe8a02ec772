"""ListOffsets: the earliest and latest offsets of a partition, or the first at a time."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from .._storage import OFFSET_RANGE_SQL, offset_range
from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._registry import Registry
from ._schema import build, nested, response_class

API_KEY = 2
MIN_VERSION, MAX_VERSION = 1, 7  # v0 answers lists of offsets, asked by no current client

LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3


def install(registry: Registry) -> None:
    registry.register(API_KEY, MIN_VERSION, MAX_VERSION, handle)


def lookup(ctx: ServerContext, wanted: list[tuple[str, int, int]]) -> dict[tuple[str, int], tuple[ErrorCode, int, int]]:
    """(error, timestamp, offset) per (topic, partition, timestamp asked); blocking."""
    conn = ctx.log.reader()
    out = {}
    for topic, part, ts in wanted:
        row = conn.execute("SELECT log_start_offset, next_offset FROM partition_ends WHERE topic=? AND partition=?",
                           (topic, part)).fetchone()
        if row is None:
            out[(topic, part)] = (ErrorCode.unknown_topic_or_partition, -1, -1)
            continue
        start, end = row
        if ts == LATEST:
            out[(topic, part)] = (ErrorCode.none, -1, end)
        elif ts == EARLIEST:
            out[(topic, part)] = (ErrorCode.none, -1, start)
        elif ts == MAX_TIMESTAMP:
            found = conn.execute(
                f"SELECT offset, timestamp FROM records WHERE {OFFSET_RANGE_SQL}"
                " ORDER BY timestamp DESC, offset ASC LIMIT 1", offset_range(topic, part, start)).fetchone()
            out[(topic, part)] = (ErrorCode.none, found[1], found[0]) if found else (ErrorCode.none, -1, end)
        elif ts < 0:
            out[(topic, part)] = (ErrorCode.invalid_request, -1, -1)
        else:
            found = conn.execute(
                f"SELECT offset, timestamp FROM records WHERE {OFFSET_RANGE_SQL}"
                " AND timestamp>=? ORDER BY id LIMIT 1", (*offset_range(topic, part, start), ts)).fetchone()
            out[(topic, part)] = (ErrorCode.none, found[1], found[0]) if found else (ErrorCode.none, -1, -1)
    return out


async def handle(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(API_KEY, header.api_version)
    topic_cls, part_cls = nested(cls, "ListOffsetsTopicResponse"), nested(cls, "ListOffsetsPartitionResponse")
    wanted = [(t.name, p.partition_index, p.timestamp) for t in request.topics for p in t.partitions]
    found = await ctx.run_blocking(lookup, ctx, wanted)
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            code, ts, off = found[(t.name, p.partition_index)]
            parts.append(build(part_cls, partition_index=p.partition_index, error_code=code, timestamp=ts,
                               offset=off, leader_epoch=0 if code is ErrorCode.none else -1))
        topics.append(build(topic_cls, name=t.name, partitions=tuple(parts)))
    return build(cls, throttle_time=datetime.timedelta(0), topics=tuple(topics))
