"""Fixtures of the wire listener's tests: a listener over a fresh log in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._server import ThreadedListener


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[ThreadedListener]:
    """A listener on a free loopback port over a new log, auto-creation off (the default)."""
    with ThreadedListener(tmp_path / "log") as srv:
        yield srv
