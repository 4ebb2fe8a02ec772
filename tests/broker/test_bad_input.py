"""Bad input gets a clear error naming what is wrong, a non-zero CLI exit, and no damage to the log.

After each failure the test reads the log back (or compares the database file
byte for byte) to show that nothing already stored was lost or altered.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import broker
from broker import (
    ConfigError,
    CorruptLogError,
    InvalidPartitionsError,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    LogLockedError,
    NewTopic,
    SerializationError,
    StorageError,
    UnknownTopicOrPartitionError,
)

from ._helpers import read_all, run_tool

VALUES = [b"one", b"two", b"three"]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A log with topic 'keep' (2 partitions) holding three records."""
    d = tmp_path / "log"
    with KafkaAdminClient(data_dir=d) as admin:
        admin.create_topics([NewTopic("keep", 2)])
    with KafkaProducer(data_dir=d) as producer:
        for v in VALUES:
            producer.send("keep", v, partition=0).get(10)
    return d


def _intact(d: Path) -> None:
    assert [r.value for r in read_all(LogConfig(data_dir=d), "keep")] == VALUES
    with KafkaAdminClient(data_dir=d) as admin:
        assert admin.list_topics() == ["keep"]
        d0 = admin.describe_topics(["keep"])[0]
        assert len(d0.partitions) == 2
        assert d0.config == broker.TopicConfig().to_kafka()


def _fails(proc: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, f"exit {proc.returncode}, stderr {err!r}"
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert "Traceback" not in err
    return err


# -- unknown topic ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("topics", "--describe", "--topic", "nope"),
    ("topics", "--delete", "--topic", "nope"),
    ("topics", "--alter", "--topic", "nope", "--config", "retention.ms=1000"),
    ("consumer-groups", "--reset-offsets", "--group", "g", "--topic", "nope", "--to-earliest", "--execute"),
])
def test_cli_unknown_topic(log_dir: Path, args: tuple[str, ...]) -> None:
    _fails(run_tool(args[0], *args[1:], data_dir=log_dir), f"edge-{args[0]}: error:", "unknown topic 'nope'")
    _intact(log_dir)


def test_api_unknown_topic_or_partition(log_dir: Path) -> None:
    with KafkaAdminClient(data_dir=log_dir) as admin:
        with pytest.raises(UnknownTopicOrPartitionError, match="'nope'"):
            admin.describe_topics(["nope"])
        with pytest.raises(UnknownTopicOrPartitionError, match="'nope'"):
            admin.delete_topics(["keep", "nope"])  # all or nothing: 'keep' survives
    cfg = LogConfig(data_dir=log_dir, auto_create_topics=False)
    with KafkaProducer(log_config=cfg) as producer:
        with pytest.raises(UnknownTopicOrPartitionError, match="unknown topic 'nope'"):
            producer.send("nope", b"x").get(10)
        with pytest.raises(UnknownTopicOrPartitionError, match="partitions 0..1, not 5"):
            producer.send("keep", b"x", partition=5).get(10)
    with KafkaConsumer(log_config=cfg) as consumer:
        with pytest.raises(UnknownTopicOrPartitionError, match="no partition 2 of topic 'keep'"):
            consumer.assign([broker.TopicPartition("keep", 2)])
    _intact(log_dir)


# -- bad partition counts -------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "needle", "code"), [
    ("0", "num_partitions must be an integer from 1 to 10000 (the most a topic may have here), got 0", 1),
    ("-1", "got -1", 1),
    ("10001", "got 10001", 1),
    ("2147483647", "got 2147483647", 1),  # grew RSS ~300 MB/s to MemoryError
    ("99999999999999999999", "got 99999999999999999999", 1),  # an OverflowError traceback
    ("x", "argument --partitions: invalid int value: 'x'", 2),
])
def test_cli_bad_partition_count(log_dir: Path, count: str, needle: str, code: int) -> None:
    _fails(run_tool("topics", "--create", "--topic", "new", "--partitions", count, data_dir=log_dir),
           needle, code=code)
    _intact(log_dir)  # and 'new' was not created


def test_api_bad_partition_counts(log_dir: Path) -> None:
    with KafkaAdminClient(data_dir=log_dir) as admin:
        for bad in (0, -1, "2", 1.5, True, 10_001, 2_000_000):
            with pytest.raises(InvalidPartitionsError, match=f"got {bad!r}"):
                admin.create_topics([NewTopic("new", bad)])
        with pytest.raises(InvalidPartitionsError, match="has 2 partitions.*got 1"):
            admin.create_partitions({"keep": broker.NewPartitions(1)})
        # One bad topic in a batch creates none of them.
        with pytest.raises(InvalidPartitionsError):
            admin.create_topics([NewTopic("fine", 1), NewTopic("bad", 0)])
    _fails(run_tool("topics", "--alter", "--topic", "keep", "--partitions", "1", data_dir=log_dir),
           "has 2 partitions")
    _intact(log_dir)


