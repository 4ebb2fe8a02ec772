"""Every benchmark in one run, side by side with its peers, and the results page.

    .venv/bin/python bench/run_all.py               # everything, 3 runs (~18 min on 2 busy cores)
    .venv/bin/python bench/run_all.py --quick       # small counts, a smoke run (~3 min)
    bash deploy/bench.sh                            # set up first (matplotlib too), then this

Parts (``--parts``, default all):

  log        the edge log's durable append and persist-queue (bench/bench_log.py's workloads)
  kafka      beside it, a 1-broker Apache Kafka driven by kafka-producer-perf-test (acks=all),
             default and with an fsync per append; same record size, count and rate
  uplink     the uplink beside a plain aiokafka producer (bench/bench_uplink.py's functions)
  drain      backlog drain after a real outage (broker killed, backlog written, broker back)
  appliance  the whole appliance at a fixed rate (bench/bench_appliance.py's run())
  streams    stream processing (edge.streams) beside a hand-written loop on the same log
             (bench/bench_streams.py's cells)
  cpu        the service's CPU idle, at 5, 50 and 500 events/s and near saturation (5,000 and
             10,000) beside the hand-written peer, projected onto a Raspberry Pi 4 and a Pi
             Zero 2 W (bench/bench_cpu_budget.py)

Writes ``OUT/results.md`` (default docs/), its plots ``OUT/results-*.png``, the raw
values ``OUT/results.json``, and prints the tables. A part that fails is reported on the
page with its error and the exit status is 1; the other parts still run.

``--chaos``: ``auto`` (default) shows the chaos soak result in $CHAOS_RESULT or
OUT/chaos-result.json if there is one; ``run`` runs the soak's short profile after the
benchmarks (about 4 minutes, a 3-broker cluster); a file path uses that result (copied to
OUT/chaos-result.json); ``skip`` leaves it out. A failed soak is shown as failed, and the
exit status is then 1.

``--soak``: the long profile's result (an hour; run on its own, see the README's Chaos
soak), shown in a section of its own: ``auto`` (default) uses OUT/chaos-long-result.json
if there is one, a path uses that file (copied there), ``skip`` leaves it out. Both soaks
are plotted (throughput upstream, the service's RSS and CPU, faults shaded) when their
result carries a timeline.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import _page  # noqa: E402
import _part_appliance  # noqa: E402
import _part_cpu  # noqa: E402
import _part_log  # noqa: E402
import _part_streams  # noqa: E402
import _part_uplink  # noqa: E402
from _machine import describe  # noqa: E402

PARTS = ("log", "kafka", "uplink", "drain", "appliance", "streams", "cpu")

FULL = {
    "log": _part_log.LogPlan(records=200_000, rate_seconds=5.0, pq_records=3200),
    "uplink": _part_uplink.UplinkPlan(records=50_000, latency_rate=2000, latency_seconds=10,
                                      drain_records=200_000),
    "appliance": _part_appliance.AppliancePlan(rate=2000, seconds=30, devices=30),
    "streams": _part_streams.StreamsPlan(records=200_000),
    "cpu": _part_cpu.CpuPlan(seconds=20, idle_seconds=20),
}
QUICK = {
    # One shared broker per Kafka variant and no fsync variant: the slowest parts, made small.
    "log": _part_log.LogPlan(records=10_000, rate_seconds=0.5, pq_records=320,
                             kafka_fsync=False, cluster_per_run=False),
    "uplink": _part_uplink.UplinkPlan(records=5_000, latency_rate=1000, latency_seconds=3,
                                      drain_records=20_000),
    "appliance": _part_appliance.AppliancePlan(rate=1000, seconds=5, devices=9),
    "streams": _part_streams.StreamsPlan(records=20_000),
    "cpu": _part_cpu.CpuPlan(seconds=5, idle_seconds=5, high_seconds=3,
                             high_rates=(5_000,), nbody_steps=50_000),
}


class _Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"# [{time.monotonic() - self.t0:6.0f} s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small counts and shared brokers: a smoke run for development")
    ap.add_argument("--runs", type=int, default=3, help="runs of every measurement (default 3)")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"comma-separated subset of {','.join(PARTS)} (default all)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs",
                    help="where results.md, results.json and the PNGs go (default docs/)")
    ap.add_argument("--tmp", default=os.environ.get("BENCH_TMP", tempfile.gettempdir()),
                    help="where the logs under test go (env BENCH_TMP); a real disk, for fair fsyncs")
    ap.add_argument("--chaos", default="auto",
                    help="auto | run | skip | PATH of a chaos soak result (default auto)")
    ap.add_argument("--soak", default="auto",
                    help="auto | skip | PATH of the long chaos soak's result (default auto: "
                         "OUT/chaos-long-result.json if there is one)")
    ap.add_argument("--kafka-dir", default=None,
                    help="use the running 1-broker cluster in this directory (python -m "
                         "deploy.kafka start --dir D) instead of starting fresh ones; the fsync "
                         "variant is then left out")
    ap.add_argument("--appliance-rate", type=float, default=None,
                    help="events/s offered in the appliance part (default 2,000; quick 1,000)")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"--parts: unknown {', '.join(unknown)}; expected some of {', '.join(PARTS)}")
    if "kafka" in parts and "log" not in parts:
        ap.error("--parts: kafka is a column of the log table; add log")
    if args.runs < 1:
        ap.error(f"--runs: expected at least 1, got {args.runs}")
    args.parts = set(parts)
    return args


def _command(argv: list[str]) -> str:
    # deploy/bench.sh passes the command line it was given, so the page shows what a reader
    # would type (bench.sh may add arguments of its own).
    given = os.environ.get("BENCH_COMMAND")
    if given:
        return given
    return " ".join([".venv/bin/python bench/run_all.py", *map(shlex.quote, argv)])


def _chaos(args: argparse.Namespace, res: _page.Results, progress: _Clock) -> None:
    target = args.out / "chaos-result.json"
    choice = args.chaos
    if choice == "skip":
        res.chaos_note = "Left out of this run (`--chaos skip`)."
        return
    if choice == "run":
        progress("chaos: the soak's short profile (tests/chaos)")
        target.unlink(missing_ok=True)  # an older result must not pass for this run's
        env = dict(os.environ, CHAOS_RESULT=str(target.resolve()))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                               "tests/chaos", "-k", "short"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        if proc.returncode == 0:
            res.chaos_note = "Run by this command (short profile); its assertions passed."
        else:
            res.chaos_failed = True
            failed = [ln for ln in proc.stdout.splitlines()
                      if ln.startswith(("FAILED", "ERROR", "E "))][:8]
            res.chaos_note = (f"Run by this command (short profile); **its assertions FAILED** "
                              f"(pytest exit {proc.returncode}):\n\n```\n"
                              + "\n".join(failed or [proc.stdout[-1500:]]) + "\n```\n")
        source = target
    elif choice == "auto":
        env_path = os.environ.get("CHAOS_RESULT")
        source = Path(env_path) if env_path and Path(env_path).exists() else target
    else:
        source = Path(choice)
    if not source.exists():
        if choice != "auto":
            res.errors["chaos soak"] = f"no result file at {source}"
        return
    if source.resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)  # keeps its mtime: the page says when the soak wrote it
        res.chaos_note += f" Copied to `{target.name}` beside this page."
    try:
        res.chaos = _page.load_chaos(target, origin=_shown(source))
    except ValueError as exc:
        res.errors["chaos soak"] = str(exc)


def _soak(args: argparse.Namespace, res: _page.Results) -> None:
    target = args.out / "chaos-long-result.json"
    if args.soak == "skip":
        res.soak_note = "Left out of this run (`--soak skip`)."
        return
    source = target if args.soak == "auto" else Path(args.soak)
    if not source.exists():
        if args.soak != "auto":
            res.errors["long chaos soak"] = f"no result file at {source}"
        return
    if source.resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        res.soak_note = f"Copied to `{target.name}` beside this page."
    try:
        res.soak = _page.load_chaos(target, origin=_shown(source))
    except ValueError as exc:
        res.errors["long chaos soak"] = str(exc)


def _shown(path: Path) -> Path:
    path = path.resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _soak_plots(res: _page.Results, out: Path) -> None:
    for chaos in (res.chaos, res.soak):
        if chaos is None or not chaos.timeline:
            continue
        try:
            _page._pyplot()
        except ImportError:
            return   # the plot note already says so
        name = _page.soak_plot_name(chaos)
        _page.plot_soak(chaos, out / name)
        res.plots[name] = (
            f"Chaos soak, {chaos.profile} profile: records/s arriving upstream (the appliance "
            "and the bridge), the service's RSS and CPU from /proc, every fault shaded")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    plans = QUICK if args.quick else FULL
    progress = _Clock()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    res = _page.Results(machine=describe(), command=_command(argv),
                        started=dt.datetime.now(dt.UTC), finished=dt.datetime.now(dt.UTC),
                        quick=args.quick, runs=args.runs)
    raw: dict[str, object] = {}
    for p in PARTS:
        if p not in args.parts:
            res.skipped[p] = "not in --parts"

    if "log" in args.parts:
        plan = plans["log"]
        plan = dataclasses.replace(plan, kafka="kafka" in args.parts, tmp=args.tmp,
                                   kafka_dir=args.kafka_dir)
        try:
            res.tables.append(_part_log.run(plan, args.runs, progress))
        except Exception:  # reported on the page; the other parts still run
            res.errors["log"] = traceback.format_exc()
            progress("log part FAILED; see the page")

    drains: list[_part_uplink.DrainRun] = []
    if args.parts & {"uplink", "drain"}:
        try:
            table, drains = _part_uplink.run(plans["uplink"], args.runs,
                                             args.parts & {"uplink", "drain"}, progress)
            res.tables.append(table)
            raw["drains"] = [d.__dict__ for d in drains]
        except Exception:
            res.errors["uplink"] = traceback.format_exc()
            progress("uplink part FAILED; see the page")

    appliance_rows: list[dict] = []
    if "appliance" in args.parts:
        plan = plans["appliance"]
        if args.appliance_rate:
            plan = dataclasses.replace(plan, rate=args.appliance_rate)
        try:
            table, appliance_rows = _part_appliance.run(plan, args.runs, progress)
            res.tables.append(table)
            raw["appliance_rows"] = appliance_rows
        except Exception:
            res.errors["appliance"] = traceback.format_exc()
            progress("appliance part FAILED; see the page")

    if "streams" in args.parts:
        try:
            res.tables.append(_part_streams.run(
                dataclasses.replace(plans["streams"], tmp=args.tmp), args.runs, progress))
        except Exception:
            res.errors["streams"] = traceback.format_exc()
            progress("streams part FAILED; see the page")

    if "cpu" in args.parts:
        try:
            tables, raw["cpu"] = _part_cpu.run(plans["cpu"], args.runs, progress)
            res.tables.extend(tables)
        except Exception:
            res.errors["cpu"] = traceback.format_exc()
            progress("cpu part FAILED; see the page")

    try:
        _plots(res, out, drains, appliance_rows)
    except Exception:  # the tables are worth writing without the plots
        res.errors["plots"] = traceback.format_exc()
    try:
        _chaos(args, res, progress)
    except Exception:
        res.errors["chaos soak"] = traceback.format_exc()
    try:
        _soak(args, res)
        _soak_plots(res, out)
    except Exception:
        res.errors["soak plots"] = traceback.format_exc()
    res.finished = dt.datetime.now(dt.UTC)

    (out / "results.md").write_text(_page.render(res))
    raw.update(machine=res.machine.as_dict(), command=res.command, quick=res.quick,
               runs=res.runs, started=res.started.isoformat(), finished=res.finished.isoformat(),
               tables=[t.as_dict() for t in res.tables], errors=res.errors)
    (out / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    for t in res.tables:
        print(f"\n{t.title}\n\n{t.markdown()}")
    progress(f"wrote {out / 'results.md'}")
    if res.errors:
        progress(f"not measured: {', '.join(res.errors)}")
    if res.chaos_failed:
        progress("the chaos soak's assertions failed; its table is on the page")
    return 1 if res.errors or res.chaos_failed else 0


def _plots(res: _page.Results, out: Path, drains: list, appliance_rows: list[dict]) -> None:
    try:
        _page._pyplot()
    except ImportError:
        res.plot_note = ("Plots not drawn: matplotlib is not installed (`.venv/bin/pip install -e "
                         "'.[bench]'`, or run `bash deploy/bench.sh`, which does).")
        return
    if drains:
        _page.plot_drain(drains, out / _page.DRAIN_PNG)
        res.plots[_page.DRAIN_PNG] = (
            "Backlog drain after an outage: records committed upstream against seconds since "
            "the link came back (the restarted broker served again), one line per run")
    if appliance_rows:
        _page.plot_appliance(appliance_rows, out / _page.APPLIANCE_PNG)
        what = ("events/s into the log, CPU and RSS" if any(r.get("counts") for r in appliance_rows)
                else "CPU and RSS")
        res.plots[_page.APPLIANCE_PNG] = (
            f"The whole appliance at a fixed rate: {what} of the process under test over each "
            "run (edge run solid, the hand-written peer dashed)")
    if not res.plots:
        res.plot_note = "No part of this run produced a time series to plot."


if __name__ == "__main__":
    sys.exit(main())
