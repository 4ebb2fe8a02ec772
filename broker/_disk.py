"""What the log occupies on disk, and how its quota is shared out.

The quota bounds the files of the log: the database (every page, free ones
included: SQLite reuses free pages first and never shrinks the file without a
VACUUM), its write-ahead log and the WAL's index (``-shm``).  Logical record
sizes are no measure of that: a record whose row does not fit in a b-tree cell
(about 4,000 bytes with 4 KiB pages) takes a whole overflow page, 2x its size.

The quota is split into shares, all fixed once the quota is known:

* the WAL's: the index plus two transactions' worth of frames.  The writer
  checkpoints (``wal_autocheckpoint``) once the WAL holds one transaction's
  worth, and no append transaction writes more than that (a larger batch is
  committed in several), so the WAL file stays within its share;
* the database's: the rest, in pages.  An append is let in only if the pages
  it can take fit beside the pages in use (``page_count - freelist_count``:
  O(1) PRAGMAs, no file is looked at per record);
* the drop ledger's, inside the database's: see ``_ledger``.

Nothing here touches the disk except ``configure`` and ``wal_file_bytes``.
"""

from __future__ import annotations

import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ._storage import DB_NAME, RECORD_OVERHEAD

SHM_BYTES = 32 * 1024  # the WAL index: 32 KiB per 4,096 frames, and the WAL holds far fewer
_WAL_HEADER = 32
_FRAME_HEADER = 24
_TXN_PAGES_MIN = 4
_TXN_PAGES_MAX = 1000  # SQLite's own default checkpoint threshold: no point going beyond it
_WAL_SLACK_PAGES = 8  # what a transaction writes beside its records: drops, partitions, meta
_HEADROOM_MAX = 1 << 20
_ROW_BYTES = 24  # a row's columns beside key, value and headers: its header, offsets, times


@dataclass(frozen=True)
class QuotaShares:
    """How a quota of ``quota`` bytes is spent, for a database of ``page_size`` pages."""

    quota: int
    page_size: int
    txn_pages: int  # the most pages one append transaction may take; the checkpoint threshold
    wal_bytes: int  # the WAL and its index at most
    db_pages: int  # the most pages the database file may hold
    ledger_bytes: int  # the drop ledger's share (its records' logical bytes)
    headroom_pages: int  # what one drop frees at least, so that a full log drops now and then

    @property
    def db_bytes(self) -> int:
        return self.db_pages * self.page_size


def shares(quota: int, page_size: int) -> QuotaShares:
    """Split ``quota`` into the WAL's, the database's and the ledger's shares."""
    txn = min(max(quota // 16 // page_size, _TXN_PAGES_MIN), _TXN_PAGES_MAX)
    wal = SHM_BYTES + _WAL_HEADER + (2 * txn + _WAL_SLACK_PAGES) * (page_size + _FRAME_HEADER)
    db_pages = max(0, (quota - wal) // page_size)
    return QuotaShares(
        quota=quota, page_size=page_size, txn_pages=txn, wal_bytes=wal, db_pages=db_pages,
        ledger_bytes=max(quota // 32, 4096),
        # A 32nd of the database, at most 1 MiB: dropped early, unreplicated records are
        # lost although the uplink might have come back before they had to go.
        headroom_pages=max(_TXN_PAGES_MIN, min(db_pages // 32, _HEADROOM_MAX // page_size)),
    )


def min_quota(page_size: int = 4096) -> int:
    """The least quota that leaves room for the schema, a few records and the ledger."""
    sh = shares(0, page_size)
    return sh.wal_bytes + (_SCHEMA_PAGES + 2 * _TXN_PAGES_MIN) * page_size + sh.ledger_bytes


_SCHEMA_PAGES = 12  # an empty log: a root page per table and index, sqlite_master


def configure(conn: sqlite3.Connection, sh: QuotaShares) -> None:
    """Keep this connection's WAL within its share: checkpoint after a transaction's worth."""
    conn.execute(f"PRAGMA wal_autocheckpoint={sh.txn_pages}")
    conn.execute(f"PRAGMA journal_size_limit={sh.wal_bytes - SHM_BYTES}")


def page_size(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA page_size").fetchone()[0]


def pages_in_use(conn: sqlite3.Connection) -> tuple[int, int]:
    """(pages of the database file, of which free); O(1), also inside a transaction."""
    return (conn.execute("PRAGMA page_count").fetchone()[0],
            conn.execute("PRAGMA freelist_count").fetchone()[0])


def wal_file_bytes(db: Path) -> int:
    """The WAL and its index as they are on disk now (a stat each: once per commit, not per record)."""
    total = 0
    for suffix in ("-wal", "-shm"):
        try:
            total += os.stat(f"{db}{suffix}").st_size
        except FileNotFoundError:
            pass
    return total


def disk_bytes(data_dir: Path) -> int:
    """The log's database, WAL and WAL index as they are on disk now."""
    db = Path(data_dir) / DB_NAME
    return (db.stat().st_size if db.exists() else 0) + wal_file_bytes(db)


class PageEstimate:
    """An upper bound of the pages a record takes in the records b-tree, by its size.

    The table is a rowid table, so a row is a table b-tree leaf cell: at most
    ``max_local`` bytes stay in the leaf, the rest goes to overflow pages
    (SQLite's file format, section 1.6).  Leaves are counted as if only half
    full, which a b-tree never falls below for long, and which covers the
    page splits of appends in the middle of the key range (other partitions).
    """

    def __init__(self, page_size: int) -> None:
        usable = page_size
        self._max_local = usable - 35  # a table leaf's; an index b-tree's (schema 2) was a quarter
        self._min_local = (usable - 12) * 32 // 255 - 23
        self._ovf = usable - 4
        self._leaf = usable / 2

    def pages(self, size: int, topic: str) -> float:
        """Pages (a fraction for what shares a leaf) a record of quota ``size`` takes."""
        payload = size - RECORD_OVERHEAD + _ROW_BYTES + len(topic)
        if payload <= self._max_local:
            return (payload + 12) / self._leaf
        local = self._min_local + (payload - self._min_local) % self._ovf
        if local > self._max_local:
            local = self._min_local
        return (local + 16) / self._leaf + math.ceil((payload - local) / self._ovf)

    def fixed(self, partitions: int) -> int:
        """Pages a transaction takes beside its records: a split per partition, interior pages."""
        return partitions + 2
