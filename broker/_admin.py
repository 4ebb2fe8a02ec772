"""``KafkaAdminClient``: topics, configs and consumer groups of the local log."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, overload

from . import _ledger
from ._checks import (
    check_commit_offsets,
    check_group_id,
    check_list,
    check_names,
    check_offset,
    check_topic_partition,
    is_int,
)
from ._client import open_log
from ._config import (
    DROP_LEDGER_TOPIC,
    INTERNAL_TOPICS,
    MAX_PARTITIONS,
    LogConfig,
    TopicConfig,
    validate_topic_name,
)
from ._disk import disk_bytes
from ._errors import (
    ClosedError,
    ConfigError,
    GroupIdNotFoundError,
    InvalidPartitionsError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from ._group_offsets import upsert_group_offsets
from ._log import Log, create_topic_rows
from ._records import (
    ConsumerGroupDescription,
    GroupOffset,
    NewTopic,
    OffsetAndMetadata,
    PartitionDescription,
    TopicDescription,
    TopicPartition,
)
from ._storage import (
    MAX_OFFSET,
    NEW_PARTITION_SQL,
    OFFSET_BITS,
    OFFSET_RANGE_SQL,
    offset_range,
    transaction,
    translate,
    translated,
)


class ConfigResourceType(IntEnum):
    """As ``kafka.admin.ConfigResourceType``; only topics have configs here."""

    TOPIC = 2


@dataclass
class ConfigResource:
    """As ``kafka.admin.ConfigResource``: a topic and the configs to set or read."""

    resource_type: ConfigResourceType | str
    name: str
    configs: dict[str, str] | None = field(default=None)


@dataclass(frozen=True)
class NewPartitions:
    """As ``kafka.admin.NewPartitions``: grow a topic to ``total_count`` partitions."""

    total_count: int
    new_assignments: Any = None


def _resources(resources: object, what: str) -> list[ConfigResource]:
    """Topic ``ConfigResource``s, checked: only topics have configs here."""
    out = []
    for res in check_list(resources, what):
        if not isinstance(res, ConfigResource) or not isinstance(res.name, str):
            raise ConfigError(f"{what}: expected ConfigResource(ConfigResourceType.TOPIC, name), got {res!r:.80}")
        if res.resource_type not in (ConfigResourceType.TOPIC, "TOPIC", "topic"):
            raise ConfigError(f"{what}: only topics have configs here, not {res.resource_type!r}")
        out.append(res)
    return out


def _not_internal(name: str, done: str) -> None:
    if name in INTERNAL_TOPICS:
        raise InvalidTopicError(f"topic {name!r} is the log's own (it records what the log dropped): "
                                f"it cannot be {done} by a client")


def _check_partition_count(count: object, what: str) -> None:
    if not is_int(count) or not 1 <= count <= MAX_PARTITIONS:
        raise InvalidPartitionsError(
            f"{what} must be an integer from 1 to {MAX_PARTITIONS} (the most a topic may have here), "
            f"got {count!r:.80}"
        )


def _group_exists(conn: Any, group_id: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM group_offsets WHERE group_id=? UNION ALL SELECT 1 FROM protected_groups WHERE group_id=?"
        " LIMIT 1", (group_id, group_id)).fetchone() is not None


def known_partition_count(lg: Log, topic: str) -> int | None:
    """How many partitions ``topic`` has, or None if there is no such topic."""
    try:
        row = lg.reader().execute("SELECT partitions FROM topics WHERE name=?", (topic,)).fetchone()
    except Exception as exc:
        raise translate(exc, f"reading the partitions of {topic!r}") from exc
    return None if row is None else row[0]


def topic_partition_count(lg: Log, topic: str) -> int:
    row = lg.reader().execute("SELECT partitions FROM topics WHERE name=?", (topic,)).fetchone()
    if row is None:
        raise UnknownTopicOrPartitionError(f"unknown topic {topic!r}")
    return row[0]


class KafkaAdminClient:
    """Manage the local log as kafka-python's ``KafkaAdminClient`` manages a cluster.

    Every method is synchronous and durable when it returns.  Raises
    ``TopicAlreadyExistsError``, ``UnknownTopicOrPartitionError``,
    ``InvalidPartitionsError`` or ``ConfigError`` for bad requests.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *,
                 log_config: LogConfig | None = None, **kafka_options: Any) -> None:
        self._log = open_log(data_dir, log_config, kafka_options, "KafkaAdminClient")
        self._closed = False

    def _conn(self):  # sqlite3.Connection
        if self._closed:
            raise ClosedError("this KafkaAdminClient was closed")
        return self._log.reader()

    def _write(self, what: str):  # context manager
        return _Write(self, what)

    # -- topics -------------------------------------------------------------------------------

    def create_topics(self, new_topics: Iterable[NewTopic], timeout_ms: int | None = None,
                      validate_only: bool = False) -> None:
        """Create topics; all or none (a bad one fails the whole call before anything is written)."""
        todo = []
        if isinstance(new_topics, NewTopic) or not isinstance(new_topics, Iterable):
            raise ConfigError(f"create_topics: expected a list of NewTopic, got {new_topics!r:.80}")
        for nt in new_topics:
            if not isinstance(nt, NewTopic):
                raise ConfigError(f"create_topics: expected NewTopic(name, num_partitions), got {nt!r:.80}")
            validate_topic_name(nt.name)
            _not_internal(nt.name, "created")
            _check_partition_count(nt.num_partitions, f"topic {nt.name!r}: num_partitions")
            if not is_int(nt.replication_factor) or nt.replication_factor not in (1, -1):
                raise ConfigError(
                    f"topic {nt.name!r}: replication_factor {nt.replication_factor!r} is not possible on one box; use 1"
                )
            if nt.topic_configs is not None and not isinstance(nt.topic_configs, Mapping):
                raise ConfigError(f"topic {nt.name!r}: topic_configs: expected a dict, got {nt.topic_configs!r:.80}")
            cfg = self._log.config.default_topic_config.altered(dict(nt.topic_configs or {}))
            todo.append((nt, cfg))
        names = [nt.name for nt, _ in todo]
        if len(set(names)) != len(names):
            raise ConfigError(f"create_topics: a topic is named twice in {names}")
        if validate_only:
            return
        with self._write("creating topics") as conn:
            for nt, cfg in todo:
                if conn.execute("SELECT 1 FROM topics WHERE name=?", (nt.name,)).fetchone():
                    raise TopicAlreadyExistsError(f"topic {nt.name!r} already exists")
                create_topic_rows(conn, nt.name, nt.num_partitions, cfg, self._log.clock.wall_ms())

    def delete_topics(self, topics: Iterable[str], timeout_ms: int | None = None) -> None:
        """Delete topics, their records and the groups' offsets on them."""
        topics = check_names(topics, "delete_topics")
        for name in topics:
            _not_internal(name, "deleted")
        with self._write("deleting topics") as conn:
            for name in topics:
                if not conn.execute("SELECT 1 FROM topics WHERE name=?", (name,)).fetchone():
                    raise UnknownTopicOrPartitionError(f"cannot delete unknown topic {name!r}")
                for (pid,) in conn.execute("SELECT id FROM partitions WHERE topic=?", (name,)).fetchall():
                    conn.execute("DELETE FROM records WHERE id BETWEEN ? AND ?",
                                 (pid << OFFSET_BITS, (pid << OFFSET_BITS) + MAX_OFFSET))
                for table, col in (("partitions", "topic"), ("group_offsets", "topic"), ("topics", "name")):
                    conn.execute(f"DELETE FROM {table} WHERE {col}=?", (name,))

    @translated("listing topics")
    def list_topics(self) -> list[str]:
        return [n for (n,) in self._conn().execute("SELECT name FROM topics ORDER BY name")]

    @translated("describing topics")
    def describe_topics(self, topics: Iterable[str] | None = None) -> list[TopicDescription]:
        """Partitions with their offsets, record counts and sizes, and the topic config."""
        conn = self._conn()
        names = check_names(topics, "describe_topics") if topics is not None else self.list_topics()
        out = []
        for name in names:
            row = conn.execute(
                "SELECT retention_ms, retention_bytes, priority FROM topics WHERE name=?", (name,)
            ).fetchone()
            if row is None:
                raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
            cfg = TopicConfig(*row)
            parts = [
                PartitionDescription(p, start, end, count, size)
                for p, start, end, size, count in conn.execute(
                    "SELECT p.partition, p.log_start_offset, p.next_offset, p.bytes,"
                    f" (SELECT count(*) FROM records r WHERE r.id BETWEEN (p.id << {OFFSET_BITS}) + p.log_start_offset"
                    f"  AND (p.id << {OFFSET_BITS}) + {MAX_OFFSET})"
                    " FROM partition_ends p WHERE p.topic=? ORDER BY p.partition",
                    (name,),
                )
            ]
            out.append(TopicDescription(name, parts, cfg.to_kafka(), cfg.priority))
        return out

    def create_partitions(self, topic_partitions: dict[str, NewPartitions], timeout_ms: int | None = None,
                          validate_only: bool = False) -> None:
        """Grow topics (keys then map to other partitions, as in Kafka)."""
        if not isinstance(topic_partitions, Mapping):
            raise ConfigError(f"create_partitions: expected a dict of topic name to NewPartitions, "
                              f"got {topic_partitions!r:.80}")
        for name, np in topic_partitions.items():
            if not isinstance(np, NewPartitions):
                raise ConfigError(f"create_partitions: {name!r}: expected NewPartitions(total_count), got {np!r:.80}")
            _check_partition_count(np.total_count, f"topic {name!r}: NewPartitions.total_count")
            _not_internal(name, "given partitions")
        with self._write("adding partitions") as conn:
            for name, np in topic_partitions.items():
                row = conn.execute("SELECT partitions FROM topics WHERE name=?", (name,)).fetchone()
                if row is None:
                    raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
                if np.total_count <= row[0]:
                    raise InvalidPartitionsError(
                        f"topic {name!r} has {row[0]} partitions; the new count must be larger, got {np.total_count}"
                    )
                if validate_only:
                    continue
                conn.execute("UPDATE topics SET partitions=? WHERE name=?", (np.total_count, name))
                conn.executemany(NEW_PARTITION_SQL, [(name, p) for p in range(row[0], np.total_count)])

    def describe_configs(self, config_resources: Iterable[ConfigResource]) -> list[ConfigResource]:
        out = []
        for res in _resources(config_resources, "describe_configs"):
            desc = self.describe_topics([res.name])[0]
            out.append(ConfigResource(ConfigResourceType.TOPIC, res.name, dict(desc.config)))
        return out

    def alter_configs(self, config_resources: Iterable[ConfigResource]) -> None:
        """Set topic configs (``retention.ms``, ``retention.bytes``, ``priority``)."""
        for res in _resources(config_resources, "alter_configs"):
            self.alter_topic_config(res.name, res.configs or {})

    def alter_topic_config(self, topic: str, changes: dict[str, str]) -> TopicConfig:
        """Apply Kafka-style ``changes`` to one topic; returns the new config."""
        validate_topic_name(topic)
        if not isinstance(changes, Mapping):
            raise ConfigError(f"alter_topic_config {topic!r}: expected a dict of config name to value, "
                              f"got {changes!r:.80}")
        with self._write(f"altering the config of {topic!r}") as conn:
            row = conn.execute(
                "SELECT retention_ms, retention_bytes, priority FROM topics WHERE name=?", (topic,)
            ).fetchone()
            if row is None:
                raise UnknownTopicOrPartitionError(f"unknown topic {topic!r}")
            cfg = TopicConfig(*row).altered(changes)
            conn.execute(
                "UPDATE topics SET retention_ms=?, retention_bytes=?, priority=? WHERE name=?",
                (cfg.retention_ms, cfg.retention_bytes, cfg.priority, topic),
            )
        return cfg

    # -- consumer groups ----------------------------------------------------------------------

    @translated("listing consumer groups")
    def list_consumer_groups(self) -> list[tuple[str, str]]:
        """``[(group_id, "consumer"), ...]`` for every group that committed an offset."""
        rows = self._conn().execute(
            "SELECT DISTINCT group_id FROM group_offsets UNION SELECT group_id FROM protected_groups ORDER BY 1"
        )
        return [(g, "consumer") for (g,) in rows]

    @translated("reading a group's offsets")
    def list_consumer_group_offsets(self, group_id: str,
                                    partitions: Iterable[TopicPartition] | None = None
                                    ) -> dict[TopicPartition, OffsetAndMetadata]:
        check_group_id(group_id, "list_consumer_group_offsets")
        rows = self._conn().execute(
            "SELECT topic, partition, offset, metadata FROM group_offsets WHERE group_id=? ORDER BY topic, partition",
            (group_id,),
        )
        out = {TopicPartition(t, p): OffsetAndMetadata(o, m) for t, p, o, m in rows}
        if partitions is not None:
            want = {check_topic_partition(tp, "list_consumer_group_offsets")
                    for tp in check_list(partitions, "list_consumer_group_offsets")}
            out = {tp: om for tp, om in out.items() if tp in want}
        return out

    @translated("describing a consumer group")
    def describe_consumer_group(self, group_id: str) -> ConsumerGroupDescription:
        """Committed offsets, log end offsets and lag per partition of the group's topics.

        A group that never committed and is not protected is described as empty, as
        kafka-python describes a group Kafka does not know (state "Dead").
        """
        check_group_id(group_id, "describe_consumer_group")
        conn = self._conn()
        committed = self.list_consumer_group_offsets(group_id)
        topics = sorted({tp.topic for tp in committed})
        rows = []
        for topic in topics:
            for p, end in conn.execute("SELECT partition, next_offset FROM partition_ends WHERE topic=?", (topic,)):
                c = committed.get(TopicPartition(topic, p))
                rows.append(GroupOffset(topic, p, c.offset if c else None, end, end - c.offset if c else None))
        protected = conn.execute("SELECT 1 FROM protected_groups WHERE group_id=?", (group_id,)).fetchone()
        scope = tuple(t for (t,) in conn.execute(
            "SELECT topic FROM protected_group_topics WHERE group_id=? ORDER BY topic", (group_id,)))
        return ConsumerGroupDescription(group_id, bool(protected), rows,
                                        scope if protected and scope else None)

    def alter_consumer_group_offsets(self, group_id: str,
                                     offsets: dict[TopicPartition, OffsetAndMetadata | int]) -> None:
        check_group_id(group_id, "alter_consumer_group_offsets")
        checked = check_commit_offsets(offsets, f"alter_consumer_group_offsets {group_id!r}")
        now = self._log.clock.wall_ms()
        with self._write(f"setting offsets of group {group_id!r}") as conn:
            for tp, _off, _meta in checked:
                if conn.execute("SELECT 1 FROM partitions WHERE topic=? AND partition=?", tuple(tp)).fetchone() is None:
                    raise UnknownTopicOrPartitionError(f"no partition {tp[1]} of topic {tp[0]!r}")
            upsert_group_offsets(conn, [(group_id, tp[0], tp[1], off, meta, now) for tp, off, meta in checked])

    @translated("planning an offset reset")
    def reset_consumer_group_offsets(self, group_id: str, topics: Iterable[str], to: str,
                                     value: int | None = None, execute: bool = True) -> dict[TopicPartition, int]:
        """Compute (and with ``execute``, commit) new offsets for the group on ``topics``.

        ``to``: ``earliest``, ``latest``, ``timestamp`` (``value`` in ms: the first
        record at or after it, else the end) or ``offset`` (``value``, clamped to the log).
        """
        if to not in ("earliest", "latest", "timestamp", "offset"):
            raise ConfigError(f"reset to {to!r}: expected earliest, latest, timestamp or offset")
        check_group_id(group_id, "reset_consumer_group_offsets")
        if to == "offset":
            check_offset(value, "reset to offset: value")
        elif to == "timestamp" and not (is_int(value) and 0 <= value < 2**63):
            raise ConfigError(f"reset to timestamp: value: expected ms since the epoch (>= 0), got {value!r:.80}")
        topics = check_names(topics, "reset_consumer_group_offsets: topics")
        conn = self._conn()
        plan: dict[TopicPartition, int] = {}
        for topic in topics:
            parts = conn.execute(
                "SELECT partition, log_start_offset, next_offset FROM partition_ends WHERE topic=? ORDER BY partition",
                (topic,),
            ).fetchall()
            if not parts:
                raise UnknownTopicOrPartitionError(f"unknown topic {topic!r}")
            for p, start, end in parts:
                if to == "earliest":
                    off = start
                elif to == "latest":
                    off = end
                elif to == "offset":
                    off = min(max(value, start), end)
                else:
                    row = conn.execute(
                        f"SELECT min(offset) FROM records WHERE {OFFSET_RANGE_SQL} AND timestamp>=?",
                        (*offset_range(topic, p), value),
                    ).fetchone()
                    off = row[0] if row[0] is not None else end
                plan[TopicPartition(topic, p)] = off
        if execute:
            self.alter_consumer_group_offsets(group_id, dict(plan))
        return plan

    def delete_consumer_groups(self, group_ids: Iterable[str]) -> None:
        """Delete groups' offsets and protection; all or none (an unknown group fails the call).

        Raises ``GroupIdNotFoundError`` for a group that never committed and is not protected.
        """
        group_ids = check_names(group_ids, "delete_consumer_groups")
        with self._write("deleting consumer groups") as conn:
            for g in group_ids:
                if not _group_exists(conn, g):
                    raise GroupIdNotFoundError(f"consumer group {g!r} does not exist (it never committed an "
                                               "offset and is not protected); nothing was deleted")
            for g in group_ids:
                conn.execute("DELETE FROM group_offsets WHERE group_id=?", (g,))
                conn.execute("DELETE FROM protected_groups WHERE group_id=?", (g,))
                conn.execute("DELETE FROM protected_group_topics WHERE group_id=?", (g,))

    def protect_consumer_group(self, group_id: str, protected: bool = True,
                               topics: Iterable[str] | None = None) -> None:
        """Make retention keep every record this group has not committed past (the uplink's group).

        ``topics``: protect only records of these topics (a stream topology's
        inputs), replacing any earlier list; ``None`` protects every topic.  A
        group that reads some topics only must name them: a protected group
        without a commit on a partition keeps all of it, so an unscoped one
        would stop retention on every topic it never reads.  Under the disk
        quota's ``drop-oldest`` policy protected records still go, last.
        ``protected=False`` removes the protection and its topic list.
        """
        check_group_id(group_id, "protect_consumer_group")
        if type(protected) is not bool:
            raise ConfigError(f"protect_consumer_group {group_id!r}: protected: expected True or False, got {protected!r:.80}")
        scope = None if topics is None else sorted(set(check_names(topics, "protect_consumer_group: topics")))
        if scope is not None and (not scope or not all(isinstance(t, str) and t for t in scope)):
            raise ConfigError(f"protect_consumer_group {group_id!r}: topics: expected topic names "
                              f"(or None for every topic), got {topics!r}")
        with self._write(f"protecting group {group_id!r}") as conn:
            conn.execute("DELETE FROM protected_group_topics WHERE group_id=?", (group_id,))
            if protected:
                conn.execute("INSERT OR IGNORE INTO protected_groups(group_id) VALUES (?)", (group_id,))
                conn.executemany("INSERT INTO protected_group_topics(group_id, topic) VALUES (?, ?)",
                                 [(group_id, t) for t in scope or ()])
            else:
                conn.execute("DELETE FROM protected_groups WHERE group_id=?", (group_id,))

    # -- state stores (written by LogTransaction.put_state) ----------------------------------

    @translated("listing state stores")
    def list_state_stores(self) -> list[str]:
        """The names of the state stores that hold at least one key."""
        return [s for (s,) in self._conn().execute("SELECT DISTINCT store FROM state ORDER BY store")]

    @overload
    def read_state_store(self, store: str, prefix: None = None) -> dict[bytes, bytes]: ...
    @overload
    def read_state_store(self, store: str, prefix: str) -> dict[tuple[str, bytes], bytes]: ...

    @translated("reading a state store")
    def read_state_store(self, store: str, prefix: str | None = None
                         ) -> dict[bytes, bytes] | dict[tuple[str, bytes], bytes]:
        """Every committed key and value of ``store`` (or of every store named ``prefix``...).

        With ``prefix``, keys are ``(store name, key)`` pairs of each store whose
        name starts with ``prefix``; ``store`` is then ignored.
        """
        if not isinstance(store, str) or not (prefix is None or isinstance(prefix, str)):
            raise ConfigError(f"read_state_store: expected a store name and a prefix (str or None), "
                              f"got {store!r:.60}, {prefix!r:.60}")
        conn = self._conn()
        if prefix is not None:
            rows = conn.execute(
                "SELECT store, key, value FROM state WHERE store >= ? AND store < ?",
                (prefix, prefix + "\U0010ffff"),
            )
            return {(s, k): v for s, k, v in rows}
        return dict(conn.execute("SELECT key, value FROM state WHERE store=?", (store,)))

    def delete_state_stores(self, stores: Iterable[str]) -> None:
        """Remove every key of ``stores`` (to start a topology from scratch, with its group)."""
        stores = check_names(stores, "delete_state_stores")
        with self._write("deleting state stores") as conn:
            conn.executemany("DELETE FROM state WHERE store=?", [(s,) for s in stores])

    # -- the log as a whole -------------------------------------------------------------------

    @translated("describing the log")
    def describe_log(self) -> dict[str, Any]:
        """Size, quota and drop counters of the whole log, and records and bytes per topic."""
        conn = self._conn()
        topics = {
            name: {"partitions": n, "records": int(records), "bytes": int(size)}
            for name, n, records, size in conn.execute(
                "SELECT topic, count(*), sum(next_offset-log_start_offset), sum(bytes)"
                " FROM partition_ends GROUP BY topic ORDER BY topic"
            )
        }
        used, records = conn.execute("SELECT coalesce(sum(bytes),0), coalesce(sum(next_offset-log_start_offset),0)"
                                     " FROM partition_ends").fetchone()
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        cfg = self._log.config
        return {
            "data_dir": str(cfg.data_dir),
            "bytes": used,
            "records": records,
            "file_bytes": page_size * pages,
            # What the quota bounds: the database file, its WAL and the WAL's index, as on disk.
            "disk_bytes": disk_bytes(cfg.data_dir),
            "quota_bytes": cfg.quota_bytes,
            "full_policy": cfg.full_policy.value,
            "durability": cfg.durability.value,
            "dropped_records": int(meta.get("dropped_records", 0)),
            "expired_records": int(meta.get("expired_records", 0)),
            "ledger_summarised_entries": int(meta.get("ledger_summarised_entries", 0)),
            "log_clock_ms": int(meta.get("log_clock_ms", 0)),
            "drop_ledger_topic": DROP_LEDGER_TOPIC,
            "topics": topics,
        }

    def record_drops(self, topic: str, ranges: Iterable[tuple[int, int, int]], reason: str,
                     **fields: Any) -> None:
        """Name records given up on in the drop ledger (``DROP_LEDGER_TOPIC``), which clients cannot write.

        For a reader of this log that drops records for its own reasons (the
        uplink: records the cluster refuses).  ``ranges``: (partition,
        from_offset, to_offset), inclusive; ``fields``: more JSON keys of the
        entry (e.g. ``dead_letter_topic``).  The entry is kept like the
        quota's own: summarised with its kind when the ledger outgrows its
        share.  Blocks until durable; raises ``ConfigError`` for a bad argument.
        """
        value = _ledger.caller_entry(topic, list(ranges), reason, self._log.clock.wall_ms(), fields)
        self._conn()
        self._log.record_drops(value)

    def run_retention(self) -> dict[str, int]:
        """Apply retention now rather than at the next periodic pass; returns removed counts."""
        self._conn()
        return self._log.run_retention()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._log.release()

    def __enter__(self) -> KafkaAdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Write:
    """One durable metadata transaction on the admin's connection, errors translated."""

    def __init__(self, admin: KafkaAdminClient, what: str) -> None:
        self._conn = admin._conn()
        self._what = what
        self._log = admin._log
        self._tx = transaction(self._conn)

    def __enter__(self):
        try:
            return self._tx.__enter__()
        except Exception as exc:
            raise translate(exc, self._what) from exc

    def __exit__(self, et, ev, tb):
        try:
            self._tx.__exit__(et, ev, tb)
        except Exception as exc:
            raise translate(exc, self._what) from exc
        if et is None:
            self._log.notify()
        return False
