"""``UplinkConfig``: what the uplink replicates, where to, and how; validated on creation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from broker import DROP_LEDGER_TOPIC, TOPIC_NAME_RULE, is_topic_name
from edge._schema import Problems, check_values, setting

from ._errors import UplinkConfigError

__all__ = ["DELIVERY_MODES", "SECURITY_PROTOCOLS", "SASL_MECHANISMS", "TopicMapping", "UplinkConfig"]

DELIVERY_MODES = ("exactly-once", "at-least-once")
COMPRESSIONS = ("lz4", "zstd", None)
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ENV_SASL_USERNAME = "EDGE_UPSTREAM_SASL_USERNAME"
ENV_SASL_PASSWORD = "EDGE_UPSTREAM_SASL_PASSWORD"

#: UplinkConfig's fields that the appliance fills in from its own config, not [upstream] keys.
FROM_EDGE = frozenset({"edge_id", "data_dir"})

_EDGE_ID_RE = re.compile(r"^[a-zA-Z0-9._-]{1,200}$")


def _int_at_least(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


_TOPIC_RULE = f"a Kafka topic name: {TOPIC_NAME_RULE}"


def _at_least(minimum: int) -> dict[str, Any]:
    return {"kind": "int", "check": lambda v: v >= minimum, "expected": f"an integer >= {minimum}"}


def _seconds() -> dict[str, Any]:
    return {"kind": "num", "check": lambda v: v > 0, "expected": "a positive number of seconds"}


def _topic(default: str, doc: str) -> Any:
    return setting(default, kind="any", check=is_topic_name, expected=_TOPIC_RULE, doc=doc)


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
    """Settings of one uplink; times in seconds, sizes in bytes (the ``[upstream]`` table).

    ``topics`` maps local topic names to upstream names (``str``) or to
    ``TopicMapping``; it is normalised to a tuple of ``TopicMapping``.
    The drop ledger (``broker.DROP_LEDGER_TOPIC``) is added as
    ``drop_ledger_upstream`` unless ``replicate_drop_ledger`` is false.
    SASL credentials default to ``$EDGE_UPSTREAM_SASL_USERNAME`` /
    ``$EDGE_UPSTREAM_SASL_PASSWORD`` and never appear in ``repr``; nor does
    ``ssl_key_password`` (for an encrypted ``ssl_keyfile``). The ``ssl_*`` files must
    exist, and only with SSL or SASL_SSL.
    Raises ``UplinkConfigError`` naming every bad key and value (``key`` is the first's).
    """

    edge_id: str = setting(kind="any", custom=True, doc="the appliance's edge_id")
    bootstrap_servers: str = setting(
        kind="any", custom=True, expected="host:port[,host:port...]",
        doc="the cluster's brokers, host:port[,host:port...]")
    data_dir: Path = setting(kind="any", custom=True, doc="the appliance's data_dir")
    topics: Mapping[str, str | TopicMapping] | tuple[TopicMapping, ...] = setting(
        kind="any", custom=True, default_doc="every device topic and the dead letters, under "
        "their own names", doc="local topic = upstream topic")
    delivery: str = setting("exactly-once", kind="any", check=lambda v: v in DELIVERY_MODES,
                            expected=" or ".join(map(repr, DELIVERY_MODES)),
                            doc='"exactly-once" (Kafka transactions) or "at-least-once"')
    compression: str | None = setting("lz4", kind="any", check=lambda v: v in COMPRESSIONS,
                                      expected="'lz4', 'zstd' or None", doc='"lz4" or "zstd"')
    linger_s: float = setting(0.005, kind="num", check=lambda v: 0 <= v <= 60,
                              expected="seconds between 0 and 60",
                              doc="how long a batch waits for more records")
    batch_records: int = setting(1000, **_at_least(1),
                                 doc="records per upstream transaction (or ack round)")
    batch_bytes: int = setting(4 * 1024 * 1024, **_at_least(1024),
                               doc="and at most about this many bytes (edge/uplink/README.md: memory)")
    producer_batch_bytes: int = setting(256 * 1024, **_at_least(1024),
                                        doc="aiokafka's max_batch_size, per partition")
    max_request_bytes: int = setting(1024 * 1024, **_at_least(1024),
                                     doc="larger records go to the dead-letter topic")
    max_bytes_per_s: int | None = setting(None, **_at_least(1), example=1_000_000,
                                          in_example=False, doc="a bandwidth cap; none by default")
    security_protocol: str = setting(
        "PLAINTEXT", kind="any", custom=True, expected=", ".join(SECURITY_PROTOCOLS),
        example="SASL_SSL", in_example=False, doc=" or ".join(f'"{p}"' for p in SECURITY_PROTOCOLS))
    sasl_mechanism: str | None = setting(
        None, kind="any", custom=True, example="SCRAM-SHA-512", in_example=False,
        doc=" or ".join(f'"{m}"' for m in SASL_MECHANISMS) + " (with SASL_*)")
    sasl_username: str | None = setting(None, kind="any", custom=True, repr=False,
                                        example="edge-1", in_example=False,
                                        doc=f"or ${ENV_SASL_USERNAME}")
    sasl_password: str | None = setting(None, kind="any", custom=True, repr=False,
                                        doc=f"or ${ENV_SASL_PASSWORD} (a secret: never shown)")
    ssl_cafile: str | None = setting(None, kind="any", custom=True,
                                     doc="CA certificates (PEM); default: the system's")
    ssl_certfile: str | None = setting(None, kind="any", custom=True,
                                       doc="a client certificate (PEM), with ssl_keyfile")
    ssl_keyfile: str | None = setting(None, kind="any", custom=True, doc="its key (PEM)")
    ssl_key_password: str | None = setting(
        None, kind="any", custom=True, repr=False,
        doc="for an encrypted ssl_keyfile, or EDGE_UPSTREAM_SSL_KEY_PASSWORD")
    default_partitions: int | None = setting(
        None, **_at_least(1), default_doc="the local topic's count",
        doc="partitions of an upstream topic the uplink creates")
    default_replication_factor: int = setting(1, **_at_least(1),
                                              doc="replication factor of a topic it creates")
    replicate_drop_ledger: bool = setting(True, kind="bool",
                                          doc="replicate the log's drop ledger too")
    drop_ledger_upstream: str = _topic("edge.drop-ledger", "the drop ledger's upstream topic")
    dlq_topic: str = _topic("uplink.dlq", "local topic for records the cluster refuses for good")
    resume_scan_records: int = setting(
        50_000, **_at_least(0),
        doc="records scanned per upstream partition to resume when a checkpoint is gone")
    backoff_initial_s: float = setting(0.2, **_seconds(), doc="first wait before a reconnect")
    backoff_max_s: float = setting(10.0, **_seconds(), doc="longest wait between reconnects")
    request_timeout_s: float = setting(30.0, **_seconds(), doc="aiokafka's request timeout")
    stop_timeout_s: float = setting(5.0, **_seconds(),
                                    doc="stop() abandons a batch the cluster holds longer")

    def __post_init__(self) -> None:
        problems = Problems("uplink")
        if not isinstance(self.edge_id, str) or not _EDGE_ID_RE.match(self.edge_id):
            problems.bad("edge_id", "1 to 200 of ASCII letters, digits, '.', '_', '-'", self.edge_id)
        if not isinstance(self.bootstrap_servers, str) or not self.bootstrap_servers.strip():
            problems.bad("bootstrap_servers", "host:port[,host:port...]", self.bootstrap_servers)
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        check_values(self, problems)
        if not problems.problems:  # the mappings read default_partitions and the like
            object.__setattr__(self, "topics", self._mappings(problems))
        self._check_security(problems)
        if problems.problems:
            raise UplinkConfigError.of(problems.problems)

    @property
    def topic_mappings(self) -> tuple[TopicMapping, ...]:
        """``topics`` as ``__post_init__`` normalised it: one ``TopicMapping`` per local topic."""
        return cast(tuple[TopicMapping, ...], self.topics)  # the field's type is what it accepts

    def _mappings(self, problems: Problems) -> tuple[TopicMapping, ...]:
        raw = self.topics
        if isinstance(raw, Mapping):
            items = list(raw.items())
        elif isinstance(raw, tuple | list) and all(isinstance(m, TopicMapping) for m in raw):
            items = [(m.local, m) for m in raw]
        else:
            problems.bad("topics", "a table of local topic = upstream topic", raw)
            return ()
        if not items:
            problems.bad("topics", "at least one local topic to replicate", raw)
            return ()
        out: list[TopicMapping] = []
        for local, target in items:
            key = f"topics.{local}"
            if isinstance(target, str):
                target = TopicMapping(local, target, self.default_partitions,
                                      self.default_replication_factor)
            elif not isinstance(target, TopicMapping):
                problems.bad(key, "an upstream topic name", target)
                continue
            elif target.local != local:
                target = TopicMapping(local, target.upstream, target.partitions,
                                      target.replication_factor)
            before = len(problems)
            for name in (local, target.upstream):
                if not is_topic_name(name):
                    problems.bad(key, _TOPIC_RULE, name)
                    break
            if target.partitions is not None and not _int_at_least(target.partitions, 1):
                problems.bad(f"{key}.partitions", "an integer >= 1", target.partitions)
            if not _int_at_least(target.replication_factor, 1):
                problems.bad(f"{key}.replication_factor", "an integer >= 1", target.replication_factor)
            if len(problems) == before:
                out.append(target)
        if self.replicate_drop_ledger and not any(m.local == DROP_LEDGER_TOPIC for m in out):
            out.insert(0, TopicMapping(DROP_LEDGER_TOPIC, self.drop_ledger_upstream, None,
                                       self.default_replication_factor))
        upstream = [m.upstream for m in out]
        for name in dict.fromkeys(upstream):
            if upstream.count(name) > 1:
                problems.bad("topics", "each local topic mapped to its own upstream topic", name)
        return tuple(out)

    def _check_security(self, problems: Problems) -> None:
        # Credentials and key files are strings, checked before anything uses them: a
        # password of 12345 or ["..."] passed `edge config check` and then failed in
        # aiokafka at every connect. The error shows the kind, never the value.
        bad = False
        for key, env in (("sasl_username", f" (or ${ENV_SASL_USERNAME})"),
                         ("sasl_password", f" (or ${ENV_SASL_PASSWORD})"),
                         ("ssl_key_password", ""), ("ssl_cafile", ""), ("ssl_certfile", ""),
                         ("ssl_keyfile", "")):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                problems.bad(key, f"a string{env}", value)
                bad = True
        if self.security_protocol not in SECURITY_PROTOCOLS:
            problems.bad("security_protocol", ", ".join(SECURITY_PROTOCOLS), self.security_protocol)
            return
        if bad:
            return
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                problems.bad("sasl_mechanism", ", ".join(SASL_MECHANISMS), self.sasl_mechanism)
            if self.sasl_username is None:
                object.__setattr__(self, "sasl_username", os.environ.get(ENV_SASL_USERNAME))
            if self.sasl_password is None:
                object.__setattr__(self, "sasl_password", os.environ.get(ENV_SASL_PASSWORD))
            if not self.sasl_username:
                problems.bad("sasl_username",
                             f"a user name (or ${ENV_SASL_USERNAME}) for {self.sasl_mechanism}")
            if not self.sasl_password:
                problems.bad("sasl_password",
                             f"a password (or ${ENV_SASL_PASSWORD}) for {self.sasl_mechanism}")
        elif self.sasl_mechanism is not None:
            problems.bad("sasl_mechanism", f"nothing with security_protocol {self.security_protocol}",
                         self.sasl_mechanism)
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, key)
            if value is None:
                continue
            if self.security_protocol not in ("SSL", "SASL_SSL"):
                problems.bad(key, f"nothing with security_protocol {self.security_protocol} "
                             "(TLS is off)", value)
            elif not os.path.isfile(value):
                problems.bad(key, "the path of a readable PEM file", value)
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            problems.bad("ssl_certfile", "the client certificate for ssl_keyfile")

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
