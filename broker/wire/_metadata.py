"""Metadata: the box is the one broker of its cluster, the leader of every partition."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode

from .._config import INTERNAL_TOPICS
from .._errors import BrokerError, TopicAlreadyExistsError
from .._records import NewTopic
from .._topic_names import is_topic_name
from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._registry import Registry
from ._schema import build, nested, response_class

API_KEY = 3
MIN_VERSION, MAX_VERSION = 0, 12

log = logging.getLogger("broker.wire")

# Without authentication every client may do everything: the operations Kafka would name
# for an authorized super user (ACL operation codes as bits), sent only when asked for.
_NOT_ASKED = -2147483648
_TOPIC_OPS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
# Not the token operations (13, 14): kafka-python 2.x cannot name 14 and fails on it.
_CLUSTER_OPS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


def install(registry: Registry) -> None:
    registry.register(API_KEY, MIN_VERSION, MAX_VERSION, handle)


def topic_partitions(ctx: ServerContext) -> dict[str, int]:
    """Every topic of the log and its partition count (blocking: a SQLite read)."""
    rows = ctx.log.reader().execute("SELECT name, partitions FROM topics").fetchall()
    return {name: n for name, n in rows}


def auto_create(ctx: ServerContext, names: list[str]) -> dict[str, int]:
    """Create the topics ``names`` with the log's default partitions (blocking)."""
    n = ctx.log.config.default_partitions
    for name in names:
        try:
            ctx.admin.create_topics([NewTopic(name, n, 1)])
            log.info("Kafka listener: auto-created topic %r with %d partition(s)", name, n)
        except TopicAlreadyExistsError:
            pass  # created meanwhile by another client: as good
        except BrokerError as exc:
            log.warning("Kafka listener: could not auto-create topic %r: %s", name, exc)
    return topic_partitions(ctx)


async def handle(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_class(API_KEY, version)
    topic_cls, part_cls, broker_cls = (nested(cls, n) for n in (
        "MetadataResponseTopic", "MetadataResponsePartition", "MetadataResponseBroker"))
    topic_ops = _TOPIC_OPS if getattr(request, "include_topic_authorized_operations", False) else _NOT_ASKED
    cluster_ops = (_CLUSTER_OPS if getattr(request, "include_cluster_authorized_operations", False)
                   else _NOT_ASKED)
    known = await ctx.run_blocking(topic_partitions, ctx)
    # v0: an empty list means every topic; v1 and later: null means every topic.
    wanted: list[str] | None
    if request.topics is None or (version == 0 and not request.topics):
        wanted = None
    else:
        wanted = [t.name for t in request.topics if t.name is not None]
    if wanted is not None:
        allow = getattr(request, "allow_auto_topic_creation", True)
        missing = [t for t in wanted if t not in known and is_topic_name(t) and t not in INTERNAL_TOPICS]
        if missing and allow and ctx.config.auto_create_topics:
            known = await ctx.run_blocking(auto_create, ctx, missing)
    names = sorted(known) if wanted is None else list(dict.fromkeys(wanted))
    topics = []
    for name in names:
        if name not in known:
            code = ErrorCode.unknown_topic_or_partition if is_topic_name(name) else ErrorCode.invalid_topic_exception
            topics.append(build(topic_cls, error_code=code, name=name, topic_id=None, is_internal=False,
                                partitions=(), topic_authorized_operations=_NOT_ASKED))
            continue
        parts = tuple(
            build(part_cls, error_code=ErrorCode.none, partition_index=p, leader_id=ctx.node_id,
                  leader_epoch=0, replica_nodes=(ctx.node_id,), isr_nodes=(ctx.node_id,),
                  offline_replicas=())
            for p in range(known[name]))
        topics.append(build(topic_cls, error_code=ErrorCode.none, name=name, topic_id=None,
                            is_internal=name in INTERNAL_TOPICS, partitions=parts,
                            topic_authorized_operations=topic_ops))
    brokers = (build(broker_cls, node_id=ctx.node_id, host=ctx.advertised_host,
                     port=ctx.advertised_port, rack=None),)
    return build(cls, throttle_time=datetime.timedelta(0), brokers=brokers, cluster_id=ctx.cluster_id,
                 controller_id=ctx.node_id, topics=tuple(topics), cluster_authorized_operations=cluster_ops)
