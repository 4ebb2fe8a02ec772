"""``edge fleet watch``: reported state and command results, one line each as they come."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys

from edge.control import DEFAULT_TOPICS, ControlTopics

from ._cluster import Record, ensure_topics, follow
from ._connection import FleetConnection
from ._inventory import box_state
from ._publish import control_topic_specs

__all__ = ["watch_line", "watch_main"]


def _clock(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M:%S")


def watch_line(record: Record, as_json: bool = False,
               topics: ControlTopics = DEFAULT_TOPICS) -> str:
    """One line for a reported or result record (``as_json``: the topic, key and document)."""
    key = (record.key or b"").decode("utf-8", "replace")
    kind = "reported" if record.topic == topics.reported else "result"
    try:
        doc = json.loads(record.value) if record.value is not None else None
    except ValueError:
        doc = None
    if as_json:
        return json.dumps({"kind": kind, "key": key, "timestamp_ms": record.timestamp_ms,
                           "value": doc}, sort_keys=True)
    head = f"{_clock(record.timestamp_ms)} {kind:<8} {key}"
    if record.value is None:
        return f"{head}: removed (a tombstone)"
    if not isinstance(doc, dict):
        return f"{head}: unreadable ({len(record.value)} bytes, not a JSON object)"
    if kind == "result":
        detail = doc.get("detail")
        return (f"{head}: command {str(doc.get('command_id'))[:8]} {doc.get('result')}"
                + (f": {detail if isinstance(detail, str) else json.dumps(detail)}"
                   if detail not in (None, "") else ""))
    box = box_state(record.key or b"", record.value)
    applied = "-" if box.applied_version is None else f"v{box.applied_version}"
    lag = "" if box.lag is None else f", lag {box.lag}"
    error = f", last error: {box.last_error}" if box.last_error else ""
    return (f"{head}: applied {applied}, last desired {box.result_text()}, "
            f"uplink {box.uplink_state or '?'}{lag}{error}")


async def _watch(conn: FleetConnection, topics: ControlTopics, as_json: bool,
                 from_beginning: bool) -> None:
    await ensure_topics(conn, control_topic_specs(topics))
    async with follow(conn, [topics.reported, topics.results], from_beginning) as records:
        print(f"watching {topics.reported} and {topics.results} (Ctrl-C stops)", file=sys.stderr,
              flush=True)
        async for record in records:
            print(watch_line(record, as_json, topics), flush=True)


def watch_main(conn: FleetConnection, topics: ControlTopics = DEFAULT_TOPICS,
               as_json: bool = False, from_beginning: bool = False) -> int:
    """Follow until Ctrl-C: 130, as a shell expects."""
    try:
        asyncio.run(_watch(conn, topics, as_json, from_beginning))
    except KeyboardInterrupt:
        return 130
    return 0  # pragma: no cover: the loop ends only by an interrupt or an error
