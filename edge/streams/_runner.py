"""``StreamsRunner``: runs a topology over the local log, exactly once."""

from __future__ import annotations

import os
from pathlib import Path

from broker import Clock, LogConfig

from ._dsl import Table, Topology
from ._status import StreamsStatus

__all__ = ["StreamsRunner"]

DEFAULT_BATCH_RECORDS = 5000


class StreamsRunner:
    """Run ``topology`` over the log in ``log`` (a data directory or a ``LogConfig``).

    Each batch of input records is processed and then committed in one SQLite
    transaction of the log: the output records, the state-store changes and
    the input offsets (group ``streams.<topology>``) together, durable before
    the next batch starts.  A crash at any point leaves either all of a batch
    or none of it, so a restarted runner resumes exactly where the committed
    state says, and no record is lost or counted twice.

    ``dead_letter_topic``: where a record goes when a processor raises on it
    (headers name the error, the processor, the topology and the source).
    ``late_topic``: where records later than a window's grace go (default
    ``<topology>.late``).  ``clock``: wall and monotonic time for status
    (event time always comes from record timestamps).
    ``max_batch_records``: input records per transaction.

    ``process_available()`` processes what is in the log now (tests, tools);
    ``await run()`` processes until cancelled, waking on each commit to the
    log; ``close()`` releases the log; ``status()`` reports progress.
    """

    def __init__(self, topology: Topology, log: str | os.PathLike[str] | LogConfig, *,
                 dead_letter_topic: str = "dead-letters", late_topic: str | None = None,
                 clock: Clock | None = None, max_batch_records: int = DEFAULT_BATCH_RECORDS) -> None:
        self.topology = topology
        self.log_config = log if isinstance(log, LogConfig) else LogConfig(data_dir=Path(log))
        self.dead_letter_topic = dead_letter_topic
        self.late_topic = late_topic or f"{topology.name}.late"
        raise NotImplementedError("the engine is being written (issue 6); the API above is stable")

    def process_available(self) -> int:
        """Process every record in the input topics now, batch by batch; return how many."""
        raise NotImplementedError

    async def run(self) -> None:
        """Process records as they arrive until cancelled (blocking work runs in one thread)."""
        raise NotImplementedError

    def status(self) -> StreamsStatus:
        """Counters since start, lag and watermarks per input partition."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the log; safe to call twice.  Committed work stays committed."""

    def _table_view(self, table: Table) -> dict[bytes | None, object]:
        raise NotImplementedError
