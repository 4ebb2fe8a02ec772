"""Who may see the console: anyone on loopback; elsewhere a token or a user and password.

A request for a page, a static file or the API, to a console bound to an address
other than loopback, needs ``Authorization: Bearer <token>``, ``?token=<token>``
(EventSource cannot send headers) or ``Authorization: Basic`` with the configured
user and password. Without them: 401 and a one-line body, nothing else. Compared in
constant time. /health and /metrics keep their own rule (a token only shows values).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

__all__ = ["OPEN_PATHS", "Credentials", "auth_middleware", "is_loopback"]

#: Paths that never ask for console credentials.
OPEN_PATHS = frozenset({"/health", "/metrics"})

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or "localhost") is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    user: str | None = None
    password: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.token or (self.user and self.password))

    def allows(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        scheme, given = scheme.lower(), given.strip()
        if self.token:
            if scheme == "bearer" and _same(given, self.token):
                return True
            query = request.query.get("token")
            if query is not None and _same(query, self.token):
                return True
        if self.user and self.password and scheme == "basic":
            try:
                user, _, password = base64.b64decode(given, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            # Both compared, always: no early return that times which one was wrong.
            ok_user = _same(user, self.user)
            ok_password = _same(password, self.password)
            return ok_user and ok_password
        return False


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def auth_middleware(required: bool, credentials: Credentials) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware of one listener: ``required`` when it is bound beyond loopback."""

    @web.middleware
    async def check(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not required or request.path in OPEN_PATHS or credentials.allows(request):
            return await handler(request)
        challenge = ('Basic realm="edge console", charset="UTF-8"' if credentials.user
                     else 'Bearer realm="edge console"')
        return web.Response(status=401, text="401: this console needs a token or a user and "
                            "password\n", headers={"WWW-Authenticate": challenge})

    return check
