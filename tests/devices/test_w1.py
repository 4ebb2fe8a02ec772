"""W1Transport against a fake sysfs tree in tmp."""

from __future__ import annotations

import asyncio

import pytest

from devices.transports._state import ConnectionState
from devices.transports.w1 import W1Config, W1Transport

GOOD = b"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"


def make_sensor(base, sensor_id: str, content: bytes) -> None:
    d = base / sensor_id
    d.mkdir(parents=True, exist_ok=True)
    (d / "w1_slave").write_bytes(content)


async def test_polls_each_sensor_each_round(tmp_path):
    make_sensor(tmp_path, "28-000003287ef1", GOOD)
    make_sensor(tmp_path, "28-0000032a1111", b"")
    (tmp_path / "w1_bus_master1").mkdir()
    make_sensor(tmp_path, "10-00000000aaaa", GOOD)  # another family: not asked for
    async with W1Transport(W1Config(str(tmp_path), interval=0.01)) as t:
        got = []
        async with asyncio.timeout(5):
            async for s in t:
                got.append((s.sensor_id, s.raw))
                if len(got) == 4:
                    break
        assert t.state is ConnectionState.CONNECTED and t.rounds == 2
    assert got == [("28-000003287ef1", GOOD), ("28-0000032a1111", b"")] * 2


async def test_missing_bus_is_disconnected_then_recovers(tmp_path):
    base = tmp_path / "w1"
    states: list[ConnectionState] = []
    t = W1Transport(W1Config(str(base), interval=0.01), on_state=states.append)

    async def first():
        async for s in t:
            return s

    task = asyncio.create_task(first())
    async with asyncio.timeout(5):
        while ConnectionState.DISCONNECTED not in states:
            await asyncio.sleep(0.01)
    make_sensor(base, "28-1", GOOD)
    sample = await asyncio.wait_for(task, 5)
    assert sample.sensor_id == "28-1"
    await t.close()
    await t.close()
    assert states[-2:] == [ConnectionState.CONNECTED, ConnectionState.CLOSED]


async def test_close_wakes_a_waiting_consumer(tmp_path):
    t = W1Transport(W1Config(str(tmp_path), interval=3600))
    await t.start()
    task = asyncio.create_task(anext(t, None))
    await asyncio.sleep(0)
    await t.close()
    # The first round ran at once (empty bus); the consumer then waits an hour, unless closed.
    assert await asyncio.wait_for(task, 5) is None


def test_config_validation():
    with pytest.raises(ValueError, match="got -1"):
        W1Config(interval=-1)
