"""`edge run` that cannot start says why in one line and exits with a documented status.

The real `edge run`, as a subprocess, on each way a start can fail: the status is one
systemd can tell from a crash (edge/_exit.py, docs/exit-status.md), and stderr is one
line naming the file or address.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import KafkaProducer
from edge._exit import (
    EX_CONFIG,
    EX_DATAERR,
    EX_IOERR,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EXIT_STATUSES,
    NO_RESTART_STATUSES,
)
from tests.edge._helpers import health, start_edge, stop_edge, wait_for, write_config
from tests.fixtures.mosquitto import free_port

pytestmark = pytest.mark.timeout(60)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "exit-status.md"
UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edge.service"


def run_edge(config: Path) -> tuple[int, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, [line for line in proc.stderr.splitlines() if line.strip()]


def test_corrupt_log(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, "")
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "log.db"
    db.write_bytes(b"not a database, whatever it is " * 100)
    rc, err = run_edge(config)
    assert rc == EX_DATAERR and len(err) == 1, err
    assert str(db) in err[0] and "not a valid log" in err[0]
    assert db.read_bytes() == b"not a database, whatever it is " * 100  # left as it was


def test_log_of_a_newer_version(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, "")
    KafkaProducer(data_dir=str(tmp_path / "data")).close()
    with sqlite3.connect(tmp_path / "data" / "log.db") as conn:
        # An integer, as a newer version writes it ('99', a string, is no log's version).
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    conn.close()
    rc, err = run_edge(config)
    assert rc == EX_DATAERR and len(err) == 1, err
    # The message's own words: tmp_path (.../test_log_of_a_newer_version0/) says "newer" too.
    assert str(tmp_path / "data") in err[0]
    assert "written by a newer version of this software (log schema 99" in err[0]


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a read-only bind mount (the tests run as root, which ignores modes)."""
    path = tmp_path / "ro"
    path.mkdir()
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        with pytest.raises(OSError, match="Read-only"):
            (path / "probe").write_text("x")
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_read_only_data_dir(tmp_path: Path, read_only_dir: Path) -> None:
    for data_dir in (read_only_dir, read_only_dir / "log"):  # there, and to be made there
        config = tmp_path / "edge.toml"
        config.write_text(f'edge_id = "e"\ndata_dir = "{data_dir}"\n')
        rc, err = run_edge(config)
        assert rc == EX_IOERR and len(err) == 1, err
        assert str(read_only_dir) in err[0]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (the tests run as root), unmounted afterwards."""
    path = tmp_path / "disk"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_full_disk_is_a_status_that_restarts(tmp_path: Path, full_disk: Path) -> None:
    # With 12-28 kB left SQLite fails the new log's WAL index with "disk I/O error", not
    # "disk full"; that was 74, which the unit never restarts: the box stayed down after
    # room was made. Whatever SQLite says, a full disk is 75 and the next start works.
    config, port = tmp_path / "edge.toml", free_port()
    config.write_text(f'edge_id = "e"\ndata_dir = "{full_disk / "log"}"\n'
                      f'[health]\naddress = "127.0.0.1:{port}"\n')
    filler = full_disk / "filler"
    st = os.statvfs(full_disk)
    filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 16384))
    rc, err = run_edge(config)
    assert rc == EX_TEMPFAIL and rc not in NO_RESTART_STATUSES and len(err) == 1, err
    assert str(full_disk / "log") in err[0] and "bytes free" in err[0]
    filler.unlink()
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: edge.poll() is not None or health(port), 30, "edge run")
        assert edge.poll() is None, edge_log.read_text()
    finally:
        assert stop_edge(edge, edge_log) == 0, edge_log.read_text()


def test_health_address_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config, _ = write_config(tmp_path, "", health_port=port)
        rc, err = run_edge(config)
    assert rc == EX_UNAVAILABLE and len(err) == 1, err
    assert f"edge.toml: health.address 127.0.0.1:{port}: cannot listen" in err[0]
    assert "in use" in err[0]


@pytest.mark.parametrize("case", ["missing", "a directory", "bad key", "bad TOML"])
def test_config_that_cannot_be_used(tmp_path: Path, case: str) -> None:
    config = tmp_path / "edge.toml"
    if case == "a directory":
        config.mkdir()
    elif case == "bad key":
        config.write_text(f'edge_id = "e"\ndata_dir = "{tmp_path}"\n[log]\npartitions = "many"\n'
                          '[health]\naddress = "nowhere"\n')
    elif case == "bad TOML":
        config.write_text('edge_id = "e\n')
    rc, err = run_edge(config)
    assert rc == EX_CONFIG and len(err) == 1, err
    assert "edge.toml" in err[0]
    if case == "bad key":  # both problems, on the one line
        assert 'log.partitions: expected an integer in 1..1024, got "many"' in err[0]
        assert "health.address" in err[0]


def test_exit_statuses_are_documented_once() -> None:
    rows = re.findall(r"^\| (\d+) \| (\S+) \| (.+) \|$", DOCS.read_text(), re.M)
    assert {int(n): (name, when) for n, name, when in rows} == EXIT_STATUSES


def test_unit_does_not_restart_what_a_restart_cannot_mend() -> None:
    lines = [line for line in UNIT.read_text().splitlines()
             if line.startswith("RestartPreventExitStatus=")]
    assert len(lines) == 1
    assert sorted(map(int, lines[0].split("=", 1)[1].split())) == sorted(NO_RESTART_STATUSES)


def test_a_second_edge_run_on_the_same_log(tmp_path: Path) -> None:
    config, port = write_config(tmp_path, "")
    edge_log = tmp_path / "edge.log"
    first = start_edge(config, edge_log)
    try:
        wait_for(lambda: health(port), 30, "the first edge run")
        other = tmp_path / "other.toml"  # the same log, another health port
        other.write_text(config.read_text().replace(f":{port}", f":{free_port()}"))
        rc, err = run_edge(other)
        assert rc == EX_TEMPFAIL and len(err) == 1, err
        assert f"{tmp_path / 'data'}: another `edge run` (pid {first.pid}) uses this log" in err[0]
    finally:
        assert stop_edge(first, edge_log) == 0, edge_log.read_text()
    # Released at exit: the next one starts (and is stopped at once by a bad port).
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        other.write_text(config.read_text().replace(f":{port}", f":{busy.getsockname()[1]}"))
        assert run_edge(other)[0] == EX_UNAVAILABLE
