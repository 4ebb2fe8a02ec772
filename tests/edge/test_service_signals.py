"""SIGHUP reloads the device list; systemd hears READY=1, WATCHDOG=1 and STOPPING=1."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from edge._notify import sd_notify, watchdog_interval
from tests.edge._helpers import health, serial_device, start_edge, stop_edge, wait_for, write_config

pytestmark = pytest.mark.timeout(60)


def test_sighup_reloads_the_device_list(tmp_path: Path) -> None:
    first = serial_device("a", "temperature", str(tmp_path / "port-a"), "text")
    second = serial_device("b", "gps", str(tmp_path / "port-b"), "nmea0183")
    config, port = write_config(tmp_path, first)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: (h := health(port)) and set(h["devices"]) == {"a"}, 30, "device a")
        text = config.read_text()
        config.write_text(text.replace(first, second))
        edge.send_signal(signal.SIGHUP)
        wait_for(lambda: set(health(port)["devices"]) == {"b"}, 30, "a replaced by b")  # type: ignore[index]
        config.write_text(text.replace(first, second) + "\n[log]\npartitions = 0\n")  # broken
        edge.send_signal(signal.SIGHUP)
        wait_for(lambda: "config not reloaded" in edge_log.read_text(), 30, "the reload refused")
        assert set(health(port)["devices"]) == {"b"}  # type: ignore[index]
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()


def test_systemd_notifications(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    config, port = write_config(tmp_path, "")
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    seen: list[str] = []

    def drain() -> None:
        while True:
            try:
                seen.extend(sock.recv(4096).decode().splitlines())
            except TimeoutError:
                return

    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ("READY=1" in seen and "WATCHDOG=1" in seen):
            drain()
    finally:
        rc = stop_edge(edge, edge_log)
        drain()
        sock.close()
    assert rc == 0
    assert "READY=1" in seen and "WATCHDOG=1" in seen and "STOPPING=1" in seen
    assert seen.index("READY=1") < seen.index("STOPPING=1")


def test_sd_notify_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sd_notify("READY=1") is False
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    assert watchdog_interval() == 5.0
