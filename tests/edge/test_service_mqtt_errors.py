"""An MQTT device the broker refuses, in the real `edge run`: /health and `edge status` say why.

Against a real Mosquitto with a password file: the device's password is wrong. The
refusal's reason is the device's ``last_error`` (it was ``null``), logged once while
paho retries with backoff, and the password is never in either.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.edge._helpers import start_edge, stop_edge, wait_for, write_config
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
