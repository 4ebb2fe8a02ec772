"""Bytes written to disk as a first-class figure: ``edge_disk_bytes_written_total``, the
``disk`` section of /health and two lines of ``edge status`` (issue #12: an SD card
wears out by the bytes written to it).

The window and the projection are tested with injected times; the figures against a
real ``edge run`` fed over a real pseudo-terminal.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from edge._disk import DAY_S, DiskWrites, process_write_bytes
from edge._status import render
from tests.edge._helpers import health, serial_device, start_edge, stop_edge, wait_for, write_config
from tests.fixtures.pty import PtyDevice

pytestmark = pytest.mark.timeout(120)


def test_projection_is_the_window_scaled_to_a_day() -> None:
    disk = DiskWrites(window_s=600)
    assert disk.sample(0.0, 1_000, 0) == 1_000  # the first sample counts what came before
    assert disk.describe() is None  # one sample is no rate
    assert disk.sample(100.0, 51_000, 10) == 50_000
    d = disk.describe()
    assert d == {"bytes_written": 51_000, "window_s": 100.0, "bytes_written_window": 50_000,
                 "records_window": 10, "bytes_per_record": 5_000,
                 "projected_bytes_per_day": 50_000 * DAY_S // 100}
    # Past the window, its start moves: the first 1,000 bytes and 100 s drop out.
    for t in range(200, 1001, 100):
        disk.sample(float(t), 51_000 + (t - 100) * 10, 10 + (t - 100) // 10)
    d = disk.describe()
    assert d is not None and d["window_s"] == 600.0
    assert d["bytes_written_window"] == 6_000 and d["records_window"] == 60
    assert d["projected_bytes_per_day"] == 10 * DAY_S and d["bytes_per_record"] == 100
    with pytest.raises(ValueError, match="window_s must be > 0, got 0"):
        DiskWrites(window_s=0)


def test_write_bytes_of_this_process_and_a_kernel_that_does_not_say(tmp_path: Path) -> None:
    before = process_write_bytes()
    assert before is not None
    with open(tmp_path / "f", "wb") as f:
        f.write(b"x" * 1_000_000)
        f.flush()
    after = process_write_bytes()
    assert after is not None and after >= before  # dirtied pages are counted when written back
    assert process_write_bytes(str(tmp_path / "no-such-file")) is None


def test_status_lines_fit_80_columns() -> None:
    h = {"ok": True, "edge_id": "e1", "uptime_s": 700, "clock": "synced", "devices": {},
         "log": {"ok": True, "records": 10, "bytes": 900, "data_dir": "/d"}, "uplink": None,
         "disk": {"bytes_written": 999_999_999_999, "window_s": 600.4,
                  "bytes_written_window": 999_999_999, "records_window": 1,
                  "bytes_per_record": 999_999_999, "projected_bytes_per_day": 999_999_999_999_999,
                  "log_file_bytes": 999_999_999_999, "log_disk_bytes": 999_999_999_999}}
    lines = [line for line in render(h).splitlines() if line.startswith("  disk")]
    assert lines == ["  disk: 1000.0 GB written, 1000.0 MB/record; log files 1000.0 GB",
                     "  disk writes: 1000.0 TB/day at the last 10m's rate"]
    assert all(len(line) <= 80 for line in lines)
    h["disk"] = {"bytes_written": None, "log_file_bytes": None, "log_disk_bytes": 4096}
    assert [line for line in render(h).splitlines() if line.startswith("  disk")] == [
        "  disk: written bytes not known yet; log files 4.1 kB"]


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    [line] = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.split()[1])


def test_bytes_written_by_a_running_service(tmp_path: Path, pty_device: PtyDevice) -> None:
    config, port = write_config(tmp_path, serial_device("room-1", "temperature",
                                                        str(pty_device.link), "text"))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        pty_device.wait_reader(timeout=30)
        for i in range(50):
            pty_device.write(f"{20 + i / 10:.1f}\n".encode())
        wait_for(lambda: ((health(port) or {}).get("devices", {}).get("room-1") or {})
                 .get("readings") == 50, 30, "50 readings in the log")
        # The housekeeping pass samples once a second: wait for one that saw the records.
        disk = wait_for(lambda: (d := (health(port) or {}).get("disk") or {}).get("records_window")
                        and d.get("bytes_written") and d, 30, "the disk figures after the readings")
        assert disk["bytes_written"] > 0 and disk["bytes_written_window"] > 0
        assert disk["bytes_written_window"] <= disk["bytes_written"]
        assert disk["bytes_per_record"] == round(disk["bytes_written_window"] / disk["records_window"])
        assert disk["projected_bytes_per_day"] == pytest.approx(
            disk["bytes_written_window"] * 86_400 / disk["window_s"], rel=0.01)
        assert disk["log_file_bytes"] > 0 and disk["log_disk_bytes"] >= disk["log_file_bytes"]
        # The counter is the same total, from a pass at or after the one /health showed.
        assert _metric(port, "edge_disk_bytes_written_total") >= disk["bytes_written"]
        assert _metric(port, "edge_disk_bytes_written_per_day") > 0

        proc = subprocess.run([sys.executable, "-m", "edge", "status", "--address",
                               f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stdout.splitlines() if line.startswith("  disk")]
        assert len(lines) == 2 and "written" in lines[0] and "/record" in lines[0]
        assert lines[1].startswith("  disk writes: ") and "/day at the last" in lines[1]
        assert all(len(line) <= 80 for line in lines)
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
