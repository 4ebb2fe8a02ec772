"""/health (JSON) and /metrics (Prometheus) over a minimal asyncio HTTP/1.0 server."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

#: ``health(show_values)``: True for a request that showed the token, None: as configured.
HealthFn = Callable[[bool | None], dict[str, Any]]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


#: Connections served at once; more are closed as they come (see HealthServer._serve).
MAX_CONNECTIONS = 32
#: The time a client has to send its request and take the answer.
REQUEST_TIMEOUT_S = 5.0


class HealthServer:
    """Serves GET /health (200 when ``health()['ok']``, else 503) and GET /metrics.

    ``token()``: the bearer token that shows the readings' values (None: no token).
    """

    def __init__(self, host: str, port: int, health: HealthFn, registry: CollectorRegistry,
                 token: Callable[[], str | None] = lambda: None) -> None:
        self.host, self.port = host, port
        self._health = health
        self._registry = registry
        self._token = token
        self._server: asyncio.Server | None = None
        #: Connections being served, oldest first: True once its request has been read.
        self._conns: dict[asyncio.StreamWriter, bool] = {}

    async def start(self) -> None:
        # backlog: also how many connections asyncio accepts at once, before any is served
        # (or refused by _serve): a burst of 100 took 100 descriptors together.
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  backlog=MAX_CONNECTIONS)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("health and metrics on http://%s:%d/health and /metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= MAX_CONNECTIONS:
            # A flood of idle connections (each held up to the timeout) took every file
            # descriptor the process had: devices could not reconnect, and asyncio logged an
            # ERROR traceback for each accept() that failed. Past the cap, the oldest one
            # still sending its request makes room (a scraper's request still gets in).
            idle = next((w for w, read in self._conns.items() if not read), None)
            if idle is None:
                writer.transport.abort()
                return
            self._conns.pop(idle)
            idle.transport.abort()
        self._conns[writer] = False
        finished = False
        try:
            # Reading the request and writing the answer: a client that reads nothing of a
            # large /metrics no longer holds its connection for ever.
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await self._answer_one(reader, writer)
            finished = True
        except (TimeoutError, ConnectionError):
            pass  # the client went away, said nothing in time, or read nothing of the answer
        except Exception:  # one bad request never takes the server down
            log.exception("health: request failed")
        finally:
            self._conns.pop(writer, None)
            if finished:
                writer.close()
            else:
                writer.transport.abort()  # nothing left to flush to a client that is not reading

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readline()
            if not request:
                return  # connected and closed (a port probe, a load balancer's check)
            authorization = b""
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"authorization":
                    authorization = value.strip()
            if writer in self._conns:
                self._conns[writer] = True  # read: no longer made room for
        except ValueError:
            # A line past the stream's limit (64 KiB): StreamReader raises ValueError
            # (LimitOverrunError inside). The client's doing: answer, hang up, no log.
            request = b""
        status, ctype, body = (self._answer(request, self._authorized(authorization))
                               if request else (431, "text/plain", b"request too long\n"))
        head = (f"HTTP/1.0 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(head + (b"" if request.startswith(b"HEAD ") else body))
        await writer.drain()

    def _authorized(self, authorization: bytes) -> bool:
        token = self._token()
        if not token:
            return False
        scheme, _, given = authorization.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token.encode())

    def _answer(self, request: bytes, authorized: bool = False) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request line."""
        parts = request.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n"
        path = parts[1].split("?")[0]
        if path == "/health":
            h = self._health(True if authorized else None)
            return (200 if h.get("ok") else 503, "application/json",
                    (json.dumps(h, indent=2) + "\n").encode())
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return 404, "text/plain", b"try /health or /metrics\n"
