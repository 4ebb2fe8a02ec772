"""``edge run``'s Kafka listener: broker.wire over the service's own open log.

Imported only when [kafka] listen is set: the listener's schema library is not loaded
by boxes that do not serve Kafka clients.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from broker import BrokerError, LogConfig
from broker.wire import CoordinatorSettings, ListenerConfig, WireServer, parse_listen
from broker.wire._sasl_api import listener_security
from edge._config import Config
from edge._errors import StartupError
from edge._exit import EX_CONFIG, EX_UNAVAILABLE

__all__ = ["ListenerCollector", "register_metrics", "start_kafka_listener"]


async def start_kafka_listener(cfg: Config, log_config: LogConfig) -> WireServer:
    """Bind and serve [kafka] listen; StartupError naming the key if it cannot be."""
    k = cfg.kafka
    assert k.listen is not None
    try:
        host, port = parse_listen(k.listen)
        security = listener_security(mechanisms=k.sasl_mechanisms, users_file=k.sasl_users_file,
                                     tls_cert=k.tls_cert, tls_key=k.tls_key, tls_ca=k.tls_ca,
                                     env=os.environ)
        groups = CoordinatorSettings(min_session_timeout_ms=round(k.group_min_session_timeout * 1000),
                                     max_session_timeout_ms=round(k.group_max_session_timeout * 1000),
                                     initial_rebalance_delay_ms=round(k.group_initial_rebalance_delay * 1000))
        listener = ListenerConfig(host=host, port=port, max_request_bytes=k.max_request_bytes,
                                  auto_create_topics=k.auto_create_topics, idle_timeout_s=k.idle_timeout,
                                  max_connections=k.max_connections, security=security, groups=groups)
    except BrokerError as exc:
        raise StartupError(f"{cfg.file}: [kafka]: {exc}", EX_CONFIG) from exc
    server = WireServer(listener, log_config=log_config)
    try:
        await server.start()
    except BrokerError as exc:
        raise StartupError(f"{cfg.file}: kafka.listen {k.listen}: {exc}; choose another [kafka] listen "
                           "address", EX_UNAVAILABLE) from exc
    return server


class ListenerCollector(Collector):
    """The listener's counters on /metrics, read from its snapshot at each scrape."""

    def __init__(self, server: WireServer) -> None:
        self._server = server

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        m = self._server.metrics.snapshot()
        yield GaugeMetricFamily("edge_kafka_connections", "Open connections of Kafka clients",
                                value=m["connections"])
        req = CounterMetricFamily("edge_kafka_requests", "Kafka protocol requests served, by API",
                                  labels=["api"])
        for api, n in sorted(m["requests"].items()):
            req.add_metric([api], n)
        yield req
        err = CounterMetricFamily("edge_kafka_errors", "Kafka connections closed or requests refused, "
                                  "by kind (malformed, oversize, idle_timeout, produce_refused...)",
                                  labels=["kind"])
        for kind, n in sorted(m["errors"].items()):
            err.add_metric([kind], n)
        yield err
        yield CounterMetricFamily("edge_kafka_duplicate_batches", "Idempotent producers' retried "
                                  "batches answered with their first offset, not written again",
                                  value=m["duplicate_batches"])
        yield GaugeMetricFamily("edge_kafka_group_members", "Members of consumer groups over the wire",
                                value=m.get("group_members", 0))


def register_metrics(registry: CollectorRegistry, server: WireServer) -> None:
    registry.register(ListenerCollector(server))
