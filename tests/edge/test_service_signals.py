"""SIGHUP reloads the device list; systemd hears READY=1, WATCHDOG=1 and STOPPING=1."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge._notify import sd_notify, watchdog_interval
from edge._status import fetch_health
from tests.edge._helpers import health, serial_device, start_edge, stop_edge, wait_for, write_config
from tests.fixtures.mosquitto import free_port

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


TOKEN = "s3cret-health-token-0123456789"


def test_sighup_applies_health_settings_and_names_what_needs_a_restart(
        tmp_path: Path, pty_device) -> None:  # type: ignore[no-untyped-def]
    config, port = write_config(tmp_path, serial_device("room-1", "temperature",
                                                        str(pty_device.link), "text"),
                                extra=f'token = "{TOKEN}"')
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        pty_device.wait_reader(timeout=30)
        pty_device.write(b"21.5\n")
        last = wait_for(lambda: ((health(port) or {}).get("devices", {}).get("room-1") or {})
                        .get("last_reading"), 30, "a reading")
        # By default the value stays off /health (any local user reads it); key and time stay.
        assert last == {"key": "room-1", "timestamp_ms": last["timestamp_ms"],
                        "value_withheld": True}
        # With the token (`edge status -c` reads it from the config), the value too.
        for token in ("wrong-" + TOKEN, TOKEN[:-1]):
            assert "value" not in fetch_health(f"127.0.0.1:{port}", token=token)[
                "devices"]["room-1"]["last_reading"]
        st = subprocess.run([sys.executable, "-m", "edge", "status", "-c", str(config), "--json"],
                            capture_output=True, text=True, timeout=30)
        assert json.loads(st.stdout)["devices"]["room-1"]["last_reading"]["value"] == {
            "temperature_c": 21.5}, st.stderr
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            config.write_text(config.read_text().replace(f":{port}", f":{taken}"))
            edge.send_signal(signal.SIGHUP)
            wait_for(lambda: "/health stays on" in edge_log.read_text(), 30, "the move refused")
        assert f"health.address 127.0.0.1:{taken}: cannot listen" in edge_log.read_text()
        assert health(port) is not None  # still served where it was

        new_port = free_port()
        config.write_text(config.read_text().replace(f":{taken}", f":{new_port}")
                          .replace("[health]", "[health]\nshow_values = true")
                          .replace("partitions = 2", "partitions = 2\nquota_bytes = 100000000"))
        edge.send_signal(signal.SIGHUP)
        h = wait_for(lambda: health(new_port), 30, "/health on the new address")
        assert h["devices"]["room-1"]["last_reading"]["value"] == {"temperature_c": 21.5}
        assert health(port) is None  # the old address is closed
        wait_for(lambda: "config reloaded" in edge_log.read_text(), 30, "the reload")
        assert ("SIGHUP: log.quota_bytes changed: applied at the next restart"
                in edge_log.read_text())
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


def test_restart_needed_names_keys_never_values() -> None:
    from edge import parse_config
    from edge._reload import restart_needed

    base = 'edge_id = "e"\ndata_dir = "/d"\n[upstream]\nbootstrap_servers = "k:9092"\n'
    old = parse_config(base + 'sasl_password = "old-secret"\n[health]\naddress = "127.0.0.1:1"\n')
    new = parse_config(base.replace('"e"', '"f"') + 'sasl_password = "new-secret"\n'
                       '[log]\nquota_bytes = 5000000\n[clock]\ngps_time = false\n'
                       '[health]\naddress = "127.0.0.1:2"\n')
    assert restart_needed(old, new) == ["edge_id", "log.quota_bytes", "upstream.sasl_password",
                                        "clock.gps_time"]  # not health: SIGHUP moves it
    assert restart_needed(old, old) == []


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signum - 1) & 1)


def test_a_stop_during_start_up_is_a_clean_stop(tmp_path: Path) -> None:
    # systemd may stop the service while it is still starting: SIGTERM is held from the
    # CLI's first line and replayed once the service's handlers are in, so the exit is 0,
    # never -15 from SIGTERM's default action. (SIGINT is Python's from the interpreter's
    # start, so its SigCgt bit says nothing of ours: SIGTERM is what systemd sends.)
    signum = signal.SIGTERM
    config, port = write_config(tmp_path, serial_device("a", "temperature",
                                                        str(tmp_path / "port-a"), "text"))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        # Polled fast, so the signal lands while the config is read and the service imported
        # (a few hundred ms): held then, and replayed.
        wait_for(lambda: _catches(edge.pid, signum) or edge.poll() is not None, 30,
                 "the signal to be caught", every=0.002)
        edge.send_signal(signum)
        assert edge.wait(30) == 0, edge_log.read_text()
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.wait()


def test_signals_held_before_the_loop_are_replayed_in_order() -> None:
    import asyncio
    import os

    from edge._early_signals import EarlySignals

    previous = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    try:
        early = EarlySignals()
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        assert early.seen == [signal.SIGHUP, signal.SIGTERM]  # noted, the process lives on
        calls: list[str] = []

        async def main() -> None:
            loop = asyncio.get_running_loop()
            early.hand_over(loop, {signal.SIGHUP: lambda: calls.append("reload"),
                                   signal.SIGTERM: lambda: calls.append("stop")})
            assert calls == ["reload", "stop"]
            os.kill(os.getpid(), signal.SIGTERM)  # now the loop's handler takes it
            await asyncio.sleep(0.2)
            loop.remove_signal_handler(signal.SIGHUP)
            loop.remove_signal_handler(signal.SIGTERM)

        asyncio.run(main())
        assert calls == ["reload", "stop", "stop"]
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