# -- malformed --config ---------------------------------------------------------------------------

@pytest.mark.parametrize(("pair", "needle"), [
    ("retention.ms", "malformed config 'retention.ms': expected key=value"),
    ("=5", "malformed config '=5'"),
    ("colour=red", "unknown topic config 'colour'"),
    ("retention.ms=soon", "retention.ms: expected an integer, got 'soon'"),
    ("retention.ms=1.5", "retention.ms: expected an integer, got '1.5'"),
    ("retention.bytes=-7", "retention.bytes: expected -1 (unlimited) or a positive integer, got '-7'"),
    ("retention.ms=1_000", "expected an integer, got '1_000'"),
    ("priority=99999999999999999999", "expected an integer below 2**63, got '99999999999999999999'"),
])
def test_cli_malformed_config(log_dir: Path, pair: str, needle: str) -> None:
    _fails(run_tool("topics", "--create", "--topic", "new", "--config", pair, data_dir=log_dir), needle)
    _intact(log_dir)  # no 'new' topic


@pytest.mark.parametrize(("pairs", "needle"), [
    (["retention.ms=5", "retention.bytes"], "malformed config 'retention.bytes'"),
    (["priority=9", "colour=red"], "unknown topic config 'colour'"),
    (["retention.ms=5", "retention.bytes=x"], "retention.bytes: expected an integer, got 'x'"),
])
def test_cli_alter_with_one_bad_config_changes_nothing(log_dir: Path, pairs: list[str], needle: str) -> None:
    args = [a for pair in pairs for a in ("--config", pair)]
    _fails(run_tool("topics", "--alter", "--topic", "keep", *args, data_dir=log_dir), needle)
    _intact(log_dir)  # 'keep' has its old config: the good pair was not applied either


# -- values that are not bytes ------------------------------------------------------------------------

def test_a_value_that_is_not_bytes_without_a_serializer(log_dir: Path) -> None:
    with KafkaProducer(data_dir=log_dir) as producer:
        with pytest.raises(SerializationError, match=r"value for topic 'keep' is dict, not bytes.*value_serializer"):
            producer.send("keep", {"bp": 120})
        with pytest.raises(SerializationError, match=r"key for topic 'keep' is str, not bytes.*key_serializer"):
            producer.send("keep", b"v", key="car-1")
        with pytest.raises(SerializationError, match=r"headers must be \(str, bytes\) pairs, got \('h', 'text'\)"):
            producer.send("keep", b"v", headers=[("h", "text")])
        assert isinstance(SerializationError("x"), ConfigError)
    def broken(v: object) -> bytes:
        raise TypeError("cannot encode")
    with KafkaProducer(data_dir=log_dir, value_serializer=broken) as producer:
        with pytest.raises(SerializationError, match="value_serializer failed.*TypeError: cannot encode"):
            producer.send("keep", object())
    _intact(log_dir)


def test_unknown_client_options_are_refused(log_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown option.*linger_mss"):
        KafkaProducer(data_dir=log_dir, linger_mss=5)
    with pytest.raises(ConfigError, match="pass data_dir="):
        KafkaConsumer(bootstrap_servers="localhost:9092")
    with pytest.raises(ConfigError, match="auto_offset_reset.*got 'smallest'"):
        KafkaConsumer(data_dir=log_dir, auto_offset_reset="smallest")
    with pytest.raises(ConfigError, match="full_policy.*got 'panic'"):
        LogConfig(data_dir=log_dir, full_policy="panic")
    with pytest.raises(ConfigError, match="quota_bytes.*got 0"):
        LogConfig(data_dir=log_dir, quota_bytes=0)
    _intact(log_dir)


# -- a corrupt database file --------------------------------------------------------------------------

def _corrupt(d: Path, how: str) -> bytes:
    db = d / "log.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
        table = how.removeprefix("garbage-in-")  # the page a table's b-tree starts on
        root = c.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()
    c.close()
    data = db.read_bytes()
    if root is None:
        bad = os.urandom(8192)
    else:
        at = (root[0] - 1) * page_size
        bad = data[:at] + os.urandom(page_size) + data[at + page_size:]
    db.write_bytes(bad)
    for side in ("log.db-wal", "log.db-shm"):
        (d / side).unlink(missing_ok=True)
    return bad


@pytest.mark.parametrize("how", ["garbage", "garbage-in-topics", "garbage-in-partitions", "garbage-in-records"])
def test_a_corrupt_database_is_refused_and_left_as_it_is(tmp_path: Path, how: str) -> None:
    d = tmp_path / "log"
    with KafkaProducer(data_dir=d) as producer:  # big enough that page 2 holds records
        for i in range(300):
            producer.send("keep", os.urandom(100), key=str(i).encode())
        producer.flush()
    bad = _corrupt(d, how)
    with pytest.raises(CorruptLogError, match="not a valid log.*left as it is"):
        with KafkaAdminClient(data_dir=d) as admin:
            admin.describe_topics()
    with pytest.raises(CorruptLogError):
        with KafkaConsumer("keep", data_dir=d, auto_offset_reset="earliest", consumer_timeout_ms=100) as c:
            list(c)
    try:
        producer = KafkaProducer(data_dir=d)
    except CorruptLogError:
        pass
    else:
        with producer, pytest.raises(CorruptLogError):
            producer.send("keep", b"x").get(10)
    for tool, args in [("topics", ["--list"]), ("topics", ["--describe"]),
                       ("console-consumer", ["--topic", "keep", "--from-beginning", "--timeout-ms", "100"]),
                       ("consumer-groups", ["--list"])]:
        proc = run_tool(tool, *args, data_dir=d)
        err = proc.stderr.decode()
        assert "Traceback" not in err
        if how == "garbage" or proc.returncode != 0:  # a partly damaged file may still answer some reads
            assert proc.returncode == 1 and "not a valid log" in err, err
    assert (d / "log.db").read_bytes() == bad, "the corrupt file was modified"


# -- a locked database ----------------------------------------------------------------------------

@pytest.fixture
def locked(log_dir: Path) -> Iterator[subprocess.Popen]:
    """Another process holding BEGIN EXCLUSIVE on the log until its stdin closes."""
    code = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(log_dir / 'log.db')!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
        "c.execute('ROLLBACK')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"locked\n"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()


def test_a_locked_database_gives_log_locked_error_then_recovers(log_dir: Path, locked: subprocess.Popen) -> None:
    cfg = LogConfig(data_dir=log_dir, busy_timeout_s=0.2)
    with KafkaProducer(log_config=cfg) as producer, KafkaAdminClient(log_config=cfg) as admin:
        with pytest.raises(LogLockedError, match="locked by another process") as info:
            producer.send("keep", b"four", partition=0).get(10)
        assert info.value.retriable and isinstance(info.value, StorageError)
        with pytest.raises(LogLockedError, match="creating topics"):
            admin.create_topics([NewTopic("new", 1)])
        # Readers are not blocked by a writer in WAL mode.
        assert [r.value for r in read_all(cfg, "keep")] == VALUES
        locked.stdin.close()
        locked.wait(10)
        # The lock is gone: the same clients work, and the failed record was not half-written.
        assert producer.send("keep", b"four", partition=0).get(10).offset == 3
    assert [r.value for r in read_all(cfg, "keep")] == [*VALUES, b"four"]


# -- a data directory that is not usable ------------------------------------------------------------

def test_a_data_dir_that_is_a_regular_file(tmp_path: Path) -> None:
    # Tests run as root here, so permission bits would not stop us: a path that
    # is a regular file (or lies under one) is what makes a data dir unusable.
    f = tmp_path / "not-a-dir"
    f.write_bytes(b"precious")
    for d in (f, f / "sub"):
        with pytest.raises(StorageError, match=str(d)):
            KafkaProducer(data_dir=d)
        with pytest.raises(StorageError, match=str(d)):
            KafkaConsumer("t", data_dir=d)
        _fails(run_tool("topics", "--list", data_dir=d), "edge-topics: error:", str(d))
    _fails(run_tool("topics", "--list"), "no log given", "EDGE_DATA_DIR")
    assert f.read_bytes() == b"precious"


# -- a commit that fails is never acknowledged --------------------------------------------------------

def test_a_failed_commit_is_not_acknowledged(log_dir: Path) -> None:
    # Fault injection in SQL: the insert of the records fails, after offsets were
    # assigned in memory.  The send must fail, not report them.
    with sqlite3.connect(log_dir / "log.db") as c:
        c.execute("CREATE TRIGGER boom BEFORE INSERT ON records"
                  " BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    c.close()
    with KafkaProducer(data_dir=log_dir) as producer:
        fut = producer.send("keep", b"lost", partition=0)
        with pytest.raises(StorageError, match="injected failure"):
            fut.get(10)
        assert fut.failed() and not fut.succeeded()
    with sqlite3.connect(log_dir / "log.db") as c:
        c.execute("DROP TRIGGER boom")
    c.close()
    _intact(log_dir)
    with KafkaProducer(data_dir=log_dir) as producer:
        assert producer.send("keep", b"four", partition=0).get(10).offset == 3
