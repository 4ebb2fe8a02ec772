"""Idempotent producers: each (producer id, partition)'s epoch and its last five batches.

Kafka's rule (KIP-98): a batch whose sequence numbers match one of the last five written
for its producer and partition is a retry, answered with the first write's offset and not
written again; the next batch must start right after the last sequence; an older epoch is
fenced.  The entries are persisted in the ``state`` table in the same SQLite transaction
as the records they describe (``_appender``), so a retry after a restart is known too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum

from ._recordbatch import Batch

#: The state store holding one entry per (producer id, topic, partition).
STORE = "__wire.producers"
#: How many batches per producer and partition are remembered for retries (Kafka's 5:
#: max.in.flight.requests.per.connection may not exceed it with idempotence).
REMEMBERED = 5
#: A producer silent this long is forgotten at the listener's next start (Kafka's
#: producer.id.expiration.ms): every producer session has a new id, so entries would
#: otherwise pile up in the log for ever.
EXPIRY_MS = 24 * 3600 * 1000


class Verdict(Enum):
    WRITE = "write"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    FENCED = "fenced"


@dataclass
class ProducerEntry:
    epoch: int
    batches: list[tuple[int, int, int]] = field(default_factory=list)  # first seq, last seq, base offset
    written_ms: int = 0  # when its last batch was written (the log's clock)

    def encode(self) -> bytes:
        return json.dumps({"epoch": self.epoch, "batches": self.batches, "ms": self.written_ms}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ProducerEntry:
        d = json.loads(raw)
        return cls(int(d["epoch"]), [tuple(b) for b in d["batches"]], int(d.get("ms", 0)))


def state_key(producer_id: int, topic: str, partition: int) -> bytes:
    return f"{producer_id}/{partition}/{topic}".encode()


def parse_state_key(key: bytes) -> tuple[int, str, int]:
    pid, part, topic = key.decode().split("/", 2)
    return int(pid), topic, int(part)


def check(entry: ProducerEntry | None, batch: Batch) -> tuple[Verdict, int]:
    """What to do with ``batch`` given its producer's entry; the offset of a duplicate."""
    if entry is None:
        return Verdict.WRITE, -1  # a producer this log never saw (or long forgotten)
    if batch.producer_epoch < entry.epoch:
        return Verdict.FENCED, -1
    if batch.producer_epoch > entry.epoch:
        return (Verdict.WRITE, -1) if batch.base_sequence == 0 else (Verdict.OUT_OF_ORDER, -1)
    for first, last, offset in entry.batches:
        if first == batch.base_sequence and last == batch.last_sequence:
            return Verdict.DUPLICATE, offset
    if not entry.batches:
        return Verdict.WRITE, -1
    expected = (entry.batches[-1][1] + 1) & 0x7FFFFFFF
    if batch.base_sequence != expected:
        return Verdict.OUT_OF_ORDER, -1
    return Verdict.WRITE, -1


def advanced(entry: ProducerEntry | None, batch: Batch, base_offset: int, now_ms: int) -> ProducerEntry:
    """The entry after ``batch`` was written at ``base_offset`` at ``now_ms``."""
    if entry is None or batch.producer_epoch != entry.epoch:
        entry = ProducerEntry(batch.producer_epoch)
    else:
        entry = ProducerEntry(entry.epoch, list(entry.batches))
    entry.batches.append((batch.base_sequence, batch.last_sequence, base_offset))
    del entry.batches[:-REMEMBERED]
    entry.written_ms = now_ms
    return entry
