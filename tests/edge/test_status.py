"""`edge status`: per-device rates and last reading, one-shot (plain, JSON) and live.

The rate window is tested with an injected clock; the command against a real
`edge run` subprocess fed over a real pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge._rates import EventRate
from edge._status import render, summarize
from tests.edge._helpers import health, serial_device, start_edge, stop_edge, wait_for, write_config

pytestmark = pytest.mark.timeout(120)


class Tick:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rate_over_the_last_minute() -> None:
    now = Tick()
    rate = EventRate(60.0, now)
    now.t += 0.5
    rate.add(5)
    assert rate.span_s() == 1.0 and rate.per_second() == 5.0  # not 10/s after half a second
    now.t += 9.5
    rate.add(15)
    assert rate.span_s() == 10.0 and rate.per_second() == 2.0  # 20 events in 10 s
    now.t += 55  # 65 s after the start: the first 5 events left the window
    assert rate.count() == 15 and rate.span_s() == 60.0 and rate.per_second() == 0.25
    now.t += 60
    assert rate.per_second() == 0.0
    with pytest.raises(ValueError, match="window_s must be > 0, got 0"):
        EventRate(0)


def test_render_shows_rate_and_last_reading() -> None:
    h = {"ok": True, "edge_id": "e1", "uptime_s": 12, "clock": "gps",
         "time": {"status": "gps", "jumps": 1},
         "devices": {"room-1": {"state": "connected", "kind": "temperature", "topic": "temperature",
                                "readings": 30, "rate_per_s": 2.5, "dead_letters": 0,
                                "restarts": 0, "last_reading_age_s": 0.4,
                                "last_reading": {"key": "room-1", "timestamp_ms": 1,
                                                 "value": {"temperature_c": 21.5}}}},
         "log": {"ok": True, "records": 30, "bytes": 900, "data_dir": "/d"}, "uplink": None}
    text = render(h)
    assert "clock gps, 1 jump)" in text
    row = [line for line in text.splitlines() if "room-1" in line][0]
    assert row.split()[4:8] == ["30", "2.50", "0", "0"]
    assert row.endswith("0.4s ago  room-1: temperature_c=21.5")
    long = {"key": "car-1", "value": {"lat": 52.123456789, "lon": 13.0, "fix_mode": "3d",
                                      "talkers": ["GP", "GL"], "hdop": 0.9}}
    line = summarize(long, width=40)
    assert len(line) == 40 and line.startswith("car-1: lat=52.123456789 lon=13.0") and line.endswith(
        "...")
    assert summarize(None) == ""
    # [health] show_values off: the value is withheld, the rest of the row stays; a device's
    # last error (a refused CONNACK, a failed adapter) is shown at the end of its row.
    d = h["devices"]["room-1"]  # type: ignore[index]
    d["last_reading"] = {"key": "room-1", "timestamp_ms": 1, "value_withheld": True}
    d["last_error"] = "MqttConnectError: not authorised"
    row = [line for line in render(h).splitlines() if "room-1" in line][0]
    assert row.endswith("0.4s ago  room-1: (values withheld)  (MqttConnectError: not authorised)")


def test_render_shows_topics_and_streams() -> None:
    h = {"ok": False, "edge_id": "e1", "uptime_s": 1, "clock": "synced", "devices": {},
         "log": {"ok": True, "records": 12, "bytes": 700, "data_dir": "/d",
                 "topics": {"temperature": {"partitions": 3, "records": 12, "bytes": 700}}},
         "streams": {"vitals": {"state": "restarting", "records_in": 40, "records_out": 3,
                                "lag_records": 7, "late": 1, "dead_lettered": 2,
                                "last_error": "ValueError: bad"}},
         "uplink": None}
    lines = render(h).splitlines()
    assert ["temperature", "3", "12", "700"] in [line.split() for line in lines]
    [row] = [line for line in lines if "stream vitals" in line]
    assert row.split()[2:] == ["restarting", "in=40", "out=3", "lag=7", "late=1", "dead=2",
                               "(ValueError:", "bad)"]


def status(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "status", "--address", f"127.0.0.1:{port}",
                           *args], capture_output=True, text=True, timeout=30)


def test_status_of_a_running_service(tmp_path: Path, pty_device) -> None:  # type: ignore[no-untyped-def]
    config, port = write_config(tmp_path, serial_device("room-1", "temperature",
                                                        str(pty_device.link), "text"),
                                extra="show_values = true")  # [health]: off by default
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        pty_device.wait_reader(timeout=30)
        for i in range(30):
            pty_device.write(f"{20 + i / 10:.1f}\n".encode())
        wait_for(lambda: ((health(port) or {}).get("devices", {}).get("room-1") or {})
                 .get("readings") == 30, 30, "30 readings in the log")

        proc = status(port, "--json")
        assert proc.returncode == 0, proc.stderr  # healthy: exit 0
        d = json.loads(proc.stdout)["devices"]["room-1"]
        # All 30 arrived well within the last minute: rate x window gives them back.
        assert round(d["rate_per_s"] * d["rate_window_s"]) == 30
        assert d["last_reading"]["key"] == "room-1"
        assert d["last_reading"]["value"] == {"temperature_c": 22.9}

        proc = status(port)
        assert proc.returncode == 0, proc.stderr
        row = [line for line in proc.stdout.splitlines() if line.strip().startswith("room-1")][0]
        assert row.split()[4] == "30" and float(row.split()[5]) == pytest.approx(
            d["rate_per_s"], rel=0.5)
        assert row.endswith("room-1: temperature_c=22.9")

        # Topics with their sizes, from the log itself (refreshed by the housekeeping pass).
        topic = d["topic"]
        wait_for(lambda: ((health(port) or {}).get("log", {}).get("topics", {}).get(topic) or {})
                 .get("records") == 30, 30, f"30 records in {topic} in /health")
        proc = status(port)
        [trow] = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] == [topic]]
        assert trow[2] == "30" and int(trow[3]) > 30 * len("20.0")

        # The live view: redraws until Ctrl-C, then exits 0.
        live = subprocess.Popen([sys.executable, "-m", "edge", "status", "--address",
                                 f"127.0.0.1:{port}", "--watch", "--interval", "0.2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            frames = []
            assert live.stdout is not None
            while len(frames) < 2:
                line = live.stdout.readline()
                assert line, live.stderr.read() if live.stderr else ""
                if line.startswith("edge test-edge"):
                    frames.append(line)
                elif line.strip().startswith("room-1"):
                    assert "temperature_c=22.9" in line and " 30 " in line
        finally:
            live.send_signal(signal.SIGINT)
            out, err = live.communicate(timeout=20)
        assert live.returncode == 0, err
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()


def test_status_when_nothing_runs() -> None:
    from tests.fixtures.mosquitto import free_port

    proc = status(free_port())
    assert proc.returncode == 1
    assert "is `edge run` running?" in proc.stderr


@pytest.mark.parametrize("argv", [["status", "--watch", "--interval", "0"],
                                  ["status", "--watch", "--interval", "-1"],
                                  ["status", "--watch", "--interval", "nan"],
                                  ["run", "--config", "edge.toml", "--shutdown-timeout", "nan"],
                                  ["run", "--config", "edge.toml", "--shutdown-timeout", "-5"]])
def test_a_period_that_is_no_period_is_a_usage_error(argv: list[str]) -> None:
    # --interval 0 asked /health in a busy loop; -1 and nan ended in a sleep() traceback.
    proc = subprocess.run([sys.executable, "-m", "edge", *argv], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"argument {argv[-2]}: expected" in proc.stderr.splitlines()[-1]


def test_a_device_whose_port_cannot_be_opened_says_why(tmp_path: Path) -> None:
    # Not a failure to start (a USB adapter may come later): the device is disconnected,
    # its last_error says why, in /health and `edge status`, and clears once it opens.
    from tests.fixtures.pty import PtyDevice

    link = tmp_path / "ttyUSB-later"
    config, port = write_config(tmp_path, serial_device("gps-1", "gps", str(link), "nmea0183"))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    device = None
    try:
        d = wait_for(lambda: ((health(port) or {}).get("devices", {}).get("gps-1") or {})
                     .get("last_error") and health(port)["devices"]["gps-1"], 30,  # type: ignore[index]
                     "the device's last_error")
        assert d["state"] == "disconnected" and d["last_error"].startswith(f"cannot open {link}")
        assert "No such file" in d["last_error"]
        proc = status(port)
        assert proc.returncode == 1  # degraded
        row = [line for line in proc.stdout.splitlines() if line.strip().startswith("gps-1")][0]
        assert f"(cannot open {link}" in row
        device = PtyDevice(link)  # plugged in
        d = wait_for(lambda: (x := health(port)["devices"]["gps-1"])["connected"] and x,  # type: ignore[index]
                     30, "the device to connect")
        assert d["last_error"] is None
    finally:
        rc = stop_edge(edge, edge_log)
        if device is not None:
            device.close()
    assert rc == 0, edge_log.read_text()
