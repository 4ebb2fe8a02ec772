"""A console over a real log in a temporary directory, without the rest of the service.

``LogOnlySource`` stands in for the running service (no devices run, nothing in
/health but ``ok``); the log, its reads and the live updates are the real ones. The
same endpoints are tested against a real ``edge run`` in test_console_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from broker import KafkaProducer, LogConfig
from edge._config import Config, parse_config
from edge._logconfig import log_config_of
from edge.console import Console, Credentials, HttpServer

CONFIG = """
edge_id = "test-edge"
data_dir = "{data}"
[log]
partitions = 2
durability = "no-fsync"

[[devices]]
name = "room-1"
kind = "temperature"
transport = "serial"
port = "/dev/null"
codec = "text"

[[devices]]
name = "car-1"
kind = "gps"
transport = "serial"
port = "/dev/null"
codec = "nmea0183"

[[streams]]
name = "vitals"
source = "temperature"
steps = [
  {{ builtin = "fever", raise_at = 38.5, clear_at = 37.5, topic = "alerts" }},
]

[[streams]]
name = "fleet"
source = "gps"
steps = [
  {{ builtin = "geofence", fences = [
      {{ name = "depot", lat = 52.0, lon = 5.0, radius_m = 250 }},
      {{ name = "yard", polygon = [[52.1, 5.1], [52.1, 5.2], [52.2, 5.2]] }} ] }},
]
"""


def config(tmp: Path) -> Config:
    return parse_config(CONFIG.format(data=tmp / "data"))


class LogOnlySource:
    """The service's side of the console with no devices running."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.log_info: dict[str, Any] = {}
        self.runners: dict[str, tuple[Any, Any]] = {}
        self._registry = CollectorRegistry()

    def health(self, show_values: bool | None = None) -> dict[str, Any]:
        return {"ok": True, "show_values": show_values}

    def metrics_registry(self) -> CollectorRegistry:
        return self._registry

    def uplink_health(self) -> dict[str, Any] | None:
        return None

    def streams_health(self) -> dict[str, dict[str, Any]]:
        return {}

    def clock_status(self) -> str:
        return "synced"


def log_config(cfg: Config) -> LogConfig:
    return log_config_of(cfg)


def produce(cfg: Config, records: list[tuple[str, str | None, Any, int, dict[str, str]]]) -> None:
    """Write (topic, key, value, ts_ms, headers) records and wait for their commit."""
    with KafkaProducer(log_config=log_config(cfg)) as p:
        for topic, key, value, ts, headers in records:
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            p.send(topic, raw, key=None if key is None else key.encode(), timestamp_ms=ts,
                   headers=[(k, v.encode()) for k, v in headers.items()])
        p.flush()


@asynccontextmanager
async def serving(cfg: Config, host: str = "127.0.0.1",
                  credentials: Credentials | None = None) -> AsyncIterator[tuple[Console, str]]:
    """A console over ``cfg``'s log at http://host:port (a free port)."""
    console = Console(LogOnlySource(cfg), log_config(cfg), lambda: None)
    server = HttpServer(console, host, 0, whole=True, credentials=credentials)
    await console.start()
    await server.start()
    try:
        yield console, f"http://127.0.0.1:{server.port}"
    finally:
        await console.close()
        await server.close()
