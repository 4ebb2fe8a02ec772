"""deploy.kafka against real brokers: it serves, aiokafka transactions work on it,
3 brokers survive losing one, and nothing is left behind.

Timings on the 2-core machine: a 1-broker cluster serves after about 3 s, a
3-broker one after about 7 s; a killed broker is fenced after up to 10 s.
"""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

import deploy.kafka
from deploy.kafka import ClusterStartError, ClusterStateError, KafkaCluster, _probe
from deploy.kafka._config import cluster_properties, jvm_args, new_cluster_id
from deploy.kafka._process import pid_alive

REPO = Path(__file__).resolve().parents[2]


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _consume(
    servers: str, topic: str, count: int, isolation_level: str, timeout_s: float = 30.0
) -> list[bytes]:
    """Read from the start of topic until count records arrived or timeout_s passed."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                values.extend(r.value for r in records)
    finally:
        await consumer.stop()
    return values


# -- the 1-broker cluster ------------------------------------------------


@pytest.mark.kafka
def test_one_broker_cluster_serves_metadata(kafka_cluster: KafkaCluster) -> None:
    view = _probe.metadata("127.0.0.1", kafka_cluster.brokers[0].ports.client)
    assert view.broker_ids == (0,)
    assert view.controller_id == 0
    assert view.cluster_id == kafka_cluster.cluster_id
    assert kafka_cluster.bootstrap_servers == f"127.0.0.1:{kafka_cluster.brokers[0].ports.client}"


@pytest.mark.kafka
async def test_produce_and_consume_round_trip(kafka_cluster: KafkaCluster) -> None:
    topic = _topic("roundtrip")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_cluster.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"car-17")
    finally:
        await producer.stop()
    values = await _consume(kafka_cluster.bootstrap_servers, topic, 10, "read_uncommitted")
    assert values == [f"v{i}".encode() for i in range(10)]


@pytest.mark.kafka
def test_kafka_tools_run_against_the_cluster(kafka_cluster: KafkaCluster) -> None:
    """The console tools and ProducerPerformance (for benchmarks) come with the jars."""
    servers = kafka_cluster.bootstrap_servers
    cli = [sys.executable, "-m", "deploy.kafka", "tool"]
    topic = _topic("perf")
    perf = subprocess.run(
        [*cli, "producer-perf-test", "--topic", topic, "--num-records", "2000"]
        + ["--record-size", "100", "--throughput", "-1"]
        + ["--producer-props", f"bootstrap.servers={servers}", "acks=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert perf.returncode == 0, perf.stderr
    assert "2000 records sent" in perf.stdout
    listed = subprocess.run(
        [*cli, "topics", "--bootstrap-server", servers, "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert topic in listed.stdout.split()


# -- transactions, on both clusters ---------------------------------------


@pytest.mark.kafka
@pytest.mark.parametrize("fixture", ["kafka_cluster", "kafka_cluster3"])
async def test_read_committed_sees_committed_transactions_only(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    cluster: KafkaCluster = request.getfixturevalue(fixture)
    servers = cluster.bootstrap_servers
    topic = _topic("txn")
    producer = AIOKafkaProducer(
        bootstrap_servers=servers,
        transactional_id=_topic("edge-test"),
        enable_idempotence=True,
        acks="all",
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1", key=b"k")
            await producer.send_and_wait(topic, b"committed-2", key=b"k")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-3", key=b"k")
    finally:
        await producer.stop()

    committed = await _consume(servers, topic, 3, "read_committed")
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    # The aborted record was written: a read_uncommitted consumer sees it,
    # so read_committed hid it rather than it never arriving.
    everything = await _consume(servers, topic, 4, "read_uncommitted")
    assert everything == [b"committed-1", b"committed-2", b"aborted", b"committed-3"]


# -- the 3-broker cluster -------------------------------------------------


async def _replicas(servers: str, topic: str) -> list[int]:
    """The replica ids of partition 0 of topic, as the cluster's metadata gives them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    (partition,) = described["partitions"]
    return sorted(partition["replicas"])


@pytest.mark.kafka
async def test_three_brokers_survive_losing_the_leader_and_its_restart(
    kafka_cluster3: KafkaCluster,
) -> None:
    cluster = kafka_cluster3
    topic = _topic("failover")
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10_000,
    )
    await producer.start()
    sent: list[bytes] = []

    async def send(n: int) -> None:
        for _ in range(n):
            value = f"r{len(sent)}".encode()
            await producer.send_and_wait(topic, value, key=b"ward3-bed2")
            sent.append(value)

    try:
        await send(20)
        leader = producer.client.cluster.leader_for_partition(TopicPartition(topic, 0))
        assert await _replicas(cluster.bootstrap_servers, topic) == [0, 1, 2]

        # Lose the partition leader: acks=all must still succeed with the 2 left (min ISR 2).
        await asyncio.to_thread(cluster.kill_broker, leader)
        await send(20)

        # Back to 3: the restarted broker catches up, and writes go on.
        await asyncio.to_thread(cluster.restart_broker, leader)
        await send(20)
    finally:
        await producer.stop()

    assert await _consume(cluster.bootstrap_servers, topic, 60, "read_committed") == sent
    assert len(sent) == 60


# -- lifecycle: nothing left behind ----------------------------------------


def _java_processes_mentioning(path: Path) -> list[str]:
    result = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if "java" in line and str(path) in line]


