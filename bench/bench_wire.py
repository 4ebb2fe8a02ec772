"""Benchmark: Kafka's own perf tools against the box's Kafka listener and a 1-broker Kafka.

    .venv/bin/python bench/bench_wire.py [--runs 3] [--records 50000]

Both sides are measured in the same run, interleaved, with the same tools:
``kafka-producer-perf-test`` (acks=all, 200-byte records, unthrottled, one partition) then
``kafka-consumer-perf-test`` reading them back.

* ``edge run``: the whole service (no devices) with ``[kafka] listen``, its log fsynced
  before every acknowledgement (group commit); its process's peak RSS (VmHWM).
* ``Kafka``: a 1-broker KRaft cluster (deploy/kafka, 512 MiB heap) with Kafka's defaults:
  it acknowledges acks=all without an fsync (it counts on replicas); the broker JVM's VmHWM.
* ``Kafka as shipped`` (``--shipped``, on by default): the same broker with the JVM flags
  of Kafka's own kafka-server-start.sh (-Xmx1G -Xms1G, G1), as an operator runs it.

The table shows medians (and spread) and the ratio edge/Kafka.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import _kafka_perf as kperf  # noqa: E402
from _machine import proc_status_kb, run_measured  # noqa: E402
from _table import Table  # noqa: E402

from deploy.kafka._tools import tool_command  # noqa: E402
from tests.fixtures.mosquitto import free_port  # noqa: E402

EDGE, KAFKA, SHIPPED = "edge run (listener)", "Kafka 512 MiB heap", "Kafka as shipped (1 GiB)"
RECORD_SIZE = 200

# ConsumerPerformance's CSV line: start, end, MB, MB/s, messages, messages/s, ...
_CONSUMED = re.compile(r"^[\d:\- ]+, [\d:\- ]+, [\d.]+, [\d.]+, (?P<n>\d+), (?P<rate>[\d.]+)", re.M)


def consume(servers: str, topic: str, records: int) -> float:
    """kafka-consumer-perf-test's messages/s for ``records`` from ``topic``."""
    argv = tool_command("consumer-perf-test", ["--bootstrap-server", servers, "--topic", topic,
                                                "--messages", str(records), "--timeout", "60000"])
    usage = run_measured(argv, timeout=300)
    m = _CONSUMED.search(usage.stdout)
    if usage.returncode != 0 or m is None:
        raise kperf.PerfTestError(f"kafka-consumer-perf-test failed:\n{usage.stdout[-1500:]}\n"
                                  f"{usage.stderr[-1500:]}")
    return float(m["rate"])


def _add(t: Table, col: str, prod: kperf.PerfResult, cons: float, rss_mb: float) -> None:
    t.add("produce records/s", col, prod.records_per_s)
    t.add("produce p50 ms", col, prod.p50_ms, higher_is_better=False)
    t.add("produce p99 ms", col, prod.p99_ms, higher_is_better=False)
    t.add("consume records/s", col, cons)
    t.add("serving process peak RSS MB", col, rss_mb, higher_is_better=False)


def edge_run(records: int, t: Table) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        kport, hport = free_port(), free_port()
        config = Path(tmp, "edge.toml")
        config.write_text(f'edge_id = "bench"\ndata_dir = "{tmp}/data"\n[health]\naddress = '
                          f'"127.0.0.1:{hport}"\n[kafka]\nlisten = "127.0.0.1:{kport}"\n')
        proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=open(Path(tmp, "edge.log"), "wb"),
                                cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{hport}/health", timeout=2).close()
                    break
                except OSError as exc:
                    if "HTTP Error" in str(exc):
                        break
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(Path(tmp, "edge.log").read_text()[-2000:]) from exc
                    time.sleep(0.3)
            servers = f"127.0.0.1:{kport}"
            kperf.create_topic(servers, "perf")
            prod = kperf.perf_test(servers, "perf", records, RECORD_SIZE)
            cons = consume(servers, "perf", records)
            rss = (proc_status_kb(proc.pid, "VmHWM") or 0) / 1024
        finally:
            proc.terminate()
            proc.wait(30)
    _add(t, EDGE, prod, cons, rss)


def kafka_run(records: int, t: Table, cluster: kperf.KafkaCluster, col: str) -> None:
    servers = cluster.bootstrap_servers
    topic = f"perf-{uuid.uuid4().hex[:6]}"
    kperf.create_topic(servers, topic)
    prod = kperf.perf_test(servers, topic, records, RECORD_SIZE)
    cons = consume(servers, topic, records)
    _add(t, col, prod, cons, kperf.broker_peak_rss_mb(cluster))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--records", type=int, default=50_000)
    p.add_argument("--no-shipped", dest="shipped", action="store_false",
                   help="leave out the peer with the JVM flags of Kafka's start scripts")
    args = p.parse_args()
    cols = [EDGE, KAFKA] + ([SHIPPED] if args.shipped else [])
    t = Table("wire", "Kafka's perf tools: the box's listener beside a 1-broker Kafka", cols)
    t.notes += [
        f"{args.records:,} records of {RECORD_SIZE} B, acks=all, one partition, unthrottled "
        "(kafka-producer-perf-test, Kafka 3.9; idempotent by default), then "
        "kafka-consumer-perf-test reading them (a consumer group).",
        f"**{EDGE}**: the whole service, every acknowledged batch fsynced. **{KAFKA}**: Kafka's "
        "defaults, which acknowledge without fsync.",
        "Peak RSS: VmHWM of the serving process (edge run; the broker JVM).",
        f"**{KAFKA}**: deploy/kafka's frugal JVM (512 MiB heap, serial GC). **{SHIPPED}**: "
        "the JVM flags of Kafka's kafka-server-start.sh (-Xmx1G -Xms1G, G1). A ratio is given "
        "against each; the floor is stated against both.",
    ]
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(kperf.new_cluster(fsync=False))
        shipped = stack.enter_context(kperf.new_cluster(fsync=False, as_shipped=True)) if args.shipped else None
        for i in range(args.runs):
            edge_run(args.records, t)
            kafka_run(args.records, t, cluster, KAFKA)
            if shipped is not None:
                kafka_run(args.records, t, shipped, SHIPPED)
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
    print(t.markdown())


if __name__ == "__main__":
    main()
