"""Exactly-once intake: a reading the log already holds is acknowledged, not written again.

MQTT QoS 1 is at-least-once into the box, so two kinds of copy reach the service:

- **Redelivery** (always on, MQTT QoS 1). The service was killed, or its connection
  dropped, after a reading was durable but before the PUBACK reached Mosquitto; the
  resumed session gets the same message again with the DUP flag and the same packet id.
  Every such reading is written with a ``delivery`` header (client id, the session's
  epoch, packet id, its place in the message, a digest of topic and payload:
  ``devices.Delivery``). A DUP copy whose identity the device has written recently is
  acknowledged without a write. ``RedeliveryIndex`` remembers the identities written
  since the device started, and is primed at start from the last records of the
  device's topic, which covers a SIGKILL.

  Why the identity cannot name another message: a redelivery is a packet of the
  session being resumed, and the epoch (devices/transports/_session.py) changes with
  every new session, so packet ids that start over after a broker lost its sessions
  never meet the old ones. Within one session, a packet id comes back only after the
  65,534 others, each acknowledged (Mosquitto never reuses an id in flight), and this
  index remembers ``REDELIVERY_MEMORY`` (20,000) identities, newest last: an
  acknowledged packet is forgotten long before its id is reused. (Only if over 45,000 of
  those were dead letters, which are not remembered, could a same-topic, same-payload
  copy of the id's previous message still be here.) The index keeps a 16-byte BLAKE2b
  digest of each identity rather than the identity (60-100 bytes, one per reading): two
  identities share a digest with a chance of 2**-128, far below a disk's rate of
  undetected errors.
- **Content** (opt-in per device, ``dedupe_window``). A publisher that resends after a
  broker restart publishes a new message (new packet id, no DUP flag), which nothing in
  MQTT tells apart from a new reading. For devices that stamp every reading with their
  own clock, a reading with the same event key, device timestamp and value as one seen
  within the window is the same reading: ``ContentIndex`` drops it. Readings the box
  stamped itself are never compared (two equal values in one millisecond are two
  readings).

Either way the drop is counted (``edge_events_deduplicated_total{device,reason}``) and
logged at debug, never silent. While the first copy's write is still in flight the copy
waits on it and fails with it, so a copy is acknowledged only once the first is durable;
a first copy whose write failed is forgotten, so its redelivery is written.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from broker import KafkaConsumer, TopicPartition

__all__ = [
    "DELIVERY_HEADER",
    "ContentIndex",
    "RedeliveryIndex",
    "TailRecord",
    "read_tail",
]

DELIVERY_HEADER = "delivery"
#: Records read back per partition of a device's topic when it starts. A redelivery comes
#: within the broker's in-flight window of the crash, far fewer records than this.
TAIL_RECORDS = 10_000
REDELIVERY_MEMORY = 20_000  # identities remembered per device (well over any in-flight window)
CONTENT_MEMORY = 200_000  # (key, time, digest) entries per device, whatever the window


@dataclass(frozen=True, slots=True)
class TailRecord:
    """One record of a topic's tail: what the indexes need of it."""

    key: bytes | None
    timestamp_ms: int
    value: bytes | None
    headers: dict[str, bytes | None]  # a header value may be null, as in Kafka


def read_tail(data_dir: str | os.PathLike[str], topic: str,
              per_partition: int = TAIL_RECORDS) -> list[TailRecord]:
    """The last ``per_partition`` records of every partition of ``topic`` (blocking: a thread).

    An absent topic has no tail.
    """
    consumer = KafkaConsumer(data_dir=data_dir, auto_offset_reset="earliest",
                             enable_auto_commit=False, max_poll_records=2000)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        left = {}
        for tp in tps:
            start = max(begins[tp], ends[tp] - per_partition)
            if start < ends[tp]:
                consumer.seek(tp, start)
                left[tp] = ends[tp]
            else:
                consumer.pause(tp)
        out: list[TailRecord] = []
        while left:
            batch = consumer.poll(timeout_ms=0)
            if not batch:
                break  # retention removed the rest meanwhile
            for tp, records in batch.items():
                for r in records:
                    if r.offset < left.get(tp, -1):
                        out.append(TailRecord(r.key, r.timestamp, r.value, dict(r.headers)))
                if records and records[-1].offset + 1 >= left.get(tp, 0):
                    left.pop(tp, None)
                    consumer.pause(tp)
        return out
    finally:
        consumer.close(autocommit=False)


