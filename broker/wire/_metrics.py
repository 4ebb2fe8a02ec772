"""The listener's counters: connections, requests by API, errors by kind, groups' members."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from kio.schema.index import api_key_map

from ._rates import WINDOW_S, RatesByKey


def api_name(api_key: int) -> str:
    """Kafka's name of an API key in CamelCase ("Produce", "ApiVersions"), or "api_<key>"."""
    name = api_key_map.get(api_key)
    if name is None:
        return f"api_{api_key}"
    return "".join(part.capitalize() for part in str(name).split("_"))


class ListenerMetrics:
    """Counted on the event loop, read from any thread (the /health and /metrics pages)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._rates = RatesByKey(WINDOW_S, now)
        self.started = time.monotonic()
        self.connections_open = 0
        self.connections_total = 0
        self.connections_refused = 0
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0
        self.groups: dict[str, int] = {}  # group id -> members, set by the group coordinator
        self.duplicates = 0  # idempotent producers' retried batches answered, not written

    def opened(self) -> None:
        with self._lock:
            self.connections_open += 1
            self.connections_total += 1

    def closed(self) -> None:
        with self._lock:
            self.connections_open -= 1

    def refused(self) -> None:
        with self._lock:
            self.connections_refused += 1
            self.errors["too_many_connections"] += 1

    def request(self, api_key: int, size_in: int) -> None:
        with self._lock:
            name = api_name(api_key)
            self.requests[name] += 1
            self._rates.add(name)
            self.bytes_in += size_in

    def response(self, size_out: int) -> None:
        with self._lock:
            self.bytes_out += size_out

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def set_groups(self, groups: dict[str, int]) -> None:
        """The groups with members now, and how many each has."""
        with self._lock:
            self.groups = dict(groups)

    def snapshot(self) -> dict[str, Any]:
        """Plain numbers and dicts: connections, requests by API (counts since the start and
        per second over the last ``WINDOW_S``), errors by kind, bytes."""
        with self._lock:
            rates = self._rates.per_second()
            return {
                "connections": self.connections_open,
                "connections_total": self.connections_total,
                "connections_refused": self.connections_refused,
                "requests": dict(self.requests),
                "requests_total": sum(self.requests.values()),
                "requests_per_s": rates,
                "requests_per_s_total": round(sum(rates.values()), 2),
                "errors": dict(self.errors),
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
                "groups": dict(self.groups),
                "group_members": sum(self.groups.values()),
                "duplicate_batches": self.duplicates,
            }
