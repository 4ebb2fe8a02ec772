"""A burst of messages already queued is taken without a wait per message, within the window.

The adapter takes what the MQTT transport already holds in one go (``next_nowait``) and
acknowledges with ``ack_nowait``; neither may widen the in-flight window or ack early.
Real Mosquitto, QoS 1, manual ack.
"""

from __future__ import annotations

import asyncio

import pytest

from devices.adapters import MqttAdapter
from devices.transports import ConnectionState
from tests.devices.test_adapter_pipeline import HandResolved, _transport, _until
from tests.devices.test_adapters import JsonTemp
from tests.devices.test_mqtt import publish

pytestmark = pytest.mark.mqtt


async def test_a_queued_burst_stays_within_max_in_flight_and_is_acked_in_order_once_durable(mosquitto):
    out = HandResolved()
    transport = _transport(mosquitto, "pipeline-burst")
    adapter = MqttAdapter("mqtt", transport, JsonTemp(), out.sink, max_in_flight=8)
    async with adapter, asyncio.TaskGroup() as tg:
        await transport.start()
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [(f"t/{i}", str(i).encode()) for i in range(40)])
        await _until(lambda: transport.stats.messages >= 9)  # queued before run() takes any
        tg.create_task(adapter.run())
        await out.until_calls(8)
        await asyncio.sleep(0.1)
        assert len(out.calls) == 8  # the window, though more are queued
        assert transport.stats.acks == 0
        resolved = 0
        while resolved < 40:
            await out.until_calls(resolved + 1)
            out.calls[resolved][1].set_result(None)
            resolved += 1
            await _until(lambda n=resolved: transport.stats.acks == n)
            assert len(out.calls) <= resolved + 8
        assert [r.values["temperature_c"] for r, _ in out.calls] == [float(i) for i in range(40)]
        assert adapter.stats.readings == 40
        await adapter.close()
