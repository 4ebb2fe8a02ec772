"""The [kafka] table: Kafka's wire protocol served by ``edge run`` over its own log."""

from __future__ import annotations

from dataclasses import dataclass

from edge._schema import setting, split_address

__all__ = ["KafkaSettings"]

# broker.wire._sasl.MECHANISMS, spelled here: importing it would load the listener's
# schema library for every config read, served or not.
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    """Kafka clients (kafka-python, aiokafka, kcat, Kafka's tools) read and write the box's log
    at this address (docs/kafka-listener.md). Off unless ``listen`` is set; a loopback
    address unless authentication is configured (binding another one without it is refused).
    """

    listen: str | None = setting(
        None, kind="str", check=lambda v: split_address(v) is not None,
        expected='"host:port" with a port in 1..65535 (e.g. "127.0.0.1:9092")',
        default_doc="off", example="127.0.0.1:9092", in_example=False,
        doc="serve Kafka's wire protocol here (bootstrap_servers)")
    max_request_bytes: int = setting(
        10 * 1024 * 1024, kind="int", check=lambda v: v >= 1024, expected="an integer >= 1024",
        doc="a larger request closes its connection (Kafka's socket.request.max.bytes)")
    auto_create_topics: bool = setting(
        False, kind="bool", doc="create a topic a client names in Metadata or Produce")
    idle_timeout: float = setting(
        600.0, kind="num", check=lambda v: v > 0, expected="a positive number of seconds",
        doc="seconds a connection may stay silent (Kafka's connections.max.idle.ms)")
    max_connections: int = setting(
        1000, kind="int", check=lambda v: v >= 1, expected="an integer >= 1",
        doc="connections beyond this are closed at once")
    sasl_mechanisms: tuple[str, ...] = setting(
        (), kind="any", convert=tuple,
        check=lambda v: isinstance(v, list) and bool(v) and all(m in _MECHANISMS for m in v),
        expected='an array of "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"',
        default_doc="all three when there are users", example=["SCRAM-SHA-512"], in_example=False,
        doc="SASL mechanisms offered; the users come from sasl_users_file or $EDGE_KAFKA_SASL_USERS")
    sasl_users_file: str | None = setting(
        None, kind="str", default_doc="none", example="/etc/edge/kafka-users", in_example=False,
        doc="who may connect with SASL: user:password lines, readable by its owner only")
    tls_cert: str | None = setting(
        None, kind="str", default_doc="plaintext", example="/etc/edge/kafka.pem", in_example=False,
        doc="the listener's TLS certificate chain (PEM); with tls_key, clients connect with SSL")
    tls_key: str | None = setting(
        None, kind="str", default_doc="none", example="/etc/edge/kafka.key", in_example=False,
        doc="the private key of tls_cert (PEM)")
    group_min_session_timeout: float = setting(
        6.0, kind="num", check=lambda v: v >= 0.001, expected="seconds >= 0.001",
        doc="the shortest session a consumer may ask for (Kafka's group.min.session.timeout.ms): "
            "a member silent this long is out of its group")
    group_max_session_timeout: float = setting(
        1800.0, kind="num", check=lambda v: v >= 0.001, expected="seconds >= 0.001",
        doc="the longest session a consumer may ask for (Kafka's group.max.session.timeout.ms)")
    group_initial_rebalance_delay: float = setting(
        3.0, kind="num", check=lambda v: v >= 0, expected="seconds >= 0",
        doc="how long a new group waits for more members before its first assignment "
            "(Kafka's group.initial.rebalance.delay.ms)")
    tls_ca: str | None = setting(
        None, kind="str", default_doc="none", example="/etc/edge/clients-ca.pem", in_example=False,
        doc="require client certificates signed by this CA (PEM)")
