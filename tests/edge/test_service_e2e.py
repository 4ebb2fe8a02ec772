"""`edge run` as a subprocess with a real config: edge-sim over real ptys (and Mosquitto) → log."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.edge._helpers import (
    BIN,
    SIM_SERIAL,
    health,
    read_topic,
    serial_device,
    start_edge,
    stop_edge,
    truth_readings,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.timeout(120)


def sim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "edge-sim"), "--no-progress", "--seed", "7", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_every_simulated_serial_reading_reaches_the_log(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    devices = "".join(serial_device(n, k, str(links / n), c, o) for n, k, c, o in SIM_SERIAL)
    config, port = write_config(tmp_path, devices)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    truth = tmp_path / "truth.jsonl"
    try:
        s = sim("--output", "pty", "--link-dir", str(links), "--fast", "--count", "150",
                "--truth", str(truth), "--corrupt", "0.05")
        out, err = s.communicate(timeout=60)
        assert s.returncode == 0, err
        expected = truth_readings(truth)
        assert len(expected) > 400
        # Every reading but each GPS unit's last epoch (held by the NMEA assembler until
        # the next one, handed on at shutdown) is in the log before we stop.
        wait_for(lambda: sum(d["readings"] for d in (health(port) or {"devices": {}})["devices"]
                             .values()) >= len(expected) - 1, 30, "readings in the log")
        h = health(port)
        assert h is not None and h["log"]["ok"]
        assert h["devices"]["car-1"]["dead_letters"] > 0  # --corrupt makes some
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    assert "stopped cleanly" in edge_log.read_text()

    data = tmp_path / "data"
    by_device: dict[str, list[dict]] = collections.defaultdict(list)
    for topic in ("gps", "temperature", "blood_pressure"):
        for rec in read_topic(data, topic):
            headers = dict(rec.headers)
            assert headers["edge_id"] == b"test-edge"
            assert headers["device_kind"].decode() == topic
            assert {"source", "schema", "ingest_ms", "clock"} <= set(headers)
            by_device[rec.key.decode()].append({"ts": rec.timestamp, "value": json.loads(rec.value)})
    want: dict[str, list[dict]] = collections.defaultdict(list)
    for r in expected:
        want[r["device_id"]].append(r)
    assert {k: len(v) for k, v in by_device.items()} == {k: len(v) for k, v in want.items()}
    # GPS fixes carry the device's own time (NMEA: to the centisecond): it is the event time.
    got_ts = [e["ts"] for e in by_device["car-1"]]
    assert all(abs(g - r["timestamp_ms"]) < 10 for g, r in zip(got_ts, want["car-1"], strict=True))
    assert [e["value"] for e in by_device["room-1"]] == [r["values"] for r in want["room-1"]]

    dead = read_topic(data, "dead-letters")
    assert dead and all(dict(r.headers)["reason"] for r in dead)
    faults = sum(1 for line in truth.read_text().splitlines() if json.loads(line).get("fault"))
    assert len(dead) >= faults > 0  # a damaged NMEA epoch can dead-letter several sentences


def test_a_device_that_cannot_be_opened_is_reported_while_others_flow(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    devices = serial_device("room-1", "temperature", str(links / "room-1"), "text")
    devices += serial_device("ghost", "gps", str(tmp_path / "no-such-port"), "nmea0183")
    config, port = write_config(tmp_path, devices)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    s = sim("--output", "pty", "--link-dir", str(links), "--gps", "0", "--patients", "0",
            "--rate", "20", "--duration", "30")
    try:
        h = wait_for(lambda: (x := health(port)) and x["devices"]["room-1"]["readings"] >= 10 and x,
                     30, "room-1 readings")
        assert h["ok"] is False
        assert h["devices"]["ghost"]["connected"] is False
        assert h["devices"]["ghost"]["state"] in ("disconnected", "connecting")
        assert h["devices"]["ghost"]["last_reading_ms"] is None
        assert h["devices"]["room-1"]["connected"] is True
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
        assert info.value.code == 503
        info.value.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            metrics = r.read().decode()
        assert 'edge_device_connected{device="ghost"} 0.0' in metrics
        assert 'edge_device_connected{device="room-1"} 1.0' in metrics
        assert 'edge_events_in_total{device="room-1",topic="temperature"}' in metrics
        assert "edge_commit_latency_seconds_bucket" in metrics
        status = subprocess.run([sys.executable, "-m", "edge", "status", "--address",
                                 f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
        assert status.returncode == 1  # degraded
        assert "DEGRADED" in status.stdout and "ghost" in status.stdout
        js = subprocess.run([sys.executable, "-m", "edge", "status", "--json", "--address",
                             f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
        assert json.loads(js.stdout)["devices"]["ghost"]["connected"] is False
    finally:
        s.kill()
        s.communicate()
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()


def test_status_without_a_running_service_fails_clearly() -> None:
    from tests.fixtures.mosquitto import free_port

    proc = subprocess.run([sys.executable, "-m", "edge", "status", "--address",
                           f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "is `edge run` running?" in proc.stderr
