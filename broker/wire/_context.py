"""What a handler reaches: the server's context (the log, its clients, settings) and its connection."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._admin import KafkaAdminClient
from .._log import Log
from .._producer import KafkaProducer
from ._config import ListenerConfig
from ._metrics import ListenerMetrics
from ._registry import Registry

T = TypeVar("T")

#: The box is broker 0 of a one-broker cluster, and its controller.
NODE_ID = 0

_conn_ids = itertools.count(1)


#: SQLite page cache of each listener I/O thread's log connection, KiB (see _small_page_cache).
WIRE_CACHE_KIB = 256


@dataclass
class Connection:
    """One client connection; ``state`` holds what other modules keep per connection
    (SASL: whether it authenticated, and as whom)."""

    peer: str
    id: int = field(default_factory=lambda: next(_conn_ids))
    client_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


class ServerContext:
    """Shared by every handler of one server.

    ``log``: the open log (shared with the service, the Python API and the CLIs in this
    process).  ``admin`` and ``producer``: the broker's own clients over it; produce goes
    through ``producer`` so its records are group-committed with everything else.
    ``extensions``: per-module state, keyed by the module's name (the group coordinator
    keeps its groups here).  Blocking work (SQLite reads, admin writes) goes through
    ``run_blocking``, never on the event loop.
    """

    def __init__(self, config: ListenerConfig, admin: KafkaAdminClient, producer: KafkaProducer,
                 log: Log, registry: Registry, metrics: ListenerMetrics) -> None:
        self.config = config
        self.admin = admin
        self.producer = producer
        self.log = log
        self.registry = registry
        self.metrics = metrics
        self.node_id = NODE_ID
        self.advertised_host = config.advertised_host or config.host
        self.advertised_port = config.advertised_port or config.port
        self.cluster_id = cluster_id_for(str(log.config.data_dir))
        self.extensions: dict[str, Any] = {}
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wire-io",
                                            initializer=self._small_page_cache)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_close: list[Callable[[], None]] = []

    def _small_page_cache(self) -> None:
        """The I/O threads' log connections keep WIRE_CACHE_KIB of SQLite pages, not 2 MiB.

        A fetch reads pages once, in order, just after they were committed: the OS's page
        cache serves them as well, and SQLite's own default cache cost 2 MiB of RSS per
        thread once a consumer had read 2 MiB of records."""
        self.log.reader().execute(f"PRAGMA cache_size=-{WIRE_CACHE_KIB}")

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` when the server closes (after its tasks are cancelled)."""
        self._on_close.append(fn)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the listener's I/O threads, awaited."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def start_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task owned by the server: cancelled at close, its failure logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            import logging

            logging.getLogger("broker.wire").error(
                "listener task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for fn in reversed(self._on_close):
            fn()
        self._executor.shutdown(wait=True)


def cluster_id_for(data_dir: str) -> str:
    """A stable 22-character cluster id (Kafka's form: a base64url UUID) for one log."""
    digest = hashlib.sha256(os.path.realpath(data_dir).encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
