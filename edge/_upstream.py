"""The uplink (edge.uplink) under the service: started when ``[upstream]`` is enabled,
started again by ``supervise()`` when it fails (a local-log error), stopped within the
shutdown bound. What is not yet upstream at a stop stays in the log (its group is
protected) and goes at the next start."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from devices import UPLINK_RESTART, Failure, stop_child, supervise
from edge._config import Config

log = logging.getLogger("edge")

__all__ = ["UplinkRunner"]


class UplinkRunner:
    """Runs the uplink until the service stops; ``health()`` is its part of /health."""

    def __init__(self, cfg: Config, stop: asyncio.Event, shutdown_timeout: float) -> None:
        self.cfg = cfg
        self.shutdown_timeout = shutdown_timeout
        self.uplink: Any = None  # an edge.uplink.Uplink while one runs
        self.error: str | None = None  # the last failure of the uplink's run()
        self._stop = stop
        self._task: asyncio.Task[None] | None = None

    def start(self, tg: asyncio.TaskGroup) -> None:
        """Start the uplink in ``tg`` when [upstream] is enabled and this build has it."""
        if not self.cfg.upstream.enabled:
            return
        try:
            from edge.uplink import Uplink
        except ImportError:
            log.warning("[upstream] is configured but this build has no uplink; events stay local")
            return
        uplink_cfg = self._uplink_config()

        async def run_once() -> None:
            self.uplink = Uplink(uplink_cfg)
            await self.uplink.run()

        self._task = tg.create_task(
            supervise(run_once, name="uplink", stop=self._stop, backoff=UPLINK_RESTART,
                      on_failure=self._failed), name="uplink")

    def _uplink_config(self) -> Any:
        from edge._config import uplink_topics
        from edge.uplink import UplinkConfig

        c = self.cfg
        settings = dict(c.upstream.settings)
        settings.setdefault("topics", uplink_topics(c.devices, c.log.dead_letter_topic))
        return UplinkConfig(edge_id=c.edge_id, data_dir=c.data_dir, **settings)

    def _failed(self, failure: Failure) -> None:
        self.error = failure.error  # reported in /health; devices keep flowing

    async def stop(self) -> None:
        """Let the uplink finish its current transaction and stop, within the shutdown bound."""
        if self._task is None or self.uplink is None:
            return
        await stop_child(self._task, self.uplink.stop, name="uplink", timeout=self.shutdown_timeout)

    async def restart(self, cfg: Config, tg: asyncio.TaskGroup,
                      rewind: dict[Any, int] | None = None) -> None:
        """Stop the running uplink (its current transaction finishes) and start one with
        ``cfg``'s [upstream]: how a desired config from the fleet reaches the uplink.
        ``rewind`` (local TopicPartition -> offset): partitions it sends again from there,
        up to where upstream stands (``edge.uplink.request_resend``); UplinkError if that
        cannot be stored."""
        if self._task is not None:
            task, uplink = self._task, self.uplink
            if uplink is not None:
                await stop_child(task, uplink.stop, name="uplink", timeout=self.shutdown_timeout)
            if not task.done():  # waiting out a backoff: nothing to finish
                task.cancel()
                await asyncio.wait([task])
        self.cfg, self.uplink, self.error, self._task = cfg, None, None, None
        if rewind:
            # Stored in the local log before the next uplink starts (none runs now): it is
            # carried on across its reconnects and a restart of the box until done.
            from edge.uplink import request_resend

            await asyncio.to_thread(request_resend, self._uplink_config(), dict(rewind))
        self.start(tg)

    def health(self) -> dict[str, Any] | None:
        """State, lag, throughput and the last error; None when [upstream] is off."""
        if self.uplink is None:
            if self._task is not None:  # (re)started, its Uplink not made yet
                return {"ok": False, "state": "starting", "lag_records": None, "last_error": None}
            if self.cfg.upstream.enabled:
                return {"ok": False, "state": "not available in this build"}
            return None
        try:
            st = self.uplink.status()
        except Exception as exc:  # health must answer whatever the uplink does
            return {"ok": False, "state": f"error: {exc}"}
        state = str(getattr(st.state, "value", st.state))
        return {"ok": state == "online", "state": state, "lag_records": st.lag_records,
                # The age of the oldest record not yet upstream (event time), over all partitions.
                "lag_s": round(max((p.seconds for p in st.lag), default=0.0), 1),
                "records_per_s": round(st.records_per_s, 1), "records_total": st.records_total,
                "dead_lettered": st.dead_lettered,
                "partition_mismatches": [str(m) for m in st.partition_mismatches],
                # rereplicate commands under way: "topic/partition" -> [next offset, end]
                "resending": {f"{tp.topic}/{tp.partition}": list(v)
                              for tp, v in getattr(st, "resending", {}).items()},
                "last_error": st.last_error or self.error}
