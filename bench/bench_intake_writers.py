"""Benchmark: one log, written by one process or by two at once (issue #12, intake over the cores).

    .venv/bin/python bench/bench_intake_writers.py                  # 3 runs, 100,000 records, 10,000/s for 5 s
    .venv/bin/python bench/bench_intake_writers.py --runs 1 --records 20000 --seconds 2   # a look

Spreading ``edge run``'s device intake over several processes only helps if the log lets
them write at once. It takes several writer processes (SQLite WAL), but one writes at a
time: each commit holds the write lock through its fsync, so two processes could end up
taking turns, each batching less, for no gain. This measures that with the log's own
producer (bench/_log_perf.py's ``send_timed``: 200-byte records, each timed to its
durable acknowledgement, fsync durability), the same total load from:

* ``1 writer``: one process sends everything (what ``edge run`` does today);
* ``2 writers``: two processes on the same data directory each send half, started together.

Two phases per run, both over the same fresh log of 3 partitions (each writer its own
partition, as devices are keys of their own):

* ``max``: ``--records`` offered as fast as the producers take them: records/s of the
  whole (all records over the slowest writer's time);
* ``rate``: ``--rate`` records/s in total for ``--seconds``: CPU seconds per 1,000
  records of all writers together, and the acknowledgement p99 (the worst writer's).

Afterwards the log holds every record, offsets continuous per partition (checked).
Sides are interleaved within a run; cells are medians over runs; the ratio is
2 writers ÷ 1 writer, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _p in (str(ROOT), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

TOPIC = "intake"
PARTITIONS = 3


def worker(spec: dict[str, Any]) -> None:
    """One writer process: waits for a line on stdin, runs both phases, prints one JSON line."""
    from _log_perf import payload, send_timed

    from broker import KafkaProducer

    value = payload(200, seed=spec["partition"])

    class OnePartition:
        """send_timed's producer, each record to this writer's partition."""

        def __init__(self, producer: KafkaProducer) -> None:
            self.producer = producer

        def send(self, topic: str, value: bytes) -> Any:
            return self.producer.send(TOPIC, value, partition=spec["partition"])  # not _log_perf's topic

        def flush(self, timeout: float) -> None:
            self.producer.flush(timeout=timeout)

    with KafkaProducer(data_dir=Path(spec["dir"])) as producer:
        producer.send(TOPIC, value, partition=spec["partition"]).get(timeout=60)  # opened, warm
        print("ready", flush=True)
        sys.stdin.readline()
        one: Any = OnePartition(producer)
        out = {"max": send_timed(one, value, spec["records"], None),
               "rate": send_timed(one, value, spec["rate_records"], spec["rate"])}
    print(json.dumps(out), flush=True)


def _check_log(data_dir: Path, expected: int) -> None:
    """Every record is there, offsets 0..n-1 in each partition, none missing."""
    with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'log.db'}?mode=ro", uri=True)) as c:
        rows = c.execute("SELECT partition, count(*), min(offset), max(offset) FROM records "
                         "WHERE topic = ? GROUP BY partition", (TOPIC,)).fetchall()
    total = sum(n for _, n, _, _ in rows)
    gaps = [(p, n, lo, hi) for p, n, lo, hi in rows if lo != 0 or hi != n - 1]
    if total != expected or gaps:
        raise RuntimeError(f"the log holds {total} records of {expected}; partitions with a gap: {gaps}")


def run_once(writers: int, records: int, rate: float, seconds: float) -> dict[str, Any]:
    """One side: ``writers`` processes sharing the load on a fresh log."""
    from broker import KafkaAdminClient, NewTopic

    with tempfile.TemporaryDirectory(prefix="bench-writers-") as tmp:
        data = Path(tmp)
        with KafkaAdminClient(data_dir=data) as admin:
            admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        procs = []
        try:
            for i in range(writers):
                spec = {"dir": str(data), "partition": i, "records": records // writers,
                        "rate": rate / writers, "rate_records": int(rate * seconds) // writers}
                procs.append(subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            for p in procs:
                assert p.stdout is not None
                if p.stdout.readline().strip() != "ready":
                    raise RuntimeError("a writer did not start")
            for p in procs:  # both go within a millisecond of each other
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            outs = []
            for p in procs:
                assert p.stdout is not None
                outs.append(json.loads(p.stdout.readline()))
                if p.wait(60) != 0:
                    raise RuntimeError(f"a writer exited with {p.returncode}")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        sent = sum(o["max"]["records"] + o["rate"]["records"] for o in outs) + writers
        _check_log(data, sent)
    max_records = sum(o["max"]["records"] for o in outs)
    rate_records = sum(o["rate"]["records"] for o in outs)
    return {
        "writers": writers, "load_avg_1m": os.getloadavg()[0],
        "max_records_per_s": max_records / max(o["max"]["elapsed_s"] for o in outs),
        "max_cpu_per_1k": 1000 * sum(o["max"]["cpu_s"] for o in outs) / max_records,
        "rate_records_per_s": rate_records / max(o["rate"]["elapsed_s"] for o in outs),
        "rate_cpu_per_1k": 1000 * sum(o["rate"]["cpu_s"] for o in outs) / rate_records,
        "rate_p99_ms": max(o["rate"]["p99_ms"] for o in outs),
        "rate_p50_ms": max(o["rate"]["p50_ms"] for o in outs),
    }


MEASURES = (  # (key, label, format)
    ("max_records_per_s", "unthrottled: records/s into the log ↑", ",.0f"),
    ("max_cpu_per_1k", "unthrottled: CPU s per 1,000 records, all writers ↓", ".3f"),
    ("rate_records_per_s", "at the fixed rate: records/s into the log", ",.0f"),
    ("rate_cpu_per_1k", "at the fixed rate: CPU s per 1,000 records, all writers ↓", ".3f"),
    ("rate_p50_ms", "at the fixed rate: ack p50 ms (worst writer) ↓", ".2f"),
    ("rate_p99_ms", "at the fixed rate: ack p99 ms (worst writer) ↓", ".2f"),
)


def table(rows: list[dict[str, Any]]) -> str:
    def cell(vals: list[float], fmt: str) -> str:
        med = statistics.median(vals)
        return format(med, fmt) if len(vals) == 1 else \
            f"{format(med, fmt)} [{format(min(vals), fmt)}–{format(max(vals), fmt)}]"

    out = ["| measure | 2 writers | 1 writer | 2 ÷ 1 |", "|---|---:|---:|---:|"]
    for key, label, fmt in MEASURES:
        two = [r[key] for r in rows if r["writers"] == 2]
        one = [r[key] for r in rows if r["writers"] == 1]
        ratio = statistics.median(two) / statistics.median(one)
        out.append(f"| {label} | {cell(two, fmt)} | {cell(one, fmt)} | {ratio:.2f}x |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each side (default 3)")
    ap.add_argument("--records", type=int, default=100_000, help="records of the unthrottled phase")
    ap.add_argument("--rate", type=float, default=10_000, help="total records/s of the fixed-rate phase")
    ap.add_argument("--seconds", type=float, default=5, help="length of the fixed-rate phase")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    rows = []
    for i in range(args.runs):
        for writers in ((1, 2) if i % 2 == 0 else (2, 1)):
            r = run_once(writers, args.records, args.rate, args.seconds)
            r["run"] = i + 1
            rows.append(r)
            print(f"# run {i + 1}, {writers} writer(s): {r['max_records_per_s']:,.0f} records/s "
                  f"unthrottled, p99 {r['rate_p99_ms']:.1f} ms at {args.rate:,.0f}/s "
                  f"(load {r['load_avg_1m']:.1f})", file=sys.stderr)
    import bench_appliance as ba

    print(ba.machine_header().replace("bench_appliance", "bench_intake_writers"))
    print(f"# 200-byte records, fsync, {PARTITIONS} partitions (one per writer); unthrottled "
          f"{args.records:,} records; fixed {args.rate:,.0f}/s for {args.seconds:g} s; runs={args.runs}; "
          "median [min–max]; 2 shared cores, other work running")
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
