"""WAL checkpoints off the commit path: a thread of their own, beside the writer.

SQLite checkpoints in the connection that commits (``wal_autocheckpoint``), inside
the COMMIT statement, after its fsync: the records are durable, but ``execute`` returns
only once the checkpoint has copied the WAL into the database and fsynced it.  At
5,000 records/s that was one COMMIT a second taking 80-160 ms instead of 0.5 ms, and
every record queued meanwhile waited for it: the p99 of send-to-durable latency
(bench/_log_perf.py, docs/log.md#latency).

Here a ``Checkpointer`` thread runs ``wal_checkpoint(PASSIVE)`` on its own connection,
which takes no write lock, so the writer keeps committing.  A passive checkpoint
copies only the frames present when it starts; the WAL is rewound to its start (and
stops growing) only at a write transaction that finds every frame copied, and while
the writer commits all the time there are always new frames.  So the writer finishes
the job itself, between two commits and after resolving the first's futures: a
checkpoint of the few frames written meanwhile (``finish``), after which its next
BEGIN rewinds the WAL.  Each page still reaches the database once per checkpoint, as
before: what is written to the card does not change.

The writer's own ``wal_autocheckpoint`` stays as a backstop at a higher threshold
(``backstop_pages``): if this thread falls behind, the WAL is still bounded.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("broker")

#: SQLite's own default checkpoint threshold, in WAL frames (pages).
DEFAULT_PAGES = 1000


class Checkpointer:
    """Checkpoint the WAL in a thread once the writer's commits add up to ``pages`` frames.

    ``connect`` opens the thread's connection (in the thread, when first needed).
    The frame count is the writer's estimate (``committed``); it need not be exact:
    a low estimate checkpoints later, and the writer's backstop bounds that.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], pages: int, name: str) -> None:
        self._connect = connect
        self.pages = pages
        self._frames = 0
        self._cond = threading.Condition(threading.Lock())
        self._running = False  # a checkpoint is under way in the thread
        self._tail = False  # the thread's checkpoint left frames the writer should finish
        self._closing = False
        self._thread: threading.Thread | None = None
        self._name = name
        self.stats = {"checkpoints": 0, "finished_by_writer": 0}

    @staticmethod
    def backstop_pages(pages: int) -> int:
        """The writer connection's ``wal_autocheckpoint`` when this thread checkpoints at ``pages``."""
        return 4 * pages

    def committed(self, frames: int) -> None:
        """The writer committed about ``frames`` WAL frames; start a checkpoint if enough are in."""
        with self._cond:
            self._frames += frames
            if self._frames < self.pages or self._running or self._closing:
                return
            self._frames = 0
            self._running = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"broker-checkpoint:{self._name}",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def tail_pending(self) -> bool:
        """True once the writer should ``finish`` (cheap: read without the lock): after each of
        the thread's checkpoints."""
        return self._tail

    def finish(self, conn: sqlite3.Connection) -> None:
        """On the writer's connection, between commits: copy the frames the thread's checkpoint
        missed, so the next write transaction rewinds the WAL.  A few frames, a few ms."""
        self._tail = False
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the next one will do; the writer must not die of it
            _report(exc)
        self.stats["finished_by_writer"] += 1

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                with self._cond:
                    while not self._running and not self._closing:
                        self._cond.wait()
                    if self._closing:
                        return
                try:
                    if conn is None:
                        conn = self._connect()
                    self._checkpoint(conn)
                    self.stats["checkpoints"] += 1
                    # Even when it copied every frame it saw, the writer has most likely
                    # committed more since (it returns the frames it saw, not those there now).
                    self._tail = True
                except Exception as exc:  # the thread must live on; the next one will do
                    _report(exc)
                with self._cond:
                    self._running = False
        finally:
            if conn is not None:
                conn.close()


def _report(exc: BaseException) -> None:
    # Another checkpoint under way (the other thread's, another process's) is no fault.
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        log.debug("WAL checkpoint skipped: %s", exc)
    else:
        log.warning("WAL checkpoint failed: %s", exc)
