"""InitProducerId: producer ids that never repeat on this log, for idempotent producers.

Ids are taken in blocks of ``BLOCK`` persisted in the ``state`` table before any is handed
out, so a restart never gives an id twice (it skips the rest of its block).  Transactional
producers are not served: their InitProducerId is answered with an error and a log line.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode

from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._registry import Registry
from ._schema import build, response_class

API_KEY = 22
STORE = "__wire.producer_ids"
BLOCK = 1000

log = logging.getLogger("broker.wire")


def install(registry: Registry) -> None:
    registry.register(API_KEY, 0, 4, handle)


class _Ids:
    def __init__(self) -> None:
        self.next = 0
        self.limit = 0
        self.lock = asyncio.Lock()


def _reserve(ctx: ServerContext) -> tuple[int, int]:
    """Persist the next block and return it as (first, limit); blocking."""
    stored = ctx.admin.read_state_store(STORE).get(b"next")
    first = int(stored) if stored else 1
    txn = ctx.producer.begin_transaction()
    txn.put_state(STORE, b"next", str(first + BLOCK).encode())
    txn.commit()
    return first, first + BLOCK


async def handle(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(API_KEY, header.api_version)
    if request.transactional_id is not None:
        log.warning("Kafka listener: %s (client %r) asked for transactional id %r: transactions are not "
                    "served here; use an idempotent producer", conn.peer, conn.client_id, request.transactional_id)
        return build(cls, throttle_time=datetime.timedelta(0), error_code=ErrorCode.transactional_id_authorization_failed,
                     producer_id=-1, producer_epoch=-1)
    ids: _Ids = ctx.extensions.setdefault("producer_ids", _Ids())
    old_pid = getattr(request, "producer_id", -1)
    old_epoch = getattr(request, "producer_epoch", -1)
    if old_pid >= 0 and 0 <= old_epoch < 32766:
        # KIP-360: a producer that lost track of its sequences bumps its epoch and starts at 0.
        return build(cls, throttle_time=datetime.timedelta(0), error_code=ErrorCode.none,
                     producer_id=old_pid, producer_epoch=old_epoch + 1)
    async with ids.lock:
        if ids.next >= ids.limit:
            ids.next, ids.limit = await ctx.run_blocking(_reserve, ctx)
        pid = ids.next
        ids.next += 1
    return build(cls, throttle_time=datetime.timedelta(0), error_code=ErrorCode.none, producer_id=pid,
                 producer_epoch=0)
