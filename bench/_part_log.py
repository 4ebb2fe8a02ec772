"""Part "log": the edge log's durable append beside Apache Kafka (1 broker) and persist-queue.

Same record size (200 B, bench_log's size), same count and same fixed rate on every side;
acks=all on Kafka, every acknowledgement after fsync on the edge log and persist-queue.
Memory and CPU are read from the OS: wait4 for the processes we start, /proc for the
broker JVM.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import _kafka_perf as kperf
import bench_log
from _machine import run_child_cell, run_measured
from _table import Table

EDGE, KAFKA, KAFKA_FSYNC, PQ = "edge log", "Kafka", "Kafka + fsync", "persist-queue"
#: bench_log's latency workload runs at this rate; every side uses it.
FIXED_RATE = 5000
RECORD_SIZE = len(bench_log.VALUES[0])

LOG_PERF = Path(__file__).with_name("_log_perf.py")


@dataclass(frozen=True)
class LogPlan:
    records: int = 200_000          # max-rate phase, edge log and Kafka
    rate_seconds: float = 5.0       # the FIXED_RATE phase
    pq_records: int = 3200          # persist-queue's 32-thread run (1 fsync per record: slow)
    kafka: bool = True
    kafka_fsync: bool = True        # also a broker that flushes every append (the fair durable peer)
    cluster_per_run: bool = True    # a fresh broker per run, so its peak RSS is that run's
    kafka_dir: str | None = None    # use the running 1-broker cluster there (no fsync variant)
    tmp: str = tempfile.gettempdir()


def new_table(plan: LogPlan) -> Table:
    cols = [EDGE]
    if plan.kafka:
        cols.append(KAFKA)
        if plan.kafka_fsync and not plan.kafka_dir:
            cols.append(KAFKA_FSYNC)
    cols.append(PQ)
    t = Table("log", "Durable append: the edge log beside Apache Kafka (1 broker) and persist-queue",
              cols)
    t.notes += [
        f"{plan.records:,} records of {RECORD_SIZE} B, one partition, no key, unthrottled, then "
        f"{FIXED_RATE:,} records/s for {plan.rate_seconds:g} s; latency is from send to "
        "acknowledgement of each record. Unthrottled, every record is offered at once, so its "
        "latency is mostly time queued in the producer (and the edge process's peak RSS "
        "includes that queue; Kafka's client caps its own at 32 MB): the fixed-rate rows are "
        "the latencies to compare.",
        f"**{EDGE}**: bench/_log_perf.py, one process (producer and storage), every "
        "acknowledgement after fsync (group commit).",
        f"**{KAFKA}**: Kafka's own `kafka-producer-perf-test` (ProducerPerformance) with "
        "acks=all against a 1-broker KRaft cluster on the same machine (deploy/kafka, 512 MiB "
        "heap); Kafka by default does not fsync before acknowledging (it counts on replicas).",
        f"**{PQ}**: persistqueue.SQLiteQueue through bench/bench_log.py's workloads: "
        f"{plan.pq_records:,} records put by 32 threads (each put committed; it has no "
        "asynchronous send), and its own 5,000 records/s latency run.",
        "Peak RSS is VmHWM from /proc/<pid>/status: of the edge log's process, of persist-queue's, "
        "of the broker JVM; '+ client' adds the perf tool's JVM. "
        "CPU of the storing process: the edge process's own (client included) vs the broker "
        "JVM's (client excluded).",
    ]
    if KAFKA_FSYNC in cols:
        t.notes.insert(3, f"**{KAFKA_FSYNC}**: the same with `log.flush.interval.messages=1`, so "
                       "the broker fsyncs each append before it acknowledges, as the edge log "
                       "does.")
    if plan.kafka and plan.kafka_dir:
        t.notes.append(f"The broker was an already running cluster ({plan.kafka_dir}): its peak "
                       "RSS covers its whole life, not only this run.")
    elif plan.kafka and not plan.cluster_per_run:
        t.notes.append("One broker per Kafka column served every run: its peak RSS is over all "
                       "runs.")
    return t


def _edge_run(plan: LogPlan, t: Table) -> None:
    with tempfile.TemporaryDirectory(dir=plan.tmp, prefix="bench-edge-") as d:
        usage = run_measured([sys.executable, str(LOG_PERF), "--dir", d, "--records",
                              str(plan.records), "--record-size", str(RECORD_SIZE),
                              "--rate", str(FIXED_RATE), "--seconds", str(plan.rate_seconds)])
    if usage.returncode != 0:
        raise RuntimeError(f"bench/_log_perf.py exited {usage.returncode}:\n{usage.stderr[-2000:]}")
    out = json.loads(usage.stdout.strip().splitlines()[-1])
    mx, rate = out["max"], out.get("rate")
    rss = max(usage.peak_rss_mb, out["peak_rss_mb"])
    _add_common(t, EDGE, mx["records_per_s"], mx["p50_ms"], mx["p99_ms"],
                rate and rate["p50_ms"], rate and rate["p99_ms"],
                rss, rss, mx["cpu_s"] / mx["records"] * 100_000)


def _add_common(t: Table, col: str, rps: float | None, p50: float | None, p99: float | None,
                r50: float | None, r99: float | None, rss: float | None, rss_total: float | None,
                cpu_per_100k: float | None) -> None:
    t.add("durable append, unthrottled (records/s)", col, rps)
    t.add("latency p50, unthrottled (ms)", col, p50, higher_is_better=False)
    t.add("latency p99, unthrottled (ms)", col, p99, higher_is_better=False)
    t.add(f"latency p50 at {FIXED_RATE:,} records/s (ms)", col, r50, higher_is_better=False)
    t.add(f"latency p99 at {FIXED_RATE:,} records/s (ms)", col, r99, higher_is_better=False)
    t.add("peak RSS of the storing process (MB)", col, rss, higher_is_better=False)
    t.add("peak RSS, storing process + client (MB)", col, rss_total, higher_is_better=False)
    t.add("CPU s of the storing process per 100,000 records, unthrottled", col, cpu_per_100k,
          higher_is_better=False)


def bench_log_cell(impl: str, work: str, n: int, seconds: float, tmp: str) -> dict:
    """One of bench_log's child workloads, run as bench_log.run_cell runs it, measured by us.

    Not run_cell itself: its child reports ru_maxrss, which on Linux includes this (bigger)
    parent's peak at fork; run_measured reads the child's own VmHWM instead.
    """
    return run_child_cell([sys.executable, bench_log.__file__, "--child", "--impl", impl,
                           "--work", work, "--n", str(n), "--seconds", str(seconds),
                           "--tmp", tmp], f"bench_log {impl} {work}", timeout=600)


def _pq_run(plan: LogPlan, t: Table) -> None:
    conc = bench_log_cell("persist-queue", "concurrent", plan.pq_records, plan.rate_seconds,
                          plan.tmp)
    lat = bench_log_cell("persist-queue", "latency", 0, plan.rate_seconds, plan.tmp)
    rss = max(conc["rss_mb"], lat["rss_mb"])
    _add_common(t, PQ, conc["rate"], None, None, lat.get("p50_ms"), lat.get("p99_ms"),
                rss, rss, None)


def _kafka_run(plan: LogPlan, t: Table, col: str, cluster: kperf.KafkaCluster, run: int) -> None:
    servers = cluster.bootstrap_servers
    rid = uuid.uuid4().hex[:6]  # an attached cluster may hold topics of earlier runs
    t_max, t_rate = f"perf-{run}-{rid}-max", f"perf-{run}-{rid}-rate"
    kperf.create_topic(servers, t_max)
    kperf.create_topic(servers, t_rate)
    cpu0 = kperf.broker_cpu_seconds(cluster)
    mx = kperf.perf_test(servers, t_max, plan.records, RECORD_SIZE)
    cpu1 = kperf.broker_cpu_seconds(cluster)
    rate = None
    if plan.rate_seconds > 0:
        rate = kperf.perf_test(servers, t_rate, int(FIXED_RATE * plan.rate_seconds), RECORD_SIZE,
                               throughput=FIXED_RATE)
    broker_rss = kperf.broker_peak_rss_mb(cluster)
    client_rss = max(mx.client_peak_rss_mb, rate.client_peak_rss_mb if rate else 0.0)
    _add_common(t, col, mx.records_per_s, mx.p50_ms, mx.p99_ms,
                rate and rate.p50_ms, rate and rate.p99_ms,
                broker_rss, broker_rss + client_rss, (cpu1 - cpu0) / plan.records * 100_000)


def run(plan: LogPlan, runs: int, progress: Callable[[str], None]) -> Table:
    """Measure every side ``runs`` times, interleaved; returns the filled table. Blocking."""
    t = new_table(plan)
    variants = [(KAFKA, False)] + ([(KAFKA_FSYNC, True)] if plan.kafka_fsync else [])
    shared: dict[str, kperf.KafkaCluster] = {}
    attached = None
    if plan.kafka and plan.kafka_dir:
        attached = kperf.KafkaCluster.attach(plan.kafka_dir)
        if len(attached.brokers) != 1:
            raise ValueError(f"--kafka-dir {plan.kafka_dir}: expected a 1-broker cluster, "
                             f"it has {len(attached.brokers)}")
        variants = [(KAFKA, False)]
    try:
        for i in range(runs):
            _edge_run(plan, t)
            progress(f"log run {i + 1}/{runs}: edge log done")
            _pq_run(plan, t)
            progress(f"log run {i + 1}/{runs}: persist-queue done")
            if not plan.kafka:
                continue
            for col, fsync in variants:
                if attached is not None:
                    _kafka_run(plan, t, col, attached, i)
                elif plan.cluster_per_run:
                    with kperf.new_cluster(fsync) as cluster:
                        _kafka_run(plan, t, col, cluster, i)
                else:
                    if col not in shared:
                        shared[col] = kperf.new_cluster(fsync).start()
                    _kafka_run(plan, t, col, shared[col], i)
                progress(f"log run {i + 1}/{runs}: {col} done")
    finally:
        for cluster in shared.values():
            cluster.stop()
    return t
