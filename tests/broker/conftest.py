"""Fixtures of the broker tests: a data directory on tmpfs for the quota's tests.

A small quota keeps the WAL small, so SQLite checkpoints every few commits, and each
checkpoint fsyncs the database and the WAL even with ``durability="no-fsync"``: on the
test machine's disk that is ~6 ms per send.  tmpfs is a real filesystem whose fsync
costs nothing, and the quota's behaviour does not depend on it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SHM = Path("/dev/shm")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory on /dev/shm (on tmp_path where there is none), removed afterwards."""
    if not SHM.is_dir():
        yield tmp_path / "log"
        return
    d = Path(tempfile.mkdtemp(dir=SHM, prefix="edge-quota-test-"))
    try:
        yield d / "log"
    finally:
        shutil.rmtree(d, ignore_errors=True)
