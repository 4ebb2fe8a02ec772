"""The upstream connection: connecting (producer, admin client, fencing, where to
resume), noticing a cluster that went away, closing, and the state changes between."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
)
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as UpTP

from . import _aiokafka_private as _private
from ._batches import _seen
from ._checkpoint import checkpoint_offsets, read_checkpoint, refresh_interval_s
from ._diagnose import diagnose_connect
from ._errors import UplinkError, UpstreamError
from ._fence import FenceLease
from ._resuming import _Resuming
from ._secrets import mask
from ._status import UplinkState
from ._translate import _translate

log = logging.getLogger("edge.uplink")

_PROBE_EVERY_S = 1.0
_ABANDON_GRACE_S = 0.5    # for a producer's sender to stop before its connections are closed
_PROBE_TIMEOUT_S = 3.0    # metadata on a healthy cluster takes milliseconds
_TOPIC_RETRY_S = 30.0     # creating an upstream topic the cluster refused, again
# The checkpoint's AddOffsetsToTxn can be in progress at the coordinator when the records'
# partition leader asks it whether their partition is in the transaction (Kafka >= 3.6
# verifies); the leader then refuses the records with NOT_ENOUGH_REPLICAS, a retriable
# error, and aiokafka's default 100 ms backoff cost a one-broker transaction several times
# its length, about one in seven. 20 ms is what aiokafka waits on CONCURRENT_TRANSACTIONS.
_RETRY_BACKOFF_MS = 20


class _Connection(_Resuming):
    def _online(self) -> None:
        """Connected: the error that kept the uplink offline is no longer the state of things."""
        was = self._last_error
        self._last_error = None
        self._set_state(UplinkState.ONLINE, f"recovered from: {was}" if was else None)

    async def _offline(self, exc: BaseException, connected: bool, retry_s: float) -> None:
        c = self.config
        if isinstance(exc, TimeoutError) and not str(exc):
            err: UplinkError = UpstreamError(
                f"upstream did not answer within {c.request_timeout_s * 2:g} s while connecting")
        else:
            err = _translate(exc, "upstream")
        if not connected and isinstance(exc, KafkaConnectionError | TimeoutError):
            # aiokafka only logs why the bootstrap failed; find out and say it.
            why = await diagnose_connect(c, self._client_options())
            if why is not None:
                err = UpstreamError(f"upstream: {why}")
        text = mask(str(err))
        changed = text != self._last_error
        self._last_error = text
        if self._state == UplinkState.OFFLINE and changed:
            log.warning("uplink %s: still offline, now: %s (retrying in %g s)", c.edge_id, text,
                        retry_s)
        elif self._state == UplinkState.OFFLINE:
            log.debug("uplink %s: still offline, retrying in %.1f s: %s", c.edge_id, retry_s, text)
        self._set_state(UplinkState.OFFLINE, f"{text} (retrying in {retry_s:g} s)")

    async def _connect(self) -> None:
        c = self.config
        opts = self._client_options()
        self._admin = AIOKafkaAdminClient(**opts)
        await self._admin.start()
        self._topics.reset()
        await self._ensure_topics()
        self._producer = AIOKafkaProducer(
            **opts, acks="all", enable_idempotence=True,
            transactional_id=c.transactional_id if c.exactly_once else None,
            compression_type=c.compression, linger_ms=int(c.linger_s * 1000),
            max_batch_size=c.producer_batch_bytes, max_request_size=c.max_request_bytes,
            retry_backoff_ms=_RETRY_BACKOFF_MS)
        await self._producer.start()
        checkpoint = None
        if c.exactly_once:
            # An empty transaction waits for our producer id: that fences any older uplink
            # with our transactional id and settles its open transaction before we read
            # the checkpoint it may have just committed.
            await self._producer.begin_transaction()
            await self._producer.commit_transaction()
            self._committed_at = time.monotonic()
            checkpoint = await self._resume_positions(
                await _patiently(lambda: read_checkpoint(self._admin, c.group_id),
                                 c.request_timeout_s))
            self._checkpoints.reset(await refresh_interval_s(self._admin))
        checkpoint = await self._resume_resends(checkpoint)
        self._replicated = await self._in_thread(self._open_local.rewind, checkpoint)
        if not c.exactly_once:   # transactions fence exactly once; at least once, a lease
            self._lease = FenceLease(opts, c.transactional_id, c.group_id,
                                     self._lease_checkpoint, c.request_timeout_s)
            await self._lease.start()

    def _lease_checkpoint(self) -> dict[UpTP, OffsetAndMetadata]:
        # At least once the heartbeat writes the checkpoint too: what is acked upstream, so
        # a switch to exactly once resumes there, and `kafka-consumer-groups` shows progress.
        return checkpoint_offsets(self._replicated, {tp.topic for tp in self._replicated},
                                  self._upstream)

    async def _ensure_topics(self, local: list[str] | None = None) -> None:
        """Create the upstream topics of these local topics (all: None) if missing
        (``UpstreamTopics``), and stop replicating those the cluster refuses."""
        await self._topics.ensure(self._admin, await self._in_thread(self._open_local.partition_counts,
                                                                     local))
        await self._refuse_topics(dict(self._topics.refused))

    async def _refuse_topics(self, refused: dict[str, str]) -> None:
        """Stop replicating the local topics whose upstream topic the cluster will not create
        (a replication factor it cannot meet, a policy): the others go on. Tried again at
        each connect and every ``_TOPIC_RETRY_S`` while online."""
        for topic in refused.keys() - self._topic_refusals.keys():
            log.warning("uplink %s: %s; its local topic is not replicated until the topic can"
                        " be created (tried again every %g s)", self.config.edge_id,
                        refused[topic], _TOPIC_RETRY_S)
        for topic in self._topic_refusals.keys() - refused.keys():
            log.info("uplink %s: upstream topic %r created; replicating it", self.config.edge_id,
                     topic)
        self._topic_refusals = refused
        self._topics_tried_at = time.monotonic()
        await self._in_thread(self._open_local.exclude,
                              {m.local for m in self.config.topic_mappings if m.upstream in refused})

    async def _close_upstream(self, clean: bool = True) -> None:
        producer, admin, self._producer, self._admin = self._producer, self._admin, None, None
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.close()
        # Also when cancelled (stop_timeout_s ran out while a clean close flushed): both
        # clients are closed before the cancellation goes on, so nothing is left open.
        cancelled: BaseException | None = None
        if producer is not None:
            try:
                if clean:
                    await asyncio.wait_for(producer.stop(), self.config.request_timeout_s)
                else:
                    await _abandon(producer)
            except BaseException as exc:  # closing a broken producer: nothing left to save
                log.debug("closing producer: %r", exc)
                cancelled = exc if isinstance(exc, asyncio.CancelledError) else None
                await _abandon(producer)
        # The producer is closed: nothing will settle these checkpoint writes any more.
        orphans, self._orphans[:] = list(self._orphans), []
        for task in orphans:
            task.cancel()
        await asyncio.gather(*orphans, return_exceptions=True)
        if admin is not None:
            try:
                await asyncio.wait_for(admin.close(), self.config.request_timeout_s)
            except BaseException as exc:
                log.debug("closing admin client: %r", exc)
                if isinstance(exc, asyncio.CancelledError):
                    cancelled = exc
                    await admin.close()
        if cancelled is not None:
            raise cancelled

    async def _probe(self) -> None:
        timeout = min(_PROBE_TIMEOUT_S, self.config.request_timeout_s)
        while True:
            await asyncio.sleep(_PROBE_EVERY_S)
            if self._topic_refusals and time.monotonic() - self._topics_tried_at >= _TOPIC_RETRY_S:
                await self._ensure_topics([m.local for m in self.config.topic_mappings
                                           if m.upstream in self._topic_refusals])
            try:
                async with asyncio.timeout(timeout):
                    await self._connected_admin.describe_cluster()
            except TimeoutError as exc:
                raise UpstreamError(f"upstream did not answer a metadata request within"
                                    f" {timeout:g} s") from exc
            except (KafkaError, OSError) as exc:
                raise _translate(exc, "upstream (metadata request)") from exc


async def _patiently(step: Any, timeout_s: float) -> Any:
    """``await step()``, again while it fails with a retriable Kafka error, up to
    ``timeout_s``: a new consumer group's coordinator is "not available" for a moment on a
    fresh cluster, which is no reason to report the cluster offline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await step()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.1)



async def _abandon(producer: AIOKafkaProducer) -> None:
    """Close a producer without flushing: after a fault its batches belong to a transaction
    the next producer aborts (or, at least once, to offsets not committed locally), and
    ``stop()`` would wait for them forever while the cluster is away. aiokafka has no
    public way: ``_aiokafka_private`` holds the private one and its probe; without it,
    ``stop()`` gets ``_ABANDON_GRACE_S`` (then stop_timeout_s bounds the uplink's stop)."""
    if not await _private.can_abandon():
        await _private.close_plainly(producer, _ABANDON_GRACE_S)
        return
    await _private.abandon(producer, _ABANDON_GRACE_S)
    # A fenced or failed transaction leaves its error on the transaction manager's waiter,
    # which only commit or abort would read: seen here, else asyncio prints "Future
    # exception was never retrieved" with a traceback after our clear message.
    # So does each record batch still queued when the producer failed (its drain waiter).
    for waiter in _private.pending_waiters(producer):
        waiter.add_done_callback(_seen)
