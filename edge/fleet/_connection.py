"""``FleetConnection``: how the fleet CLI reaches the cluster (Kafka's own options).

The same security settings as the uplink's ``[upstream]`` table (edge/uplink/_config.py:
``security_protocol``, SASL PLAIN/SCRAM, TLS files), so an operator who connected a box
knows them already; the CLI takes them as ``--bootstrap-server``, ``--security-protocol``
and so on, or from ``EDGE_FLEET_*`` variables (the password only from the environment, so
it never sits in shell history).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from ._errors import FleetUsageError

__all__ = ["FleetConnection"]


@dataclass(frozen=True)
class FleetConnection:
    """The cluster and how to authenticate to it; checked on creation (``FleetUsageError``)."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    request_timeout_s: float = 30.0
    client_id: str = "edge-fleet"

    def __post_init__(self) -> None:
        # Here, not at the top: edge.uplink's package imports aiokafka, and `edge --help`
        # builds the fleet's parser, which imports this module.
        from edge.uplink._config import SASL_MECHANISMS, SECURITY_PROTOCOLS
        from edge.uplink._secrets import register_secrets

        if not self.bootstrap_servers or not self.bootstrap_servers.strip():
            raise FleetUsageError("--bootstrap-server: expected host:port[,host:port...], got "
                                  "nothing (or set $EDGE_FLEET_BOOTSTRAP_SERVER)")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise FleetUsageError(f"--security-protocol: expected one of "
                                  f"{', '.join(SECURITY_PROTOCOLS)}, got {self.security_protocol!r}")
        sasl = self.security_protocol.startswith("SASL")
        if sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise FleetUsageError(f"--sasl-mechanism: expected one of "
                                      f"{', '.join(SASL_MECHANISMS)} with {self.security_protocol},"
                                      f" got {self.sasl_mechanism!r}")
            if not self.sasl_username or not self.sasl_password:
                raise FleetUsageError(f"{self.security_protocol} needs --sasl-username (or "
                                      "$EDGE_FLEET_SASL_USERNAME) and $EDGE_FLEET_SASL_PASSWORD")
        elif self.sasl_mechanism is not None:
            raise FleetUsageError(f"--sasl-mechanism {self.sasl_mechanism} needs "
                                  f"--security-protocol SASL_PLAINTEXT or SASL_SSL, got "
                                  f"{self.security_protocol}")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is None:
                continue
            flag = "--" + name.replace("_", "-")
            if not tls:
                raise FleetUsageError(f"{flag} needs --security-protocol SSL or SASL_SSL "
                                      f"(TLS is off with {self.security_protocol})")
            if not os.path.isfile(value):
                raise FleetUsageError(f"{flag}: expected a readable PEM file, got {value!r}")
        register_secrets(self.sasl_password, self.ssl_key_password)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        opts: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "request_timeout_ms": int(self.request_timeout_s * 1000),
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            opts["ssl_context"] = self._ssl_context()
        if self.security_protocol.startswith("SASL"):
            opts.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password)
        return opts

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password)
        except (OSError, ValueError) as exc:
            raise FleetUsageError(f"TLS files (--ssl-cafile, --ssl-certfile, --ssl-keyfile) "
                                  f"cannot be used: {exc}") from exc
        return ctx
