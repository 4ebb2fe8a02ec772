"""/health (JSON) and /metrics (Prometheus) over a minimal asyncio HTTP/1.0 server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

HealthFn = Callable[[], dict[str, Any]]


class HealthServer:
    """Serves GET /health (200 when ``health()['ok']``, else 503) and GET /metrics."""

    def __init__(self, host: str, port: int, health: HealthFn, registry: CollectorRegistry) -> None:
        self.host, self.port = host, port
        self._health = health
        self._registry = registry
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("health and metrics on http://%s:%d/health and /metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"only GET\n"
            elif path == "/health":
                h = self._health()
                status = 200 if h.get("ok") else 503
                ctype, body = "application/json", (json.dumps(h, indent=2) + "\n").encode()
            elif path == "/metrics":
                status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
            else:
                status, ctype, body = 404, "text/plain", b"try /health or /metrics\n"
            reason = {200: "OK", 503: "Service Unavailable", 404: "Not Found", 405: "Method Not Allowed"}
            head = (f"HTTP/1.0 {status} {reason[status]}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head + (body if parts[0] != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        except Exception:  # one bad request never takes the server down
            log.exception("health: request failed")
        finally:
            writer.close()
