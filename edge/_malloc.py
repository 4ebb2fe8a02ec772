"""glibc's allocator, told to hold less freed memory before ``edge run`` starts its threads.

glibc gives a thread that meets contention an arena of its own (up to 8 per core), and
each keeps what its thread freed for that thread's reuse: the listener's I/O threads,
the log writer and the executors each held megabytes of freed SQLite pages and fetch
buffers. And once a large block (a fetch's megabyte) is freed, glibc raises its mmap
threshold to that size, so the next ones come from the heap and stay there, fragmented.
Two arenas and a fixed 128 KiB threshold (and trim threshold, glibc's defaults before
that adjustment): ``bench/bench_wire.py``'s ``edge run`` peaked at 60.3 MB instead of
65.7 under Kafka's perf tools (61.6 with the arenas alone; docs/kafka-listener.md,
"Measured"). A setting given in the environment (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) is left to glibc.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("edge")

# mallopt's parameters (glibc's malloc.h) -> (the value set here, the variable that overrides it)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
SETTINGS = {
    M_ARENA_MAX: (2, "MALLOC_ARENA_MAX"),
    M_MMAP_THRESHOLD: (128 * 1024, "MALLOC_MMAP_THRESHOLD_"),
    M_TRIM_THRESHOLD: (128 * 1024, "MALLOC_TRIM_THRESHOLD_"),
}


def tune_malloc() -> list[str]:
    """Apply ``SETTINGS`` through mallopt; the environment variables of those applied.

    Nothing where the C library has no mallopt (musl).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter is linked with
    except (OSError, AttributeError):
        return []
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = []
    for param, (value, env) in SETTINGS.items():
        if env in os.environ:
            continue
        if mallopt(param, value):
            applied.append(env)
        else:
            log.debug("mallopt refused %s=%d; glibc keeps its default", env, value)
    return applied
