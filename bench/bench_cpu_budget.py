"""Benchmark: the service's CPU budget, idle, at 5, 50 and 500 events/s and near saturation
(5,000 and 10,000 events/s), beside the hand-written peer, projected onto a Raspberry Pi 4
and a Pi Zero 2 W.

    .venv/bin/python bench/bench_cpu_budget.py                     # 3 runs, 20 s / 10 s cells (~17 min)
    .venv/bin/python bench/bench_cpu_budget.py --runs 1 --seconds 8 --idle-seconds 8 --high-seconds 5   # a look

Both sides are bench/bench_appliance.py's: ``edge run`` (3 MQTT subscriptions through a
real Mosquitto and 3 serial devices on real ptys, fsync, 3 partitions) and its minimal
hand-written appender. The loaded cells are bench_appliance's ``run_once`` with 6
devices (one of each kind on a pty, one of each on MQTT); the idle cell starts the same
process with every device connected (ptys nobody writes to, MQTT subscriptions with no
publisher) and measures, after 2 s to settle:

* CPU % of one core (utime+stime of the process, all threads, from /proc/PID/stat);
* wake-ups per second: voluntary + nonvoluntary context switches summed over every
  thread (/proc/PID/task/*/status; /proc/PID/status alone counts only the main
  thread), and the threads that woke most, by name.

Sides and cells are interleaved within each run; cells are medians over runs.

Events/s one core sustains: 100 % of a core over the cost per event in the cell where the
service put the most events/s into its log (``sustain_rate``). The cost per event falls as the rate grows (more records per commit and per wake-up),
so the low-rate cells alone gave a lower bound (283/s on a Pi 4 from 500 events/s); the
high cells, short (``--high-seconds``, 10 s by default) to keep the run within minutes,
measure it near where a core fills. On a core 5x slower the same rate is that much nearer
saturation, and a saturated Pi core batches about as a saturated core here does, so the
cost near saturation here is the one to project.

Projection onto a Pi. CPU time here is divided by a ratio of single-core Python speed,
from public measurements of the same Python program (see ``PI_SOURCES``):

* Raspberry Pi 4: the benchmarks game's n-body in Python, 5,000,000 steps, took 158.3 s
  on a Pi 4 Model B at 1.5 GHz (performance governor; C. Mehta, "Performance Analysis of
  Languages on Raspberry Pi", https://chaitanyamehta.github.io/projects/performance-
  analysis-of-programming-languages). The same program runs here in this run
  (``nbody_seconds``, fewer steps, scaled), so the ratio is this machine's and this
  Python's. That page does not name its Python; Raspberry Pi OS of the time had 3.7,
  slower on n-body than this 3.11, so the ratio errs towards a slower Pi (pessimistic).
* Pi Zero 2 W: the same Cortex-A53 core as the Pi 3B+ at 1.0 GHz instead of 1.4; single
  -thread sysbench 1.0.20 gives Pi 3B+ 687 events/s, Pi 4 1,478
  (https://leoncode.co.uk/articles/raspberry-pi-benchmarks), so a Zero 2 W core is taken
  as 1,478 / (687 × 1.0 / 1.4) = 3.0x slower than a Pi 4's. An estimate from a C
  benchmark and clock scaling: no Python figure for the Zero 2 W was found.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _p in (str(ROOT), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import bench_appliance as ba  # noqa: E402

from tests.fixtures.mosquitto import Mosquitto, free_port  # noqa: E402
from tests.fixtures.pty import PtyDevice  # noqa: E402

LOW_RATES = (5, 50, 500)
HIGH_RATES = (5_000, 10_000)  # near saturation: bench_appliance's 10,000 took ~0.74 of a core
DEVICES = 6  # one of each kind on a pty, one of each on MQTT
SETTLE_S = 2.0

# Published single-core Python speed (see the module docstring).
PI4_NBODY_S = 158.263  # n-body, Python, 5,000,000 steps, Pi 4 at 1.5 GHz, performance governor
PI4_NBODY_STEPS = 5_000_000
ZERO2W_VS_PI4 = 1477.83 / (687.45 * 1.0 / 1.4)  # sysbench single-thread, A53 scaled to 1.0 GHz
PI_SOURCES = (
    "Pi 4: n-body (benchmarks game, Python, 5,000,000 steps) in 158.3 s on a Pi 4 at 1.5 GHz, "
    "C. Mehta, https://chaitanyamehta.github.io/projects/performance-analysis-of-programming-languages "
    "(its Python version is not stated; an older, slower one makes the projection pessimistic), "
    "against the same program run here in this run",
    "Pi Zero 2 W: 3.0x slower per core than a Pi 4, from sysbench 1.0.20 single-thread (Pi 3B+ "
    "687 events/s at 1.4 GHz scaled to the Zero 2 W's 1.0 GHz, Pi 4 1,478), "
    "https://leoncode.co.uk/articles/raspberry-pi-benchmarks: an estimate from a C benchmark",
)


# -- this machine's Python speed on the Pi's published program ------------------------------------

_NBODY = r"""
import sys, time
PI = 3.14159265358979323
SOLAR_MASS = 4 * PI * PI
DAYS_PER_YEAR = 365.24
BODIES = {
    "sun": ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], SOLAR_MASS),
    "jupiter": ([4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01],
                [1.66007664274403694e-03 * DAYS_PER_YEAR, 7.69901118419740425e-03 * DAYS_PER_YEAR,
                 -6.90460016972063023e-05 * DAYS_PER_YEAR], 9.54791938424326609e-04 * SOLAR_MASS),
    "saturn": ([8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01],
               [-2.76742510726862411e-03 * DAYS_PER_YEAR, 4.99852801234917238e-03 * DAYS_PER_YEAR,
                2.30417297573763929e-05 * DAYS_PER_YEAR], 2.85885980666130812e-04 * SOLAR_MASS),
    "uranus": ([1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01],
               [2.96460137564761618e-03 * DAYS_PER_YEAR, 2.37847173959480950e-03 * DAYS_PER_YEAR,
                -2.96589568540237556e-05 * DAYS_PER_YEAR], 4.36624404335156298e-05 * SOLAR_MASS),
    "neptune": ([1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01],
                [2.68067772490389322e-03 * DAYS_PER_YEAR, 1.62824170038242295e-03 * DAYS_PER_YEAR,
                 -9.51592254519715870e-05 * DAYS_PER_YEAR], 5.15138902046611451e-05 * SOLAR_MASS)}
