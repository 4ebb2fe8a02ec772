"""Kafka clients of the control channel, connected as [upstream] of the base file says."""

from __future__ import annotations

from typing import Any

from edge._config import Config, uplink_topics

__all__ = ["client_options"]


def client_options(cfg: Config) -> dict[str, Any]:
    """aiokafka options (servers, TLS, SASL) of ``cfg``'s [upstream], the uplink's own."""
    from edge.uplink import UplinkConfig, ssl_context  # one TLS set-up for uplink and control

    settings = dict(cfg.upstream.settings)
    settings.setdefault("topics", uplink_topics(cfg.devices, cfg.log.dead_letter_topic))
    c = UplinkConfig(edge_id=cfg.edge_id, data_dir=cfg.data_dir, **settings)
    opts: dict[str, Any] = {
        "bootstrap_servers": c.bootstrap_servers,
        "client_id": f"edge-control-{cfg.edge_id}",
        "request_timeout_ms": int(c.request_timeout_s * 1000),
        "security_protocol": c.security_protocol,
    }
    context = ssl_context(c)
    if context is not None:
        opts["ssl_context"] = context
    if c.security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=c.sasl_mechanism, sasl_plain_username=c.sasl_username,
                    sasl_plain_password=c.sasl_password)
    return opts
