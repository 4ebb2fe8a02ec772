"""/health and /metrics of `edge run` reflect an offline uplink; bad config exits non-zero."""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import KafkaProducer
from tests.edge._helpers import (
    health,
    serial_device,
    start_edge,
    stop_edge,
    wait_for,
    write_config,
)
from tests.fixtures.mosquitto import free_port

pytestmark = pytest.mark.timeout(60)


def test_offline_uplink_is_reported_and_shutdown_is_clean(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    config, port = write_config(tmp_path, "", extra=(
        f'[upstream]\nbootstrap_servers = "127.0.0.1:{dead}"\n'
        'topics = { readings = "up.readings" }\n'))
    two_minutes_ago = int(time.time() * 1000) - 120_000
    with KafkaProducer(data_dir=tmp_path / "data") as producer:  # waiting to go upstream
        producer.send("readings", b'{"temperature_c": 21.0}', key=b"room-1",
                      timestamp_ms=two_minutes_ago).get(timeout=10)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        h = wait_for(lambda: (x := health(port)) and x["uplink"]["state"] == "offline"
                     and x["uplink"]["lag_records"] == 1 and x, 30, "the uplink to report offline")
        assert h["ok"] is False and h["log"]["ok"] is True
        # How far behind it is, in seconds: the oldest record not yet upstream is that old.
        assert h["uplink"]["lag_s"] >= 120
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=5) as r:
            up = json.load(r)["uplink"]
        assert up["state"] == "offline" and up["lag_records"] == 1 and up["lag_s"] >= 120
        # The uplink says why it cannot connect, naming the address and the setting.
        assert f"nothing listens at 127.0.0.1:{dead}" in h["uplink"]["last_error"]
        assert "bootstrap_servers" in h["uplink"]["last_error"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            assert "edge_uplink_up 0.0" in r.read().decode()
    finally:
        rc = stop_edge(edge, edge_log)
    text = edge_log.read_text()
    assert rc == 0, text
    assert "stopped cleanly" in text and "ERROR aiokafka" not in text


def test_unknown_path_is_404(tmp_path: Path) -> None:
    config, port = write_config(tmp_path, "")
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        h = wait_for(lambda: health(port), 30, "health")
        assert h["ok"] is True and h["devices"] == {} and h["uplink"] is None
        import urllib.error

        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=2)
        assert info.value.code == 404
        info.value.close()
    finally:
        assert stop_edge(edge, edge_log) == 0


def test_probes_and_oversized_requests_log_no_error(tmp_path: Path) -> None:
    # A port probe (connect, close), an empty line, a request line past the stream's
    # limit and a header line past it: each ends that connection, none is an ERROR.
    config, port = write_config(tmp_path, "")
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: health(port), 30, "health")
        with socket.create_connection(("127.0.0.1", port)):
            pass
        answers = []
        for request in (b"\r\n\r\n", b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n",
                        b"GET /health HTTP/1.0\r\nX: " + b"b" * 70_000 + b"\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(request)
                s.shutdown(socket.SHUT_WR)
                answers.append(b"".join(iter(lambda s=s: s.recv(65536), b"")).split(b"\r\n")[0])
        # Blank lines are no request: the connection is closed after the idle timeout.
        assert answers == [b"", b"HTTP/1.0 400 Bad Request", b"HTTP/1.0 400 Bad Request"]
        assert health(port)["ok"] is True  # type: ignore[index]  # still serving
    finally:
        rc = stop_edge(edge, edge_log)
    text = edge_log.read_text()
    assert rc == 0, text
    assert "ERROR" not in text and "Traceback" not in text, text


def test_a_flood_of_idle_connections_costs_no_descriptors_and_no_errors(tmp_path: Path) -> None:
    # 600 connections that never send a request, against an edge run with 384 descriptors
    # (systemd's default soft limit is 1,024): each one was held for the request timeout,
    # the process ran out of descriptors (a device could not have reconnected), asyncio
    # logged an ERROR traceback for every accept() that failed, and /health did not answer.
    # Now at most MAX_CONNECTIONS are held, the oldest idle one making room for the next
    # (edge/console/_server.py).
    import resource
    import sys

    config, port = write_config(tmp_path, "")
    edge_log = tmp_path / "edge.log"

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (384, 384))

    with edge_log.open("ab") as stderr:
        edge = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=stderr,
                                preexec_fn=few_descriptors)
    flood: list[socket.socket] = []
    try:
        wait_for(lambda: health(port), 30, "health")
        for _ in range(600):
            flood.append(socket.create_connection(("127.0.0.1", port)))
        # While all 600 are still open on this side: a scraper's request is answered.
        h = wait_for(lambda: health(port), 30, "/health during the flood")
        assert h["ok"] is True
    finally:
        for s in flood:
            s.close()
        rc = stop_edge(edge, edge_log)
    text = edge_log.read_text()
    assert rc == 0, text
    assert "ERROR" not in text and "Traceback" not in text, text


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: filled by a test, a real full disk the log's writes fail on."""
    path = tmp_path / "disk"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_health_recovers_once_writes_resume(tmp_path: Path, small_disk: Path,
                                            pty_device) -> None:  # type: ignore[no-untyped-def]
    # A real refused write (the disk is full) and a real recovery (room made): /health is
    # 503 with the error while writes fail, and 200 without it once one succeeds again.
    config, port = write_config(tmp_path, serial_device("room-1", "temperature",
                                                        str(pty_device.link), "text"))
    config.write_text(config.read_text().replace(str(tmp_path / "data"), str(small_disk / "log"))
                      .replace('durability = "no-fsync"', 'durability = "fsync"'))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    sent = 0

    def reading() -> dict | None:  # type: ignore[type-arg]
        nonlocal sent
        sent += 1
        with contextlib.suppress(OSError):  # the adapter may be restarting after a failure
            pty_device.write(f"{20 + sent % 10}.{sent % 10}\n".encode())
        return health(port)

    try:
        pty_device.wait_reader(timeout=30)
        wait_for(lambda: (h := reading()) and h["devices"]["room-1"]["readings"] > 0, 30,
                 "a reading written")
        filler = fill(small_disk)
        h = wait_for(lambda: (h := reading()) and not h["log"]["ok"] and h, 30,
                     "the log to report the refused write")
        assert h["ok"] is False and "full" in h["log"]["last_write_error"]
        written = h["devices"]["room-1"]["readings"]
        filler.unlink()
        h = wait_for(lambda: (h := reading()) and h["ok"] and h, 15, "/health to recover")
        assert h["log"]["ok"] is True and h["log"]["last_write_error"] is None
        assert h["devices"]["room-1"]["readings"] > written
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