SYSTEM = list(BODIES.values())
PAIRS = [(SYSTEM[i], SYSTEM[j]) for i in range(len(SYSTEM)) for j in range(i + 1, len(SYSTEM))]

def advance(dt, n, bodies=SYSTEM, pairs=PAIRS):
    for _ in range(n):
        for ((x1, y1, z1), v1, m1), ((x2, y2, z2), v2, m2) in pairs:
            dx = x1 - x2
            dy = y1 - y2
            dz = z1 - z2
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** (-1.5))
            b1m = m1 * mag
            b2m = m2 * mag
            v1[0] -= dx * b2m
            v1[1] -= dy * b2m
            v1[2] -= dz * b2m
            v2[0] += dx * b1m
            v2[1] += dy * b1m
            v2[2] += dz * b1m
        for (r, [vx, vy, vz], m) in bodies:
            r[0] += dt * vx
            r[1] += dt * vy
            r[2] += dt * vz

def offset_momentum(ref, bodies=SYSTEM, px=0.0, py=0.0, pz=0.0):
    for (r, [vx, vy, vz], m) in bodies:
        px -= vx * m
        py -= vy * m
        pz -= vz * m
    (r, v, m) = ref
    v[0] = px / m
    v[1] = py / m
    v[2] = pz / m

offset_momentum(BODIES["sun"])
t0 = time.process_time()
advance(0.01, int(sys.argv[1]))
print(time.process_time() - t0)
"""


def nbody_seconds(steps: int) -> float:
    """CPU seconds of the n-body program for ``steps`` steps, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _NBODY, str(steps)], capture_output=True, text=True,
                         check=True, timeout=600)
    return float(out.stdout.strip())


