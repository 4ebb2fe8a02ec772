"""Publishing to the fleet: a signed desired state, a signed command, and their answers.

The payloads and the signature are ``edge.control``'s (PROTOCOL.md), the very code the
boxes verify with. The next version of a target is the latest one on the compacted
desired topic plus one, read without verifying: it is only a number to go above, and a
box refuses a version that is not above what it applied anyway (``stale``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from edge.control import (
    DEFAULT_TOPICS,
    ControlTopics,
    command_payload,
    desired_payload,
    sign,
)

from ._cluster import Record, TopicSpec, check_placement, ensure_topics, now_ms, produce, scan
from ._connection import FleetConnection

__all__ = ["Published", "command_results", "control_topic_specs", "latest_version",
           "publish_command", "publish_desired"]


def control_topic_specs(topics: ControlTopics = DEFAULT_TOPICS, partitions: int = 6,
                        replication_factor: int | None = None) -> list[TopicSpec]:
    """The four control topics as the fleet creates them (docs/fleet.md sizes them: the
    reported topic, written by every box, gets twice the partitions)."""
    return [TopicSpec(topics.desired, partitions, True, replication_factor),
            TopicSpec(topics.commands, partitions, False, replication_factor),
            TopicSpec(topics.reported, 2 * partitions, True, replication_factor),
            TopicSpec(topics.results, partitions, False, replication_factor)]


@dataclass(frozen=True)
class Published:
    """Where a signed record landed, and what it said."""

    target: str
    partition: int
    offset: int
    payload: dict[str, Any]


def _version_of(value: bytes | None) -> int | None:
    try:
        envelope = json.loads(value or b"")
        payload = json.loads(base64.b64decode(envelope["payload"]))
        version = payload["version"]
    except (ValueError, KeyError, TypeError):
        return None  # not an envelope we can read: someone else's record; ignored
    return version if isinstance(version, int) and not isinstance(version, bool) else None


async def latest_version(conn: FleetConnection, target: str,
                         topics: ControlTopics = DEFAULT_TOPICS) -> int:
    """The highest version ``target`` was ever given on the desired topic (0: none yet).

    The highest of every record still on the topic, not the latest record's: the latest
    may be one no box accepted (unsigned, by a compromised producer) that says no version.
    """
    key, highest = target.encode(), 0

    def see(record: Record) -> None:
        nonlocal highest
        if record.key == key:
            highest = max(highest, _version_of(record.value) or 0)

    await scan(conn, topics.desired, see)
    return highest


async def publish_desired(conn: FleetConnection, target: str, sections: Mapping[str, Any],
                          private_key: Any, version: int | None = None,
                          topics: ControlTopics = DEFAULT_TOPICS) -> Published:
    """Sign ``sections`` as ``target``'s desired state (version: the latest + 1 unless
    given) and write it to the compacted desired topic, keyed by ``target``."""
    await ensure_topics(conn, control_topic_specs(topics))
    await check_placement(conn, topics.desired)
    if version is None:
        version = await latest_version(conn, target, topics) + 1
    payload = desired_payload(target, version, sections, issued_ms=now_ms())
    partition, offset = await produce(conn, topics.desired, target.encode(),
                                      sign(payload, private_key))
    return Published(target, partition, offset, payload)


async def publish_command(conn: FleetConnection, target: str, command: str,
                          args: Mapping[str, Any], ttl_s: float, private_key: Any,
                          topics: ControlTopics = DEFAULT_TOPICS) -> Published:
    """Sign and send one command to ``target`` (a fresh id; boxes run it at most once)."""
    await ensure_topics(conn, control_topic_specs(topics))
    await check_placement(conn, topics.commands)
    payload = command_payload(target, command, args, issued_ms=now_ms(),
                              ttl_ms=int(ttl_s * 1000))
    partition, offset = await produce(conn, topics.commands, target.encode(),
                                      sign(payload, private_key))
    return Published(target, partition, offset, payload)


async def command_results(records: AsyncIterator[Record], command_id: str
                          ) -> AsyncIterator[dict[str, Any]]:
    """The result documents of ``command_id`` among ``records`` (from ``follow``), as they come."""
    async for record in records:
        try:
            doc = json.loads(record.value or b"")
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("command_id") == command_id:
            yield doc
