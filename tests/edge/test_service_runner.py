"""A device whose events the log refuses is restarted with backoff and reported; others flow."""

from __future__ import annotations

import asyncio

from devices import Backoff
from edge._devices import SerialDevice
from edge._metrics import Metrics
from edge._runner import DeviceRunner


class FlakyWriter:
    """Stands in for EventWriter: refuses the first `fail` readings of device 'bad'."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.accepted: list[tuple[str, str]] = []

    def sink_for(self, runner: DeviceRunner):  # type: ignore[no-untyped-def]
        async def sink(reading) -> None:  # type: ignore[no-untyped-def]
            if runner.cfg.name == "bad" and self.fail > 0:
                self.fail -= 1
                raise OSError("disk on fire")
            self.accepted.append((runner.cfg.name, reading.device_id))
            runner.readings += 1

        return sink

    async def prime(self, runner: DeviceRunner) -> None:
        pass  # nothing to read back: no log behind this writer

    def dead_letter_sink_for(self, runner: DeviceRunner):  # type: ignore[no-untyped-def]
        async def dead(letter) -> None:  # type: ignore[no-untyped-def]
            runner.dead_letters += 1

        return dead


def device(name: str, port: str) -> SerialDevice:
    return SerialDevice(name=name, kind="temperature", codec="text",
                        topic="temperature", port=port, device_id=name)


async def test_failing_device_is_restarted_and_never_stops_the_others(pty_device, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.pty import PtyDevice

    other = PtyDevice(tmp_path / "other")
    writer, metrics = FlakyWriter(fail=2), Metrics()
    bad = DeviceRunner(device("bad", str(pty_device.link)), writer, metrics,
                       backoff=Backoff(0.05, 0.1))
    good = DeviceRunner(device("good", str(other.link)), writer, metrics,
                        backoff=Backoff(0.05, 0.1))
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(bad.run())
            tg.create_task(good.run())
            for _ in range(100):
                if bad.connected and good.connected:
                    break
                await asyncio.sleep(0.05)
            for i in range(40):
                pty_device.write(f"{20 + i / 10:.1f}\n".encode())
                other.write(f"{30 + i / 10:.1f}\n".encode())
                await asyncio.sleep(0.02)
                if bad.restarts >= 2 and not bad.connected:
                    await asyncio.sleep(0.3)  # let it come back
            for _ in range(100):
                if good.readings >= 40 and bad.readings >= 1:
                    break
                await asyncio.sleep(0.05)
            await bad.stop()
            await good.stop()
    finally:
        other.close()
    assert bad.restarts == 2 and "disk on fire" in (bad.last_error or "")
    assert good.restarts == 0 and good.readings == 40
    assert bad.readings >= 1 and bad.state == good.state == "stopped"
    assert metrics.device_restarts.labels("bad")._value.get() == 2


def test_every_transport_the_config_accepts_has_an_adapter_builder() -> None:
    from edge._devices import DEVICE_TYPES
    from edge._runner import ADAPTERS

    assert set(ADAPTERS) == set(DEVICE_TYPES)