# -- the idle cell -----------------------------------------------------------------------------------

def _threads(pid: int) -> dict[int, tuple[str, int]]:
    """{tid: (thread name, voluntary + nonvoluntary context switches)} of every thread."""
    out: dict[int, tuple[str, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name, switches = "?", 0
            for line in (task / "status").read_text().splitlines():
                if line.startswith("Name:"):
                    name = line.split(None, 1)[1] if len(line.split()) > 1 else "?"
                elif line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    switches += int(line.split()[1])
            out[int(task.name)] = (name, switches)
    return out


def idle_once(side: str, seconds: float) -> dict[str, Any]:
    """Every device connected, nothing arriving: CPU % and wake-ups/s of ``side``'s process."""
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-cpu-idle-") as tmp_name:
        tmp = Path(tmp_name)
        links = tmp / "links"
        links.mkdir()
        ptys = [PtyDevice(links / dev) for dev, *_ in ba.PTY_DEVICES]
        mosquitto = Mosquitto(tmp / "mqtt")
        mosquitto.start()
        proc: subprocess.Popen[bytes] | None = None
        log_path = tmp / f"{side}.log"
        try:
            with log_path.open("wb") as err:
                if side == "service":
                    health_port = free_port()
                    cfg = ba.service_config(tmp, links, mosquitto.port, health_port, None)
                    proc = subprocess.Popen([str(ba.BIN / "edge"), "run", "--config", str(cfg)],
                                            stdout=subprocess.DEVNULL, stderr=err,
                                            env=dict(os.environ, PYTHONUNBUFFERED="1"))

                    def ready() -> bool:
                        assert proc is not None
                        if proc.poll() is not None:
                            raise RuntimeError(f"edge run exited with {proc.returncode}:\n{log_path.read_text()}")
                        h = ba._health(health_port)
                        return bool(h and all(d["connected"] for d in h["devices"].values()))

                    ba._wait(ready, 60, "edge run to connect every device")
                else:
                    spec = json.dumps(ba._peer_spec(tmp, links, mosquitto.port))
                    proc = subprocess.Popen([sys.executable, ba.__file__, "--peer-worker", spec],
                                            stdout=subprocess.PIPE, stderr=err)
                    assert proc.stdout is not None
                    proc.stdout.readline()  # "ready"
                    for p in ptys:
                        p.wait_reader(30)
            time.sleep(SETTLE_S)
            before, (_, cpu0), t0 = _threads(proc.pid), ba.proc_sample(proc.pid), time.monotonic()
            time.sleep(seconds)
            after, (_, cpu1), t1 = _threads(proc.pid), ba.proc_sample(proc.pid), time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(60)
            if rc != 0:
                raise RuntimeError(f"{side} exited with {rc}:\n{log_path.read_text()[-2000:]}")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            for p in ptys:
                p.unplug()
            mosquitto.stop()
    wall = t1 - t0
    per_thread: dict[str, float] = {}
    for tid, (name, n) in after.items():
        woke = n - before.get(tid, (name, 0))[1]
        per_thread[name] = per_thread.get(name, 0.0) + woke / wall
    return {
        "side": side, "load_avg_1m": load_at_start,
        "idle_cpu_pct": 100 * (cpu1 - cpu0) / wall,
        "idle_wakeups_per_s": sum(per_thread.values()),
        "idle_threads": dict(sorted(per_thread.items(), key=lambda kv: -kv[1])),
    }


# -- the runs and the table --------------------------------------------------------------------------

def run(runs: int, seconds: float, idle_seconds: float, nbody_steps: int,
        high_seconds: float = 10.0, high_rates: tuple[int, ...] = HIGH_RATES) -> dict[str, Any]:
    """Every cell ``runs`` times, sides and cells interleaved; the n-body timing before and after.

    The low-rate cells load for ``seconds``, the high-rate ones for ``high_seconds``: at
    thousands of events/s a few seconds hold tens of thousands of events, plenty for a
    CPU share, and keep the part within minutes. ``high_rates`` picks them (run_all's
    quick mode runs only the first).
    """
    rates = LOW_RATES + tuple(high_rates)
    rows: list[dict[str, Any]] = []
    nbody = [nbody_seconds(nbody_steps)]
    for i in range(runs):
        for side in ("service", "peer"):
            row = idle_once(side, idle_seconds)
            row.update(run=i + 1, cell="idle")
            rows.append(row)
            print(f"# run {i + 1} {side} idle: CPU {row['idle_cpu_pct']:.2f}%, "
                  f"{row['idle_wakeups_per_s']:.0f} wake-ups/s", file=sys.stderr)
            for rate in rates:
                r = ba.run_once(side, rate, seconds if rate in LOW_RATES else high_seconds, DEVICES)
                r.pop("samples", None)
                r.pop("counts", None)
                r.update(run=i + 1, cell=rate)
                rows.append(r)
                print(f"# run {i + 1} {side} {rate}/s: achieved {r['achieved_rate']:,.1f}/s, "
                      f"CPU {100 * r['cpu_share']:.2f}%", file=sys.stderr)
    nbody.append(nbody_seconds(nbody_steps))
    return {"rows": rows, "rates": list(rates), "nbody_steps": nbody_steps, "nbody_s": nbody}


def rates_of(result: dict[str, Any]) -> list[int]:
    """The loaded cells' rates of a result, in order (older results had only the low ones)."""
    return list(result.get("rates", LOW_RATES))


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _cell(values: list[float | None], fmt: str) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    med = statistics.median(vals)
    return format(med, fmt) if len(vals) == 1 else f"{format(med, fmt)} [{format(min(vals), fmt)}–{format(max(vals), fmt)}]"


def sustain_rate(result: dict[str, Any]) -> int:
    """The cell (offered rate) at which the service put the most events/s into its log.

    Its cost per event is the one measured nearest saturation. Not "the highest rate it
    kept up with": on a box busy with other work the MQTT cells can fall short of their
    rate with the service's core far from full (QoS 1 keeps a few messages in flight per
    subscription, acknowledged once durable, so a slow fsync caps them), and their cost
    per event at what did arrive is still the lowest measured.
    """
    achieved = {rate: _median([r.get("achieved_rate") for r in result["rows"]
                               if r["side"] == "service" and r["cell"] == rate])
                for rate in rates_of(result)}
    return max(achieved, key=lambda rate: achieved[rate] or 0.0)


def pi_ratio(result: dict[str, Any]) -> tuple[float, float]:
    """(Pi 4, Pi Zero 2 W) core time per unit of this machine's, from the n-body timings."""
    here = statistics.median(result["nbody_s"]) * PI4_NBODY_STEPS / result["nbody_steps"]
    pi4 = PI4_NBODY_S / here
    return pi4, pi4 * ZERO2W_VS_PI4


def tables(result: dict[str, Any]) -> str:
    rows = result["rows"]
    pi4, zero = pi_ratio(result)

    def vals(side: str, cell: object, key: str) -> list[float | None]:
        return [r.get(key) for r in rows if r["side"] == side and r["cell"] == cell]

    out = ["| measure | edge run | hand-written peer | edge run ÷ peer |", "|---|---:|---:|---:|"]

    def line(label: str, cell: object, key: str, fmt: str, scale: float = 1.0) -> None:
        s = [None if v is None else v * scale for v in vals("service", cell, key)]
        p = [None if v is None else v * scale for v in vals("peer", cell, key)]
        ms, mp = _median(s), _median(p)
        ratio = f"{ms / mp:.2f}x" if ms is not None and mp else "—"
        out.append(f"| {label} | {_cell(s, fmt)} | {_cell(p, fmt)} | {ratio} |")

    line("idle: CPU % of one core", "idle", "idle_cpu_pct", ".2f")
    line("idle: wake-ups per second (all threads)", "idle", "idle_wakeups_per_s", ".0f")
    for rate in rates_of(result):
        line(f"{rate} events/s: events/s into the log", rate, "achieved_rate", ",.1f")
        line(f"{rate} events/s: CPU % of one core", rate, "cpu_share", ".2f", 100.0)
        line(f"{rate} events/s: CPU % of one core per 1,000 events/s", rate, "cpu_pct_per_1k", ".1f")

    proj = ["| | this machine | Raspberry Pi 4 | Pi Zero 2 W |", "|---|---:|---:|---:|",
            f"| core time ÷ this machine's | 1 | {pi4:.1f} | {zero:.1f} |"]
    svc_idle = _median(vals("service", "idle", "idle_cpu_pct"))
    if svc_idle is not None:
        proj.append(f"| edge run idle: CPU % of one core | {svc_idle:.2f} | {svc_idle * pi4:.2f} | "
                    f"{svc_idle * zero:.2f} |")
    for rate in rates_of(result):
        share = _median([None if v is None else 100 * v for v in vals("service", rate, "cpu_share")])
        if share is not None:
            proj.append(f"| edge run at {rate} events/s: CPU % of one core | {share:.2f} | "
                        f"{share * pi4:.1f} | {share * zero:.1f} |")
    top = sustain_rate(result)
    per_1k = _median(vals("service", top, "cpu_pct_per_1k"))
    if per_1k:
        # One core is 100 %: what rate fills it, from the cost per event nearest saturation.
        sustained = [100 / (per_1k * k) * 1000 for k in (1, pi4, zero)]
        got = _median(vals("service", top, "achieved_rate")) or 0.0
        proj.append(f"| edge run: events/s one core sustains (from the cost at {top:,} offered, "
                    f"{got:,.0f} achieved) | "
                    + " | ".join(f"{v:,.0f}" for v in sustained) + " |")
        cores = [10_000 / v for v in sustained]
        proj.append("| edge run: cores 10,000 events/s takes | "
                    + " | ".join(f"{v:.1f}" for v in cores) + " |")
    return "\n".join(out) + "\n\n" + "\n".join(proj)


def threads_note(result: dict[str, Any]) -> str:
    """Which threads of the idle service woke, medians of wake-ups/s by thread name."""
    per: dict[str, list[float]] = {}
    for r in result["rows"]:
        if r["side"] == "service" and r["cell"] == "idle":
            for name, w in r["idle_threads"].items():
                per.setdefault(name, []).append(w)
    return ", ".join(f"{name} {statistics.median(v):.1f}/s" for name, v in
                     sorted(per.items(), key=lambda kv: -statistics.median(kv[1])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of every cell (default 3)")
    ap.add_argument("--seconds", type=float, default=20, help="load time of each loaded cell (default 20)")
    ap.add_argument("--high-seconds", type=float, default=10,
                    help=f"load time of each cell at {', '.join(f'{r:,}' for r in HIGH_RATES)} events/s (default 10)")
    ap.add_argument("--idle-seconds", type=float, default=20, help="measured idle time (default 20)")
    ap.add_argument("--nbody-steps", type=int, default=500_000,
                    help="n-body steps timed here for the Pi ratio (default 500,000; scaled to 5,000,000)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    header = ba.machine_header().replace("bench_appliance", "bench_cpu_budget")
    result = run(args.runs, args.seconds, args.idle_seconds, args.nbody_steps, args.high_seconds)
    print(header)
    print(f"# {DEVICES} devices (3 on ptys, 3 MQTT QoS 1 via Mosquitto); fsync; loaded cells "
          f"{args.seconds:g} s ({args.high_seconds:g} s at {'/'.join(f'{r:,}' for r in HIGH_RATES)}/s), "
          f"idle {args.idle_seconds:g} s; runs={args.runs}; cells: median [min–max]; "
          "2 shared cores, other work running")
    print(f"# n-body here: {', '.join(f'{s:.2f}' for s in result['nbody_s'])} s for "
          f"{args.nbody_steps:,} steps (before, after)")
    print()
    print(tables(result))
    print()
    print(f"idle edge run, wake-ups/s by thread: {threads_note(result)}")
    for s in PI_SOURCES:
        print(f"source: {s}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