def test_start_then_stop_leaves_no_jvm_and_no_data(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    with KafkaCluster(brokers=1, directory=directory) as cluster:
        pids = [b.pid for b in cluster.brokers]
        assert all(pid is not None and pid_alive(pid) for pid in pids)
        assert (directory / "cluster.json").exists()
    assert not any(pid_alive(pid) for pid in pids if pid is not None)
    assert not directory.exists()
    assert _java_processes_mentioning(directory) == []
    cluster.stop()  # a second stop is harmless


def test_a_process_that_forgets_stop_leaves_no_jvm(tmp_path: Path) -> None:
    """The atexit safety net: a script that starts a cluster and just exits."""
    directory = tmp_path / "forgotten"
    script = (
        "import sys\n"
        "from deploy.kafka import KafkaCluster\n"
        f"cluster = KafkaCluster(brokers=1, directory={str(directory)!r}).start()\n"
        "print(cluster.brokers[0].pid)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert not pid_alive(int(ran.stdout))
    assert _java_processes_mentioning(directory) == []
    assert not directory.exists()


def test_cli_start_status_stop(tmp_path: Path) -> None:
    directory = tmp_path / "cli-cluster"
    cli = [sys.executable, "-m", "deploy.kafka"]
    started = subprocess.run(
        [*cli, "start", "--brokers", "1", "--dir", str(directory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stderr
        servers = started.stdout.strip()
        assert re.fullmatch(r"127\.0\.0\.1:\d+", servers), started.stdout
        # The JVM outlived the command that started it.
        attached = KafkaCluster.attach(directory)
        assert attached.bootstrap_servers == servers
        assert all(b.running for b in attached.brokers)
        status = subprocess.run(
            [*cli, "status", "--dir", str(directory)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode == 0 and "running" in status.stdout
    finally:
        stopped = subprocess.run(
            [*cli, "stop", "--dir", str(directory)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert stopped.returncode == 0, stopped.stderr
    assert not directory.exists()
    assert _java_processes_mentioning(directory) == []
    # Stopping again is a no-op, so clean-up scripts can always call it.
    again = subprocess.run(
        [*cli, "stop", "--dir", str(directory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0 and "nothing to stop" in again.stderr


def test_a_broker_that_cannot_start_names_its_log(tmp_path: Path) -> None:
    settings = deploy.kafka.ClusterSettings(brokers=1, overrides={"num.io.threads": "many"})
    cluster = KafkaCluster(settings=settings, directory=tmp_path / "bad")
    with pytest.raises(ClusterStartError) as caught:
        cluster.start()
    assert caught.value.log_path is not None and caught.value.log_path.exists()
    assert "num.io.threads" in caught.value.log_tail
    assert str(caught.value.log_path) in str(caught.value)
    assert _java_processes_mentioning(tmp_path / "bad") == []
    cluster.stop()
    assert not (tmp_path / "bad").exists()


def test_attach_without_a_cluster_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(ClusterStateError, match="python -m deploy.kafka start"):
        KafkaCluster.attach(tmp_path)


def test_cluster_ids_never_look_like_options() -> None:
    # An id starting with '-' made kafka-storage's parser fail (seen once in 64 starts).
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)


def test_settings_reject_unsupported_sizes() -> None:
    with pytest.raises(ValueError, match="expected 1 or 3, got 2"):
        deploy.kafka.ClusterSettings(brokers=2)


# -- the compose file keeps the tested settings -----------------------------


def _compose_environments(text: str) -> dict[str, dict[str, str]]:
    """Per service, its KAFKA_* environment, read with a regex (no YAML parser installed)."""
    services: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        service = re.match(r"^  ([a-z0-9-]+):\s*$", line)
        if service:
            current = services.setdefault(service.group(1), {})
            continue
        env = re.match(r'^\s+(KAFKA_[A-Z0-9_]+):\s*"?([^"#]*?)"?\s*$', line)
        if env and current is not None:
            current[env.group(1)] = env.group(2)
    return services


def test_compose_file_uses_the_settings_of_the_tested_cluster() -> None:
    text = (REPO / "deploy" / "kafka" / "docker-compose.yml").read_text()
    services = _compose_environments(text)
    brokers = {name: env for name, env in services.items() if "KAFKA_NODE_ID" in env}
    assert len(brokers) == 3
    tested = cluster_properties(3)
    # Compose adds an EXTERNAL listener for clients on the host; the rest of the map is ours.
    tested_map = set(tested.pop("listener.security.protocol.map").split(","))
    for name, env in brokers.items():
        # The apache/kafka image turns KAFKA_FOO_BAR into foo.bar in server.properties.
        props = {k[len("KAFKA_") :].lower().replace("_", "."): v for k, v in env.items()}
        for key, value in tested.items():
            assert props.get(key) == value, (
                f"{name}: {key} is {props.get(key)!r}, tested with {value!r}"
            )
        assert tested_map <= set(props["listener.security.protocol.map"].split(","))
        jvm = env["KAFKA_HEAP_OPTS"].split() + env["KAFKA_JVM_PERFORMANCE_OPTS"].split()
        assert sorted(jvm) == sorted(jvm_args(512)), name
    assert f"image: apache/kafka:{deploy.kafka.KAFKA_VERSION}" in text


def test_public_names() -> None:
    assert sorted(deploy.kafka.__all__) == sorted(
        [
            "KAFKA_VERSION",
            "Broker",
            "ClusterSettings",
            "ClusterStartError",
            "ClusterStateError",
            "JarsMissingError",
            "JavaNotFoundError",
            "KafkaCluster",
            "KafkaDeployError",
            "Listener",
        ]
    )


def test_pom_fetches_the_version_the_code_names() -> None:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{deploy.kafka.KAFKA_VERSION}</kafka.version>" in pom
