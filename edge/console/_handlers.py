"""The console's routes: pages, static files, the JSON API, the event stream, /health, /metrics.

Every handler answers from cached state or awaits a read in ``LogReads``' threads;
none touches the log on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge.console._params import bad, choice, integer
from edge.console._reads import now_ms
from edge.console._streamsinfo import alert_topics, geofences, thresholds

if TYPE_CHECKING:
    from edge.console._console import Console

log = logging.getLogger("edge.console")

__all__ = ["STATIC_DIR", "health_routes", "console_routes"]

STATIC_DIR = Path(__file__).parent / "static"
PAGES = {"/": "index.html", "/devices/{id}": "device.html", "/tracks": "tracks.html",
         "/alerts": "alerts.html", "/topics": "topics.html", "/topics/{name}": "topic.html"}
#: Comment lines on an idle stream, so proxies and browsers keep it open.
KEEPALIVE_S = 15.0
#: A client that takes longer than this to take one event is dropped.
WRITE_TIMEOUT_S = 10.0
_PLACEHOLDER = ("<!doctype html><meta charset=utf-8><title>edge console</title>"
                "<h1>edge console</h1><p>This page ({page}) is not installed yet. The API is "
                "at <a href=/api/overview>/api/overview</a>.</p>\n")


#: API bodies from this size on are gzipped for a client that accepts it: a cuff's
#: quarter hour of readings is ~200 KB of JSON, ~10x smaller gzipped, which keeps a
#: device page's first load under the 300 KB the console allows itself.
COMPRESS_FROM_BYTES = 4096


def _json(body: Any, status: int = 200) -> web.Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    resp = web.Response(body=data, status=status, content_type="application/json")
    if len(data) >= COMPRESS_FROM_BYTES:
        # Accept-Encoding decides at prepare(); aiohttp compresses large bodies off the loop.
        resp.enable_compression()
    return resp


def _not_found(message: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": message}), content_type="application/json")


def health_routes(console: Console) -> list[web.RouteDef]:
    async def health(request: web.Request) -> web.Response:
        h = await console.health(console.health_token_shown(request))
        return web.Response(text=json.dumps(h, indent=2) + "\n", status=200 if h.get("ok") else 503,
                            content_type="application/json")

    async def metrics(request: web.Request) -> web.Response:
        # The topologies' collector reads the log: off the loop, beside /health.
        body = await asyncio.to_thread(generate_latest, console.source.metrics_registry())
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    return [web.get("/health", health), web.get("/metrics", metrics)]


def console_routes(console: Console) -> list[web.RouteDef]:
    routes = [web.get(path, _page(name)) for path, name in PAGES.items()]
    routes += [web.get("/static/{path:.+}", _static)]

    async def overview(request: web.Request) -> web.Response:
        return _json(await console.overview())

    async def readings(request: web.Request) -> web.Response:
        name = request.match_info["id"]
        device = next((d for d in console.source.cfg.devices if d.name == name), None)
        if device is None:
            raise _not_found(f"no device {name!r} in the config")
        now = now_ms()
        since = integer(request, "since_ms", now - 15 * 60_000, lo=0)
        until = integer(request, "until_ms", now, lo=0)
        limit = integer(request, "limit", 5000, lo=1, hi=50_000)
        assert since is not None and until is not None and limit is not None
        if until < since:
            raise bad(f"until_ms: expected a time at or after since_ms ({since}), got {until}")
        rows = await console.reads.run(console.reads.readings, device.topic, name, since, until,
                                       limit)
        return _json({"device": name, "kind": device.kind, "topic": device.topic,
                      "thresholds": thresholds(console.source.cfg.streams), "readings": rows})

    async def tracks(request: web.Request) -> web.Response:
        since = integer(request, "since_ms", now_ms() - 3600_000, lo=0)
        assert since is not None
        wanted = request.query.get("device")
        gps = [d for d in console.source.cfg.devices if d.kind == "gps"
               and (wanted is None or d.name == wanted)]
        if wanted is not None and not gps:
            raise _not_found(f"no GPS device {wanted!r} in the config")
        out = []
        for d in gps:
            rows = await console.reads.run(console.reads.readings, d.topic, d.name, since,
                                           now_ms() + 60_000, 50_000)
            out.append(_track(d.name, rows))
        return _json({"tracks": out, "geofences": geofences(console.source.cfg.streams)})

    async def alerts(request: web.Request) -> web.Response:
        limit = integer(request, "limit", 200, lo=1, hi=5000)
        topics = alert_topics(console.source.cfg.streams)
        found = await console.reads.run(console.reads.alerts, topics, limit)
        return _json({"alerts": found})

    async def topics(request: web.Request) -> web.Response:
        dead = console.source.cfg.log.dead_letter_topic
        found = await console.topics()
        return _json({"topics": [dict(t, dead_letter=t["name"] == dead) for t in found]})

    async def records(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        partition = integer(request, "partition", None, lo=0)
        offset = integer(request, "offset", None, lo=0)
        time_ms = integer(request, "time_ms", None, lo=0)
        start = choice(request, "from", ("beginning", "end"), "end")
        limit = integer(request, "limit", 100, lo=1, hi=1000)
        assert limit is not None
        if offset is not None and partition is None:
            raise bad("offset: needs partition (an offset is a position in one partition)")
        key = request.query.get("key")
        n = await console.reads.run(console.reads.partitions, name)
        if n is None:
            raise _not_found(f"no topic {name!r} in the log")
        if partition is not None and partition >= n:
            raise bad(f"partition: expected 0..{n - 1} ({name} has {n}), got {partition}")
        page = await console.reads.run(
            lambda c: console.reads.records(c, name, partition=partition, offset=offset,
                                            time_ms=time_ms, start=start,
                                            key=None if key is None else key.encode(),
                                            limit=limit))
        return _json(page)

    async def stream(request: web.Request) -> web.StreamResponse:
        return await _stream(console, request)

    routes += [web.get("/api/overview", overview),
               web.get("/api/devices/{id}/readings", readings),
               web.get("/api/tracks", tracks), web.get("/api/alerts", alerts),
               web.get("/api/topics", topics), web.get("/api/topics/{name}/records", records),
               web.get("/api/stream", stream)]
    return routes


def _track(device: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from edge.streams.builtins._geo import haversine_m

    points = []
    for r in rows:
        v = r["value"]
        if not isinstance(v, dict) or not isinstance(v.get("lat"), int | float) \
                or not isinstance(v.get("lon"), int | float):
            continue  # a fix without a position (no satellites yet)
        points.append({"ts_ms": r["ts_ms"], "lat": v["lat"], "lon": v["lon"],
                       "speed": v.get("speed_mps"), "fix": v.get("fix_quality")})
    distance = sum(haversine_m(a["lat"], a["lon"], b["lat"], b["lon"])
                   for a, b in zip(points, points[1:], strict=False))
    speeds = [p["speed"] for p in points if isinstance(p["speed"], int | float)]
    return {"device": device, "points": points, "distance_m": round(distance, 1),
            "max_speed": max(speeds) if speeds else None}


def _page(name: str) -> Any:
    async def page(request: web.Request) -> web.StreamResponse:
        path = STATIC_DIR / name
        if path.is_file():
            return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
        return web.Response(text=_PLACEHOLDER.format(page=name), content_type="text/html")

    return page


async def _static(request: web.Request) -> web.StreamResponse:
    rel = request.match_info["path"]
    root = STATIC_DIR.resolve()
    path = (root / rel).resolve()
    if root not in path.parents or not path.is_file():
        raise web.HTTPNotFound(text="no such file\n")
    ctype, _ = mimetypes.guess_type(path.name)
    return web.FileResponse(path, headers={"Content-Type": ctype or "application/octet-stream",
                                           "Cache-Control": "max-age=300"})


async def _stream(console: Console, request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    # Subscribed before the headers go: a page reloads its data when the stream opens, and
    # a commit between that reload and the hub's first position would reach neither.
    sub = await console.hub.subscribe()
    await resp.prepare(request)
    console.overview_wanted()
    try:
        await resp.write(b"retry: 2000\n\n")
        while not sub.overflowed:
            try:
                event = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                event = b": keepalive\n\n"
            if sub.overflowed:
                break
            chunks = [event]
            while not sub.queue.empty() and len(chunks) < 256:  # one write for what is waiting
                chunks.append(sub.queue.get_nowait())
            event = b"".join(chunks)
            # A client that does not read: its socket buffer fills and write() waits; the
            # queue fills behind it and the stream is dropped, or this timeout ends it.
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await resp.write(event)
    except (ConnectionError, TimeoutError):
        pass  # the page closed, or stopped reading
    finally:
        console.hub.unsubscribe(sub)
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp
