"""Commit notifications on the event loop: Fetch's long poll wakes when anything commits."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .._notify import CommitWatcher
from .._storage import NOTIFY_NAME

_FALLBACK_S = 0.05


class CommitSignal:
    """``await signal.wait(signal.mark(), timeout)`` returns after the log's next commit (in any process)
    or the timeout.  One inotify watch per server, read by the event loop."""

    def __init__(self, data_dir: Path) -> None:
        self._watcher = CommitWatcher(Path(data_dir) / NOTIFY_NAME)
        self._event = asyncio.Event()
        self._fd = self._watcher.fileno()
        if self._fd >= 0:
            asyncio.get_running_loop().add_reader(self._fd, self._woken)

    def _woken(self) -> None:
        self._watcher.drain()
        self._event.set()
        self._event = asyncio.Event()

    def mark(self) -> asyncio.Event:
        """Taken before reading the log: a commit after it wakes ``wait(mark)``, none is missed."""
        return self._event

    async def wait(self, mark: asyncio.Event, timeout_s: float) -> None:
        if timeout_s <= 0:
            return
        if self._fd < 0:
            await asyncio.sleep(min(timeout_s, _FALLBACK_S))
            return
        try:
            await asyncio.wait_for(mark.wait(), timeout_s)
        except TimeoutError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = -1
        self._watcher.close()
