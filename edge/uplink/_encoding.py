"""Encoding a batch of local records into the record batches of the upstream partitions
(Kafka's partitioner, the ``edge.*`` headers, records too large for the cluster)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from broker import RawRecord, TopicPartition, default_partition

from ._batches import _Prepared
from ._connection import _Connection
from ._local import record_bytes
from ._translate import _Isolating

log = logging.getLogger("edge.uplink")

_KEY_CACHE_MAX = 100_000   # keys are device ids: few, so their partitions are worth remembering
_HEADER_CACHE_MAX = 10_000  # header texts repeat (a device's source, a codec's name)
_ENCODE_SLICE = 250         # records encoded between two looks at the event loop


class _Encoding(_Connection):
    async def _prepare(self, batch: list[RawRecord]) -> _Prepared:
        """Encode a batch into record batches, one per upstream partition (more when full).

        Records go in per-partition record batches (``create_batch``/``send_batch``): one
        future per partition instead of one per record, and the partition is chosen here
        with Kafka's murmur2, so a key lands where the producer's own partitioner would put it.
        This runs while the previous batch is upstream, so it only encodes: the producer
        takes the record batches in ``_send``.
        """
        c = self.config
        prepared = _Prepared(batch)
        if not batch:
            return prepared
        counts: dict[str, int] = {}
        new = [t for t in {r.topic for r in batch} if not self._topics.ensured(t)]
        if new:   # a local topic made since the connect: its upstream topic first
            await self._bounded(self._ensure_topics(new))
            refused = [t for t in new if self._upstream[t] in self._topic_refusals]
            if refused:   # read before it was excluded: start again without it
                raise _Isolating(f"upstream topic of {', '.join(refused)} cannot be created;"
                                 f" replicating the other topics")
        for local in {r.topic for r in batch}:
            upstream = self._upstream[local]
            counts[local] = len(await self._bounded(self._connected_producer.partitions_for(upstream)))
        keyless = self._keyless_next
        self._keyless_next += 1
        open_batches: dict[tuple[str, int], tuple[BatchBuilder, list[RawRecord]]] = {}
        shipments = prepared.shipments
        nbytes = 0
        for i, r in enumerate(batch):
            if i and not i % _ENCODE_SLICE:
                await asyncio.sleep(0)  # let the producer's responses in between
            reason = self._refusals.reason(r)
            headers = self._headers(r)
            size = record_bytes(r)
            nbytes += size
            if reason is None and size > self._measure_above:
                # Only a record near the limit is measured exactly: that costs per record.
                size = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, headers)
                if size > c.max_request_bytes:
                    reason = (f"MessageSizeTooLargeError: the record is {size} bytes, more than"
                              f" max_request_bytes ({c.max_request_bytes})")
            if reason is not None:
                prepared.dead.append((r, reason))
                continue
            topic, n = self._upstream[r.topic], counts[r.topic]
            part = keyless % n if r.key is None else self._partition_of(r.key, n)
            slot = (topic, part)
            if self._refusals.solo(r):
                if slot in open_batches:   # what came before it goes first: order per key
                    shipments.append((topic, part, *open_batches.pop(slot)))
                shipments.append((topic, part, self._batch_of(r, headers), [r]))
                continue
            entry = open_batches.get(slot)
            if entry is None or entry[0].append(
                    timestamp=r.timestamp, key=r.key, value=r.value, headers=headers) is None:
                if entry is not None:   # full: it goes first, start the next one
                    shipments.append((topic, part, *entry))
                entry = open_batches[slot] = (self._batch_of(r, headers), [])
            entry[1].append(r)
        shipments.extend((topic, part, builder, members)
                         for (topic, part), (builder, members) in open_batches.items())
        last: dict[tuple[str, int], int] = {}
        for r in batch:
            last[(r.topic, r.partition)] = r.offset + 1
        prepared.updates = {TopicPartition(t, p): o for (t, p), o in last.items()}
        prepared.nbytes = nbytes
        return prepared

    def _batch_of(self, r: RawRecord, headers: list[tuple[str, bytes | None]]) -> BatchBuilder:
        """A new record batch holding ``r`` (a first record always fits)."""
        builder = self._connected_producer.create_batch()
        builder.append(timestamp=r.timestamp, key=r.key, value=r.value, headers=headers)
        return builder

    def _partition_of(self, key: bytes, partitions: int) -> int:
        slot = (key, partitions)
        part = self._key_partition.get(slot)
        if part is None:
            if len(self._key_partition) >= _KEY_CACHE_MAX:
                self._key_partition.clear()
            part = self._key_partition[slot] = default_partition(key, partitions)
        return part

    def _headers(self, r: RawRecord) -> list[tuple[str, bytes | None]]:
        # The stored header text is decoded once per distinct text: decoding it for every
        # record was the larger part of reading the local log.
        stored = self._header_lists.get(r.header_text)
        if stored is None:
            if len(self._header_lists) >= _HEADER_CACHE_MAX:
                self._header_lists.clear()
            stored = self._header_lists[r.header_text] = tuple(r.decoded_headers())
        part = self._partition_headers.get(r.partition)
        if part is None:
            part = self._partition_headers[r.partition] = ("edge.partition",
                                                           str(r.partition).encode())
        # A header whose value is None stays a null header upstream, as Kafka allows.
        return [*stored, self._edge_header, part, ("edge.offset", str(r.offset).encode())]
