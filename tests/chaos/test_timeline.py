"""The soak's timeline: a real process's memory and CPU from /proc, arrivals per window."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos._timeline import ProcessSampler, arrivals_per_window

_HOLD_60MB = ("import time\nblock = bytearray(60 * 2**20)\n"
              "block[::4096] = b'x' * len(block[::4096])\n"   # every page touched: resident
              "end = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"
              "print('ready', flush=True)\ntime.sleep(30)\n")


def test_sampler_follows_the_live_process_and_reads_its_memory_and_cpu() -> None:
    with subprocess.Popen([sys.executable, "-c", _HOLD_60MB], stdout=subprocess.PIPE,
                          text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            sampler = ProcessSampler(lambda: child.pid if child.poll() is None else None,
                                     every_s=0.1, extra=lambda: {"lag_records": 7})
            sampler.start()
            time.sleep(1.0)
        finally:
            child.kill()
            child.wait()
        time.sleep(0.3)
        sampler.stop()
    live = [s for s in sampler.samples if s["pid"] == child.pid]
    gone = [s for s in sampler.samples if s["pid"] is None]
    assert len(live) >= 3 and gone, sampler.samples
    assert all(s["rss_bytes"] > 60 * 2**20 for s in live)   # the block it touched is resident
    assert live[-1]["cpu_s"] >= 0.5                          # it spun 0.6 s of CPU
    assert all(s["lag_records"] == 7 for s in sampler.samples)
    assert all(s["rss_bytes"] is None for s in gone)


def test_sampler_stops_without_having_started() -> None:
    ProcessSampler(lambda: None).stop()


def test_arrivals_counted_per_window_and_system_with_empty_windows(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.jsonl"
    rows = [("p.edge.gps", 10_000), ("p.edge.gps", 10_400), ("p.bridge.gps", 10_100),
            ("p.edge.temp", 21_000), ("p.other", 12_000)]
    path.write_text("".join(json.dumps({"t": t, "a": a}) + "\n" for t, a in rows))
    got = arrivals_per_window(path, {"appliance": ["p.edge.gps", "p.edge.temp"],
                                     "bridge": ["p.bridge.gps"]}, window_ms=5000)
    assert got["appliance"] == [(10_000, 2), (15_000, 0), (20_000, 1)]
    assert got["bridge"] == [(10_000, 1), (15_000, 0), (20_000, 0)]
    assert arrivals_per_window(path, {"none": ["x"]}) == {"none": []}
