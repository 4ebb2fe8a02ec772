"""bench/run_all.py's "streams" part in quick mode: edge.streams beside the hand-written loop.

Runs the real command (bench/bench_streams.py's cells on a real log, each in its own
process) and checks what it writes: the table on the page and in results.json, cells that
are ``median [min–max]`` over the runs, ratios from the medians of the same row, the
windowed row without a peer, memory from the OS. It checks behaviour, never how fast
anything was.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_run_all import _CELL, RUNS, _num, _table

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO / "bench"))
from _table import fmt_cell, fmt_ratio  # noqa: E402

COLUMNS = ["edge.streams", "plain loop"]


@pytest.fixture(scope="module")
def streams_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--runs", str(RUNS),
         "--parts", "streams", "--out", str(out), "--chaos", "skip"],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"run_all failed:\n{proc.stdout}\n{proc.stderr}"
    return out, proc.stdout


def test_the_streams_table_is_on_the_page_with_medians_and_ratios_of_its_own_rows(
        streams_run: tuple[Path, str]) -> None:
    out, stdout = streams_run
    page = (out / "results.md").read_text()
    raw = json.loads((out / "results.json").read_text())
    (streams,) = [t for t in raw["tables"] if t["key"] == "streams"]
    assert streams["columns"] == COLUMNS
    rows = _table(page, streams["title"])
    head, body = rows[0], rows[1:]
    assert head == ["measure", *COLUMNS, "edge.streams ÷ plain loop"]
    assert [r["measure"] for r in streams["rows"]] == [b[0].rstrip(" ↑↓") for b in body]
    for shown, row in zip(body, streams["rows"], strict=True):
        for i, col in enumerate(COLUMNS, start=1):
            values = row["values"].get(col, [])
            assert len(values) in (0, RUNS), f"{row['measure']} / {col}: {values}"
            assert shown[i] == fmt_cell(values)
            if values:
                m = _CELL.match(shown[i])
                assert m, f"cell {shown[i]!r} of {row['measure']} / {col} does not parse"
                assert _num(m["lo"]) <= _num(m["med"]) <= _num(m["hi"])
                assert row["medians"][col] == statistics.median(values)
        a, b = row["medians"].get("edge.streams"), row["medians"].get("plain loop")
        assert shown[3] == fmt_ratio(a / b if a is not None and b else None), row["measure"]
    assert streams["title"] in stdout and body[0][1] in stdout
    assert "quick mode" in page
    assert "Not part of this run: log (not in --parts)" in page


def test_map_filter_has_both_sides_and_the_windowed_mean_has_no_peer(
        streams_run: tuple[Path, str]) -> None:
    out, _stdout = streams_run
    raw = json.loads((out / "results.json").read_text())
    (streams,) = [t for t in raw["tables"] if t["key"] == "streams"]
    row = {r["measure"]: r for r in streams["rows"]}
    for what in ("map + filter", "1-min tumbling windowed mean, 1,000 keys"):
        for measure in ("records/s (wall clock)", "records per CPU-second"):
            r = row[f"{what}: {measure}"]
            assert r["higher_is_better"]
            assert all(0 < v < 10_000_000 for v in r["values"]["edge.streams"])
        rss = row[f"{what}: peak RSS (MB)"]
        assert not rss["higher_is_better"]
        assert all(5 < v < 8192 for v in rss["values"]["edge.streams"])  # a real VmHWM, in MB
    mf = row["map + filter: records/s (wall clock)"]
    assert len(mf["values"]["plain loop"]) == RUNS and mf["ratios"]["plain loop"] > 0
    windowed = row["1-min tumbling windowed mean, 1,000 keys: records/s (wall clock)"]
    assert "plain loop" not in windowed["values"] and windowed["ratios"]["plain loop"] is None
    # Quick mode is short: its own input size, said on the page.
    assert any(n.startswith("20,000 JSON temperature readings") for n in streams["notes"])


def test_an_unknown_part_is_refused_with_the_list() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run_all.py"), "--parts",
                           "streams,nope"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown nope" in proc.stderr and "appliance, streams" in proc.stderr
