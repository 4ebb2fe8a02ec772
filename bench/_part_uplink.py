"""Parts "uplink" and "drain": the uplink beside a plain aiokafka producer, and backlog drain.

Throughput and latency call bench/bench_uplink.py's own functions (its settings and
timing rules apply). The drain is measured after a real outage: the uplink runs, the
broker is killed (SIGKILL), a backlog is written to the local log while the uplink is
offline, the broker is restarted, and the uplink's count of records committed upstream
is sampled every 0.1 s from the moment the restart begins.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bench_uplink
from _table import Table

from broker import KafkaProducer
from deploy.kafka import KafkaCluster
from edge.uplink import Uplink, UplinkState

UPLINK, PLAIN = "uplink", "plain aiokafka producer"
SAMPLE_EVERY_S = 0.1


@dataclass(frozen=True)
class UplinkPlan:
    records: int = 50_000
    value_bytes: int = 100
    latency_rate: int = 2000
    latency_seconds: float = 10.0
    drain_records: int = 200_000
    delivery: str = "exactly-once"


@dataclass
class DrainRun:
    """One drain: (seconds since the broker restart began, records upstream) samples."""

    samples: list[tuple[float, int]]
    broker_back_s: float      # when the restarted broker served again
    drained_s: float          # when the last record of the backlog was committed upstream
    records: int


def new_table(plan: UplinkPlan) -> Table:
    t = Table("uplink", "Uplink to Kafka (1 broker) beside a plain aiokafka producer", [UPLINK, PLAIN])
    t.notes += [
        f"{plan.records:,} records of {plan.value_bytes} B (100 keys) already in the local log; "
        "bench/bench_uplink.py's `plain()` sends them from a list with the uplink's producer "
        "settings (idempotent, acks=all, lz4, linger 5 ms; transactional, one transaction per "
        "1,000 records, for exactly-once), its `uplink()` times edge.uplink.Uplink from online to "
        "the last record committed upstream.",
        f"Latency: {plan.latency_rate:,} records/s written to the local log for "
        f"{plan.latency_seconds:g} s; from the local write being durable to a read_committed "
        "consumer receiving it upstream (bench_uplink's `latency()`, exactly-once).",
        f"Drain: {plan.drain_records:,} records written locally while the broker was down "
        "(SIGKILL; the uplink offline), then the broker restarted; timed from the moment it "
        "served again (the link is back) to the last record committed upstream, so the "
        "uplink's reconnect backoff is part of it (request timeout 5 s, backoff up to 2 s).",
    ]
    return t


async def _throughput_run(t: Table, servers: str, data_dir: Path, records: list,
                          plan: UplinkPlan) -> None:
    for delivery in bench_uplink.DELIVERIES:
        p = await bench_uplink.plain(servers, records, delivery == "exactly-once", 1)
        u = await bench_uplink.uplink(servers, data_dir, plan.records, delivery, 1)
        t.add(f"records/s upstream, {delivery}", PLAIN, plan.records / p)
        t.add(f"records/s upstream, {delivery}", UPLINK, plan.records / u)
    if plan.latency_seconds > 0:
        p50, p99, _n = await bench_uplink.latency(servers, data_dir, "exactly-once", 1,
                                                  plan.latency_rate, plan.latency_seconds,
                                                  plan.value_bytes)
        t.add("latency local durable → upstream p50 (ms)", UPLINK, p50, higher_is_better=False)
        t.add("latency local durable → upstream p99 (ms)", UPLINK, p99, higher_is_better=False)


async def drain_after_outage(cluster: KafkaCluster, data_dir: Path, n: int, value_bytes: int,
                             delivery: str, timeout_s: float = 600) -> DrainRun:
    """Kill the broker under a running uplink, write n records locally, restart, sample the drain."""
    topic = f"drain-{uuid.uuid4().hex[:8]}"
    with KafkaProducer(data_dir) as producer:  # the topic exists before the uplink looks
        producer.send(topic, b"warm-up", key=b"warm-up").get(timeout=30)
    cfg = bench_uplink.config(cluster.bootstrap_servers, data_dir, topic, f"up-{topic}",
                              delivery, 1)
    cfg = dataclasses.replace(cfg, request_timeout_s=5, backoff_initial_s=0.2, backoff_max_s=2.0)
    async with Uplink(cfg) as up:
        await _until(lambda: up.status().records_total >= 1, 120, "the warm-up record upstream", up)
        base = up.status().records_total
        await asyncio.to_thread(cluster.kill_broker, 0)
        # The uplink finds the link gone when it next sends: the backlog's first batch.
        await asyncio.to_thread(bench_uplink.write_local, data_dir, topic, n, value_bytes, False)
        await _until(lambda: up.state == UplinkState.OFFLINE, 120, "the uplink offline", up)
        t0 = time.perf_counter()
        restart = asyncio.create_task(asyncio.to_thread(cluster.restart_broker, 0))
        samples: list[tuple[float, int]] = [(0.0, 0)]
        broker_back = None
        while True:
            now = time.perf_counter() - t0
            done = up.status().records_total - base
            samples.append((now, done))
            if broker_back is None and restart.done():
                restart.result()  # raises if the broker did not come back
                broker_back = now
            if done >= n and broker_back is not None:
                break
            if up.state in (UplinkState.FENCED, UplinkState.STOPPED):
                raise RuntimeError(f"uplink ended during the drain: {up.status().last_error}")
            if now > timeout_s:
                raise RuntimeError(f"drain: {done:,} of {n:,} records upstream after {now:.0f} s")
            await asyncio.sleep(SAMPLE_EVERY_S)
    drained = next(s for s, c in samples if c >= n)
    return DrainRun(samples=samples, broker_back_s=broker_back, drained_s=drained, records=n)


async def _until(pred: Callable[[], bool], timeout: float, what: str, up: Uplink) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}; "
                               f"uplink {up.state}: {up.status().last_error}")
        await asyncio.sleep(0.05)


def run(plan: UplinkPlan, runs: int, parts: set[str],
        progress: Callable[[str], None]) -> tuple[Table, list[DrainRun]]:
    """Throughput/latency ("uplink" in parts) and drains ("drain"), ``runs`` times each."""
    return asyncio.run(_run(plan, runs, parts, progress))


async def _run(plan: UplinkPlan, runs: int, parts: set[str],
               progress: Callable[[str], None]) -> tuple[Table, list[DrainRun]]:
    t = new_table(plan)
    drains: list[DrainRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-uplink-") as tmp:
        data_dir = Path(tmp) / "log"
        records: list = []
        if "uplink" in parts:
            records = await asyncio.to_thread(bench_uplink.write_local, data_dir,
                                              bench_uplink.TOPIC, plan.records, plan.value_bytes,
                                              True)
        cluster = KafkaCluster(brokers=1)
        await asyncio.to_thread(cluster.start)
        try:
            # Throughput first: a drain kills and restarts the broker, which then spends a
            # while recovering, and that would land in the next throughput run.
            for i in range(runs if "uplink" in parts else 0):
                await _throughput_run(t, cluster.bootstrap_servers, data_dir, records, plan)
                progress(f"uplink run {i + 1}/{runs} done")
            for i in range(runs if "drain" in parts else 0):
                d = await drain_after_outage(cluster, data_dir, plan.drain_records,
                                             plan.value_bytes, plan.delivery)
                drains.append(d)
                back = d.drained_s - d.broker_back_s
                t.add("backlog drain: link back → last record upstream (s)", UPLINK, back,
                      higher_is_better=False)
                t.add("backlog drain rate once the link is back (records/s)", UPLINK,
                      d.records / max(1e-3, back))
                t.add("broker restart until it served again (s)", UPLINK, d.broker_back_s,
                      higher_is_better=False, compare=False)
                progress(f"drain run {i + 1}/{runs}: {d.records:,} records in "
                         f"{d.drained_s:.1f} s (broker back after {d.broker_back_s:.1f} s)")
        finally:
            await asyncio.to_thread(cluster.stop)
    return t, drains
