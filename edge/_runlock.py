"""One `edge run` per log: an exclusive lock on a file in the data directory.

The log takes any number of writers (a console producer beside the service is fine),
but two appliances on one log would each run the devices, the streams and an uplink with
the same transactional id, fencing each other. The lock is released by the kernel when
the process ends, however it ends, so a crash leaves nothing stale behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from edge._errors import StartupError
from edge._exit import EX_TEMPFAIL

LOCK_NAME = "edge-run.lock"


class RunLock:
    """Held from ``acquire()`` until ``release()`` (or the process's end)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StartupError (EX_TEMPFAIL) naming the holder's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise StartupError(f"{self.path.parent}: another `edge run` (pid {holder}) uses this "
                               "log; stop it first (systemctl stop edge)", EX_TEMPFAIL) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
