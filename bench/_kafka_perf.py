"""Kafka's own producer benchmark (``kafka-producer-perf-test``) against a local 1-broker cluster.

The peer of bench/_log_perf.py: same record size, count and rate, acks=all. The tool's
JVM is measured through wait4 (peak RSS, CPU) and the broker JVM through /proc
(VmHWM = its peak RSS since it started, utime+stime).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from _machine import proc_cpu_seconds, proc_status_kb, run_measured
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.kafka import ClusterSettings, KafkaCluster
from deploy.kafka._tools import tool_command

#: The tool's closing line, e.g. "100000 records sent, 30321.4 records/sec (5.78 MB/sec),
#: 933.46 ms avg latency, 1195.00 ms max latency, 1036 ms 50th, 1176 ms 95th, 1188 ms 99th, ..."
_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \([\d.]+ MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"\d+ ms 95th, (?P<p99>\d+) ms 99th")

#: Broker settings of the "fsync" variant: Kafka flushes every append to disk before it
#: acknowledges, as the edge log does. By default Kafka leaves flushing to the OS and relies
#: on replicas for durability, which a 1-broker cluster does not have.
FSYNC_OVERRIDES = {"log.flush.interval.messages": "1"}


class PerfTestError(RuntimeError):
    """kafka-producer-perf-test failed or printed no summary line; the message quotes it."""


@dataclass(frozen=True)
class PerfResult:
    records_per_s: float
    avg_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_peak_rss_mb: float
    client_cpu_s: float


def parse_summary(stdout: str) -> dict[str, float]:
    """The figures of ProducerPerformance's last summary line. Raises PerfTestError if none."""
    matches = list(_SUMMARY.finditer(stdout))
    if not matches:
        raise PerfTestError(f"no summary line in kafka-producer-perf-test output:\n{stdout[-2000:]}")
    m = matches[-1]
    return {"records": float(m["records"]), "records_per_s": float(m["rate"]),
            "avg_ms": float(m["avg"]), "max_ms": float(m["max"]), "p50_ms": float(m["p50"]),
            "p99_ms": float(m["p99"])}


def new_cluster(fsync: bool, *, as_shipped: bool = False) -> KafkaCluster:
    """A 1-broker cluster, not started yet (``with`` starts it); fsync=True flushes every append.

    as_shipped: the JVM flags of Kafka's own start scripts (1 GiB heap, G1) instead of
    deploy/kafka's frugal 512 MiB ones."""
    settings = ClusterSettings(brokers=1, overrides=FSYNC_OVERRIDES if fsync else {},
                               jvm_as_shipped=as_shipped)
    return KafkaCluster(settings=settings)


def create_topic(servers: str, topic: str, partitions: int = 1) -> None:
    """Create topic before the timed run, so auto-creation is not part of the measurement."""
    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            await admin.close()

    asyncio.run(create())


def perf_test(servers: str, topic: str, records: int, record_size: int,
              throughput: int = -1) -> PerfResult:
    """Run kafka-producer-perf-test with acks=all; blocking. Raises PerfTestError on failure."""
    argv = tool_command("producer-perf-test", [
        "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
        "--throughput", str(throughput),
        "--producer-props", f"bootstrap.servers={servers}", "acks=all"])
    usage = run_measured(argv, timeout=600)
    if usage.returncode != 0:
        raise PerfTestError(f"kafka-producer-perf-test exited {usage.returncode}:\n"
                            f"{usage.stderr[-2000:]}")
    s = parse_summary(usage.stdout)
    return PerfResult(records_per_s=s["records_per_s"], avg_ms=s["avg_ms"], p50_ms=s["p50_ms"],
                      p99_ms=s["p99_ms"], max_ms=s["max_ms"],
                      client_peak_rss_mb=usage.peak_rss_mb, client_cpu_s=usage.cpu_seconds)


def broker_peak_rss_mb(cluster: KafkaCluster) -> float:
    """The broker JVM's peak resident memory since it started (VmHWM), in MB."""
    pid = cluster.brokers[0].pid
    kb = proc_status_kb(pid, "VmHWM") if pid else None
    if kb is None:
        raise PerfTestError("the broker JVM is gone; see its server.log")
    return kb / 1024


def broker_cpu_seconds(cluster: KafkaCluster) -> float:
    """CPU seconds the broker JVM has used so far."""
    pid = cluster.brokers[0].pid
    cpu = proc_cpu_seconds(pid) if pid else None
    if cpu is None:
        raise PerfTestError("the broker JVM is gone; see its server.log")
    return cpu
