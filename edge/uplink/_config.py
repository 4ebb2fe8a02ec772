"""``UplinkConfig``: what the uplink replicates, where to, and how; validated on creation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from broker import DROP_LEDGER_TOPIC, is_topic_name

from ._errors import UplinkConfigError

__all__ = ["DELIVERY_MODES", "SECURITY_PROTOCOLS", "SASL_MECHANISMS", "TopicMapping", "UplinkConfig"]

DELIVERY_MODES = ("exactly-once", "at-least-once")
COMPRESSIONS = ("lz4", "zstd", None)
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ENV_SASL_USERNAME = "EDGE_UPSTREAM_SASL_USERNAME"
ENV_SASL_PASSWORD = "EDGE_UPSTREAM_SASL_PASSWORD"

_EDGE_ID_RE = re.compile(r"^[a-zA-Z0-9._-]{1,200}$")


def _check_topic(key: str, name: object) -> str:
    if not is_topic_name(name):
        raise UplinkConfigError(
            key, "a Kafka topic name: 1 to 249 of ASCII letters, digits, '.', '_', '-'", name)
    return name


def _check_int(key: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UplinkConfigError(key, f"an integer >= {minimum}", value)
    return value


@dataclass(frozen=True)
class TopicMapping:
    """One local topic and the upstream topic it is replicated to.

    ``partitions`` and ``replication_factor`` are used only when the upstream
    topic does not exist yet and the uplink creates it; ``partitions=None`` (the
    default) takes the local topic's count, so a key has the same partition number on
    both sides (``_topics.py``).
    """

    local: str
    upstream: str
    partitions: int | None = None
    replication_factor: int = 1


@dataclass(frozen=True)
class UplinkConfig:
    """Settings of one uplink; times in seconds, sizes in bytes.

    ``topics`` maps local topic names to upstream names (``str``) or to
    ``TopicMapping``; it is normalised to a tuple of ``TopicMapping``.
    The drop ledger (``broker.DROP_LEDGER_TOPIC``) is added as
    ``drop_ledger_upstream`` unless ``replicate_drop_ledger`` is false.
    SASL credentials default to ``$EDGE_UPSTREAM_SASL_USERNAME`` /
    ``$EDGE_UPSTREAM_SASL_PASSWORD`` and never appear in ``repr``; nor does
    ``ssl_key_password`` (for an encrypted ``ssl_keyfile``). The ``ssl_*`` files must
    exist, and only with SSL or SASL_SSL.
    Raises ``UplinkConfigError`` naming the key and the bad value.
    """

    edge_id: str
    bootstrap_servers: str
    data_dir: Path
    topics: Mapping[str, str | TopicMapping] | tuple[TopicMapping, ...]
    delivery: str = "exactly-once"
    compression: str | None = "lz4"
    linger_s: float = 0.005
    batch_records: int = 1000          # records per upstream transaction (or ack round)
    batch_bytes: int = 4 * 1024 * 1024  # and at most about this many bytes (see README: memory)
    producer_batch_bytes: int = 256 * 1024   # aiokafka max_batch_size, per partition
    max_request_bytes: int = 1024 * 1024     # larger records go to the dead-letter topic
    max_bytes_per_s: int | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = field(default=None, repr=False)
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    default_partitions: int | None = None   # None: the local topic's count
    default_replication_factor: int = 1
    replicate_drop_ledger: bool = True
    drop_ledger_upstream: str = "edge.drop-ledger"
    dlq_topic: str = "uplink.dlq"
    resume_scan_records: int = 50_000   # per upstream partition, when a checkpoint is gone
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    request_timeout_s: float = 30.0
    stop_timeout_s: float = 5.0        # stop() abandons a batch the cluster holds longer

    def __post_init__(self) -> None:
        if not isinstance(self.edge_id, str) or not _EDGE_ID_RE.match(self.edge_id):
            raise UplinkConfigError("edge_id", "1 to 200 of ASCII letters, digits, '.', '_', '-'",
                                    self.edge_id)
        if not isinstance(self.bootstrap_servers, str) or not self.bootstrap_servers.strip():
            raise UplinkConfigError("bootstrap_servers", "host:port[,host:port...]",
                                    self.bootstrap_servers)
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "topics", self._mappings())
        if self.delivery not in DELIVERY_MODES:
            raise UplinkConfigError("delivery", " or ".join(map(repr, DELIVERY_MODES)), self.delivery)
        if self.compression not in COMPRESSIONS:
            raise UplinkConfigError("compression", "'lz4', 'zstd' or None", self.compression)
        if not isinstance(self.linger_s, int | float) or not 0 <= self.linger_s <= 60:
            raise UplinkConfigError("linger_s", "seconds between 0 and 60", self.linger_s)
        _check_int("batch_records", self.batch_records, 1)
        _check_int("batch_bytes", self.batch_bytes, 1024)
        _check_int("producer_batch_bytes", self.producer_batch_bytes, 1024)
        _check_int("max_request_bytes", self.max_request_bytes, 1024)
        if self.max_bytes_per_s is not None:
            _check_int("max_bytes_per_s", self.max_bytes_per_s, 1)
        if self.default_partitions is not None:
            _check_int("default_partitions", self.default_partitions, 1)
        _check_int("default_replication_factor", self.default_replication_factor, 1)
        _check_int("resume_scan_records", self.resume_scan_records, 0)
        _check_topic("dlq_topic", self.dlq_topic)
        _check_topic("drop_ledger_upstream", self.drop_ledger_upstream)
        for key in ("backoff_initial_s", "backoff_max_s", "request_timeout_s", "stop_timeout_s"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or value <= 0:
                raise UplinkConfigError(key, "a positive number of seconds", value)
        self._check_security()

    def _mappings(self) -> tuple[TopicMapping, ...]:
        raw = self.topics
        if isinstance(raw, Mapping):
            items = list(raw.items())
        elif isinstance(raw, tuple | list) and all(isinstance(m, TopicMapping) for m in raw):
            items = [(m.local, m) for m in raw]
        else:
            raise UplinkConfigError("topics", "a table of local topic = upstream topic", raw)
        if not items:
            raise UplinkConfigError("topics", "at least one local topic to replicate", raw)
        out: list[TopicMapping] = []
        for local, target in items:
            _check_topic(f"topics.{local}", local)
            if isinstance(target, str):
                target = TopicMapping(local, target, self.default_partitions,
                                      self.default_replication_factor)
            elif not isinstance(target, TopicMapping):
                raise UplinkConfigError(f"topics.{local}", "an upstream topic name", target)
            elif target.local != local:
                target = TopicMapping(local, target.upstream, target.partitions,
                                      target.replication_factor)
            _check_topic(f"topics.{local}", target.upstream)
            if target.partitions is not None:
                _check_int(f"topics.{local}.partitions", target.partitions, 1)
            _check_int(f"topics.{local}.replication_factor", target.replication_factor, 1)
            out.append(target)
        if self.replicate_drop_ledger and not any(m.local == DROP_LEDGER_TOPIC for m in out):
            out.insert(0, TopicMapping(DROP_LEDGER_TOPIC, self.drop_ledger_upstream, None,
                                       self.default_replication_factor))
        upstream = [m.upstream for m in out]
        for name in upstream:
            if upstream.count(name) > 1:
                raise UplinkConfigError("topics", "each local topic mapped to its own upstream topic",
                                        name)
        if not out:
            raise UplinkConfigError("topics", "at least one local topic to replicate", raw)
        return tuple(out)

    def _check_security(self) -> None:
        # Credentials and key files are strings, checked before anything uses them: a
        # password of 12345 or ["..."] passed `edge config check` and then failed in
        # aiokafka at every connect. The error shows the kind, never the value.
        for key, env in (("sasl_username", f" (or ${ENV_SASL_USERNAME})"),
                         ("sasl_password", f" (or ${ENV_SASL_PASSWORD})"),
                         ("ssl_key_password", ""), ("ssl_cafile", ""), ("ssl_certfile", ""),
                         ("ssl_keyfile", "")):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise UplinkConfigError(key, f"a string{env}", value)
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise UplinkConfigError("security_protocol", ", ".join(SECURITY_PROTOCOLS),
                                    self.security_protocol)
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise UplinkConfigError("sasl_mechanism", ", ".join(SASL_MECHANISMS),
                                        self.sasl_mechanism)
            if self.sasl_username is None:
                object.__setattr__(self, "sasl_username", os.environ.get(ENV_SASL_USERNAME))
            if self.sasl_password is None:
                object.__setattr__(self, "sasl_password", os.environ.get(ENV_SASL_PASSWORD))
            if not self.sasl_username:
                raise UplinkConfigError(
                    "sasl_username", f"a user name (or ${ENV_SASL_USERNAME}) for {self.sasl_mechanism}")
            if not self.sasl_password:
                raise UplinkConfigError(
                    "sasl_password", f"a password (or ${ENV_SASL_PASSWORD}) for {self.sasl_mechanism}")
        elif self.sasl_mechanism is not None:
            raise UplinkConfigError("sasl_mechanism",
                                    f"nothing with security_protocol {self.security_protocol}",
                                    self.sasl_mechanism)
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, key)
            if value is None:
                continue
            if self.security_protocol not in ("SSL", "SASL_SSL"):
                raise UplinkConfigError(
                    key, f"nothing with security_protocol {self.security_protocol} (TLS is off)",
                    value)
            if not os.path.isfile(value):
                raise UplinkConfigError(key, "the path of a readable PEM file", value)
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise UplinkConfigError("ssl_certfile", "the client certificate for ssl_keyfile")

    @property
    def exactly_once(self) -> bool:
        return self.delivery == "exactly-once"

    @property
    def transactional_id(self) -> str:
        return f"edge-uplink-{self.edge_id}"

    @property
    def group_id(self) -> str:
        """The local consumer group (protected) and the upstream checkpoint group."""
        return f"edge-uplink-{self.edge_id}"
