"""MQTT devices in trouble, in the real `edge run`: a broker that refuses it, a message too big.

Against a real Mosquitto with a password file: the device's password is wrong. The
refusal's reason is the device's ``last_error`` (it was ``null``), logged once while
paho retries with backoff, and the password is never in either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.devices.test_mqtt import publish
from tests.edge._helpers import read_topic, start_edge, stop_edge, wait_for, write_config
from tests.edge.test_service_dedupe import device_health, mqtt_device
from tests.fixtures.mosquitto import Mosquitto

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]


def test_a_refused_device_shows_why_in_health_and_status(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto", users={"edge": "right-pw"})
    broker.start()
    config, port = write_config(tmp_path, mqtt_device(
        "rooms", broker.port, "zigbee2mqtt", "zigbee2mqtt/#", "temperature",
        'username = "edge"\npassword = "wrong-pw-4711"\n'))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        error = wait_for(lambda: device_health(port, "rooms").get("last_error"), 30, "last_error")
        wait_for(lambda: broker.log_text().count("not authorised") >= 3, 30, "three refusals")
        status = subprocess.run([sys.executable, "-m", "edge", "status", "--config", str(config)],
                                capture_output=True, text=True, timeout=30)
    finally:
        rc = stop_edge(edge, edge_log)
        broker.stop()
    assert rc == 0, edge_log.read_text()
    assert "broker refused the connection" in error and "username and password" in error, error
    assert error in status.stdout, status.stdout + status.stderr
    text = edge_log.read_text()
    assert text.count("refused the connection") == 1, text
    assert "wrong-pw-4711" not in text + status.stdout + status.stderr + error


def test_an_oversize_message_is_dead_lettered_with_its_size_and_the_device_goes_on(
        tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    # Issue #10 item 5: 100 MB took 86 s of CPU and 463 MB while /health said ok, then was
    # stored whole in dead-letters. Now over max_payload it is refused as it arrives.
    config, port = write_config(tmp_path, mqtt_device(
        "rooms", mosquitto.port, "zigbee2mqtt", "zigbee2mqtt/#", "temperature",
        "max_payload = 65536\n"))
    data, edge_log = tmp_path / "data", tmp_path / "edge.log"
    big = b'{"temperature": 21.5, "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: device_health(port, "rooms").get("connected"), 30, "subscribed")
        publish(mosquitto, [("zigbee2mqtt/room-1", big),
                            ("zigbee2mqtt/room-2", json.dumps({"temperature": 22}).encode())])
        wait_for(lambda: device_health(port, "rooms").get("readings"), 30, "the next reading")
        health = device_health(port, "rooms")
        letters = read_topic(data, "dead-letters")
        readings = read_topic(data, "temperature")
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    assert (health["dead_letters"], health["readings"], health["restarts"]) == (1, 1, 0), health
    [letter] = letters
    assert letter.value == big[:1024], "the head only, not 4 MiB"
    reason = dict(letter.headers)["reason"].decode()
    assert f"payload of {len(big)} bytes is over max_payload (65536 bytes)" in reason, reason
    assert [r.key for r in readings] == [b"room-2"]
