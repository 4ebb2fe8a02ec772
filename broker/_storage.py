"""The SQLite file behind the log: schema, connections, error translation.

Everything else in ``broker`` goes through ``connect`` and ``translate``, so
this is the one place that knows about ``sqlite3`` errors.  The schema is
meant to be read with plain SQL too, read-only (docs/log-schema.md)::

    SELECT topic, partition, offset, timestamp, key, value FROM records

``connect`` upgrades a log of an older schema in place (``_migrations``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from . import _migrations
from ._errors import (
    BrokerError,
    CorruptLogError,
    LogFullError,
    LogLockedError,
    LogVersionError,
    ReadOnlyLogError,
    StorageError,
)

DB_NAME = "log.db"
NOTIFY_NAME = "log.notify"
SCHEMA_VERSION = _migrations.SCHEMA_VERSION

# The log holds every reading of the box: only its owner may read it, whatever the
# umask (outside systemd it is usually 022, which made the files world-readable).
# SQLite creates the -wal and -shm files with the mode of the database file, so
# creating log.db with FILE_MODE covers them too.
DIR_MODE = 0o700
FILE_MODE = 0o600

# The tables every schema has had: a database that lacks one of them is not a log of ours.
_LOG_TABLES = frozenset({"meta", "topics", "partitions", "records", "group_offsets", "protected_groups"})
# Every table a log of this schema may hold (_LOG_TABLES: those it must hold).
_OUR_TABLES = _LOG_TABLES | {"protected_group_topics", "state"}

log = logging.getLogger("broker")

_F = TypeVar("_F", bound=Callable[..., Any])

# Bytes a record costs beyond its key, value and headers: the row's offset,
# timestamps and b-tree cell overhead.  Used for retention.bytes and the quota,
# which count what records take, as Kafka's segment sizes do.
RECORD_OVERHEAD = 40


# Records are keyed by one integer, a partition's id above its offset, so that an append
# goes to the right end of its partition's run of the table's B-tree.  SQLite's keyed tables
# (WITHOUT ROWID, as records was up to schema 2) rebalance a full leaf with its siblings and
# parent; an integer key appended past the end takes a fresh leaf: commits of five records
# write 3.3 KB per record instead of 6.3 KB (bench/bench_commit_pages.py).  44 bits of offset last
# 55 years at 10,000 records/s on one partition.
OFFSET_BITS = 44
MAX_OFFSET = (1 << OFFSET_BITS) - 1
# The key of a partition's offset 0, with its topic and partition as parameters: NULL (so no
# rows) when there is no such partition.  Evaluated once per statement.
_PARTITION_KEY = f"((SELECT id FROM partitions WHERE topic=? AND partition=?) << {OFFSET_BITS})"
#: A records query's condition for offsets first..last of one partition (see ``offset_range``).
OFFSET_RANGE_SQL = f"id BETWEEN {_PARTITION_KEY} + ? AND {_PARTITION_KEY} + ?"
#: A new partition's row, its id one past the highest (ids of deleted topics' may come back:
#: their records went with them).
NEW_PARTITION_SQL = ("INSERT INTO partitions(topic, partition, next_offset, log_start_offset, bytes, id)"
                     " VALUES (?, ?, 0, 0, 0, (SELECT coalesce(max(id), 0) + 1 FROM partitions))")


# A partition's row is not written by every commit: it would be a page of every commit's WAL
# frames, a quarter of what a commit of five records writes (bench/bench_commit_pages.py).
# Its next_offset and bytes are as of its last settle; the records past that make up the rest,
# found by key (the last record: a B-tree descent; the unsettled ones: at most SETTLE_RECORDS).
# Read the live values from the view ``partition_ends``, never from ``partitions``.
SETTLE_RECORDS = 1000
_SIZE_OF_R = ("coalesce(length(r.key),0)+coalesce(length(r.value),0)+coalesce(length(r.headers),0)"
              f"+{RECORD_OVERHEAD}")


def _live_next(p: str) -> str:
    key = f"({p}.id << {OFFSET_BITS})"
    return (f"max({p}.next_offset, coalesce((SELECT max(r.id) FROM records r WHERE r.id BETWEEN {key}"
            f" AND {key} + {MAX_OFFSET}) - {key} + 1, 0))")


def _live_bytes(p: str) -> str:
    key = f"({p}.id << {OFFSET_BITS})"
    return (f"{p}.bytes + (SELECT coalesce(sum({_SIZE_OF_R}), 0) FROM records r WHERE r.id BETWEEN"
            f" {key} + {p}.next_offset AND {key} + {MAX_OFFSET})")


#: A temporary view on every connection (so it needs no schema version): each partition with
#: its live next_offset (the high watermark) and bytes.
_PARTITION_ENDS = (
    "CREATE TEMP VIEW IF NOT EXISTS partition_ends (topic, partition, next_offset, log_start_offset, bytes, id)"
    f" AS SELECT p.topic, p.partition, {_live_next('p')}, p.log_start_offset, {_live_bytes('p')}, p.id"
    " FROM partitions p"
)
#: Bring a partition's row up to date (topic and partition as parameters): every
#: ``SETTLE_RECORDS`` records, and before records are deleted (bytes counts what is kept).
SETTLE_SQL = (f"UPDATE partitions SET bytes = {_live_bytes('partitions')}, next_offset = {_live_next('partitions')}"
              " WHERE topic=? AND partition=?")


def offset_range(topic: str, partition: int, first: int = 0, last: int = MAX_OFFSET) -> tuple[object, ...]:
    """The parameters of ``OFFSET_RANGE_SQL``: offsets ``first`` to ``last``, both included."""
    return (topic, partition, first, topic, partition, last)


def record_sizes(key: bytes | None, value: bytes | None, headers: str | None) -> tuple[int, int, int, int]:
    """(bytes the record takes of the quota, key size, value size, header size); -1 for a null."""
    ksize = -1 if key is None else len(key)
    vsize = -1 if value is None else len(value)
    hsize = 0 if headers is None else len(headers)
    return RECORD_OVERHEAD + max(ksize, 0) + max(vsize, 0) + hsize, ksize, vsize, hsize


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    retention_ms INTEGER NOT NULL,
    retention_bytes INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,       -- the high watermark: never goes back
    log_start_offset INTEGER NOT NULL,  -- first offset retention has kept
    bytes INTEGER NOT NULL,             -- what the kept records take
    id INTEGER NOT NULL DEFAULT 0,      -- this partition's records have keys id << 44 | offset
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,             -- partitions.id << 44 | offset
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,         -- event time, ms since the epoch
    log_time INTEGER NOT NULL,          -- log clock at append, ms (retention age)
    key BLOB,
    value BLOB,
    headers TEXT                        -- JSON [[key, value], ...], values as surrogate-escaped text
);
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '',
    commit_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS protected_groups (
    group_id TEXT PRIMARY KEY
) WITHOUT ROWID;
-- A protected group with rows here protects only these topics (a stream topology's
-- inputs); without rows, every topic (the uplink's).
CREATE TABLE IF NOT EXISTS protected_group_topics (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    PRIMARY KEY (group_id, topic)
) WITHOUT ROWID;
-- Key-value state written with records and offsets in one transaction (LogTransaction):
-- the state stores of stream processing.
CREATE TABLE IF NOT EXISTS state (
    store TEXT NOT NULL,                -- e.g. streams.vitals/KSTREAM-AGGREGATE-0000000003-STORE
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
) WITHOUT ROWID;
"""


def translate(exc: BaseException, what: str) -> BrokerError:
    """Turn a foreign storage error into ours, naming ``what`` was being done."""
    if isinstance(exc, BrokerError):
        return exc
    msg = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in msg or "busy" in msg:
            return LogLockedError(
                f"{what}: the log database is locked by another process for too long ({msg}); "
                "retry, or find the process holding it with `fuser`"
            )
        if "disk is full" in msg or "database or disk is full" in msg:
            return LogFullError(f"{what}: the disk is full ({msg})")
        if "readonly" in msg:
            return ReadOnlyLogError(
                f"{what}: the log database cannot be written ({msg}); check the owner and mode of "
                "the data directory and its files, and that the disk is not mounted read-only"
            )
        if "unable to open" in msg:
            return StorageError(f"{what}: cannot open the log database ({msg}); check permissions")
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in msg or "malformed" in msg or "corrupt" in msg
    ):
        return CorruptLogError(
            f"{what}: the log database is not a valid log ({msg}); it was left as it is — "
            "move it aside to start a new log, or inspect it with `sqlite3`"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyLogError(
            f"{what}: {exc.strerror} ({exc.filename}); check the owner and mode of the data directory, "
            "and that the disk is not mounted read-only"
        )
    if isinstance(exc, OSError):
        return StorageError(f"{what}: {exc.strerror or exc} ({getattr(exc, 'filename', '')})")
    return StorageError(f"{what}: {type(exc).__name__}: {msg}")


def translated(what: str) -> Callable[[_F], _F]:
    """Decorate a method that reads the log so that storage errors come out as ours."""
    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                raise translate(exc, what) from exc
        return inner  # type: ignore[return-value]  # it takes and returns what fn does
    return wrap


def db_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_NAME


def fsync_dir(path: Path) -> None:
    """Make the names in directory ``path`` durable (a new file's or directory's name is not,
    until its directory is fsynced: a power cut may undo the mkdir, and all below it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        # A filesystem that cannot fsync a directory says EINVAL; SQLite carries on there
        # too (it ignores its own directory fsync's result), so the log does not refuse it.
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def _make_parents(path: Path) -> None:
    """Make the missing directories above the data dir, none writable by others whatever the umask.

    Under umask 000 they came out 0777, and anyone could swap the data dir for one of theirs.
    """
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        try:
            p.mkdir()
        except FileExistsError:
            pass  # another process made it just now, and may not have fsynced it yet
        else:
            os.chmod(p, p.stat().st_mode & 0o755)
        fsync_dir(p.parent)


def check_data_dir(data_dir: Path, *, create: bool) -> Path:
    """Make sure ``data_dir`` exists (if ``create``) and is usable; return the db path.

    A directory made here gets ``DIR_MODE`` whatever the umask; one that exists is
    left as it is, with a warning if others may read it (the operator may have
    chosen that, e.g. a group for a backup user; systemd's StateDirectoryMode= is 0700).
    """
    data_dir = Path(data_dir)
    if create and not data_dir.exists():
        try:
            _make_parents(data_dir.parent)
        except OSError as exc:
            raise StorageError(f"cannot create the data directory {data_dir}: {exc.strerror}") from exc
        try:
            try:
                data_dir.mkdir(mode=DIR_MODE)
                os.chmod(data_dir, DIR_MODE)  # mkdir's mode is filtered by the umask
            except FileExistsError:
                pass  # another process made it just now, and may not have fsynced it yet
            # SQLite fsyncs the data dir for its WAL's name, never the dir above it: without
            # this a power cut after the first acknowledged commit could take the whole log.
            fsync_dir(data_dir.parent)
        except OSError as exc:
            raise StorageError(f"cannot create the data directory {data_dir}: {exc.strerror}") from exc
    if not data_dir.is_dir():
        if not data_dir.exists():
            raise StorageError(f"no log at {data_dir}: the directory does not exist "
                               "(pass --data-dir of an existing log)")
        raise StorageError(f"the data directory {data_dir} is not a directory")
    path = db_path(data_dir)
    if create and not os.access(data_dir, os.W_OK | os.X_OK):
        raise ReadOnlyLogError(
            f"the data directory {data_dir} cannot be written by this user (uid {os.getuid()}); "
            "fix its owner or mode, check that the disk is not mounted read-only, or choose another --data-dir"
        )
    if create and path.exists() and not os.access(path, os.R_OK | os.W_OK):
        # SQLite would open it read-only without a word and fail at the first commit.
        raise ReadOnlyLogError(
            f"{path} cannot be written by this user (uid {os.getuid()}); fix its owner or mode, "
            "check that the disk is not mounted read-only, or choose another --data-dir"
        )
    if not create and not path.exists():
        raise StorageError(f"no log at {data_dir}: {path.name} does not exist (pass --data-dir of an existing log)")
    if create:
        _create_private(path)
    return path


def require_log(data_dir: str | os.PathLike[str]) -> None:
    """Raise ``StorageError`` unless ``data_dir`` holds a log; creates nothing."""
    check_data_dir(Path(data_dir), create=False)


def _create_private(path: Path) -> None:
    """Create an empty ``log.db`` with ``FILE_MODE`` (SQLite would use 0644 & ~umask)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return  # made by another process, which fsyncs its name before it uses it
    except OSError as exc:
        raise translate(exc, f"creating {path}") from exc
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    try:
        fsync_dir(path.parent)  # the name log.db, before anything is acknowledged in it
    except OSError as exc:
        raise translate(exc, f"creating {path}") from exc


_warned_modes: set[Path] = set()


def warn_if_open_to_others(data_dir: Path) -> None:
    """Log once per process if the data directory or database lets others in."""
    for p in (Path(data_dir), db_path(data_dir)):
        try:
            st = p.stat()
        except OSError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.getuid() and p not in _warned_modes:
            _warned_modes.add(p)
            want = "700" if stat.S_ISDIR(st.st_mode) else "600"
            log.warning("%s has mode %o: other users of this machine may read the log; "
                        "`chmod %s %s` if they should not", p, stat.S_IMODE(st.st_mode), want, p)


def connect(data_dir: Path, *, busy_timeout_s: float, fsync: bool = True, create: bool = True) -> sqlite3.Connection:
    """Open a connection to the log in ``data_dir``, creating the schema if needed.

    The file is checked before anything is written to it: a database that is not a
    log (another program's, a damaged one) raises ``CorruptLogError``, one of a
    newer schema ``LogVersionError``, and either is left byte for byte as it was.
    Raises ``StorageError`` (or another leaf) for an unusable directory or file.
    """
    path = check_data_dir(data_dir, create=create)
    try:
        conn = sqlite3.connect(
            str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise translate(exc, f"opening {path}") from exc
    try:
        empty = _identify(conn, path)
        if empty and not create:
            raise StorageError(f"no log at {path.parent}: {path.name} is empty (pass --data-dir of an existing log)")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=OFF")
        if create:
            _ensure_schema(conn, path)
        conn.execute(_PARTITION_ENDS)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise translate(exc, f"opening {path}") from exc
        raise
    return conn


def _identify(conn: sqlite3.Connection, path: Path) -> bool:
    """True if the database is empty (a new log); raise unless it is a log of a schema we know."""
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return True
    version = None
    if "meta" in tables:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:  # a table called meta, but not ours
            row = None
        version = row[0] if row else None
    if version is None and tables <= _OUR_TABLES and _all_empty(conn, tables):
        # A creation cut short (a full disk) by a version that created the tables one by one:
        # nothing was ever written, so finishing the creation loses nothing.
        return True
    if type(version) is not int or version < 1:
        shown = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "")
        why = (f"its schema_version is {version!r}, not a number" if version is not None
               else f"it has tables {shown} but no schema_version")
        raise CorruptLogError(
            f"{path} is an SQLite database but not a log ({why}); it was left as it is — "
            "choose another --data-dir, or move the file aside to start a new log there"
        )
    if version > SCHEMA_VERSION:
        raise LogVersionError(
            f"{path} was written by a newer version of this software (log schema {version}; this one "
            f"knows up to {SCHEMA_VERSION}); it was left as it is — upgrade, or choose another --data-dir"
        )
    missing = _LOG_TABLES - tables
    if missing:
        raise CorruptLogError(
            f"{path} is not a valid log: table(s) {', '.join(sorted(missing))} missing; it was left as "
            "it is — move it aside to start a new log, or inspect it with `sqlite3`"
        )
    row = conn.execute("SELECT value FROM meta WHERE key='log_clock_ms'").fetchone()
    if row is not None and type(row[0]) is not int:  # compared with ints on every append
        raise CorruptLogError(
            f"{path} is not a valid log: meta.log_clock_ms is {row[0]!r:.40}, not a number; it was left "
            "as it is — move it aside to start a new log, or inspect it with `sqlite3`"
        )
    return False


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    # _identify has checked the schema version (and that the tables are ours).
    have = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if have:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row:
            if row[0] < SCHEMA_VERSION:
                _migrate(conn, path, row[0])
            return
    # One transaction for the tables and the version row: a creation cut short (a full disk)
    # must leave no half-made log, which the next start would take for another program's file.
    script = (
        "BEGIN IMMEDIATE;\n" + _SCHEMA  # idempotent: every statement is IF NOT EXISTS
        + f"INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', {int(SCHEMA_VERSION)});\n"
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('log_clock_ms', 0);\n"
        "COMMIT;"
    )
    try:
        conn.executescript(script)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection, path: Path, version: int) -> None:
    """Run the steps from ``version`` up to ``SCHEMA_VERSION``, each in its own transaction.

    Raises ``StorageError`` naming the step that failed; the log is then at the last
    version that committed, whole, and opens as that again next time.
    """
    start = version
    while version < SCHEMA_VERSION:
        step = _migrations.STEPS[version - 1]
        try:
            with transaction(conn):
                # Another process may have migrated since _identify read the version.
                now = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
                if now == version:
                    step(conn)
                    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (version + 1,))
        except (sqlite3.Error, OSError) as exc:
            err = translate(exc, f"upgrading {path} from log schema {version} to {version + 1}")
            if isinstance(err, ReadOnlyLogError):
                # A reader on a read-only disk reads the older schema as it is (what the
                # writer will migrate); nothing to tell.
                return
            raise type(err)(f"{err}; the log was left whole at schema {version}") from exc
        version += 1
    log.info("upgraded %s from log schema %d to %d; its records were kept", path, start, SCHEMA_VERSION)


def _all_empty(conn: sqlite3.Connection, tables: set[str]) -> bool:
    return all(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() is None for t in tables)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed on success, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        if conn.in_transaction:
            try:
                conn.execute("COMMIT")
            except BaseException:
                # A COMMIT that fails (a full disk writing the WAL) can leave the transaction
                # open, and the connection would refuse every later BEGIN.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
