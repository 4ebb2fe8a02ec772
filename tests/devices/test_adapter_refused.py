"""A reading the sink refuses, or whose write the log refuses twice, costs only its item.

In-memory transport and sink (the real service's path is tests/edge/test_service_poison.py):
the adapter dead-letters the item's own bytes with the reason, acknowledges it, and
goes on; run() raises only for a failure that is not the data's (retriable, say).
"""

from __future__ import annotations

import asyncio

import pytest

from devices import Arrival, DeadLetter, Reading, ReadingRejected, TextTemperatureCodec
from devices.adapters import SerialAdapter


class Frames:
    """A transport of a fixed list of frames, then the end."""

    id = "mem"

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = list(frames)

    def __aiter__(self):  # type: ignore[no-untyped-def]
        return self

    async def __anext__(self) -> bytes:
        if not self._frames:
            raise StopAsyncIteration
        return self._frames.pop(0)

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Acked(SerialAdapter):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.acked: list[bytes] = []

    async def _done(self, item: bytes) -> None:
        self.acked.append(item)


class Refused(Exception):
    """What the log says of a record it will not hold."""


class Busy(Exception):
    retriable = True


class Log:
    """A sink that fails the writes of readings at `bad` °C `times` times, then takes them."""

    def __init__(self, bad: float, times: int, error: type[Exception] = Refused) -> None:
        self.bad, self.left, self.error = bad, times, error
        self.written: list[float] = []
        self.dead: list[DeadLetter] = []

    def sink(self, reading: Reading) -> asyncio.Future[None]:
        t = reading.values["temperature_c"]
        if t == -1.0:
            raise ReadingRejected(f"{reading.device_id}: refused when called", reading.schema)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if t == self.bad and self.left:
            self.left -= 1
            fut.set_exception(self.error("record refused"))
        else:
            self.written.append(t)
            fut.set_result(None)
        return fut

    async def dead_letters(self, letter: DeadLetter) -> None:
        self.dead.append(letter)


def adapter(log: Log, frames: list[bytes]) -> Acked:
    return Acked("room", Frames(frames), TextTemperatureCodec(), log.sink, log.dead_letters,  # type: ignore[arg-type]
                 clock=lambda: Arrival(1_750_000_000_000), refused=lambda e: isinstance(e, Refused))


FRAMES = [b"1", b"13", b"-1", b"2"]


async def test_refused_twice_is_dead_lettered_and_acknowledged_and_the_rest_goes_on():
    log = Log(bad=13.0, times=2)
    a = adapter(log, FRAMES)
    await a.run()  # returns: nothing the device sent stops it
    assert log.written == [1.0, 2.0]
    assert [(d.raw, d.reason) for d in log.dead] == [
        (b"13", "the log refused it twice (Refused: record refused); dead-lettered so that its "
                "redelivery cannot loop"),
        (b"-1", "room: refused when called"),
    ]
    assert a.acked == FRAMES  # every item acknowledged, in order
    assert a.stats.readings == 2 and a.stats.decode_error_total == 2


async def test_refused_once_is_written_on_the_second_try():
    log = Log(bad=13.0, times=1)  # a neighbour's fault in a shared commit, say
    a = adapter(log, FRAMES)
    await a.run()
    # After what was already in flight (the log appends in call order): a restart and the
    # broker's redelivery would put it there too. Acknowledged in order all the same.
    assert log.written == [1.0, 2.0, 13.0]
    assert [d.raw for d in log.dead] == [b"-1"]
    assert a.acked == FRAMES


async def test_a_failure_that_is_not_the_datas_raises_and_acknowledges_nothing_after_it():
    log = Log(bad=13.0, times=1, error=Busy)
    a = adapter(log, FRAMES)
    with pytest.raises(Busy):
        await a.run()
    assert a.acked == [b"1"] and log.dead == []


class Pairs(TextTemperatureCodec):
    """Two readings per line (t, then t + 100), as a Tasmota message carries several sensors."""

    def decode(self, frame: bytes, device_id: str, arrival: Arrival | None = None) -> list[Reading]:
        [r] = super().decode(frame, device_id)
        return [r, Reading(device_id, "temperature", "text", {"temperature_c": r.values["temperature_c"] + 100})]


async def test_only_the_refused_reading_of_an_item_is_written_again():
    log = Log(bad=13.0, times=2)
    a = Acked("room", Frames([b"1", b"13", b"2"]), Pairs(), log.sink, log.dead_letters,  # type: ignore[arg-type]
              clock=lambda: Arrival(1_750_000_000_000), refused=lambda e: isinstance(e, Refused))
    await a.run()
    assert log.written == [1.0, 101.0, 113.0, 2.0, 102.0]  # 113 once: it was not refused
    assert [d.raw for d in log.dead] == [b"13"]
    assert a.acked == [b"1", b"13", b"2"]
