"""SIGTERM under load over real Mosquitto: nothing the service acknowledged (PUBACK) is lost.

edge-sim publishes QoS 1 into Mosquitto while `edge run` consumes it; the service
is stopped with SIGTERM mid-stream (exit 0), then started again on the same
persistent sessions. Every message it PUBACKed was in the log first, and what it
had not acknowledged the broker delivers again: after the restart every simulated
reading is in the log. Redelivery may add a few duplicates (at-least-once).
"""

from __future__ import annotations

import collections
import subprocess
from pathlib import Path

import pytest

from tests.edge._helpers import (
    BIN,
    health,
    read_topic,
    start_edge,
    stop_edge,
    truth_readings,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(180)]

CONVENTIONS = [("gps-mqtt", "gps", "owntracks"), ("rooms-mqtt", "temperature", "zigbee2mqtt"),
               ("beds-mqtt", "blood_pressure", "bp.json")]


def mqtt_devices(port: int) -> str:
    return "".join(f'[[devices]]\nname = "{n}"\nkind = "{k}"\ntransport = "mqtt"\n'
                   f'host = "127.0.0.1"\nport = {port}\ncodec = "{c}"\nqos = 1\n'
                   for n, k, c in CONVENTIONS)


def total_readings(port: int) -> int:
    h = health(port)
    return sum(d["readings"] for d in h["devices"].values()) if h else -1


def all_connected(port: int) -> bool:
    h = health(port)
    return bool(h) and all(d["connected"] for d in h["devices"].values())


# plain-paho: the transport's fallback when its probe of paho's internals fails, forced.
@pytest.mark.parametrize("fast_path", ["1", "0"], ids=["fast-path", "plain-paho"])
def test_sigterm_under_load_loses_nothing_acknowledged(tmp_path: Path, mosquitto, fast_path) -> None:  # type: ignore[no-untyped-def]
    config, port = write_config(tmp_path, mqtt_devices(mosquitto.port))
    edge_log = tmp_path / "edge.log"
    env = {"EDGE_MQTT_FAST_PATH": fast_path}
    edge = start_edge(config, edge_log, env)
    wait_for(lambda: all_connected(port), 30, "MQTT devices connected")
    truth = tmp_path / "truth.jsonl"
    sim = subprocess.Popen(
        [str(BIN / "edge-sim"), "--no-progress", "--output", "mqtt", "--mqtt-port", str(mosquitto.port),
         "--gps", "2", "--rooms", "2", "--patients", "2", "--rate", "200", "--count", "300",
         "--seed", "11", "--truth", str(truth)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: total_readings(port) >= 300, 60, "readings flowing", every=0.05)
        rc = stop_edge(edge, edge_log)  # under load
        assert rc == 0, edge_log.read_text()
        _, err = sim.communicate(timeout=90)
        assert sim.returncode == 0, err
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.communicate()
    first_run = sum(len(read_topic(tmp_path / "data", t)) for _, t, _ in CONVENTIONS)
    expected = collections.Counter(r["kind"] for r in truth_readings(truth))
    assert sum(expected.values()) == 1800
    assert 300 <= first_run < 1800, "the stop should have come mid-stream"

    edge = start_edge(config, edge_log, env)
    try:
        wait_for(lambda: sum(len(read_topic(tmp_path / "data", t)) for _, t, _ in CONVENTIONS) >= 1800,
                 90, "the broker's redelivery after the restart")
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    assert ("MQTT fast path off" in edge_log.read_text()) == (fast_path == "0")
    got = {t: len(read_topic(tmp_path / "data", t)) for _, t, _ in CONVENTIONS}
    for _, kind, _ in CONVENTIONS:
        # Nothing lost; at most the few messages in flight at the SIGTERM come twice.
        assert expected[kind] <= got[kind] <= expected[kind] + 20, (kind, got, expected)
