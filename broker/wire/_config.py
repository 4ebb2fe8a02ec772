"""The listener's settings: where it binds, how much it accepts, how long it waits."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError

# Kafka's socket.request.max.bytes is 100 MiB; a Pi holds a few of those at most, and no
# client sends more than max.request.size (1 MiB by default) per produce request.
DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class ListenerConfig:
    """Settings of one Kafka wire listener.

    ``host``/``port``: the address to bind (port 0: any free port; ``WireServer.port``
    says which).  ``max_request_bytes``: a larger frame closes the connection, as Kafka's
    ``socket.request.max.bytes`` does.  ``auto_create_topics``: whether Metadata and
    Produce create a topic they name (off, as in a well-run Kafka).  ``idle_timeout_s``:
    a connection with no request for this long is closed (Kafka's
    ``connections.max.idle.ms``).  ``request_timeout_s``: a request whose bytes do not all
    arrive within this time closes its connection (a client sending one byte a minute
    holds nothing for long).  ``max_connections``: beyond it a new connection is closed at
    once.  ``advertised_host``/``advertised_port``: the address Metadata tells clients to
    connect to (Kafka's advertised.listeners; default: the bound one), for a proxy or NAT in
    front of the box.  ``groups``: a ``CoordinatorSettings``, Kafka's broker-side group
    settings (None: Kafka's defaults).  ``security``: a ``_sasl_api.ListenerSecurity``
    (None: no authentication, so only a loopback address may be bound).
    """

    host: str = "127.0.0.1"
    port: int = 9092
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    auto_create_topics: bool = False
    idle_timeout_s: float = 600.0
    request_timeout_s: float = 30.0
    max_connections: int = 1000
    security: Any = None
    advertised_host: str | None = None
    advertised_port: int | None = None
    groups: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"listen: expected a host name or address, got {self.host!r}")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise ConfigError(f"listen: port: expected an integer 0..65535, got {self.port!r}")
        _positive_int(self.max_request_bytes, "max_request_bytes", least=1024)
        _positive_int(self.max_connections, "max_connections", least=1)
        for name in ("idle_timeout_s", "request_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{name}: expected seconds > 0, got {value!r}")
        if not isinstance(self.auto_create_topics, bool):
            raise ConfigError(f"auto_create_topics: expected true or false, got {self.auto_create_topics!r}")
        if not getattr(self.security, "authenticates", False) and not is_loopback(self.host):
            raise ConfigError(
                f"listen: {self.host}:{self.port} is not a loopback address, and no authentication "
                "is configured: anyone who reaches it could read and write every topic. Bind "
                "127.0.0.1 (or ::1), or configure SASL for the listener"
            )


def _positive_int(value: object, name: str, *, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigError(f"{name}: expected an integer >= {least}, got {value!r}")


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one ("localhost" included)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9092`` for IPv6) as (host, port); ConfigError naming the text."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"listen: expected HOST:PORT, e.g. 127.0.0.1:9092, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    n = int(port)
    if n > 65535:
        raise ConfigError(f"listen: port: expected 0..65535, got {n} in {text!r}")
    return host, n
