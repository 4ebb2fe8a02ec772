"""The uplink's TLS context: built once from the config (the control channel uses it too)."""

from __future__ import annotations

import ssl

from ._config import UplinkConfig
from ._errors import UplinkConfigError

__all__ = ["ssl_context"]

def ssl_context(config: UplinkConfig) -> ssl.SSLContext | None:
    """The TLS context of ``config`` for SSL and SASL_SSL, None otherwise (built once: a bad
    file is an UplinkConfigError). Public so the control channel connects as the uplink does."""
    c = config
    if c.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        ctx = ssl.create_default_context(cafile=c.ssl_cafile)
    except (OSError, ValueError) as exc:
        raise UplinkConfigError("ssl_cafile", f"a PEM file of CA certificates ({exc})",
                                c.ssl_cafile) from exc
    if c.ssl_certfile:
        try:
            ctx.load_cert_chain(c.ssl_certfile, c.ssl_keyfile, c.ssl_key_password)
        except (OSError, ValueError) as exc:
            raise UplinkConfigError("ssl_certfile", f"a PEM certificate whose key is in ssl_keyfile"
                                    f" or in the same file ({exc})", c.ssl_certfile) from exc
    return ctx
