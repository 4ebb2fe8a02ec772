"""Uplink throughput, latency and backlog drain beside a plain aiokafka producer.

    .venv/bin/python bench/bench_uplink.py                      # full run: 12-14 min on 2 shared cores
    .venv/bin/python bench/bench_uplink.py --brokers 1 --runs 1 --drain-records 100000 \
        --latency-seconds 5                                     # quick look, ~1.5 min

Options: --records N (throughput, default 50,000), --value-bytes B (100), --brokers 1,3,
--runs R (3), --latency-rate (2,000 records/s), --latency-seconds (10),
--drain-records N (1,000,000; 0 skips), --drain-delivery (exactly-once; or both),
--big-records N (1,000; 0 skips) of --big-value-bytes B (200,000).

Starts its own Kafka clusters (deploy.kafka; 3 brokers: replication factor 3,
min.insync.replicas 2; every topic here is created with replication factor
min(brokers, 3)), writes the records (100 keys) to a fresh local log once, then
for each cluster, R times (runs interleaved), for exactly-once and at-least-once:

  throughput  plain  = AIOKafkaProducer with the uplink's settings (idempotent,
                       acks=all, lz4, linger 5 ms, 256 KiB batches, retry backoff
                       20 ms; transactional
                       with one transaction per batch of 1000 records for exactly-once)
                       sending the same records from a list with send() per record,
                       the usual way to use it;
              batch  = the same producer sending them with create_batch()/send_batch(),
                       one record batch per partition, as the uplink itself does (the
                       fastest way aiokafka offers, so the stricter peer);
                       both peers send exactly the records that the uplink puts upstream:
                       same key, value, timestamp and headers, the uplink's edge.id,
                       edge.partition and edge.offset included, built before the clock starts;
              uplink = edge.uplink.Uplink replicating the same records from the local
                       log (timed from "online" to the last record committed upstream).
                       Its upstream topic is created and written once before, as the
                       peers' topics are (warm-up record): the first write to a new topic
                       waits for its leader, which is not throughput.
              ratio  = peer time / uplink time of the same run (median of the runs).
  latency     records produced to the local log at a steady rate by a thread; for each,
              the time its local write is durable (producer future done) to the time
              a read_committed AIOKafkaConsumer (fetch_max_wait 100 ms) in the same
              process receives it upstream. The first second is left out (warm-up).
  drain       N records already in the local log, a new Uplink (new edge id: cold
              start, connect, topic creation, init of the transactional producer)
              timed from start to the last record committed upstream.

  large       N records of 200 KB: the uplink (`python -m edge.uplink`, its own process,
              timed from "online" to the last record committed upstream) beside the
              send() peer in a process of its own (values made as it sends, one
              transaction per 1,000 records exactly once); records/s and each process's
              peak RSS (VmHWM / ru_maxrss). aiokafka bounds neither by bytes: the peer
              holds a whole transaction; the uplink reads about batch_bytes at a time.

Cells are "median [min-max]" over the runs. Floor: the uplink reaches 70% of the
plain producer's records/s. The uplink, the consumer and the local producer share
one Python process (and the 2 cores with the brokers), as they would not in the field.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition as UpTP

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broker import KafkaConsumer, KafkaProducer, default_partition  # noqa: E402
from deploy.kafka import KafkaCluster  # noqa: E402
from deploy.kafka._config import KAFKA_VERSION  # noqa: E402
from edge.uplink import Uplink, UplinkConfig, UplinkState  # noqa: E402

BATCH = 1000
DELIVERIES = ("exactly-once", "at-least-once")
TOPIC, DRAIN_TOPIC, BIG_TOPIC = "bench", "drain", "big"


def _rid() -> str:
    return uuid.uuid4().hex[:8]


def _value(i: int, value_bytes: int) -> bytes:
    return f"{i}".encode().ljust(value_bytes, b"x")


# -- local log ---------------------------------------------------------------------------------

def write_local(data_dir: Path, topic: str, n: int, value_bytes: int, read_back: bool) -> list:
    with KafkaProducer(data_dir) as producer:
        for start in range(0, n, 20_000):
            futures = [producer.send(topic, _value(i, value_bytes), key=f"dev-{i % 100}".encode(),
                                     headers=[("source", b"bench")])
                       for i in range(start, min(n, start + 20_000))]
            for f in futures:
                f.get(timeout=120)
    if not read_back:
        return []
    with KafkaConsumer(topic, data_dir=data_dir, auto_offset_reset="earliest",
                       consumer_timeout_ms=2000) as consumer:
        return list(consumer)


def config(servers: str, data_dir: Path, topic: str, upstream: str, delivery: str,
           brokers: int) -> UplinkConfig:
    return UplinkConfig(edge_id=f"bench-{_rid()}", bootstrap_servers=servers, data_dir=data_dir,
                        topics={topic: upstream}, delivery=delivery, batch_records=BATCH,
                        default_replication_factor=min(brokers, 3), replicate_drop_ledger=False)


async def wait_online(up: Uplink) -> None:
    while up.state != UplinkState.ONLINE:
        if up.state in (UplinkState.FENCED, UplinkState.STOPPED):
            raise RuntimeError(f"uplink ended: {up.status().last_error}")
        await asyncio.sleep(0.01)


# -- throughput --------------------------------------------------------------------------------

def upstream_records(records: list) -> list[tuple]:
    """(value, key, timestamp, headers) of each record as the uplink sends it upstream."""
    edge = ("edge.id", b"bench-peer")
    return [(r.value, r.key, r.timestamp, [*r.headers, edge, ("edge.partition", str(r.partition)
             .encode()), ("edge.offset", str(r.offset).encode())]) for r in records]


async def create_topic(servers: str, topic: str, brokers: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, min(brokers, 3))])
    finally:
        await admin.close()


async def warm_topic(servers: str, topic: str, brokers: int) -> None:
    """Create ``topic`` and write one record to it, as ``plain()`` does before its clock
    starts: the first write to a new topic waits for its leader and metadata (about half a
    second on 3 brokers), which is not throughput."""
    await create_topic(servers, topic, brokers)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up")
    finally:
        await producer.stop()


async def plain(servers: str, records: list, eos: bool, brokers: int,
                batched: bool = False) -> float:
    topic = f"plain-{_rid()}"
    await create_topic(servers, topic, brokers)
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", enable_idempotence=True, compression_type="lz4",
        linger_ms=5, max_batch_size=256 * 1024, retry_backoff_ms=20,
        transactional_id=f"bench-{_rid()}" if eos else None)
    await producer.start()
    prepared = upstream_records(records)
    try:
        if eos:
            await producer.begin_transaction()
        await producer.send_and_wait(topic, b"warm-up")
        if eos:
            await producer.commit_transaction()
        n = len(await producer.partitions_for(topic))
        t0 = time.perf_counter()
        for i in range(0, len(prepared), BATCH):
            if eos:
                await producer.begin_transaction()
            chunk = prepared[i:i + BATCH]
            if batched:
                futures = await send_batched(producer, topic, n, chunk)
            else:
                futures = [await producer.send(topic, v, k, timestamp_ms=ts, headers=h)
                           for v, k, ts, h in chunk]
            await asyncio.gather(*futures)
            if eos:
                await producer.commit_transaction()
        return time.perf_counter() - t0
    finally:
        await producer.stop()


async def send_batched(producer: AIOKafkaProducer, topic: str, partitions: int,
                       chunk: list[tuple]) -> list:
    """Records in one record batch per partition (a new one when full); their futures."""
    builders: dict[int, object] = {}
    futures = []
    for value, key, ts, headers in chunk:
        part = default_partition(key, partitions)
        builder = builders.get(part)
        if builder is None or builder.append(timestamp=ts, key=key, value=value,
                                             headers=headers) is None:
            if builder is not None:
                builder.close()
                futures.append(await producer.send_batch(builder, topic, partition=part))
            builder = builders[part] = producer.create_batch()
            builder.append(timestamp=ts, key=key, value=value, headers=headers)
    for part, builder in builders.items():
        builder.close()
        futures.append(await producer.send_batch(builder, topic, partition=part))
    return futures


async def uplink(servers: str, data_dir: Path, n: int, delivery: str, brokers: int) -> float:
    upstream = f"up-{_rid()}"
    await warm_topic(servers, upstream, brokers)  # as the peers' topics are, before the clock
    cfg = config(servers, data_dir, TOPIC, upstream, delivery, brokers)
    async with Uplink(cfg) as up:
        await wait_online(up)
        t0 = time.perf_counter()
        while up.status().records_total < n:
            await asyncio.sleep(0.005)
        return time.perf_counter() - t0


# -- latency -----------------------------------------------------------------------------------

def pace(data_dir: Path, topic: str, rate: int, seconds: float, value_bytes: int,
         committed: dict[int, float], stop: threading.Event) -> int:
    """Send rate records/s for seconds in ticks of 10 ms; record when each is durable."""
    n, per_tick, tick = 0, max(1, rate // 100), 0.01
    with KafkaProducer(data_dir) as producer:
        t0 = time.perf_counter()
        total = int(rate * seconds)
        while n < total and not stop.is_set():
            for _ in range(min(per_tick, total - n)):
                f = producer.send(topic, _value(n, value_bytes), key=f"dev-{n % 100}".encode())
                f.add_callback(lambda _md, i=n: committed.__setitem__(i, time.time()))
                n += 1
            delay = t0 + (n / rate) - time.perf_counter()
            if delay > 0:
                time.sleep(min(delay, tick))
        producer.flush(timeout=60)
    return n


async def latency(servers: str, data_dir: Path, delivery: str, brokers: int, rate: int,
                  seconds: float, value_bytes: int) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, records measured) from local durable write to read_committed upstream."""
    topic, upstream = f"lat-{_rid()}", f"up-lat-{_rid()}"
    with KafkaProducer(data_dir) as producer:  # the topic must exist before the uplink looks
        producer.send(topic, b"warm-up", key=b"warm-up").get(timeout=30)
    cfg = config(servers, data_dir, topic, upstream, delivery, brokers)
    committed: dict[int, float] = {}
    seen: dict[int, float] = {}
    stop = threading.Event()
    async with Uplink(cfg) as up:
        await wait_online(up)
        while up.status().records_total < 1:
            await asyncio.sleep(0.01)
        consumer = AIOKafkaConsumer(bootstrap_servers=servers, isolation_level="read_committed",
                                    enable_auto_commit=False, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            consumer.assign([UpTP(upstream, 0)])
            await consumer.seek_to_beginning()
            producing = asyncio.create_task(asyncio.to_thread(
                pace, data_dir, topic, rate, seconds, value_bytes, committed, stop))
            try:
                total = None
                deadline = None
                while total is None or len(seen) < total:
                    batches = await consumer.getmany(timeout_ms=200)
                    now = time.time()
                    for recs in batches.values():
                        for r in recs:
                            if r.key != b"warm-up":
                                seen[int(r.value.rstrip(b"x"))] = now
                    if total is None and producing.done():
                        total = producing.result()
                        deadline = time.monotonic() + 60
                    if deadline is not None and time.monotonic() > deadline:
                        raise RuntimeError(f"latency: {len(seen)} of {total} records seen upstream")
            finally:
                stop.set()
                await asyncio.gather(producing, return_exceptions=True)
        finally:
            await consumer.stop()
    skip = rate  # the first second
    lat = sorted((seen[i] - committed[i]) * 1000 for i in seen if i >= skip and i in committed)
    if not lat:
        raise RuntimeError("latency: no records measured")
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat)