def _ingest_ms(r: TailRecord) -> int:
    ingest = r.headers.get("ingest_ms")
    return int(ingest) if ingest is not None and ingest.isdigit() else r.timestamp_ms


def _digest(identity: bytes) -> bytes:
    """What RedeliveryIndex keeps of an identity: 49 bytes of Python object, not 90-130."""
    return hashlib.blake2b(identity, digest_size=16).digest()


def _usable(write: asyncio.Future[None]) -> bool:
    """A first copy counts unless its write failed (then the copy must be written)."""
    return not write.done() or (not write.cancelled() and write.exception() is None)


class RedeliveryIndex:
    """Delivery identities a device has written (or is writing), newest last, bounded."""

    def __init__(self, limit: int = REDELIVERY_MEMORY) -> None:
        # An OrderedDict, not a dict: the oldest goes on every add once full, and a dict
        # whose front is deleted over and over makes each next(iter()) skip the holes it
        # left (~10 us per add at 20,000 entries, on every event).
        self._seen: collections.OrderedDict[bytes, asyncio.Future[None]] = \
            collections.OrderedDict()
        self._limit = limit
        # Identities (digests) added while their write was in flight, oldest first. Once a write is
        # durable its entry points at one shared resolved future instead: a future is 144
        # bytes, and holding each of 20,000 per device was 8.6 MB at 3 MQTT devices.
        self._writing: collections.deque[tuple[bytes, asyncio.Future[None]]] = collections.deque()
        self._durable: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def prior(self, identity: bytes) -> asyncio.Future[None] | None:
        """The write of an earlier copy of this delivery, or None if there is none to rely on."""
        identity = _digest(identity)
        write = self._seen.get(identity)
        if write is None:
            return None
        if _usable(write):
            return write
        del self._seen[identity]
        return None

    def add(self, identity: bytes, write: asyncio.Future[None]) -> None:
        """Remember that ``identity`` is being written by ``write``."""
        identity = _digest(identity)
        seen = self._seen
        seen.pop(identity, None)  # re-inserted: newest last
        if write.done() and _usable(write):
            self._durable = self._durable or write
            seen[identity] = self._durable
        else:
            seen[identity] = write
            self._writing.append((identity, write))
        if len(seen) > self._limit:
            seen.popitem(last=False)
        self._settle()

    def _settle(self) -> None:
        """Point the entries of durable writes at the shared resolved future, oldest first.

        The log completes writes in the order they were queued, so the front is the first
        to be done; one write that never completes only stops the swap, never the bound
        (at most ``limit`` are waited for, then the oldest entry keeps its own future).
        """
        writing, seen = self._writing, self._seen
        while writing:
            identity, write = writing[0]
            if not write.done() and len(writing) <= self._limit:
                return
            writing.popleft()
            if write.done() and _usable(write) and seen.get(identity) is write:
                self._durable = self._durable or write
                seen[identity] = self._durable  # an assignment: the entry keeps its place

    def prime(self, records: Iterable[TailRecord], durable: asyncio.Future[None],
              prefix: bytes = b"") -> int:
        """Learn the identities the log holds (``durable``: a resolved future); how many.

        Learnt in the order they arrived (``ingest_ms``), not partition by partition, so
        that what the bound keeps is the newest, as it is for identities added live.
        ``prefix``: only identities of this session's client (``Delivery.mqtt``); devices
        sharing a topic each read it back, and each kept every other's identities too
        (5 devices on one topic: RSS from 47 to over 100 MiB after a restart).
        """
        held = [(_ingest_ms(r), identity) for r in records
                if (identity := r.headers.get(DELIVERY_HEADER)) is not None
                and identity.startswith(prefix)]
        held.sort(key=lambda pair: pair[0])  # stable: a partition's order among equals
        for _, identity in held:
            self.add(identity, durable)
        return len(held)


