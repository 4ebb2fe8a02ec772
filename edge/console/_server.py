"""One HTTP listener of the console (aiohttp): health only, or the whole console.

Why aiohttp: asyncio-native (it runs on the service's own loop, no second server
process or thread), server and streaming responses (server-sent events) in one
well-kept package with aarch64 wheels; starlette would need uvicorn beside it.

The listening socket is made here, not by an aiohttp site, so that the connections
held at once are capped (``MAX_CONNECTIONS``): a flood of idle connections once took
every descriptor the process had (devices could not reconnect). Past the cap the
oldest connection that has not sent a byte yet makes room. A connection that sends
nothing is closed after ``IDLE_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import OrderedDict
from typing import Any

from aiohttp import http_exceptions, web

from edge.console._auth import Credentials, auth_middleware, is_loopback
from edge.console._console import Console
from edge.console._handlers import console_routes, health_routes

log = logging.getLogger("edge.console")

__all__ = ["IDLE_TIMEOUT_S", "MAX_CONNECTIONS", "HttpServer"]

#: Connections served at once (an open page holds one for its event stream).
MAX_CONNECTIONS = 64
#: How long a connection may stay without a request.
IDLE_TIMEOUT_S = 5.0


class _Admission:
    """The connections held, oldest first, and whether each has sent anything yet."""

    def __init__(self) -> None:
        self.held: OrderedDict[asyncio.Transport, bool] = OrderedDict()

    def admit(self, transport: asyncio.Transport) -> bool:
        if len(self.held) >= MAX_CONNECTIONS:
            idle = next((t for t, spoke in self.held.items() if not spoke), None)
            if idle is None:
                return False
            self.held.pop(idle)
            idle.abort()
        self.held[transport] = False
        return True


class _Handler(web.RequestHandler):
    """aiohttp's connection handler, told to the admission when it comes, speaks and goes."""

    admission: _Admission
    admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: Any = transport
        if not self.admission.admit(t):
            t.abort()
            return
        self.admitted = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        t: Any = self.transport
        if t in self.admission.held:
            self.admission.held[t] = True
        super().data_received(data)

    def eof_received(self) -> bool:  # type: ignore[override]  # True: keep writing
        # A client that sends its request and then shuts its side (nc -N, some probes)
        # still gets its answer: keep the transport open for writing.
        return True

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # A malformed request (a line past 8 KiB, not HTTP at all) is the client's doing:
        # it gets its 400; aiohttp's ERROR traceback for it would bury real errors.
        if isinstance(kw.get("exc_info"), http_exceptions.HttpProcessingError):
            log.debug("bad request: %s", kw["exc_info"])
            return
        super().log_exception(*args, **kw)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.admitted:
            return  # refused in connection_made: aiohttp never saw it
        t: Any = self.transport
        if t is not None:
            self.admission.held.pop(t, None)
        super().connection_lost(exc)


class HttpServer:
    """Listens on ``host:port``; ``whole``: the console and /health, else /health and /metrics only.

    A console bound beyond loopback asks for ``credentials`` (none configured: every
    console request gets 401). ``tls``: (certificate, key) PEM files.
    """

    def __init__(self, console: Console, host: str, port: int, *, whole: bool,
                 credentials: Credentials | None = None, tls: tuple[str, str] | None = None,
                 ) -> None:
        self.console = console
        self.host, self.port = host, port
        self.whole = whole
        self.credentials = credentials or Credentials()
        self.tls = tls
        self.auth_required = whole and not is_loopback(host)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be had (in use, not this host's)."""
        app = web.Application(middlewares=[auth_middleware(self.auth_required, self.credentials)])
        app.add_routes(health_routes(self.console))
        if self.whole:
            app.add_routes(console_routes(self.console))
        # shutdown_timeout: how long close() lets requests in flight finish.
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        context = None
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
        admission = _Admission()
        manager = runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()

        def connection() -> _Handler:
            handler = _Handler(manager, loop=loop, keepalive_timeout=IDLE_TIMEOUT_S,
                               access_log=None)  # type: ignore[arg-type]  # None: no access log
            handler.admission = admission
            return handler

        try:
            # backlog: also how many connections are accepted at once before any is served.
            self._server = await loop.create_server(connection, self.host, self.port,
                                                    backlog=MAX_CONNECTIONS, ssl=context)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = self._server.sockets[0].getsockname()[1]
        what = "console, /health and /metrics" if self.whole else "/health and /metrics"
        log.info("%s on %s://%s:%d/", what, self.scheme, self.host, self.port)
        if self.auth_required and not self.credentials.any:
            log.warning("console on %s:%d (not loopback) has no [console] token or user and "
                        "password: every console request gets 401", self.host, self.port)

    async def close(self) -> None:
        """Stop listening and end open requests (event streams too); safe to call twice."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