# -- drain -------------------------------------------------------------------------------------

async def drain(servers: str, data_dir: Path, n: int, delivery: str, brokers: int) -> float:
    cfg = config(servers, data_dir, DRAIN_TOPIC, f"up-drain-{_rid()}", delivery, brokers)
    t0 = time.perf_counter()
    async with Uplink(cfg) as up:
        while up.status().records_total < n:
            if up.state in (UplinkState.FENCED, UplinkState.STOPPED):
                raise RuntimeError(f"uplink ended: {up.status().last_error}")
            await asyncio.sleep(0.01)
        return time.perf_counter() - t0


# -- large records: records/s and peak RSS, each side in a process of its own -------------------

PEER_CHILD = "--peer-child"


async def _peer_child(servers: str, topic: str, n: int, value_bytes: int, eos: bool) -> None:
    """The send() peer for large records; prints {"seconds", "peak_rss_mb"} as JSON."""
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", enable_idempotence=True, compression_type="lz4",
        linger_ms=5, max_batch_size=256 * 1024, max_request_size=1024 * 1024, retry_backoff_ms=20,
        transactional_id=f"bench-{_rid()}" if eos else None)
    await producer.start()
    try:
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            if eos:
                await producer.begin_transaction()
            futures = [await producer.send(topic, _value(i, value_bytes), f"dev-{i % 100}".encode(),
                                           headers=[("source", b"bench")])
                       for i in range(start, min(n, start + BATCH))]
            await asyncio.gather(*futures)
            if eos:
                await producer.commit_transaction()
        seconds = time.perf_counter() - t0
    finally:
        await producer.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak}), flush=True)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


