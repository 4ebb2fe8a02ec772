"""Shared by the fleet tests: run `edge fleet`, write and read the control topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from kafka import KafkaConsumer, KafkaProducer


def prefix() -> str:
    """Control topics of this test's own: the session's cluster is shared."""
    return f"t{uuid.uuid4().hex[:8]}.control"


def fleet(*args: str, timeout: float = 90, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "fleet", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def reported(edge_id: str, **fields: Any) -> dict[str, Any]:
    """A reported document as PROTOCOL.md draws it."""
    doc: dict[str, Any] = {
        "edge_id": edge_id, "ts_ms": int(time.time() * 1000), "software_version": "0.1.0",
        "applied": {"version": 0, "hash": "0" * 64, "target": None}, "desired_result": None,
        "devices": {"t1": {"state": "up", "rate": 1.0}}, "log": {"bytes": 1, "records": 1},
        "uplink": {"state": "running", "lag_records": 0, "lag_s": 0.0}, "clock": "trusted",
        "last_error": None}
    doc.update(fields)
    return doc


def write(servers: str, topic: str, records: list[tuple[str, Any]]) -> None:
    """(key, document or None for a tombstone or raw bytes) records, acks=all."""
    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    try:
        for key, doc in records:
            value = doc if doc is None or isinstance(doc, bytes) else json.dumps(doc).encode()
            producer.send(topic, key=key.encode(), value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def read_all(servers: str, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    """Every record of ``topic`` from its start, once ``expected`` have come."""
    consumer = KafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=500)
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(consumer)
    finally:
        consumer.close()
    return out
