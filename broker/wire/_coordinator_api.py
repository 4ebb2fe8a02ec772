"""Offsets on the wire: OffsetCommit, OffsetFetch and OffsetDelete, kept in the log's own
``group_offsets`` table by the coordinator (``_coordinator.py``), so ``edge-consumer-groups``
and the Python API see the same committed offsets as Kafka clients do.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._group_errors import INVALID_GROUP_ID, NONE
from ._groups_api import coordinator
from ._registry import Registry
from ._schema import build, nested, response_class

OFFSET_COMMIT, OFFSET_FETCH, OFFSET_DELETE = 8, 9, 47

_NO_THROTTLE = datetime.timedelta(0)


def install(registry: Registry) -> None:
    registry.register(OFFSET_COMMIT, 0, 9, offset_commit)
    registry.register(OFFSET_FETCH, 0, 9, offset_fetch)
    registry.register(OFFSET_DELETE, 0, 0, offset_delete)


async def offset_commit(ctx: ServerContext, conn: Connection, header: RequestHeader,
                        request: Any) -> Any:
    cls = response_class(OFFSET_COMMIT, header.api_version)
    topic_cls, part_cls = nested(cls, "OffsetCommitResponseTopic"), nested(cls, "OffsetCommitResponsePartition")
    rows = [(t.name, p.partition_index, p.committed_offset, p.committed_metadata or "")
            for t in request.topics for p in t.partitions]
    if not request.group_id:
        errors = [INVALID_GROUP_ID] * len(rows)
    else:
        # v0 has neither generation nor member: a commit of a group without membership.
        errors = await coordinator(ctx).commit(
            request.group_id, getattr(request, "member_id", ""),
            getattr(request, "group_instance_id", None),
            getattr(request, "generation_id_or_member_epoch", -1), rows)
    results = iter(errors)
    return build(cls, throttle_time=_NO_THROTTLE, topics=tuple(
        build(topic_cls, name=t.name, partitions=tuple(
            build(part_cls, partition_index=p.partition_index, error_code=ErrorCode(next(results)))
            for p in t.partitions))
        for t in request.topics))


async def _fetch_group(ctx: ServerContext, group_id: str,
                       topics: Any) -> tuple[int, dict[str, list[tuple[int, int, str]]]]:
    """(error, {topic: [(partition, offset, metadata)]}) for one group of an OffsetFetch."""
    if not group_id:
        return INVALID_GROUP_ID, {}
    wanted = None if topics is None else [(t.name, p) for t in topics for p in t.partition_indexes]
    by_topic: dict[str, list[tuple[int, int, str]]] = {}
    if topics is not None:
        for t in topics:  # keep the request's order, unknown partitions included (-1)
            by_topic.setdefault(t.name, [])
    for topic, partition, offset, metadata in await coordinator(ctx).fetch(group_id, wanted):
        by_topic.setdefault(topic, []).append((partition, offset, metadata))
    return NONE, by_topic


async def offset_fetch(ctx: ServerContext, conn: Connection, header: RequestHeader,
                       request: Any) -> Any:
    version = header.api_version
    cls = response_class(OFFSET_FETCH, version)
    if version < 8:
        topic_cls = nested(cls, "OffsetFetchResponseTopic")
        part_cls = nested(cls, "OffsetFetchResponsePartition")
        # v0/v1 have no "every topic" (null) form: an empty list asks for nothing.
        error, by_topic = await _fetch_group(ctx, request.group_id, request.topics)
        return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode(error),
                     topics=_topics(by_topic, topic_cls, part_cls, with_errors=True))
    # v8 (KIP-709): several groups in one request.
    group_cls = nested(cls, "OffsetFetchResponseGroup")
    topic_cls = nested(cls, "OffsetFetchResponseTopics")
    part_cls = nested(cls, "OffsetFetchResponsePartitions")
    groups = []
    for g in request.groups:
        error, by_topic = await _fetch_group(ctx, g.group_id, g.topics)
        groups.append(build(group_cls, group_id=g.group_id, error_code=ErrorCode(error),
                            topics=_topics(by_topic, topic_cls, part_cls, with_errors=True)))
    return build(cls, throttle_time=_NO_THROTTLE, groups=tuple(groups))


def _topics(by_topic: dict[str, list[tuple[int, int, str]]], topic_cls: Any, part_cls: Any,
            *, with_errors: bool) -> tuple[Any, ...]:
    return tuple(
        build(topic_cls, name=topic, partitions=tuple(
            build(part_cls, partition_index=p, committed_offset=offset, committed_leader_epoch=-1,
                  metadata=metadata, error_code=ErrorCode.none)
            for p, offset, metadata in parts))
        for topic, parts in by_topic.items())


async def offset_delete(ctx: ServerContext, conn: Connection, header: RequestHeader,
                        request: Any) -> Any:
    """``kafka-consumer-groups --delete-offsets``: forget some partitions' offsets of a group."""
    cls = response_class(OFFSET_DELETE, header.api_version)
    topic_cls = nested(cls, "OffsetDeleteResponseTopic")
    part_cls = nested(cls, "OffsetDeleteResponsePartition")
    partitions = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    errors: list[int] = []
    if not request.group_id:
        error = INVALID_GROUP_ID
    else:
        error, errors = await coordinator(ctx).delete_offsets(request.group_id, partitions)
    results = iter(errors)
    return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode(error), topics=() if error else tuple(
        build(topic_cls, name=t.name, partitions=tuple(
            build(part_cls, partition_index=p.partition_index, error_code=ErrorCode(next(results)))
            for p in t.partitions)) for t in request.topics))