async def big_peer(servers: str, n: int, value_bytes: int, eos: bool, brokers: int
                   ) -> tuple[float, float]:
    topic = f"big-plain-{_rid()}"
    await warm_topic(servers, topic, brokers)
    out = await asyncio.to_thread(subprocess.run, [
        sys.executable, __file__, PEER_CHILD, servers, topic, str(n), str(value_bytes),
        "1" if eos else "0"], capture_output=True, text=True, env=_child_env(), cwd=ROOT,
        check=True, timeout=1800)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return n / res["seconds"], res["peak_rss_mb"]


def _big_uplink_child(servers: str, data_dir: Path, topic: str, upstream: str, n: int,
                      delivery: str) -> tuple[float, float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.uplink", "--edge-id", f"bench-{_rid()}", "--bootstrap-servers",
         servers, "--data-dir", str(data_dir), "--topic", f"{topic}={upstream}", "--delivery",
         delivery, "--batch-records", str(BATCH), "--status-interval", "0.02"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_child_env(), cwd=ROOT)
    try:
        t0 = None
        for line in proc.stdout:
            status = json.loads(line)
            if t0 is None and status["state"] == "online":
                t0 = time.perf_counter()
            if status["records_total"] >= n:
                seconds = time.perf_counter() - (t0 or time.perf_counter())
                break
        else:
            raise RuntimeError("big: the uplink ended before replicating everything")
        with open(f"/proc/{proc.pid}/status") as f:
            peak = next(int(x.split()[1]) for x in f if x.startswith("VmHWM")) / 1024
    finally:
        proc.terminate()
        proc.wait(60)
    return n / seconds, peak


