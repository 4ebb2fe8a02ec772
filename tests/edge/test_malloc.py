"""edge run's allocator settings (edge/_malloc.py): applied through mallopt on glibc, and a
setting given in the environment is left to glibc. (Applied in the test process too: it
only makes pytest's own allocator hold less.)"""

from __future__ import annotations

import pytest

from edge._malloc import tune_malloc


def test_mallopt_applies_each_setting_the_environment_does_not_give(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    assert tune_malloc() == ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert tune_malloc() == ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
