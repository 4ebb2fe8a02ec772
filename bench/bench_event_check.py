"""What the event check costs: CPU per event of decode and the service's sink, A/B.

    .venv/bin/python bench/bench_event_check.py                        # this tree
    .venv/bin/python bench/bench_event_check.py --baseline /tmp/before # and another tree, interleaved

Per MQTT convention (OwnTracks, Tasmota, bp.json): the convention's decode of N payloads,
then ``EventWriter``'s sink for their readings (the range check, the time window, the
encodings, headers, dedupe bookkeeping) with a producer that only takes the record, so
the log's writer thread is not measured. CPU of the calling thread (``thread_time``), the
best of ``--repeat`` passes, in µs per event. With ``--baseline SRC`` the same runs with
``PYTHONPATH=SRC`` in a child, rounds interleaved, and the ratio is printed. On a busy
machine the figures move by 10% run to run; ``valgrind --tool=callgrind`` on ``--child``
with two values of ``--events`` gives instruction counts that do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cases(now_s: int) -> dict[str, tuple[str, str, Any, str]]:
    return {
        "owntracks": ("owntracks/u/p", "gps", lambda i: {
            "_type": "location", "lat": 52.5, "lon": 13.4, "alt": 34, "acc": 5, "vel": 12,
            "cog": 90, "batt": 80, "tid": "ab", "tst": now_s - 100 + i % 100}, "owntracks"),
        "tasmota": ("tele/room/SENSOR", "temperature", lambda i: {
            "Time": "2024-01-01T00:00:00", "DS18B20": {"Id": "28-0000000001",
                                                       "Temperature": 20 + i % 50 / 10},
            "TempUnit": "C"}, "tasmota"),
        "bp.json": ("bp/cuff", "blood_pressure", lambda i: {
            "systolic": 120 + i % 20, "diastolic": 80, "map": 93, "pulse": 70,
            "time": now_s * 1000 - i}, "bp.json"),
    }


def child(events: int, repeat: int) -> dict[str, dict[str, float]]:
    """Measure this interpreter's tree (the one on its sys.path); µs per event."""
    import edge
    from devices import CONVENTIONS
    from edge import config_from_dict
    from edge._metrics import Metrics

    if (Path(edge.__file__).parent / "_runner.py").exists():
        from edge._runner import DeviceRunner
        from edge._writer import EventWriter
    else:  # --baseline: a tree before edge/_service.py was split into rooms
        from edge._service import DeviceRunner, EventWriter  # type: ignore[attr-defined,no-redef]

    class _Record:
        def add_both(self, *args: Any) -> None: ...

    class _Producer:  # takes the record: the log's thread is another benchmark's
        def send(self, *args: Any) -> _Record:
            return _Record()

    class _Completions:
        def wait_for(self, *args: Any) -> None: ...

    async def run() -> dict[str, dict[str, float]]:
        out = {}
        data_dir = tempfile.mkdtemp(prefix="bench-event-check-")
        for name, (topic, kind, make, codec) in _cases(int(time.time())).items():
            cfg = config_from_dict({"edge_id": "e", "data_dir": data_dir, "devices": [
                {"name": "d", "kind": kind, "transport": "mqtt", "host": "x", "codec": codec}]})
            writer = EventWriter(_Producer(), cfg, Metrics())  # type: ignore[arg-type]
            writer._completions = _Completions()  # type: ignore[assignment]
            try:
                runner = DeviceRunner(cfg.devices[0], writer, writer.metrics, trust=writer.trust)
            except TypeError:  # --baseline: a tree whose runner took the writer's clock
                runner = DeviceRunner(cfg.devices[0], writer, writer.metrics)
            # --baseline: a tree before time became data stamps the arrival on the runner.
            old_tree = hasattr(runner, "_arrival")
            sink, conv = writer.sink_for(runner), CONVENTIONS[codec]()
            payloads = [json.dumps(make(i)).encode() for i in range(events)]
            readings = [r.with_timestamp(r.timestamp_ms or int(time.time() * 1000))
                        for p in payloads for r in conv.decode(topic, p)]
            arrived = [] if old_tree else [r.arrived(runner.clock()) for r in readings]
            decode = sink_us = float("inf")
            for _ in range(repeat):
                t0 = time.thread_time()
                for p in payloads:
                    conv.decode(topic, p)
                t1 = time.thread_time()
                if old_tree:
                    for r in readings:
                        runner._arrival()
                        sink(r)
                else:  # the readings carry their arrival (the adapter's copy, not timed here)
                    for r in arrived:
                        runner.clock()
                        sink(r)
                t2 = time.thread_time()
                decode, sink_us = min(decode, t1 - t0), min(sink_us, t2 - t1)
            out[name] = {"decode_us": round(decode / events * 1e6, 3),
                         "sink_us": round(sink_us / events * 1e6, 3)}
        return out

    return asyncio.run(run())


def _run_tree(tree: Path, events: int, repeat: int) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                        "--events", str(events), "--repeat", str(repeat)],
                       capture_output=True, text=True, env=env, check=True, cwd=tempfile.gettempdir())
    return json.loads(r.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="another source tree to measure in the same rounds")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.events, args.repeat)))
        return 0
    sides = {"this": ROOT} | ({"baseline": Path(args.baseline)} if args.baseline else {})
    best: dict[str, dict[str, dict[str, float]]] = {}
    for _ in range(args.rounds):
        for side, tree in sides.items():
            for conv, row in _run_tree(tree, args.events, args.repeat).items():
                cell = best.setdefault(side, {}).setdefault(conv, {})
                for k, v in row.items():
                    cell[k] = min(cell.get(k, v), v)
    print("| convention | side | decode µs/event | sink µs/event | total |")
    print("| --- | --- | --- | --- | --- |")
    for conv in best["this"]:
        for side in sides:
            c = best[side][conv]
            print(f"| {conv} | {side} | {c['decode_us']} | {c['sink_us']} | "
                  f"{c['decode_us'] + c['sink_us']:.3f} |")
        if "baseline" in best:
            a = best["this"][conv]
            b = best["baseline"][conv]
            print(f"| {conv} | ratio | {a['decode_us'] / b['decode_us']:.3f} | "
                  f"{a['sink_us'] / b['sink_us']:.3f} | "
                  f"{(a['decode_us'] + a['sink_us']) / (b['decode_us'] + b['sink_us']):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
