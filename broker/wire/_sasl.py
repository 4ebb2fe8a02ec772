"""SASL for the listener: PLAIN and SCRAM-SHA-256/512, as Kafka's brokers serve them.

``SaslServer`` is built once per listener from the users and passwords it may admit;
``start(mechanism)`` gives a connection its own ``SaslExchange``, fed each token the
client sends (in SaslAuthenticate, or raw after a v0 SaslHandshake) until it is done.

SCRAM is the ``scramp`` library's (RFC 5802/7677, the nonce, salt, proof and server
signature checks, constant-time compares): a hand-rolled SCRAM is where subtle
authentication bugs live. The SCRAM credentials (salt, stored key, server key, 4096
iterations as Kafka's minimum) are derived from the passwords once, at start.

Passwords are never logged, never in a repr, never in an error message; a failed
authentication answers the same words whether the user or the password was wrong.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from scramp import ScramException, ScramMechanism

from .._errors import BrokerError, ConfigError

log = logging.getLogger(__name__)

PLAIN = "PLAIN"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
MECHANISMS = (PLAIN, *SCRAM_MECHANISMS)
#: Kafka's own minimum for SCRAM credentials (kafka-configs refuses fewer).
SCRAM_ITERATIONS = 4096
#: Users for the listener from the environment: ``alice:secret,bob:other``.
ENV_USERS = "EDGE_KAFKA_SASL_USERS"

_FAILED = "Authentication failed: invalid username or password"


class AuthenticationFailed(BrokerError):
    """A client's SASL exchange failed; the message is safe to send it (names no secret)."""


@dataclass(frozen=True)
class SaslSettings:
    """Who may connect, and with which mechanisms; ``users`` maps user name to password."""

    mechanisms: tuple[str, ...] = MECHANISMS
    users: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for mech in self.mechanisms:
            if mech not in MECHANISMS:
                raise ConfigError(f"sasl mechanism {mech!r} is not served here; "
                                  f"expected one of {', '.join(MECHANISMS)}")
        if not self.mechanisms:
            raise ConfigError(f"sasl: name at least one mechanism of {', '.join(MECHANISMS)}")
        if not self.users:
            raise ConfigError("sasl: no users: a listener with SASL needs at least one user "
                              f"(from the config, or ${ENV_USERS}=user:password,...)")
        for user, password in self.users.items():
            if not isinstance(user, str) or not user or not isinstance(password, str) or not password:
                raise ConfigError(f"sasl: user {user!r:.40}: expected a non-empty user name and password")

    def __repr__(self) -> str:  # the passwords stay out of every log line and traceback
        return f"SaslSettings(mechanisms={self.mechanisms!r}, users=<{len(self.users)} user(s)>)"


def users_from_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``$EDGE_KAFKA_SASL_USERS`` (``alice:secret,bob:other``) as a dict; empty if unset."""
    raw = (os.environ if env is None else env).get(ENV_USERS, "")
    users: dict[str, str] = {}
    for n, item in enumerate(part for part in raw.split(",") if part.strip()):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            # Say which entry, never what it holds: it may be a password.
            raise ConfigError(f"${ENV_USERS}: entry {n + 1}: expected user:password")
        users[user] = password
    return users


def check_bind_allowed(host: str, sasl: SaslSettings | None) -> None:
    """Refuse to serve a non-loopback address without authentication.

    Anyone who reaches the port could read every reading and write into the log the
    uplink replicates upstream; on loopback that is only this box's own programs."""
    if sasl is not None:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"kafka listener: refusing to listen on {host} without authentication: any host that "
            "reaches it could read and write the log. Configure SASL users (and TLS), or listen "
            "on 127.0.0.1")


class SaslExchange:
    """One connection's authentication, token by token."""

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.user: str | None = None  # set once authenticated
        self.done = False

    def step(self, token: bytes) -> bytes:
        """Take the client's next token; return the server's (b"" when it has none).

        Raises ``AuthenticationFailed``; ``done`` is True once the client is in."""
        raise NotImplementedError


class _PlainExchange(SaslExchange):
    def __init__(self, users: Mapping[str, str]) -> None:
        super().__init__(PLAIN)
        self._users = users

    def step(self, token: bytes) -> bytes:
        # RFC 4616: [authzid] NUL authcid NUL passwd
        parts = token.split(b"\0")
        if self.done or len(parts) != 3:
            raise AuthenticationFailed("Authentication failed: malformed PLAIN token "
                                       "(expected authzid NUL user NUL password)")
        authzid, user_b, password_b = parts
        user = user_b.decode("utf-8", "replace")
        expected = self._users.get(user)
        # Compare even for an unknown user, so timing does not tell which users exist.
        ok = hmac.compare_digest((expected or "\0").encode(), password_b) and expected is not None
        if not ok or (authzid and authzid != user_b):
            raise AuthenticationFailed(_FAILED)
        self.user, self.done = user, True
        return b""


class _ScramExchange(SaslExchange):
    def __init__(self, mechanism: str, scram: ScramMechanism,
                 credentials: Mapping[str, tuple[bytes, bytes, bytes, int]]) -> None:
        super().__init__(mechanism)
        self._credentials = credentials
        self._server = scram.make_server(self._lookup)
        self._stage = 0
        self._user = ""

    def _lookup(self, user: str) -> tuple[bytes, bytes, bytes, int]:
        self._user = user
        try:
            return self._credentials[user]
        except KeyError:
            raise AuthenticationFailed(_FAILED) from None

    def step(self, token: bytes) -> bytes:
        try:
            message = token.decode("utf-8")
            if self._stage == 0:
                self._server.set_client_first(message)
                self._stage = 1
                return self._server.get_server_first().encode()
            if self._stage == 1:
                self._server.set_client_final(message)
                self._stage = 2
                self.user, self.done = self._user, True
                return self._server.get_server_final().encode()
        except (ScramException, UnicodeDecodeError) as exc:
            # scramp's messages name what failed (a proof, a nonce), never a secret.
            log.debug("SCRAM exchange failed: %s", exc)
            raise AuthenticationFailed(_FAILED) from None
        raise AuthenticationFailed("Authentication failed: the SCRAM exchange is already complete")


class SaslServer:
    """The mechanisms and credentials of one listener; ``start`` one exchange per connection."""

    def __init__(self, settings: SaslSettings) -> None:
        self.settings = settings
        self._users = dict(settings.users)
        self._scram: dict[str, tuple[ScramMechanism, dict[str, tuple[bytes, bytes, bytes, int]]]] = {}
        for mech in settings.mechanisms:
            if mech in SCRAM_MECHANISMS:
                scram = ScramMechanism(mech)
                self._scram[mech] = (scram, {
                    user: scram.make_auth_info(password, iteration_count=SCRAM_ITERATIONS)
                    for user, password in self._users.items()})

    @property
    def mechanisms(self) -> tuple[str, ...]:
        return self.settings.mechanisms

    def start(self, mechanism: str) -> SaslExchange | None:
        """An exchange for ``mechanism``, or None if this listener does not serve it."""
        if mechanism not in self.settings.mechanisms:
            return None
        if mechanism == PLAIN:
            return _PlainExchange(self._users)
        scram, credentials = self._scram[mechanism]
        return _ScramExchange(mechanism, scram, credentials)
