"""The asyncio server: connections, frames, dispatch to the registered handlers.

Requests of one connection are served one at a time and answered in order, as Kafka
does (it mutes a connection while its request is in flight); clients get their
concurrency from many partitions per request and from several connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import ssl as _ssl
from typing import Any

from .._admin import KafkaAdminClient
from .._config import LogConfig
from .._errors import BrokerError, ConfigError
from .._producer import KafkaProducer
from ._config import ListenerConfig
from ._context import Connection, ServerContext
from ._framing import FrameError, frame, read_header, read_size
from ._metrics import ListenerMetrics, api_name
from ._registry import Registry
from ._schema import read_request, response_frame

log = logging.getLogger("broker.wire")

API_VERSIONS = 18

#: The modules that serve APIs, each with ``install(registry)``: a new API is a module
#: and a line here.
API_MODULES = (
    "broker.wire._api_versions",
    "broker.wire._metadata",
    "broker.wire._produce",
    "broker.wire._fetch",
    "broker.wire._list_offsets",
    "broker.wire._topics_admin",
    "broker.wire._producer_ids",
    "broker.wire._configs",
    "broker.wire._groups_api",
    "broker.wire._coordinator_api",
    "broker.wire._sasl_api",
)


def default_registry() -> Registry:
    """A registry with every API module of ``API_MODULES`` installed."""
    registry = Registry()
    for name in API_MODULES:
        importlib.import_module(name).install(registry)
    return registry


class WireServer:
    """Kafka's wire protocol over one log, on one address.

    ``async with WireServer(ListenerConfig(port=0), data_dir=...) as server:`` binds and
    serves; ``server.port`` is the bound port.  Pass ``log_config`` to share the log
    with a service that opened it with that config; ``data_dir`` alone takes the log as
    this process has it open (or opens it with the defaults).
    """

    def __init__(self, config: ListenerConfig, *, data_dir: str | os.PathLike[str] | None = None,
                 log_config: LogConfig | None = None, registry: Registry | None = None,
                 ssl: _ssl.SSLContext | None = None) -> None:
        if not isinstance(config, ListenerConfig):
            raise BrokerError(f"WireServer: expected a ListenerConfig, got {config!r:.80}")
        self.config = config
        self._data_dir = data_dir
        self._log_config = log_config
        self.registry = registry if registry is not None else default_registry()
        security = config.security
        if security is not None:
            security.install(self.registry)  # SASL: nothing but ApiVersions and SASL before it
            if ssl is None:
                ssl = security.ssl_context()
        self._ssl = ssl
        self.metrics = ListenerMetrics()
        self.ctx: ServerContext | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self.port = config.port

    async def start(self) -> None:
        """Open the log's clients and bind; ConfigError if the address cannot be bound."""
        admin, producer = await asyncio.to_thread(self._open_clients)
        self.ctx = ServerContext(self.config, admin, producer, admin._log, self.registry, self.metrics)
        try:
            self._server = await asyncio.start_server(
                self._serve, self.config.host, self.config.port, ssl=self._ssl, backlog=1024,
                limit=64 * 1024)
        except OSError as exc:
            await self._close_clients()
            raise ConfigError(f"listen: cannot bind {self.config.host}:{self.config.port}: "
                              f"{exc.strerror or exc}") from exc
        except BaseException:
            await self._close_clients()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self.ctx.advertised_port = self.config.advertised_port or self.port
        log.info("Kafka listener on %s:%d (%d APIs)", self.config.host, self.port,
                 len(self.registry.apis()))

    def _open_clients(self) -> tuple[KafkaAdminClient, KafkaProducer]:
        admin = KafkaAdminClient(self._data_dir, log_config=self._log_config)
        try:
            producer = KafkaProducer(self._data_dir, log_config=self._log_config)
        except BaseException:
            admin.close()
            raise
        return admin, producer

    async def _close_clients(self) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        self.ctx = None
        await ctx.close()
        await asyncio.to_thread(ctx.producer.close)
        await asyncio.to_thread(ctx.admin.close)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening, close every connection, release the log; safe to call twice."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        await self._close_clients()

    async def __aenter__(self) -> WireServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connections --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = _peer(writer)
        if len(self._conns) >= self.config.max_connections:
            self.metrics.refused()
            log.warning("Kafka listener: refused a connection from %s: %d connections are open "
                        "(max_connections)", peer, len(self._conns))
            writer.close()
            return
        self._conns.add(task)
        self.metrics.opened()
        conn = Connection(peer)
        try:
            await self._connection(conn, reader, writer)
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            self.metrics.closed()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _connection(self, conn: Connection, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        cfg = self.config
        while True:
            try:
                # The first byte may take as long as an idle client likes (up to the idle
                # timeout); the rest of the frame must come within the request timeout.
                first = await asyncio.wait_for(reader.readexactly(1), cfg.idle_timeout_s)
            except TimeoutError:
                log.info("Kafka listener: closed %s, idle for %.0f s", conn.peer, cfg.idle_timeout_s)
                self.metrics.error("idle_timeout")
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                async with asyncio.timeout(cfg.request_timeout_s):
                    prefix = first + await reader.readexactly(3)
                    size = read_size(prefix, cfg.max_request_bytes)
                    data = await reader.readexactly(size)
            except TimeoutError:
                log.warning("Kafka listener: closed %s: a request did not arrive whole within %.0f s",
                            conn.peer, cfg.request_timeout_s)
                self.metrics.error("request_timeout")
                return
            except FrameError as exc:
                log.warning("Kafka listener: closed %s: %s", conn.peer, exc)
                self.metrics.error("oversize" if "max_request_bytes" in str(exc) else "malformed")
                return
            except asyncio.IncompleteReadError:
                log.warning("Kafka listener: %s closed the connection in the middle of a request", conn.peer)
                self.metrics.error("truncated")
                return
            except ConnectionError:
                return
            out = await self._handle(conn, data)
            if out is None:
                continue
            if out is _CLOSE:
                return
            assert isinstance(out, bytes)
            writer.write(out)
            self.metrics.response(len(out))
            try:
                await writer.drain()
            except ConnectionError:
                return

    async def _handle(self, conn: Connection, data: bytes) -> bytes | object | None:
        """The response frame, None for no response, or _CLOSE to close the connection."""
        try:
            header, pos = read_header(data)
        except FrameError as exc:
            log.warning("Kafka listener: closed %s: %s", conn.peer, exc)
            self.metrics.error("malformed")
            return _CLOSE
        conn.client_id = header.client_id
        self.metrics.request(header.api_key, len(data) + 4)
        api = self.registry.get(header.api_key)
        if header.api_key == API_VERSIONS and (api is None or not api.supports(header.api_version)):
            # Kafka's rule: an ApiVersions it cannot parse is answered at v0 with
            # UNSUPPORTED_VERSION and the versions it has, so the client can retry lower.
            from ._api_versions import unsupported_version_response

            body = unsupported_version_response(self.registry)
            return frame(header.correlation_id, body, flexible_header=False)
        if api is None or not api.supports(header.api_version):
            served = (f"served at versions {api.min_version}..{api.max_version}" if api is not None
                      else "not served here")
            log.warning("Kafka listener: closed %s (client %r): %s v%d is %s", conn.peer,
                        header.client_id, api_name(header.api_key), header.api_version, served)
            self.metrics.error("unsupported_version" if api is not None else "unknown_api")
            return _CLOSE
        for gate in self.registry.gates:
            reason = gate(conn, header)
            if reason is not None:
                log.warning("Kafka listener: closed %s: %s", conn.peer, reason)
                self.metrics.error("refused")
                return _CLOSE
        try:
            request = read_request(header.api_key, header.api_version, data, pos)
        except FrameError as exc:
            log.warning("Kafka listener: closed %s (client %r): %s", conn.peer, header.client_id, exc)
            self.metrics.error("malformed")
            return _CLOSE
        assert self.ctx is not None
        try:
            response = await api.handler(self.ctx, conn, header, request)
        except Exception:
            log.exception("Kafka listener: %s v%d from %s failed; closing the connection",
                          api_name(header.api_key), header.api_version, conn.peer)
            self.metrics.error("handler")
            return _CLOSE
        if response is None:
            return None
        return response_frame(header.correlation_id, response)


_CLOSE = object()


def _peer(writer: asyncio.StreamWriter) -> str:
    info = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return str(info)


