"""A real Apache Kafka cluster (KRaft, combined broker+controller nodes) on loopback.

    with KafkaCluster(brokers=3) as cluster:
        print(cluster.bootstrap_servers)      # 127.0.0.1:40001,127.0.0.1:40003,...
        cluster.kill_broker(1)                # SIGKILL, like a power cut
        cluster.restart_broker(1)             # same ports, same data

Each node gets its own directory under the cluster's: ``node-<i>/`` with
``server.properties``, ``server.log`` (the JVM's console) and ``data/``.
``cluster.json`` in the cluster directory records the ports and pids, so
``python -m deploy.kafka stop`` can end a cluster that another process
started. Nothing here leaves a JVM behind: stop() kills every node's process
group, and an atexit hook stops every cluster this process still owns.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import _probe
from ._config import (
    KAFKA_VERSION,
    LOG4J_PROPERTIES,
    SHIPPED_JVM_ARGS,
    ClusterSettings,
    NodePorts,
    jvm_args,
    new_cluster_id,
    node_properties,
    render_properties,
    scram_format_args,
)
from ._process import ensure_jars, find_java, launch, pid_alive, pid_cmdline, stop_group
from .errors import ClusterStartError, ClusterStateError

STATE_FILE = "cluster.json"
LOG4J_FILE = "log4j.properties"

#: A line of the "KafkaConfig values:" dumps that Kafka logs at start-up.
_CONFIG_DUMP_LINE = re.compile(r"^\t[\w.-]+ = ")

#: Seconds a broker gets to shut down cleanly in stop_broker() before SIGKILL.
GRACEFUL_STOP_S = 20.0


@dataclass
class Broker:
    """One combined broker+controller node: its ports, files and JVM."""

    node_id: int
    ports: NodePorts
    directory: Path
    pid: int | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """host:port of its client listener."""
        return f"127.0.0.1:{self.ports.client}"

    def listener_address(self, listener: str) -> str:
        """host:port that clients of extra listener ``listener`` are told to use."""
        if listener not in self.ports.listeners:
            raise ClusterStateError(f"broker {self.node_id} has no listener {listener!r}; it has "
                                    f"{sorted(self.ports.listeners) or 'only PLAINTEXT'}")
        return f"127.0.0.1:{self.ports.advertised_port(listener)}"

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        """The JVM's console output: Kafka's own log lines, GC trouble, stack traces."""
        return self.directory / "server.log"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def running(self) -> bool:
        """Whether its JVM is alive (not whether it serves: see KafkaCluster.wait_ready)."""
        if self.popen is not None:
            return self.popen.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of its console log, or '' if there is none yet.

        The ``\tkey = value`` lines of Kafka's config dumps are left out: they
        fill a tail with hundreds of settings and explain nothing.
        """
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        kept = [line for line in text.splitlines() if not _CONFIG_DUMP_LINE.match(line)]
        return "\n".join(kept[-lines:])


