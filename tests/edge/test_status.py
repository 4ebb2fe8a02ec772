"""`edge status`: per-device rates and last reading, one-shot (plain, JSON) and live.

The rate window is tested with an injected clock; the command against a real
`edge run` subprocess fed over a real pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge._rates import EventRate
from edge._status import render, summarize
from edge._status_screen import render_screen
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
        # No reading came since the --json call, so the rate can only have fallen since (its
        # span grows); how far depends on how long the machine took between the two calls.
        assert row.split()[4] == "30" and 0 < float(row.split()[5]) <= d["rate_per_s"] + 0.005
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
        # One /health per try: the device's state may change between two calls.
        d = wait_for(lambda: (x := ((health(port) or {}).get("devices", {}).get("gps-1") or {}))
                     .get("last_error") and x, 30, "the device's last_error")
        assert d["state"] == "disconnected" and d["last_error"].startswith(f"cannot open {link}")
        assert "No such file" in d["last_error"]
        proc = status(port)
        assert proc.returncode == 1  # degraded
        row = [line for line in proc.stdout.splitlines() if line.strip().startswith("gps-1")][0]
        assert f"(cannot open {link}" in row
        device = PtyDevice(link)  # plugged in
        d = wait_for(lambda: (x := ((health(port) or {}).get("devices", {}).get("gps-1") or {}))
                     .get("connected") and x, 30, "the device to connect")
        assert d["last_error"] is None
    finally:
        rc = stop_edge(edge, edge_log)
        if device is not None:
            device.close()
    assert rc == 0, edge_log.read_text()


def _health_of(n_devices: int, broken: set[int]) -> dict[str, Any]:
    devices = {f"room-{i}": {"state": "disconnected" if i in broken else "connected",
                             "kind": "temperature", "topic": "temperature", "readings": 30,
                             "rate_per_s": 2.5, "dead_letters": 0, "restarts": 0,
                             "last_reading_age_s": 0.4,
                             "last_reading": {"key": f"room-{i}", "timestamp_ms": 1,
                                              "value": {"temperature_c": 21.5}},
                             "last_error": f"cannot open /dev/ttyUSB{i}: [Errno 2] No such file"
                             if i in broken else None}
               for i in range(n_devices)}
    return {"ok": False, "edge_id": "e1", "uptime_s": 12, "clock": "synced", "devices": devices,
            "log": {"ok": True, "records": 30, "bytes": 900, "data_dir": "/d",
                    "topics": {"temperature": {"partitions": 2, "records": 30, "bytes": 900},
                               "blood_pressure": {"partitions": 2, "records": 0, "bytes": 0}}},
            "uplink": {"state": "offline", "lag_records": 7, "last_error": "refused"}}


def test_the_screen_fits_the_terminal_and_says_what_it_left_out() -> None:
    h = _health_of(30, broken={3, 25, 29})
    for width, height in [(80, 24), (100, 30), (40, 10)]:
        lines = render_screen(h, width, height).splitlines()
        assert len(lines) == height - 1 and max(map(len, lines)) <= width  # the last row free
        assert lines[0].startswith("edge e1: DEGRADED")
        shown = [line.split()[0] for line in lines if line.startswith("  room-")]
        # The devices that need a look are never the ones cut.
        assert {"room-3", "room-25", "room-29"} <= set(shown)
        assert lines[-1] == (f"-- not shown: {30 - len(shown)} devices, 2 topics; "
                             f"`edge status --wide` shows all --")[:width - 3] + (
            "..." if width < 70 else "")
    # All fits: no hint, and the topics take the rows left over.
    lines = render_screen(_health_of(3, broken=set()), 80, 24).splitlines()
    assert not any("not shown" in line for line in lines)
    assert [line.split()[:2] for line in lines[-2:]] == [["temperature", "2"], ["blood_pressure", "2"]]
    row = [line for line in lines if line.startswith("  room-1 ")][0]
    assert row.endswith("0.4s ago  temperature_c=21.5")  # the key that repeats the name goes


class Screen:
    """What a ROWSxCOLS terminal shows after some output: auto-wrap at the last column,
    scrolling at the last row, cursor home and erase display (the two sequences
    `--watch` sends), as a VT100 does; enough to see what a user would."""

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.cells = [[" "] * cols for _ in range(rows)]
        self.row = self.col = 0

    def _newline(self) -> None:
        if self.row == self.rows - 1:
            self.cells = self.cells[1:] + [[" "] * self.cols]
        else:
            self.row += 1

    def feed(self, text: str) -> None:
        for part in re.split(r"(\x1b\[[0-9;]*[A-Za-z])", text):
            if part == "\x1b[H":
                self.row = self.col = 0
            elif part == "\x1b[2J":
                self.cells = [[" "] * self.cols for _ in range(self.rows)]
            elif part.startswith("\x1b["):
                raise AssertionError(f"a sequence this screen does not know: {part!r}")
            else:
                self._text(part)

    def _text(self, text: str) -> None:
        for ch in text:
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self._newline()
            else:
                if self.col == self.cols:  # deferred wrap, as xterm does
                    self.col = 0
                    self._newline()
                self.cells[self.row][self.col] = ch
                self.col += 1

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.cells]


def _run_in_pty(argv: list[str], rows: int, cols: int, until: Callable[[str], bool],
                timeout: float = 30) -> str:
    """Run ``argv`` with a real pty of ROWSxCOLS as its terminal; what it wrote, once
    ``until(output)`` holds (it is then stopped with SIGINT, as Ctrl-C would) or it exits."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(out.decode(errors="replace")):
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal (it exited)
                    break
        else:
            if not until(out.decode(errors="replace")):
                raise AssertionError(f"timed out; the terminal showed:\n{out.decode()}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        os.close(master)
    return out.decode(errors="replace")


CLEAR = "\x1b[H\x1b[2J"


def test_status_in_an_80x24_terminal(tmp_path: Path, pty_device) -> None:  # type: ignore[no-untyped-def]
    # One live device and 25 whose adapters are not plugged in (each row with its error):
    # more rows than 24, each wider than 80 columns in the full view.
    missing = "".join(serial_device(f"bed-{i}", "temperature", str(tmp_path / f"ttyUSB{i}"), "text")
                      for i in range(25))
    config, port = write_config(tmp_path, serial_device("room-1", "temperature",
                                                        str(pty_device.link), "text") + missing,
                                extra="show_values = true")
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        pty_device.wait_reader(timeout=30)
        for i in range(5):
            pty_device.write(f"{20 + i / 10:.1f}\n".encode())
        wait_for(lambda: ((health(port) or {}).get("devices", {}).get("room-1") or {})
                 .get("readings") == 5, 30, "5 readings in the log")
        wait_for(lambda: all(d.get("last_error") for n, d in (health(port) or {"devices": {}})
                             ["devices"].items() if n != "room-1"), 30, "25 devices' errors")
        base = [sys.executable, "-m", "edge", "status", "--address", f"127.0.0.1:{port}"]

        # The live view: after a few redraws the screen still starts with the header and
        # ends with the hint, every device row on one line.
        out = _run_in_pty(base + ["--watch", "--interval", "0.2"], 24, 80,
                          lambda o: o.count(CLEAR) >= 4)
        screen = Screen(24, 80)
        screen.feed(out[: out.rindex(CLEAR)])  # up to the last whole frame
        rows = screen.lines()
        assert rows[0].startswith("edge test-edge: DEGRADED"), rows
        hint = [r for r in rows if r][-1]
        assert hint.startswith("-- not shown: ") and "`edge status --wide` shows all" in hint, rows
        assert rows[22] == hint and rows[23] == ""  # the last row is left for the cursor
        devices = [r for r in rows if r.startswith(("  room-", "  bed-"))]
        # 25 devices that need a look fill the rows before the live one; the rest is counted.
        assert all(r.startswith("  bed-") and "(cannot open" in r for r in devices)
        assert hint.startswith(f"-- not shown: {26 - len(devices)} devices")

        # A taller and wider terminal shows every device, the live one with its reading.
        out = _run_in_pty(base + ["--watch", "--interval", "0.2"], 40, 120,
                          lambda o: o.count(CLEAR) >= 2)
        screen = Screen(40, 120)
        screen.feed(out[: out.rindex(CLEAR)])
        rows = screen.lines()
        assert rows[0].startswith("edge test-edge: DEGRADED") and not any(
            "not shown" in r for r in rows)
        assert len([r for r in rows if r.startswith("  bed-")]) == 25
        [live] = [r for r in rows if r.startswith("  room-1 ")]
        assert live.split()[1] == "connected" and live.endswith("temperature_c=20.4"), live

        # One look (no --watch) fits too; --wide prints the full rows, wrapped by the terminal.
        out = _run_in_pty(base, 24, 80, lambda o: "shows all --" in o)
        assert max(len(line.rstrip("\r")) for line in out.splitlines()) <= 80
        out = _run_in_pty(base + ["--wide"], 24, 80, lambda o: o.count("bed-24") >= 1)
        assert any(len(line.rstrip("\r")) > 80 for line in out.splitlines())
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
