"""MqttTransport holds at most ``max_queued`` messages for a slow consumer; none are lost.

Mosquitto 2.0 does not keep its in-flight window once acks flow (it sends its
queued backlog in bursts of hundreds), so the transport itself stops reading
the socket when its consumer is behind. Against a real Mosquitto, QoS 1.
"""

from __future__ import annotations

import asyncio

import pytest

from devices.transports import Backoff, ConnectionState, MqttConfig, MqttTransport
from tests.devices.test_mqtt import publish

pytestmark = pytest.mark.mqtt

FAST = Backoff(initial=0.01, maximum=0.05)


async def test_a_slow_consumer_holds_at_most_max_queued_and_gets_every_message(mosquitto):
    cfg = MqttConfig(mosquitto.host, mosquitto.port, topics=("t/#",), client_id="backpressure",
                     max_queued=30, backoff=FAST)
    async with MqttTransport(cfg) as transport:
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, mosquitto, [("t/a", str(i).encode()) for i in range(400)])
        got: list[int] = []
        high = 0
        async with asyncio.timeout(30):
            while len(got) < 400:
                message = await anext(transport)
                got.append(int(message.payload))
                await message.ack()
                if len(got) % 50 == 0:
                    await asyncio.sleep(0.05)  # a consumer that falls behind now and then
                high = max(high, len(transport._queue))
        assert high <= 30
        assert got == list(range(400))  # in order, none lost, none twice


def test_max_queued_must_be_positive():
    with pytest.raises(ValueError, match="max_queued must be >= 1 message, got 0"):
        MqttConfig("127.0.0.1", client_id="x", max_queued=0)


async def test_a_slow_consumer_holds_at_most_max_queued_bytes(mosquitto):
    # Counted messages alone would let 1000 x max_payload pile up: bytes bound it too.
    cfg = MqttConfig(mosquitto.host, mosquitto.port, topics=("b/#",), client_id="bytes",
                     max_queued_bytes=20_000, backoff=FAST)
    async with MqttTransport(cfg) as transport:
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, mosquitto,
                                [("b/a", b"%05d" % i + b"x" * 4995) for i in range(100)])
        got: list[int] = []
        high = 0
        async with asyncio.timeout(30):
            while len(got) < 100:
                message = await anext(transport)
                got.append(int(message.payload[:5]))
                await message.ack()
                if len(got) % 10 == 0:
                    await asyncio.sleep(0.05)  # behind now and then: paho's thread must wait
                high = max(high, sum(len(m.payload) for m in transport._queue))
        assert high <= 20_000 + 5_000  # the limit, and the one message that reached it
        assert got == list(range(100))
