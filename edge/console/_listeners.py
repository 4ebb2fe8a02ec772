"""Which listeners a config asks for: the [health] address (with the console when it shares
it, the default) and the console's own address when it has one."""

from __future__ import annotations

from edge._config import Config
from edge._schema import split_address
from edge.console._auth import Credentials
from edge.console._console import Console
from edge.console._server import HttpServer

__all__ = ["console_server", "health_server", "shares_health_address"]


def shares_health_address(cfg: Config) -> bool:
    """Whether the console is served at the [health] address (its default)."""
    c = cfg.console
    return c.enabled and (c.address is None or split_address(c.address) == split_address(
        cfg.health.address))


def _credentials(cfg: Config) -> Credentials:
    c = cfg.console
    return Credentials(token=c.token, user=c.user, password=c.password)


def _tls(cfg: Config) -> tuple[str, str] | None:
    c = cfg.console
    return (c.tls_cert, c.tls_key) if c.tls_cert and c.tls_key else None


def health_server(console: Console, cfg: Config) -> HttpServer:
    """The listener at the [health] address: /health and /metrics, and the console if shared."""
    whole = shares_health_address(cfg)
    return HttpServer(console, cfg.health.host, cfg.health.port, whole=whole,
                      credentials=_credentials(cfg), tls=_tls(cfg) if whole else None)


def console_server(console: Console, cfg: Config) -> HttpServer | None:
    """The listener at the console's own address, None when it has none (or is off)."""
    if not cfg.console.enabled or shares_health_address(cfg):
        return None
    host, port = split_address(cfg.console.address or "")  # type: ignore[misc]
    return HttpServer(console, host, port, whole=True, credentials=_credentials(cfg),
                      tls=_tls(cfg))
