"""Callers that get things wrong: each wrong type or value is a typed error at the call,
a CLI gets one line on stderr and a non-zero exit, and the log is left as it was.

test_bad_input.py covers bad topic configs, partition counts, corrupt and locked
databases; this file walks the rest of the public API and every CLI flag.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ._helpers import REPO, run_tool


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, f"exit {proc.returncode}, stderr {err!r}"
    assert err.count("\n") == 1, f"not one line: {err!r}"
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


# -- where the log is -----------------------------------------------------------------------------

def test_bootstrap_server_host_port_says_what_to_pass_and_creates_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EDGE_DATA_DIR"}
    env["PYTHONPATH"] = str(REPO)
    for tool, args in [("topics", ["--list"]), ("topics", ["--create", "--topic", "t"]),
                       ("console-producer", ["--topic", "t"]), ("consumer-groups", ["--list"])]:
        proc = subprocess.run([sys.executable, "-m", "broker", tool, "--bootstrap-server", "localhost:9092", *args],
                              capture_output=True, cwd=tmp_path, env=env, input=b"x\n", timeout=60)
        _one_line_error(proc, "--bootstrap-server localhost:9092: this tool reads the box's log directory",
                        "pass --data-dir DIR")
    assert list(tmp_path.iterdir()) == []


def test_bootstrap_server_naming_the_log_directory_works(tmp_path: Path) -> None:
    d = tmp_path / "log"
    assert run_tool("topics", "--create", "--topic", "t", data_dir=d).returncode == 0
    proc = run_tool("topics", "--bootstrap-server", str(d), "--list")
    assert proc.returncode == 0 and proc.stdout == b"t\n", proc
