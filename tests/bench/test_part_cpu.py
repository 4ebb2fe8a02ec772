"""bench/run_all.py's "cpu" part in quick mode: the service's CPU idle, at 5, 50 and 500
events/s and at 5,000 (quick mode's one cell near saturation) beside the hand-written peer,
and its projection onto a Raspberry Pi.

Runs the real command (a real ``edge run`` and the peer, a real Mosquitto, real ptys) and
checks what it writes: both tables on the page, cells that are medians of the raw rows in
results.json, the Pi columns this machine's figures times the stated ratio, the sources
named. It checks behaviour, never how fast anything was.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.test_run_all import _CELL, _num, _table

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO / "bench"))
from _table import fmt_number  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--runs", "1",
         "--parts", "cpu", "--out", str(out), "--chaos", "skip", "--soak", "skip"],
        cwd=REPO, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, f"run_all failed:\n{proc.stdout}\n{proc.stderr}"
    return (out / "results.md").read_text(), json.loads((out / "results.json").read_text())


def _med(cell: str) -> float:
    m = _CELL.match(cell)
    assert m, f"not a median [min–max] cell: {cell!r}"
    return _num(m["med"])


def test_both_sides_are_measured_idle_and_at_each_rate(cpu_run: tuple[str, dict[str, Any]]) -> None:
    page, raw = cpu_run
    rows = _table(page, "CPU budget: idle, at 5, 50 and 500 events/s and near saturation")
    assert rows[0] == ["measure", "edge run", "hand-written peer", "edge run ÷ hand-written peer"]
    by_measure = {r[0].rstrip(" ↑↓"): r for r in rows[1:]}
    for measure in ("idle: CPU % of one core", "idle: wake-ups per second",
                    *(f"{rate} events/s: CPU % of one core per 1,000 events/s" for rate in (5, 50, 500, 5000))):
        assert measure in by_measure
    # The idle cell's wake-ups are the raw rows' (one run: the cell is that value).
    idle = [r for r in raw["cpu"]["rows"] if r["cell"] == "idle" and r["side"] == "service"]
    assert len(idle) == 1 and idle[0]["idle_wakeups_per_s"] > 0
    assert _med(by_measure["idle: wake-ups per second"][1]) == _num(fmt_number(idle[0]["idle_wakeups_per_s"]))
    assert raw["cpu"]["rates"] == [5, 50, 500, 5000]
    for rate in (5, 50, 500, 5000):
        r = next(r for r in raw["cpu"]["rows"] if r["cell"] == rate and r["side"] == "service")
        assert r["achieved_rate"] > 0 and r["lost"] == 0


def test_pi_columns_are_this_machine_times_the_stated_ratio(cpu_run: tuple[str, dict[str, Any]]) -> None:
    page, raw = cpu_run
    rows = _table(page, "CPU budget projected onto a Raspberry Pi (edge run)")
    assert rows[0][:4] == ["measure", "this machine", "Raspberry Pi 4", "Pi Zero 2 W"]
    by_measure = {r[0]: r[1:4] for r in rows[1:]}
    # The Pi 4's ratio: its published n-body time over this run's, scaled to the same steps.
    nbody = statistics.median(raw["cpu"]["nbody_s"]) * 5_000_000 / raw["cpu"]["nbody_steps"]
    pi4 = 158.263 / nbody
    assert by_measure["core time ÷ this machine's"][:2] == ["1", fmt_number(pi4)]
    assert 1 < pi4 < _med(by_measure["core time ÷ this machine's"][2])  # a Zero 2 W is slower still
    svc = {r["cell"]: r for r in raw["cpu"]["rows"] if r["side"] == "service"}
    idle = svc["idle"]["idle_cpu_pct"]
    assert by_measure["idle: CPU % of one core"][:2] == [fmt_number(idle), fmt_number(idle * pi4)]
    # One core's rate comes from the cost in the cell that put the most events/s into the log.
    top = max(raw["cpu"]["rates"], key=lambda rate: svc[rate]["achieved_rate"])
    per_1k = svc[top]["cpu_pct_per_1k"]
    assert by_measure[f"events/s one core sustains (from the {top:,} events/s cell)"][:2] == [
        fmt_number(100_000 / per_1k), fmt_number(100_000 / (per_1k * pi4))]
    assert by_measure["cores 10,000 events/s takes"][:2] == [
        fmt_number(per_1k / 10), fmt_number(per_1k * pi4 / 10)]
    section = page.split("## CPU budget projected onto a Raspberry Pi", 1)[1]
    assert "chaitanyamehta.github.io" in section and "leoncode.co.uk" in section
