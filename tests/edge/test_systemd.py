"""systemd units: verify passes and the offline security exposure is 2.0 or lower.

Both edge.service and the simulator template edge-sim@.service (checked as
an instance, as systemd would run it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNIT = UNITS_DIR / "edge.service"
SIM_UNIT = UNITS_DIR / "edge-sim@.service"
ANALYZE = shutil.which("systemd-analyze") or "systemd-analyze"
BIN = Path(sys.executable).parent

# (unit file, name to check it under, the /opt path of its program, this checkout's program)
UNITS = [
    pytest.param(UNIT, "edge.service", "/opt/edge/venv/bin/edge", BIN / "edge", id="edge"),
    pytest.param(SIM_UNIT, "edge-sim@fleet.service", "/opt/edge/venv/bin/edge-sim",
                 BIN / "edge-sim", id="edge-sim@"),
]


@pytest.fixture(autouse=True)
def _systemd_analyze_installed() -> None:
    # A skipped test proves nothing: deploy/setup.sh installs systemd, so its
    # absence is a set-up failure to report, not a reason to pass quietly.
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run deploy/setup.sh"


@pytest.mark.parametrize(("unit", "name", "opt_path", "program"), UNITS)
def test_unit_verifies(tmp_path: Path, unit: Path, name: str, opt_path: str, program: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's program.
    copy = tmp_path / name
    copy.write_text(unit.read_text().replace(opt_path, str(program)))
    proc = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Unknown key" not in proc.stderr and "Unknown" not in proc.stdout, proc.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    # The check above can fail: a unit whose program is missing does not verify.
    copy = tmp_path / "edge-sim@fleet.service"
    copy.write_text(SIM_UNIT.read_text().replace("/opt/edge/venv/bin/edge-sim",
                                                 str(tmp_path / "no-such-program")))
    proc = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "no-such-program" in proc.stderr


@pytest.mark.parametrize(("unit", "name", "opt_path", "program"), UNITS)
def test_security_exposure_at_most_2(tmp_path: Path, unit: Path, name: str, opt_path: str,
                                     program: Path) -> None:
    copy = tmp_path / name
    copy.write_text(unit.read_text())
    proc = subprocess.run([ANALYZE, "security", "--offline=true", str(copy)], capture_output=True,
                          text=True, timeout=60)
    assert "Unknown key" not in proc.stderr, proc.stderr
    m = re.search(rf"Overall exposure level for {re.escape(name)}: ([0-9.]+)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    assert float(m.group(1)) <= 2.0, proc.stdout


def test_unit_is_notify_with_watchdog_and_reload() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID",
                 "DynamicUser=yes", "StateDirectory=edge", "SupplementaryGroups=dialout"):
        assert line in text


def test_sim_unit_runs_a_profile_as_the_appliance_user() -> None:
    text = SIM_UNIT.read_text()
    # The instance name picks the profile; the ports' links live under the instance's
    # runtime directory; the same dynamic user as edge.service may open the ptys.
    for line in ("EnvironmentFile=/etc/edge/sim/%i.env", "EDGE_SIM_LINK_DIR=/run/edge-sim/%i",
                 "RuntimeDirectory=edge-sim/%i", "DynamicUser=yes", "User=edge",
                 "ExecStart=/opt/edge/venv/bin/edge-sim", "PrivateDevices=yes"):
        assert line in text
    assert "DynamicUser=yes" in UNIT.read_text() and "User=" not in UNIT.read_text().replace(
        "DynamicUser", "")  # edge.service's dynamic user is named after it: "edge"


def test_the_example_sim_profile_runs_edge_sim(tmp_path: Path) -> None:
    # A misspelt EDGE_SIM_* variable would be ignored without a word: check every name
    # against edge-sim --help, then run the profile (to stdout, one reading per device).
    profile = Path(__file__).resolve().parents[2] / "deploy" / "pi" / "sim-example.env"
    env_vars = dict(line.split("=", 1) for line in profile.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#"))
    sim = str(BIN / "edge-sim")
    helptext = subprocess.run([sim, "--help"], capture_output=True, text=True, timeout=60).stdout
    known = set(re.findall(r"env:\s+(EDGE_SIM_[A-Z_]+)", helptext.replace("\n", " ")))
    assert env_vars and set(env_vars) <= known, set(env_vars) - known
    truth = tmp_path / "truth.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SIM_")}
    env.update(env_vars, EDGE_SIM_OUTPUT="stdout", EDGE_SIM_COUNT="1", EDGE_SIM_FAST="1",
               EDGE_SIM_NO_PROGRESS="1", EDGE_SIM_TRUTH=str(truth))
    proc = subprocess.run([sim], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    devices = sorted(json.loads(line)["device_id"] for line in truth.read_text().splitlines())
    assert devices == ["bed-1", "car-1", "room-1", "room-2"]
