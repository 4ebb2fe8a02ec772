"""``python -m deploy.kafka``: start, inspect and stop a local Kafka cluster from a shell.

    python -m deploy.kafka start --brokers 3     # prints the bootstrap servers
    python -m deploy.kafka status
    python -m deploy.kafka stop                  # kills it, deletes its data
    python -m deploy.kafka tool topics --bootstrap-server 127.0.0.1:PORT --list

Every option can also come from an environment variable (named in --help).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._config import KAFKA_VERSION, ClusterSettings
from ._tools import TOOLS, tool_command
from .cluster import STATE_FILE, KafkaCluster
from .errors import KafkaDeployError

DEFAULT_DIR = Path(tempfile.gettempdir()) / "edge-kafka"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}: expected an integer, got {raw!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.kafka",
        description=f"A local Apache Kafka {KAFKA_VERSION} cluster (KRaft) on 127.0.0.1.",
    )
    parser.add_argument("--version", action="version", version=f"Kafka {KAFKA_VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--dir",
            type=Path,
            default=Path(os.environ.get("EDGE_KAFKA_DIR", DEFAULT_DIR)),
            help=f"cluster directory: configs, logs, data, cluster.json "
            f"(env EDGE_KAFKA_DIR; default {DEFAULT_DIR})",
        )

    start = commands.add_parser(
        "start", help="start a cluster, wait until it serves, print its bootstrap servers"
    )
    start.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=_env_int("EDGE_KAFKA_BROKERS", 1),
        help="combined broker+controller nodes (env EDGE_KAFKA_BROKERS; default 1)",
    )
    start.add_argument(
        "--heap-mb",
        type=int,
        default=_env_int("EDGE_KAFKA_HEAP_MB", 512),
        help="JVM heap per broker in MiB (env EDGE_KAFKA_HEAP_MB; default 512)",
    )
    add_dir(start)
    tool = commands.add_parser(
        "tool",
        help="run one of Kafka's command-line tools: " + ", ".join(sorted(TOOLS)),
        description="Runs Kafka's tool NAME (bin/kafka-NAME.sh in a Kafka download) with ARGS.",
    )
    tool.add_argument("name", choices=sorted(TOOLS), metavar="NAME", help=", ".join(sorted(TOOLS)))
    tool.add_argument("args", nargs=argparse.REMAINDER, help="the tool's own arguments")
    add_dir(commands.add_parser("stop", help="kill the cluster and delete its data"))
    add_dir(
        commands.add_parser("status", help="print the brokers, their pids and whether they run")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 a Kafka/deploy error, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "start":
            return _start(args)
        if args.command == "stop":
            return _stop(args)
        if args.command == "tool":
            argv = tool_command(args.name, args.args)
            os.execv(argv[0], argv)  # the tool's output and exit code are the command's
        return _status(args)
    except (KafkaDeployError, ValueError) as exc:
        print(f"deploy.kafka {args.command}: {exc}", file=sys.stderr)
        return 1


def _start(args: argparse.Namespace) -> int:
    settings = ClusterSettings(brokers=args.brokers, heap_mb=args.heap_mb)
    cluster = KafkaCluster(settings=settings, directory=args.dir)
    cluster.start()
    cluster.release()  # the JVMs outlive this command; `stop` ends them
    print(
        f"deploy.kafka: {args.brokers}-broker Kafka {KAFKA_VERSION} cluster serving after "
        f"{cluster.start_seconds:.1f} s; logs in {args.dir}/node-*/server.log",
        file=sys.stderr,
    )
    print(cluster.bootstrap_servers)
    return 0


def _stop(args: argparse.Namespace) -> int:
    if not (args.dir / STATE_FILE).exists():
        # Idempotent, so scripts and CI clean-up can call it unconditionally.
        print(f"deploy.kafka: no cluster in {args.dir}; nothing to stop", file=sys.stderr)
        return 0
    cluster = KafkaCluster.attach(args.dir)
    cluster.stop()
    print(f"deploy.kafka: stopped the cluster in {args.dir} and deleted its data", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = KafkaCluster.attach(args.dir)
    print(f"bootstrap servers: {cluster.bootstrap_servers}")
    for broker in cluster.brokers:
        state = "running" if broker.running else "not running"
        print(
            f"broker {broker.node_id}: {broker.address} pid {broker.pid} {state}  log {broker.log_path}"
        )
    return 0 if all(b.running for b in cluster.brokers) else 1
