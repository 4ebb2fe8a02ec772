"""A wire listener over a fresh log, served from its own thread, for blocking clients
(kafka-python, kcat, Kafka's tools) and async ones alike.

    with ThreadedListener(data_dir) as srv:
        KafkaAdminClient(bootstrap_servers=srv.bootstrap)
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from pathlib import Path
from typing import Any

from broker import LogConfig
from broker.wire import ListenerConfig, WireServer


class ThreadedListener:
    def __init__(self, data_dir: Path, *, log_config: LogConfig | None = None, **config: Any) -> None:
        config.setdefault("port", 0)
        self.data_dir = data_dir
        self.log_config = log_config
        self.config = ListenerConfig(**config)
        self.server: WireServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wire-listener", daemon=True)

    def __enter__(self) -> ThreadedListener:
        self._thread.start()
        self.server = WireServer(self.config, data_dir=None if self.log_config else self.data_dir,
                                 log_config=self.log_config)
        self.call(self.server.start())
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run ``coro`` on the listener's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics(self) -> dict[str, Any]:
        assert self.server is not None
        return self.server.metrics.snapshot()

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.call(self.server.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def raw_request(port: int, api_key: int, version: int, body: bytes = b"", *, correlation_id: int = 7,
                client_id: bytes | None = b"test", flexible: bool = False) -> bytes | None:
    """Send one request on a new connection; the response frame's bytes after its size, or
    None if the server closed the connection instead."""
    cid = struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + client_id
    head = struct.pack(">hhi", api_key, version, correlation_id) + cid + (b"\x00" if flexible else b"")
    payload = head + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        return read_frame(s)


def read_frame(s: socket.socket) -> bytes | None:
    size_bytes = _recv_exactly(s, 4)
    if size_bytes is None:
        return None
    (size,) = struct.unpack(">i", size_bytes)
    return _recv_exactly(s, size)


def _recv_exactly(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf
