"""Benchmark: what one commit writes for each layout of the records table (issue #12's disk floors).

    .venv/bin/python bench/bench_commit_pages.py [--commits 300] [--per 1,5,16,50] [--runs 3]

Plain SQLite, no broker code: the question is which table layout a schema migration
should move the log to, before anyone writes that migration. Each layout gets the
same appends (one topic, one partition, 352-byte events like bench_disk_writes'),
``per`` records to a commit, WAL mode, ``synchronous=FULL`` (an fsync per commit),
SQLite's default checkpointing, and the ``partitions`` row updated in every commit
as the log does. The first column is the log's layout today; its ratios say how many
times what each candidate writes it writes (cells interleaved, medians of ``--runs``):

* ``without rowid`` (today): ``PRIMARY KEY (topic, partition, offset) WITHOUT ROWID``.
  An append that fills the rightmost leaf goes through SQLite's general balance,
  which rewrites the leaf's siblings and parent too;
* ``rowid + index``: a rowid table with ``UNIQUE (topic, partition, offset)``:
  the table appends with the quick balance, but the index is a page more per commit;
* ``integer key``: ``id INTEGER PRIMARY KEY`` = ``partition id << 40 | offset``, no
  index: reads by offset become ``id`` ranges (every query of the records changes);
* ``integer key, no partitions row``: the same, without the bookkeeping row's page
  (next offset and bytes derived instead: what that would save).

Measured: bytes written per event (``write_bytes`` of /proc/self/io: 4 KiB pages
dirtied, WAL frames and checkpoints, what reaches the card).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _table import Row, Table  # noqa: E402

_COLS = "topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL, timestamp INTEGER NOT NULL, " \
        "log_time INTEGER NOT NULL, key BLOB, value BLOB, headers TEXT"
LAYOUTS = {
    "without rowid": f"CREATE TABLE records ({_COLS}, PRIMARY KEY (topic, partition, offset)) WITHOUT ROWID",
    "rowid + index": f"CREATE TABLE records ({_COLS}, UNIQUE (topic, partition, offset))",
    "integer key": f"CREATE TABLE records (id INTEGER PRIMARY KEY, {_COLS})",
    "integer key, no partitions row": f"CREATE TABLE records (id INTEGER PRIMARY KEY, {_COLS})",
}
_KEY = b"dev-001"
_VALUE = b"x" * 200
_HEADERS = json.dumps([["source", "serial:/dev/ttyUSB0"], ["device_kind", "gps"], ["schema", "gps/1"],
                       ["edge_id", "car-17"], ["ingest_ms", "1700000000000"], ["clock", "device"]])


def _write_bytes() -> int:
    return int(re.search(r"^write_bytes: (\d+)", Path("/proc/self/io").read_text(), re.M).group(1))


def measure(layout: str, per: int, commits: int, where: str) -> float:
    """Bytes written per event for ``commits`` commits of ``per`` records."""
    with tempfile.TemporaryDirectory(dir=where, prefix="bench-pages-") as d:
        db = Path(d) / "log.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE partitions (topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER "
                     "NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (topic, partition)) WITHOUT ROWID")
        conn.execute("INSERT INTO partitions VALUES ('readings', 0, 0, 0)")
        conn.execute(LAYOUTS[layout])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        keyed, bookkeeping = layout.startswith("integer key"), not layout.endswith("no partitions row")
        off = 0
        written = _write_bytes()
        for _ in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(per):
                row = ("readings", 0, off, 1, 1, _KEY, _VALUE, _HEADERS)
                if keyed:
                    conn.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)", ((1 << 40) | off, *row))
                else:
                    conn.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?)", row)
                off += 1
            if bookkeeping:
                conn.execute("UPDATE partitions SET next_offset=?, bytes=bytes+? WHERE topic='readings'",
                             (off, 400 * per))
            conn.execute("COMMIT")
        written = _write_bytes() - written
        conn.close()
    return written / (commits * per)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=300)
    ap.add_argument("--per", default="1,5,16,50", help="records per commit, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=os.environ.get("BENCH_DISK_DIR", "/var/tmp"), help="a directory on the real disk")
    args = ap.parse_args()
    pers = [int(p) for p in args.per.split(",")]
    names = list(LAYOUTS)
    written: dict[int, Row] = {}
    for per in pers:
        written[per] = Row(f"bytes written per event, {per} records per commit", False)
        for _ in range(args.runs):
            for name in names:  # layouts interleaved: each meets the same disk and machine load
                w = measure(name, per, args.commits, args.dir)
                written[per].values.setdefault(name, []).append(w)
    table = Table(key="commit_pages", title="What a commit writes, by records table layout",
                  columns=names, rows=list(written.values()))
    print(f"{args.commits} commits per cell, {args.runs} run(s), plain SQLite, WAL, synchronous=FULL; "
          "first column: today's layout")
    print(table.markdown())


if __name__ == "__main__":
    main()
