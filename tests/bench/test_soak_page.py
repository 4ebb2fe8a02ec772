"""The long chaos soak on the results page: its own section, its table, its plot.

bench/run_all.py with no benchmark part at all (``--parts`` must name one; the streams
part is not run because the run is stopped short of it: we call the page functions that
main() calls, on a soak result written the way tests/chaos writes one, with a timeline
sampled from a real process).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos._timeline import ProcessSampler

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import _page  # noqa: E402
import run_all  # noqa: E402
from _machine import describe  # noqa: E402


def _sampled_timeline() -> list[dict]:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        sampler = ProcessSampler(lambda: child.pid if child.poll() is None else None,
                                 every_s=0.05)
        sampler.start()
        time.sleep(0.6)
        child.kill()
        child.wait()
        time.sleep(0.2)
        sampler.stop()
    return sampler.samples


def _result(profile: str, samples: list[dict]) -> dict:
    t0 = samples[0]["t_ms"]
    return {
        "seed": 4242, "profile": profile, "duration_s": 3600, "started_ms": t0,
        "crashes": {"appliance": 0, "bridge": 0},
        "faults": [{"kind": "service-sigkill", "detail": "down 3 s", "start_ms": t0 + 100,
                    "end_ms": t0 + 300},
                   {"kind": "network-cut", "detail": "reset 10 s", "start_ms": t0 + 350,
                    "end_ms": t0 + 500}],
        "systems": [{"name": "appliance", "emitted": 100, "arrived": 100, "lost_acked": 0,
                     "duplicates": 0, "drain_s": []},
                    {"name": "bridge", "emitted": 100, "arrived": 90, "lost_acked": 10,
                     "duplicates": 2, "drain_s": []}],
        "timeline": {"service": samples, "window_ms": 100,
                     "upstream": {"appliance": [(t0, 5), (t0 + 100, 0), (t0 + 200, 9)],
                                  "bridge": [(t0, 4), (t0 + 100, 0), (t0 + 200, 1)]}},
    }


def _results() -> _page.Results:
    now = dt.datetime.now(dt.UTC)
    return _page.Results(machine=describe(), command="test", started=now, finished=now,
                         quick=True, runs=1)


def test_long_soak_gets_its_section_table_and_plot(tmp_path: Path) -> None:
    samples = _sampled_timeline()
    assert any(s["rss_bytes"] for s in samples) and any(s["pid"] is None for s in samples)
    kept = tmp_path / "elsewhere" / "long.json"
    kept.parent.mkdir()
    kept.write_text(json.dumps(_result("long", samples)))
    out = tmp_path / "docs"
    out.mkdir()
    args = argparse.Namespace(out=out, soak=str(kept))
    res = _results()
    run_all._soak(args, res)
    run_all._soak_plots(res, out)
    assert (out / "chaos-long-result.json").read_text() == kept.read_text()
    png = out / "results-soak-long.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    page = _page.render(res)
    section = page.split("## Chaos soak, long profile\n", 1)[1]
    assert "60 minutes of load, 2 faults" in section and str(kept) in section
    assert "| measure |" in section and "bridge" in section   # the table
    assert "![Chaos soak, long profile" in section and "(results-soak-long.png)" in section
    plots = page.split("## Plots\n", 1)[1].split("\n## ", 1)[0]
    assert "results-soak-long.png" not in plots   # shown once, beside its table


def test_no_long_soak_result_says_how_to_make_one(tmp_path: Path) -> None:
    res = _results()
    run_all._soak(argparse.Namespace(out=tmp_path, soak="auto"), res)
    assert res.soak is None and not res.errors
    section = _page.render(res).split("## Chaos soak, long profile\n", 1)[1]
    assert "pytest -s -m soak tests/chaos" in section


def test_a_named_long_soak_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    res = _results()
    run_all._soak(argparse.Namespace(out=tmp_path, soak=str(tmp_path / "nope.json")), res)
    assert "no result file at" in res.errors["long chaos soak"]
