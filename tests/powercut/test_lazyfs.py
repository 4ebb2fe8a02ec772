"""The power-cut filesystem itself: it keeps exactly what was fsynced, and SQLite's WAL works on it.

If it kept too much, the log's power-cut tests would pass against a log that
forgets an fsync; if it broke mmap or locks, they would test a SQLite that
runs differently than on a card.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.lazyfs_mount import LazyFs, is_mounted


def _write(path: Path, data: bytes, *, sync: bool, offset: int = 0, create: bool = True) -> None:
    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    try:
        os.pwrite(fd, data, offset)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_a_cut_keeps_fsynced_bytes_and_drops_the_rest(lazyfs: LazyFs) -> None:
    m = lazyfs.mountpoint
    _write(m / "kept", b"A" * 10000, sync=True)
    _write(m / "torn", b"B" * 5000, sync=True)
    _sync_dir(m)
    _write(m / "kept", b"late", sync=False, offset=4096)  # after the fsync: lost
    _write(m / "torn", b"C" * 3000, sync=False, offset=4000)  # grows the file: lost with its size
    os.truncate(m / "kept", 100)  # a shrink not synced: lost too
    _write(m / "never", b"never synced", sync=False)
    assert (m / "kept").stat().st_size == 100  # programs see their writes until the cut

    lost = lazyfs.cut()
    assert lost["unsynced_files"] == 3 and lost["unsynced_dirs"] == 1
    assert not is_mounted(m)
    lazyfs.mount()
    assert (m / "kept").read_bytes() == b"A" * 10000
    assert (m / "torn").read_bytes() == b"B" * 5000
    assert not (m / "never").exists()


def test_names_are_durable_only_once_their_directory_is_fsynced(lazyfs: LazyFs) -> None:
    m = lazyfs.mountpoint
    (m / "d").mkdir()
    _sync_dir(m)
    _write(m / "d" / "synced-file-only", b"x", sync=True)  # its bytes, not its name
    _write(m / "d" / "gone", b"y", sync=True)
    _sync_dir(m / "d")
    os.unlink(m / "d" / "gone")  # not synced: it comes back
    os.rename(m / "d" / "synced-file-only", m / "d" / "renamed")  # not synced: undone
    (m / "sub").mkdir()
    _write(m / "sub" / "inner", b"z", sync=True)
    _sync_dir(m / "sub")  # sub's own names are durable, but sub's name in m is not

    lazyfs.cut()
    lazyfs.mount()
    assert sorted(os.listdir(m)) == ["d"]
    assert sorted(os.listdir(m / "d")) == ["gone", "synced-file-only"]
    assert (m / "d" / "gone").read_bytes() == b"y"

    # A name made durable before its bytes: an empty file, as after a real cut.
    _write(m / "d" / "empty", b"not synced", sync=False)
    _sync_dir(m / "d")
    lazyfs.cut()
    lazyfs.mount()
    assert (m / "d" / "empty").read_bytes() == b""


def test_mmap_and_locks_behave_as_on_a_disk(lazyfs: LazyFs) -> None:
    # SQLite's WAL index is a shared mmap of -shm, and its locks are fcntl locks
    # that another process must see: both must work here, or WAL mode is not tested.
    path = lazyfs.mountpoint / "shm"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 32768)
        with mmap.mmap(fd, 32768) as mm:
            mm[8192:8197] = b"hello"
            other = subprocess.run(
                [sys.executable, "-c", "import mmap, os, sys\n"
                 "fd = os.open(sys.argv[1], os.O_RDWR)\n"
                 "print(mmap.mmap(fd, 32768)[8192:8197].decode())", str(path)],
                capture_output=True, text=True, timeout=30)
            assert other.stdout.strip() == "hello", other.stderr
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 100)
        probe = subprocess.run(
            [sys.executable, "-c", "import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 100)\n"
             "except BlockingIOError:\n    print('held')", str(path)],
            capture_output=True, text=True, timeout=30)
        assert probe.stdout.strip() == "held", probe.stderr
    finally:
        os.close(fd)


def test_sqlite_in_wal_mode_keeps_every_committed_transaction(lazyfs: LazyFs) -> None:
    db = lazyfs.mountpoint / "t.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t(x)")
    for i in range(200):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert (lazyfs.mountpoint / "t.db-shm").exists()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (-1)")  # never committed
    lost = lazyfs.cut()
    conn.close()
    assert lost["fsyncs"] >= 200
    lazyfs.mount()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert [x for (x,) in conn.execute("SELECT x FROM t")] == list(range(200))
    finally:
        conn.close()


def test_synchronous_off_loses_commits_here_as_on_a_card(lazyfs: LazyFs) -> None:
    # The check the whole suite rests on: without fsync, committed rows are gone after
    # a cut.  Under SIGKILL alone they would all be there.
    db = lazyfs.mountpoint / "t.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t(x)")
    conn.execute("PRAGMA synchronous=OFF")
    for i in range(50):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    lazyfs.cut()
    conn.close()
    lazyfs.mount()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        conn.close()


def test_a_failing_test_leaves_no_mount_behind(tmp_path: Path) -> None:
    fs = LazyFs(tmp_path / "fs")
    with pytest.raises(RuntimeError, match="the test failed"):
        try:
            fs.mount()
            held = os.open(fs.mountpoint, os.O_RDONLY)  # a program still in it
            raise RuntimeError("the test failed")
        finally:
            fs.stop()
    os.close(held)
    assert not is_mounted(fs.mountpoint)
    fs.mount()
    fs.cut()  # a dead connection is unmounted too
    assert not is_mounted(fs.mountpoint)
    fs.stop()  # twice is fine


def test_a_torn_cut_lets_some_unsynced_pages_through_in_no_order(lazyfs: LazyFs) -> None:
    path = lazyfs.mountpoint / "f"
    _write(path, b"o" * (64 * 4096), sync=True)
    _sync_dir(lazyfs.mountpoint)
    _write(path, b"n" * (64 * 4096), sync=False, create=False)
    lost = lazyfs.cut(keep=0.5, seed=7)
    assert lost["torn"] == {"keep": 0.5, "seed": 7}
    lazyfs.mount()
    data = path.read_bytes()
    pages = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    assert len(data) == 64 * 4096 and set(pages) == {b"o" * 4096, b"n" * 4096}
    new = [i for i, p in enumerate(pages) if p == b"n" * 4096]
    assert 10 < len(new) < 54 and new != list(range(len(new))), "not a random part: a prefix or all"
