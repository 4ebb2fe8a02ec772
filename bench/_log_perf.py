"""The local log's answer to Kafka's ``kafka-producer-perf-test``, run as its own process.

    .venv/bin/python bench/_log_perf.py --dir D --records N --record-size B --rate R --seconds S

Does what ProducerPerformance does, against the edge log instead of a broker: one
payload of B random capital letters (as the tool makes it), no key, one partition,
each send timed until its acknowledgement, which here means fsynced (acks=all there):

* ``max``:  N records offered as fast as the producer takes them (``--throughput -1``);
* ``rate``: R records/s for S seconds (``--throughput R``).

Prints one JSON line: per phase records/s, latency avg/p50/p99/max in ms and CPU
seconds; the parent reads this process's peak RSS from the kernel when it exits.

``--phases`` also times, in the fixed-rate phase, each commit's phases (the writer's
whole commit, its write transaction, whose COMMIT holds the fsync, and the WAL
checkpoints, in the checkpointer thread and the writer's finishing one) and prints their percentiles and
the slowest to stderr: where a latency tail comes from (docs/log.md#latency).
"""

from __future__ import annotations

import argparse
import array
import json
import random
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker import KafkaAdminClient, KafkaProducer, NewTopic

TOPIC = "perf"


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _peak_rss_mb() -> float:
    """VmHWM of this process (not ru_maxrss, which includes the parent's peak at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def payload(size: int, seed: int = 0) -> bytes:
    """ProducerPerformance's payload: ``size`` random capital letters, made once."""
    rnd = random.Random(seed)
    return bytes(rnd.randrange(26) + 65 for _ in range(size))


def summarise(latencies_s: Sequence[float], records: int, elapsed_s: float, cpu_s: float) -> dict:
    """The figures ProducerPerformance prints at its end, plus CPU seconds."""
    lat = sorted(x * 1000 for x in latencies_s)
    if not lat:
        raise RuntimeError("no record was acknowledged")

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))]

    return {"records": records, "acked": len(lat), "records_per_s": records / elapsed_s,
            "avg_ms": sum(lat) / len(lat), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": lat[-1], "cpu_s": cpu_s, "elapsed_s": elapsed_s}


def send_timed(producer: KafkaProducer, value: bytes, count: int, rate: float | None) -> dict:
    """Send count records (at rate records/s, or unthrottled when None); time each to its ack."""
    # An array, not a list of floats: 8 bytes a record instead of 32, since this process's
    # peak RSS is compared with the broker's, which does not hold the client's latencies.
    latencies = array.array("d")
    lock = threading.Lock()

    def acked(t_send: float, _md: object) -> None:
        now = time.perf_counter()
        with lock:
            latencies.append(now - t_send)

    cpu0 = _cpu()
    t0 = time.perf_counter()
    for i in range(count):
        if rate is not None:
            # Like the tool's throttler: sleep whenever ahead of schedule.
            ahead = t0 + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        producer.send(TOPIC, value).add_callback(acked, time.perf_counter())
    producer.flush(timeout=600)
    elapsed = time.perf_counter() - t0
    return summarise(latencies, count, elapsed, _cpu() - cpu0)


class _Phases:
    """Timestamps around the log's commit phases, by wrapping its methods (a measurement,
    not the product: it adds a few microseconds a commit)."""

    def __init__(self) -> None:
        import broker._checkpoint as ckpt
        import broker._log as log

        self.t0 = time.perf_counter()
        self.events: list[tuple[str, float, float, int]] = []

        def timed(owner: object, name: str, label: str, size: Callable[..., int]) -> None:
            inner = getattr(owner, name)

            def wrapper(*a: object, **kw: object) -> object:
                t = time.perf_counter()
                try:
                    return inner(*a, **kw)
                finally:
                    self.events.append((label, t, time.perf_counter(), size(*a)))
            setattr(owner, name, wrapper)

        timed(log.Log, "_commit", "commit (whole)", lambda _self, batch, *_: len(batch))
        timed(log.Log, "_write_tx", "write transaction", lambda _self, batch: len(batch))
        timed(ckpt.Checkpointer, "finish", "checkpoint finished by the writer", lambda *_: 0)
        timed(ckpt.Checkpointer, "_checkpoint", "checkpoint (its thread)", lambda *_: 0)

    def report(self) -> None:
        by: dict[str, list[float]] = {}
        for label, a, b, _n in self.events:
            by.setdefault(label, []).append((b - a) * 1000)
        print(f"{'phase':36} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}", file=sys.stderr)
        for label, ms in by.items():
            ms.sort()
            print(f"{label:36} {len(ms):6} {ms[len(ms) // 2]:8.2f} {ms[int(len(ms) * 0.99)]:8.2f} "
                  f"{ms[-1]:8.2f}", file=sys.stderr)
        slow = sorted(self.events, key=lambda e: e[1] - e[2])[:10]
        print("slowest (phase, ms into the phase, ms, records):", file=sys.stderr)
        for label, a, b, n in sorted(slow, key=lambda e: e[1]):
            print(f"  {label:36} {(a - self.t0) * 1000:8.0f} {(b - a) * 1000:8.1f} {n:6}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, type=Path, help="an empty directory for the log")
    ap.add_argument("--records", type=int, required=True, help="records in the max-rate phase")
    ap.add_argument("--record-size", type=int, default=200, help="bytes per value")
    ap.add_argument("--rate", type=int, default=5000, help="records/s of the fixed-rate phase")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the fixed-rate phase")
    ap.add_argument("--phases", action="store_true",
                    help="time each commit's phases in the fixed-rate phase (stderr)")
    args = ap.parse_args(argv)
    value = payload(args.record_size)
    with KafkaAdminClient(data_dir=args.dir) as admin:
        admin.create_topics([NewTopic(TOPIC, 1, 1)])
    out: dict[str, dict] = {}
    with KafkaProducer(data_dir=args.dir) as producer:
        out["max"] = send_timed(producer, value, args.records, None)
        if args.seconds > 0:
            phases = _Phases() if args.phases else None
            out["rate"] = send_timed(producer, value, int(args.rate * args.seconds), args.rate)
            if phases is not None:
                phases.report()
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
