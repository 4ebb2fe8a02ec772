"""The console of a real `edge run` fed by edge-sim over real ptys: the overview lists every
device with live numbers, readings stream to an open page, and each endpoint shows the log."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.console.test_live import events, next_event
from tests.edge._helpers import (
    BIN,
    SIM_SERIAL,
    health,
    serial_device,
    start_edge,
    stop_edge,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.timeout(120)


async def test_a_running_edge_shows_its_devices_and_streams_their_readings(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    devices = "".join(serial_device(n, k, str(links / n), c, o) for n, k, c, o in SIM_SERIAL)
    config, port = write_config(tmp_path, devices)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    sim = None
    try:
        await asyncio.to_thread(wait_for, lambda: health(port), 30, "/health")
        # A port probe: connect and close, before anything else. Nothing is logged for it.
        with socket.create_connection(("127.0.0.1", port)):
            pass
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as s, \
                s.get("/api/stream") as stream_resp:
            stream = events(stream_resp)
            await next_event(stream, "overview")
            sim = subprocess.Popen(
                [str(BIN / "edge-sim"), "--no-progress", "--seed", "7", "--output", "pty",
                 "--link-dir", str(links), "--rate", "20", "--count", "400"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seen: set[str] = set()
            async with asyncio.timeout(60):
                while seen != {"car-1", "room-1", "bed-1"}:
                    seen.add((await next_event(stream, "reading", 60))["device"])
            # Live numbers: every device on the overview pushed to the page, reading.
            async with asyncio.timeout(30):
                while True:
                    o = await next_event(stream, "overview")
                    devs = {d["id"]: d for d in o["devices"]}
                    if all(d["last"] is not None and d["rate_per_s"] > 0 for d in devs.values()):
                        break
            assert set(devs) == {"car-1", "room-1", "bed-1"}
            assert devs["room-1"]["kind"] == "temperature" and devs["room-1"]["state"] == "connected"
            assert isinstance(devs["room-1"]["last"]["value"], dict)
            assert len(devs["room-1"]["sparkline"]) == 30
            # The text codec sends no time: room-1's readings are stamped by the box's clock.
            assert devs["room-1"]["clock"] == devs["room-1"]["clock_box"]
            assert devs["room-1"]["clock"] in ("synced", "gps", "unknown", "unsynced")
            async with s.get("/health") as r:
                h = (await r.json())["devices"]
            assert h["room-1"]["last_reading_clock"]["source"] == "box"
            assert h["car-1"]["last_reading_clock"]["source"] in ("device", "box")

            async with s.get("/api/devices/room-1/readings") as r:
                readings = (await r.json())["readings"]
            assert readings and all("temperature_c" in x["value"] for x in readings)
            async with s.get("/api/tracks") as r:
                (track,) = (await r.json())["tracks"]
            assert track["device"] == "car-1" and track["points"]
            async with s.get("/api/topics") as r:
                names = {t["name"]: t for t in (await r.json())["topics"]}
            topic = next(n for n in names if "temperature" in n)  # the device kind's default topic
            assert names[topic]["records"] >= len(readings)
            async with s.get(f"/api/topics/{topic}/records?key=room-1&limit=5") as r:
                page = await r.json()
            assert [x["key"] for x in page["records"]] == ["room-1"] * 5
    finally:
        if sim is not None:
            sim.kill()
            sim.wait()
        rc = await asyncio.to_thread(stop_edge, edge, edge_log)
    text = edge_log.read_text()
    assert rc == 0, text
    assert "ERROR" not in text and "Traceback" not in text, text
