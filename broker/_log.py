"""One open log per data directory per process: its writer thread and group commit.

Producers hand records to ``Log.append``; one writer thread takes everything
that queued up while it was busy, writes it in one transaction with one
fsync, and only then resolves the records' futures.  Under load the batches
grow by themselves, which is what makes durable appends cheap.  Offsets are
read from the ``partitions`` table inside each write transaction, so several
processes can append to the same log without repeating an offset.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import _ledger, _quota, _retention
from ._checkpoint import DEFAULT_PAGES, Checkpointer
from ._config import DROP_LEDGER_TOPIC, FullPolicy, LogConfig, TopicConfig, validate_topic_name
from ._errors import (
    BrokerError,
    ClosedError,
    ConfigError,
    KafkaTimeoutError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from ._future import FutureRecordMetadata, _Round
from ._headers import encode_headers
from ._murmur2 import default_partition
from ._notify import CommitNotifier
from ._pending import Pending
from ._storage import (
    MAX_OFFSET,
    NEW_PARTITION_SQL,
    NOTIFY_NAME,
    OFFSET_BITS,
    RECORD_OVERHEAD,
    SETTLE_RECORDS,
    SETTLE_SQL,
    connect,
    record_sizes,
    transaction,
    translate,
    warn_if_open_to_others,
)
from ._transaction_write import write_transaction

log = logging.getLogger("broker")

# How often appends store the log clock in meta.  Storing it in every commit put the meta
# page in every commit's WAL frames: about a quarter of what a small commit writes to the
# card (bench/bench_disk_writes.py).  What a restart loses of it is taken back from the
# newest records (_stored_log_clock); idle running time, up to this much, is not aged.
CLOCK_PERSIST_INTERVAL_MS = 60_000

# With a commit interval, a commit starts at once when this many awaited records wait
# (append(awaited=True): someone holds an acknowledgement for them), whatever the interval:
# an MQTT QoS 1 delivery is PUBACKed only after its commit, and Mosquitto sends a client at
# most max_inflight_messages (20 by default) unacknowledged messages, so holding more than
# that would stall the publisher until the interval ran out.  Records nobody acknowledges
# (serial readings) do not count: they wait out the interval and share one commit, which
# at 50 readings/s writes ~40% less to the card than commits of 16 (docs/disk-wear.md).
EARLY_COMMIT_RECORDS = 16

_registry: dict[Path, Log] = {}
_registry_lock = threading.Lock()


@functools.lru_cache(maxsize=65536)
def _partition_for_key(key: bytes, num_partitions: int) -> int:
    # Device keys repeat endlessly; murmur2 in pure Python is worth caching.
    return default_partition(key, num_partitions)


# Errors that come from one record's content rather than from the database as a whole:
# a value SQLite cannot bind (OverflowError: an int beyond 64 bits; InterfaceError,
# ProgrammingError: a type it cannot store), one too big (DataError), or a constraint
# or trigger (IntegrityError).  send() checks what it can; these guard what gets past.
# Not TypeError or ValueError: those would be our own bugs, and every part would fail alike.
_RECORD_ERRORS = (OverflowError, sqlite3.IntegrityError, sqlite3.InterfaceError,
                  sqlite3.ProgrammingError, sqlite3.DataError)


def _record_error(exc: BaseException) -> StorageError:
    return StorageError(
        f"the log refused this record ({type(exc).__name__}: {exc}); records sent with it were "
        "written without it"
    )


class _SharedTransaction:
    """A ``LogTransaction`` waiting to ride the writer's next group commit."""

    __slots__ = ("records", "offsets", "expected", "state", "event", "error", "committed")

    def __init__(self, records: list[Pending], offsets: dict[tuple[str, str, int], tuple[int, str]],
                 expected: dict[tuple[str, str, int], int | None],
                 state: dict[tuple[str, bytes], bytes | None]) -> None:
        self.records, self.offsets, self.expected, self.state = records, offsets, expected, state
        self.event = threading.Event()
        self.error: BrokerError | None = None
        self.committed = False

    def fail(self, exc: BaseException) -> None:
        err = exc if isinstance(exc, BrokerError) else translate(exc, "committing a transaction")
        for p in self.records:
            p.future.offset = -1
            p.future._error = err
        self.error = err


class Log:
    """The shared handle on one data directory inside this process.

    Obtain it with ``Log.acquire(config)`` and give it back with ``release()``;
    clients (producer, consumer, admin) do this for their users.
    """

    def __init__(self, config: LogConfig) -> None:
        self.config = config
        self.clock = config.clock
        self._fsync = config.durability.value == "fsync"
        self._conn = connect(config.data_dir, busy_timeout_s=config.busy_timeout_s, fsync=self._fsync)
        self._refs = 0
        self._chosen = True  # opened with a config chosen by its caller, not LogConfig's defaults
        self._mutex = threading.Lock()  # taken directly on the hot path: Condition's own enter is Python code
        self._lock = threading.Condition(self._mutex)
        self._pending: list[Pending] = []
        self._shared: list[_SharedTransaction] = []  # transactions for the writer's next commit
        self._riders: list[_SharedTransaction] = []  # those the writer's next _write_tx carries
        self._round = _Round()
        self._inflight: _Round | None = None  # the round the writer is committing now
        self._conn_lock = threading.Lock()  # the writer connection, shared with run_retention callers
        self._closing = False
        self._linger_s = config.commit_interval_ms / 1000
        self._first_pending = 0.0  # time.monotonic() when the oldest pending record came
        self._awaited = 0  # pending records appended with awaited=True: see EARLY_COMMIT_RECORDS
        self._flush_now = False  # flush() asked: commit without waiting out the interval
        self._writer: threading.Thread | None = None
        self._rr: dict[str, int] = {}
        self._readers = threading.local()
        self._reader_conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        try:
            self._notifier = CommitNotifier(Path(config.data_dir) / NOTIFY_NAME)
        except OSError as exc:
            self._conn.close()
            raise translate(exc, f"opening {config.data_dir}") from exc
        warn_if_open_to_others(config.data_dir)
        try:
            self._clock_base = _stored_log_clock(self._conn)
        except sqlite3.Error as exc:  # the first read of the records: a damaged file shows here
            self._notifier.close()
            self._conn.close()
            raise translate(exc, f"opening {config.data_dir}") from exc
        self._mono_base = self.clock.monotonic_ms()
        self._next_retention = self._mono_base  # first pass soon after start
        self.stats = {"commits": 0, "records": 0, "expired": 0, "dropped": 0, "rejected": 0}
        self._quota = _quota.Quota(self, self._conn) if config.quota_bytes is not None else None
        if self._quota is not None:
            self._quota.configure(self._conn)  # the writer's backstop is the quota's threshold
        self._checkpointer = Checkpointer(self._checkpoint_conn, self._checkpoint_pages(),
                                          str(config.data_dir))
        if self._quota is None:
            self._conn.execute(f"PRAGMA wal_autocheckpoint={Checkpointer.backstop_pages(DEFAULT_PAGES)}")

    # -- lifetime ---------------------------------------------------------------------------

    @classmethod
    def acquire(cls, config: LogConfig, *, as_open: bool = False) -> Log:
        """The process's open log of ``config.data_dir``, opened with ``config`` if it is not open.

        A log runs with one config per process (one writer thread, one quota).  A caller
        whose ``config`` differs from the open log's gets ``ConfigError`` naming the
        fields, rather than a log silently running with another caller's settings.
        ``as_open``: the caller named only a directory (a client given ``data_dir=``)
        and takes the log as it is open; ``config`` then applies only if it is not.
        """
        key = Path(os.path.realpath(config.data_dir))
        with _registry_lock:
            lg = _registry.get(key)
            if lg is None or lg._closing:
                lg = cls(config)
                lg._chosen = not as_open
                _registry[key] = lg
            elif not as_open:
                lg._check_same_config(config)
            lg._refs += 1
            return lg

    def _check_same_config(self, config: LogConfig) -> None:
        differ = self.config.differences(config)
        if not differ:
            return
        opener = ("a client given only data_dir= (so LogConfig's defaults)" if not self._chosen
                  else "another LogConfig")
        raise ConfigError(
            f"the log in {config.data_dir} is already open in this process with {opener}, which "
            f"differs from this one in {'; '.join(differ)} (open vs this caller's): a log runs with "
            "one config per process, so pass the same LogConfig to every client of it, or only "
            "data_dir= to take the open log's"
        )

    def release(self) -> None:
        with _registry_lock:
            self._refs -= 1
            if self._refs > 0:
                return
            key = Path(os.path.realpath(self.config.data_dir))
            if _registry.get(key) is self:
                del _registry[key]
        self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        if self._writer is not None:
            self._writer.join()
        self._checkpointer.close()
        self._notifier.close()
        # Closing a connection while another thread is inside a query on it can
        # crash the interpreter (seen: a cancelled asyncio.to_thread read still
        # running at shutdown). Close our own and those of finished threads; a
        # live thread's connection is closed when its thread-local is freed.
        me = threading.current_thread()
        for owner, conn in self._reader_conns:
            if owner is me or not owner.is_alive():
                conn.close()
        self._reader_conns.clear()
        self._conn.close()

    def reader(self) -> sqlite3.Connection:
        """A connection for the calling thread, for reads and short metadata writes."""
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = connect(self.config.data_dir, busy_timeout_s=self.config.busy_timeout_s, fsync=self._fsync)
            self._readers.conn = conn
            if self._quota is not None:
                self._quota.configure(conn)
            else:  # its short writes must not take on the checkpoints the checkpointer runs
                conn.execute(f"PRAGMA wal_autocheckpoint={Checkpointer.backstop_pages(DEFAULT_PAGES)}")
            with _registry_lock:
                self._reader_conns.append((threading.current_thread(), conn))
        return conn

    def _checkpoint_conn(self) -> sqlite3.Connection:
        conn = connect(self.config.data_dir, busy_timeout_s=self.config.busy_timeout_s, fsync=self._fsync,
                       create=False)
        conn.execute("PRAGMA wal_autocheckpoint=0")  # it never writes; said for the reader of this
        return conn

    def _checkpoint_pages(self) -> int:
        """The WAL frames after which the checkpointer starts: under a quota, half its WAL share's
        threshold, so the writer's own checkpoint (at the threshold) stays a backstop."""
        if self._quota is None:
            return DEFAULT_PAGES
        return max(1, self._quota.shares.txn_pages // 2)

    def _committed(self, records: int, nbytes: int) -> None:
        """Tell the checkpointer about a commit: about one frame per 4 KiB of records, and
        the partition's last leaf and an interior page beside them."""
        if records:
            if self._quota is not None:  # fit_disk may have changed the shares
                self._checkpointer.pages = self._checkpoint_pages()
            self._checkpointer.committed(2 + nbytes // 4096)

    def notify(self) -> None:
        """Wake readers in every process (after a commit made outside the writer)."""
        self._notifier.notify()

    # -- the log clock ----------------------------------------------------------------------

    def log_now(self) -> int:
        """Milliseconds on the log clock (see ``_clock``): never jumps with the wall clock."""
        return self._clock_base + (self.clock.monotonic_ms() - self._mono_base)

    # -- appends ----------------------------------------------------------------------------

    def append(self, topic: str, partition: int | None, key: bytes | None, value: bytes | None,
               headers: Sequence[tuple[str, bytes | None]] | None, timestamp: int | None,
               awaited: bool = True) -> FutureRecordMetadata:
        """Queue one record; the returned future resolves once it is durable.

        ``awaited``: someone holds an acknowledgement until then (counted towards
        ``EARLY_COMMIT_RECORDS``); False for records nobody acknowledges, which may wait
        out the whole ``commit_interval_ms``.
        """
        hdr = encode_headers(headers) if headers else None
        ts = self.clock.wall_ms() if timestamp is None else timestamp
        size, ksize, vsize, hsize = record_sizes(key, value, hdr)
        with self._mutex:
            if self._closing:
                raise ClosedError("the log is closed; open a new producer")
            fut = FutureRecordMetadata(self._round, topic, partition, ts, ksize, vsize, hsize)
            self._pending.append(Pending(topic, partition, key, value, hdr, ts, size, fut))
            if len(self._pending) == 1:
                self._first_pending = time.monotonic()
                self._lock.notify()
            if awaited:
                self._awaited += 1
                if self._awaited == EARLY_COMMIT_RECORDS and self._linger_s:
                    self._lock.notify()
            if self._writer is None:
                self._start_writer()
        return fut

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything appended so far is durable (or failed) and its callbacks ran."""
        if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool)
                                    or not timeout >= 0):
            raise ConfigError(f"flush: timeout: expected seconds >= 0 or None, got {timeout!r:.80}")
        # Rounds commit in order, so the newest one covers everything before it.
        with self._lock:
            rnd = self._round if self._pending else self._inflight
            if self._pending and self._linger_s:
                self._flush_now = True  # as Kafka's flush() makes linger.ms moot
                self._lock.notify()
        if rnd is None:
            return
        # Callbacks included, as kafka-python's flush(); a callback itself (the writer thread)
        # that flushes cannot wait for the callbacks it is one of.
        done = rnd.event if threading.current_thread() is self._writer else rnd.finished
        if not done.wait(timeout):
            raise KafkaTimeoutError(f"flush did not complete within {timeout} s")

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._run, name=f"broker-writer:{self.config.data_dir}", daemon=True)
        self._writer.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._shared and not self._closing:
                    wait = max(0.0, (self._next_retention - self.clock.monotonic_ms()) / 1000)
                    if wait <= 0:
                        break
                    self._lock.wait(min(wait, 1.0))
                if self._linger_s:
                    self._linger()
                batch, rnd, shared = self._pending, self._round, self._shared
                self._shared = []
                if batch:
                    self._pending, self._round, self._awaited = [], _Round(), 0
                    self._inflight = rnd
                elif self._closing and not shared:
                    return
            if batch or shared:
                self._commit(batch, rnd, shared)
                with self._lock:
                    if self._inflight is rnd:
                        self._inflight = None
                self._committed(len(batch) + sum(len(t.records) for t in shared),
                                sum(p.size for p in batch) + sum(p.size for t in shared for p in t.records))
                if self._checkpointer.tail_pending():  # after the acks: see _checkpoint
                    with self._conn_lock:
                        self._checkpointer.finish(self._conn)
            if self.clock.monotonic_ms() >= self._next_retention:
                self._next_retention = self.clock.monotonic_ms() + int(self.config.retention_check_interval_s * 1000)
                try:
                    self.run_retention()
                except Exception:  # a dead writer would leave every later send hanging
                    log.exception("retention pass failed")

    def _linger(self) -> None:
        """Hold the pending records until ``commit_interval_ms`` after the oldest came, so that a
        commit at a low rate carries many records; sooner for flush(), close() or
        ``EARLY_COMMIT_RECORDS`` awaited records waiting.  Called with the lock held; nothing is acknowledged
        before its commit, so this delays acknowledgements, never weakens them."""
        deadline = self._first_pending + self._linger_s
        while (self._pending and not self._closing and not self._flush_now and not self._shared
               and self._awaited < EARLY_COMMIT_RECORDS):
            left = deadline - time.monotonic()  # real time: it bounds a latency, not the log's ages
            if left <= 0:
                break
            self._lock.wait(left)
        self._flush_now = False

    def _commit(self, batch: list[Pending], rnd: _Round, shared: list[_SharedTransaction] | None = None) -> None:
        todo = batch  # what is not committed yet: under a quota a batch may take several transactions
        self._riders = shared or []  # taken by the first _write_tx: they share its COMMIT
        try:
            with self._conn_lock:
                if not todo and self._riders:
                    self._write_tx([])
                while todo:
                    try:
                        todo = self._write_or_make_room(todo)
                    except _RECORD_ERRORS as exc:
                        if len(todo) == 1:
                            raise
                        log.warning("commit of %d records failed (%s: %s); committing them in parts to "
                                    "find the record the log refuses", len(todo), type(exc).__name__, exc)
                        self._isolate(todo)
                        todo = []
        except BaseException as exc:  # every failure must reach the futures
            err = _record_error(exc) if isinstance(exc, _RECORD_ERRORS) and len(todo) == 1 else \
                translate(exc, f"appending to {self.config.data_dir}")
            if not isinstance(exc, BrokerError):
                log.error("commit of %d records failed: %s", len(todo), err)
            # The transaction that failed was rolled back, so offsets assigned in it are
            # void: every record not committed and without an error of its own fails
            # (it used to be acknowledged when the failure came after offsets were assigned).
            for p in batch:
                if p.future._error is None and p.future.offset < 0:
                    p.future._error = err
        finally:
            if batch:  # with none, rnd is the round still open to appends
                rnd.done()
            self._settle_shared(shared or [])
        try:
            self._notifier.notify()
        except OSError as exc:  # readers fall back to their periodic check; the writer must live on
            log.warning("could not wake readers after a commit: %s", exc)

    @staticmethod
    def _void(records: list[Pending]) -> None:
        """Forget the offsets a rolled-back transaction gave ``records``."""
        for p in records:
            p.future.offset = -1

    def _isolate(self, batch: list[Pending]) -> None:
        """Commit ``batch`` in halves, and halves of those that fail, down to single records.

        A record the database refuses (a value SQLite cannot store, a constraint) fails
        alone; the others are written, in their order, in about 2·log2(n) transactions
        per refused record.  A failure that is not the record's own (the disk, the lock)
        is raised: it would fail every part the same way.
        """
        todo = [batch]
        while todo:
            part = [p for p in todo.pop() if p.future._error is None]
            if not part:
                continue
            try:
                rest = self._write(part)
                if rest:  # the quota's WAL share: the rest of this part, next
                    todo.append(rest)
            except _RECORD_ERRORS as exc:
                if len(part) == 1:
                    part[0].future._error = _record_error(exc)
                    log.error("record for %r refused by the log: %s", part[0].topic, part[0].future._error)
                else:
                    mid = len(part) // 2
                    todo += [part[mid:], part[:mid]]  # the first half is popped first: order kept

    def _write_or_make_room(self, batch: list[Pending]) -> list[Pending]:
        """``_write``; on a real full disk under ``drop-oldest``, fit the disk and try once more."""
        try:
            return self._write(batch)
        except sqlite3.OperationalError as exc:
            if not (_is_disk_full(exc) and self._quota is not None
                    and self.config.full_policy is FullPolicy.DROP_OLDEST):
                raise
            log.error("appending to %s: the disk is full below the quota (%s)", self.config.data_dir, exc)
            for p in batch:
                p.future._error = None
            self._quota.disk_full(self._conn)
            return self._write(batch)

    def _write(self, batch: list[Pending]) -> list[Pending]:
        """Write what of ``batch`` one transaction may take (the quota's WAL share); return the rest.

        On any error the transaction is rolled back and its offsets voided.
        """
        try:
            return self._write_tx(batch)
        except BaseException:
            self._void(batch)
            raise

    def _write_tx(self, batch: list[Pending]) -> list[Pending]:
        conn = self._conn
        later: list[Pending] = []
        riders, self._riders = self._riders, []
        if self._quota is not None:
            batch, later = self._quota.split(batch)
        with transaction(conn):
            written = self._write_riders(conn, riders)
            counts = self._topic_partitions(conn, {p.topic for p in batch})
            accepted: list[Pending] = []
            for p in batch:
                err = self._place(p, counts)
                if err is not None:
                    p.future._error = err
                    continue
                accepted.append(p)
            if accepted and self._quota is not None:
                accepted = self._quota.admit(conn, accepted, atomic=False)
            if accepted:
                self._insert(conn, accepted)
            elif not written:
                return later
        for t in riders:
            t.committed = t.error is None
        if self._quota is not None:
            self._quota.after_commit(conn)
        self.stats["commits"] += 1
        self.stats["records"] += len(accepted) + sum(len(t.records) for t in riders if t.committed)
        return later

    def _write_riders(self, conn: sqlite3.Connection, riders: list[_SharedTransaction]) -> int:
        """Write shared transactions into the open one, each in its own savepoint so that one
        refused (quota, a fenced offset commit) is rolled back alone; how many were written."""
        written = 0
        for t in riders:
            conn.execute("SAVEPOINT shared_txn")
            try:
                write_transaction(self, conn, t.records, t.offsets, t.expected, t.state)
            except (BrokerError, *_RECORD_ERRORS) as exc:
                conn.execute("ROLLBACK TO shared_txn")
                conn.execute("RELEASE shared_txn")
                t.fail(exc)
                continue
            conn.execute("RELEASE shared_txn")
            written += 1
        return written

    def _settle_shared(self, shared: list[_SharedTransaction]) -> None:
        """Wake the callers of ``shared``; one whose commit failed with the appends (the disk,
        the lock) is tried again alone, so its fate is its own."""
        for t in shared:
            if not t.committed and t.error is None:
                for p in t.records:
                    p.future.offset = -1
                try:
                    self._commit_alone(t.records, t.offsets, t.expected, t.state)
                    t.committed = True
                except BaseException as exc:  # the caller raises it; the writer lives on
                    t.fail(exc)
            t.event.set()

    def _place(self, p: Pending, counts: dict[str, int]) -> BrokerError | None:
        """Choose ``p``'s partition (murmur2 of the key, else round robin); the error if none fits."""
        n = counts.get(p.topic)
        if n is None:
            return UnknownTopicOrPartitionError(
                f"unknown topic {p.topic!r}: create it first (auto-creation is off for this log)"
            )
        if p.partition is None:
            if p.key is not None:
                p.partition = _partition_for_key(p.key, n)
            else:
                rr = self._rr.get(p.topic, -1) + 1
                self._rr[p.topic] = rr
                p.partition = rr % n
        elif not 0 <= p.partition < n:
            return UnknownTopicOrPartitionError(
                f"topic {p.topic!r} has partitions 0..{n - 1}, not {p.partition}"
            )
        p.future.partition = p.partition
        return None

    # -- transactions (see _transaction) ---------------------------------------------------------

    def commit_transaction(self, records: list[Pending],
                           offsets: dict[tuple[str, str, int], tuple[int, str]],
                           expected: dict[tuple[str, str, int], int | None],
                           state: dict[tuple[str, bytes], bytes | None], *, shared: bool = False) -> None:
        """Write a ``LogTransaction`` in one SQLite transaction on the writer connection.

        Blocks until committed (and fsynced with ``Durability.FSYNC``); on any
        error everything is rolled back and the error raised.  ``shared``: the writer
        thread writes it inside its next group commit, so it shares one COMMIT (one
        fsync) with the appends and other shared transactions queued meanwhile; it is
        still all or nothing (a savepoint of its own).
        """
        if not shared:
            self._commit_alone(records, offsets, expected, state)
            return
        t = _SharedTransaction(records, offsets, expected, state)
        with self._mutex:
            if self._closing:
                raise ClosedError("the log is closed; open a new producer")
            self._shared.append(t)
            self._lock.notify()
            if self._writer is None:
                self._start_writer()
        t.event.wait()
        if t.error is not None:
            raise t.error

    def _commit_alone(self, records: list[Pending],
                      offsets: dict[tuple[str, str, int], tuple[int, str]],
                      expected: dict[tuple[str, str, int], int | None],
                      state: dict[tuple[str, bytes], bytes | None]) -> None:
        if self._closing and threading.current_thread() is not self._writer:
            raise ClosedError("the log is closed; open a new producer")
        try:
            with self._conn_lock:
                with transaction(self._conn):
                    write_transaction(self, self._conn, records, offsets, expected, state)
                if self._quota is not None:
                    # Not split like appends: a large transaction may outgrow the WAL's share.
                    self._quota.after_commit(self._conn)
        except BaseException as exc:
            for p in records:
                p.future.offset = -1
                p.future._error = translate(exc, "committing a transaction")
            if isinstance(exc, BrokerError):
                raise
            raise translate(exc, f"committing a transaction to {self.config.data_dir}") from exc
        if records:
            self.stats["commits"] += 1
            self.stats["records"] += len(records)
            self._committed(len(records), sum(p.size for p in records))
        self._notifier.notify()

    def assign_partitions(self, conn: sqlite3.Connection, records: list[Pending]) -> None:
        """Place every record of a transaction, or raise for the first that has no place."""
        counts = self._topic_partitions(conn, {p.topic for p in records})
        for p in records:
            err = self._place(p, counts)
            if err is not None:
                raise err

    def insert_records(self, conn: sqlite3.Connection, records: list[Pending]) -> None:
        """Quota, then offsets and rows, for records of a transaction: all of them or an error."""
        if self._quota is not None:
            accepted = self._quota.admit(conn, records, atomic=True)
            if len(accepted) < len(records):
                raise next(p.future._error for p in records if p.future._error is not None)
        self._insert(conn, records)
        if self._quota is not None and records:
            self._quota.check(conn, records[0].topic)

    def _insert(self, conn: sqlite3.Connection, records: list[Pending]) -> None:
        """Assign offsets and write ``records``; the caller owns the transaction."""
        now = self._persist_clock(conn, min_step_ms=CLOCK_PERSIST_INTERVAL_MS)
        # Keyed as Pending.partition is typed; every caller has placed its records already.
        # (topic, partition) -> [next offset, bytes added, the partition's key base, settled up to]
        next_off: dict[tuple[str, int | None], list[int]] = {}
        for topic in {p.topic for p in records}:
            for part, nxt, pid, settled in conn.execute(
                    "SELECT e.partition, e.next_offset, e.id, p.next_offset FROM partition_ends e"
                    " JOIN partitions p ON p.topic = e.topic AND p.partition = e.partition WHERE e.topic=?", (topic,)):
                next_off[(topic, part)] = [nxt, 0, pid << OFFSET_BITS, settled]

        def rows() -> Iterator[tuple[Any, ...]]:
            # Made one at a time as SQLite takes them: a list of a large batch's rows was a
            # second copy of it (~14 MB for the 73,000 records buffer_memory lets queue).
            for p in records:
                slot = next_off[(p.topic, p.partition)]
                off = slot[0]
                if off > MAX_OFFSET:
                    raise StorageError(f"partition {p.partition} of {p.topic!r} is full: it has used all "
                                       f"{MAX_OFFSET + 1:,} offsets; create a new topic")
                slot[0] = off + 1
                slot[1] += p.size
                p.future.offset = off
                yield (slot[2] + off, p.topic, p.partition, off, p.timestamp, now, p.key, p.value, p.headers)

        conn.executemany(
            "INSERT INTO records(id, topic, partition, offset, timestamp, log_time, key, value, headers)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            rows(),
        )
        # The partitions row only now and then (_storage.SETTLE_RECORDS): the records are the truth.
        conn.executemany(SETTLE_SQL, [(t, part) for (t, part), (nxt, size, _, settled) in next_off.items()
                                      if size and nxt - settled >= SETTLE_RECORDS])

    def _persist_clock(self, conn: sqlite3.Connection, min_step_ms: int = 0) -> int:
        """Store the log clock so running time survives a restart; return it.

        Called in every write transaction (appends and retention passes), so a
        box that runs for days without new records still ages its backlog.
        ``min_step_ms``: write it only if it moved that much since it was stored.
        """
        now = self.log_now()
        stored = conn.execute("SELECT value FROM meta WHERE key='log_clock_ms'").fetchone()[0]
        if stored > now:  # another process ran longer: adopt its clock, never go back
            self._clock_base += stored - now
            now = stored
        if now - stored >= max(min_step_ms, 1) or min_step_ms == 0:
            conn.execute("UPDATE meta SET value=? WHERE key='log_clock_ms'", (now,))
        return now

    def _topic_partitions(self, conn: sqlite3.Connection, topics: set[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for topic in topics:
            row = conn.execute("SELECT partitions FROM topics WHERE name=?", (topic,)).fetchone()
            if row is None and self.config.auto_create_topics:
                validate_topic_name(topic)
                create_topic_rows(conn, topic, self.config.default_partitions,
                                  self.config.default_topic_config, self.clock.wall_ms())
                log.info("auto-created topic %s with %d partition(s)", topic, self.config.default_partitions)
                row = (self.config.default_partitions,)
            if row is not None:
                counts[topic] = row[0]
        return counts

    def append_internal(self, conn: sqlite3.Connection, topic: str, value: dict[str, Any]) -> None:
        """Write one JSON record inside the caller's transaction (the drop ledger)."""
        if conn.execute("SELECT 1 FROM topics WHERE name=?", (topic,)).fetchone() is None:
            create_topic_rows(conn, topic, 1, TopicConfig(retention_ms=-1, priority=1000), self.clock.wall_ms())
        body = json.dumps(value, separators=(",", ":")).encode()
        rnd = _Round()
        fut = FutureRecordMetadata(rnd, topic, 0, self.clock.wall_ms(), -1, len(body), 0)
        self._insert(conn, [Pending(topic, 0, None, body, None, fut.timestamp, len(body) + RECORD_OVERHEAD, fut)])
        rnd.done()

    def record_drops(self, value: dict[str, Any]) -> None:
        """Append a client's ledger entry (``KafkaAdminClient.record_drops``); the ledger stays bounded."""
        if self._closing:
            raise ClosedError("the log is closed; open a new admin client")
        try:
            with self._conn_lock, transaction(self._conn):
                self.append_internal(self._conn, DROP_LEDGER_TOPIC, value)
                if self._quota is not None:
                    floor = _retention.protected_floors(self._conn).get((DROP_LEDGER_TOPIC, 0))
                    _ledger.bound(self, self._conn, self._quota.shares.ledger_bytes, floor)
        except (sqlite3.Error, OSError) as exc:
            raise translate(exc, "recording drops in the drop ledger") from exc
        self._notifier.notify()

    # -- retention ----------------------------------------------------------------------------

    def run_retention(self) -> dict[str, int]:
        """Apply age and size retention now; returns counts of what was removed."""
        try:
            with self._conn_lock, transaction(self._conn):
                self._persist_clock(self._conn, min_step_ms=CLOCK_PERSIST_INTERVAL_MS)
                removed = _retention.apply_retention(self, self._conn)
        except BrokerError as exc:
            log.warning("retention pass failed: %s", exc)
            return {}
        except sqlite3.Error as exc:
            log.warning("retention pass failed: %s", translate(exc, "retention"))
            return {}
        if removed:
            self._notifier.notify()
        return removed


def _stored_log_clock(conn: sqlite3.Connection) -> int:
    """The log clock as the last run left it: meta's, or the newest record's if that is later.

    meta.log_clock_ms is written at most every CLOCK_PERSIST_INTERVAL_MS, so a run that
    ended in between appended records stamped later than it; the clock must not go back
    behind them.  The newest record of each partition is its last offset (a key lookup).
    """
    row = conn.execute("SELECT value FROM meta WHERE key='log_clock_ms'").fetchone()
    stored = int(row[0]) if row else 0
    newest = conn.execute(
        "SELECT max(r.log_time) FROM partition_ends p JOIN records r"
        f" ON r.id = (p.id << {OFFSET_BITS}) + p.next_offset - 1 WHERE p.next_offset > 0"
    ).fetchone()[0]
    return max(stored, newest or 0)


def _is_disk_full(exc: sqlite3.OperationalError) -> bool:
    return "disk is full" in str(exc)


def create_topic_rows(conn: sqlite3.Connection, name: str, partitions: int, config: TopicConfig,
                      now_ms: int) -> None:
    """Insert a topic and its partitions; the caller owns the transaction."""
    conn.execute(
        "INSERT INTO topics(name, partitions, retention_ms, retention_bytes, priority, created_ms)"
        " VALUES (?,?,?,?,?,?)",
        (name, partitions, config.retention_ms, config.retention_bytes, config.priority, now_ms),
    )
    # Offsets of a re-created topic start after those of the deleted one would
    # be wrong for consumers holding old positions; Kafka starts again at 0 too.
    conn.executemany(NEW_PARTITION_SQL, [(name, i) for i in range(partitions)])


__all__ = ["Log", "create_topic_rows"]
