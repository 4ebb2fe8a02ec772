"""The web console on the box: pages of the devices, the log and the uplink; /health, /metrics.

Read-only, served by ``edge run`` from its own event loop (aiohttp). The HTTP API
the pages use is in ``API.md`` beside this file; docs/console.md covers setup and
security.
"""

from edge.console._auth import Credentials, is_loopback
from edge.console._console import Console
from edge.console._server import IDLE_TIMEOUT_S, MAX_CONNECTIONS, HttpServer

__all__ = ["IDLE_TIMEOUT_S", "MAX_CONNECTIONS", "Console", "Credentials", "HttpServer",
           "is_loopback"]
