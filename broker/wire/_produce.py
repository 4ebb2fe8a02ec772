"""Produce: record batches into the log, acknowledged (acks 1 and all) once durable.

The box is the only replica, so acks=1 and acks=all both wait for the fsync; acks=0
gets no response, as in Kafka.  Writes go through ``_appender`` (one transaction per
round of requests, idempotent producers' retries recognised).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode

from .._config import INTERNAL_TOPICS
from .._topic_names import is_topic_name
from ._appender import Appender, PartitionWrite
from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._metadata import auto_create, topic_partitions
from ._recordbatch import TRANSACTIONAL, RecordBatchError, decode_batches
from ._registry import Registry
from ._schema import build, nested, response_class

API_KEY = 0
MIN_VERSION, MAX_VERSION = 3, 9  # v3: record batches v2 (Kafka 0.11), the oldest any current client needs

log = logging.getLogger("broker.wire")


def install(registry: Registry) -> None:
    registry.register(API_KEY, MIN_VERSION, MAX_VERSION, handle)


def appender(ctx: ServerContext) -> Appender:
    """The server's appender, its commit loop started on first use."""
    app = ctx.extensions.get("appender")
    if app is None:
        app = ctx.extensions["appender"] = Appender(ctx.producer, ctx.admin, ctx.run_blocking, ctx.metrics, ctx.log.clock)
        ctx.start_task(app.run(), "wire-appender")
        ctx.on_close(app.persist_offsets)
    return app


async def handle(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(API_KEY, header.api_version)
    topic_cls, part_cls = nested(cls, "TopicProduceResponse"), nested(cls, "PartitionProduceResponse")
    known = await ctx.run_blocking(topic_partitions, ctx)
    missing = [t.name for t in request.topic_data if t.name not in known and is_topic_name(t.name)
               and t.name not in INTERNAL_TOPICS]
    if missing and ctx.config.auto_create_topics:
        known = await ctx.run_blocking(auto_create, ctx, missing)
    writes: list[PartitionWrite] = []
    answers: list[tuple[str, list[PartitionWrite]]] = []
    for topic in request.topic_data:
        parts = []
        for pd in topic.partition_data:
            w = PartitionWrite(topic.name, pd.index, [])
            parts.append(w)
            if request.transactional_id is not None:
                w.error, w.message = ErrorCode.transactional_id_authorization_failed, "transactions are not served here"
            elif topic.name in INTERNAL_TOPICS:
                w.error, w.message = ErrorCode.invalid_topic_exception, "an internal topic of the log"
            elif topic.name not in known or not 0 <= pd.index < known[topic.name]:
                w.error = ErrorCode.unknown_topic_or_partition
            else:
                try:
                    w.batches = decode_batches(bytes(pd.records or b""))
                except RecordBatchError as exc:
                    w.error = ErrorCode.corrupt_message if "CRC" in str(exc) else ErrorCode.invalid_record
                    w.message = str(exc)
                else:
                    _check_records(w)
            if w.error is ErrorCode.none and w.batches:
                writes.append(w)
            elif w.error is not ErrorCode.none:
                ctx.metrics.error("produce_refused")
                log.warning("Kafka listener: refused a produce from %s (client %r) to %s[%d]: %s %s",
                            conn.peer, conn.client_id, w.topic, w.partition, w.error.name, w.message or "")
        answers.append((topic.name, parts))
    if writes:
        await appender(ctx).write(writes)
    if request.acks == 0:
        return None
    responses = tuple(
        build(topic_cls, name=name, partition_responses=tuple(
            build(part_cls, index=w.partition, error_code=w.error, base_offset=w.base_offset,
                  log_append_time=None, log_start_offset=-1, record_errors=(), error_message=w.message)
            for w in parts))
        for name, parts in answers)
    return build(cls, responses=responses, throttle_time=datetime.timedelta(0))


def _check_records(w: PartitionWrite) -> None:
    for b in w.batches:
        if b.attributes & TRANSACTIONAL:
            w.error, w.message = ErrorCode.transactional_id_authorization_failed, "transactions are not served here"
            return
        for r in b.records:
            if r.key is None and r.value is None:
                w.error, w.message = ErrorCode.invalid_record, "a record with neither key nor value"
                return