class KafkaCluster:
    """A 1- or 3-node KRaft cluster of real Kafka brokers on 127.0.0.1.

    Blocking API: start() returns once every broker serves metadata naming
    all brokers and a controller (tens of seconds on 2 cores for 3 nodes).
    Use it as a context manager, or call stop(); either way the data is deleted.

    ``advertise(listener, node_id, bound_port) -> port``, if given, is asked once per
    node and extra listener (``settings.listeners``) at start(), before the node's
    config is written: the port it returns is what the node advertises on that
    listener. A test puts a TCP proxy to ``bound_port`` there and returns the
    proxy's port, so every connection a client makes after bootstrap goes through
    a proxy it can cut.
    """

    def __init__(
        self,
        brokers: int = 1,
        directory: str | Path | None = None,
        *,
        settings: ClusterSettings | None = None,
        advertise: Callable[[str, int, int], int] | None = None,
    ) -> None:
        self.settings = settings or ClusterSettings(brokers=brokers)
        self._advertise = advertise
        self._own_directory = directory is None
        self.directory = Path(directory) if directory is not None else None
        self.cluster_id = new_cluster_id()
        self.brokers: list[Broker] = []
        #: Seconds the last start() took, storage formatting included.
        self.start_seconds: float | None = None
        self._java: str | None = None
        self._classpath: str | None = None

    # -- lifecycle -------------------------------------------------------

    def start(self) -> KafkaCluster:
        """Format storage, launch every node, wait until all serve. Returns self.

        Raises ClusterStartError (naming the failing broker's log and its
        tail) if a broker exits or the cluster does not serve within
        settings.ready_timeout_s; the JVMs are then killed but the files kept
        for reading until stop().
        """
        if self.brokers:
            raise ClusterStateError("this cluster was already started; make a new KafkaCluster")
        began = time.monotonic()
        self._java = find_java()
        self._classpath = ensure_jars()
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="edge-kafka-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        _refuse_if_running(self.directory)
        (self.directory / LOG4J_FILE).write_text(LOG4J_PROPERTIES, encoding="utf-8")

        ports = _free_node_ports(self.settings.brokers, [lst.name for lst in self.settings.listeners])
        if self._advertise is not None:
            ports = {
                node_id: NodePorts(p.client, p.controller, p.listeners, {
                    name: self._advertise(name, node_id, port) for name, port in p.listeners.items()})
                for node_id, p in ports.items()
            }
        for node_id, node_ports in ports.items():
            broker = Broker(node_id, node_ports, self.directory / f"node-{node_id}")
            broker.directory.mkdir(exist_ok=True)
            props = node_properties(node_id, ports, str(broker.data_dir), self.settings.overrides,
                                    self.settings)
            broker.config_path.write_text(render_properties(props), encoding="utf-8")
            self.brokers.append(broker)
        _live.add(self)

        try:
            self._format_storage()
            for broker in self.brokers:
                self._launch(broker)
            self._write_state()
            self.wait_ready()
        except BaseException:
            self._kill_all()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Kill every node (SIGKILL to its process group) and delete the cluster's files.

        Safe to call twice and on a cluster whose start() failed.
        """
        self._kill_all()
        _live.discard(self)
        if self.directory is not None and self.directory.exists():
            _remove_cluster_files(self.directory, whole=self._own_directory)

    def release(self) -> None:
        """Leave the JVMs running after this process exits (the CLI's start does this).

        The cluster is then stopped through its state file: ``python -m
        deploy.kafka stop --dir <directory>``, or KafkaCluster.attach().
        """
        _live.discard(self)
        self._own_directory = False

    @classmethod
    def attach(cls, directory: str | Path) -> KafkaCluster:
        """A handle on a cluster that another process started in directory.

        Raises ClusterStateError if directory holds no cluster.json.
        """
        directory = Path(directory)
        state_path = directory / STATE_FILE
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ClusterStateError(
                f"no cluster in {directory}: {state_path} does not exist "
                "(start one with: python -m deploy.kafka start --dir DIR)"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ClusterStateError(
                f"{state_path}: not valid JSON ({exc}); delete the directory"
            ) from exc
        cluster = cls(settings=ClusterSettings(brokers=len(state["brokers"])), directory=directory)
        cluster.cluster_id = state["cluster_id"]
        for entry in state["brokers"]:
            broker = Broker(
                entry["node_id"],
                NodePorts(entry["client_port"], entry["controller_port"],
                          entry.get("listener_ports", {}), entry.get("advertised_ports", {})),
                Path(entry["directory"]),
                pid=entry["pid"],
            )
            # A recycled pid must not be mistaken for our JVM.
            if broker.pid is not None and str(broker.directory) not in pid_cmdline(broker.pid):
                broker.pid = None
            cluster.brokers.append(broker)
        return cluster

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- one broker at a time -------------------------------------------

    def kill_broker(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based, also its node.id): a crash or power cut, no clean shutdown."""
        broker = self._broker(index)
        if broker.pid is not None:
            stop_group(broker.pid, broker.popen)
        broker.pid = broker.popen = None
        self._write_state()

    def stop_broker(self, index: int) -> None:
        """Shut node ``index`` down cleanly (SIGTERM: controlled shutdown), SIGKILL after 20 s."""
        broker = self._broker(index)
        if broker.pid is not None:
            stop_group(broker.pid, broker.popen, graceful_s=GRACEFUL_STOP_S)
        broker.pid = broker.popen = None
        self._write_state()

    def restart_broker(self, index: int) -> None:
        """Start node ``index`` again on its ports and data, and wait until the whole cluster serves.

        Kills it first if it is still running.
        """
        broker = self._broker(index)
        if broker.running:
            self.kill_broker(index)
        self._launch(broker)
        self._write_state()
        self.wait_ready()

    # -- readiness and addresses ----------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated host:port of every broker, as Kafka clients take it."""
        return ",".join(b.address for b in self.brokers)

    def bootstrap_servers_of(self, listener: str) -> str:
        """Comma-separated advertised host:port of every broker on extra listener ``listener``."""
        return ",".join(b.listener_address(listener) for b in self.brokers)

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until every running broker answers metadata naming all running brokers and a controller.

        Raises ClusterStartError if a broker's JVM exits meanwhile or the
        time (default settings.ready_timeout_s) runs out.
        """
        timeout_s = self.settings.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        last_problem = "no broker asked yet"
        while True:
            running = [b for b in self.brokers if b.pid is not None]
            for broker in running:
                if not broker.running:
                    raise ClusterStartError(
                        f"Kafka broker {broker.node_id} exited during start-up",
                        broker.log_path,
                        broker.log_tail(),
                    )
            expected = tuple(sorted(b.node_id for b in running))
            last_problem = self._readiness_problem(running, expected)
            if last_problem is None:
                return
            if time.monotonic() > deadline:
                laggard = running[0] if running else self.brokers[0]
                raise ClusterStartError(
                    f"Kafka cluster did not serve within {timeout_s:.0f} s ({last_problem})",
                    laggard.log_path,
                    laggard.log_tail(),
                )
            time.sleep(0.25)

    @staticmethod
    def _readiness_problem(running: list[Broker], expected: tuple[int, ...]) -> str | None:
        """None when every running broker sees exactly the expected brokers and a controller."""
        if not running:
            return "no broker is running"
        for broker in running:
            try:
                view = _probe.metadata("127.0.0.1", broker.ports.client)
            except (OSError, ValueError) as exc:
                return f"broker {broker.node_id} does not answer yet: {exc}"
            if view.broker_ids != expected or view.controller_id < 0:
                return (
                    f"broker {broker.node_id} sees brokers {list(view.broker_ids)} "
                    f"and controller {view.controller_id}, waiting for {list(expected)}"
                )
        return None

    # -- internals --------------------------------------------------------

    def _broker(self, index: int) -> Broker:
        if not 0 <= index < len(self.brokers):
            raise ClusterStateError(
                f"no broker {index}: this cluster has brokers 0..{len(self.brokers) - 1}"
            )
        return self.brokers[index]

    def _format_storage(self) -> None:
        """Run Kafka's StorageTool for every node at once (each is a short JVM)."""
        assert self._java is not None and self._classpath is not None
        jobs = []
        for broker in self.brokers:
            log = broker.directory / "format.log"
            argv = [
                self._java,
                "-Xmx256m",
                "-XX:+UseSerialGC",
                # A short-lived tool: the quick C1 compiler alone starts faster.
                "-XX:TieredStopAtLevel=1",
                "-XX:-UsePerfData",
                f"-Dlog4j.configuration=file:{self.directory / LOG4J_FILE}",
                "-cp",
                self._classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self.cluster_id,
                "-c",
                str(broker.config_path),
                *scram_format_args(self.settings),
            ]
            jobs.append((broker, log, launch(argv, log, broker.directory)))
        for broker, log, popen in jobs:
            try:
                code = popen.wait(timeout=120)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
                code = None
            if code != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                raise ClusterStartError(
                    f"formatting storage for Kafka broker {broker.node_id} failed (exit {code})",
                    log,
                    tail,
                )

    def _launch(self, broker: Broker) -> None:
        assert self.directory is not None
        java = self._java or find_java()
        classpath = self._classpath or ensure_jars()
        argv = [
            java,
            *(SHIPPED_JVM_ARGS if self.settings.jvm_as_shipped else jvm_args(self.settings.heap_mb)),
            f"-Dlog4j.configuration=file:{self.directory / LOG4J_FILE}",
            f"-Dkafka.logs.dir={broker.directory}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(broker.config_path),
        ]
        broker.popen = launch(argv, broker.log_path, broker.directory)
        broker.pid = broker.popen.pid

    def _kill_all(self) -> None:
        for broker in self.brokers:
            if broker.pid is not None:
                stop_group(broker.pid, broker.popen)
            broker.pid = broker.popen = None

    def _write_state(self) -> None:
        assert self.directory is not None
        state = {
            "kafka_version": KAFKA_VERSION,
            "cluster_id": self.cluster_id,
            "bootstrap_servers": self.bootstrap_servers,
            "brokers": [
                {
                    "node_id": b.node_id,
                    "client_port": b.ports.client,
                    "controller_port": b.ports.controller,
                    "listener_ports": dict(b.ports.listeners),
                    "advertised_ports": dict(b.ports.advertised),
                    "directory": str(b.directory),
                    "pid": b.pid,
                    "log": str(b.log_path),
                }
                for b in self.brokers
            ],
        }
        tmp = self.directory / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.directory / STATE_FILE)


