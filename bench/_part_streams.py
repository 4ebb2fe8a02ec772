"""Part "streams": edge.streams topologies beside a hand-written loop on the same local log.

bench/bench_streams.py's child does the measuring (its input, its topologies, its plain
loop, its timing: input records over the processing time, by the wall clock and per
CPU-second of the process); this module runs its cells interleaved, each in a fresh
process measured by the OS (peak RSS), and fills the results table.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import bench_streams
from _machine import run_child_cell
from _table import Table

STREAMS, PLAIN = "edge.streams", "plain loop"
#: bench_streams' cells, in the order they run in each round.
CELLS = ("plain", "stateless", "windowed")
#: The issue's floor for the stateless topology (records/s); the page says whether it was met.
STATELESS_FLOOR = 50_000

MAP_FILTER = "map + filter"
WINDOWED = "1-min tumbling windowed mean, 1,000 keys"


@dataclass(frozen=True)
class StreamsPlan:
    records: int = 200_000
    tmp: str = tempfile.gettempdir()


def new_table(plan: StreamsPlan) -> Table:
    t = Table("streams", "Stream processing: edge.streams beside a hand-written loop on the log",
              [STREAMS, PLAIN])
    t.notes += [
        f"{plan.records:,} JSON temperature readings (~110 B, two headers) over "
        f"{bench_streams.DEVICES:,} keys and 3 partitions, already in the log; every side reads "
        f"all of them and commits its output with its input offsets in one transaction per "
        f"batch of {bench_streams.BATCH:,}, each fsynced (bench/bench_streams.py's cells, each "
        "in a fresh process).",
        f"**{STREAMS}**, {MAP_FILTER}: `source -> map (°C to °F) -> filter (> 99 °F) -> to`; "
        f"{WINDOWED}: `group_by_key -> windowed_by(TumblingWindows(60 s)) -> aggregate(mean) "
        "-> to`, with its window state committed in the same transactions.",
        f"**{PLAIN}**: the same map and filter written by hand on the broker API "
        "(`KafkaConsumer.poll`, `json.loads`, convert, filter, `json.dumps`, a `LogTransaction` "
        "with the output and the offsets), so the ratio is the framework's cost. No hand-written "
        "windowed aggregate was written: that row has no peer.",
        "Records/s counts input records over the processing time only (not writing the input), "
        "by the wall clock and per CPU-second of the process (all threads): on a shared machine "
        "the second is what the work costs, the first also includes waiting for a core. Peak "
        "RSS is the process's VmHWM, writing the input included.",
        f"Issue 6 asks for at least {STATELESS_FLOOR:,} records/s through the {MAP_FILTER} "
        "topology on this machine.",
    ]
    return t


def _cell(impl: str, plan: StreamsPlan) -> dict:
    return run_child_cell([sys.executable, bench_streams.__file__, "--child", "--impl", impl,
                           "--n", str(plan.records), "--tmp", plan.tmp], f"bench_streams {impl}")


def run(plan: StreamsPlan, runs: int, progress: Callable[[str], None]) -> Table:
    """Every cell ``runs`` times, interleaved (noise hits each alike); the filled table. Blocking."""
    t = new_table(plan)
    for i in range(runs):
        for impl in CELLS:
            res = _cell(impl, plan)
            col = PLAIN if impl == "plain" else STREAMS
            what = WINDOWED if impl == "windowed" else MAP_FILTER
            t.add(f"{what}: records/s (wall clock)", col, res["rate"])
            t.add(f"{what}: records per CPU-second", col, res["cpu_rate"])
            t.add(f"{what}: peak RSS (MB)", col, res["rss_mb"], higher_is_better=False)
        progress(f"streams run {i + 1}/{runs} done")
    return t
