"""The local side of the uplink: reading the log in priority order, checkpoints, dead letters.

Every method blocks (SQLite) and is called from the uplink's one dedicated thread.
"""

from __future__ import annotations

import time

from broker import (
    DROP_LEDGER_TOPIC,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    RawRecord,
    TopicPartition,
    UnknownTopicOrPartitionError,
)

from ._config import UplinkConfig
from ._status import PartitionLag

_ASSIGN_REFRESH_S = 1.0
_PRIORITY_REFRESH_S = 10.0   # a topic's priority changes by an operator's hand, rarely


class LocalSide:
    def __init__(self, config: UplinkConfig) -> None:
        self._cfg = config
        self._locals = [m.local for m in config.topics]
        self._admin = KafkaAdminClient(config.data_dir)
        try:
            # Scoped to the replicated topics: the group never commits on the others, and a
            # protected group without a commit on a partition would keep all of it.
            self._admin.protect_consumer_group(config.group_id, topics=self._locals)
            self._consumer = KafkaConsumer(
                data_dir=config.data_dir, group_id=config.group_id, enable_auto_commit=False,
                auto_offset_reset="earliest", max_poll_records=config.batch_records)
            self._peek = KafkaConsumer(data_dir=config.data_dir, auto_offset_reset="earliest")
        except BaseException:
            self._admin.close()
            raise
        self._dlq: KafkaProducer | None = None
        self._priority: dict[str, float] = {}
        self._assigned: set[TopicPartition] = set()
        self._start: dict[TopicPartition, int] = {}   # where to begin a newly seen partition
        self._last_assign = 0.0
        self._last_priority = 0.0

    def close(self) -> None:
        for c in (self._consumer, self._peek):
            c.close(autocommit=False)
        if self._dlq is not None:
            self._dlq.close()
        self._admin.close()

    # -- assignment and positions ------------------------------------------------------------

    def _sync_assignment(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_assign < _ASSIGN_REFRESH_S:
            return
        self._last_assign = time.monotonic()
        existing = set(self._admin.list_topics())
        present = [t for t in self._locals if t in existing]
        if force or time.monotonic() - self._last_priority >= _PRIORITY_REFRESH_S or any(
                t not in self._priority for t in present):
            # describe_topics counts every partition's records: too dear for every second.
            self._last_priority = time.monotonic()
            for desc in self._admin.describe_topics(present):
                # The drop ledger goes first: the cluster should learn what the box could not keep.
                self._priority[desc.name] = (float("inf") if desc.name == DROP_LEDGER_TOPIC
                                             else desc.priority)
        wanted: list[TopicPartition] = []
        for topic in present:
            wanted.extend(TopicPartition(topic, p)
                          for p in sorted(self._consumer.partitions_for_topic(topic) or ()))
        if set(wanted) != self._assigned:
            self._consumer.assign(wanted)
            for tp in set(wanted) - self._assigned:
                self._consumer.seek(tp, self._start_of(tp))
            self._assigned = set(wanted)

    def partition_counts(self, topics: list[str] | None = None) -> dict[str, int]:
        """Partitions of each replicated local topic that exists (of ``topics``, if given)."""
        existing = set(self._admin.list_topics())
        out = {}
        for topic in topics if topics is not None else self._locals:
            parts = self._consumer.partitions_for_topic(topic) if topic in existing else None
            if parts:
                out[topic] = len(parts)
        return out

    def committed_positions(self) -> dict[TopicPartition, int]:
        """The local group's commits on the replicated partitions: what is surely upstream."""
        self._sync_assignment(force=True)
        out = {}
        for tp in self._assigned:
            committed = self._consumer.committed(tp)
            if committed is not None:
                out[tp] = committed
        return out

    def end_offsets(self) -> dict[TopicPartition, int]:
        """The log end offset of each replicated partition."""
        return {tp: self._consumer.highwater(tp) for tp in self._assigned}

    def _start_of(self, tp: TopicPartition) -> int:
        if tp in self._start:
            return self._start[tp]
        if not self._cfg.exactly_once:
            committed = self._consumer.committed(tp)
            if committed is not None:
                return committed
        return self._consumer.beginning_offsets([tp])[tp]

    def rewind(self, checkpoint: dict[TopicPartition, int] | None) -> dict[TopicPartition, int]:
        """Position every partition at the checkpoint (None: the local group's commits).

        Returns the positions, which are what has been replicated.
        """
        self._start = dict(checkpoint or {})
        self._sync_assignment(force=True)
        out = {}
        for tp in self._assigned:
            pos = self._start_of(tp)
            self._consumer.seek(tp, pos)
            out[tp] = pos
        return out

    # -- reading ------------------------------------------------------------------------------

    def poll(self, timeout_s: float) -> list[RawRecord]:
        """Up to ``batch_records`` records, from the highest-priority topics that have a backlog.

        Records as stored (header text not decoded): the uplink passes them on, and decodes
        each distinct header text once (``Uplink._headers``).
        """
        self._sync_assignment()
        if not self._assigned:
            time.sleep(min(timeout_s, _ASSIGN_REFRESH_S))
            return []
        backlog = {}
        for tp in self._assigned:
            if self._consumer.position(tp) < self._consumer.highwater(tp):
                backlog.setdefault(self._priority.get(tp.topic, 0), []).append(tp)
        if backlog:
            top = set(backlog[max(backlog)])
            self._consumer.pause(*(self._assigned - top))
            self._consumer.resume(*top)
        else:
            self._consumer.resume(*self._assigned)
        return self._consumer.poll_raw(timeout_ms=0 if backlog else timeout_s * 1000,
                                       max_records=self._cfg.batch_records)

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the local group (frees local retention) after the upstream has the records."""
        if offsets:
            self._consumer.commit(dict(offsets))

    def dead_letter(self, items: list[tuple[RawRecord, str]]) -> None:
        """Write records the cluster refuses to the local dead-letter topic, with the reason."""
        if self._dlq is None:
            self._dlq = KafkaProducer(self._cfg.data_dir)
        futures = []
        for r, reason in items:
            headers = r.decoded_headers() + [
                ("uplink.reason", reason.encode()),
                ("uplink.source", f"{r.topic}/{r.partition}/{r.offset}".encode()),
            ]
            futures.append(self._dlq.send(self._cfg.dlq_topic, r.value, key=r.key, headers=headers,
                                          timestamp_ms=r.timestamp))
        for f in futures:
            f.get(timeout=30)

    # -- lag ----------------------------------------------------------------------------------

    def lag(self, replicated: dict[TopicPartition, int], now_ms: int) -> list[PartitionLag]:
        self._sync_assignment()  # also before the first connect: lag is known offline
        out = []
        for tp in sorted(self._assigned):
            try:
                end = self._consumer.highwater(tp)
                start = self._consumer.beginning_offsets([tp])[tp]
            except UnknownTopicOrPartitionError:
                continue
            done = max(replicated.get(tp, start), start)
            seconds = 0.0
            if done < end:
                self._peek.assign([tp])
                self._peek.seek(tp, done)
                recs = self._peek.poll(timeout_ms=0, max_records=1).get(tp)
                if recs:
                    seconds = max(0.0, (now_ms - recs[0].timestamp) / 1000)
            out.append(PartitionLag(tp.topic, tp.partition, done, end, end - done, seconds))
        return out
