"""MqttTransport against a real Mosquitto started by the fixture."""

from __future__ import annotations

import asyncio
import logging
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.transports._state import Backoff, ConnectionState
from devices.transports.mqtt import MqttConfig, MqttMessage, MqttTransport

pytestmark = pytest.mark.mqtt
FAST = Backoff(initial=0.05, maximum=0.2)


def publish(broker, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    """Publish with a plain paho client and wait until the broker has each one."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        infos = [c.publish(t, p, qos=qos) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout=5)
    finally:
        c.disconnect()
        c.loop_stop()


def cfg(broker, **kw) -> MqttConfig:
    base = dict(host=broker.host, port=broker.port, client_id="edge-test", backoff=FAST)
    return MqttConfig(**(base | kw))


async def take(t: MqttTransport, n: int, timeout: float = 5.0) -> list[MqttMessage]:
    out: list[MqttMessage] = []
    async with asyncio.timeout(timeout):
        async for m in t:
            out.append(m)
            if len(out) == n:
                break
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"qos": 2},
        {"protocol": "4"},
        {"port": 0},
        {"client_id": ""},
        {"topics": "a/#"},
        {"host": ""},
    ],
)
def test_config_rejects_bad_values_with_the_value(kwargs):
    base = {"host": "localhost", "client_id": "x"} | kwargs
    with pytest.raises(ValueError, match="got"):
        MqttConfig(**base)


def test_password_is_not_in_repr():
    c = MqttConfig("h", client_id="x", username="u", password="s3cret-pw")
    assert "s3cret-pw" not in repr(c)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_receives_on_wildcard_filters(mosquitto, protocol):
    config = cfg(mosquitto, topics=("sensors/+/temp", "gps/#"), protocol=protocol)
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("sensors/a/temp", b"1"), ("other/x", b"no"), ("gps/car/1", b"2")])
        got = await take(t, 2)
        assert [(m.topic, m.payload, m.qos) for m in got] == [
            ("sensors/a/temp", b"1", 1),
            ("gps/car/1", b"2", 1),
        ]
        for m in got:
            await m.ack()
            await m.ack()  # twice is harmless
        assert t.stats.acks == 2


async def test_qos0_needs_no_ack(mosquitto):
    async with MqttTransport(cfg(mosquitto, qos=0, persistent=False, client_id="")) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("t", b"x")], qos=0)
        [m] = await take(t, 1)
        assert m.qos == 0
        await m.ack()
        assert t.stats.acks == 0


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_unacked_qos1_is_redelivered_to_the_persistent_session(mosquitto, protocol):
    config = cfg(mosquitto, topics=("d/#",), protocol=protocol)
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("d/1", b"a"), ("d/2", b"b")])
        first, second = await take(t, 2)
        await first.ack()  # durably accepted; `second` is not
    # Offline now: the broker queues for the session.
    publish(mosquitto, [("d/3", b"c")])
    async with MqttTransport(config) as t:
        got = await take(t, 2)
        assert [(m.topic, m.payload) for m in got] == [("d/2", b"b"), ("d/3", b"c")]
        assert got[0].duplicate
        for m in got:
            await m.ack()
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("d/4", b"marker")])
        [m] = await take(t, 1)
        assert m.payload == b"marker"  # nothing acked came back
        await m.ack()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_an_ack_right_before_close_is_not_lost(mosquitto, protocol):
    # close() straight after the last ack: without a round trip to the broker the
    # PUBACK can die with the socket and the message comes back on the next session.
    config = cfg(mosquitto, topics=("close/#",), protocol=protocol)
    for i in range(15):
        async with MqttTransport(config) as t:
            await t.wait_state(ConnectionState.CONNECTED, timeout=5)
            publish(mosquitto, [(f"close/{i}", str(i).encode())])
            [m] = await take(t, 1)
            assert m.payload == str(i).encode()  # not an earlier one redelivered
            await m.ack()
        assert t.stats.acks == 1


async def test_reconnects_after_broker_restart(mosquitto):
    states: list[ConnectionState] = []
    async with MqttTransport(cfg(mosquitto, topics=("r",)), on_state=states.append) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(mosquitto.restart)
        await t.wait_state(ConnectionState.DISCONNECTED, timeout=10)
        await t.wait_state(ConnectionState.CONNECTED, timeout=10)
        publish(mosquitto, [("r", b"after")])
        [m] = await take(t, 1)
        await m.ack()
        assert m.payload == b"after"
    assert states[-1] is ConnectionState.CLOSED


async def test_secrets_never_logged(mosquitto, caplog):
    caplog.set_level(logging.DEBUG)
    config = cfg(mosquitto, username="edge", password="hunter2-secret")
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        assert "hunter2" not in t.id
    assert "hunter2" not in caplog.text


async def test_close_is_idempotent_and_ends_iteration(mosquitto):
    t = MqttTransport(cfg(mosquitto))
    await t.start()
    await t.wait_state(ConnectionState.CONNECTED, timeout=5)
    await t.close()
    await t.close()
    assert t.state is ConnectionState.CLOSED
    with pytest.raises(StopAsyncIteration):
        await t.__anext__()


async def test_concurrent_closes_share_one_ack_barrier(mosquitto, caplog):
    # A device's supervisor closes the adapter while the adapter's `async with` exits: two
    # close() at once. Each used to send its own ack barrier, the second replacing the
    # first, whose wait then ran out (2 s) and warned that the acks were unconfirmed.
    caplog.set_level(logging.WARNING)
    config = cfg(mosquitto, topics=("twice/#",))
    t = MqttTransport(config)
    await t.start()
    await t.wait_state(ConnectionState.CONNECTED, timeout=5)
    publish(mosquitto, [("twice/a", b"1")])
    [m] = await take(t, 1)
    m.ack_nowait()
    await asyncio.gather(t.close(), t.close())
    assert t.state is ConnectionState.CLOSED
    assert "did not confirm" not in caplog.text
    # And the ack landed: the next session gets the marker, not the message again.
    async with MqttTransport(config) as again:
        await again.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("twice/b", b"2")])
        [m] = await take(again, 1)
        await m.ack()
    assert m.payload == b"2"


async def test_an_ack_barrier_answered_at_once_is_seen(mosquitto, caplog):
    # paho may write the barrier's UNSUBSCRIBE from the loop's own thread, and on loopback
    # the UNSUBACK can be handled before unsubscribe() has even returned its mid: the
    # answer was dropped and close() waited 2 s and warned (3 stops in 5 of `edge run`).
    # The pause after the real unsubscribe() makes that order certain.
    import time

    caplog.set_level(logging.WARNING)
    t = MqttTransport(cfg(mosquitto, topics=("barrier/#",)))
    await t.start()
    await t.wait_state(ConnectionState.CONNECTED, timeout=5)
    publish(mosquitto, [("barrier/a", b"1")])
    [m] = await take(t, 1)
    m.ack_nowait()
    client = t._client
    real = client.unsubscribe

    def answered_before_return(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        time.sleep(0.3)  # paho's thread reads the UNSUBACK meanwhile
        return result

    client.unsubscribe = answered_before_return
    await t.close()
    assert "did not confirm" not in caplog.text
