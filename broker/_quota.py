"""The disk quota at append time: which records go in, drop the oldest, or refuse.

Runs in the writer's transaction, before the records are inserted.  The
measure is pages of the database (``_disk``): the pages a batch can take must
fit beside the pages in use, within the database's share of the quota.  Under
``drop-oldest`` the oldest records go until they do (``_retention``, which
thinks in logical bytes: the pages wanted are turned into bytes by the log's
own ratio of pages to bytes, and asked again until enough pages are free,
since a partly emptied leaf frees nothing).  A batch larger than one
transaction may write (the WAL's share) is split over several transactions.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from typing import TYPE_CHECKING

from . import _disk, _retention
from ._config import FullPolicy
from ._errors import LogFullError
from ._quietlog import QuietWarning
from ._storage import db_path

if TYPE_CHECKING:
    from ._log import Log
    from ._pending import Pending

log = logging.getLogger("broker")
_reject_warning = QuietWarning(log)

_DROP_ROUNDS = 8


class Quota:
    """The quota of one open log: its shares, lowered while the disk cannot give the quota."""

    def __init__(self, lg: Log, conn: sqlite3.Connection) -> None:
        assert lg.config.quota_bytes is not None
        self._log = lg
        ps = _disk.page_size(conn)
        self.shares = _disk.shares(lg.config.quota_bytes, ps)
        self._est = _disk.PageEstimate(ps)
        self._set_capacity()
        self._db = db_path(lg.config.data_dir)
        self.fit_disk(conn)

    def fit_disk(self, conn: sqlite3.Connection) -> None:
        """Keep the quota within what the disk can give: the log's files plus the free space.

        A quota larger than the disk (or a disk that others fill) would end in
        ENOSPC, where SQLite can no longer even delete: a checkpoint must grow
        the database, and the WAL cannot shrink before it does.  So the quota
        in force is the configured one, or what the disk can hold less the
        WAL's share (room for a checkpoint), whichever is less, so that the
        policy acts before the disk is full.  Asked at open and after every
        commit: one statvfs and three stats, not per record.
        """
        sh, configured = self.shares, self._log.config.quota_bytes
        assert configured is not None
        try:
            st = os.statvfs(self._log.config.data_dir)
        except OSError:
            return
        can = _disk.disk_bytes(self._log.config.data_dir) + st.f_bavail * st.f_frsize
        want = configured
        if can - _disk.shares(configured, sh.page_size).wal_bytes < configured:
            want = max(_disk.min_quota(sh.page_size), can - _disk.shares(can, sh.page_size).wal_bytes)
        # Only a change worth a log line: free space moves with every write.
        if want == sh.quota or (want < configured and abs(want - sh.quota) < sh.quota // 50):
            return
        self.shares = _disk.shares(want, sh.page_size)
        self._set_capacity()
        self.configure(conn)
        if want < configured:
            log.warning("the disk under %s can give the log only %d bytes: the quota of %d bytes acts at %d",
                        self._log.config.data_dir, can, configured, want)
        else:
            log.info("the disk under %s has room again: the quota of %d bytes acts in full",
                     self._log.config.data_dir, configured)

    def _set_capacity(self) -> None:
        # The most pages one record may take: the database's share less the schema and
        # the ledger's share.  A record larger than that can never fit.
        sh = self.shares
        self._capacity = sh.db_pages - _disk._SCHEMA_PAGES - math.ceil(2 * sh.ledger_bytes / sh.page_size)

    def configure(self, conn: sqlite3.Connection) -> None:
        _disk.configure(conn, self.shares)

    def split(self, records: list[Pending]) -> tuple[list[Pending], list[Pending]]:
        """(what one append transaction may take, the rest): each within the WAL's share.

        Looks at no more records than it takes (a group commit of thousands is
        split into many transactions), and always takes the first.
        """
        est, limit = self._est, self.shares.txn_pages
        total: float = est.fixed(1)  # pages: records share leaves, so fractions add up
        for i, p in enumerate(records):
            total += est.pages(p.size, p.topic)
            if i and total > limit:
                return records[:i], records[i:]
        return records, []

    def admit(self, conn: sqlite3.Connection, records: list[Pending], *, atomic: bool) -> list[Pending]:
        """The records to write now; the rest get ``LogFullError``.

        ``atomic`` (a ``LogTransaction``): all of them, or errors; the estimate
        only decides what to drop, and ``check`` after the insert has the last
        word (a transaction is all or nothing, so it can be measured exactly).
        """
        lg, est = self._log, self._est
        pages = [est.pages(p.size, p.topic) for p in records]
        fits = [n <= self._capacity for n in pages]
        partitions = len({(p.topic, p.partition) for p in records})
        need = sum(n for n, ok in zip(pages, fits, strict=True) if ok) + est.fixed(partitions)
        room = self._room(conn)
        if need <= room and all(fits):
            return records
        if lg.config.full_policy is FullPolicy.DROP_OLDEST and need > room and any(fits):
            room = self._drop(conn, need - room)
        accepted: list[Pending] = []
        used: float = est.fixed(partitions)
        for p, n, ok in zip(records, pages, fits, strict=True):
            if ok and (used + n <= room or atomic):
                accepted.append(p)
                used += n
            else:
                p.future._error = self._full_error(conn, p.topic, too_big=not ok)
        rejected = len(records) - len(accepted)
        if rejected:
            lg.stats["rejected"] += rejected
            _reject_warning.warn("disk quota reached: rejected %d record(s)", rejected)
        return accepted

    def check(self, conn: sqlite3.Connection, topic: str) -> None:
        """Raise ``LogFullError`` if the database outgrew its share (after a transaction's insert)."""
        if self._room(conn) < 0:
            self._log.stats["rejected"] += 1
            raise self._full_error(conn, topic, too_big=False)

    def _room(self, conn: sqlite3.Connection) -> float:
        total, free = _disk.pages_in_use(conn)
        return self.shares.db_pages - (total - free)

    def _drop(self, conn: sqlite3.Connection, want_pages: float) -> float:
        """Drop the oldest records until ``want_pages`` more pages are free; the room then.

        Replicated records go for a headroom beyond that too (``shares.headroom_pages``).
        """
        sh = self.shares
        start = room = self._room(conn)
        headroom = sh.headroom_pages
        asked = 0
        for _ in range(_DROP_ROUNDS):
            missing = want_pages - (room - start)
            if missing <= 0:
                break
            total, free = _disk.pages_in_use(conn)
            logical = conn.execute("SELECT coalesce(sum(bytes), 0) FROM partition_ends").fetchone()[0]
            if logical <= 0:
                break
            # Bytes per page the records take now: a 1,000-byte value costs ~4.5 KiB.  At
            # least a page, and twice as much as the round before: a leaf frees its page
            # only once all its rows are gone, so a round can free bytes and no page.
            per_page = logical / max(1, total - free - _disk._SCHEMA_PAGES)
            asked = max(math.ceil(max(missing, 1) * per_page * 1.25), 2 * asked)
            freed = _retention.drop_for_quota(self._log, conn, asked, sh.ledger_bytes,
                                              headroom=math.ceil(headroom * per_page))
            headroom = 0  # once: what the first round did not find, later rounds need not
            room = self._room(conn)
            if freed == 0:
                break
        return room

    def disk_full(self, conn: sqlite3.Connection) -> None:
        """A real ENOSPC under ``drop-oldest``: fit the quota to the disk, and checkpoint what can be."""
        self.fit_disk(conn)
        self._truncate_wal(conn)

    def _full_error(self, conn: sqlite3.Connection, topic: str, *, too_big: bool) -> LogFullError:
        cfg, sh = self._log.config, self.shares
        if too_big:
            return LogFullError(
                f"a record for {topic!r} is larger than the disk quota of {cfg.quota_bytes} bytes can "
                f"ever hold in {cfg.data_dir} (policy {cfg.full_policy.value}); not written — "
                "raise the quota or send smaller records"
            )
        total, free = _disk.pages_in_use(conn)
        lowered = f", lowered to {sh.quota} by the room on the disk" if sh.quota < (cfg.quota_bytes or 0) else ""
        return LogFullError(
            f"the log in {cfg.data_dir} reached its disk quota of {cfg.quota_bytes} bytes{lowered} "
            f"(policy {cfg.full_policy.value}; database {(total - free) * sh.page_size} of "
            f"{sh.db_bytes} bytes in use, WAL share {sh.wal_bytes}); record for {topic!r} not written — "
            "free room by replicating upstream, shortening retention, or raising the quota"
        )

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """Truncate the WAL if it outgrew its share (a reader held back the checkpoints); fit the disk."""
        if _disk.wal_file_bytes(self._db) > self.shares.wal_bytes:
            self._truncate_wal(conn)
        self.fit_disk(conn)

    def _truncate_wal(self, conn: sqlite3.Connection) -> None:
        # Not the connection's busy timeout (seconds): appends wait behind this.  A reader
        # that holds the WAL makes it return at once; the next commit tries again.
        conn.execute("PRAGMA busy_timeout=20")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.debug("WAL checkpoint: %s", exc)
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self._log.config.busy_timeout_s * 1000)}")
