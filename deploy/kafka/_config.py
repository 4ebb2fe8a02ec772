"""Pure settings for a local KRaft cluster: server.properties, JVM flags, log4j.

No I/O here, so the compose file's test can compare its settings with the
ones the tested cluster really runs with.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

#: The Kafka version that fetch.sh resolves (keep equal to pom.xml's kafka.version).
KAFKA_VERSION = "3.9.2"

#: Listener names. CONTROLLER carries the KRaft quorum, PLAINTEXT the clients and replication.
CLIENT_LISTENER = "PLAINTEXT"
CONTROLLER_LISTENER = "CONTROLLER"


#: Security protocols an extra listener may speak (Kafka's names).
LISTENER_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

#: SASL mechanisms every SASL listener enables, each with every user of ``sasl_users``.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

_LISTENER_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,30}$")
# JAAS values are written between double quotes, storage tool SCRAM specs between brackets.
_CREDENTIAL = re.compile(r'^[^\s"\\;,=\[\]]{1,100}$')


@dataclass(frozen=True)
class Listener:
    """An extra client listener on every node, beside the PLAINTEXT one the brokers share.

    ``name``: the listener name (``SASL``, ``SSL``, ``PROXIED``), upper case.
    ``protocol``: one of LISTENER_PROTOCOLS. A SASL listener takes the users of
    ``ClusterSettings.sasl_users`` with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; an
    SSL listener serves ``ClusterSettings.ssl_keystore``.
    Each node binds the listener on a free port of its own and advertises that port,
    unless ``KafkaCluster(advertise=...)`` names another (a proxy in front of it).
    """

    name: str
    protocol: str = "PLAINTEXT"

    def __post_init__(self) -> None:
        if not _LISTENER_NAME.match(self.name) or self.name in (CLIENT_LISTENER, CONTROLLER_LISTENER):
            raise ValueError(
                f"listener name: expected upper-case letters, digits, '_' other than "
                f"{CLIENT_LISTENER} and {CONTROLLER_LISTENER}, got {self.name!r}")
        if self.protocol not in LISTENER_PROTOCOLS:
            raise ValueError(f"listener {self.name}: protocol: expected one of "
                             f"{', '.join(LISTENER_PROTOCOLS)}, got {self.protocol!r}")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")


@dataclass(frozen=True)
class NodePorts:
    """The loopback ports one combined broker+controller node listens on.

    ``listeners``: extra listener name -> the port it binds; ``advertised``: extra
    listener name -> the port clients are told to use (the bound one unless a proxy
    stands in front).
    """

    client: int
    controller: int
    listeners: Mapping[str, int] = field(default_factory=dict)
    advertised: Mapping[str, int] = field(default_factory=dict)

    def advertised_port(self, listener: str) -> int:
        return self.advertised.get(listener, self.listeners[listener])


@dataclass(frozen=True)
class ClusterSettings:
    """How to size and start a local cluster.

    ``brokers``: 1 or 3 combined broker+controller nodes.
    ``heap_mb``: JVM heap per node; 512 MiB serves tests and benchmarks on a 24 GiB box.
    ``jvm_as_shipped``: start each node with the JVM flags of Kafka's own start scripts
    (``SHIPPED_JVM_ARGS``: 1 GiB heap, G1) instead of ``jvm_args(heap_mb)``; for
    benchmarks that compare with Kafka as an operator would run it.
    ``ready_timeout_s``: how long start() waits for every broker to serve.
    ``overrides``: extra server.properties entries, applied last (they win).
    ``listeners``: extra client listeners (see ``Listener``); brokers replicate over PLAINTEXT.
    ``sasl_users``: user -> password for the SASL listeners (PLAIN in the JAAS config,
    SCRAM credentials written into the metadata log when storage is formatted).
    ``ssl_keystore``: for SSL listeners, a PEM file holding the broker's unencrypted
    PKCS#8 private key and its certificate chain.
    """

    brokers: int = 1
    heap_mb: int = 512
    ready_timeout_s: float = 180.0
    overrides: Mapping[str, str] = field(default_factory=dict)
    listeners: tuple[Listener, ...] = ()
    sasl_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    ssl_keystore: str | None = None
    jvm_as_shipped: bool = False

    def __post_init__(self) -> None:
        if self.brokers not in (1, 3):
            raise ValueError(f"brokers: expected 1 or 3, got {self.brokers!r}")
        if not isinstance(self.heap_mb, int) or self.heap_mb < 128:
            raise ValueError(f"heap_mb: expected an integer of at least 128, got {self.heap_mb!r}")
        if self.ready_timeout_s <= 0:
            raise ValueError(f"ready_timeout_s: expected seconds > 0, got {self.ready_timeout_s!r}")
        names = [lst.name for lst in self.listeners]
        if len(set(names)) != len(names):
            raise ValueError(f"listeners: expected distinct names, got {names}")
        if any(lst.sasl for lst in self.listeners) and not self.sasl_users:
            raise ValueError("sasl_users: a SASL listener needs at least one user")
        for user, password in self.sasl_users.items():
            if not _CREDENTIAL.match(user) or not _CREDENTIAL.match(password):
                raise ValueError(
                    f"sasl_users: user {user!r}: expected a name and a password of 1 to 100 "
                    "characters without spaces, quotes, backslashes, ';', ',', '=', '[' or ']'")
        if any(lst.ssl for lst in self.listeners) and not self.ssl_keystore:
            raise ValueError("ssl_keystore: an SSL listener needs a PEM key and certificate file")


def new_cluster_id() -> str:
    """A KRaft cluster id in Kafka's own form (``Uuid.toString``: url-safe base64, no padding).

    Like Kafka's ``Uuid.randomUuid`` it never starts with '-': the storage
    tool's argument parser would take such an id for an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def cluster_properties(brokers: int) -> dict[str, str]:
    """The settings every node of an n-broker cluster shares, apart from addresses and paths.

    docker-compose.yml carries the same entries for brokers=3 (a test checks it).
    """
    replication = min(brokers, 3)
    min_isr = 2 if brokers >= 3 else 1
    return {
        "process.roles": "broker,controller",
        "controller.listener.names": CONTROLLER_LISTENER,
        "inter.broker.listener.name": CLIENT_LISTENER,
        "listener.security.protocol.map": f"{CLIENT_LISTENER}:PLAINTEXT,{CONTROLLER_LISTENER}:PLAINTEXT",
        # Durability as on a production cluster of this size: with 3 brokers
        # a write with acks=all survives the loss of any one of them.
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(replication),
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": str(min_isr),
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "true",
        "num.partitions": "1",
        # Fewer internal partitions than the default 50: the first consumer
        # group or transaction creates them all, which costs seconds on 2 cores.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        # Tests start consumer groups all the time; don't wait 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        # A killed broker is fenced (and dropped from every ISR) after 6 s instead of 9 s.
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "6000",
        # Few threads: the machine has 2 cores shared by up to 3 brokers and the tests.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.replica.fetchers": "1",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.threads": "1",
        # The cleaner's 128 MiB default dedupe buffer would take a quarter of a small heap.
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }


