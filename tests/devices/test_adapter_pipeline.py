"""Adapters keep several items in flight, yet acknowledge each only once durable, in order.

The sinks here return futures the test resolves by hand, as the edge service's
sink does when the log commits, against a real Mosquitto (QoS 1, manual ack).
"""

from __future__ import annotations

import asyncio

import pytest

from devices._reading import Reading
from devices.adapters import MqttAdapter
from devices.transports import Backoff, ConnectionState, MqttConfig, MqttTransport
from tests.devices.test_adapters import JsonTemp
from tests.devices.test_mqtt import publish

pytestmark = pytest.mark.mqtt

FAST = Backoff(initial=0.01, maximum=0.05)


class HandResolved:
    """A sink that queues each reading when called and completes when the test says so."""

    def __init__(self) -> None:
        self.calls: list[tuple[Reading, asyncio.Future[None]]] = []
        self.called = asyncio.Event()

    def sink(self, reading: Reading) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.calls.append((reading, fut))
        self.called.set()
        return fut

    async def until_calls(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.calls) < n:
                self.called.clear()
                await self.called.wait()


async def _until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


def _transport(broker, client_id: str) -> MqttTransport:  # type: ignore[no-untyped-def]
    return MqttTransport(MqttConfig(broker.host, broker.port, topics=("t/+",), client_id=client_id,
                                    backoff=FAST))


async def test_later_items_go_to_the_sink_before_earlier_ones_are_durable_acks_stay_in_order(mosquitto):
    out = HandResolved()
    transport = _transport(mosquitto, "pipeline-order")
    adapter = MqttAdapter("mqtt", transport, JsonTemp(), out.sink)
    async with adapter, asyncio.TaskGroup() as tg:
        tg.create_task(adapter.run())
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("t/a", b"1"), ("t/b", b"2"), ("t/c", b"3")])
        await out.until_calls(3)  # all three handed on while none is durable yet
        assert [r.values["temperature_c"] for r, _ in out.calls] == [1.0, 2.0, 3.0]
        assert transport.stats.acks == 0
        out.calls[1][1].set_result(None)  # the second is durable first: nothing may be acked
        await asyncio.sleep(0.1)
        assert transport.stats.acks == 0
        out.calls[0][1].set_result(None)
        await _until(lambda: transport.stats.acks == 2)
        assert adapter.stats.readings == 2
        out.calls[2][1].set_result(None)
        await _until(lambda: transport.stats.acks == 3)
        await adapter.close()


async def test_a_failed_write_stops_run_and_leaves_it_and_later_items_unacked(mosquitto):
    out = HandResolved()
    transport = _transport(mosquitto, "pipeline-fail")
    adapter = MqttAdapter("mqtt", transport, JsonTemp(), out.sink)
    async with adapter:
        task = asyncio.create_task(adapter.run())
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("t/a", b"1"), ("t/b", b"2")])
        await out.until_calls(2)
        out.calls[1][1].set_result(None)
        out.calls[0][1].set_exception(OSError("disk full"))
        with pytest.raises(OSError, match="disk full"):
            await asyncio.wait_for(task, 5)
        assert transport.stats.acks == 0


async def test_the_window_bounds_items_in_flight(mosquitto):
    out = HandResolved()
    transport = _transport(mosquitto, "pipeline-window")
    adapter = MqttAdapter("mqtt", transport, JsonTemp(), out.sink, max_in_flight=2)
    async with adapter, asyncio.TaskGroup() as tg:
        tg.create_task(adapter.run())
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [(f"t/d{i}", str(i).encode()) for i in range(4)])
        await out.until_calls(2)
        await asyncio.sleep(0.2)
        assert len(out.calls) == 2  # the third waits for a free slot
        out.calls[0][1].set_result(None)
        await out.until_calls(3)
        for _, fut in out.calls:
            if not fut.done():
                fut.set_result(None)
        await out.until_calls(4)
        out.calls[3][1].set_result(None)
        await _until(lambda: transport.stats.acks == 4)
        await adapter.close()


async def test_close_lets_in_flight_items_finish_and_acks_them(mosquitto):
    out = HandResolved()
    transport = _transport(mosquitto, "pipeline-close")
    adapter = MqttAdapter("mqtt", transport, JsonTemp(), out.sink)
    async with adapter:
        task = asyncio.create_task(adapter.run())
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("t/a", b"1")])
        await out.until_calls(1)
        closing = asyncio.create_task(adapter.close())
        await asyncio.sleep(0.1)
        assert not closing.done()  # waits for the write in flight
        out.calls[0][1].set_result(None)
        await asyncio.wait_for(closing, 5)
        await asyncio.wait_for(task, 5)
    assert transport.stats.acks == 1


def test_max_in_flight_must_be_positive():
    with pytest.raises(ValueError, match="max_in_flight must be >= 1, got 0"):
        MqttAdapter("mqtt", MqttTransport(MqttConfig("127.0.0.1", client_id="x")), JsonTemp(),
                    HandResolved().sink, max_in_flight=0)
