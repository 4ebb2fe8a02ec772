"""Wake consumers in any process within milliseconds of a commit, without polling.

The writer rewrites one byte of ``log.notify`` after every commit; readers
watch that file with Linux inotify and sleep in ``select`` until it changes.
The write happens after the commit returned, so a woken reader always sees
the new records.  Where inotify is missing, readers fall back to checking
every 50 ms, which still meets the 100 ms promise.
"""

from __future__ import annotations

import ctypes
import os
import select
import time
from collections.abc import Callable
from pathlib import Path

from ._storage import FILE_MODE

_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_FALLBACK_INTERVAL_S = 0.05

_inotify_init1: Callable[..., int] | None  # None where libc has no inotify
try:
    # The C library the interpreter is linked with (dlopen(NULL)), not find_library("c"):
    # that runs ldconfig in a subprocess at import, and ctypes.util brings subprocess,
    # tempfile and shutil with it, ~3 MB of every process that imports broker.
    _libc = ctypes.CDLL(None, use_errno=True)
    _inotify_init1 = _libc.inotify_init1
    _inotify_add_watch = _libc.inotify_add_watch
    _inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
except (OSError, AttributeError):  # not Linux: fall back to periodic checks
    _inotify_init1 = None


class CommitNotifier:
    """The writer's side: touch the notify file after each commit."""

    def __init__(self, path: Path) -> None:
        try:
            self._fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, FILE_MODE)
        except FileExistsError:
            self._fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        else:
            os.fchmod(self._fd, FILE_MODE)  # made here: FILE_MODE exactly, whatever the umask

    def notify(self) -> None:
        os.pwrite(self._fd, b"\x01", 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class CommitWatcher:
    """A reader's side: ``wait`` returns early when a commit happened."""

    def __init__(self, path: Path) -> None:
        self._fd = -1
        if _inotify_init1 is None:
            return
        if not path.exists():
            try:
                CommitNotifier(path).close()
            except OSError:
                return  # read-only directory: fall back to periodic checks
        fd = _inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return
        if _inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY | _IN_ATTRIB) < 0:
            os.close(fd)
            return
        self._fd = fd

    @property
    def event_driven(self) -> bool:
        """True when inotify works here; False means 50 ms checks."""
        return self._fd >= 0

    def fileno(self) -> int:
        """The inotify descriptor (readable after a commit) for an event loop to watch
        (``loop.add_reader``; ``drain`` once woken); -1 when not ``event_driven``."""
        return self._fd

    def wait(self, timeout_s: float) -> None:
        """Sleep until a commit anywhere, or ``timeout_s``; never longer."""
        if timeout_s <= 0:
            return
        if self._fd < 0:
            time.sleep(min(timeout_s, _FALLBACK_INTERVAL_S))
            return
        ready, _, _ = select.select([self._fd], [], [], timeout_s)
        if ready:
            self.drain()

    def drain(self) -> None:
        """Forget events already seen (call before checking for new records)."""
        if self._fd < 0:
            return
        try:
            while os.read(self._fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
