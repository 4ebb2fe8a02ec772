"""The event stream: a committed reading reaches an open stream (woken by the log's commit
notification); a client that does not read is dropped, bounded, without stalling the loop."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.console import _handlers, _live
from tests.console._helpers import config, produce, serving

pytestmark = pytest.mark.timeout(90)


async def events(resp: aiohttp.ClientResponse) -> Any:
    """(event, data) pairs of a text/event-stream response."""
    name = None
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name is not None:
            yield name, json.loads(line[6:])
            name = None


async def next_event(stream: Any, kind: str, timeout: float = 15.0) -> dict[str, Any]:
    """The next event of ``kind``; a generous timeout (this is no timing test)."""
    async with asyncio.timeout(timeout):
        async for name, data in stream:
            if name == kind:
                return data  # type: ignore[no-any-return]
    raise AssertionError(f"the stream ended before a {kind} event")


async def test_a_committed_reading_and_alert_reach_an_open_stream(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    produce(cfg, [("temperature", "room-1", {"temperature_c": 36.6}, 1000, {})])  # before: not sent
    async with serving(cfg) as (console, base), aiohttp.ClientSession(base) as s, \
            s.get("/api/stream") as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        stream = events(r)
        overview = await next_event(stream, "overview")
        assert overview["edge_id"] == "test-edge"
        assert len(console.hub.subscribers) == 1
        now = time.time_ns() // 1_000_000
        await asyncio.to_thread(produce, cfg, [
            ("temperature", "room-1", {"temperature_c": 39.1}, now, {}),
            ("alerts", "room-1", {"alert": "fever", "state": "raised"}, now,
             {"schema": "edge.alert.threshold"})])
        reading = await next_event(stream, "reading")
        assert reading["device"] == "room-1" and reading["value"] == {"temperature_c": 39.1}
        assert reading["ts_ms"] == now and reading["offset"] >= 0
        alert = await next_event(stream, "alert")
        assert (alert["kind"], alert["device"], alert["topic"]) == ("fever", "room-1", "alerts")


async def test_a_topic_created_while_open_is_followed(tmp_path: Path) -> None:
    # gps has no topic yet when the stream opens: a device's first reading creates it.
    cfg = config(tmp_path)
    async with serving(cfg) as (_, base), aiohttp.ClientSession(base) as s, \
            s.get("/api/stream") as r:
        stream = events(r)
        await next_event(stream, "overview")
        now = time.time_ns() // 1_000_000
        await asyncio.to_thread(produce, cfg, [("gps", "car-1", {"lat": 1.0, "lon": 2.0}, now, {})])
        reading = await next_event(stream, "reading")
        assert reading["device"] == "car-1" and reading["value"]["lat"] == 1.0


async def test_a_burst_past_what_is_sent_live_says_what_it_skipped(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with serving(cfg) as (_, base), aiohttp.ClientSession(base) as s, \
            s.get("/api/stream") as r:
        stream = events(r)
        await next_event(stream, "overview")
        now = time.time_ns() // 1_000_000
        n = _live.LIVE_PER_PARTITION + 30  # one commit: more than one read sends
        await asyncio.to_thread(produce, cfg, [
            ("temperature", "room-1", {"temperature_c": 20 + i / 100}, now - n + i, {})
            for i in range(n)])
        skipped = await next_event(stream, "skipped")
        assert skipped["topic"] == "temperature"
        assert skipped["to_offset"] - skipped["from_offset"] == 30
        sent = [await next_event(stream, "reading") for _ in range(_live.LIVE_PER_PARTITION)]
        # The newest are sent, right after the gap; the gap is what /api/.../readings serves.
        assert [x["offset"] for x in sent] == list(range(skipped["to_offset"],
                                                         skipped["to_offset"] + len(sent)))
        assert sent[-1]["value"] == {"temperature_c": 20 + (n - 1) / 100}
        async with s.get("/api/devices/room-1/readings") as rr:
            got = {x["offset"] for x in (await rr.json())["readings"]}
        assert set(range(skipped["from_offset"], skipped["to_offset"])) <= got


async def test_a_client_that_does_not_read_is_dropped_and_costs_a_bounded_queue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_live, "QUEUE_EVENTS", 50)  # the bounds, small: reached sooner
    monkeypatch.setattr(_handlers, "WRITE_TIMEOUT_S", 2.0)
    cfg = config(tmp_path)
    async with serving(cfg) as (console, base), aiohttp.ClientSession(base) as s:
        port = int(base.rsplit(":", 1)[1])
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", port))
        slow.sendall(b"GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
        try:
            async with asyncio.timeout(15):
                while not console.hub.subscribers:
                    await asyncio.sleep(0.05)
            (sub,) = console.hub.subscribers
            pad = "x" * 20_000
            async with asyncio.timeout(60):
                while console.hub.subscribers:
                    now = time.time_ns() // 1_000_000
                    await asyncio.to_thread(produce, cfg, [
                        ("temperature", "room-1", {"temperature_c": 36.0, "pad": pad}, now + i, {})
                        for i in range(40)])
                    # The loop answers meanwhile, and the queue never holds more than its bound.
                    async with s.get("/api/overview") as r:
                        assert r.status == 200
                    assert sub.queue.qsize() <= 50
            # Dropped: by its queue's bound or by the write timeout, whichever came first.
        finally:
            slow.close()
