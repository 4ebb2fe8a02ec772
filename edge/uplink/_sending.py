"""The send loop: read and encode the next batch while the current one is upstream, send
it (in a transaction with its checkpoint, exactly once), wait for its acks, commit the
local group; pacing, the bytes/s cap and refused records on the way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import NoReturn

from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from broker import RawRecord, TopicPartition

from ._batches import _InFlight, _Prepared
from ._checkpoint import checkpoint_offsets
from ._encoding import _Encoding
from ._translate import _Isolating, _translate

log = logging.getLogger("edge.uplink")

_POLL_S = 0.5
_LOCAL_COMMIT_S = 0.5
_WINDOW = 4


class _Sending(_Encoding):
    async def _pump(self) -> None:
        # The next batch is read from the local log and encoded into record batches while
        # the current one is upstream, so a transaction's records go out as soon as the
        # previous one is committed; at least once, up to _WINDOW batches are in flight
        # (acks complete in order).
        window = 1 if self.config.exactly_once else _WINDOW
        prefetch: asyncio.Task[_Prepared] | None = None
        flights: deque[_InFlight] = deque()
        try:
            while not self._stop.is_set():
                prepared = await (prefetch or self._read(0 if flights else _POLL_S))
                prefetch = None
                if prepared.batch:
                    prefetch = asyncio.create_task(self._read(0))
                    if self.config.max_bytes_per_s is not None:
                        await self._throttle(prepared.nbytes)
                    ready_at = time.monotonic()
                    if self.config.exactly_once:
                        await self._pace()
                    if self._lease is not None:   # at least once: send only while it holds
                        await self._bounded(self._lease.hold())
                    flights.append(await self._bounded(self._send(prepared)))
                    flights[-1].ready_at = ready_at
                while flights and (len(flights) >= window or not prepared.batch):
                    await self._bounded(self._finish(flights.popleft()))
                if not prepared.batch and self.config.exactly_once:
                    await self._bounded(self._refresh_checkpoints())
                elif not prepared.batch and self._lease is not None:
                    await self._bounded(self._lease.hold())   # idle: notice being fenced
                await self._maybe_commit_local(force=False)
            while flights:
                await self._bounded(self._finish(flights.popleft()))
        finally:
            for flight in flights:
                await flight.cancel()
            if prefetch is not None:  # read past what was replicated: the rewind undoes it
                prefetch.cancel()
                await asyncio.gather(prefetch, return_exceptions=True)
            await self._maybe_commit_local(force=True)

    async def _refresh_checkpoints(self) -> None:
        """Idle: write the checkpoints that are due in a transaction of their own."""
        due = self._checkpoints.due({tp.topic for tp in self._replicated})
        if not due:
            return
        producer = self._connected_producer
        try:
            await producer.begin_transaction()
            await producer.send_offsets_to_transaction(
                checkpoint_offsets(self._replicated, due, self._upstream), self.config.group_id)
            await producer.commit_transaction()
        except (TimeoutError, KafkaError, OSError) as exc:
            raise _translate(exc, "rewriting checkpoints") from exc
        self._committed_at = time.monotonic()
        self._checkpoints.written(due, self._committed_at)

    async def _pace(self) -> None:
        """Hold the next transaction until the last one is likely finished by the coordinator
        (``TransactionPacer``): asked too early, aiokafka retries only 20 ms later."""
        wait = self._pacer.delay_s - (time.monotonic() - self._committed_at)
        if wait > 0:
            await asyncio.sleep(wait)

    async def _read(self, timeout_s: float) -> _Prepared:
        """The next batch from the local log, encoded (``_prepare``)."""
        return await self._prepare(await self._in_thread(self._open_local.poll, timeout_s))

    async def _maybe_commit_local(self, force: bool) -> None:
        """Commit the local group to what the cluster has (at most every
        ``_LOCAL_COMMIT_S``): it frees local retention and, at least once, is where a
        restart resumes, so committing less often only costs re-sends.

        The commit (an fsync) runs in the local thread while the pump goes on: waiting for
        it held up the next batch for tens of ms on a busy disk. ``force`` waits for it.
        """
        pending = self._local_commit
        if pending is not None and (force or pending.done()):
            self._local_commit = None
            await pending  # a failure of the local log surfaces here
        if self._local_commit is not None or not self._uncommitted or (
                not force and time.monotonic() - self._last_local_commit < _LOCAL_COMMIT_S):
            return
        done, self._uncommitted = self._uncommitted, {}
        self._last_local_commit = time.monotonic()
        commit = asyncio.ensure_future(self._in_thread(self._open_local.commit, done))
        if force:
            await commit
        else:
            self._local_commit = commit

    async def _throttle(self, nbytes: int) -> None:
        cap = self.config.max_bytes_per_s
        if cap is None:
            return
        now = time.monotonic()
        self._bucket = max(0.0, self._bucket - (now - self._bucket_t) * cap)
        self._bucket_t = now
        self._bucket += nbytes
        if self._bucket > cap * 0.1:  # allow bursts of a tenth of a second
            await asyncio.sleep((self._bucket - cap * 0.1) / cap)

    async def _send(self, prepared: _Prepared) -> _InFlight:
        """Hand a prepared batch to the producer (in a new transaction, exactly once); not
        yet acked. Exactly once, the checkpoint write starts at once, beside the records."""
        producer = self._connected_producer
        c = self.config
        flight = _InFlight(prepared.batch, self._orphans)
        flight.dead, flight.updates, flight.nbytes = prepared.dead, prepared.updates, prepared.nbytes
        try:
            if c.exactly_once:
                await producer.begin_transaction()
            for topic, part, builder, members in prepared.shipments:
                await self._ship(flight, topic, part, builder, members)
            if c.exactly_once:
                # Idle topics' checkpoints ride along when due, so none expires upstream.
                flight.checkpointed = {tp.topic for tp in flight.updates} | self._checkpoints.due(
                    {tp.topic for tp in self._replicated})
                checkpoint = checkpoint_offsets({**self._replicated, **flight.updates},
                                                flight.checkpointed, self._upstream)
                flight.offsets = asyncio.ensure_future(
                    producer.send_offsets_to_transaction(checkpoint, c.group_id))
        except (TimeoutError, KafkaError, OSError) as exc:
            await flight.cancel()
            raise _translate(exc, "sending a batch") from exc
        return flight

    async def _ship(self, flight: _InFlight, topic: str, partition: int, builder: BatchBuilder,
                    members: list[RawRecord]) -> None:
        builder.close()
        future = await self._connected_producer.send_batch(builder, topic, partition=partition)
        flight.futures.append((future, members))

    async def _finish(self, flight: _InFlight) -> None:
        """Wait for a batch's acks (and commit its transaction with the checkpoint)."""
        producer, batch, dead = self._connected_producer, flight.batch, flight.dead
        previous_commit = self._committed_at
        nxt = {**self._replicated, **flight.updates}
        try:
            results = await asyncio.gather(*(f for f, _ in flight.futures), return_exceptions=True)
            failed = [(members, e) for (_, members), e in zip(flight.futures, results, strict=True)
                      if isinstance(e, BaseException)]
            if failed:
                await self._refused(flight, failed)
            if dead:
                # Before the upstream commit: a crash here may dead-letter a record twice
                # locally, never lose it.
                await self._in_thread(self._open_local.dead_letter, dead)
            if self.config.exactly_once:
                offsets, flight.offsets = flight.offsets, None
                if offsets is not None:
                    await offsets
                await producer.commit_transaction()
                self._committed_at = time.monotonic()
                self._checkpoints.written(flight.checkpointed, self._committed_at)
                self._pacer.observe(self._committed_at - max(flight.ready_at, previous_commit))
        except (TimeoutError, KafkaError, OSError) as exc:
            await flight.cancel()
            raise _translate(exc, "replicating a batch") from exc
        except BaseException:
            await flight.cancel()
            raise
        self._replicated = nxt
        self._uncommitted.update(flight.updates)
        if self._refusals:
            self._refusals.settled(batch, dead)
        self._dead += len(dead)
        self._records_total += len(batch)
        self._bytes_total += flight.nbytes
        self._rate.add(len(batch), flight.nbytes)

    async def _refused(self, flight: _InFlight,
                       failed: list[tuple[list[RawRecord], BaseException]]) -> NoReturn:
        """Some record batches of a batch failed. If the cluster refused records for good,
        abort the transaction and start again from the checkpoint without them
        (``_Isolating``; ``RecordRefusals`` finds which); else raise the first failure."""
        refused = [(members, e) for members, e in failed if self._refusals.observe(members, e)]
        if not refused:
            raise failed[0][1]
        if not self.config.exactly_once:
            self._keep_acked_prefix(flight, failed)
        if self.config.exactly_once:
            # Aborted now, so no record of it lingers in an open transaction: the producer is
            # replaced next anyway (after a refused batch, aiokafka's sequence numbers for its
            # partition no longer match the broker's).
            await flight.cancel()
            try:
                async with asyncio.timeout(self.config.request_timeout_s):
                    await self._connected_producer.abort_transaction()
            except (TimeoutError, KafkaError, OSError) as exc:
                log.debug("aborting the refused transaction: %r", exc)
        members, first = refused[0]
        where = ", ".join(sorted({f"{r.topic}/{r.partition}" for m, _ in refused for r in m}))
        what = (f"record {members[0].topic}/{members[0].partition}/{members[0].offset}"
                if len(members) == 1 else f"a batch of {len(members)} records")
        raise _Isolating(f"{what} refused upstream ({type(first).__name__}; local {where});"
                         f" sending again without it")

    def _keep_acked_prefix(self, flight: _InFlight,
                           failed: list[tuple[list[RawRecord], BaseException]]) -> None:
        """At least once, what the cluster acked of a failed batch stays replicated: per local
        partition, every record below the first one in a failed record batch was in a record
        batch that succeeded. The restart from the local group then re-sends only the rest."""
        first: dict[tuple[str, int], int] = {}
        for members, _ in failed:
            for r in members:
                key = (r.topic, r.partition)
                first[key] = min(first.get(key, r.offset), r.offset)
        acked: dict[TopicPartition, int] = {}
        for r in flight.batch:
            if r.offset < first.get((r.topic, r.partition), r.offset + 1):
                tp = TopicPartition(r.topic, r.partition)
                acked[tp] = max(acked.get(tp, 0), r.offset + 1)
                self._records_total += 1
        self._replicated = {**self._replicated, **acked}
        self._uncommitted.update(acked)
