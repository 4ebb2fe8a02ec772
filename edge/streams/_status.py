"""What a running topology reports: counters, lag, errors per processor."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PartitionProgress", "StreamsStatus"]


@dataclass(frozen=True)
class PartitionProgress:
    """One input partition: committed offset, end of the log, lag, watermark."""

    topic: str
    partition: int
    committed: int
    log_end_offset: int
    lag: int
    watermark_ms: int | None  # largest event time seen on this partition (None: nothing yet)


@dataclass(frozen=True)
class StreamsStatus:
    """A snapshot of a ``StreamsRunner``: counters since it started, lag as of now.

    ``records_in``: input records processed (and committed); ``records_out``:
    records written to sink topics; ``late``: records written to the late
    topic; ``dead_lettered``: records written to the dead-letter topic;
    ``deduplicated``: records dropped by ``dedupe`` as duplicates;
    ``errors``: failures per processor name; ``last_error``: the latest one.
    """

    topology: str
    group_id: str
    state: str  # created, idle (after process_available), running, stopped, fenced, closed
    records_in: int
    records_out: int
    late: int
    dead_lettered: int
    deduplicated: int
    transactions: int
    errors: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    partitions: list[PartitionProgress] = field(default_factory=list)
    skipped: int = 0  # input records retention removed before they were processed
    last_commit_ms: int | None = None  # wall clock (the runner's clock) of the last commit

    @property
    def lag(self) -> int:
        """Records in the input topics not yet processed."""
        return sum(p.lag for p in self.partitions)
