"""The exactly-once checkpoint upstream: what it holds, reading it, and keeping it alive.

The checkpoint is the offset of the upstream consumer group ``edge-uplink-<edge_id>`` on
partition 0 of each upstream topic, written in the same transaction as the records
(``send_offsets_to_transaction``); its metadata holds the next local offset of every
partition of the local topic, ``{"t": local_topic, "o": {partition: next_offset}}``, so the
partition counts of the two sides need not match.

Kafka deletes a group's offset ``offsets.retention.minutes`` (7 days by default) after it
was last committed when the group has no members, as ours never has. A topic that gets no
records for that long would lose its checkpoint and be replicated again from the local
start. So every checkpoint is written again (``CheckpointClock``) at least every quarter
of the cluster's retention (at most hourly), in an offsets-only transaction when the
uplink is idle, and all of them after each connect. What expires while the box is away
longer than the retention is made up for on the next connect (``_resume.py``).
"""

from __future__ import annotations

import json
import logging
import time

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as UpTP

from broker import TopicPartition

from ._errors import UplinkError

__all__ = ["CheckpointClock", "checkpoint_offsets", "read_checkpoint", "refresh_interval_s"]

log = logging.getLogger("edge.uplink")

#: Checkpoints are rewritten at least this often, whatever the cluster's retention.
MAX_REFRESH_S = 3600.0
#: ... and at least this many times within ``offsets.retention.minutes``.
REFRESHES_PER_RETENTION = 4


def checkpoint_offsets(replicated: dict[TopicPartition, int], topics: set[str],
                       upstream: dict[str, str]) -> dict[UpTP, OffsetAndMetadata]:
    """The checkpoint entries of the local ``topics`` (``upstream``: local -> upstream name)."""
    out = {}
    for topic in topics:
        parts = {str(tp.partition): off for tp, off in replicated.items() if tp.topic == topic}
        meta = json.dumps({"t": topic, "o": parts}, separators=(",", ":"))
        out[UpTP(upstream[topic], 0)] = OffsetAndMetadata(sum(parts.values()), meta)
    return out


async def read_checkpoint(admin: AIOKafkaAdminClient, group_id: str) -> dict[TopicPartition, int]:
    """The local offsets committed upstream with the records (those not expired)."""
    offsets = await admin.list_consumer_group_offsets(group_id)
    out: dict[TopicPartition, int] = {}
    for tp, om in offsets.items():
        if om.offset < 0 or not om.metadata:
            continue
        try:
            doc = json.loads(om.metadata)
            for p, off in doc["o"].items():
                out[TopicPartition(doc["t"], int(p))] = int(off)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UplinkError(f"unreadable uplink checkpoint of group {group_id!r} on {tp}:"
                              f" {om.metadata!r}") from exc
    return out


async def refresh_interval_s(admin: AIOKafkaAdminClient) -> float:
    """How often to rewrite each checkpoint: a quarter of the cluster's
    ``offsets.retention.minutes`` (asked of a broker), at most ``MAX_REFRESH_S``.

    A cluster that does not let us read its config gets ``MAX_REFRESH_S``: right for any
    retention of 4 hours or more (Kafka's default is 7 days); below that, the resume scan
    is what keeps a restart from sending twice.
    """
    key = "offsets.retention.minutes"
    try:
        node = (await admin.describe_cluster())["brokers"][0]["node_id"]  # cluster-wide setting
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(node), {key: None})])
        for response in responses:
            for resource in response.resources:
                for entry in resource[4]:
                    if entry[0] == key and entry[1] is not None:
                        minutes = float(entry[1])
                        return max(1.0, min(MAX_REFRESH_S,
                                            minutes * 60 / REFRESHES_PER_RETENTION))
    except Exception as exc:  # an ACL or an old broker: fall back, say so
        log.info("uplink: cannot read the cluster's %s (%r); checkpoints are rewritten every"
                 " %.0f s", key, exc, MAX_REFRESH_S)
    return MAX_REFRESH_S


class CheckpointClock:
    """When each local topic's checkpoint was last written upstream (``time.monotonic()``),
    and which are due again."""

    def __init__(self) -> None:
        self.interval_s = MAX_REFRESH_S
        self._written: dict[str, float] = {}

    def reset(self, interval_s: float) -> None:
        """A new connection: every checkpoint is due (it may have expired while away)."""
        self.interval_s = interval_s
        self._written.clear()

    def due(self, topics: set[str] | list[str]) -> set[str]:
        now = time.monotonic()
        return {t for t in topics if now - self._written.get(t, -1e18) >= self.interval_s}

    def written(self, topics: set[str], at: float) -> None:
        for t in topics:
            self._written[t] = at
