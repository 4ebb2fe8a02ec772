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
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import BrokerError, ConfigError

if TYPE_CHECKING:
    # scramp is imported where SCRAM is configured: it pulls in asn1crypto (~2 MB of RSS)
    # for every listener, most of which serve no SCRAM at all.
    from scramp import ScramMechanism

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


def users_from_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """``user:password`` lines (``#`` comments) of a file only its owner may read."""
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"sasl users file {path}: {exc.strerror or exc}") from exc
    if mode & 0o077:
        raise ConfigError(f"sasl users file {path}: readable by others (mode {mode & 0o777:o}); "
                          f"it holds passwords: chmod 600 {path}")
    users: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise ConfigError(f"sasl users file {path}: line {n}: expected user:password")
        users[user] = password
    return users


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
        self._client_nonce: str | None = None

    def _lookup(self, user: str) -> tuple[bytes, bytes, bytes, int]:
        self._user = user
        try:
            return self._credentials[user]
        except KeyError:
            raise AuthenticationFailed(_FAILED) from None

    def step(self, token: bytes) -> bytes:
        from scramp import ScramException  # imported already: this exchange's mechanism is scramp's

        try:
            message = token.decode("utf-8")
            if self._stage == 0:
                self._server.set_client_first(message)
                self._client_nonce = _attribute(message, "r")
                self._stage = 1
                return self._server.get_server_first().encode()
            if self._stage == 1:
                self._tolerate_librdkafka_nonce(message)
                self._server.set_client_final(message)
                self._stage = 2
                self.user, self.done = self._user, True
                return self._server.get_server_final().encode()
        except (ScramException, UnicodeDecodeError) as exc:
            # scramp's messages name what failed (a proof, a nonce), never a secret.
            log.debug("SCRAM exchange failed: %s", exc)
            raise AuthenticationFailed(_FAILED) from None
        raise AuthenticationFailed("Authentication failed: the SCRAM exchange is already complete")


    def _tolerate_librdkafka_nonce(self, client_final: str) -> None:
        """Accept librdkafka's client-final nonce before 2.6.1, as Kafka 3.8.1 to 3.9 do.

        librdkafka (Debian's kcat links 2.0) sends r = client nonce + the server's whole
        nonce, which already begins with the client nonce; Kafka answered with a check
        that the nonce *ends with* its own (KAFKA-17978's fix of CVE-2024-56128). scramp
        checks equality against ``ScramServer.nonce``: only for exactly that doubled form,
        and only while scramp keeps the combined nonce there, is it set to what the client
        sent, so the proof is still checked over the message the client signed."""
        sent = _attribute(client_final, "r")
        ours = getattr(self._server, "nonce", None)  # a str before scramp 1.5, a Nonce since
        if sent is None or ours is None or self._client_nonce is None:
            return
        combined = str(ours)
        if combined.startswith(self._client_nonce) and sent == self._client_nonce + combined:
            log.debug("SCRAM: the client sent librdkafka's doubled nonce (before 2.6.1); accepted")
            self._server.nonce = type(ours)(sent)


def _attribute(message: str, key: str) -> str | None:
    """One ``k=v`` attribute of a SCRAM message (values never hold a comma)."""
    for part in message.split(","):
        if part.startswith(key + "="):
            return part[len(key) + 1:]
    return None


class SaslServer:
    """The mechanisms and credentials of one listener; ``start`` one exchange per connection."""

    def __init__(self, settings: SaslSettings) -> None:
        self.settings = settings
        self._users = dict(settings.users)
        self._scram: dict[str, tuple[ScramMechanism, dict[str, tuple[bytes, bytes, bytes, int]]]] = {}
        for mech in settings.mechanisms:
            if mech in SCRAM_MECHANISMS:
                from scramp import ScramMechanism

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
