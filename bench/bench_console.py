"""What open console pages cost the service: bench_appliance's load with 0 and with 5 pages.

    .venv/bin/python bench/bench_console.py                     # 10,000 events/s, 20 s, 3 runs
    .venv/bin/python bench/bench_console.py --rate 2000 --seconds 10 --runs 1

Issue #15: with five pages open during bench_appliance at its fixed rate, the service's
CPU per 1,000 events/s may rise by no more than 5% over no pages open. Both sides are the
same ``edge run`` under the same load (bench_appliance.run_once), interleaved run by run;
"5 pages" holds five /api/stream connections open (every event read) and fetches
/api/overview every 5 s per page (bench/_console_pages.py, a process of its own, so its
CPU is not counted). The table shows medians [min–max] and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_appliance
from _table import Table

PAGES = 5
NONE, OPEN = "no pages", f"{PAGES} pages open"
MEASURES = (
    ("generator_rate", "events/s offered by the simulators", True),
    ("lost", "events offered but not in the log", False),
    ("achieved_rate", "events/s sustained into the log", True),
    ("cpu_pct_per_1k", "CPU % of one core per 1,000 events/s", False),
    ("rss_max_mb", "RSS peak during the run (MB)", False),
    ("log_p99_ms", "ingest → durable in the log, p99 (ms)", False),
)
LIMIT = 1.05


def run(rate: float, seconds: float, devices: int, runs: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(runs):
        for pages in (0, PAGES):
            row = bench_appliance.run_once("service", rate, seconds, devices, pages=pages)
            row["run"] = i + 1
            rows.append(row)
            print(f"# run {i + 1}, {pages} pages: offered {row['generator_rate']:,.0f}/s, "
                  f"achieved {row['achieved_rate']:,.0f}/s, "
                  f"CPU {row['cpu_pct_per_1k']:.2f}% per 1k/s, pages got "
                  f"{row['pages_received']}", file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]]) -> Table:
    # The cost of pages is the column of interest: it goes first, so the ratio is open ÷ none.
    t = Table("console", "Open console pages during the fixed-rate load", [OPEN, NONE])
    for key, label, higher in MEASURES:
        for r in rows:
            t.add(label, OPEN if r["pages"] else NONE, r.get(key), higher_is_better=higher)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=10_000, help="events/s offered (default 10,000)")
    ap.add_argument("--seconds", type=float, default=20, help="load per run (default 20)")
    ap.add_argument("--devices", type=int, default=30, help="simulated devices (default 30)")
    ap.add_argument("--runs", type=int, default=3, help="runs per side (default 3)")
    args = ap.parse_args()
    rows = run(args.rate, args.seconds, args.devices, args.runs)
    t = table(rows)
    print(bench_appliance.machine_header())
    print(f"# {args.rate:,.0f} events/s offered for {args.seconds:g} s by {args.devices} "
          f"devices; {args.runs} runs per side, interleaved")
    print()
    print(t.markdown())
    received = [r["pages_received"] for r in rows if r["pages"]]
    print()
    print(f"what the {PAGES} pages received, per run: {received}")
    cpu = t.row("CPU % of one core per 1,000 events/s", False).ratio(OPEN, NONE)
    if cpu is not None:
        verdict = "within" if cpu <= LIMIT else "OVER"
        print(f"CPU per 1,000 events/s with {PAGES} pages open: {cpu:.3f}x none "
              f"({verdict} the issue's {LIMIT:.2f}x)")


if __name__ == "__main__":
    main()
