"""Time through the running service: GPS correction, NTP's jump, a step back, and retention.

The service runs in this process with a ManualClock (wall and monotonic)
handed to it and to its log, real pseudo-terminals for a GPS receiver and a
thermometer, the real log and the real /health endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

from broker import KafkaAdminClient, ManualClock
from devices import Reading
from devices.codecs.nmea import encode_fix
from edge import Service, config_from_dict
from edge._logconfig import log_config_of
from tests.edge._helpers import read_topic
from tests.edge.test_clock import BOOT_2020, TRUE_NOW, Ntp
from tests.fixtures.mosquitto import free_port
from tests.fixtures.pty import PtyDevice


async def until(pred: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)
    assert pred(), what


def headers_of(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def config(tmp_path: Path, gps: PtyDevice, room: PtyDevice, port: int, **extra: Any):  # type: ignore[no-untyped-def]
    return config_from_dict({
        "edge_id": "clock-edge", "data_dir": str(tmp_path / "data"),
        "log": {"partitions": 1, "durability": "no-fsync", "retention_seconds": 60},
        "health": {"address": f"127.0.0.1:{port}"},
        "devices": [
            {"name": "car-1", "kind": "gps", "transport": "serial", "port": str(gps.link),
             "codec": "nmea0183", "topic": "gps"},
            {"name": "room-1", "kind": "temperature", "transport": "serial", "port": str(room.link),
             "codec": "text", "topic": "temperature"},
        ],
        **extra,
    })


class Running(NamedTuple):
    service: Service
    cfg: Any
    clock: ManualClock
    gps: PtyDevice
    room: PtyDevice
    port: int   # the health endpoint's


@contextlib.asynccontextmanager
async def running(tmp_path: Path, ntp: Ntp, **extra: Any) -> AsyncIterator[Running]:
    """A service on a GPS pty and a thermometer pty, its clock manual (booted in 2020), once
    both devices are open; stopped and the ptys closed afterwards."""
    gps, room = PtyDevice(tmp_path / "gps"), PtyDevice(tmp_path / "room")
    port = free_port()
    cfg = config(tmp_path, gps, room, port, **extra)
    clock = ManualClock(wall_ms=BOOT_2020, monotonic_ms=1_000_000)
    service = Service(cfg, clock=clock, ntp=ntp, shutdown_timeout=5)
    task = asyncio.create_task(service.run())
    try:
        await until(lambda: len(service.runners) == 2
                    and all(r.connected for r, _ in service.runners.values()), "devices connected")
        yield Running(service, cfg, clock, gps, room, port)
    finally:
        service.request_stop()
        await asyncio.wait_for(task, 30)
        gps.close()
        room.close()


def write_fixes(gps: PtyDevice, n: int) -> None:
    for i in range(n):
        fix = Reading("car-1", "gps", "nmea0183", {"lat": 52.5, "lon": 13.4}, TRUE_NOW + i * 1000)
        gps.write(encode_fix(fix))


async def test_clock_through_the_service(tmp_path: Path) -> None:
    ntp = Ntp(False)
    async with running(tmp_path, ntp) as (service, cfg, clock, gps, room, port):
        car, thermo = service.runners["car-1"][0], service.runners["room-1"][0]

        async def temperature(text: str, n: int) -> None:
            room.write(f"{text}\n".encode())
            await until(lambda: thermo.readings == n, f"temperature reading {n}")

        # A: booted without a clock, nothing to correct it yet.
        await temperature("21.5", 1)
        # A GPS receiver with a fix: three epochs; the assembler hands on the first two.
        write_fixes(gps, 3)
        await until(lambda: car.readings == 2, "two GPS fixes")
        # B: stamped with GPS time, years after the wall clock's.
        await temperature("21.6", 2)
        h = await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/health", timeout=5).read()))
        assert h["clock"] == "gps" and h["time"]["gps_fixes"] == 2
        assert h["time"]["wall_minus_gps_s"] == (BOOT_2020 - (TRUE_NOW + 1000)) / 1000
        # C: NTP syncs: the wall clock jumps years forward.
        ntp.synced = True
        clock.set_wall(TRUE_NOW + 3000)
        await temperature("21.7", 3)
        # D: NTP steps the clock an hour back (still synced).
        clock.advance(1)
        clock.set_wall(clock.wall_ms() - 3_600_000)
        await temperature("21.8", 4)

        health = service.health()
        assert health["clock"] == "synced"
        assert health["time"]["jumps"] == 2 and health["time"]["held_timestamps"] == 1
        jumps = service.metrics.clock_jumps
        assert jumps.labels("forward")._value.get() == 1
        assert jumps.labels("backward")._value.get() == 1

        temps = await asyncio.to_thread(read_topic, cfg.data_dir, "temperature")
        assert [json.loads(r.value)["temperature_c"] for r in temps] == [21.5, 21.6, 21.7, 21.8]
        assert [headers_of(r)["clock"] for r in temps] == ["unsynced", "gps", "synced", "synced"]
        # Box-made timestamps: the wall clock, then GPS time, then NTP's, then held
        # (not an hour back); the log's order is the offsets whatever the stamps say.
        assert [r.timestamp for r in temps] == [BOOT_2020, TRUE_NOW + 1000, TRUE_NOW + 3000,
                                                 TRUE_NOW + 3000]
        assert [int(headers_of(r)["ingest_ms"]) for r in temps][:3] == [r.timestamp for r in temps][:3]
        fixes = await asyncio.to_thread(read_topic, cfg.data_dir, "gps")
        assert [r.timestamp for r in fixes] == [TRUE_NOW, TRUE_NOW + 1000]  # the device's own time
        assert [headers_of(r)["clock"] for r in fixes] == ["gps", "gps"]

        # Retention runs on the log clock (monotonic running time), not on timestamps:
        # record A is six years old by its timestamp and 11 s old by the log clock.
        admin = KafkaAdminClient(log_config=log_config_of(cfg, clock))
        try:
            clock.advance(10)
            await asyncio.to_thread(admin.run_retention)
            info = await asyncio.to_thread(admin.describe_log)
            assert info["expired_records"] == 0
            assert len(await asyncio.to_thread(read_topic, cfg.data_dir, "temperature")) == 4
            # The control: past retention.ms of running time, they do expire.
            clock.advance(120)
            await asyncio.to_thread(admin.run_retention)
            info = await asyncio.to_thread(admin.describe_log)
            assert info["expired_records"] == 6
            assert await asyncio.to_thread(read_topic, cfg.data_dir, "temperature") == []
        finally:
            admin.close()


async def test_gps_time_can_be_switched_off(tmp_path: Path) -> None:
    async with running(tmp_path, Ntp(False), clock={"gps_time": False}) as (
            service, cfg, _clock, gps, room, _port):
        car, thermo = service.runners["car-1"][0], service.runners["room-1"][0]
        write_fixes(gps, 3)
        await until(lambda: car.readings == 2, "two GPS fixes")
        room.write(b"21.5\n")
        await until(lambda: thermo.readings == 1, "a temperature reading")
        temps = await asyncio.to_thread(read_topic, cfg.data_dir, "temperature")
        assert [(r.timestamp, headers_of(r)["clock"]) for r in temps] == [(BOOT_2020, "unsynced")]
        assert service.health()["time"]["gps_fixes"] == 0


async def test_gps_time_is_taken_at_the_epochs_arrival_not_at_its_release(tmp_path: Path) -> None:
    async with running(tmp_path, Ntp(False)) as (service, _cfg, clock, gps, _room, _port):
        car = service.runners["car-1"][0]
        first = encode_fix(Reading("car-1", "gps", "nmea0183", {"lat": 52.5, "lon": 13.4}, TRUE_NOW))
        arrived = clock.monotonic_ms()
        gps.write(first)
        codec = car.adapter.codec  # type: ignore[union-attr]
        await until(lambda: codec.sentences == len(first.splitlines()), "the first epoch read")
        clock.advance(1.0)  # the receiver's next epoch, a second later, hands the first on
        gps.write(encode_fix(Reading("car-1", "gps", "nmea0183", {"lat": 52.5, "lon": 13.4},
                                     TRUE_NOW + 1000)))
        await until(lambda: car.readings == 1, "the first fix")
        assert service.trust.gps_offset_ms() == TRUE_NOW - arrived
        assert service.trust.now_ms() == TRUE_NOW + 1000
