"""Part "appliance": the whole appliance at a fixed rate, through bench/bench_appliance.py.

bench_appliance.run() does the measuring (simulated devices over ptys and a real
Mosquitto, ``edge run`` as a subprocess, a hand-written peer doing the same appends);
this module only turns its rows into the results table and keeps the RSS/CPU samples
for the plots.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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
    with _recording_samplers(bench_appliance) as samplers:
        rows = bench_appliance.run(rate=plan.rate, seconds=plan.seconds, devices=plan.devices,
                                   runs=runs, upstream=False, peer=plan.peer)
    _attach_counts(rows, samplers)
    return table(rows, plan), rows


@contextlib.contextmanager
def _recording_samplers(module: Any) -> Iterator[list[Any]]:
    """Keep every bench_appliance.Sampler made meanwhile, one per run_once, in order.

    Its rows carry RSS/CPU samples but not the log's record count over time, which the
    throughput plot needs and its Sampler does poll (``counts``). Wrapping keeps
    bench_appliance.py as it is; if the class is not there, nothing is recorded.
    """
    made: list[Any] = []
    original = getattr(module, "Sampler", None)
    if original is None:
        yield made
        return

    class RecordingSampler(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    module.Sampler = RecordingSampler
    try:
        yield made
    finally:
        module.Sampler = original


def _attach_counts(rows: list[dict[str, Any]], samplers: list[Any]) -> None:
    """Give each row ``counts``: (s since its load started, records in the log), if it has none."""
    if len(samplers) != len(rows):
        return  # cannot pair them safely
    for row, sampler in zip(rows, samplers, strict=True):
        counts = getattr(sampler, "counts", None)
        raw, rel = getattr(sampler, "samples", None), row.get("samples")
        if row.get("counts") or not counts or not raw or not rel:
            continue
        # The row's sample times are the sampler's minus the load's start.
        t_load = raw[0][0] - rel[0][0]
        row["counts"] = [(round(t - t_load, 3), n) for t, n in counts]


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
