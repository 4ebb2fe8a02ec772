"""Part "appliance": the whole appliance at a fixed rate, through bench/bench_appliance.py.

bench_appliance.run() does the measuring (simulated devices over ptys and a real
Mosquitto, ``edge run`` as a subprocess, a hand-written peer doing the same appends);
this module only turns its rows into the results table and keeps their samples (RSS,
CPU and the log's record count over time) for the plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _table import Table

SERVICE, PEER = "edge run", "hand-written peer"
_SIDES = {"service": SERVICE, "peer": PEER}

#: (row key in bench_appliance's rows, label, higher is better, ratio meaningful)
MEASURES = (
    ("generator_rate", "events/s offered by the simulators", True, False),
    ("achieved_rate", "events/s sustained into the log", True, True),
    ("lost", "events offered but not in the log", False, False),
    ("cpu_pct_per_1k", "CPU % of one core per 1,000 events/s", False, True),
    ("cpu_share", "CPU (cores) of the process", False, True),
    ("rss_ready_mb", "RSS when ready (MB)", False, True),
    ("rss_max_mb", "RSS peak during the run (MB)", False, True),
    ("rss_growth_mb_per_min", "RSS growth over the 2nd half of the load (MB/min)", False, False),
    ("log_p50_ms", "ingest → durable in the log, p50 (ms)", False, True),
    ("log_p99_ms", "ingest → durable in the log, p99 (ms)", False, True),
    # The rates above move with the rest of the box's work: each run says how busy it was.
    ("load_avg_1m", "machine load average (1 min) when the run started", False, False),
)


class PartUnavailable(RuntimeError):
    """A part's benchmark module is missing or lacks what run_all needs; the message says which."""


@dataclass(frozen=True)
class AppliancePlan:
    rate: float = 5000
    seconds: float = 30
    devices: int = 30
    peer: bool = True


def run(plan: AppliancePlan, runs: int,
        progress: Callable[[str], None]) -> tuple[Table, list[dict[str, Any]]]:
    """Measure ``runs`` times; returns the table and bench_appliance's rows (with samples)."""
    try:
        import bench_appliance
    except ImportError as exc:
        raise PartUnavailable(f"bench/bench_appliance.py cannot be imported: {exc}") from exc
    if not hasattr(bench_appliance, "run"):
        raise PartUnavailable("bench/bench_appliance.py has no run(rate, seconds, devices, runs, ...)")
    progress(f"appliance: {runs} run(s) of {plan.seconds:g} s at {plan.rate:,.0f} events/s")
    rows = bench_appliance.run(rate=plan.rate, seconds=plan.seconds, devices=plan.devices,
                               runs=runs, upstream=False, peer=plan.peer)
    return table(rows, plan), rows


def table(rows: list[dict[str, Any]], plan: AppliancePlan) -> Table:
    cols = [SERVICE] + ([PEER] if any(r["side"] == "peer" for r in rows) else [])
    t = Table("appliance", "The whole appliance at a fixed rate", cols)
    devices = rows[0].get("devices", plan.devices) if rows else plan.devices
    t.notes += [
        f"{plan.rate:,.0f} events/s offered for {plan.seconds:g} s by {devices} simulated devices "
        "(GPS, temperature, blood pressure; 3 over pseudo-terminals, the rest MQTT QoS 1 through "
        "a real Mosquitto), by bench/bench_appliance.py's `run()`.",
        f"**{SERVICE}**: `edge run` as a subprocess (decoding, headers, health, metrics; fsync "
        f"durability, 3 partitions). **{PEER}**: bench_appliance's minimal appender doing the "
        "same MQTT and serial appends to the same log with no decoding, health or metrics.",
        "CPU and RSS of the process under test, sampled from /proc every 0.5 s.",
    ]
    for key, label, higher, compare in MEASURES:
        for r in rows:
            col = _SIDES.get(r["side"])
            if col in cols and key in r:
                t.add(label, col, r[key], higher_is_better=higher, compare=compare)
    # A row nobody measured (e.g. latency without a log clock) says nothing: leave it out.
    t.rows = [r for r in t.rows if r.values]
    return t