ContentKey = tuple[bytes, int, bytes]


class ContentIndex:
    """(event key, device time, value digest) of readings seen within ``window_s``."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic,
                 limit: int = CONTENT_MEMORY) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s!r}")
        self.window_s = window_s
        self._clock = clock
        self._limit = limit
        # Expired from the front on every look: an OrderedDict, as in RedeliveryIndex.
        self._seen: collections.OrderedDict[ContentKey, tuple[float, asyncio.Future[None]]] = \
            collections.OrderedDict()
        # As in RedeliveryIndex: a durable write's entry points at one shared resolved
        # future, so up to 200,000 entries a device do not each hold a 144-byte future.
        self._writing: collections.deque[tuple[ContentKey, asyncio.Future[None]]] = collections.deque()
        self._durable: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._seen)

    @staticmethod
    def key(event_key: bytes, timestamp_ms: int, value: bytes) -> ContentKey:
        """What makes two readings of one device the same reading."""
        return (event_key, timestamp_ms, hashlib.blake2b(value, digest_size=16).digest())

    def _expire(self, now: float) -> None:
        # Entries are in the order they were seen, so the old ones are at the front.
        seen, oldest = self._seen, now - self.window_s
        while seen:
            first = next(iter(seen))
            if seen[first][0] >= oldest and len(seen) <= self._limit:
                break
            del seen[first]

    def prior(self, key: ContentKey) -> asyncio.Future[None] | None:
        """The write of the same reading seen within the window, or None."""
        self._expire(self._clock())
        entry = self._seen.get(key)
        if entry is None:
            return None
        if _usable(entry[1]):
            return entry[1]
        del self._seen[key]
        return None

    def add(self, key: ContentKey, write: asyncio.Future[None], seen_at: float | None = None) -> None:
        """Remember a reading being written (``seen_at``: monotonic time, default now)."""
        self._seen.pop(key, None)
        if write.done() and _usable(write):
            self._durable = self._durable or write
            write = self._durable
        else:
            self._writing.append((key, write))
        self._seen[key] = (self._clock() if seen_at is None else seen_at, write)
        if len(self._seen) > self._limit:
            self._expire(self._clock())
        self._settle()

    def _settle(self) -> None:
        """RedeliveryIndex._settle for this index's (seen_at, write) entries."""
        writing, seen = self._writing, self._seen
        while writing:
            key, write = writing[0]
            if not write.done() and len(writing) <= self._limit:
                return
            writing.popleft()
            entry = seen.get(key)
            if entry is not None and entry[1] is write and write.done() and _usable(write):
                self._durable = self._durable or write
                seen[key] = (entry[0], self._durable)  # an assignment: the entry keeps its place

    def prime(self, records: Iterable[TailRecord], durable: asyncio.Future[None],
              now_ms: int) -> int:
        """Learn the readings the log holds that arrived within the window; how many.

        A record's arrival is its ``ingest_ms`` header; records without one are skipped.
        """
        arrived: list[tuple[int, bytes, int, bytes]] = []  # (ingest_ms, key, timestamp, value)
        for r in records:
            ingest = r.headers.get("ingest_ms")
            if r.key is not None and r.value is not None and ingest is not None and ingest.isdigit():
                arrived.append((int(ingest), r.key, r.timestamp_ms, r.value))
        arrived.sort(key=lambda entry: entry[0])  # oldest first, as _expire expects
        now, n = self._clock(), 0
        for ingest_ms, key, timestamp_ms, value in arrived:
            age_s = (now_ms - ingest_ms) / 1000
            if age_s < self.window_s:
                self.add(self.key(key, timestamp_ms, value), durable, now - max(age_s, 0.0))
                n += 1
        return n
