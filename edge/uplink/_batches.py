"""A batch of local records on its way upstream: encoded (``_Prepared``), then handed to
the producer and not yet acked (``_InFlight``)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from broker import RawRecord, TopicPartition


class _InFlight:
    """A batch handed to the producer: its per-partition batch futures (with the records in
    each), the checkpoint write (exactly once), dead letters and next local offsets."""

    def __init__(self, batch: list[RawRecord], orphans: list[asyncio.Task[None]]) -> None:
        self.batch = batch
        self._orphans = orphans
        self.futures: list[tuple[asyncio.Future[Any], list[RawRecord]]] = []
        self.offsets: asyncio.Task[None] | None = None
        self.dead: list[tuple[RawRecord, str]] = []
        self.updates: dict[TopicPartition, int] = {}
        self.nbytes = 0
        self.ready_at = 0.0   # time.monotonic() when it could have started (exactly once)
        self.checkpointed: set[str] = set()   # local topics whose checkpoint it writes

    async def cancel(self) -> None:
        """Settle a failed batch: the errors its record batches and checkpoint write end with
        (now or when the producer is closed) are seen, not left to be reported as "Future
        exception was never retrieved". The checkpoint write is not cancelled here but once
        its producer is closed (``Uplink._close_upstream``): aiokafka awaits its own future
        under ``asyncio.shield``, and a cancelled shield leaves that future's later error
        (a fenced producer's) unread."""
        for future, _ in self.futures:
            future.add_done_callback(_seen)
        if self.offsets is not None:
            self.offsets.add_done_callback(_seen)
            if not self.offsets.done():
                self._orphans.append(self.offsets)
            self.offsets = None



class _Prepared:
    """A batch read from the local log and encoded, not yet handed to the producer: its
    record batches in the order they must be sent, dead letters, next local offsets, bytes."""

    def __init__(self, batch: list[RawRecord]) -> None:
        self.batch = batch
        self.shipments: list[tuple[str, int, BatchBuilder, list[RawRecord]]] = []
        self.dead: list[tuple[RawRecord, str]] = []
        self.updates: dict[TopicPartition, int] = {}
        self.nbytes = 0



def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
