"""The session epoch of MqttTransport against a real Mosquitto: a packet id names a message
only within one session, so every message carries its session's epoch.

A resumed session (CONNACK session present) keeps the epoch, also in a new transport of
a new process (it is kept in ``session_dir``); a session the broker lost (a Mosquitto
without persistence restarted) gets a new one, written before its first message.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from devices.transports import (
    Backoff,
    ConnectionState,
    DeviceUnavailable,
    MqttConfig,
    MqttTransport,
)
from devices.transports._session import SessionFile
from tests.devices.test_mqtt import publish, take
from tests.fixtures.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt
FAST = Backoff(initial=0.05, maximum=0.2)


@pytest.fixture
def forgetful(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A Mosquitto that loses every session when it restarts (no persistence)."""
    broker = Mosquitto(tmp_path / "mosquitto", persistence=False)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def one(config: MqttConfig, broker, topic: str) -> tuple[str, int, bool]:  # type: ignore[no-untyped-def]
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, broker, [(topic, b"x")])
        [m] = await take(t, 1)
        await m.ack()
    return m.session, m.mid, m.duplicate


async def test_epoch_kept_while_the_session_lives_and_new_when_the_broker_lost_it(
        forgetful, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sessions = tmp_path / "sessions"
    config = MqttConfig(forgetful.host, forgetful.port, topics=("s/#",), client_id="edge-s",
                        backoff=FAST, session_dir=str(sessions))
    first, mid1, _ = await one(config, forgetful, "s/1")
    assert first and SessionFile(sessions, f"{forgetful.host}:{forgetful.port}", "edge-s").load() == first
    resumed, mid2, _ = await one(config, forgetful, "s/2")  # a new transport: as after a restart
    assert (resumed, mid2) == (first, mid1 + 1), "the same session: same epoch, next packet id"
    forgetful.restart()  # sessions gone: packet ids start over
    again, mid3, _ = await one(config, forgetful, "s/3")
    assert again != first, "a new session must never share an epoch with the lost one"
    assert mid3 == mid1, "the packet id did start over (so only the epoch tells them apart)"
    stored = json.loads(next(sessions.glob("*.json")).read_text())
    assert stored == {"broker": f"{forgetful.host}:{forgetful.port}", "client_id": "edge-s",
                      "epoch": again}


async def test_an_epoch_that_cannot_be_recorded_stops_intake_with_the_cause(
        mosquitto, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = MqttConfig(mosquitto.host, mosquitto.port, topics=("s/#",), client_id="edge-f",
                        backoff=FAST, session_dir=str(blocker / "sessions"))
    async with MqttTransport(config) as t:
        with pytest.raises(DeviceUnavailable, match="cannot record the new MQTT session") as err:
            async with asyncio.timeout(5):
                await anext(t)
        assert t.state is not ConnectionState.CONNECTED, "no subscription: nothing taken"
    assert "not-a-dir" in str(err.value)
