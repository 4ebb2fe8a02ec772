"""The overview: every device, the log, the uplink and the topologies, from the service's state.

Built from what the service already keeps (its runners' counters, the log's
description that housekeeping reads once a second in a thread, the uplink's and the
topologies' status); the topics' oldest records come from ``LogReads``, cached.
``build`` reads the topologies' lag from the log, so it runs in a worker thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from edge._config import Config

__all__ = ["SPARK_BUCKET_S", "SPARK_BUCKETS", "ConsoleSource", "Sparklines", "build_overview"]

#: The sparkline: readings per 10 s over the last 5 minutes.
SPARK_BUCKET_S = 10
SPARK_BUCKETS = 30


class ConsoleSource(Protocol):
    """What the console reads of the running service (edge/_service.py's ``Service``)."""

    cfg: Config
    log_info: dict[str, Any]

    @property
    def runners(self) -> Mapping[str, tuple[Any, Any]]: ...

    def health(self, show_values: bool | None = None) -> dict[str, Any]: ...

    def metrics_registry(self) -> CollectorRegistry: ...

    def uplink_health(self) -> dict[str, Any] | None: ...

    def streams_health(self) -> dict[str, dict[str, Any]]: ...

    def clock_status(self) -> str: ...


class Sparklines:
    """Each device's reading counter sampled every ``SPARK_BUCKET_S``: the last 5 minutes' counts.

    Sampled from the runners' counters (``sample``, called by the console's 10 s tick),
    so drawing a sparkline reads nothing from the log."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[int]] = {}
        #: Counts per bucket read from the log at start, up to the first counter sample.
        self._history: dict[str, list[int]] = {}

    def fill(self, name: str, counts: list[int]) -> None:
        """The buckets before the first sample, read from the log (oldest first)."""
        self._history[name] = counts[-SPARK_BUCKETS:]

    def sample(self, counts: Mapping[str, int]) -> None:
        for name, n in counts.items():
            self._samples.setdefault(name, deque(maxlen=SPARK_BUCKETS + 1)).append(n)
        for gone in set(self._samples) - set(counts):
            del self._samples[gone]
            self._history.pop(gone, None)

    def of(self, name: str) -> list[int]:
        s = list(self._samples.get(name, ()))
        # A restarted runner starts its counter again: a drop counts as 0, not negative.
        counts = [max(0, b - a) for a, b in zip(s, s[1:], strict=False)]
        if len(counts) < SPARK_BUCKETS:  # the log's history until the counters fill the line
            counts = self._history.get(name, [])[-(SPARK_BUCKETS - len(counts)):] + counts
        return [0] * (SPARK_BUCKETS - len(counts)) + counts


def build_overview(src: ConsoleSource, spark: Sparklines,
                   topics_oldest: Mapping[str, int | None]) -> dict[str, Any]:
    """The /api/overview body (API.md)."""
    now = time.time_ns() // 1_000_000
    clock = src.clock_status()
    devices = []
    for name, (runner, _) in list(src.runners.items()):
        last = runner.last_reading
        # Whose clock the last reading's time came from: "device" (its own stamp: GPS, a
        # cuff's clock) or the box's status that stamped it; the box's now before any reading.
        src_clock = getattr(runner, "last_reading_clock", None)
        devices.append({
            "id": name, "kind": runner.cfg.kind, "state": str(runner.state),
            "rate_per_s": round(runner.rate.per_second(), 3), "sparkline": spark.of(name),
            "last": None if runner.last_reading_ms is None else {
                "ts_ms": runner.last_reading_ms,
                "value": last.get("value") if isinstance(last, dict) else None},
            "dead_letters": runner.dead_letters, "restarts": runner.restarts,
            "clock": clock if src_clock is None else (
                "device" if src_clock[0] == "device" else src_clock[1]),
            "clock_box": clock if src_clock is None else src_clock[1]})
    info = src.log_info
    topics = [{"name": name, "partitions": t["partitions"], "records": t["records"],
               "bytes": t["bytes"], "oldest_ms": topics_oldest.get(name)}
              for name, t in sorted(info.get("topics", {}).items())]
    log = {"topics": topics,
           "quota": {"bytes": info.get("disk_bytes"), "limit": info.get("quota_bytes"),
                     "policy": src.cfg.log.full_policy},
           "dropped": {"records": info.get("dropped_records", 0),
                       "expired_records": info.get("expired_records", 0)}}
    up = src.uplink_health()
    uplink = None
    if up is not None:
        lag, rate = up.get("lag_records"), up.get("records_per_s")
        drain = rate if isinstance(rate, int | float) else None
        uplink = {"state": up.get("state"), "lag_records": lag,
                  "lag_s": up.get("lag_s"), "drain_per_s": drain,
                  "eta_s": (round(lag / drain, 1) if isinstance(lag, int) and drain else None),
                  "last_error": up.get("last_error")}
    streams = [{"name": name, "state": st.get("state"), "lag": st.get("lag_records"),
                "late": st.get("late")} for name, st in src.streams_health().items()]
    return {"edge_id": src.cfg.edge_id, "now_ms": now, "devices": devices, "log": log,
            "uplink": uplink, "streams": streams}
