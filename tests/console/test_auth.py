"""Bound beyond loopback, the console asks for a token or a user and password: without them
401 and nothing else; /health and /metrics stay open for scrapers."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import pytest

from edge._config import parse_config
from edge.console import Credentials, is_loopback
from tests.console._helpers import config, serving

pytestmark = pytest.mark.timeout(60)

TOKEN = "t0ken-that-is-long-enough"
PATHS = ["/", "/devices/room-1", "/static/app.js", "/api/overview", "/api/topics",
         "/api/topics/gps/records", "/api/alerts", "/api/tracks", "/api/stream",
         "/api/devices/room-1/readings"]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_without_credentials_every_console_request_is_401(tmp_path: Path) -> None:
    creds = Credentials(token=TOKEN, user="operator", password="a-good-passphrase")
    # 0.0.0.0: every address of this host, so not loopback; reached here over 127.0.0.1.
    async with serving(config(tmp_path), "0.0.0.0", creds) as (_, base), \
            aiohttp.ClientSession(base) as s:
        for path in PATHS:
            for headers in ({}, {"Authorization": "Bearer wrong-token-of-length"},
                            {"Authorization": f"Token {TOKEN}"}, basic("operator", "wrong"),
                            basic("someone", "a-good-passphrase"), {"Authorization": "Basic %%%"}):
                async with s.get(path, headers=headers) as r:
                    assert r.status == 401, (path, headers)
                    assert await r.text() == ("401: this console needs a token or a user and "
                                              "password\n")
                    assert "Basic" in r.headers["WWW-Authenticate"]
            async with s.get(path + "?token=nope") as r:
                assert r.status == 401
        for headers, query in (({"Authorization": f"Bearer {TOKEN}"}, ""),
                               ({}, f"?token={TOKEN}"),
                               (basic("operator", "a-good-passphrase"), "")):
            async with s.get("/api/overview" + query, headers=headers) as r:
                assert r.status == 200 and (await r.json())["edge_id"] == "test-edge"
        for path in ("/health", "/metrics"):
            async with s.get(path) as r:
                assert r.status == 200


async def test_with_nothing_configured_beyond_loopback_nothing_is_shown(tmp_path: Path) -> None:
    async with serving(config(tmp_path), "0.0.0.0", Credentials()) as (_, base), \
            aiohttp.ClientSession(base) as s:
        for path in ("/", "/api/overview"):
            async with s.get(path, headers={"Authorization": "Bearer "}) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_on_loopback_nothing_is_asked(tmp_path: Path) -> None:
    async with serving(config(tmp_path), "127.0.0.1", Credentials(token=TOKEN)) as (_, base), \
            aiohttp.ClientSession(base) as s:
        async with s.get("/api/overview") as r:
            assert r.status == 200


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "edge.local"))


def test_console_config_keys_and_environment(tmp_path: Path) -> None:
    base = f'edge_id = "e"\ndata_dir = "{tmp_path}"\n'
    c = parse_config(base).console
    assert c.enabled and c.address is None and c.token is None
    env = {"EDGE_CONSOLE_TOKEN": TOKEN, "EDGE_CONSOLE_USER": "op",
           "EDGE_CONSOLE_PASSWORD": "passphrase"}
    c = parse_config(base + '[console]\naddress = "0.0.0.0:8080"\n', env=env).console
    assert (c.address, c.token, c.user, c.password) == ("0.0.0.0:8080", TOKEN, "op", "passphrase")
    assert TOKEN not in repr(c) and "passphrase" not in repr(c)
    with pytest.raises(Exception) as info:
        parse_config(base + '[console]\nuser = "op"\ntls_key = "k.pem"\ntoken = "short"\n')
    text = str(info.value)
    assert "console.password: expected user and password together" in text
    assert "console.tls_cert: expected tls_cert and tls_key together" in text
    assert 'console.token: expected a string of 16 or more printable characters' in text
