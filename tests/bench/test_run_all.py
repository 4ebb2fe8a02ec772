"""bench/run_all.py's quick mode, smallest parts: the edge log, persist-queue and Kafka (1 broker).

Runs the real command (real log, real persist-queue, kafka-producer-perf-test against the
session's 1-broker cluster) and checks what it writes: the machine described, the command,
a table whose cells parse as ``median [min–max]`` over the runs, ratios computed from the
medians of the same row, memory from the OS, and a chaos section naming its source. It
checks behaviour, never how fast anything was.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNS = 2

sys.path.insert(0, str(REPO / "bench"))
from _table import fmt_cell, fmt_ratio  # noqa: E402

_NUM = r"-?[\d,]+(?:\.\d+)?"
_CELL = re.compile(rf"^(?P<med>{_NUM})(?: \[(?P<lo>{_NUM})–(?P<hi>{_NUM})\])?$")


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _table(page: str, title: str) -> list[list[str]]:
    """The rows (cells stripped) of the markdown table under the ``## title`` heading."""
    section = page.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if "---" not in ln]


@pytest.fixture(scope="module")
def chaos_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A result file in the shape tests/chaos writes (two systems, no faults)."""
    path = tmp_path_factory.mktemp("chaos") / "result.json"
    systems = [{"name": "edge", "emitted": 12345, "arrived": 12345, "lost_acked": 0,
                "duplicates": 0, "drain_s": []},
               {"name": "bridge", "emitted": 12345, "arrived": 12000, "lost_acked": 345,
                "duplicates": 7, "drain_s": []}]
    path.write_text(json.dumps({"seed": 42, "profile": "short", "duration_s": 60,
                                "faults": [], "systems": systems}))
    return path


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, kafka_cluster_module, chaos_result):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--runs", str(RUNS),
         "--parts", "log,kafka", "--out", str(out), "--kafka-dir", str(kafka_cluster_module.directory),
         "--chaos", str(chaos_result)],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"run_all failed:\n{proc.stdout}\n{proc.stderr}"
    return out, proc.stdout


@pytest.fixture(scope="module")
def kafka_cluster_module(_kafka_cluster_session):  # type: ignore[no-untyped-def]
    # The session's 1-broker cluster (tests/fixtures/kafka.py), module-scoped for quick_run;
    # restarted first if an earlier test left its broker dead, as the kafka_cluster fixture does.
    cluster = _kafka_cluster_session
    for index, broker in enumerate(cluster.brokers):
        if not broker.running:
            cluster.restart_broker(index)  # rewrites cluster.json, which --kafka-dir reads
    cluster.wait_ready()
    return cluster


pytestmark = pytest.mark.kafka


def test_page_names_the_machine_and_the_command(quick_run) -> None:  # type: ignore[no-untyped-def]
    out, _stdout = quick_run
    page = (out / "results.md").read_text()
    machine = dict((row[0], row[1]) for row in _table(page, "Machine") if len(row) == 2)
    for key in ("CPU", "RAM", "kernel", "Python", "SQLite", "Java", "Apache Kafka"):
        assert machine.get(key), f"machine table lacks {key}: {machine}"
    assert re.search(r"\d+ cores", machine["CPU"])
    assert "bench/run_all.py --quick --runs 2 --parts log,kafka" in page
    # Says the figures are a noisy smoke run on a machine that other work may share.
    assert "quick mode" in page and "other work may share" in page and "load average" in page


def test_table_cells_are_medians_over_the_runs_and_ratios_come_from_the_same_row(quick_run) -> None:  # type: ignore[no-untyped-def]
    out, stdout = quick_run
    page = (out / "results.md").read_text()
    raw = json.loads((out / "results.json").read_text())
    (log,) = [t for t in raw["tables"] if t["key"] == "log"]
    assert log["columns"] == ["edge log", "Kafka", "persist-queue"]
    rows = _table(page, log["title"])
    head, body = rows[0], rows[1:]
    assert head == ["measure", *log["columns"], "edge log ÷ Kafka", "edge log ÷ persist-queue"]
    assert [r["measure"] for r in log["rows"]] == [b[0].rstrip(" ↑↓") for b in body]
    for shown, row in zip(body, log["rows"], strict=True):
        for i, col in enumerate(log["columns"], start=1):
            values = row["values"].get(col, [])
            assert len(values) in (0, RUNS), f"{row['measure']} / {col}: {values}"
            assert shown[i] == fmt_cell(values)
            if not values:
                continue
            m = _CELL.match(shown[i])
            assert m, f"cell {shown[i]!r} of {row['measure']} / {col} does not parse"
            assert _num(m["lo"]) <= _num(m["med"]) <= _num(m["hi"])
            assert row["medians"][col] == statistics.median(values)
        for j, peer in enumerate(log["columns"][1:], start=len(log["columns"]) + 1):
            a, b = row["medians"].get("edge log"), row["medians"].get(peer)
            expected = a / b if a is not None and b else None
            assert shown[j] == fmt_ratio(expected), f"{row['measure']}: edge log ÷ {peer}"
    # The page's table is the one printed on stdout.
    assert log["title"] in stdout and rows[1][1] in stdout


def test_figures_are_plausible(quick_run) -> None:  # type: ignore[no-untyped-def]
    out, _stdout = quick_run
    raw = json.loads((out / "results.json").read_text())
    (log,) = [t for t in raw["tables"] if t["key"] == "log"]
    row = {r["measure"]: r for r in log["rows"]}
    rate = row["durable append, unthrottled (records/s)"]["values"]
    for col in ("edge log", "Kafka", "persist-queue"):
        assert all(0 < v < 10_000_000 for v in rate[col]), (col, rate[col])
    for col in ("edge log", "Kafka", "persist-queue"):
        rss = row["peak RSS of the storing process (MB)"]["values"][col]
        assert all(5 < v < 8192 for v in rss), (col, rss)  # a real process's VmHWM, in MB
    # The broker and the client are two processes: their sum is more than the broker alone.
    alone = row["peak RSS of the storing process (MB)"]["values"]["Kafka"]
    both = row["peak RSS, storing process + client (MB)"]["values"]["Kafka"]
    assert all(b > a for a, b in zip(alone, both, strict=True))
    for col in ("edge log", "Kafka", "persist-queue"):
        p50 = row["latency p50 at 5,000 records/s (ms)"]["values"][col]
        p99 = row["latency p99 at 5,000 records/s (ms)"]["values"][col]
        assert all(0 <= a <= b for a, b in zip(p50, p99, strict=True)), (col, p50, p99)


def test_chaos_section_names_its_source_and_shows_both_systems(quick_run, chaos_result) -> None:  # type: ignore[no-untyped-def]
    out, _stdout = quick_run
    page = (out / "results.md").read_text()
    chaos = page.split("## Chaos soak\n", 1)[1]
    assert str(chaos_result) in chaos and "written 20" in chaos  # where it came from, and when
    assert (out / "chaos-result.json").read_text() == chaos_result.read_text()
    rows = _table(page, "Chaos soak")
    assert rows[0][1:3] == ["edge", "bridge"]
    assert any(r[1:3] == ["12,345", "12,345"] or r[1:3] == ["12345", "12345"] for r in rows)


def test_plots_are_drawn_or_the_page_says_why_not(quick_run) -> None:  # type: ignore[no-untyped-def]
    out, _stdout = quick_run
    page = (out / "results.md").read_text()
    plots = page.split("## Plots\n", 1)[1].split("\n## ", 1)[0]
    # The log part has no time series: the page says so instead of linking stale images.
    assert "not drawn" in plots or "No part of this run produced a time series" in plots
    assert "![" not in plots
