"""deploy/demo.sh runs non-interactively, stops cleanly and says where the data is."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.edge._helpers import read_topic

TOP = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_demo_runs_and_tells_how_to_read_the_data(tmp_path: Path) -> None:
    env = dict(os.environ, DEMO_SECONDS="6", DEMO_SKIP_SETUP="1", DEMO_KAFKA="0",
               DEMO_DIR=str(tmp_path / "demo"))
    proc = subprocess.run(["bash", str(TOP / "deploy" / "demo.sh")], capture_output=True, text=True,
                          env=env, timeout=100, cwd=TOP)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "edge run exited with status 0" in out
    assert re.search(r"edge demo-edge: OK", out), out
    data = tmp_path / "demo" / "data"
    assert f"edge-console-consumer --data-dir {data} --topic gps --from-beginning" in out
    assert read_topic(data, "gps") and read_topic(data, "temperature")
