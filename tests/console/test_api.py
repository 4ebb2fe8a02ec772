"""The console's API over a real log: each endpoint returns what is in the log; bad
parameters are 400 with a message; unknown names 404."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import aiohttp
import pytest

from tests.console._helpers import config, produce, serving

pytestmark = pytest.mark.timeout(60)

NOW = time.time_ns() // 1_000_000
T0 = NOW - 60_000  # a minute ago: inside every endpoint's default range


def fill(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = config(tmp_path)
    records = []
    for i in range(10):
        records.append(("temperature", "room-1", {"temperature_c": 36.5 + i * 0.2}, T0 + i * 1000,
                        {"schema": "edge.temperature"}))
        records.append(("temperature", "room-2", {"temperature_c": 20.0}, T0 + i * 1000, {}))
    for i in range(5):  # a straight line north: ~111 m per 0.001 degree
        records.append(("gps", "car-1", {"lat": 52.0 + i * 0.001, "lon": 5.0,
                                         "speed_mps": 3.0 + i, "fix_quality": 1},
                        T0 + i * 1000, {}))
    records.append(("gps", "car-1", {"valid": False}, T0 + 5000, {}))  # no position: skipped
    records.append(("alerts", "room-1", {"alert": "fever", "state": "raised",
                                         "temperature_c": 38.9},
                    T0 + 8000, {"schema": "edge.alert.threshold"}))
    records.append(("alerts.geofence", "car-1", {"fence": "depot", "event": "exit"},
                    T0 + 9000, {"schema": "edge.alert.geofence"}))
    records.append(("dead-letters", "room-1", b"\xff\x00garbage", T0 + 2000,
                    {"reason": "not a number", "codec": "text", "device": "room-1"}))
    produce(cfg, records)
    return cfg


async def get(session: aiohttp.ClientSession, url: str, status: int = 200) -> dict:  # type: ignore[type-arg]
    async with session.get(url) as r:
        body = await r.json()
        assert r.status == status, (url, r.status, body)
        return body  # type: ignore[no-any-return]


async def test_each_endpoint_returns_what_is_in_the_log(tmp_path: Path) -> None:
    cfg = fill(tmp_path)
    async with serving(cfg) as (_, base), aiohttp.ClientSession(base) as s:
        topics = {t["name"]: t for t in (await get(s, "/api/topics"))["topics"]}
        assert topics["temperature"]["records"] == 20 and topics["temperature"]["partitions"] == 2
        assert topics["temperature"]["oldest_ms"] == T0 and topics["temperature"]["bytes"] > 0
        assert topics["dead-letters"]["dead_letter"] is True
        assert topics["temperature"]["dead_letter"] is False

        # Readings of one device: its key only, in time order, with where they are.
        r = await get(s, "/api/devices/room-1/readings")
        assert r["device"] == "room-1" and r["kind"] == "temperature"
        assert [x["value"]["temperature_c"] for x in r["readings"]] == pytest.approx(
            [36.5 + i * 0.2 for i in range(10)])
        assert [x["ts_ms"] for x in r["readings"]] == [T0 + i * 1000 for i in range(10)]
        assert r["thresholds"]["fever_c"] == 38.5
        assert [b["name"] for b in r["thresholds"]["bp_bands"]][-1] == "hypertensive_crisis"
        r = await get(s, f"/api/devices/room-1/readings?since_ms={T0 + 3000}"
                         f"&until_ms={T0 + 6000}&limit=2")
        assert [x["ts_ms"] for x in r["readings"]] == [T0 + 5000, T0 + 6000]  # the newest 2

        # Tracks: the route, its length and top speed, and the configured fences.
        t = await get(s, f"/api/tracks?since_ms={T0 - 1}")
        (track,) = t["tracks"]
        assert track["device"] == "car-1" and len(track["points"]) == 5
        assert track["points"][0] == {"ts_ms": T0, "lat": 52.0, "lon": 5.0, "speed": 3.0, "fix": 1}
        assert track["distance_m"] == pytest.approx(4 * 111.2, rel=0.01)
        assert track["max_speed"] == 7.0
        fences = {f["name"]: f for f in t["geofences"]}
        assert fences["depot"] == {"name": "depot", "kind": "circle", "lat": 52.0, "lon": 5.0,
                                   "radius_m": 250.0}
        assert fences["yard"]["polygon"][0] == [52.1, 5.1]

        a = (await get(s, "/api/alerts"))["alerts"]
        assert [(x["kind"], x["device"], x["topic"]) for x in a] == [
            ("fever", "room-1", "alerts"), ("geofence", "car-1", "alerts.geofence")]
        assert a[0]["value"]["temperature_c"] == 38.9

        # Browsing a topic like the console consumer.
        end = await get(s, "/api/topics/temperature/records?limit=3")
        assert [x["ts_ms"] for x in end["records"]] == [T0 + 8000, T0 + 9000, T0 + 9000]
        start = await get(s, "/api/topics/temperature/records?from=beginning&limit=50")
        assert len(start["records"]) == 20
        assert sum(start["next"].values()) == 20
        room = await get(s, "/api/topics/temperature/records?from=beginning&key=room-2&limit=50")
        assert {x["key"] for x in room["records"]} == {"room-2"} and len(room["records"]) == 10
        first = room["records"][0]
        at = await get(s, f"/api/topics/temperature/records?partition={first['partition']}"
                          f"&offset={first['offset']}&limit=1")
        assert at["records"] == [first] and at["next"] == {str(first["partition"]):
                                                           first["offset"] + 1}
        since = await get(s, f"/api/topics/temperature/records?time_ms={T0 + 9000}&limit=10")
        assert {x["ts_ms"] for x in since["records"]} == {T0 + 9000}
        dead = (await get(s, "/api/topics/dead-letters/records"))["records"][0]
        assert dead["raw_hex"] == "ff0067617262616765" and dead["reason"] == "not a number"
        assert dead["headers"]["codec"] == "text"

        o = await get(s, "/api/overview")
        assert o["edge_id"] == "test-edge" and o["uplink"] is None and o["devices"] == []


@pytest.mark.parametrize(("url", "status", "says"), [
    ("/api/topics/temperature/records?limit=abc", 400, "limit: expected an integer, got 'abc'"),
    ("/api/topics/temperature/records?limit=0", 400, "limit: expected an integer in 1..1000"),
    ("/api/topics/temperature/records?from=middle", 400, "from: expected one of beginning, end"),
    ("/api/topics/temperature/records?offset=3", 400, "offset: needs partition"),
    ("/api/topics/temperature/records?partition=7", 400, "partition: expected 0..1"),
    ("/api/topics/temperature/records?time_ms=-5", 400, "time_ms: expected an integer in 0.."),
    ("/api/topics/nope/records", 404, "no topic 'nope'"),
    ("/api/devices/room-1/readings?since_ms=x", 400, "since_ms: expected an integer"),
    ("/api/devices/room-1/readings?since_ms=10&until_ms=5", 400, "until_ms: expected a time at"),
    ("/api/devices/room-1/readings?limit=50001", 400, "limit: expected an integer in 1..50000"),
    ("/api/devices/ghost/readings", 404, "no device 'ghost'"),
    ("/api/tracks?device=room-1", 404, "no GPS device 'room-1'"),
    ("/api/alerts?limit=-1", 400, "limit: expected an integer in 1..5000"),
])
async def test_bad_parameters_are_refused_with_a_message(tmp_path: Path, url: str, status: int,
                                                         says: str) -> None:
    cfg = fill(tmp_path)
    async with serving(cfg) as (_, base), aiohttp.ClientSession(base) as s:
        body = await get(s, url, status)
        assert says in body["error"]


async def test_pages_are_served_and_only_get_is_allowed(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with serving(cfg) as (_, base), aiohttp.ClientSession(base) as s:
        for path in ("/", "/devices/room-1", "/tracks", "/alerts", "/topics", "/topics/gps"):
            async with s.get(path) as r:
                assert r.status == 200 and r.content_type == "text/html", path
        async with s.get("/static/../../_console.py") as r:
            assert r.status == 404  # nothing outside static/
        async with s.post("/api/overview") as r:
            assert r.status == 405
        async with s.get("/health") as r:
            assert r.status == 200 and (await r.json())["ok"] is True
        async with s.get("/metrics") as r:
            assert r.status == 200 and r.content_type == "text/plain"


async def test_a_reading_stamped_before_a_later_one_is_still_read(tmp_path: Path) -> None:
    # In offset order: in range, past the range's end, then one stamped inside the range
    # (a device's own clock, a replayed backlog). The scan used to stop at the second.
    cfg = config(tmp_path)
    produce(cfg, [("temperature", "room-1", {"temperature_c": c}, ts, {})
                  for c, ts in [(36.0, T0 + 1000), (36.1, T0 + 50_000), (36.2, T0 + 3000)]])
    async with serving(cfg) as (_, base), aiohttp.ClientSession(base) as s:
        r = await get(s, f"/api/devices/room-1/readings?since_ms={T0}&until_ms={T0 + 10_000}")
    assert [(x["ts_ms"], x["value"]["temperature_c"]) for x in r["readings"]] == [
        (T0 + 1000, 36.0), (T0 + 3000, 36.2)]


async def test_large_api_bodies_are_gzipped_for_a_client_that_accepts_it(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    produce(cfg, [("temperature", "room-1", {"temperature_c": 36.0 + i % 30 / 10}, T0 + i * 10, {})
                  for i in range(2000)])
    url = "/api/devices/room-1/readings?limit=5000"
    async with serving(cfg) as (_, base), aiohttp.ClientSession(base, auto_decompress=False) as s:
        async with s.get(url, headers={"Accept-Encoding": "gzip"}) as r:
            assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
            gz = await r.read()
        async with s.get(url, headers={"Accept-Encoding": "identity"}) as r:
            assert r.status == 200 and "Content-Encoding" not in r.headers
            plain = await r.read()
    assert gzip.decompress(gz) == plain and len(json.loads(plain)["readings"]) == 2000
    assert len(gz) * 5 < len(plain)  # what the page loads is a fraction of the JSON


async def test_busy_page_reads_do_not_hold_up_the_loop_or_health(tmp_path: Path) -> None:
    import asyncio
    import threading

    from edge.console._reads import MAX_READS

    cfg = config(tmp_path)
    async with serving(cfg) as (console, base), aiohttp.ClientSession(base) as s:
        release = threading.Event()
        # Every worker of the pages' pool held by a read that does not end yet.
        held = [asyncio.ensure_future(console.reads.run(lambda _c: release.wait(30)))
                for _ in range(MAX_READS)]
        waiting = asyncio.ensure_future(get(s, "/api/topics"))
        try:
            async with s.get("/health") as r:
                assert r.status == 200
            async with s.get("/metrics") as r:
                assert r.status == 200
            assert not waiting.done()  # its turn in the pool has not come
        finally:
            release.set()
        assert "topics" in await waiting
        await asyncio.gather(*held)
