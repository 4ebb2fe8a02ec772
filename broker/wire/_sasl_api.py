"""SaslHandshake and SaslAuthenticate on the wire, and the gate that keeps a connection to
ApiVersions and SASL until it has authenticated.

``ListenerSecurity`` is what ``ListenerConfig.security`` holds: the SASL users and
mechanisms and the TLS files. With it set, the server installs the gate
(``ListenerSecurity.install``) and wraps its socket in ``ssl_context()``.
"""

from __future__ import annotations

import datetime
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kio.schema.errors import ErrorCode

from .._errors import ConfigError
from ._context import Connection, ServerContext
from ._framing import RequestHeader
from ._group_errors import (
    ILLEGAL_SASL_STATE,
    SASL_AUTHENTICATION_FAILED,
    UNSUPPORTED_SASL_MECHANISM,
    UNSUPPORTED_VERSION,
)
from ._registry import Registry
from ._sasl import (
    MECHANISMS,
    AuthenticationFailed,
    SaslServer,
    SaslSettings,
    users_from_env,
    users_from_file,
)
from ._schema import build, response_class
from ._tls import TlsSettings, server_context

log = logging.getLogger(__name__)

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
#: What a client may send before it has authenticated, as on Kafka's SASL listeners.
_BEFORE_AUTH = frozenset({API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE})
#: Connection.state keys: the exchange under way, and the user once authenticated.
_EXCHANGE, USER, _FAILED = "sasl_exchange", "sasl_user", "sasl_failed"


@dataclass(frozen=True)
class ListenerSecurity:
    """SASL and TLS of one listener; either may be None. The SCRAM credentials are derived once."""

    sasl: SaslSettings | None = None
    tls: TlsSettings | None = None
    _server: SaslServer | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.sasl is not None:
            object.__setattr__(self, "_server", SaslServer(self.sasl))

    @property
    def authenticates(self) -> bool:
        """Whether clients prove who they are (SASL, or TLS client certificates)."""
        return self.sasl is not None or (self.tls is not None and self.tls.cafile is not None)

    @property
    def sasl_server(self) -> SaslServer | None:
        return self._server

    def ssl_context(self) -> ssl.SSLContext | None:
        """The listener's TLS context (ConfigError naming a bad file), or None for plaintext."""
        return None if self.tls is None else server_context(self.tls)

    def install(self, registry: Registry) -> None:
        """Refuse every request but ApiVersions and SASL before a connection authenticated."""
        if self.sasl is not None:
            registry.add_gate(_require_authentication)


def listener_security(*, mechanisms: Sequence[str] = (), users_file: str | None = None,
                      tls_cert: str | None = None, tls_key: str | None = None,
                      tls_ca: str | None = None,
                      env: Mapping[str, str] | None = None) -> ListenerSecurity | None:
    """The security of ``edge-broker serve``'s options (and ``[kafka]``'s keys), or None.

    SASL is on when users are given (``users_file``, or ``$EDGE_KAFKA_SASL_USERS``) or
    mechanisms are named; users from both are merged, the file's winning. TLS is on when
    ``tls_cert`` is given; ``tls_ca`` makes client certificates required."""
    users = users_from_env(env)
    if users_file:
        users.update(users_from_file(users_file))
    sasl = None
    if users or mechanisms:
        sasl = SaslSettings(mechanisms=tuple(mechanisms) or MECHANISMS, users=users)
    tls = None
    if tls_cert or tls_key or tls_ca:
        if not (tls_cert and tls_key):
            raise ConfigError("kafka listener tls: a certificate and its key are both needed "
                              f"(got certfile {tls_cert or 'none'}, keyfile {tls_key or 'none'})")
        tls = TlsSettings(Path(tls_cert), Path(tls_key), Path(tls_ca) if tls_ca else None)
    if sasl is None and tls is None:
        return None
    return ListenerSecurity(sasl, tls)


def _require_authentication(conn: Connection, header: RequestHeader) -> str | None:
    if _FAILED in conn.state:
        # As Kafka does: a failed authentication ends the connection, so passwords cannot
        # be tried one after another on it.
        return f"client {header.client_id!r} failed SASL authentication on this connection"
    if header.api_key in _BEFORE_AUTH or USER in conn.state:
        return None
    return (f"client {header.client_id!r} sent API {header.api_key} before authenticating: "
            "this listener requires SASL (set security_protocol SASL_PLAINTEXT or SASL_SSL "
            "and sasl_mechanism in the client)")


def install(registry: Registry) -> None:
    # v0 is advertised because librdkafka requires it to see SASL at all, but it is refused
    # (its raw tokens after the handshake are not served): every client of Kafka 1.0 or
    # newer (kafka-python, aiokafka, librdkafka, Java) sends v1 and SaslAuthenticate.
    registry.register(SASL_HANDSHAKE, 0, 1, sasl_handshake)
    registry.register(SASL_AUTHENTICATE, 0, 2, sasl_authenticate)


def _server(ctx: ServerContext) -> SaslServer | None:
    security = getattr(ctx.config, "security", None)
    return security.sasl_server if isinstance(security, ListenerSecurity) else None


async def sasl_handshake(ctx: ServerContext, conn: Connection, header: RequestHeader,
                         request: Any) -> Any:
    cls = response_class(SASL_HANDSHAKE, header.api_version)
    server = _server(ctx)
    mechanisms = server.mechanisms if server is not None else ()
    if USER in conn.state:
        return build(cls, error_code=ErrorCode(ILLEGAL_SASL_STATE), mechanisms=mechanisms)
    if header.api_version == 0:
        log.warning("Kafka listener: %s (client %r) sent SaslHandshake v0 (raw SASL tokens, "
                    "Kafka 0.10 clients); only SaslAuthenticate is served", conn.peer, header.client_id)
        return build(cls, error_code=ErrorCode(UNSUPPORTED_VERSION), mechanisms=mechanisms)
    exchange = server.start(request.mechanism) if server is not None else None
    if exchange is None:
        log.warning("Kafka listener: %s (client %r) asked for SASL mechanism %r; served: %s",
                    conn.peer, header.client_id, request.mechanism, ", ".join(mechanisms) or "none")
        return build(cls, error_code=ErrorCode(UNSUPPORTED_SASL_MECHANISM), mechanisms=mechanisms)
    conn.state[_EXCHANGE] = exchange
    return build(cls, error_code=ErrorCode.none, mechanisms=mechanisms)


async def sasl_authenticate(ctx: ServerContext, conn: Connection, header: RequestHeader,
                            request: Any) -> Any:
    cls = response_class(SASL_AUTHENTICATE, header.api_version)
    exchange = conn.state.get(_EXCHANGE)
    if exchange is None or exchange.done:
        return build(cls, error_code=ErrorCode(ILLEGAL_SASL_STATE), auth_bytes=b"",
                     error_message="SaslAuthenticate without a SaslHandshake before it",
                     session_lifetime=datetime.timedelta(0))
    try:
        token = exchange.step(request.auth_bytes)
    except AuthenticationFailed as exc:
        del conn.state[_EXCHANGE]
        conn.state[_FAILED] = True  # the gate closes the connection at its next request
        # The user name is not logged either: a password typed into the user field would be.
        log.warning("Kafka listener: %s (client %r) failed %s authentication", conn.peer,
                    header.client_id, exchange.mechanism)
        ctx.metrics.error("authentication")
        return build(cls, error_code=ErrorCode(SASL_AUTHENTICATION_FAILED), error_message=str(exc),
                     auth_bytes=b"", session_lifetime=datetime.timedelta(0))
    if exchange.done:
        conn.state[USER] = exchange.user
        log.info("Kafka listener: %s (client %r) authenticated as %r with %s", conn.peer,
                 header.client_id, exchange.user, exchange.mechanism)
    return build(cls, error_code=ErrorCode.none, error_message=None, auth_bytes=token,
                 session_lifetime=datetime.timedelta(0))