def _free_node_ports(count: int, listeners: list[str] | None = None) -> dict[int, NodePorts]:
    """Two free loopback ports per node, and one per extra listener, all distinct.

    Every socket stays open until all ports are chosen, so the kernel cannot
    hand the same port out twice; another process could still take one
    before the broker binds it, which start() reports as a start error.
    """
    sockets = []
    try:
        names = listeners or []
        per_node = 2 + len(names)
        for _ in range(per_node * count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        numbers = [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()
    out = {}
    for i in range(count):
        mine = numbers[per_node * i : per_node * (i + 1)]
        out[i] = NodePorts(mine[0], mine[1], dict(zip(names, mine[2:], strict=True)))
    return out


def _refuse_if_running(directory: Path) -> None:
    """Raise if directory's state file names a JVM that still runs."""
    if not (directory / STATE_FILE).exists():
        return
    try:
        existing = KafkaCluster.attach(directory)
    except ClusterStateError:
        return  # a corrupt state file: nothing we can stop, start over
    if any(b.running for b in existing.brokers):
        raise ClusterStateError(
            f"a Kafka cluster already runs in {directory} ({existing.bootstrap_servers}); "
            f"stop it first: python -m deploy.kafka stop --dir {directory}"
        )


def _remove_cluster_files(directory: Path, whole: bool) -> None:
    """Delete what a cluster wrote: all of directory if we made it, else only our files."""
    if whole:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for node_dir in directory.glob("node-*"):
        shutil.rmtree(node_dir, ignore_errors=True)
    for name in (STATE_FILE, STATE_FILE + ".tmp", LOG4J_FILE):
        (directory / name).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        pass  # the caller's own files are in it: leave them and the directory


#: Clusters this process started and still owns; stopped at exit as a safety net.
_live: set[KafkaCluster] = set()


@atexit.register
def _stop_live_clusters() -> None:
    for cluster in list(_live):
        try:
            cluster.stop()
        except Exception:  # at exit, stop the rest whatever one of them did
            pass
