"""``Uplink``: replicate the local log to an upstream Kafka cluster with aiokafka.

This layer runs the parts: its lifecycle (``run``, ``stop``), the connect loop with its
backoff, and the status; the parts are its bases (``_base.py`` up to ``_sending.py``)."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from aiokafka.errors import KafkaError

from broker import TopicPartition

from . import _aiokafka_private as _private
from ._backoff import Backoff
from ._errors import FencedError, UplinkError, UplinkLockedError, UpstreamError
from ._local import LocalSide
from ._quiet import quiet_aiokafka
from ._sending import _Sending
from ._status import UplinkState, UplinkStatus
from ._translate import _Isolating

__all__ = ["Uplink"]

log = logging.getLogger("edge.uplink")

_LAG_REFRESH_S = 1.0


class Uplink(_Sending):
    """Replicates the configured local topics upstream until ``stop()``.

    ``await uplink.run()`` runs in the caller's task; ``async with Uplink(cfg)``
    runs it in a background task and stops it on exit.  Reads of the local
    log run in one dedicated thread, never on the event loop.  Upstream
    failures are retried forever with exponential backoff (state
    ``offline``); being fenced by another uplink with the same edge id ends
    ``run()`` with state ``fenced``.
    """

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