def node_properties(
    node_id: int,
    ports: Mapping[int, NodePorts],
    log_dir: str,
    overrides: Mapping[str, str] | None = None,
    settings: ClusterSettings | None = None,
) -> dict[str, str]:
    """server.properties for one node of the cluster whose nodes listen on ``ports``.

    ``ports`` maps every node id to its ports: each node needs all the
    controllers' addresses for the static KRaft quorum. ``settings`` adds its
    extra listeners.
    """
    mine = ports[node_id]
    voters = ",".join(f"{n}@127.0.0.1:{p.controller}" for n, p in sorted(ports.items()))
    props = cluster_properties(len(ports))
    props.update({"node.id": str(node_id), "controller.quorum.voters": voters, "log.dirs": log_dir})
    if settings is not None and settings.listeners:
        props.update(listener_properties(mine, settings))
    else:
        props.update(node_base_listeners(mine))
    props.update(overrides or {})
    return props


def listener_properties(mine: NodePorts, settings: ClusterSettings) -> dict[str, str]:
    """The entries that add ``settings.listeners`` to one node (ports in ``mine``).

    They extend the node's listener lists, so the result replaces ``listeners``,
    ``advertised.listeners`` and ``listener.security.protocol.map``.
    """
    out = node_base_listeners(mine)
    users = settings.sasl_users
    for lst in settings.listeners:
        lower = lst.name.lower()
        out["listeners"] += f",{lst.name}://127.0.0.1:{mine.listeners[lst.name]}"
        out["advertised.listeners"] += f",{lst.name}://127.0.0.1:{mine.advertised_port(lst.name)}"
        out["listener.security.protocol.map"] += f",{lst.name}:{lst.protocol}"
        prefix = f"listener.name.{lower}."
        if lst.sasl:
            out[prefix + "sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
            plain_users = " ".join(f'user_{u}="{p}"' for u, p in sorted(users.items()))
            out[prefix + "plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};")
            for mech in SASL_MECHANISMS[1:]:
                out[prefix + f"{mech.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        if lst.ssl:
            out[prefix + "ssl.keystore.type"] = "PEM"
            out[prefix + "ssl.keystore.location"] = str(settings.ssl_keystore)
    return out


def node_base_listeners(mine: NodePorts) -> dict[str, str]:
    """The PLAINTEXT client listener (also between brokers) and the KRaft controller listener."""
    return {
        "listeners": (f"{CLIENT_LISTENER}://127.0.0.1:{mine.client},"
                      f"{CONTROLLER_LISTENER}://127.0.0.1:{mine.controller}"),
        "advertised.listeners": f"{CLIENT_LISTENER}://127.0.0.1:{mine.client}",
        "listener.security.protocol.map":
            f"{CLIENT_LISTENER}:PLAINTEXT,{CONTROLLER_LISTENER}:PLAINTEXT",
    }


def scram_format_args(settings: ClusterSettings) -> list[str]:
    """StorageTool ``format`` arguments that write every SASL user's SCRAM credentials."""
    if not any(lst.sasl for lst in settings.listeners):
        return []
    out = []
    for mech in SASL_MECHANISMS[1:]:
        for user, password in sorted(settings.sasl_users.items()):
            out += ["--add-scram", f"{mech}=[name={user},password={password}]"]
    return out


def render_properties(props: Mapping[str, str]) -> str:
    """A Java .properties file: one ``key=value`` a line, sorted for stable diffs."""
    lines = []
    for key, value in sorted(props.items()):
        if "\n" in key or "\n" in value:
            raise ValueError(f"{key}: a property may not contain a newline, got {value!r}")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


#: What Kafka 3.9's kafka-server-start.sh (KAFKA_HEAP_OPTS) and kafka-run-class.sh
#: (KAFKA_JVM_PERFORMANCE_OPTS) start a broker with when neither variable is set (its
#: GC log, -loggc, left out).
SHIPPED_JVM_ARGS = (
    "-Xmx1G", "-Xms1G",
    "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
)


def jvm_args(heap_mb: int) -> list[str]:
    """JVM flags for one node, kept frugal for a 2-core machine.

    Kafka's kafka-run-class.sh uses G1 with 20 ms pause goals; on a 512 MiB
    heap and 2 shared cores the serial collector costs fewer threads and less
    CPU, and its pauses are a few ms at this size.
    """
    return [
        f"-Xmx{heap_mb}m",
        f"-Xms{min(heap_mb, 256)}m",
        "-XX:+UseSerialGC",
        # JIT compiler threads would otherwise scale with the core count of the host.
        "-XX:CICompilerCount=2",
        # No hsperfdata files in /tmp for every JVM the tests start.
        "-XX:-UsePerfData",
        "-Djava.awt.headless=true",
        "-Djava.net.preferIPv4Stack=true",
    ]


#: log4j 1.2 (reload4j) configuration: everything to stdout, which the
#: launcher sends to the node's server.log. INFO keeps start-up and
#: fencing visible; the chatty request and state-change loggers are quiet.
LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.clients.NetworkClient=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
"""
