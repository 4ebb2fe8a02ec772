"""What the control channel must remember across reboots, kept in the local log.

One topic of the box's own log (``_edge_control``, 1 partition, kept forever, dropped last
under the disk quota) holds small JSON records keyed by what they describe; the last
record of a key wins, as in a compacted topic. Read whole at start: it holds the applied
desired state per target (so a box rebooted while offline runs it), the highest version
handled per target, the devices disabled by command, the ids of the commands executed
(each answered once), the positions reached in the upstream control topics (what was
refused before is not refused again at each start), the partition counts of those
topics seen at each connect (``_partitions.py``), and the last desired result. The topic is never mapped upstream.

Blocking: call from a thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from broker import (
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    NewTopic,
    TopicAlreadyExistsError,
    TopicPartition,
)

__all__ = ["STORE_TOPIC", "ControlState", "ControlStore"]

STORE_TOPIC = "_edge_control"
_KEEP = {"retention.ms": "-1", "retention.bytes": "-1", "priority": str(2**62)}


@dataclass
class ControlState:
    """The control channel's durable memory (see the module docstring)."""

    desired: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> payload
    seen: dict[str, int] = field(default_factory=dict)  # target -> highest version handled
    disabled: set[str] = field(default_factory=set)  # device names
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> result
    positions: dict[str, int] = field(default_factory=dict)  # "<topic>/<partition>" -> next offset
    partition_counts: dict[str, list[int]] = field(default_factory=dict)  # topic -> counts seen
    desired_result: dict[str, Any] | None = None

    def apply(self, key: str, value: Any) -> None:
        """Fold one stored record into the state."""
        kind, _, name = key.partition("/")
        if kind == "desired":
            if value is None:
                self.desired.pop(name, None)
            else:
                self.desired[name] = value
        elif kind == "seen":
            self.seen[name] = int(value)
        elif kind == "disabled":
            self.disabled = set(value or ())
        elif kind == "command":
            self.commands[name] = value
        elif kind == "position":
            self.positions[name] = int(value)
        elif kind == "partitions":
            self.partition_counts[name] = [int(c) for c in value]
        elif kind == "desired_result":
            self.desired_result = value


def _ensure_topic(log_config: LogConfig) -> None:
    with KafkaAdminClient(log_config=log_config) as admin:
        if STORE_TOPIC in admin.list_topics():
            return
        try:
            admin.create_topics([NewTopic(STORE_TOPIC, 1, topic_configs=dict(_KEEP))])
        except TopicAlreadyExistsError:
            pass


def read_state(log_config: LogConfig) -> ControlState:
    """The stored state (empty if the topic is not there yet); opens and closes the log."""
    state = ControlState()
    with KafkaAdminClient(log_config=log_config) as admin:
        if STORE_TOPIC not in admin.list_topics():
            return state
    consumer = KafkaConsumer(log_config=log_config, enable_auto_commit=False)
    try:
        tp = TopicPartition(STORE_TOPIC, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    state.apply(r.key.decode(), json.loads(r.value))
    finally:
        consumer.close()
    return state


class ControlStore:
    """Appends to the store topic; ``state`` is what is stored, kept up to date."""

    def __init__(self, log_config: LogConfig) -> None:
        self._log_config = log_config
        _ensure_topic(log_config)
        self.state = read_state(log_config)
        self._producer = KafkaProducer(log_config=log_config)

    def put(self, records: dict[str, Any]) -> None:
        """Store ``records`` (key -> JSON value) durably, then fold them into ``state``."""
        futures = [self._producer.send(STORE_TOPIC, json.dumps(v).encode(), key=k.encode())
                   for k, v in records.items()]
        for f in futures:
            f.get(timeout=30)
        for k, v in records.items():
            self.state.apply(k, v)

    def close(self) -> None:
        self._producer.close(5.0)
