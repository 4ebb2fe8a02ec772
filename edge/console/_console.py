"""The console's shared state: the log reads, live updates, sparklines and cached figures.

One ``Console`` per service, whatever listeners serve it (``HttpServer``): started
with the service, closed after its listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from broker import LogConfig
from edge.console._live import LiveHub, sse_event
from edge.console._overview import (
    SPARK_BUCKET_S,
    SPARK_BUCKETS,
    ConsoleSource,
    Sparklines,
    build_overview,
)
from edge.console._reads import LogReads, now_ms
from edge.console._streamsinfo import alert_topics

log = logging.getLogger("edge.console")

__all__ = ["Console"]

_T = TypeVar("_T")
#: How long a topic's oldest record time (one query per partition) is reused.
TOPICS_CACHE_S = 10.0
#: How often open pages get the overview.
OVERVIEW_EVERY_S = 1.0


class Console:
    """``await start()``, serve, ``await close()``."""

    def __init__(self, source: ConsoleSource, log_config: LogConfig,
                 health_token: Callable[[], str | None]) -> None:
        self.source = source
        self.reads = LogReads(log_config)
        self.spark = Sparklines()
        self.hub = LiveHub(self.reads, Path(log_config.data_dir) / "log.notify", self._live_topics)
        self._health_token = health_token
        self._oldest: dict[str, tuple[float, int | None]] = {}  # touched in the reads' threads
        self._tasks: list[asyncio.Task[None]] = []
        self._overview_task: asyncio.Task[None] | None = None

    # Why the console's tasks (these, the overview's and LiveHub's) are not the service's
    # TaskGroup's: the console outlives that group. /health and the pages are served before
    # the group starts the devices and until after it has stopped them (a shutdown is
    # watched through /health), and a console failure must not cancel the devices, as a
    # failed task in the group would. So the console owns them: each catches and logs its
    # own failures, _seen logs anything that escapes, and close() cancels and awaits them.
    async def start(self) -> None:
        self._tasks.append(_owned(self._sample(), "console-spark"))

    async def close(self) -> None:
        await self.hub.close()
        for t in [*self._tasks, *([self._overview_task] if self._overview_task else [])]:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await asyncio.to_thread(self.reads.close)

    async def in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in the reads' pool (bounded like the log reads)."""
        return await self.reads.run(lambda _consumer: fn(*args))

    # -- cached figures -----------------------------------------------------------------------

    async def topics(self) -> list[dict[str, Any]]:
        return await self.reads.run(self.reads.topics, self._oldest, TOPICS_CACHE_S)

    async def overview(self) -> dict[str, Any]:
        # The topics' figures are housekeeping's (read once a second anyway); only their
        # oldest record times are the console's, queried when missing or older than 10 s.
        now = time.monotonic()
        if any(name not in self._oldest or self._oldest[name][1] is None
               or now - self._oldest[name][0] > TOPICS_CACHE_S
               for name, t in self.source.log_info.get("topics", {}).items() if t["records"]):
            await self.topics()
        oldest = {name: at for name, (_, at) in self._oldest.items()}
        if self.source.cfg.streams:
            # In a thread: the topologies' lag is read from the log.
            return await self.in_thread(build_overview, self.source, self.spark, oldest)
        return build_overview(self.source, self.spark, oldest)  # in-memory figures only

    async def health(self, show_values: bool | None) -> dict[str, Any]:
        # In a thread: the topologies' status reads the log (a cost that grows with it). Not
        # the pages' pool: a scraper's /health does not wait behind a page's long read.
        return await asyncio.to_thread(self.source.health, show_values)

    def health_token_shown(self, request: web.Request) -> bool | None:
        """True when the request carries the [health] token (values shown), else None."""
        token = self._health_token()
        if not token:
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                token.encode())
        return True if ok else None

    # -- live -----------------------------------------------------------------------------------

    def _live_topics(self) -> tuple[dict[str, str], list[str]]:
        cfg = self.source.cfg
        return {d.topic: d.kind for d in cfg.devices}, alert_topics(cfg.streams)

    def overview_wanted(self) -> None:
        """A page opened the stream: send it the overview each second while any is open."""
        if self._overview_task is None or self._overview_task.done():
            self._overview_task = _owned(self._send_overview(), "console-overview")

    async def _send_overview(self) -> None:
        while self.hub.subscribers:
            t0 = time.monotonic()
            try:
                self.hub.publish(sse_event("overview", await self.overview()))
            except Exception as exc:  # the next second tries again
                log.warning("console: overview failed: %s", exc)
            await asyncio.sleep(max(0.0, OVERVIEW_EVERY_S - (time.monotonic() - t0)))

    async def _sample(self) -> None:
        self.spark.sample({name: r.readings for name, (r, _) in self.source.runners.items()})
        try:  # the 5 minutes before this first sample, from the log, once
            await self._fill_sparklines(now_ms())
        except Exception as exc:  # the lines then start empty, as they did before
            log.warning("console: sparklines not filled from the log: %s", exc)
        while True:
            await asyncio.sleep(SPARK_BUCKET_S)
            self.spark.sample({name: r.readings for name, (r, _) in self.source.runners.items()})

    async def _fill_sparklines(self, until_ms: int) -> None:
        """Each device's readings per bucket over the last 5 minutes, by record time.

        A topic of one device counts all its records; one several devices share counts
        the device's key (its name, as the readings API does). A device that sends its own
        time is counted by that time, so a device clock far off leaves its line short."""
        devices = self.source.cfg.devices
        sharing: dict[str, int] = {}
        for d in devices:
            sharing[d.topic] = sharing.get(d.topic, 0) + 1
        bucket_ms = SPARK_BUCKET_S * 1000
        since = until_ms - SPARK_BUCKETS * bucket_ms
        for d in devices:
            key = None if sharing[d.topic] == 1 else d.name.encode()
            counts = await self.reads.run(self.reads.counts, d.topic, key, since, until_ms,
                                          bucket_ms)
            self.spark.fill(d.name, counts)


def _owned(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    task.add_done_callback(_seen)
    return task


def _seen(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("console: %s failed", task.get_name(), exc_info=task.exception())
