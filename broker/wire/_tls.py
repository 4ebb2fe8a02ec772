"""TLS for the listener: an ``ssl.SSLContext`` from the certificate and key files of the config.

Built once, at start, so a missing file, a key that is not the certificate's or a
certificate that is not PEM stops the listener with a message naming the file,
instead of failing every client's handshake later with an alert nobody reads.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from .._errors import ConfigError


@dataclass(frozen=True)
class TlsSettings:
    """The listener's certificate chain and key (PEM); ``cafile`` to require client certificates."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    #: The key file's passphrase, if it is encrypted; never in a repr.
    key_password: str | None = None

    def __repr__(self) -> str:
        return (f"TlsSettings(certfile={str(self.certfile)!r}, keyfile={str(self.keyfile)!r}, "
                f"cafile={str(self.cafile) if self.cafile else None!r})")


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server context (TLS 1.2 or newer); raises ``ConfigError`` naming the file at fault."""
    for what, path in (("certfile", settings.certfile), ("keyfile", settings.keyfile),
                       ("cafile", settings.cafile)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"kafka listener tls: {what} {path}: no such file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # No TLS 1.3 session tickets: sent unasked after the handshake, they reach a client
    # that has no request in flight, and kafka-python closes a connection that reads
    # bytes then ("Socket EVENT_READ without in-flight-requests"). Kafka clients do not
    # resume sessions, so the tickets would buy nothing.
    ctx.num_tickets = 0
    try:
        ctx.load_cert_chain(settings.certfile, settings.keyfile, password=settings.key_password)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"kafka listener tls: cannot use certfile {settings.certfile} with keyfile "
            f"{settings.keyfile}: {exc.reason or exc} (both must be PEM, the key the "
            "certificate's, and the key_password right if the key is encrypted)") from exc
    if settings.cafile is not None:
        try:
            ctx.load_verify_locations(cafile=settings.cafile)
        except ssl.SSLError as exc:
            raise ConfigError(f"kafka listener tls: cafile {settings.cafile}: not PEM "
                              f"certificates ({exc.reason or exc})") from exc
        # A CA given means clients prove who they are (Kafka's ssl.client.auth=required).
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
