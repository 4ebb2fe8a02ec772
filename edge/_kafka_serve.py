"""``edge run``'s Kafka listener: broker.wire over the service's own open log.

Imported only when [kafka] listen is set: the listener's schema library is not loaded
by boxes that do not serve Kafka clients.
"""

from __future__ import annotations

import os

from broker import BrokerError, LogConfig
from broker.wire import ListenerConfig, WireServer, parse_listen
from broker.wire._sasl_api import listener_security
from edge._config import Config
from edge._errors import StartupError
from edge._exit import EX_CONFIG, EX_UNAVAILABLE

__all__ = ["start_kafka_listener"]


async def start_kafka_listener(cfg: Config, log_config: LogConfig) -> WireServer:
    """Bind and serve [kafka] listen; StartupError naming the key if it cannot be."""
    k = cfg.kafka
    assert k.listen is not None
    try:
        host, port = parse_listen(k.listen)
        security = listener_security(mechanisms=k.sasl_mechanisms, users_file=k.sasl_users_file,
                                     tls_cert=k.tls_cert, tls_key=k.tls_key, tls_ca=k.tls_ca,
                                     env=os.environ)
        listener = ListenerConfig(host=host, port=port, max_request_bytes=k.max_request_bytes,
                                  auto_create_topics=k.auto_create_topics, idle_timeout_s=k.idle_timeout,
                                  max_connections=k.max_connections, security=security)
    except BrokerError as exc:
        raise StartupError(f"{cfg.file}: [kafka]: {exc}", EX_CONFIG) from exc
    server = WireServer(listener, log_config=log_config)
    try:
        await server.start()
    except BrokerError as exc:
        raise StartupError(f"{cfg.file}: kafka.listen {k.listen}: {exc}; choose another [kafka] listen "
                           "address", EX_UNAVAILABLE) from exc
    return server
