"""Adapters: transport + codec into sinks; bad input never raises out."""

from __future__ import annotations

import asyncio

import pytest

from devices._errors import DecodeError
from devices._reading import Arrival, DeadLetter, Reading, TimeSource
from devices.adapters import MqttAdapter, SerialAdapter, W1Adapter
from devices.codecs.ds18b20 import Ds18b20W1SlaveCodec
from devices.codecs.gatt import GattBloodPressureCodec
from devices.transports import Backoff, ConnectionState, MqttConfig, MqttTransport
from devices.transports.serial import SerialConfig, SerialTransport
from devices.transports.w1 import W1Config, W1Transport

FAST = Backoff(initial=0.01, maximum=0.05)
ARRIVAL = Arrival(1_700_000_000_000, 5_000, "synced")


class Collect:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.dead: list[DeadLetter] = []
        self.changed = asyncio.Event()

    async def sink(self, r: Reading) -> None:
        self.readings.append(r)
        self.changed.set()

    async def dead_letters(self, d: DeadLetter) -> None:
        self.dead.append(d)
        self.changed.set()

    async def until(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.readings) + len(self.dead) < n:
                self.changed.clear()
                await self.changed.wait()


def bp(sys_: float, dia: float) -> Reading:
    values = {"systolic_mmhg": sys_, "diastolic_mmhg": dia, "mean_arterial_pressure_mmhg": 93.0,
              "unit_original": "mmHg", "pulse_bpm": 70.0}
    return Reading("ward3-bed2", "blood_pressure", "gatt.0x2A35", values)


async def test_serial_adapter_readings_and_dead_letters(pty_device):
    codec = GattBloodPressureCodec(framing="hex")
    out = Collect()
    transport = SerialTransport(SerialConfig(str(pty_device.link), backoff=FAST))
    adapter = SerialAdapter("ward3-bed2", transport, codec, out.sink, out.dead_letters,
                            clock=lambda: ARRIVAL)
    async with adapter, asyncio.TaskGroup() as tg:
        tg.create_task(adapter.run())
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        pty_device.write(codec.encode(bp(120, 80)) + b"zz not hex\n" + codec.encode(bp(150, 95)))
        await out.until(3)
        await adapter.close()
    assert [r.values["systolic_mmhg"] for r in out.readings] == [120, 150]
    # No time in the frames: stamped with the arrival, and saying so.
    assert all(r.timestamp_ms == ARRIVAL.wall_ms and r.time_source is TimeSource.ARRIVAL
               and r.arrival == ARRIVAL for r in out.readings)
    [dead] = out.dead
    assert dead.raw == b"zz not hex" and dead.source.startswith("serial:")
    assert (dead.arrived_ms, dead.arrival) == (ARRIVAL.wall_ms, ARRIVAL)
    assert adapter.stats.frames == 3 and adapter.stats.readings == 2
    assert adapter.stats.decode_error_total == 1


async def test_codec_bug_is_dead_lettered_not_raised():
    class Broken:
        name = "broken"

        def decode(self, frame: bytes, device_id: str, arrival: object = None) -> list[Reading]:
            raise ZeroDivisionError("oops")

    class OneFrame:
        id = "fake"

        def __aiter__(self):
            return self

        async def __anext__(self):
            if getattr(self, "done", False):
                raise StopAsyncIteration
            self.done = True
            return b"x"

    out = Collect()
    adapter = SerialAdapter("d", OneFrame(), Broken(), out.sink, out.dead_letters)  # type: ignore[arg-type]
    await adapter.run()
    assert out.dead[0].reason == "unexpected ZeroDivisionError: oops"


async def test_failing_sink_raises_out_of_run(pty_device):
    codec = GattBloodPressureCodec(framing="hex")

    async def sink(r: Reading) -> None:
        raise OSError("disk full")

    transport = SerialTransport(SerialConfig(str(pty_device.link), backoff=FAST))
    adapter = SerialAdapter("d", transport, codec, sink)
    async with adapter:
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        pty_device.write(codec.encode(bp(120, 80)))
        with pytest.raises(OSError, match="disk full"):
            await asyncio.wait_for(adapter.run(), 5)


async def test_w1_adapter_names_sensors_and_dead_letters_power_on_value(tmp_path):
    good = b"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
    reset = b"50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
    for sid, content in [("28-aaa", good), ("28-bbb", reset)]:
        (tmp_path / sid).mkdir()
        (tmp_path / sid / "w1_slave").write_bytes(content)
    out = Collect()
    transport = W1Transport(W1Config(str(tmp_path), interval=60))
    adapter = W1Adapter("w1", transport, Ds18b20W1SlaveCodec(), out.sink, out.dead_letters,
                        names={"28-aaa": "room-1"})
    async with adapter, asyncio.TaskGroup() as tg:
        tg.create_task(adapter.run())
        await out.until(2)
        await adapter.close()
    [r] = out.readings
    assert r.device_id == "room-1" and r.values["temperature_c"] == pytest.approx(23.125)
    assert r.time_source is TimeSource.POLL and r.arrival is not None  # sysfs: the poll's time
    assert out.dead[0].source.endswith("/28-bbb")


class JsonTemp:
    """A minimal convention for the test: topic t/<id>, payload a number."""

    name = "test"

    def decode(self, topic: str, payload: bytes) -> list[Reading]:
        try:
            value = float(payload)
        except ValueError:
            raise DecodeError(payload, "not a number", self.name) from None
        return [Reading(topic.split("/")[1], "temperature", "test", {"temperature_c": value})]

    def encode(self, reading: Reading) -> tuple[str, bytes]:
        return f"t/{reading.device_id}", str(reading.values["temperature_c"]).encode()


@pytest.mark.mqtt
async def test_mqtt_adapter_acks_only_after_the_sink_returns(mosquitto):
    from tests.devices.test_mqtt import publish

    release = asyncio.Event()
    entered = asyncio.Event()
    out = Collect()

    async def slow_sink(r: Reading) -> None:
        entered.set()
        await release.wait()  # "durably accepting" takes a while
        await out.sink(r)

    transport = MqttTransport(MqttConfig(mosquitto.host, mosquitto.port, topics=("t/+",),
                                         client_id="adapter-test", backoff=FAST))
    adapter = MqttAdapter("mqtt", transport, JsonTemp(), slow_sink, out.dead_letters)
    async with adapter, asyncio.TaskGroup() as tg:
        tg.create_task(adapter.run())
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        publish(mosquitto, [("t/room-1", b"21.5"), ("t/room-2", b"warm")])
        await asyncio.wait_for(entered.wait(), 5)
        assert transport.stats.acks == 0
        release.set()
        await out.until(2)
        await adapter.close()
    assert transport.stats.acks == 2  # the dead-lettered one is acked too: it was handled
    assert out.readings[0].device_id == "room-1"
    assert out.dead[0].reason == "not a number" and out.dead[0].source.endswith("#t/room-2")
