"""The log's files: whose they are, what it refuses to open, and what it never touches.

A data directory may hold something that is not our log (another program's SQLite
file, a log of a newer version, a read-only disk): every client and tool refuses it
with a typed one-line error and leaves the file byte for byte as it was.  What the
log creates is private to its user whatever the umask.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import (
    ConfigError,
    CorruptLogError,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    LogVersionError,
    ReadOnlyLogError,
    StorageError,
)
from broker._storage import SCHEMA_VERSION

from ._helpers import run_tool

CLIENTS = (KafkaProducer, KafkaAdminClient, KafkaConsumer)
READ_TOOLS = [("topics", "--list"), ("topics", "--describe"), ("consumer-groups", "--list"),
              ("console-consumer", "--topic", "t", "--from-beginning", "--timeout-ms", "100")]
WRITE_TOOLS = [("topics", "--create", "--topic", "t")]


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _refused_everywhere(d: Path, error: type[Exception], needle: str) -> None:
    before = _snapshot(d)
    for client in CLIENTS:
        with pytest.raises(error, match=re.escape(needle)):
            client(data_dir=d)
    for args in [READ_TOOLS[0], *WRITE_TOOLS]:  # the CLI's path: a read and a write (every tool opens alike)
        proc = run_tool(*args, data_dir=d)
        err = proc.stderr.decode()
        assert proc.returncode == 1, (args, err)
        assert err.count("\n") == 1 and needle in err and f"edge-{args[0]}: error:" in err, (args, err)
    assert _snapshot(d) == before, "a file of the data directory was changed"


def _log(d: Path) -> Path:
    with KafkaProducer(data_dir=d) as producer:
        producer.send("t", b"x").get(10)
    return d / "log.db"


def test_another_programs_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    d = tmp_path / "app"
    d.mkdir()
    with sqlite3.connect(d / "log.db") as c:  # a foreign table named like ours
        c.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, body TEXT)")
        c.execute("INSERT INTO records(body) VALUES ('precious')")
    c.close()
    _refused_everywhere(d, CorruptLogError, "is an SQLite database but not a log")


@pytest.mark.parametrize(("key", "value", "error", "needle"), [
    ("schema_version", SCHEMA_VERSION + 1, LogVersionError,
     f"written by a newer version of this software (log schema {SCHEMA_VERSION + 1}"),
    ("schema_version", "abc", CorruptLogError, "its schema_version is 'abc', not a number"),
    ("log_clock_ms", "abc", CorruptLogError, "meta.log_clock_ms is 'abc', not a number"),
])
def test_a_log_of_another_schema_is_refused(tmp_path: Path, key: str, value: object, error: type,
                                            needle: str) -> None:
    db = _log(tmp_path / "log")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value=? WHERE key=?", (value, key))
    c.close()
    _refused_everywhere(db.parent, error, needle)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    """A log whose database file cannot be written, even by root (as on a read-only mount)."""
    db = _log(tmp_path / "log")
    subprocess.run(["chattr", "+i", str(db)], check=True)
    try:
        yield db
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_a_read_only_log_is_refused_when_opened_not_at_the_first_commit(immutable: Path) -> None:
    _refused_everywhere(immutable.parent, ReadOnlyLogError, "cannot be written by this user")
    assert issubclass(ReadOnlyLogError, StorageError) and not ReadOnlyLogError.retriable


def test_read_only_tools_never_create_a_log(tmp_path: Path) -> None:
    for where in (tmp_path / "missing", tmp_path):  # no directory; a directory without a log
        for args in READ_TOOLS:
            proc = run_tool(*args, data_dir=where)
            err = proc.stderr.decode()
            assert proc.returncode == 1 and err.count("\n") == 1, (args, err)
            assert f"no log at {where}" in err and "pass --data-dir of an existing log" in err, err
    assert list(tmp_path.iterdir()) == []


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        d = tmp_path / "a" / "log"
        with KafkaProducer(data_dir=d) as producer, KafkaConsumer("t", data_dir=d) as consumer:
            producer.send("t", b"x").get(10)
            consumer.poll(0)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir()}
            assert modes == {n: 0o600 for n in ("log.db", "log.db-wal", "log.db-shm", "log.notify")}
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        # the directory made above it is no one else's to write in (it was 0777 here)
        assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    finally:
        os.umask(old)


def test_an_existing_data_dir_open_to_others_is_warned_about_not_changed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o755)  # chosen by the operator (a backup user's group, say): warned about, kept
    with caplog.at_level(logging.WARNING, logger="broker"):
        for _ in range(2):
            with KafkaProducer(data_dir=d) as producer:
                producer.send("t", b"x").get(10)
    warnings = [r.getMessage() for r in caplog.records if "other users" in r.getMessage()]
    assert warnings == [f"{d} has mode 755: other users of this machine may read the log; `chmod 700 {d}` "
                        "if they should not"]
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert stat.S_IMODE((d / "log.db").stat().st_mode) == 0o600


@pytest.mark.parametrize("bad", ["", "  ", 5, None])
def test_a_data_dir_that_names_no_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         bad: object) -> None:
    monkeypatch.chdir(tmp_path)  # '' used to mean here
    monkeypatch.delenv("EDGE_DATA_DIR", raising=False)
    for client in CLIENTS:
        with pytest.raises(ConfigError, match="data_dir"):
            client(data_dir=bad)
    if bad is not None:
        with pytest.raises(ConfigError, match=re.escape(f"data_dir: expected the path of the log's directory, got {bad!r}")):
            LogConfig(data_dir=bad)
    assert list(tmp_path.iterdir()) == []
