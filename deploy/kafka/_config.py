"""Pure settings for a local KRaft cluster: server.properties, JVM flags, log4j.

No I/O here, so the compose file's test can compare its settings with the
ones the tested cluster really runs with.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

#: The Kafka version that fetch.sh resolves (keep equal to pom.xml's kafka.version).
KAFKA_VERSION = "3.9.2"

#: Listener names. CONTROLLER carries the KRaft quorum, PLAINTEXT the clients and replication.
CLIENT_LISTENER = "PLAINTEXT"
CONTROLLER_LISTENER = "CONTROLLER"


@dataclass(frozen=True)
class NodePorts:
    """The two loopback ports one combined broker+controller node listens on."""

    client: int
    controller: int


@dataclass(frozen=True)
class ClusterSettings:
    """How to size and start a local cluster.

    ``brokers``: 1 or 3 combined broker+controller nodes.
    ``heap_mb``: JVM heap per node; 512 MiB serves tests and benchmarks on a 24 GiB box.
    ``ready_timeout_s``: how long start() waits for every broker to serve.
    ``overrides``: extra server.properties entries, applied last (they win).
    """

    brokers: int = 1
    heap_mb: int = 512
    ready_timeout_s: float = 180.0
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.brokers not in (1, 3):
            raise ValueError(f"brokers: expected 1 or 3, got {self.brokers!r}")
        if not isinstance(self.heap_mb, int) or self.heap_mb < 128:
            raise ValueError(f"heap_mb: expected an integer of at least 128, got {self.heap_mb!r}")
        if self.ready_timeout_s <= 0:
            raise ValueError(f"ready_timeout_s: expected seconds > 0, got {self.ready_timeout_s!r}")


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
) -> dict[str, str]:
    """server.properties for one node of the cluster whose nodes listen on ``ports``.

    ``ports`` maps every node id to its ports: each node needs all the
    controllers' addresses for the static KRaft quorum.
    """
    mine = ports[node_id]
    voters = ",".join(f"{n}@127.0.0.1:{p.controller}" for n, p in sorted(ports.items()))
    props = cluster_properties(len(ports))
    props.update(
        {
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"{CLIENT_LISTENER}://127.0.0.1:{mine.client},"
                f"{CONTROLLER_LISTENER}://127.0.0.1:{mine.controller}"
            ),
            "advertised.listeners": f"{CLIENT_LISTENER}://127.0.0.1:{mine.client}",
            "log.dirs": log_dir,
        }
    )
    props.update(overrides or {})
    return props


def render_properties(props: Mapping[str, str]) -> str:
    """A Java .properties file: one ``key=value`` a line, sorted for stable diffs."""
    lines = []
    for key, value in sorted(props.items()):
        if "\n" in key or "\n" in value:
            raise ValueError(f"{key}: a property may not contain a newline, got {value!r}")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


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
