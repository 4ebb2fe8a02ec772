"""Kafka's wire protocol over the local log: point any Kafka client at the box.

>>> async with WireServer(ListenerConfig("127.0.0.1", 9092), data_dir="/var/lib/edge") as server:
...     await server.serve_forever()

or ``edge-broker serve --data-dir DIR --listen 127.0.0.1:9092``, or ``[kafka] listen``
in ``edge run``'s config.  Message schemas come from kio (generated from Kafka 3.9's
JSON message definitions); see docs/kafka-listener.md for what is served.

Adding an API (how the group coordinator and SASL plug in)
---------------------------------------------------------
An API lives in one module with an ``install(registry)`` function, listed in
``_server.API_MODULES``::

    def install(registry: Registry) -> None:
        registry.register(API_KEY, MIN_VERSION, MAX_VERSION, handle)

    async def handle(ctx: ServerContext, conn: Connection, header: RequestHeader,
                     request: Any) -> Any:
        cls = response_class(API_KEY, header.api_version)   # kio's class of that version
        return build(cls, error_code=ErrorCode.none, ...)   # fields it lacks are dropped

``request`` is kio's request object of ``header.api_version``; the handler returns kio's
response object (or None to send nothing).  ApiVersions then advertises exactly the
registered range.  A handler that raises closes the connection with a log line; an
expected failure is a response with Kafka's error code.

What a handler reaches: ``ctx`` (``ServerContext``, one per server) has ``log`` (the
open ``Log``, shared with the service and the Python API in this process), ``admin``
and ``producer`` (the broker's own clients over it), ``config`` (``ListenerConfig``),
``metrics``, ``node_id``/``advertised_host``/``advertised_port``, ``extensions`` (a dict
for a module's own state, e.g. ``ctx.extensions["groups"]``), ``run_blocking(fn, *args)``
for SQLite work (never block the event loop) and ``start_task(coro, name)`` for
background tasks the server owns (session timers).  ``conn`` (``Connection``) is per
connection: ``peer``, ``client_id`` and ``state`` (a dict: SASL keeps whether it
authenticated there).  ``registry.add_gate(fn)`` adds a check run before every request:
``fn(conn, header)`` returns a reason to close the connection, or None.

Requests of one connection are served in order, one at a time, as Kafka does.
"""

from . import _kio_first  # noqa: F401  (first: kio without hypothesis)
from ._config import DEFAULT_MAX_REQUEST_BYTES, ListenerConfig, is_loopback, parse_listen
from ._context import Connection, ServerContext
from ._coordinator import CoordinatorSettings
from ._framing import FrameError, RequestHeader
from ._metrics import ListenerMetrics
from ._registry import Api, Handler, Registry
from ._run import serve
from ._schema import build, nested, request_class, response_class
from ._server import API_MODULES, WireServer, default_registry

__all__ = [
    "API_MODULES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "Api",
    "Connection",
    "CoordinatorSettings",
    "FrameError",
    "Handler",
    "ListenerConfig",
    "ListenerMetrics",
    "Registry",
    "RequestHeader",
    "ServerContext",
    "WireServer",
    "build",
    "default_registry",
    "is_loopback",
    "nested",
    "parse_listen",
    "request_class",
    "response_class",
    "serve",
]
