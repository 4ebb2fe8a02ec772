"""Benchmark: stream processing through edge.streams against a hand-written loop, in the same run.

    .venv/bin/python bench/bench_streams.py [--runs 3] [--quick]

Input: ``--records`` JSON temperature readings (~110 bytes, two headers) keyed over
1,000 devices, one reading per device per second of event time, already in the log.
Every cell reads all of it and commits its output with its input offsets, each
transaction fsynced (WAL, synchronous=FULL), batches of 5,000 input records:

* ``plain``: a hand-written loop on the broker API: ``KafkaConsumer.poll``,
  ``json.loads``, convert, filter, ``json.dumps``, and a ``LogTransaction`` with the
  output and the offsets per batch (the same durability and atomicity, no framework).
* ``stateless``: ``edge.streams``: ``source -> map (°C to °F) -> filter -> to``.
* ``windowed``: ``edge.streams``: 1-minute tumbling windowed mean per device (1,000 keys).

Each cell runs in a fresh subprocess and is repeated ``--runs`` times; the table shows
medians and the spread.  Records/s counts input records, by the wall clock and per
CPU-second of the process (all its threads): on a shared, loaded machine the second
shows what the work costs, the first also how long it waited for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEVICES = 1000
BATCH = 5000
BASE_TS = 1_700_000_000_000


def write_input(d: Path, n: int) -> None:
    from broker import KafkaAdminClient, KafkaProducer, NewTopic

    with KafkaAdminClient(data_dir=d) as admin:
        admin.create_topics([NewTopic("readings", 3), NewTopic("hot", 3), NewTopic("mean", 3)])
    keys = [f"ward-{i:04d}".encode() for i in range(DEVICES)]
    headers = [("schema", b"temperature/1"), ("edge_id", b"edge-1")]
    with KafkaProducer(data_dir=d) as p:
        for i in range(n):
            dev = i % DEVICES
            value = {"device": f"ward-{dev:04d}", "c": 36.0 + (i * 7919 % 400) / 100,
                     "unit": "C", "seq": i}
            p.send("readings", json.dumps(value).encode(), key=keys[dev], headers=headers,
                   timestamp_ms=BASE_TS + (i // DEVICES) * 1000)
        p.flush()


def run_plain(d: Path) -> int:
    from broker import KafkaConsumer, KafkaProducer, TopicPartition

    consumer = KafkaConsumer(data_dir=d, group_id="plain", enable_auto_commit=False,
                             auto_offset_reset="earliest", max_poll_records=BATCH)
    consumer.assign([TopicPartition("readings", p) for p in range(3)])
    producer = KafkaProducer(data_dir=d)
    done = 0
    committed: dict[TopicPartition, int | None] = {}
    while True:
        batch = consumer.poll(timeout_ms=0)
        if not batch:
            break
        txn = producer.begin_transaction()
        offsets = {}
        for tp, recs in batch.items():
            for r in recs:
                v = json.loads(r.value)
                f = v["c"] * 9 / 5 + 32
                if f > 99.0:
                    out = json.dumps({"device": v["device"], "f": f}, separators=(",", ":")).encode()
                    txn.send("hot", out, key=r.key, timestamp_ms=r.timestamp,
                             headers=[*r.headers, ("streams.source", f"{r.topic}/{r.partition}/{r.offset}".encode())])
            offsets[tp] = recs[-1].offset + 1
            done += len(recs)
        txn.commit_offsets("plain", offsets, expected={tp: committed.get(tp) for tp in offsets})
        txn.commit()
        committed.update(offsets)
    consumer.close(autocommit=False)
    producer.close()
    return done


def run_streams(d: Path, kind: str) -> int:
    from edge.streams import StreamsRunner, Topology, TumblingWindows

    t = Topology(kind)
    s = t.source("readings")
    if kind == "stateless":
        (s.map(lambda r: r.with_value({"device": r.value["device"], "f": r.value["c"] * 9 / 5 + 32}))
          .filter(lambda r: r.value["f"] > 99.0).to("hot"))
    else:
        (s.group_by_key().windowed_by(TumblingWindows(60_000))
          .aggregate("mean", value=lambda r: r.value["c"]).to("mean"))
    with StreamsRunner(t, d, max_batch_records=BATCH) as runner:
        return runner.process_available()


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.tmp) as td:
        d = Path(td)
        write_input(d, args.n)
        import edge.streams  # noqa: F401 - imports are not part of the measured time

        t0, c0 = time.perf_counter(), _cpu_s()
        n = run_plain(d) if args.impl == "plain" else run_streams(d, args.impl)
        elapsed, cpu = time.perf_counter() - t0, _cpu_s() - c0
    assert n == args.n, (n, args.n)
    print(json.dumps({"rate": n / elapsed, "cpu_rate": n / cpu, "seconds": elapsed}))


def _cpu_s() -> float:
    """CPU seconds of this process (all threads): what the work cost, whatever else ran."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_cell(impl: str, n: int, tmp: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--impl", impl, "--n", str(n), "--tmp", tmp]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(values: list[float]) -> str:
    med = statistics.median(values)
    spread = (max(values) - min(values)) / med * 100 if med else 0
    return f"{med:,.0f} ±{spread:.0f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true", help="50,000 records (a smoke run)")
    ap.add_argument("--tmp", default=os.environ.get("BENCH_TMP", tempfile.gettempdir()),
                    help="where the databases go (env BENCH_TMP); a real disk, not tmpfs")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    n = 50_000 if args.quick else args.records
    impls = ["plain", "stateless", "windowed"]
    print(f"# bench_streams: {platform.node()} · {platform.platform()} · {os.cpu_count()} cores · "
          f"Python {platform.python_version()} · SQLite {sqlite3.sqlite_version} · runs={args.runs}")
    print(f"# {n:,} input records over {DEVICES:,} keys, 3 partitions; batches of {BATCH:,}; every "
          "transaction fsynced; medians ±(max-min)/median; the machine is shared and noisy\n")
    rates: dict[str, list[float]] = {i: [] for i in impls}
    cpu_rates: dict[str, list[float]] = {i: [] for i in impls}
    for _ in range(args.runs):
        for impl in impls:  # interleaved, so noise hits every cell alike
            res = run_cell(impl, n, args.tmp)
            rates[impl].append(res["rate"])
            cpu_rates[impl].append(res["cpu_rate"])
    plain = statistics.median(rates["plain"])
    plain_cpu = statistics.median(cpu_rates["plain"])
    print("| pipeline | records/s (wall) | framework / plain (wall) | records per CPU-second "
          "| framework / plain (CPU) |")
    print("|---|---|---|---|---|")
    labels = {
        "plain": "plain loop: poll, convert, filter, produce + offsets in one transaction",
        "stateless": "edge.streams: map + filter",
        "windowed": "edge.streams: 1-min tumbling windowed mean, 1,000 keys",
    }
    for impl in impls:
        ratio = f"{statistics.median(rates[impl]) / plain:.2f}x"
        cpu_ratio = f"{statistics.median(cpu_rates[impl]) / plain_cpu:.2f}x"
        print(f"| {labels[impl]} | {_fmt(rates[impl])} | {ratio} | {_fmt(cpu_rates[impl])} "
              f"| {cpu_ratio} |")
    overhead = plain / statistics.median(rates["stateless"])
    overhead_cpu = plain_cpu / statistics.median(cpu_rates["stateless"])
    print(f"\nframework overhead (map + filter): {overhead:.2f}x the plain loop's time per record "
          f"(wall clock), {overhead_cpu:.2f}x its CPU time per record")
    print("records per CPU-second is what the process would do with a core to itself; wall-clock "
          "rates here include waiting for the shared cores")


if __name__ == "__main__":
    main()
