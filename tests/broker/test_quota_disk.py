"""The quota on a real small disk: an 8 MiB tmpfs, mounted for the test.

A 3 MB quota filled with 3,000-byte values (a 4 KiB leaf page each on disk) never meets ENOSPC,
under either policy: ``reject`` refuses with the quota's LogFullError, ``drop-oldest``
accepts every send while the ledger stays within its share.  A quota larger than the
disk meets the real ENOSPC, which is still reported (``reject``) or handled by
dropping (``drop-oldest``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import broker
from broker import LogConfig, LogFullError

from ._helpers import clients, create

DISK = 8 * 1024 * 1024
LEDGER_SHARE = 3_000_000 // 32  # broker/_disk.py: shares()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs (needs root, as the test machine runs the suite), unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"cannot mount an 8 MiB tmpfs for the test: {done.stderr.strip()}"
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _value(i: int) -> bytes:
    # 3,000 bytes: a B-tree leaf page each, so 3,000 of them outgrow the 8 MB disk.
    return (f"{i:07d}".encode() * 450)[:3000]


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _cfg(disk: Path, quota: int, policy: str) -> LogConfig:
    return LogConfig(data_dir=disk / "log", quota_bytes=quota, full_policy=policy, durability="no-fsync",
                     retention_check_interval_s=1e9)


def test_reject_at_a_3_mb_quota_says_so_long_before_the_disk_is_full(small_disk: Path) -> None:
    cfg = _cfg(small_disk, 3_000_000, "reject")
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        acked, refused = 0, []
        for i in range(3000):  # 9 MB of values, ~12 MB on disk: more than the disk
            try:
                producer.send("t", _value(i)).get(10)
                acked += 1
            except LogFullError as exc:
                refused.append(str(exc))
        assert refused and acked > 300, f"{acked} acknowledged: the quota counted logical bytes"
        assert all("quota of 3000000 bytes" in m and "disk is full" not in m for m in refused)
        info = admin.describe_log()
        assert info["disk_bytes"] <= 3_000_000 and _free(small_disk) > DISK - 3_200_000
        assert info["records"] == acked


def test_drop_oldest_at_a_3_mb_quota_accepts_every_send_and_the_disk_never_fills(small_disk: Path) -> None:
    cfg = _cfg(small_disk, 3_000_000, "drop-oldest")
    with clients(cfg) as (admin, producer):
        create(admin, "t", partitions=2)
        for i in range(4000):
            producer.send("t", _value(i)).get(10)  # never LogFullError
            if i % 200 == 0:
                topics = admin.describe_log()["topics"]
                assert topics.get(broker.DROP_LEDGER_TOPIC, {"bytes": 0})["bytes"] <= LEDGER_SHARE
        info = admin.describe_log()
        assert info["dropped_records"] > 1000 and info["disk_bytes"] <= 3_000_000
        assert info["topics"]["t"]["records"] > 300


@pytest.mark.parametrize("policy", ["reject", "drop-oldest"])
def test_a_quota_larger_than_the_disk_acts_at_what_the_disk_can_give(small_disk: Path, policy: str) -> None:
    cfg = _cfg(small_disk, 64 * 1024 * 1024, policy)
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        errors = []
        for i in range(3000):  # ~12 MB on disk
            try:
                producer.send("t", _value(i)).get(10)
            except LogFullError as exc:
                errors.append(str(exc))
        assert admin.describe_log()["disk_bytes"] <= DISK
        assert _free(small_disk) > 0
        if policy == "reject":
            assert errors and all("lowered to" in m and "by the room on the disk" in m
                                  and "disk is full" not in m for m in errors), errors[:1]
        else:
            assert errors == [], errors[:1]
            assert admin.describe_log()["dropped_records"] > 1000


def test_a_disk_that_others_fill_lowers_the_quota_in_force(small_disk: Path) -> None:
    cfg = _cfg(small_disk, 3_000_000, "drop-oldest")
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        for i in range(300):
            producer.send("t", _value(i)).get(10)
        (small_disk / "other").write_bytes(b"\0" * (DISK - 2_500_000))  # another program's file
        errors = []
        for i in range(1500):
            try:
                producer.send("t", _value(i)).get(10)
            except LogFullError as exc:
                errors.append(str(exc))
        assert errors == [], errors[:1]
        assert _free(small_disk) > 0
        assert admin.describe_log()["disk_bytes"] < 2_500_000


@pytest.mark.parametrize("free_kib", [16, 48, 64, 80, 96, 128])
def test_a_log_whose_creation_the_full_disk_cut_short_opens_once_there_is_room(
        small_disk: Path, free_kib: int) -> None:
    # The tables were once created one by one: a disk that filled between them left a file
    # with tables and no schema_version, which every later start refused as another
    # program's database (edge run exits 65, which systemd does not restart).
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(_free(small_disk) - free_kib * 1024, 0))
    cfg = LogConfig(data_dir=small_disk / "log", durability="fsync")
    try:
        with clients(cfg) as (admin, _):
            admin.list_topics()
    except broker.BrokerError:
        pass  # no room to create it: said, and nothing half-made left behind
    filler.unlink()
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        producer.send("t", b"v", partition=0).get(timeout=30)


def test_an_empty_half_made_log_is_finished_not_refused(tmp_path: Path) -> None:
    import sqlite3
    data = tmp_path / "log"
    data.mkdir()
    conn = sqlite3.connect(data / "log.db")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
    conn.execute("CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, "
                 "retention_ms INTEGER NOT NULL, retention_bytes INTEGER NOT NULL, "
                 "priority INTEGER NOT NULL, created_ms INTEGER NOT NULL)")
    conn.commit()
    conn.close()
    with clients(LogConfig(data_dir=data)) as (admin, producer):
        create(admin, "t")
        producer.send("t", b"v", partition=0).get(timeout=30)
