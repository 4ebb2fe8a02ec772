"""The local side of the uplink: reading the log in priority order, checkpoints, dead letters.

Every method blocks (SQLite) and is called from the uplink's one dedicated thread.
"""

from __future__ import annotations

import logging
import time

from broker import (
    DROP_LEDGER_TOPIC,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    OffsetAndMetadata,
    RawRecord,
    TopicPartition,
    UnknownTopicOrPartitionError,
)

from ._config import UplinkConfig
from ._errors import UplinkConfigError
from ._resend import Resend, decode, encode
from ._status import PartitionLag

log = logging.getLogger("edge.uplink")

_ASSIGN_REFRESH_S = 1.0
_PRIORITY_REFRESH_S = 10.0   # a topic's priority changes by an operator's hand, rarely
_CHUNK_MAX = 256             # records read at once while filling a batch up to batch_bytes


def check_data_dir(config: UplinkConfig) -> None:
    """Raise ``UplinkConfigError`` unless ``data_dir`` holds a local log: opening a path
    that does not exist would create an empty log and replicate nothing, saying all is well."""
    d = config.data_dir
    if not d.is_dir():
        raise UplinkConfigError("data_dir", "the directory of the local log (the appliance's"
                                " data_dir)", f"{d} (no such directory)")
    if not any(d.iterdir()):
        raise UplinkConfigError("data_dir", "the directory of the local log (the appliance's"
                                " data_dir)", f"{d} (an empty directory)")


def check_local_topics(config: UplinkConfig) -> None:
    """Raise ``UplinkConfigError`` unless ``data_dir`` holds a log with every configured
    local topic (the drop ledger aside). For ``python -m edge.uplink``, where the operator
    names the topics; the appliance's topics appear with their first record."""
    check_data_dir(config)
    with KafkaAdminClient(config.data_dir) as admin:
        existing = sorted(t for t in admin.list_topics() if not t.startswith("__"))
    missing = [m.local for m in config.topic_mappings if m.local not in existing
               and m.local != DROP_LEDGER_TOPIC]
    if missing:
        raise UplinkConfigError(
            "topics", f"local topics that exist in {config.data_dir} (it has:"
            f" {', '.join(existing) or 'none'})", ", ".join(missing))


