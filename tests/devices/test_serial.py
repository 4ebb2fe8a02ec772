"""SerialTransport against real pseudo-terminals, and the framer on its own."""

from __future__ import annotations

import asyncio

import pytest

from devices.transports._framing import FixedLengthFraming, Framer, LineFraming
from devices.transports._state import Backoff, ConnectionState
from devices.transports.serial import SerialConfig, SerialTransport

FAST = Backoff(initial=0.01, maximum=0.05)


def test_line_framer_keeps_partial_tail_and_strips_cr():
    f = Framer(LineFraming())
    assert f.feed(b"$GPGGA,1*00\r\n$GPR") == [b"$GPGGA,1*00"]
    assert f.feed(b"MC\n\n") == [b"$GPRMC", b""]
    assert f.flush() == b""


def test_line_framer_cuts_overlong_lines_instead_of_growing():
    f = Framer(LineFraming(max_length=4))
    assert f.feed(b"abcdefghij") == [b"abcd", b"efgh"]
    assert f.flush() == b"ij"


def test_fixed_length_framer():
    f = Framer(FixedLengthFraming(3))
    assert f.feed(b"abcdefg") == [b"abc", b"def"]
    assert f.feed(b"hi") == [b"ghi"]


@pytest.mark.parametrize(
    "kwargs",
    [{"baudrate": 0}, {"baudrate": "fast"}, {"port": ""}, {"poll_interval": 0}],
)
def test_config_rejects_bad_values_with_the_value(kwargs):
    base = {"port": "/dev/ttyUSB0"} | kwargs
    with pytest.raises(ValueError, match="got"):
        SerialConfig(**base)


async def _take(t: SerialTransport, n: int, timeout: float = 5.0) -> list[bytes]:
    out: list[bytes] = []
    async with asyncio.timeout(timeout):
        async for frame in t:
            out.append(frame)
            if len(out) == n:
                break
    return out


async def test_reads_lines_through_a_symlinked_pty(pty_device):
    states: list[ConnectionState] = []
    cfg = SerialConfig(str(pty_device.link), baudrate=115200, backoff=FAST)
    async with SerialTransport(cfg, on_state=states.append) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        pty_device.write(b"one\r\ntwo\nthr")
        pty_device.write(b"ee\n")
        assert await _take(t, 3) == [b"one", b"two", b"three"]
    assert states[-1] is ConnectionState.CLOSED
    assert ConnectionState.CONNECTED in states


async def test_fixed_length_frames(pty_device):
    cfg = SerialConfig(str(pty_device.link), framing=FixedLengthFraming(4), backoff=FAST)
    async with SerialTransport(cfg) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        pty_device.write(bytes(range(12)))
        assert await _take(t, 3) == [bytes(range(0, 4)), bytes(range(4, 8)), bytes(range(8, 12))]


async def test_survives_unplug_and_replug(pty_device):
    states: list[ConnectionState] = []
    cfg = SerialConfig(str(pty_device.link), backoff=FAST)
    async with SerialTransport(cfg, on_state=states.append) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        pty_device.write(b"before\n")
        assert await _take(t, 1) == [b"before"]
        pty_device.unplug()
        await t.wait_state(ConnectionState.DISCONNECTED, timeout=5)
        pty_device.replug()
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        pty_device.write(b"after\n")
        assert await _take(t, 1) == [b"after"]
        assert t.stats.connects == 2 and t.stats.faults == 1


async def test_partial_frame_at_unplug_goes_downstream(pty_device):
    cfg = SerialConfig(str(pty_device.link), backoff=FAST)
    async with SerialTransport(cfg) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        pty_device.write(b"whole\npart")
        assert await _take(t, 1) == [b"whole"]
        pty_device.unplug()
        assert await _take(t, 1) == [b"part"]
        assert t.stats.partial_frames_at_fault == 1


async def test_missing_port_backs_off_and_close_is_not_a_fault(tmp_path):
    states: list[ConnectionState] = []
    cfg = SerialConfig(str(tmp_path / "nope"), backoff=FAST)
    t = SerialTransport(cfg, on_state=states.append)
    await t.start()
    await t.wait_state(ConnectionState.DISCONNECTED, timeout=5)
    await t.close()
    await t.close()  # idempotent
    assert t.state is ConnectionState.CLOSED
    with pytest.raises(StopAsyncIteration):
        await t.__anext__()
    assert states.count(ConnectionState.CLOSED) == 1


async def test_close_while_iterating_ends_the_iteration(pty_device):
    cfg = SerialConfig(str(pty_device.link), backoff=FAST)
    t = SerialTransport(cfg)
    await t.start()
    await t.wait_state(ConnectionState.CONNECTED, timeout=5)

    async def consume() -> list[bytes]:
        return [f async for f in t]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # let the consumer park on the empty queue
    await t.close()
    assert await asyncio.wait_for(task, 5) == []
    assert not pty_device.reader_attached()
