"""What ``Uplink.status()`` reports: state, lag, throughput, last error."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from broker import TopicPartition

__all__ = ["PartitionLag", "PartitionMismatch", "UplinkState", "UplinkStatus"]


class UplinkState(StrEnum):
    STARTING = "starting"
    ONLINE = "online"
    OFFLINE = "offline"
    FENCED = "fenced"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PartitionLag:
    """Records of one local partition not yet replicated, and the age of the oldest (s)."""

    topic: str
    partition: int
    replicated_offset: int
    log_end_offset: int
    records: int
    seconds: float


@dataclass(frozen=True)
class PartitionMismatch:
    """An upstream topic whose partition count is not the local topic's.

    Per-key order still holds (a key always goes to the same upstream partition), but a
    key's upstream partition number is not its local one.
    """

    local: str
    upstream: str
    local_partitions: int
    upstream_partitions: int

    def __str__(self) -> str:
        return (f"upstream topic {self.upstream!r} has {self.upstream_partitions} partition(s),"
                f" local topic {self.local!r} has {self.local_partitions}: a key's partition"
                f" upstream is not its partition here (per-key order still holds)")


@dataclass(frozen=True)
class UplinkStatus:
    state: UplinkState
    lag: list[PartitionLag]
    records_per_s: float
    bytes_per_s: float
    records_total: int
    bytes_total: int
    dead_lettered: int
    last_error: str | None
    states_seen: list[UplinkState] = field(default_factory=list)
    # Upstream topics whose partition count is not the local one (found at connect).
    partition_mismatches: list[PartitionMismatch] = field(default_factory=list)
    #: upstream topic -> why the cluster would not create it (its local topic waits)
    refused_topics: dict[str, str] = field(default_factory=dict)
    #: configured local topics that do not exist in the local log
    missing_topics: list[str] = field(default_factory=list)
    #: re-sends (the rereplicate command) not yet past their end: local partition ->
    #: (next offset sent again, end: where upstream stood when it began)
    resending: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)

    @property
    def lag_records(self) -> int:
        return sum(p.records for p in self.lag)


class Rate:
    """Records and bytes per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window = window_s
        self._events: deque[tuple[float, int, int]] = deque()

    def add(self, records: int, nbytes: int) -> None:
        self._events.append((time.monotonic(), records, nbytes))
        self._trim()

    def _trim(self) -> None:
        cutoff = time.monotonic() - self._window
        while self._events and self._events[0][0] < cutoff:
            self._events.popleft()

    def rates(self) -> tuple[float, float]:
        self._trim()
        return (sum(e[1] for e in self._events) / self._window,
                sum(e[2] for e in self._events) / self._window)