class LocalSide:
    def __init__(self, config: UplinkConfig) -> None:
        check_data_dir(config)
        self._cfg = config
        self._locals = [m.local for m in config.topic_mappings]
        self._excluded: set[str] = set()
        self._largest = config.max_request_bytes   # of the records last read; guessed high
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
        self._committed: dict[TopicPartition, int] = {}
        self._priority: dict[str, float] = {}
        self._assigned: set[TopicPartition] = set()
        self._start: dict[TopicPartition, int] = {}   # where to begin a newly seen partition
        self._last_assign = 0.0
        self._last_priority = 0.0
        self._resends: dict[TopicPartition, Resend] = {}   # under way, their end fixed

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
        present = [t for t in self._locals if t in existing and t not in self._excluded]
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

    def resends(self) -> dict[TopicPartition, tuple[Resend, int]]:
        """The re-sends stored in the local group's commits (``_resend.py``), each with the
        commit's offset."""
        self._sync_assignment(force=True)
        out = {}
        for tp in self._assigned:
            committed = self._consumer.committed(tp, metadata=True)
            resend = None if committed is None else decode(committed.metadata)
            if committed is not None and resend is not None:
                out[tp] = (resend, committed.offset)
        return out

    def keep_resends(self, positions: dict[TopicPartition, int],
                     store: dict[TopicPartition, Resend | None]) -> dict[TopicPartition, int]:
        """Commit what a connect settled (``_resend.settle``): each re-send from its position
        with its end fixed, or, done, a plain commit of the position. Returns the re-sends
        under way: partition -> end."""
        offsets: dict[TopicPartition, OffsetAndMetadata | int] = {}
        for tp, resend in store.items():
            offsets[tp] = positions[tp] if resend is None else \
                OffsetAndMetadata(positions[tp], encode(resend))
        if offsets:
            self._consumer.commit(offsets)
        self._resends = {tp: r for tp, (r, _) in self.resends().items() if r.end is not None}
        return {tp: r.end for tp, r in self._resends.items() if r.end is not None}

    def exclude(self, topics: set[str]) -> None:
        """Read none of these local topics (their upstream topic cannot be created) until
        called again without them."""
        if topics != self._excluded:
            self._excluded = set(topics)
            self._sync_assignment(force=True)

    def missing_topics(self) -> list[str]:
        """Configured local topics that do not exist in the log (the drop ledger aside: the
        log makes it at its first drop)."""
        existing = set(self._admin.list_topics())
        return [t for t in self._locals if t not in existing and t != DROP_LEDGER_TOPIC]

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
        backlog: dict[float, list[TopicPartition]] = {}  # by priority
        for tp in self._assigned:
            if self._consumer.position(tp) < self._consumer.highwater(tp):
                backlog.setdefault(self._priority.get(tp.topic, 0), []).append(tp)
        if backlog:
            top = set(backlog[max(backlog)])
            self._consumer.pause(*(self._assigned - top))
            self._consumer.resume(*top)
        else:
            self._consumer.resume(*self._assigned)
        return self._poll_bounded(0 if backlog else timeout_s * 1000)

    def _poll_bounded(self, timeout_ms: float) -> list[RawRecord]:
        """Up to ``batch_records`` records and about ``batch_bytes`` bytes (at least one).

        The log's poll is bounded by records only, so the batch is read in chunks sized
        from the largest record of the previous chunk (the first guess: a record as large
        as max_request_bytes), so 200 KB records are not read 1,000 at a time. A chunk
        whose records grew overshoots by at most one chunk of the new size.
        """
        c = self._cfg
        out: list[RawRecord] = []
        nbytes = 0
        largest = self._largest
        while len(out) < c.batch_records and nbytes < c.batch_bytes:
            room = (c.batch_bytes - nbytes) // max(largest, 1)
            if out and room < 1:
                break
            chunk = max(1, min(room, c.batch_records - len(out), _CHUNK_MAX))
            got = self._consumer.poll_raw(timeout_ms=0 if out else timeout_ms, max_records=chunk)
            if not got:
                break
            sizes = [record_bytes(r) for r in got]
            largest = max(sizes)
            nbytes += sum(sizes)
            out.extend(got)
        self._largest = largest
        return out

    def commit(self, offsets: dict[TopicPartition, int]) -> list[TopicPartition]:
        """Commit the local group (frees local retention) after the upstream has the records.

        A partition with a re-send keeps it in the commit until the commit reaches its end;
        returns the partitions whose re-send that commit finished."""
        if not offsets:
            return []
        done = []
        out: dict[TopicPartition, OffsetAndMetadata | int] = dict(offsets)
        for tp, off in offsets.items():
            resend = self._resends.get(tp)
            if resend is None:
                continue
            if resend.end is not None and off >= resend.end:
                done.append(tp)
            else:
                out[tp] = OffsetAndMetadata(off, encode(resend))
        self._consumer.commit(out)
        for tp in done:
            log.info("uplink %s: the re-send of %s[%d] is done (sent again up to %s)",
                     self._cfg.edge_id, tp.topic, tp.partition, self._resends.pop(tp).end)
        return done

    def dead_letter(self, items: list[tuple[RawRecord, str]]) -> None:
        """Write records the cluster refuses to the local dead-letter topic, with the reason,
        and name each in the drop ledger (replicated first: the cluster learns what it
        refused and where the record is kept)."""
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
        for r, reason in items:   # named once it is kept
            self._admin.record_drops(
                r.topic, [(r.partition, r.offset, r.offset)],
                f"not replicated: {reason}; kept in local topic {self._cfg.dlq_topic}",
                bytes=record_bytes(r), unreplicated=True, dead_letter_topic=self._cfg.dlq_topic)

    # -- lag ----------------------------------------------------------------------------------

    def lag(self, replicated: dict[TopicPartition, int], now_ms: int) -> list[PartitionLag]:
        self._sync_assignment()  # also before the first connect: lag is known offline
        out = []
        waiting = {TopicPartition(t, p) for t in self._excluded   # not replicated: lag all the same
                   for p in (self._consumer.partitions_for_topic(t) or ())}
        for tp in sorted(self._assigned | waiting):
            try:
                end = self._consumer.highwater(tp)
                start = self._consumer.beginning_offsets([tp])[tp]
            except UnknownTopicOrPartitionError:
                continue
            known = replicated.get(tp)
            if known is None:
                # Before the first connect: where the local group stands (at least once
                # the resume point; exactly once a little behind the upstream checkpoint),
                # not the whole log.
                known = self._committed.get(tp)
                if known is None:
                    known = self._committed[tp] = self._consumer.committed(tp) or start
            done = max(known, start)
            seconds = 0.0
            if done < end:
                self._peek.assign([tp])
                self._peek.seek(tp, done)
                recs = self._peek.poll(timeout_ms=0, max_records=1).get(tp)
                if recs:
                    seconds = max(0.0, (now_ms - recs[0].timestamp) / 1000)
            out.append(PartitionLag(tp.topic, tp.partition, done, end, end - done, seconds))
        return out


def record_bytes(r: RawRecord) -> int:
    """Bytes of a record as the local log stores it (key, value, header text)."""
    return len(r.key or b"") + len(r.value or b"") + len(r.header_text or "")
