"""``Uplink``: replicate the local log to an upstream Kafka cluster with aiokafka."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    ProducerFenced,
)
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as UpTP

from broker import RawRecord, TopicPartition, default_partition

from . import _aiokafka_private as _private
from ._backoff import Backoff
from ._checkpoint import CheckpointClock, checkpoint_offsets, read_checkpoint, refresh_interval_s
from ._config import UplinkConfig
from ._diagnose import diagnose_connect
from ._errors import FencedError, UplinkConfigError, UplinkError, UplinkLockedError, UpstreamError
from ._fence import FenceLease, LocalLock
from ._local import LocalSide, record_bytes
from ._pacing import TransactionPacer
from ._quiet import quiet_aiokafka
from ._refusal import RecordRefusals
from ._resend import settle
from ._resume import scan_upstream
from ._secrets import mask, register_secrets
from ._status import PartitionLag, Rate, UplinkState, UplinkStatus
from ._topics import UpstreamTopics

__all__ = ["Uplink"]

log = logging.getLogger("edge.uplink")

_POLL_S = 0.5
_PROBE_EVERY_S = 1.0
_ABANDON_GRACE_S = 0.5    # for a producer's sender to stop before its connections are closed
_PROBE_TIMEOUT_S = 3.0    # metadata on a healthy cluster takes milliseconds
_TOPIC_RETRY_S = 30.0     # creating an upstream topic the cluster refused, again
_LAG_REFRESH_S = 1.0
_LOCAL_COMMIT_S = 0.5
_WINDOW = 4
_KEY_CACHE_MAX = 100_000   # keys are device ids: few, so their partitions are worth remembering
_HEADER_CACHE_MAX = 10_000  # header texts repeat (a device's source, a codec's name)
_ENCODE_SLICE = 250         # records encoded between two looks at the event loop
_SIZE_MARGIN = 1024         # bytes a record's encoding takes beyond its stored sizes, at most
# The checkpoint's AddOffsetsToTxn can be in progress at the coordinator when the records'
# partition leader asks it whether their partition is in the transaction (Kafka >= 3.6
# verifies); the leader then refuses the records with NOT_ENOUGH_REPLICAS, a retriable
# error, and aiokafka's default 100 ms backoff cost a one-broker transaction several times
# its length, about one in seven. 20 ms is what aiokafka waits on CONCURRENT_TRANSACTIONS.
_RETRY_BACKOFF_MS = 20


class _InFlight:
    """A batch handed to the producer: its per-partition batch futures (with the records in
    each), the checkpoint write (exactly once), dead letters and next local offsets."""

    def __init__(self, batch: list[RawRecord], orphans: list[asyncio.Task[None]]) -> None:
        self.batch = batch
        self._orphans = orphans
        self.futures: list[tuple[asyncio.Future[Any], list[RawRecord]]] = []
        self.offsets: asyncio.Task[None] | None = None
        self.dead: list[tuple[RawRecord, str]] = []
        self.updates: dict[TopicPartition, int] = {}
        self.nbytes = 0
        self.ready_at = 0.0   # time.monotonic() when it could have started (exactly once)
        self.checkpointed: set[str] = set()   # local topics whose checkpoint it writes

    async def cancel(self) -> None:
        """Settle a failed batch: the errors its record batches and checkpoint write end with
        (now or when the producer is closed) are seen, not left to be reported as "Future
        exception was never retrieved". The checkpoint write is not cancelled here but once
        its producer is closed (``Uplink._close_upstream``): aiokafka awaits its own future
        under ``asyncio.shield``, and a cancelled shield leaves that future's later error
        (a fenced producer's) unread."""
        for future, _ in self.futures:
            future.add_done_callback(_seen)
        if self.offsets is not None:
            self.offsets.add_done_callback(_seen)
            if not self.offsets.done():
                self._orphans.append(self.offsets)
            self.offsets = None


class _Prepared:
    """A batch read from the local log and encoded, not yet handed to the producer: its
    record batches in the order they must be sent, dead letters, next local offsets, bytes."""

    def __init__(self, batch: list[RawRecord]) -> None:
        self.batch = batch
        self.shipments: list[tuple[str, int, BatchBuilder, list[RawRecord]]] = []
        self.dead: list[tuple[RawRecord, str]] = []
        self.updates: dict[TopicPartition, int] = {}
        self.nbytes = 0


_FENCED = (ProducerFenced, InvalidProducerEpoch)


class _Isolating(UpstreamError):
    """The cluster refused a record batch for good: start again from the checkpoint, with
    the batch's records sent alone or the refused one dead-lettered (``RecordRefusals``)."""


def _translate(exc: BaseException, what: str) -> UplinkError:
    """aiokafka's and the socket layer's errors, as ours (the one place that does it)."""
    if isinstance(exc, UplinkError):
        return exc
    if isinstance(exc, _FENCED):
        return FencedError(f"{what}: fenced by a newer uplink with the same edge id ({exc!r})")
    return UpstreamError(f"{what}: {type(exc).__name__}: {exc}")


class Uplink:
    """Replicates the configured local topics upstream until ``stop()``.

    ``await uplink.run()`` runs in the caller's task; ``async with Uplink(cfg)``
    runs it in a background task and stops it on exit.  Reads of the local
    log run in one dedicated thread, never on the event loop.  Upstream
    failures are retried forever with exponential backoff (state
    ``offline``); being fenced by another uplink with the same edge id ends
    ``run()`` with state ``fenced``.
    """

    def __init__(self, config: UplinkConfig) -> None:
        self.config = config
        register_secrets(config.sasl_password, config.ssl_key_password)
        self._ssl_context = ssl_context(config)
        self._state = UplinkState.STARTING
        self._states_seen: list[UplinkState] = [UplinkState.STARTING]
        self._stop = asyncio.Event()
        self._last_error: str | None = None
        self._rate = Rate()
        self._records_total = 0
        self._bytes_total = 0
        self._dead = 0
        self._replicated: dict[TopicPartition, int] = {}
        self._lag: list[PartitionLag] = []
        self._refusals = RecordRefusals()
        self._orphans: list[asyncio.Task[None]] = []   # checkpoint writes of failed batches
        self._topic_refusals: dict[str, str] = {}   # upstream topic -> why it cannot be created
        self._topics_tried_at = 0.0
        self._missing_topics: list[str] = []
        self._key_partition: dict[tuple[bytes, int], int] = {}
        self._keyless_next = 0
        self._edge_header = ("edge.id", config.edge_id.encode())
        # Below this many stored bytes a record cannot exceed max_request_bytes, headers
        # added upstream included (stored header text is at least as long as its bytes).
        self._measure_above = config.max_request_bytes - _SIZE_MARGIN - len(self._edge_header[1])
        self._partition_headers: dict[int, tuple[str, bytes]] = {}
        self._header_lists: dict[str | None, tuple[tuple[str, bytes | None], ...]] = {}
        self._upstream = {m.local: m.upstream for m in config.topic_mappings}
        self._topics = UpstreamTopics(config.topic_mappings)
        self._checkpoints = CheckpointClock()
        self._lock = LocalLock(config.data_dir, config.edge_id)
        self._lease: FenceLease | None = None
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._local: LocalSide | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._bucket_t = time.monotonic()
        self._bucket = 0.0
        self._uncommitted: dict[TopicPartition, int] = {}
        self._last_local_commit = 0.0
        self._local_commit: asyncio.Future[None] | None = None
        self._pacer = TransactionPacer()
        self._committed_at = 0.0
        self._resending: dict[TopicPartition, int] = {}   # re-sends under way -> their end

    def __repr__(self) -> str:
        return f"<Uplink edge_id={self.config.edge_id!r} state={self._state.value}>"

    # -- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run()`` to finish its current batch and return; safe to call twice."""
        self._stop.set()

    async def __aenter__(self) -> Uplink:
        self._task = asyncio.create_task(self.run(), name=f"uplink-{self.config.edge_id}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._task is not None:
            await self._task

    def _set_state(self, state: UplinkState, why: str | None = None) -> None:
        """Change state with one log line (the cause, if any); the same state again logs
        nothing: the line is per change, not per failed attempt."""
        if state != self._state:
            level = logging.WARNING if state == UplinkState.OFFLINE else logging.INFO
            log.log(level, "uplink %s: %s -> %s%s", self.config.edge_id, self._state.value,
                    state.value, f": {why}" if why else "")
            self._state = state
            self._states_seen.append(state)

    # The producer and admin client live from _connect() to _close_upstream(), the local
    # side for run(); every step that uses them runs in between, so None is a bug of ours.
    @property
    def _connected_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise UplinkError("the uplink has no upstream producer: it is not connected")
        return self._producer

    @property
    def _connected_admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise UplinkError("the uplink has no upstream admin client: it is not connected")
        return self._admin

    @property
    def _open_local(self) -> LocalSide:
        if self._local is None:
            raise UplinkError("the uplink's local side is not open: it is not running")
        return self._local

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self) -> None:
        """Replicate until ``stop()`` (or until fenced). Raises only for local-log failures
        (``UplinkConfigError`` for a data dir that holds no log)."""
        if self._running:
            raise UplinkError("this Uplink is already running")
        self._running = True
        quiet_aiokafka()
        await _private.can_abandon()  # probed now: an aiokafka that fails it is said at start
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"uplink-{self.config.edge_id}")
        try:
            self._local = await self._in_thread(LocalSide, self.config)
            try:
                await self._in_thread(self._lock.acquire)   # after the log made the directory
            except UplinkLockedError as exc:
                self._last_error = str(exc)
                raise
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._lag_loop())
                replicating = tg.create_task(self._replicate())
                tg.create_task(self._stop_watch(replicating))
        finally:
            if self._local is not None:
                await self._in_thread(self._local.close)
            await self._in_thread(self._lock.release)
            self._executor.shutdown(wait=True)
            if self._state != UplinkState.FENCED:
                self._set_state(UplinkState.STOPPED)
            self._running = False

    async def _replicate(self) -> None:
        try:
            await self._connect_loop()
        finally:
            self._stop.set()

    async def _stop_watch(self, replicating: asyncio.Task[None]) -> None:
        """After ``stop()``, give the current batch ``stop_timeout_s`` to finish, then
        abandon it: a frozen cluster would hold it for ``request_timeout_s`` and more.
        Nothing is lost: exactly once, the open transaction is aborted when the next
        uplink fences this one; at least once, the records are sent again."""
        await self._stop.wait()
        done, _ = await asyncio.wait([replicating], timeout=self.config.stop_timeout_s)
        if not done:
            log.warning("uplink %s: stopping: the batch upstream did not finish within %.1f s"
                        " (stop_timeout_s); abandoned, it is sent again on the next start",
                        self.config.edge_id, self.config.stop_timeout_s)
            replicating.cancel()

    async def _connect_loop(self) -> None:
        c = self.config
        backoff = Backoff(c.backoff_initial_s, c.backoff_max_s)
        while not self._stop.is_set():
            clean = connected = False
            delay = c.backoff_initial_s
            records_before = self._records_total
            online_since: float | None = None
            try:
                async with asyncio.timeout(c.request_timeout_s * 2):
                    await self._connect()
                connected = True
                online_since = time.monotonic()
                self._online()
                await self._run_online()
                clean = True
            except FencedError as exc:
                self._last_error = str(exc)
                log.error("uplink %s: %s; stopping", c.edge_id, exc)
                self._set_state(UplinkState.FENCED)
                return
            except _Isolating as exc:
                # Progress, not a fault: the next attempt sends without what was refused.
                log.info("uplink %s: %s", c.edge_id, exc)
                continue
            except (TimeoutError, UpstreamError, KafkaError, OSError) as exc:
                delay = backoff.failed(self._records_total > records_before, None if online_since
                                       is None else time.monotonic() - online_since)
                await self._offline(exc, connected, delay)
            finally:
                await self._close_upstream(clean)
            if self._stop.is_set():
                return
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass

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

    # -- upstream connection ------------------------------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        c = self.config
        opts: dict[str, Any] = {
            "bootstrap_servers": c.bootstrap_servers,
            "client_id": f"edge-uplink-{c.edge_id}",
            "request_timeout_ms": int(c.request_timeout_s * 1000),
            "security_protocol": c.security_protocol,
        }
        if self._ssl_context is not None:
            opts["ssl_context"] = self._ssl_context
        if c.security_protocol.startswith("SASL"):
            opts.update(sasl_mechanism=c.sasl_mechanism, sasl_plain_username=c.sasl_username,
                        sasl_plain_password=c.sasl_password)
        return opts

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

    async def _resume_resends(self, usual: dict[TopicPartition, int] | None
                              ) -> dict[TopicPartition, int] | None:
        """Where the partitions with a re-send under way resume instead (``_resend.py``),
        over ``usual`` (None: the local commits); their commits settled before any send."""
        local = self._open_local
        resends = await self._in_thread(local.resends)
        if not resends:
            self._resending = {}
            return usual
        if usual is None:
            usual = await self._in_thread(local.committed_positions)
        positions, store = settle(resends, usual)
        self._resending = await self._in_thread(local.keep_resends, positions, store)
        if self._resending:
            log.info("uplink %s: sending again %s", self.config.edge_id,
                     ", ".join(f"{tp.topic}[{tp.partition}] from {positions[tp]} to {end}"
                               for tp, end in sorted(self._resending.items())))
        return {**usual, **positions}

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

    async def _resume_positions(self, checkpoint: dict[TopicPartition, int]
                                ) -> dict[TopicPartition, int]:
        """Where each local partition resumes (exactly once): the checkpoint, never below
        what is known to be upstream (the local group's commits, what this process saw
        committed); a topic whose checkpoint is gone (expired while the box was away) is
        looked up in the upstream topic's headers (``_resume.py``)."""
        floor = await self._in_thread(self._open_local.committed_positions)
        for tp, off in self._replicated.items():
            floor[tp] = max(off, floor.get(tp, 0))
        out = dict(floor)
        have = {tp.topic for tp in checkpoint}
        for topic in {tp.topic for tp in floor} - have:
            # A topic with no local commit was never replicated by this log: nothing to find
            # (and a box re-imaged with the same edge id must not skip its new records).
            parts = {tp.partition: off for tp, off in floor.items() if tp.topic == topic}
            upstream = self._upstream[topic]
            found = await scan_upstream(self._client_options(), self.config.edge_id, upstream,
                                        len(await self._connected_producer.partitions_for(upstream)), parts,
                                        self.config.resume_scan_records)
            log.info("uplink %s: no checkpoint upstream for %r; resuming after the last records"
                     " found upstream %s (local commits %s)", self.config.edge_id, topic,
                     found, parts)
            for p, off in found.items():
                tp = TopicPartition(topic, p)
                out[tp] = max(off, out.get(tp, 0))
        for tp, off in checkpoint.items():
            out[tp] = max(off, out.get(tp, 0))
        # Upstream says more was sent than this log ever held: it was another log under our
        # edge id (a box re-imaged or its topic recreated), whose offsets say nothing here;
        # trusting them would skip this log's records silently.
        ends = await self._in_thread(self._open_local.end_offsets)
        for tp, off in out.items():
            if tp in ends and off > ends[tp]:
                log.warning("uplink %s: upstream has %s up to offset %d but this log ends at %d:"
                            " it came from another log with this edge id; sending %s from"
                            " offset %d (the local commit)", self.config.edge_id, tp, off,
                            ends[tp], tp, floor.get(tp, 0))
                out[tp] = floor.get(tp, 0)
        return out

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

    # -- replicating --------------------------------------------------------------------------

    async def _run_online(self) -> None:
        """Replicate (``_pump``) while a probe asks the cluster for metadata each second: a
        cluster that went away is noticed within ``_PROBE_TIMEOUT_S`` + 1 s, not after
        ``request_timeout_s`` (aiokafka waits that long, or for ever inside a transaction,
        and an idle uplink would not notice at all)."""
        pump = asyncio.create_task(self._pump(), name="uplink-pump")
        probe = asyncio.create_task(self._probe(), name="uplink-probe")
        try:
            done, _ = await asyncio.wait([pump, probe], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (probe, pump):
                if not task.done():
                    task.cancel()
            await asyncio.gather(probe, pump, return_exceptions=True)
        (pump if pump in done else probe).result()   # the pump's end, or the probe's error

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

    async def _bounded(self, step: Any) -> Any:
        # aiokafka waits for an unreachable cluster forever inside a transaction; a step
        # that takes longer than this is given up and retried from the checkpoint.
        try:
            async with asyncio.timeout(self.config.request_timeout_s):
                return await step
        except TimeoutError as exc:
            raise UpstreamError(f"upstream did not answer within {self.config.request_timeout_s} s"
                                ) from exc

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

    async def _prepare(self, batch: list[RawRecord]) -> _Prepared:
        """Encode a batch into record batches, one per upstream partition (more when full).

        Records go in per-partition record batches (``create_batch``/``send_batch``): one
        future per partition instead of one per record, and the partition is chosen here
        with Kafka's murmur2, so a key lands where the producer's own partitioner would put it.
        This runs while the previous batch is upstream, so it only encodes: the producer
        takes the record batches in ``_send``.
        """
        c = self.config
        prepared = _Prepared(batch)
        if not batch:
            return prepared
        counts: dict[str, int] = {}
        new = [t for t in {r.topic for r in batch} if not self._topics.ensured(t)]
        if new:   # a local topic made since the connect: its upstream topic first
            await self._bounded(self._ensure_topics(new))
            refused = [t for t in new if self._upstream[t] in self._topic_refusals]
            if refused:   # read before it was excluded: start again without it
                raise _Isolating(f"upstream topic of {', '.join(refused)} cannot be created;"
                                 f" replicating the other topics")
        for local in {r.topic for r in batch}:
            upstream = self._upstream[local]
            counts[local] = len(await self._bounded(self._connected_producer.partitions_for(upstream)))
        keyless = self._keyless_next
        self._keyless_next += 1
        open_batches: dict[tuple[str, int], tuple[BatchBuilder, list[RawRecord]]] = {}
        shipments = prepared.shipments
        nbytes = 0
        for i, r in enumerate(batch):
            if i and not i % _ENCODE_SLICE:
                await asyncio.sleep(0)  # let the producer's responses in between
            reason = self._refusals.reason(r)
            headers = self._headers(r)
            size = record_bytes(r)
            nbytes += size
            if reason is None and size > self._measure_above:
                # Only a record near the limit is measured exactly: that costs per record.
                size = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, headers)
                if size > c.max_request_bytes:
                    reason = (f"MessageSizeTooLargeError: the record is {size} bytes, more than"
                              f" max_request_bytes ({c.max_request_bytes})")
            if reason is not None:
                prepared.dead.append((r, reason))
                continue
            topic, n = self._upstream[r.topic], counts[r.topic]
            part = keyless % n if r.key is None else self._partition_of(r.key, n)
            slot = (topic, part)
            if self._refusals.solo(r):
                if slot in open_batches:   # what came before it goes first: order per key
                    shipments.append((topic, part, *open_batches.pop(slot)))
                shipments.append((topic, part, self._batch_of(r, headers), [r]))
                continue
            entry = open_batches.get(slot)
            if entry is None or entry[0].append(
                    timestamp=r.timestamp, key=r.key, value=r.value, headers=headers) is None:
                if entry is not None:   # full: it goes first, start the next one
                    shipments.append((topic, part, *entry))
                entry = open_batches[slot] = (self._batch_of(r, headers), [])
            entry[1].append(r)
        shipments.extend((topic, part, builder, members)
                         for (topic, part), (builder, members) in open_batches.items())
        last: dict[tuple[str, int], int] = {}
        for r in batch:
            last[(r.topic, r.partition)] = r.offset + 1
        prepared.updates = {TopicPartition(t, p): o for (t, p), o in last.items()}
        prepared.nbytes = nbytes
        return prepared

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

    def _batch_of(self, r: RawRecord, headers: list[tuple[str, bytes | None]]) -> BatchBuilder:
        """A new record batch holding ``r`` (a first record always fits)."""
        builder = self._connected_producer.create_batch()
        builder.append(timestamp=r.timestamp, key=r.key, value=r.value, headers=headers)
        return builder

    async def _ship(self, flight: _InFlight, topic: str, partition: int, builder: BatchBuilder,
                    members: list[RawRecord]) -> None:
        builder.close()
        future = await self._connected_producer.send_batch(builder, topic, partition=partition)
        flight.futures.append((future, members))

    def _partition_of(self, key: bytes, partitions: int) -> int:
        slot = (key, partitions)
        part = self._key_partition.get(slot)
        if part is None:
            if len(self._key_partition) >= _KEY_CACHE_MAX:
                self._key_partition.clear()
            part = self._key_partition[slot] = default_partition(key, partitions)
        return part

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

    def _headers(self, r: RawRecord) -> list[tuple[str, bytes | None]]:
        # The stored header text is decoded once per distinct text: decoding it for every
        # record was the larger part of reading the local log.
        stored = self._header_lists.get(r.header_text)
        if stored is None:
            if len(self._header_lists) >= _HEADER_CACHE_MAX:
                self._header_lists.clear()
            stored = self._header_lists[r.header_text] = tuple(r.decoded_headers())
        part = self._partition_headers.get(r.partition)
        if part is None:
            part = self._partition_headers[r.partition] = ("edge.partition",
                                                           str(r.partition).encode())
        # A header whose value is None stays a null header upstream, as Kafka allows.
        return [*stored, self._edge_header, part, ("edge.offset", str(r.offset).encode())]

    # -- status -------------------------------------------------------------------------------

    async def _lag_loop(self) -> None:
        while not self._stop.is_set():
            if self._local is not None:
                self._lag = await self._in_thread(self._local.lag, dict(self._replicated),
                                                  int(time.time() * 1000))
                missing = await self._in_thread(self._local.missing_topics)
                if missing != self._missing_topics:
                    self._missing_topics = missing
                    if missing:   # the appliance makes a topic at its first record: not an error
                        log.info("uplink %s: %s", self.config.edge_id, self._missing_text())
            try:
                await asyncio.wait_for(self._stop.wait(), _LAG_REFRESH_S)
            except TimeoutError:
                pass

    @property
    def state(self) -> UplinkState:
        return self._state

    def status(self) -> UplinkStatus:
        """A snapshot: state, lag per partition (refreshed each second), rates, last error."""
        rps, bps = self._rate.rates()
        error = self._last_error
        if error is None and self._topic_refusals:
            error = "; ".join(self._topic_refusals.values())
        return UplinkStatus(self._state, list(self._lag), rps, bps, self._records_total,
                            self._bytes_total, self._dead, error, list(self._states_seen),
                            partition_mismatches=list(self._topics.mismatches.values()),
                            refused_topics=dict(self._topic_refusals),
                            missing_topics=list(self._missing_topics),
                            resending=self._resending_now())

    def _resending_now(self) -> dict[TopicPartition, tuple[int, int]]:
        """Re-sends not yet past their end: partition -> (position, end)."""
        out = {}
        for tp, end in self._resending.items():
            at = self._replicated.get(tp, 0)
            if at < end:
                out[tp] = (at, end)
        return out

    def _missing_text(self) -> str:
        return (f"local topic(s) {', '.join(map(repr, self._missing_topics))} do not exist (yet)"
                f" in {self.config.data_dir}; replicated once created (check the names in topics)")


def ssl_context(config: UplinkConfig) -> ssl.SSLContext | None:
    """The TLS context of ``config`` for SSL and SASL_SSL, None otherwise (built once: a bad
    file is an UplinkConfigError). Public so the control channel connects as the uplink does."""
    c = config
    if c.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        ctx = ssl.create_default_context(cafile=c.ssl_cafile)
    except (OSError, ValueError) as exc:
        raise UplinkConfigError("ssl_cafile", f"a PEM file of CA certificates ({exc})",
                                c.ssl_cafile) from exc
    if c.ssl_certfile:
        try:
            ctx.load_cert_chain(c.ssl_certfile, c.ssl_keyfile, c.ssl_key_password)
        except (OSError, ValueError) as exc:
            raise UplinkConfigError("ssl_certfile", f"a PEM certificate whose key is in ssl_keyfile"
                                    f" or in the same file ({exc})", c.ssl_certfile) from exc
    return ctx


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


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
