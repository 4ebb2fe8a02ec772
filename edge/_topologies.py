"""The service's stream topologies: one supervised task per ``[[streams]]`` topology.

Started with the service, stopped after intake (each commits its current
batch), and on SIGHUP stopped, started or restarted by name as the config
changed. The topologies' code (edge/_streams.py, edge.streams) is imported when
they start, not with the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from broker import LogConfig
from devices import stop_child
from edge._topology_holds import release_removed_topologies

if TYPE_CHECKING:
    from edge._streams import TopologySupervisor

log = logging.getLogger("edge")

__all__ = ["Topologies"]


class Topologies:
    """The running topologies by name, each a ``TopologySupervisor`` and its task."""

    def __init__(self, log_config: LogConfig, dead_letter_topic: str, registry: CollectorRegistry,
                 shutdown_timeout: float) -> None:
        self.log_config = log_config
        self.dead_letter_topic = dead_letter_topic
        self.shutdown_timeout = shutdown_timeout
        self.running: dict[str, tuple[TopologySupervisor, asyncio.Task[None]]] = {}
        self._registry = registry
        self._collected = False
        self._tg: asyncio.TaskGroup | None = None

    def __len__(self) -> int:
        return len(self.running)

    def start_all(self, tg: asyncio.TaskGroup, topologies: Sequence[Any]) -> None:
        """Start every configured topology in ``tg`` (blocks briefly: SQLite)."""
        self._tg = tg
        # Topologies gone from the config would keep their inputs from retention for ever.
        release_removed_topologies(self.log_config, [t.name for t in topologies])
        for t in topologies:
            self._start(t)

    def _start(self, t: Any) -> None:
        assert self._tg is not None, "start_all() first"
        from edge._streams import StreamsCollector, TopologySupervisor

        if not self._collected:
            self._registry.register(StreamsCollector(
                lambda: {name: sup for name, (sup, _) in self.running.items()}))
            self._collected = True
        sup = TopologySupervisor(t, self.log_config, self.dead_letter_topic)
        self.running[t.name] = (sup, self._tg.create_task(sup.run(), name=f"streams:{t.name}"))

    async def stop(self, name: str) -> None:
        """Stop one topology within the shutdown bound; nothing if it is not running."""
        if name not in self.running:
            return  # already stopped (a SIGHUP and a SIGTERM can cross)
        sup, task = self.running.pop(name)
        await stop_child(task, sup.stop, name=f"streams {name}", timeout=self.shutdown_timeout)

    async def stop_all(self) -> None:
        for sup, _ in self.running.values():
            sup.stop()  # all at once: each commits its current batch
        await asyncio.gather(*(self.stop(n) for n in list(self.running)))

    async def reload(self, topologies: Sequence[Any], stopping: Callable[[], bool]) -> None:
        """SIGHUP: stop the topologies that went or changed, start the new or changed ones."""
        wanted = {t.name: t for t in topologies}
        for name in list(self.running):
            running = self.running.get(name)  # a SIGTERM meanwhile may have stopped it
            if running is not None and (name not in wanted or wanted[name] != running[0].cfg):
                log.info("SIGHUP: stopping topology %s", name)
                await self.stop(name)
        await asyncio.to_thread(release_removed_topologies, self.log_config, list(wanted))
        for name, t in wanted.items():
            if stopping():
                return  # shutting down: start nothing the shutdown would not stop
            if name not in self.running:
                log.info("SIGHUP: starting topology %s", name)
                self._start(t)

    def health(self) -> dict[str, dict[str, Any]]:
        return {name: sup.health() for name, (sup, _) in self.running.items()}