async def big_uplink(servers: str, data_dir: Path, n: int, delivery: str, brokers: int
                     ) -> tuple[float, float]:
    upstream = f"up-big-{_rid()}"
    await warm_topic(servers, upstream, brokers)
    return await asyncio.to_thread(_big_uplink_child, servers, data_dir, BIG_TOPIC, upstream, n,
                                   delivery)


# -- report ------------------------------------------------------------------------------------

def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        mem = float("nan")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, aiokafka "
            f"{aiokafka.__version__}, Kafka {KAFKA_VERSION}; load average {load:.2f} at start")


def cell(values: list[float], fmt: Callable[[float], str]) -> str:
    if not values:
        return "—"
    med = fmt(statistics.median(values))
    return med if len(values) == 1 else f"{med} [{fmt(min(values))}–{fmt(max(values))}]"


def _n(v: float) -> str:
    return f"{v:,.0f}"


def _f2(v: float) -> str:
    return f"{v:.2f}"


def _f1(v: float) -> str:
    return f"{v:.1f}"


def _pct(v: float) -> str:
    return f"{v:.0%}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--brokers", default="1,3", help="comma-separated cluster sizes (1, 3)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-rate", type=int, default=2000, help="records/s")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--drain-records", type=int, default=1_000_000, help="0 skips the drain")
    ap.add_argument("--drain-delivery", default="exactly-once", choices=(*DELIVERIES, "both"))
    ap.add_argument("--big-records", type=int, default=1000, help="0 skips the large records")
    ap.add_argument("--big-value-bytes", type=int, default=200_000)
    args = ap.parse_args()
    sizes = [int(b) for b in args.brokers.split(",")]
    if any(b not in (1, 3) for b in sizes) or args.runs < 1:
        ap.error("--brokers takes 1 and/or 3; --runs at least 1")
    drain_modes = DELIVERIES if args.drain_delivery == "both" else (args.drain_delivery,)
    header = machine()
    began = time.perf_counter()
    cols = ["brokers", "delivery", "plain send() rec/s", "plain batch rec/s", "uplink rec/s",
            "uplink MB/s", "uplink / send()", "uplink / batch", "latency p50 ms",
            "latency p99 ms", "drain s", "drain rec/s"]
    rows: list[list[str]] = []
    big_cols = ["brokers", "delivery", "value B", "records", "plain send() rec/s",
                "plain peak RSS MB", "uplink rec/s", "uplink peak RSS MB", "uplink / send()"]
    big_rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "log"
        t = time.perf_counter()
        records = await asyncio.to_thread(write_local, data_dir, TOPIC, args.records,
                                          args.value_bytes, True)
        if args.drain_records:
            await asyncio.to_thread(write_local, data_dir, DRAIN_TOPIC, args.drain_records,
                                    args.value_bytes, False)
        if args.big_records:
            await asyncio.to_thread(write_local, data_dir, BIG_TOPIC, args.big_records,
                                    args.big_value_bytes, False)
        print(f"# local log written: {args.records:,} + {args.drain_records:,} records in "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
        nbytes = sum(len(r.key) + len(r.value) for r in records)
        for brokers in sizes:
            res: dict[str, dict[str, list[float]]] = {d: {} for d in DELIVERIES}
            with KafkaCluster(brokers=brokers) as cluster:
                servers = cluster.bootstrap_servers
                print(f"# {brokers} broker(s) up in {cluster.start_seconds:.0f} s", file=sys.stderr)
                for run in range(args.runs):
                    for d in DELIVERIES:
                        r = res[d]
                        eos = d == "exactly-once"
                        p = await plain(servers, records, eos, brokers, batched=False)
                        b = await plain(servers, records, eos, brokers, batched=True)
                        u = await uplink(servers, data_dir, args.records, d, brokers)
                        r.setdefault("plain", []).append(args.records / p)
                        r.setdefault("batch", []).append(args.records / b)
                        r.setdefault("uplink", []).append(args.records / u)
                        r.setdefault("mb", []).append(nbytes / u / 1e6)
                        r.setdefault("ratio", []).append(p / u)
                        r.setdefault("ratio_batch", []).append(b / u)
                        if args.latency_seconds > 0:
                            p50, p99, _ = await latency(servers, data_dir, d, brokers,
                                                        args.latency_rate, args.latency_seconds,
                                                        args.value_bytes)
                            r.setdefault("p50", []).append(p50)
                            r.setdefault("p99", []).append(p99)
                        if args.drain_records and d in drain_modes:
                            s = await drain(servers, data_dir, args.drain_records, d, brokers)
                            r.setdefault("drain", []).append(s)
                            r.setdefault("drain_rate", []).append(args.drain_records / s)
                        if args.big_records:
                            rate, peak = await big_peer(servers, args.big_records,
                                                        args.big_value_bytes, eos, brokers)
                            r.setdefault("big_plain", []).append(rate)
                            r.setdefault("big_plain_rss", []).append(peak)
                            rate, peak = await big_uplink(servers, data_dir, args.big_records,
                                                          d, brokers)
                            r.setdefault("big_uplink", []).append(rate)
                            r.setdefault("big_uplink_rss", []).append(peak)
                            r.setdefault("big_ratio", []).append(rate / r["big_plain"][-1])
                        print(f"# {brokers} broker(s), run {run + 1}/{args.runs}, {d}: "
                              f"{ {k: round(v[-1], 3) for k, v in r.items()} }", file=sys.stderr)
            for d in DELIVERIES:
                r = res[d]
                rows.append([str(brokers), d, cell(r["plain"], _n), cell(r["batch"], _n),
                             cell(r["uplink"], _n), cell(r["mb"], _f2), cell(r["ratio"], _pct),
                             cell(r["ratio_batch"], _pct),
                             cell(r.get("p50", []), _n), cell(r.get("p99", []), _n),
                             cell(r.get("drain", []), _f1), cell(r.get("drain_rate", []), _n)])
                if args.big_records:
                    big_rows.append([str(brokers), d, _n(args.big_value_bytes), _n(args.big_records),
                                     cell(r["big_plain"], _n), cell(r["big_plain_rss"], _n),
                                     cell(r["big_uplink"], _n), cell(r["big_uplink_rss"], _n),
                                     cell(r["big_ratio"], _pct)])
    print(f"Machine: {header}")
    print(f"Throughput: {args.records:,} records of {args.value_bytes} B (100 keys), lz4, batches of"
          f" {BATCH}; latency: {args.latency_rate:,} records/s for {args.latency_seconds:g} s;"
          f" drain: {args.drain_records:,} records ({', '.join(drain_modes)});"
          f" {args.runs} run(s), median [min–max]; total {time.perf_counter() - began:.0f} s")
    print()
    print("| " + " | ".join(cols) + " |")
    print("| " + " | ".join("---" for _ in cols) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if big_rows:
        print()
        print("| " + " | ".join(big_cols) + " |")
        print("| " + " | ".join("---" for _ in big_cols) + " |")
        for row in big_rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == PEER_CHILD:
        servers, topic, n, value_bytes, eos = sys.argv[2:7]
        asyncio.run(_peer_child(servers, topic, int(n), int(value_bytes), eos == "1"))
    else:
        asyncio.run(main())
