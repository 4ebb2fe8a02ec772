"""``KafkaConsumer``: kafka-python's consumer, reading the local log."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, overload

from ._checks import (
    check_commit_offsets,
    check_group_id,
    check_list,
    check_names,
    check_seconds,
    check_timestamp,
    check_topic_partition,
    is_int,
)
from ._client import open_log
from ._config import LogConfig, validate_topic_name
from ._errors import (
    ClosedError,
    ConfigError,
    OffsetOutOfRangeError,
    SerializationError,
    UnknownTopicOrPartitionError,
)
from ._group_offsets import upsert_group_offsets
from ._headers import decode_headers
from ._notify import CommitWatcher
from ._records import (
    ConsumerRecord,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    RawRecord,
    TopicPartition,
)
from ._storage import (
    NOTIFY_NAME,
    OFFSET_RANGE_SQL,
    connect,
    offset_range,
    transaction,
    translate,
    translated,
)

_RESETS = ("earliest", "latest", "none")
_METADATA_REFRESH_S = 1.0


class KafkaConsumer:
    """Read records from the local log, as kafka-python's ``KafkaConsumer`` reads Kafka.

    Subscribe (``*topics``, ``subscribe``) or ``assign`` partitions, then
    iterate or ``poll``.  With a ``group_id``, positions start from the
    group's committed offsets and are committed automatically every
    ``auto_commit_interval_ms`` (or by ``commit()``); without one, or for a
    partition the group never committed, ``auto_offset_reset`` decides
    (``"latest"`` by default, as in Kafka; ``"earliest"`` is
    ``--from-beginning``).  A consumer in any process wakes within
    milliseconds of a commit (inotify), never busy-looping.

    Unlike Kafka, members of one group are not balanced against each other:
    every subscriber of a group is assigned all partitions of its topics.
    Not thread-safe, as in kafka-python: use one consumer per thread.
    """

    def __init__(self, *topics: str, data_dir: str | os.PathLike[str] | None = None,
                 group_id: str | None = None, auto_offset_reset: str = "latest",
                 enable_auto_commit: bool = True, auto_commit_interval_ms: int = 5000,
                 key_deserializer: Callable[[bytes], Any] | None = None,
                 value_deserializer: Callable[[bytes], Any] | None = None,
                 consumer_timeout_ms: float = float("inf"), max_poll_records: int = 500,
                 log_config: LogConfig | None = None, **kafka_options: Any) -> None:
        if auto_offset_reset not in _RESETS:
            raise ConfigError(f"auto_offset_reset: expected one of {', '.join(_RESETS)}, got {auto_offset_reset!r}")
        if not is_int(max_poll_records) or max_poll_records < 1:
            raise ConfigError(f"max_poll_records: expected an integer >= 1, got {max_poll_records!r}")
        if group_id is not None:
            check_group_id(group_id, "KafkaConsumer")
        if type(enable_auto_commit) is not bool:
            raise ConfigError(f"enable_auto_commit: expected True or False, got {enable_auto_commit!r}")
        check_seconds(auto_commit_interval_ms, "auto_commit_interval_ms", allow_none=False)
        check_seconds(consumer_timeout_ms, "consumer_timeout_ms", allow_none=False)
        for name, fn in (("key_deserializer", key_deserializer), ("value_deserializer", value_deserializer)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name}: expected a function of bytes, got {fn!r:.80}")
        for t in topics:
            validate_topic_name(t)
        self._log = open_log(data_dir, log_config, kafka_options, "KafkaConsumer")
        cfg = self._log.config
        try:
            self._conn = connect(cfg.data_dir, busy_timeout_s=cfg.busy_timeout_s)
        except BaseException:
            self._log.release()
            raise
        self._watcher = CommitWatcher(Path(cfg.data_dir) / NOTIFY_NAME)
        self.group_id = group_id
        self._reset = auto_offset_reset
        self._auto_commit = enable_auto_commit and group_id is not None
        self._auto_commit_s = auto_commit_interval_ms / 1000
        self._key_des = key_deserializer
        self._value_des = value_deserializer
        self._timeout_s = consumer_timeout_ms / 1000
        self._max_records = max_poll_records
        self._subscription: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._assigned: list[TopicPartition] = []
        self._manual = False
        self._positions: dict[TopicPartition, int] = {}
        self._committed_pos: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._buffer: list[ConsumerRecord] = []
        self._next_rr = 0
        self._last_refresh = 0.0
        self._last_commit = time.monotonic()
        self._closed = False
        if topics:
            try:
                self.subscribe(topics)
            except BaseException:
                self.close(autocommit=False)  # do not leak the log, connection and watcher
                raise

    # -- what to read -------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None) -> None:
        """Read all partitions of ``topics`` (or of topics matching ``pattern``), now and as they appear."""
        self._check_open()
        if isinstance(topics, str):
            topics = [topics]
        if self._manual:
            raise ConfigError("subscribe() after assign(): call unsubscribe() first")
        names = check_names(topics, "subscribe: topics")
        for t in names:
            validate_topic_name(t)
        compiled = None
        if pattern is not None:
            if not isinstance(pattern, str):
                raise ConfigError(f"subscribe: pattern: expected a regular expression (str), got {pattern!r:.80}")
            try:
                compiled = re.compile(pattern) if pattern else None
            except re.error as exc:
                raise ConfigError(f"subscribe: pattern {pattern!r} is not a regular expression: {exc}") from None
        self._subscription = set(names)
        self._pattern = compiled
        if not self._subscription and self._pattern is None:
            raise ConfigError("subscribe() needs topics or a pattern")
        self._refresh(force=True)

    def unsubscribe(self) -> None:
        self._subscription, self._pattern, self._manual = set(), None, False
        self._assigned, self._buffer = [], []

    def subscription(self) -> set[str] | None:
        return set(self._subscription) if (self._subscription or self._pattern) else None

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (no subscription)."""
        self._check_open()
        if self._subscription or self._pattern:
            raise ConfigError("assign() after subscribe(): call unsubscribe() first")
        parts = [check_topic_partition(tp, "assign") for tp in check_list(partitions, "assign")]
        for tp in parts:
            self._partition_meta(tp)  # raises for unknown topic/partition
        self._manual = True
        self._assigned = parts
        self._buffer = [r for r in self._buffer if TopicPartition(r.topic, r.partition) in set(parts)]

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    @translated("listing topics")
    def topics(self) -> set[str]:
        return {name for (name,) in self._conn.execute("SELECT name FROM topics")}

    @translated("reading a topic's partitions")
    def partitions_for_topic(self, topic: str) -> set[int] | None:
        validate_topic_name(topic)
        row = self._conn.execute("SELECT partitions FROM topics WHERE name=?", (topic,)).fetchone()
        return set(range(row[0])) if row else None

    def _refresh(self, force: bool = False) -> None:
        if self._manual or (not force and time.monotonic() - self._last_refresh < _METADATA_REFRESH_S):
            return
        self._last_refresh = time.monotonic()
        wanted: list[TopicPartition] = []
        try:
            topics = self._conn.execute("SELECT name, partitions FROM topics ORDER BY name").fetchall()
        except Exception as exc:
            raise translate(exc, "reading the topics of the log") from exc
        for name, n in topics:
            if name in self._subscription or (
                self._pattern is not None and not name.startswith("__") and self._pattern.fullmatch(name)
            ):
                wanted.extend(TopicPartition(name, p) for p in range(n))
        self._assigned = wanted

    # -- positions ----------------------------------------------------------------------------

    def _partition_meta(self, tp: TopicPartition) -> tuple[int, int]:
        if type(tp) is not TopicPartition:
            tp = check_topic_partition(tp, "partition")
        try:
            row = self._conn.execute(
                "SELECT log_start_offset, next_offset FROM partition_ends WHERE topic=? AND partition=?", tp
            ).fetchone()
        except Exception as exc:
            raise translate(exc, "reading the partitions of the log") from exc
        if row is None:
            raise UnknownTopicOrPartitionError(f"no partition {tp.partition} of topic {tp.topic!r} in this log")
        return row

    def _initial_position(self, tp: TopicPartition, start: int, end: int) -> int:
        committed = self.committed(tp) if self.group_id else None
        if committed is not None and start <= committed <= end:
            return committed
        return self._reset_position(tp, start, end)

    def _reset_position(self, tp: TopicPartition, start: int, end: int) -> int:
        if self._reset == "earliest":
            return start
        if self._reset == "latest":
            return end
        raise OffsetOutOfRangeError(
            f"no valid position for {tp.topic}[{tp.partition}] (log holds {start}..{end}) and auto_offset_reset='none'"
        )

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record ``poll`` will return for ``tp``."""
        tp = check_topic_partition(tp, "position")
        if tp not in self._positions:
            start, end = self._partition_meta(tp)
            self._positions[tp] = self._initial_position(tp, start, end)
        return self._positions[tp]

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` on (out of range is reset on the next poll, as in Kafka)."""
        if not is_int(offset) or offset < 0:
            raise ConfigError(f"seek: offset must be a non-negative integer, got {offset!r}")
        tp = check_topic_partition(partition, "seek")
        self._partition_meta(tp)
        self._positions[tp] = offset
        self._buffer = [r for r in self._buffer if (r.topic, r.partition) != tp]

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self._assigned):
            self.seek(tp, self._partition_meta(check_topic_partition(tp, "seek_to_beginning"))[0])

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self._assigned):
            self.seek(tp, self._partition_meta(check_topic_partition(tp, "seek_to_end"))[1])

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        tps = [check_topic_partition(tp, "beginning_offsets") for tp in check_list(partitions, "beginning_offsets")]
        return {tp: self._partition_meta(tp)[0] for tp in tps}

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        tps = [check_topic_partition(tp, "end_offsets") for tp in check_list(partitions, "end_offsets")]
        return {tp: self._partition_meta(tp)[1] for tp in tps}

    def highwater(self, partition: TopicPartition) -> int:
        return self._partition_meta(check_topic_partition(partition, "highwater"))[1]

    @translated("looking up offsets by time")
    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition, the earliest offset whose timestamp is >= the given ms (None if none)."""
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        if not isinstance(timestamps, dict):
            raise ConfigError(f"offsets_for_times: expected a dict of TopicPartition to ms, got {timestamps!r:.80}")
        for tp, ts in timestamps.items():
            tp = check_topic_partition(tp, "offsets_for_times")
            check_timestamp(ts)
            self._partition_meta(tp)
            row = self._conn.execute(
                f"SELECT offset, timestamp FROM records WHERE {OFFSET_RANGE_SQL} AND timestamp>=?"
                " ORDER BY id LIMIT 1",
                (*offset_range(tp.topic, tp.partition), ts),
            ).fetchone()
            out[tp] = OffsetAndTimestamp(*row) if row else None
        return out

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update([check_topic_partition(tp, "pause") for tp in partitions])

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update([check_topic_partition(tp, "resume") for tp in partitions])

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    # -- reading ------------------------------------------------------------------------------

    def poll(self, timeout_ms: float = 0, max_records: int | None = None,
             update_offsets: bool = True) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Return records that are there now, or wait up to ``timeout_ms`` for some.

        Returns ``{TopicPartition: [ConsumerRecord, ...]}`` (empty when none came).
        """
        self._check_open()
        limit = self._poll_limit(timeout_ms, max_records)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self._maybe_auto_commit()
            self._watcher.drain()
            records = self._buffer[:limit] if self._buffer else self._fetch(limit, self._records)
            if self._buffer:
                self._buffer = self._buffer[limit:]
            if records:
                out: dict[TopicPartition, list[ConsumerRecord]] = {}
                for r in records:
                    out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
                return out
            if not self._wait(deadline):
                return {}

    def poll_raw(self, timeout_ms: float = 0, max_records: int | None = None) -> list[RawRecord]:
        """As ``poll``, but the records as stored (``RawRecord``), in one list in read order.

        For readers that pass records on: no deserializer runs and the header text is not
        decoded, which is most of what a read costs.  Positions, pauses, commits and
        resets work as for ``poll``.  Records that iteration fetched but did not hand out
        yet are read again from the log.
        """
        self._check_open()
        if self._buffer:  # not handed out: read them again, as stored
            for r in reversed(self._buffer):
                self._positions[TopicPartition(r.topic, r.partition)] = r.offset
            self._buffer = []
        limit = self._poll_limit(timeout_ms, max_records)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self._maybe_auto_commit()
            self._watcher.drain()
            records = self._fetch(limit, _raw_records)
            if records or not self._wait(deadline):
                return records

    def _poll_limit(self, timeout_ms: object, max_records: object) -> int:
        """Check poll's arguments; the most records to return."""
        if type(timeout_ms) is not int and type(timeout_ms) is not float:
            check_seconds(timeout_ms, "poll: timeout_ms", allow_none=False)
        elif timeout_ms < 0 or timeout_ms != timeout_ms:
            raise ConfigError(f"poll: timeout_ms: expected a number >= 0, got {timeout_ms!r}")
        if max_records is None:
            return self._max_records
        if not is_int(max_records) or max_records < 1:
            raise ConfigError(f"poll: max_records: expected an integer >= 1 or None, got {max_records!r:.80}")
        return max_records

    def _wait(self, deadline: float) -> bool:
        """Wait for a commit to the log until ``deadline``; False when it has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._watcher.wait(min(remaining, 1.0))
        return True

    def _fetch(self, limit: int, convert: Callable[[TopicPartition, list[tuple[Any, ...]]], list[Any]]
               ) -> list[Any]:
        """Up to ``limit`` rows from the partitions in turn, made records by ``convert``."""
        self._refresh()
        parts = [tp for tp in self._assigned if tp not in self._paused]
        if not parts:
            return []
        moved: list[tuple[TopicPartition, int]] = []  # positions this fetch advanced, to undo on an error
        try:
            meta: dict[tuple[str, int], tuple[int, int]] = {}
            for topic in {tp.topic for tp in parts}:
                for part, start, end in self._conn.execute(
                    "SELECT partition, log_start_offset, next_offset FROM partition_ends WHERE topic=?", (topic,)
                ):
                    meta[(topic, part)] = (start, end)
            out: list[Any] = []
            n = len(parts)
            for i in range(n):
                if len(out) >= limit:
                    break
                tp = parts[(self._next_rr + i) % n]
                bounds = meta.get(tp)
                if bounds is None:
                    continue
                start, end = bounds
                pos = self._positions.get(tp)
                if pos is None:
                    pos = self._positions[tp] = self._initial_position(tp, start, end)
                if pos < start or pos > end:  # retention passed us, or the topic was re-created
                    pos = self._positions[tp] = self._reset_position(tp, start, end)
                if pos >= end:
                    continue
                rows = self._conn.execute(
                    "SELECT offset, timestamp, key, value, headers FROM records"
                    f" WHERE {OFFSET_RANGE_SQL} ORDER BY id LIMIT ?",
                    (*offset_range(tp.topic, tp.partition, pos), limit - len(out)),
                ).fetchall()
                if rows:
                    recs = convert(tp, rows)
                    out.extend(recs)
                    moved.append((tp, pos))
                    self._positions[tp] = rows[len(recs) - 1][0] + 1 if recs else pos
                    if len(recs) < len(rows):  # a record the deserializer refuses: the next poll raises
                        break
            self._next_rr = (self._next_rr + 1) % n
            return out
        except Exception as exc:
            # The records converted before the error are dropped with it: had their
            # partitions kept the new positions, they would never be handed out.
            for tp, pos in moved:
                self._positions[tp] = pos
            raise translate(exc, "reading the log") from exc

    def _records(self, tp: TopicPartition, rows: list[tuple[Any, ...]]) -> list[ConsumerRecord]:
        if self._key_des is None and self._value_des is None:
            return [self._record(tp, *row) for row in rows]
        out = []
        for row in rows:
            try:
                out.append(self._record(tp, *row))
            except Exception as exc:  # the caller's deserializer: say which record, stay before it
                if out:  # hand out the records before it first, as Kafka's consumer does
                    return out
                raise SerializationError(
                    f"a deserializer failed on {tp.topic}[{tp.partition}] offset {row[0]}: "
                    f"{type(exc).__name__}: {exc}; the consumer stays before that record "
                    f"(seek to {row[0] + 1} to skip it)"
                ) from exc
        return out

    def _record(self, tp: TopicPartition, off: int, ts: int, key: bytes | None, value: bytes | None,
                hdr: str | None) -> ConsumerRecord:
        return ConsumerRecord(
            tp.topic, tp.partition, off, ts, 0,
            self._key_des(key) if (self._key_des and key is not None) else key,
            self._value_des(value) if (self._value_des and value is not None) else value,
            decode_headers(hdr), None,
            len(key) if key is not None else -1, len(value) if value is not None else -1,
            len(hdr) if hdr else -1,
        )

    def __iter__(self) -> Iterator[ConsumerRecord]:
        return self

    def __next__(self) -> ConsumerRecord:
        deadline = time.monotonic() + self._timeout_s
        while True:
            if not self._buffer:
                batch = self.poll(timeout_ms=min(1000.0, max(0.0, deadline - time.monotonic()) * 1000))
                self._buffer = [r for recs in batch.values() for r in recs]
            if self._buffer:
                return self._buffer.pop(0)
            if time.monotonic() >= deadline or self._closed:
                raise StopIteration

    # -- committing ---------------------------------------------------------------------------

    @translated("reading a committed offset")
    @overload
    def committed(self, partition: TopicPartition, metadata: Literal[False] = False) -> int | None: ...
    @overload
    def committed(self, partition: TopicPartition, metadata: Literal[True]) -> OffsetAndMetadata | None: ...
    @overload
    def committed(self, partition: TopicPartition, metadata: bool) -> int | OffsetAndMetadata | None: ...

    def committed(self, partition: TopicPartition, metadata: bool = False) -> int | OffsetAndMetadata | None:
        """The group's committed offset for ``partition`` (None if it never committed)."""
        if self.group_id is None:
            raise ConfigError("committed() needs a group_id")
        tp = check_topic_partition(partition, "committed")
        row = self._conn.execute(
            "SELECT offset, metadata FROM group_offsets WHERE group_id=? AND topic=? AND partition=?",
            (self.group_id, tp.topic, tp.partition),
        ).fetchone()
        if row is None:
            return None
        return OffsetAndMetadata(*row) if metadata else row[0]

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None) -> None:
        """Commit ``offsets`` (default: the current positions) for the group, durably."""
        self._check_open()
        if self.group_id is None:
            raise ConfigError("commit() needs a group_id: create the consumer with group_id=...")
        implicit = offsets is None
        if implicit:
            offsets = self._consumed_positions()
        if not offsets:
            return
        now = self._log.clock.wall_ms()
        rows = [(self.group_id, tp.topic, tp.partition, off, meta, now)
                for tp, off, meta in check_commit_offsets(offsets, "commit")]
        try:
            with transaction(self._conn):
                # As Kafka answers UNKNOWN_TOPIC_OR_PARTITION: an offset of a partition that
                # does not exist would be kept for a topic created later under that name.
                # Our own positions on a topic deleted since are dropped, as a rebalance would.
                for row in list(rows):
                    if self._conn.execute("SELECT 1 FROM partitions WHERE topic=? AND partition=?",
                                          row[1:3]).fetchone() is None:
                        if not implicit:
                            raise UnknownTopicOrPartitionError(
                                f"commit: no partition {row[2]} of topic {row[1]!r} in this log; "
                                "nothing was committed")
                        rows.remove(row)
                upsert_group_offsets(self._conn, rows)
        except Exception as exc:
            raise translate(exc, f"committing offsets of group {self.group_id!r}") from exc
        for _g, t, p, off, _m, _n in rows:
            self._committed_pos[TopicPartition(t, p)] = off
        self._last_commit = time.monotonic()

    def _consumed_positions(self) -> dict[TopicPartition, int]:
        # Records fetched but still buffered for iteration were not handed out:
        # committing past them would skip them after a restart.
        pos = dict(self._positions)
        for r in reversed(self._buffer):
            pos[TopicPartition(r.topic, r.partition)] = r.offset
        return {tp: off for tp, off in pos.items() if self._committed_pos.get(tp) != off}

    def commit_async(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None,
                     callback: Callable[[Mapping[Any, Any], Any], Any] | None = None) -> None:
        """As ``commit`` (the local commit is fast); calls ``callback(offsets, error)`` after."""
        error = None
        try:
            self.commit(offsets)
        except Exception as exc:  # handed to the callback, as kafka-python does
            error = exc
            if callback is None:
                raise
        if callback is not None:
            callback(offsets or {}, error)

    def _maybe_auto_commit(self) -> None:
        if self._auto_commit and time.monotonic() - self._last_commit >= self._auto_commit_s:
            self.commit()

    # -- lifetime -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this KafkaConsumer was closed")

    def close(self, autocommit: bool = True) -> None:
        """Commit positions (with a group and auto commit) and release the log; safe twice."""
        if self._closed:
            return
        try:
            if autocommit and self._auto_commit:
                self.commit()
        finally:
            self._closed = True
            self._watcher.close()
            self._conn.close()
            self._log.release()

    def __enter__(self) -> KafkaConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raw_records(tp: TopicPartition, rows: list[tuple[Any, ...]]) -> list[RawRecord]:
    # The row's columns are RawRecord's fields after topic and partition, in order.
    topic, partition = tp
    return [RawRecord(topic, partition, *row) for row in rows]
