"""CreateTopics, DeleteTopics, CreatePartitions: the admin client's calls, Kafka's error codes."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode

from .._admin import NewPartitions
from .._errors import (
    BrokerError,
    ConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from .._records import NewTopic
from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._registry import Registry
from ._schema import build, nested, response_class

CREATE_TOPICS, DELETE_TOPICS, CREATE_PARTITIONS = 19, 20, 37

log = logging.getLogger("broker.wire")


def install(registry: Registry) -> None:
    registry.register(CREATE_TOPICS, 0, 7, create_topics)
    registry.register(DELETE_TOPICS, 0, 5, delete_topics)  # v6 names topics by id
    registry.register(CREATE_PARTITIONS, 0, 3, create_partitions)


def error_code(exc: BrokerError) -> ErrorCode:
    """Kafka's code for one of the admin client's errors."""
    if isinstance(exc, TopicAlreadyExistsError):
        return ErrorCode.topic_already_exists
    if isinstance(exc, UnknownTopicOrPartitionError):
        return ErrorCode.unknown_topic_or_partition
    if isinstance(exc, InvalidTopicError):
        return ErrorCode.invalid_topic_exception
    if isinstance(exc, InvalidPartitionsError):
        return ErrorCode.invalid_partitions
    if isinstance(exc, ConfigError):
        msg = str(exc)
        if "replication_factor" in msg:
            return ErrorCode.invalid_replication_factor
        if "partition" in msg:
            return ErrorCode.invalid_partitions
        if "internal" in msg:
            return ErrorCode.invalid_topic_exception
        return ErrorCode.invalid_config
    return ErrorCode.unknown_server_error


def _one(ctx: ServerContext, fn: Any, *args: Any) -> tuple[ErrorCode, Any]:
    try:
        fn(*args)
    except BrokerError as exc:
        return error_code(exc), str(exc)[:300]
    return ErrorCode.none, None


async def create_topics(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(CREATE_TOPICS, header.api_version)
    result_cls = nested(cls, "CreatableTopicResult")
    default_n = ctx.log.config.default_partitions
    results = []
    for t in request.topics:
        n = default_n if t.num_partitions == -1 else t.num_partitions
        rf = 1 if t.replication_factor == -1 else t.replication_factor
        configs: dict[str, str] = {c.name: c.value for c in t.configs if c.value is not None}
        if t.assignments:
            code, msg = ErrorCode.invalid_replica_assignment, "the box is one broker: no replica assignments"
        else:
            nt = NewTopic(t.name, n, rf, topic_configs=configs)
            code, msg = await ctx.run_blocking(_one, ctx, ctx.admin.create_topics, [nt], None,
                                               bool(request.validate_only))
        if code is ErrorCode.none:
            log.info("Kafka listener: %s topic %r (%d partitions) for %s", "validated" if request.validate_only
                     else "created", t.name, n, conn.peer)
        results.append(build(result_cls, name=t.name, topic_id=None, error_code=code, error_message=msg,
                             topic_config_error_code=0, num_partitions=n if code is ErrorCode.none else -1,
                             replication_factor=1 if code is ErrorCode.none else -1, configs=()))
    return build(cls, throttle_time=datetime.timedelta(0), topics=tuple(results))


async def delete_topics(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(DELETE_TOPICS, header.api_version)
    result_cls = nested(cls, "DeletableTopicResult")
    results = []
    for name in request.topic_names:
        code, msg = await ctx.run_blocking(_one, ctx, ctx.admin.delete_topics, [name])
        if code is ErrorCode.none:
            log.info("Kafka listener: deleted topic %r for %s", name, conn.peer)
        results.append(build(result_cls, name=name, topic_id=None, error_code=code, error_message=msg))
    return build(cls, throttle_time=datetime.timedelta(0), responses=tuple(results))


async def create_partitions(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(CREATE_PARTITIONS, header.api_version)
    result_cls = nested(cls, "CreatePartitionsTopicResult")
    results = []
    for t in request.topics:
        code, msg = await ctx.run_blocking(_one, ctx, ctx.admin.create_partitions,
                                           {t.name: NewPartitions(t.count)}, None, bool(request.validate_only))
        results.append(build(result_cls, name=t.name, error_code=code, error_message=msg))
    return build(cls, throttle_time=datetime.timedelta(0), results=tuple(results))
