"""Why an MQTT device cannot connect reaches its ``last_error``, once, against a real Mosquitto.

A refused CONNACK (wrong password) and a failed TLS handshake (in test_mqtt_tls.py) used
to be a log line per retry and ``last_error: null`` in /health.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from devices.transports import Backoff, ConnectionState, MqttConfig, MqttTransport
from tests.fixtures.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.mqtt
FAST = Backoff(initial=0.05, maximum=0.2)


@pytest.fixture
def guarded(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A Mosquitto that lets in only user "edge" with password "right-pw"."""
    broker = Mosquitto(tmp_path / "mosquitto", users={"edge": "right-pw"})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def until(pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_a_refused_connack_is_the_last_error_once_not_per_retry(
        guarded, caplog, protocol: str) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    config = MqttConfig(guarded.host, guarded.port, client_id="edge-pw", username="edge",
                        password="123456", protocol=protocol, backoff=FAST)
    async with MqttTransport(config) as t:
        # Three refusals seen by the broker: paho retried (with backoff) and we said it once.
        await until(lambda: guarded.log_text().count("not authorised") >= 3)
        assert t.state is not ConnectionState.CONNECTED
        error = t.last_error
    assert error is not None and "broker refused the connection" in error, error
    assert "check the device's username and password" in error
    assert "123456" not in error and "123456" not in caplog.text
    said = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert "disconnected" not in caplog.text, "a refusal is not a lost connection"


async def test_the_error_clears_once_the_broker_accepts(guarded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = MqttConfig(guarded.host, guarded.port, client_id="edge-ok", username="edge",
                      password="right-pw", backoff=FAST)
    async with MqttTransport(good) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        assert t.last_error is None


async def test_nothing_listening_is_the_last_error() -> None:
    port = free_port()
    config = MqttConfig("127.0.0.1", port, client_id="edge-none", backoff=FAST)
    async with MqttTransport(config) as t:
        await until(lambda: t.last_error is not None)
        assert t.last_error == (f"cannot connect to 127.0.0.1:{port}: connection refused "
                                "(is the broker running there?)")


def test_a_numeric_password_is_refused_without_its_value() -> None:
    with pytest.raises(ValueError, match="not shown") as err:
        MqttConfig("h", client_id="x", username="u", password=987654)  # type: ignore[arg-type]
    assert "987654" not in str(err.value)
