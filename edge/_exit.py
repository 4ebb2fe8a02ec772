"""The exit statuses of `edge`, and what turns a failure to start into one of them.

The numbers follow BSD's sysexits.h, so systemd (``RestartPreventExitStatus=``) and a
person can tell "the operator must fix something" from a crash (1, with a traceback).
docs/exit-status.md lists them for operators; a test keeps that table equal to this one.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import broker
from edge._errors import StartupError

__all__ = ["EXIT_STATUSES", "EX_CONFIG", "EX_DATAERR", "EX_FAILURE", "EX_IOERR", "EX_OK",
           "EX_TEMPFAIL", "EX_UNAVAILABLE", "EX_USAGE", "NO_RESTART_STATUSES",
           "health_bind_error", "log_open_error"]

EX_OK = 0
EX_FAILURE = 1       # a crash (an unexpected error; a traceback follows) or `edge status`: unhealthy
EX_USAGE = 2         # a bad command line (argparse's own status)
EX_DATAERR = 65      # the log holds what this version cannot use: corrupt, or a newer schema
EX_UNAVAILABLE = 69  # the health address cannot be listened on (in use, not this host's)
EX_IOERR = 74        # the data directory cannot be created or written (read-only disk, owner, mode)
EX_TEMPFAIL = 75     # another `edge run` uses the log, its write lock is held, the disk is full: may clear
EX_CONFIG = 78       # the config file is missing, unreadable or does not validate

#: What a restart cannot mend: systemd/edge.service's RestartPreventExitStatus= (a test
#: keeps them equal). 69 and 75 may clear by themselves, so they restart like a crash.
NO_RESTART_STATUSES = (EX_DATAERR, EX_IOERR, EX_CONFIG)

#: status: (name, when), the table docs/exit-status.md shows.
EXIT_STATUSES: dict[int, tuple[str, str]] = {
    EX_OK: ("ok", "stopped cleanly (SIGTERM, Ctrl-C); `edge status`: healthy"),
    EX_FAILURE: ("failure", "crashed (a traceback says where); `edge status`: degraded or "
                 "not answering"),
    EX_USAGE: ("usage", "a bad command line"),
    EX_DATAERR: ("EX_DATAERR", "the log is corrupt, or was written by a newer version"),
    EX_UNAVAILABLE: ("EX_UNAVAILABLE", "the health address is in use or not an address of "
                     "this host"),
    EX_IOERR: ("EX_IOERR", "the data directory or log cannot be created or written"),
    EX_TEMPFAIL: ("EX_TEMPFAIL", "another `edge run` uses the log, another process holds "
                  "its write lock, or the disk is full"),
    EX_CONFIG: ("EX_CONFIG", "the config file is missing, unreadable or invalid"),
}

def _one_line(text: str) -> str:
    return " ".join(text.split())


def _free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged user may still write on the filesystem holding ``path`` (or its
    nearest existing parent); None if it cannot be told."""
    for p in (path, *path.parents):
        try:
            st = os.statvfs(p)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def log_open_error(exc: BaseException, data_dir: Path) -> StartupError:
    """The StartupError for a log that cannot be opened in ``data_dir`` (broker or OS error)."""
    text = _one_line(str(exc) if isinstance(exc, broker.BrokerError) else
                     f"{getattr(exc, 'strerror', None) or exc}")
    where = str(data_dir)
    if where not in text:
        text = f"{data_dir / 'log.db'}: {text}"
    free = _free_bytes(data_dir)
    if isinstance(exc, broker.CorruptLogError | broker.LogVersionError):
        status = EX_DATAERR
    elif isinstance(exc, broker.BrokerError) and exc.retriable:
        status = EX_TEMPFAIL
    elif free is not None and free < broker.MIN_QUOTA_BYTES:
        # SQLite reports a disk with no room for the WAL or its index as "disk I/O error",
        # not "disk full": without this, a start on a full disk was 74 and systemd never
        # tried again, also once logrotate or retention had made room.
        status = EX_TEMPFAIL
        text = f"{text} (the disk holding it has {free} bytes free; the log needs room to open)"
    elif isinstance(exc, broker.BrokerError | OSError):
        status = EX_IOERR
    else:
        raise TypeError(f"not a log error: {exc!r}") from exc
    return StartupError(f"cannot use the log: {text}", status)


def health_bind_error(exc: OSError, address: str, file: str) -> StartupError:
    """The StartupError for a health address that cannot be listened on."""
    if exc.errno == errno.EADDRINUSE:
        why = "the address is in use by another program (another `edge run`?)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "the address is not one of this host's"
    else:
        why = _one_line(exc.strerror or str(exc))
    return StartupError(f"{file}: health.address {address}: cannot listen: {why}; choose another "
                        "[health] address", EX_UNAVAILABLE)
