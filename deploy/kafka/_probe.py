"""A tiny Kafka Metadata request over a raw socket, to tell when brokers serve.

Why not a client library: readiness must not depend on which client the
caller installed, nor on its warnings (the tests turn warnings into errors),
and a single Metadata v4 request is 40 lines. v4 is served by Kafka 1.0
through 4.x (4.0 removed only v0-v3).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

_METADATA = 3
_VERSION = 4
_CLIENT_ID = b"deploy.kafka-probe"


@dataclass(frozen=True)
class ClusterView:
    """What one broker says about the cluster: the brokers it serves with, and the controller."""

    cluster_id: str | None
    controller_id: int
    broker_ids: tuple[int, ...]


def metadata(host: str, port: int, timeout_s: float = 2.0) -> ClusterView:
    """Ask the broker at host:port for cluster metadata (no topics). Blocking.

    Raises OSError when the broker does not accept or answer, ValueError on
    a reply that is not a Metadata v4 response.
    """
    correlation_id = 1
    body = struct.pack(">hhih", _METADATA, _VERSION, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    body += struct.pack(">ib", -1, 0)  # topics: null (no topic list wanted), no auto-creation
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        reply = _read_exactly(sock, size)
    return _parse(reply, correlation_id)


def _parse(reply: bytes, correlation_id: int) -> ClusterView:
    reader = _Reader(reply)
    if reader.int32() != correlation_id:
        raise ValueError("metadata reply: wrong correlation id")
    reader.int32()  # throttle_time_ms
    broker_ids = []
    for _ in range(reader.int32()):
        broker_ids.append(reader.int32())
        reader.string()  # host
        reader.int32()  # port
        reader.string()  # rack
    cluster_id = reader.string()
    controller_id = reader.int32()
    return ClusterView(cluster_id, controller_id, tuple(sorted(broker_ids)))


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection mid-reply")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, fmt: str) -> int:
        try:
            (value,) = struct.unpack_from(fmt, self._data, self._pos)
        except struct.error as exc:
            raise ValueError("metadata reply: truncated") from exc
        self._pos += struct.calcsize(fmt)
        return value

    def int32(self) -> int:
        return self._take(">i")

    def string(self) -> str | None:
        length = self._take(">h")
        if length < 0:
            return None
        text = self._data[self._pos : self._pos + length].decode("utf-8")
        self._pos += length
        return text
