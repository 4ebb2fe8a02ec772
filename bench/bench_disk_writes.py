"""Benchmark: bytes written to disk per event (SD-card wear), the edge log beside a 1-broker Kafka.

    .venv/bin/python bench/bench_disk_writes.py [--rates 5,50] [--seconds 30] [--runs 1]
                                                [--no-kafka] [--breakdown]

Workload, the same on both sides: ~200-byte JSON values with edge-style headers,
keyed over 5 devices (at 5 events/s) or 10 (at 50 events/s), sent one at a time at
a steady rate, every send acknowledged only once durable (the edge log: fsync
before the future resolves; Kafka: acks=all). One topic, one partition. The edge
log's sends are serial readings, as ``edge run`` sends them (``awaited=False``: no
publisher waits on their acknowledgement); ``--option awaited=true`` sends them as
MQTT QoS 1 deliveries, whose commits start once 16 wait.

* ``edge log``: ``broker.KafkaProducer`` in a child process on the real disk, with
  the appliance's ``[log]`` defaults (what ``edge run`` opens: ``commit_interval_ms`` too,
  which the library's ``LogConfig`` leaves at 0); ``write_bytes`` of that
  process from /proc/self/io, over the measured window only (after a warm-up).
* ``kafka``: the broker JVM's ``write_bytes`` (/proc/PID/io) over the same window,
  default flush settings (the OS flushes; durability from replicas, of which
  a 1-broker cluster has none) and ``log.flush.interval.messages=1`` (an fsync per
  append, what the edge log promises).

``write_bytes`` counts 4 KiB pages as they are dirtied: what will reach the card,
short of the flash translation layer's own amplification. ``--breakdown`` runs the
edge log once more under ``strace`` and splits its writes by file (WAL frames per
commit, database pages written by checkpoints, the notify file, fsyncs), with
the 4 KiB pages each file dirties between its fsyncs modelled from the calls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

WARMUP = 20
PAGE = 4096
TOPIC = "readings"


def _value(i: int, devices: int) -> bytes:
    body = {"device": f"dev-{i % devices:03d}", "seq": i, "lat": 52.0 + i * 1e-7, "lon": 4.3,
            "speed_mps": 12.5, "heading": 271.0, "ts": 1_700_000_000_000 + i}
    raw = json.dumps(body).encode()
    return raw + b" " * (200 - len(raw)) if len(raw) < 200 else raw[:200]


def _headers(i: int) -> list[tuple[str, bytes]]:
    return [("source", b"serial:/dev/ttyUSB0"), ("device_kind", b"gps"), ("schema", b"gps/1"),
            ("edge_id", b"car-17"), ("ingest_ms", str(1_700_000_000_000 + i).encode()),
            ("clock", b"device")]


def _devices(rate: float) -> int:
    return 5 if rate <= 5 else 10


def _write_bytes(pid: int | str = "self") -> int:
    text = Path(f"/proc/{pid}/io").read_text()
    return int(re.search(r"^write_bytes: (\d+)", text, re.M).group(1))


def _paced(rate: float, count: int, send: Any) -> None:
    """Call send(i) ``count`` times, ``rate`` per second, on a schedule that does not drift."""
    step = 1.0 / rate
    t = time.monotonic()
    for i in range(count):
        t += step
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(i)


# -- the edge log, in a child process ---------------------------------------------------------------

def _precreate(data_dir: Path, page_size: int) -> None:
    """An empty database file with ``page_size``, which the log then fills with its schema:
    what a new log would write with that page size (an experiment; the log uses SQLite's 4096)."""
    import sqlite3

    data_dir.mkdir(mode=0o700, parents=True)
    conn = sqlite3.connect(data_dir / "log.db")
    conn.execute(f"PRAGMA page_size={int(page_size)}")
    conn.execute("VACUUM")  # writes the header, so the size sticks
    conn.close()


def child_edge(data_dir: str, rate: float, seconds: float, options: dict[str, Any]) -> dict[str, Any]:
    from broker import KafkaAdminClient, KafkaProducer, LogConfig, NewTopic
    from edge._config import LogSettings

    # The appliance's default, not the library's 0: what a box writes is the question.
    options = {"commit_interval_ms": LogSettings().commit_interval_ms, **options}
    page_size = options.pop("page_size", None)
    awaited = bool(options.pop("awaited", False))
    if page_size:
        _precreate(Path(data_dir), page_size)
    cfg = LogConfig(data_dir=Path(data_dir), **options)
    with KafkaAdminClient(log_config=cfg) as admin:
        admin.create_topics([NewTopic(TOPIC, 1, 1)])
    devices = _devices(rate)
    keys = [f"dev-{i:03d}".encode() for i in range(devices)]
    producer = KafkaProducer(log_config=cfg)
    futures = []

    def send(i: int) -> None:
        futures.append(producer.send(TOPIC, _value(i, devices), key=keys[i % devices],
                                     headers=_headers(i), awaited=awaited))

    _paced(rate, WARMUP, send)
    producer.flush()
    stats0, before, futures[:] = dict(producer.metrics()), _write_bytes(), []
    count = int(rate * seconds)
    t0 = time.monotonic()
    _paced(rate, count, send)
    producer.flush()
    for f in futures:
        f.get(timeout=30)  # every one acknowledged, so durable
    elapsed = time.monotonic() - t0
    written = _write_bytes() - before
    stats = producer.metrics()
    stored = sum(len(_value(i, devices)) + len(keys[i % devices]) +
                 len(json.dumps([[k, v.decode()] for k, v in _headers(i)], separators=(",", ":")))
                 for i in range(count))
    producer.close()
    return {"events": count, "write_bytes": written, "seconds": elapsed,
            "commits": stats["commits"] - stats0["commits"], "stored_bytes": stored}


def run_edge(rate: float, seconds: float, options: dict[str, Any], *,
             strace_out: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DISK_DIR", "/var/tmp"),
                                     prefix="bench-disk-") as d:
        argv = [sys.executable, __file__, "--child", json.dumps(
            {"data_dir": str(Path(d) / "log"), "rate": rate, "seconds": seconds, "options": options})]
        if strace_out is not None:
            argv = ["strace", "-f", "-qq", "-y", "-e", "trace=pwrite64,write,pwritev,fsync,fdatasync,ftruncate",
                    "-o", str(strace_out), *argv]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 4 + 120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        if run.returncode != 0:
            raise RuntimeError(f"edge log child failed ({run.returncode}):\n{run.stderr[-3000:]}")
        return json.loads(run.stdout.strip().splitlines()[-1])


# -- Kafka, one broker --------------------------------------------------------------------------------

def run_kafka(cluster: Any, rate: float, seconds: float, topic: str) -> dict[str, Any]:
    from _kafka_perf import create_topic
    from kafka import KafkaProducer as KP

    create_topic(cluster.bootstrap_servers, topic, 1)
    devices = _devices(rate)
    keys = [f"dev-{i:03d}".encode() for i in range(devices)]
    producer = KP(bootstrap_servers=cluster.bootstrap_servers, acks="all", linger_ms=0)
    futures = []

    def send(i: int) -> None:
        futures.append(producer.send(topic, _value(i, devices), key=keys[i % devices], headers=_headers(i)))

    try:
        _paced(rate, WARMUP, send)
        producer.flush()
        pid = cluster.brokers[0].pid
        before, futures[:] = _write_bytes(pid), []
        count = int(rate * seconds)
        _paced(rate, count, send)
        producer.flush()
        for f in futures:
            f.get(timeout=30)
        return {"events": count, "write_bytes": _write_bytes(pid) - before}
    finally:
        producer.close()


# -- the breakdown under strace -----------------------------------------------------------------------

_CALL = re.compile(r"^\d+\s+(\w+)\((\d+)<([^>]*)>(?:, (.*))?\)\s+= (-?\d+)")


def breakdown(trace: Path, commits: int, events: int) -> list[tuple[str, float, float, float]]:
    """Per file: (name, write calls per commit, bytes written per event, 4 KiB pages dirtied per
    event as modelled: a page counts when first written after its file's last fsync)."""
    calls: dict[str, int] = defaultdict(int)
    nbytes: dict[str, int] = defaultdict(int)
    pages: dict[str, int] = defaultdict(int)
    syncs: dict[str, int] = defaultdict(int)
    frames = 0
    dirty: dict[str, set[int]] = defaultdict(set)
    for line in trace.read_text(errors="replace").splitlines():
        m = _CALL.match(line)
        if not m:
            continue
        name, path, args, ret = m[1], m[3], m[4] or "", int(m[5])
        f = Path(path).name
        if not f.startswith("log."):
            continue
        if name in ("fsync", "fdatasync"):
            syncs[f] += 1
            dirty[f].clear()
            continue
        if name not in ("pwrite64", "write", "pwritev") or ret <= 0:
            continue
        off_m = re.search(r", (\d+)$", args)
        off = int(off_m[1]) if off_m and name != "write" else 0
        calls[f] += 1
        nbytes[f] += ret
        if f.endswith("-wal") and ret == 24:
            frames += 1
        for pg in range(off // PAGE, (off + ret - 1) // PAGE + 1):
            if pg not in dirty[f]:
                dirty[f].add(pg)
                pages[f] += 1
    rows = []
    for f in sorted(set(calls) | set(syncs)):
        rows.append((f, calls[f] / commits, nbytes[f] / events, pages[f] * PAGE / events))
        rows.append((f"  fsyncs of {f}", syncs[f] / commits, 0.0, 0.0))
    rows.append(("WAL frames", frames / commits, 0.0, 0.0))
    return rows


# -- the table ----------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="5,50", help="events per second, comma-separated")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per cell")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-kafka", action="store_true", help="the edge log only (no peer: no ratio)")
    ap.add_argument("--breakdown", action="store_true", help="the edge log's writes by file, under strace")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=JSON",
                    help="a LogConfig option for the edge log, e.g. commit_interval_ms=0; "
                         "page_size=N makes a new log with that page size (an experiment)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child_edge(spec["data_dir"], spec["rate"], spec["seconds"], spec["options"])))
        return
    from _table import Row, Table

    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    rates = [float(r) for r in args.rates.split(",")]
    peers = [] if args.no_kafka else ["kafka", "kafka flush=1"]
    rows = {r: Row(f"bytes written per event at {r:g} events/s", higher_is_better=False) for r in rates}
    info: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for _ in range(args.runs):
        for r in rates:
            res = run_edge(r, args.seconds, options)
            info[r].append(res)
            rows[r].values.setdefault("edge log", []).append(res["write_bytes"] / res["events"])
        for peer in peers:
            from _kafka_perf import new_cluster

            with new_cluster(fsync=peer.endswith("flush=1")) as cluster:
                for r in rates:
                    res = run_kafka(cluster, r, args.seconds, f"disk-{int(r)}-{time.monotonic_ns()}")
                    rows[r].values.setdefault(peer, []).append(res["write_bytes"] / res["events"])
    table = Table(key="disk_writes", title="Bytes written to disk per event (write_bytes)",
                  columns=["edge log", *peers], rows=[rows[r] for r in rates])
    shown = options or "edge run's [log] defaults"
    print(f"options: {shown}; {args.seconds:g} s per cell, {args.runs} run(s)")
    print(table.markdown())
    for r in rates:
        res = info[r][-1]
        print(f"{r:g} events/s: {res['commits'] / res['events']:.2f} commits per event, "
              f"{res['stored_bytes'] / res['events']:.0f} bytes stored per event (key, value, headers)")
    if args.breakdown:
        for r in rates:
            with tempfile.NamedTemporaryFile(prefix="bench-disk-strace-", suffix=".txt") as tf:
                res = run_edge(r, args.seconds, options, strace_out=Path(tf.name))
                print(f"\nedge log at {r:g} events/s under strace: {res['write_bytes'] / res['events']:,.0f} "
                      f"bytes written per event, {res['commits']} commits for {res['events']} events")
                print("| file | calls per commit | bytes per event (syscalls) | bytes per event (4 KiB pages dirtied) |")
                print("| --- | ---: | ---: | ---: |")
                for name, per_commit, b, p in breakdown(Path(tf.name), max(res["commits"], 1), res["events"]):
                    print(f"| {name} | {per_commit:.2f} | {b:,.0f} | {p:,.0f} |")


if __name__ == "__main__":
    main()
