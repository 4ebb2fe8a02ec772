"""Why the cluster could not be reached, in words an operator can act on.

aiokafka's clients report a failed bootstrap as ``KafkaConnectionError: Unable to bootstrap
from [...]`` and only log the cause (bad password, untrusted certificate, refused port). When
that happens the uplink opens one connection itself, with the same settings, and turns the
exception it gets into a sentence that names the setting to check. Secrets never enter the
sentence: it is built from the config's non-secret fields and the error's text, and the
password is masked (``_secrets``) in case a broker ever echoed it back.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    IncompatibleBrokerVersion,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from ._config import ENV_SASL_PASSWORD, UplinkConfig
from ._secrets import mask

__all__ = ["diagnose_connect"]


def explain(exc: BaseException, config: UplinkConfig, where: str,
            after_connect: bool = False) -> str | None:
    """A sentence for a connect failure at ``where`` (host:port); None if there is nothing to
    add. ``after_connect``: the connection was made and the first request (Metadata) failed."""
    c = config
    if isinstance(exc, IncompatibleBrokerVersion):
        return (f"{where} answers, but not as a broker (it offers no Metadata request): is it"
                f" a KRaft controller port? bootstrap_servers must name the brokers' client"
                f" listeners")
    if after_connect and not c.security_protocol.startswith("SASL") and isinstance(
            exc, KafkaConnectionError | ConnectionError | EOFError):
        return (f"{where} accepted the connection but closed it at the first request: a"
                f" listener that expects SASL authentication? set security_protocol"
                f" SASL_PLAINTEXT or SASL_SSL and sasl_mechanism (now {c.security_protocol})")
    if after_connect and isinstance(exc, TimeoutError):
        return (f"{where} accepted the connection but did not answer a metadata request within"
                f" {c.request_timeout_s:g} s: the broker is overloaded or stopped (SIGSTOP, a"
                f" long GC pause), or the listener speaks another protocol than"
                f" {c.security_protocol}")
    if isinstance(exc, SaslAuthenticationFailed):
        detail = str(exc).split(":", 1)[-1].strip() or "authentication failed"
        return (f"authentication failed at {where}: SASL {c.sasl_mechanism} user {c.sasl_username!r}"
                f" was refused ({detail}); check sasl_username and sasl_password"
                f" (or ${ENV_SASL_PASSWORD}) and that the user exists on the cluster")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (f"the listener at {where} does not offer SASL mechanism {c.sasl_mechanism}"
                f" ({exc}); pick one it enables in sasl_mechanism")
    if isinstance(exc, ssl.SSLCertVerificationError):
        trusted = c.ssl_cafile or "the system's CA store"
        return (f"TLS: the certificate of {where} is not trusted ({exc.verify_message}) with"
                f" {trusted}; set ssl_cafile to the CA that signed the cluster's certificates")
    if c.security_protocol in ("SSL", "SASL_SSL") and isinstance(
            exc, ConnectionResetError | ssl.SSLEOFError | EOFError):
        return (f"TLS handshake with {where} failed: it closed the connection; is it an"
                f" {c.security_protocol} listener (security_protocol)?")
    if isinstance(exc, ConnectionResetError | EOFError):
        return (f"{where} closed the connection while connecting; does the listener speak"
                f" security_protocol {c.security_protocol}?")
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake with {where} failed ({exc.reason or exc}); is it an"
                f" {c.security_protocol} listener?")
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens at {where} (connection refused); check bootstrap_servers"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return (f"no answer from {where} within {c.request_timeout_s} s; a firewall, a wrong port,"
                f" or security_protocol {c.security_protocol} on a listener that speaks another")
    if isinstance(exc, OSError | KafkaError):
        return f"cannot connect to {where}: {type(exc).__name__}: {exc}"
    return None


async def diagnose_connect(config: UplinkConfig, options: dict[str, Any]) -> str | None:
    """Connect to the first bootstrap server with ``options`` and say why that fails.

    Returns None if the connection works (the failure lies elsewhere). Never raises for
    network trouble; bounded by the config's request timeout.
    """
    host, port, _ = collect_hosts(config.bootstrap_servers, randomize=False)[0]
    where = f"{host}:{port}"
    keys = ("client_id", "request_timeout_ms", "ssl_context", "security_protocol",
            "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
    conn = None
    try:
        async with asyncio.timeout(config.request_timeout_s):
            conn = await create_conn(host, port, **{k: options[k] for k in keys if k in options})
            # Connected is not served: a SASL listener spoken to in PLAINTEXT, or a KRaft
            # controller port, accepts the connection and fails the first real request.
            await conn.send(MetadataRequest([]))
    except BaseException as exc:  # any failure is what we want to describe
        task = asyncio.current_task()  # never None in a coroutine
        if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
            raise
        text = explain(_cause(exc), config, where, after_connect=conn is not None)
        return mask(text) if text else None
    finally:
        if conn is not None:
            conn.close()
    return None


def _cause(exc: BaseException) -> BaseException:
    """What really happened: aiokafka wraps the socket layer's error. The walk stops at a
    TimeoutError, whose cause is only the CancelledError that ``asyncio.timeout`` used."""
    cause = exc
    while cause.__cause__ is not None and not isinstance(
            cause, SaslAuthenticationFailed | UnsupportedSaslMechanismError | ssl.SSLError
            | TimeoutError) and not isinstance(cause.__cause__, asyncio.CancelledError):
        cause = cause.__cause__
    return cause
