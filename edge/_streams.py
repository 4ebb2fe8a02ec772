"""The service's stream processors: one supervised ``StreamsRunner`` per ``[[streams]]`` topology.

A ``TopologySupervisor`` builds its topology afresh, runs it over the local
log and, when it fails (a storage error the runner does not retry, a fenced
runner, a bug), reports it and starts it again with backoff, like a device.
Nothing is lost by a restart: the runner resumes from its committed offsets
and state. Stopping lets the current batch commit; what is not processed yet
is processed exactly once at the next start.

Each runner registers its input group as protected on its source topics, so
retention keeps input not processed yet; ``release_removed_topologies``
(edge/_topology_holds.py, re-exported here)
lifts that for topologies taken out of the config, which would otherwise
hold their input topics' retention for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from broker import LogConfig
from devices import STREAMS_RESTART, Backoff, Failure, supervise
from edge._topology_holds import release_removed_topologies
from edge.streams import StreamsRunner
from edge.streams._config import TopologyConfig, build_topology

log = logging.getLogger("edge.streams")

__all__ = ["StreamsCollector", "TopologySupervisor", "release_removed_topologies"]

class TopologySupervisor:
    """Runs one configured topology until ``stop()``, restarting it with backoff on failure."""

    def __init__(self, cfg: TopologyConfig, log_config: LogConfig, dead_letter_topic: str,
                 backoff: Backoff = STREAMS_RESTART) -> None:
        self.cfg = cfg
        self.log_config = log_config
        self.dead_letter_topic = dead_letter_topic
        self.state = "starting"
        self.restarts = 0
        self.last_error: str | None = None
        self.runner: StreamsRunner | None = None
        self._stopping = asyncio.Event()
        self._backoff = backoff

    def _open(self) -> StreamsRunner:
        return StreamsRunner(build_topology(self.cfg), self.log_config,
                             dead_letter_topic=self.dead_letter_topic,
                             late_topic=self.cfg.late_topic)

    async def run(self) -> None:
        """Run until ``stop()``; failures are logged, counted and retried with backoff."""
        await supervise(self._run_once, name=f"streams {self.cfg.name}", stop=self._stopping,
                        backoff=self._backoff, on_failure=self._failed)
        self.state = "stopped"

    async def _run_once(self) -> None:
        runner: StreamsRunner | None = None
        try:
            # Opening reads committed state and offsets from SQLite: not on the loop.
            runner = self.runner = await asyncio.to_thread(self._open)
            if self._stopping.is_set():
                return
            self.state = "running"
            log.info("streams %s: running (group %s)", self.cfg.name, runner.group_id)
            await runner.run()
            if not self._stopping.is_set():
                raise RuntimeError("the runner returned without being stopped")
        finally:
            if runner is not None:
                await asyncio.to_thread(runner.close)

    def _failed(self, failure: Failure) -> None:
        self.last_error = failure.error
        self.restarts += 1
        self.state = "failed"

    def stop(self) -> None:
        """Ask ``run()`` to return once the current batch is committed. Idempotent."""
        self._stopping.set()
        if self.runner is not None:
            self.runner.stop()

    def health(self) -> dict[str, Any]:
        """State, restarts, last error and the runner's counters and lag."""
        out: dict[str, Any] = {"ok": self.state == "running", "state": self.state,
                               "restarts": self.restarts, "last_error": self.last_error}
        runner = self.runner
        if runner is not None and self.state == "running":
            try:
                st = runner.status()
            except Exception as exc:  # health must answer whatever the runner does
                out["status_error"] = f"{type(exc).__name__}: {exc}"
            else:
                out.update(group_id=st.group_id, records_in=st.records_in,
                           records_out=st.records_out, lag_records=st.lag, late=st.late,
                           dead_lettered=st.dead_lettered, runner_last_error=st.last_error)
        return out


class StreamsCollector:
    """Prometheus metrics of the supervised topologies, read from their health at each scrape.

    Counters count since the topology's runner last started (a restart resets them, which
    Prometheus' ``rate()`` handles as a counter reset).
    """

    def __init__(self, supervisors: Callable[[], dict[str, TopologySupervisor]]) -> None:
        self._supervisors = supervisors

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("edge_streams_up", "1 when the topology's runner is running",
                               labels=["topology"])
        lag = GaugeMetricFamily("edge_streams_lag_records", "Input records not yet processed",
                                labels=["topology"])
        restarts = CounterMetricFamily("edge_streams_restarts", "Runner restarts after a failure",
                                       labels=["topology"])
        counters = {key: CounterMetricFamily(f"edge_streams_{key}", text, labels=["topology"])
                    for key, text in (
                        ("records_in", "Input records processed and committed"),
                        ("records_out", "Records written to sink topics"),
                        ("late", "Records later than a window's grace, written to the late topic"),
                        ("dead_lettered", "Records a processor failed on, dead-lettered"))}
        for name, sup in self._supervisors().items():
            h = sup.health()
            up.add_metric([name], 1 if h["ok"] else 0)
            restarts.add_metric([name], h["restarts"])
            if "records_in" in h:
                lag.add_metric([name], h["lag_records"])
                for key, family in counters.items():
                    family.add_metric([name], h[key])
        yield from (up, lag, restarts, *counters.values())
