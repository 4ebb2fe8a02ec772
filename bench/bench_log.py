"""Benchmark: the local log's durable appends against two peers, in the same run.

    .venv/bin/python bench/bench_log.py [--runs 3] [--quick]

Workload: 200-byte JSON values keyed over 100 devices, every append fsynced
(WAL, synchronous=FULL) on all three sides, so the comparison is fair:

* ``broker``: this project's log (group commit).
* ``naive``: one SQLite transaction (one fsync) per record, WAL, same schema idea.
* ``persist-queue``: persistqueue.SQLiteQueue, a popular SQLite-backed queue
  (auto_commit=True for single sends; auto_commit=False + one commit for batches).

Each cell runs in a fresh subprocess (peak RSS is the child's own, from the OS)
and is repeated ``--runs`` times; the table shows medians and the spread.
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEVICES = 100


def _value(i: int) -> bytes:
    body = {"device": f"dev-{i % DEVICES:03d}", "seq": i, "lat": 52.0 + i * 1e-7, "lon": 4.3,
            "speed_mps": 12.5, "heading": 271.0, "ts": 1_700_000_000_000 + i}
    raw = json.dumps(body).encode()
    return raw + b" " * (200 - len(raw)) if len(raw) < 200 else raw[:200]


VALUES = [_value(i) for i in range(1000)]
KEYS = [f"dev-{i:03d}".encode() for i in range(DEVICES)]


# -- the three writers -------------------------------------------------------------------------------

class BrokerWriter:
    def __init__(self, d: Path) -> None:
        from broker import KafkaAdminClient, KafkaProducer, LogConfig, NewTopic

        # --quota: the disk quota's accounting on every transaction (large enough not to drop).
        quota = int(os.environ.get("BENCH_LOG_QUOTA", "0")) or None
        cfg = LogConfig(data_dir=d, quota_bytes=quota)
        with KafkaAdminClient(log_config=cfg) as admin:
            admin.create_topics([NewTopic("bench", 4, 1)])
        self.p = KafkaProducer(log_config=cfg)
        self.d = d

    def send(self, i: int) -> None:
        self.p.send("bench", VALUES[i % 1000], key=KEYS[i % DEVICES]).get()

    def send_async(self, i: int, done) -> None:
        self.p.send("bench", VALUES[i % 1000], key=KEYS[i % DEVICES]).add_callback(lambda _m: done())

    def batch(self, n: int) -> None:
        for i in range(n):
            self.p.send("bench", VALUES[i % 1000], key=KEYS[i % DEVICES])
        self.p.flush()

    def close(self) -> None:
        self.p.close()

    def files(self) -> list[Path]:
        return [self.d / "log.db", self.d / "log.db-wal"]


class NaiveWriter:
    """What one writes first: a transaction (and an fsync) per record."""

    def __init__(self, d: Path) -> None:
        self.path = d / "naive.db"
        self.local = threading.local()
        c = self._conn()
        c.execute("CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY, key BLOB, value BLOB, ts INTEGER)")

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self.local, "c", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            self.local.c = c
        return c

    def send(self, i: int) -> None:
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO records(key, value, ts) VALUES (?,?,?)",
                  (KEYS[i % DEVICES], VALUES[i % 1000], time.time_ns() // 1_000_000))
        c.execute("COMMIT")

    def batch(self, n: int) -> None:
        for i in range(n):
            self.send(i)

    def close(self) -> None:
        pass

    def files(self) -> list[Path]:
        return [self.path, Path(f"{self.path}-wal")]


class PersistQueueWriter:
    def __init__(self, d: Path, auto_commit: bool = True) -> None:
        import persistqueue

        self.d = d / "pq"
        self.q = persistqueue.SQLiteQueue(str(self.d), auto_commit=auto_commit, multithreading=True)

    def send(self, i: int) -> None:
        self.q.put((KEYS[i % DEVICES], VALUES[i % 1000]))

    def batch(self, n: int) -> None:
        for i in range(n):
            self.q.put((KEYS[i % DEVICES], VALUES[i % 1000]))
        self.q.task_done()  # commits the batch when auto_commit=False

    def close(self) -> None:
        pass

    def files(self) -> list[Path]:
        return list(self.d.glob("*"))


WRITERS = {"broker": BrokerWriter, "naive": NaiveWriter, "persist-queue": PersistQueueWriter}


# -- workloads (run inside a child process) ------------------------------------------------------------

def _disk_bytes(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files if f.exists())


def work_concurrent(impl: str, d: Path, n: int, threads: int = 32) -> dict:
    w = WRITERS[impl](d)
    per = n // threads

    def run(t: int) -> None:
        for i in range(t * per, (t + 1) * per):
            w.send(i)

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    w.close()
    return {"rate": per * threads / dt}


def work_batched(impl: str, d: Path, n: int) -> dict:
    w = WRITERS[impl](d) if impl != "persist-queue" else PersistQueueWriter(d, auto_commit=False)
    t0 = time.perf_counter()
    w.batch(n)
    dt = time.perf_counter() - t0
    w.close()
    if impl == "broker":
        c = sqlite3.connect(d / "log.db")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
    return {"rate": n / dt, "bytes_per_record": _disk_bytes(w.files()) / n}


def work_latency(impl: str, d: Path, rate: int, seconds: float) -> dict:
    """Steady ``rate`` records/s; latency from send to durable."""
    w = WRITERS[impl](d)
    lat: list[float] = []
    lock = threading.Lock()
    if impl == "broker":
        def submit(i: int, t_send: float) -> None:
            def done() -> None:
                with lock:
                    lat.append(time.perf_counter() - t_send)
            w.send_async(i, done)
    else:
        import queue

        q: queue.Queue = queue.Queue()

        def writer() -> None:
            while True:
                item = q.get()
                if item is None:
                    return
                i, t_send = item
                w.send(i)
                lat.append(time.perf_counter() - t_send)

        wt = threading.Thread(target=writer)
        wt.start()

        def submit(i: int, t_send: float) -> None:
            q.put((i, t_send))

    total = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(total):
        due = t0 + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        submit(i, time.perf_counter())
    if impl == "broker":
        w.p.flush()
    else:
        deadline = time.perf_counter() + 30
        while len(lat) < total and time.perf_counter() < deadline:
            time.sleep(0.05)
        q.put(None)
    w.close()
    lat.sort()
    done = len(lat)
    return {"p50_ms": lat[done // 2] * 1000 if lat else None,
            "p99_ms": lat[int(done * 0.99)] * 1000 if lat else None,
            "completed": done / total}


def work_consume(impl: str, d: Path, n: int) -> dict:
    if impl == "broker":
        w = BrokerWriter(d)
        w.batch(n)
        w.close()
        from broker import KafkaConsumer

        c = KafkaConsumer("bench", data_dir=d, auto_offset_reset="earliest", max_poll_records=5000)
        t0 = time.perf_counter()
        got = 0
        while got < n:
            got += sum(len(v) for v in c.poll(timeout_ms=1000).values())
        dt = time.perf_counter() - t0
        c.close()
    else:  # persist-queue: get() and ack each item, its normal consume path
        w = PersistQueueWriter(d, auto_commit=False)
        w.batch(n)
        t0 = time.perf_counter()
        for _ in range(n):
            w.q.get()
        w.q.task_done()
        dt = time.perf_counter() - t0
    return {"rate": n / dt}


def _peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork+exec,
    # so a 10 MB child of a 300 MB driver reported 308 MB.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.tmp) as td:
        d = Path(td)
        if args.work == "concurrent":
            out = work_concurrent(args.impl, d, args.n)
        elif args.work == "batched":
            out = work_batched(args.impl, d, args.n)
        elif args.work == "latency":
            out = work_latency(args.impl, d, 5000, args.seconds)
        else:
            out = work_consume(args.impl, d, args.n)
    out["rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


# -- the driver ---------------------------------------------------------------------------------------

def run_cell(impl: str, work: str, n: int, seconds: float, tmp: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--impl", impl, "--work", work, "--n", str(n),
           "--seconds", str(seconds), "--tmp", tmp]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(values: list[float], unit: str = "") -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    spread = (max(vals) - min(vals)) / med * 100 if med else 0
    big = f"{med:,.0f}" if med >= 100 else f"{med:.2f}"
    return f"{big}{unit} ±{spread:.0f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    ap.add_argument("--tmp", default=os.environ.get("BENCH_TMP", tempfile.gettempdir()),
                    help="where the databases go (env BENCH_TMP); a real disk, not tmpfs, for fair fsyncs")
    ap.add_argument("--quota", type=int, default=int(os.environ.get("BENCH_LOG_QUOTA", "0")),
                    help="give the broker's log a disk quota of this many bytes (env BENCH_LOG_QUOTA; 0: none)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=3.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    os.environ["BENCH_LOG_QUOTA"] = str(args.quota)  # the children read it

    scale = 0.2 if args.quick else 1.0
    n_batch = int(200_000 * scale)
    plan = [
        # (label, work, {impl: n})
        ("durable append, batched (records/s)", "batched",
         {"broker": n_batch, "naive": int(3000 * scale), "persist-queue": n_batch}),
        ("durable append, 32 concurrent single sends (records/s)", "concurrent",
         {"broker": int(32_000 * scale), "naive": int(1600 * scale), "persist-queue": int(1600 * scale)}),
        ("send-to-durable latency at 5,000 records/s", "latency",
         {"broker": 0, "naive": 0, "persist-queue": 0}),
        ("consume (records/s)", "consume", {"broker": n_batch, "persist-queue": n_batch}),
    ]
    print(f"# bench_log: {platform.node()} · {platform.platform()} · {os.cpu_count()} cores · "
          f"Python {platform.python_version()} · SQLite {sqlite3.sqlite_version} · runs={args.runs}")
    print(f"# databases in {args.tmp}; every append fsynced (WAL, synchronous=FULL); medians ±(max-min)/median\n")
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.runs):
        for _label, work, impls in plan:
            for impl, n in impls.items():
                res = run_cell(impl, work, n, 3.0 * scale if scale < 1 else 5.0, args.tmp)
                results.setdefault((work, impl), []).append(res)

    impls = ["broker", "naive", "persist-queue"]
    print(f"| measure | {' | '.join(impls)} | broker / naive | broker / persist-queue |")
    print("|---|---|---|---|---|---|")

    def row(label: str, work: str, key: str, unit: str = "", higher_better: bool = True) -> None:
        cells, meds = [], {}
        for impl in impls:
            rs = results.get((work, impl))
            if not rs:
                cells.append("—")
                continue
            vals = [r.get(key) for r in rs]
            cells.append(_fmt(vals, unit))
            good = [v for v in vals if v is not None]
            meds[impl] = statistics.median(good) if good else None

        def ratio(other: str) -> str:
            a, b = meds.get("broker"), meds.get(other)
            if not a or not b:
                return "—"
            return f"{a / b:.1f}x" if higher_better else f"{b / a:.1f}x better"

        print(f"| {label} | {' | '.join(cells)} | {ratio('naive')} | {ratio('persist-queue')} |")

    row("durable append, batched (records/s)", "batched", "rate")
    batched = [r["rate"] for r in results[("batched", "broker")]]
    print(f"| durable append, batched (MB/s of values) | {_fmt([b * 200 / 1e6 for b in batched])} | | | | |")
    row("durable append, 32 threads of single sends (records/s)", "concurrent", "rate")
    row("latency p50 at 5,000 records/s (ms)", "latency", "p50_ms", higher_better=False)
    row("latency p99 at 5,000 records/s (ms)", "latency", "p99_ms", higher_better=False)
    row("share of the 5,000/s load completed in time", "latency", "completed")
    row("consume (records/s)", "consume", "rate")
    row("bytes on disk per record (200 B value)", "batched", "bytes_per_record", higher_better=False)
    row("peak RSS, batched run (MB)", "batched", "rss_mb", higher_better=False)


if __name__ == "__main__":
    main()
