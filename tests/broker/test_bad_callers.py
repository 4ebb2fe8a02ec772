"""Callers that get things wrong: each wrong type or value is a typed error at the call,
a CLI gets one line on stderr and a non-zero exit, and the log is left as it was.

test_bad_input.py covers bad topic configs, partition counts, corrupt and locked
databases; this file walks the rest of the public API and every CLI flag.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import (
    DROP_LEDGER_TOPIC,
    ConfigError,
    InvalidTopicError,
    KafkaAdminClient,
    KafkaProducer,
    NewTopic,
    SerializationError,
    StorageError,
    UnknownTopicOrPartitionError,
)

from ._helpers import REPO, run_tool


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, f"exit {proc.returncode}, stderr {err!r}"
    assert err.count("\n") == 1, f"not one line: {err!r}"
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


# -- where the log is -----------------------------------------------------------------------------

def test_bootstrap_server_host_port_says_what_to_pass_and_creates_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EDGE_DATA_DIR"}
    env["PYTHONPATH"] = str(REPO)
    for tool, args in [("topics", ["--list"]), ("topics", ["--create", "--topic", "t"]),
                       ("console-producer", ["--topic", "t"]), ("consumer-groups", ["--list"])]:
        proc = subprocess.run([sys.executable, "-m", "broker", tool, "--bootstrap-server", "localhost:9092", *args],
                              capture_output=True, cwd=tmp_path, env=env, input=b"x\n", timeout=60)
        _one_line_error(proc, "--bootstrap-server localhost:9092: this tool reads the box's log directory",
                        "pass --data-dir DIR")
    assert list(tmp_path.iterdir()) == []


def test_bootstrap_server_naming_the_log_directory_works(tmp_path: Path) -> None:
    d = tmp_path / "log"
    assert run_tool("topics", "--create", "--topic", "t", data_dir=d).returncode == 0
    proc = run_tool("topics", "--bootstrap-server", str(d), "--list")
    assert proc.returncode == 0 and proc.stdout == b"t\n", proc


# -- send(): wrong types and values are refused at the call --------------------------------------

@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A log with topic 'keep' (2 partitions) holding one record."""
    d = tmp_path / "log"
    with KafkaAdminClient(data_dir=d) as admin:
        admin.create_topics([NewTopic("keep", 2)])
    with KafkaProducer(data_dir=d) as producer:
        producer.send("keep", b"one", partition=0).get(10)
    return d


def _stored(d: Path) -> list[tuple]:
    with sqlite3.connect(d / "log.db") as c:
        rows = c.execute("SELECT topic, partition, offset, typeof(timestamp), key, value, headers"
                         " FROM records ORDER BY topic, partition, offset").fetchall()
    c.close()
    return rows


BAD_SENDS = [
    ({"timestamp_ms": "abc"}, ConfigError, "timestamp_ms: expected an integer of ms since the epoch, got 'abc' (str)"),
    ({"timestamp_ms": 1.5}, ConfigError, "got 1.5 (float)"),
    ({"timestamp_ms": True}, ConfigError, "got True (bool)"),
    ({"timestamp_ms": -5}, ConfigError, "expected 0 to 2**63-1 ms since the epoch (as Kafka), got -5"),
    ({"timestamp_ms": 2**63}, ConfigError, f"got {2**63}"),
    ({"timestamp_ms": 2**70}, ConfigError, f"got {2**70}"),
    ({"partition": True}, ConfigError, "partition: expected an integer or None, got True"),
    ({"partition": "0"}, ConfigError, "got '0'"),
    ({"partition": 1.0}, ConfigError, "got 1.0"),
    ({"partition": -1}, ConfigError, "partition: expected 0 to 9999 (or None), got -1"),
    ({"partition": 2**64}, ConfigError, f"got {2**64}"),
    ({"partition": 2}, UnknownTopicOrPartitionError, "topic 'keep' has partitions 0..1, not 2"),
    ({"headers": "abc"}, SerializationError, "headers: expected a list of (str, bytes) pairs, got str"),
    ({"headers": {"h": b"v"}}, SerializationError, "got dict"),
    ({"headers": 5}, SerializationError, "got int"),
    ({"headers": [("h", "text")]}, SerializationError, "headers must be (str, bytes) pairs, got ('h', 'text')"),
    ({"headers": [(1, b"v")]}, SerializationError, "got (1, b'v')"),
    ({"headers": [("h", b"v", b"w")]}, SerializationError, "got ('h', b'v', b'w')"),
    ({"topic": ""}, InvalidTopicError, "invalid topic name ''"),
    ({"topic": "a b"}, InvalidTopicError, "invalid topic name 'a b'"),
    ({"topic": None}, InvalidTopicError, "invalid topic name None"),
    ({"topic": 5}, InvalidTopicError, "invalid topic name 5"),
    ({"topic": DROP_LEDGER_TOPIC}, InvalidTopicError, "'__drop_ledger' is written by the log itself"),
    ({"value": "text"}, SerializationError, "value for topic 'keep' is str, not bytes"),
    ({"key": 5}, SerializationError, "key for topic 'keep' is int, not bytes"),
]


@pytest.mark.parametrize(("kwargs", "error", "needle"), BAD_SENDS, ids=[repr(k) for k, _, _ in BAD_SENDS])
def test_send_refuses_wrong_types_and_values_at_the_call(log_dir: Path, kwargs: dict, error: type,
                                                        needle: str) -> None:
    args = {"topic": "keep", "value": b"v", **kwargs}
    before = _stored(log_dir)
    with KafkaProducer(data_dir=log_dir) as producer:
        with pytest.raises(error, match=re.escape(needle)):
            producer.send(**args)
        txn = producer.begin_transaction()
        if error is UnknownTopicOrPartitionError:  # a transaction places its records at commit
            txn.send(**args)
            with pytest.raises(error, match=re.escape(needle)):
                txn.commit()
        else:
            with pytest.raises(error, match=re.escape(needle)):
                txn.send(**args)
            txn.abort()
    assert _stored(log_dir) == before


# -- a record the log refuses fails alone -----------------------------------------------------------

@pytest.fixture
def refusing_log(log_dir: Path) -> Path:
    """The log, with what send() cannot see: a constraint of the database refusing value b'bad'."""
    with sqlite3.connect(log_dir / "log.db") as c:
        c.execute("CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.value = x'626164'"
                  " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    c.close()
    return log_dir


@pytest.fixture
def lock_holder(refusing_log: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the log's write lock until a line is written to its stdin."""
    code = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(refusing_log / 'log.db')!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
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


def test_a_record_the_log_refuses_fails_alone_not_its_whole_group_commit(
        log_dir: Path, lock_holder: subprocess.Popen) -> None:
    with KafkaProducer(data_dir=log_dir) as producer:
        # While another process holds the write lock, the writer waits with a first record
        # and everything sent meanwhile queues up for one group commit.
        first = producer.send("keep", b"first", partition=0)
        good = [producer.send("keep", b"%d" % i, partition=i % 2) for i in range(50)]
        bad = producer.send("keep", b"bad", partition=0)
        # What got past send() before: an int beyond 64 bits (now refused by send() itself).
        huge = producer._log.append("keep", 1, None, b"huge", None, 2**70)
        good += [producer.send("keep", b"%d" % i, partition=i % 2) for i in range(50, 100)]
        commits = producer.metrics()["commits"]
        lock_holder.stdin.write(b"go\n")
        lock_holder.stdin.flush()
        assert first.get(10).offset == 1
        for fut, error in ((bad, "refused by a trigger"), (huge, "Python int too large")):
            with pytest.raises(StorageError, match=f"the log refused this record .*{error}.*"
                                                   "records sent with it were written without it"):
                fut.get(10)
            assert fut.offset == -1
        meta = [f.get(10) for f in good]
        assert producer.metrics()["commits"] > commits + 2  # the 101 shared a commit that failed
    for part in (0, 1):  # the good ones, in the order sent, without a gap
        got = [(m.offset, g) for m, g in zip(meta, range(100), strict=True) if m.partition == part]
        assert [o for o, _ in got] == list(range(2 if part == 0 else 0, 2 + len(got) if part == 0 else len(got)))
    values = [v for _t, _p, _o, _ts, _k, v, _h in _stored(log_dir)]
    assert values == [b"one", b"first", *(b"%d" % i for i in range(0, 100, 2)), *(b"%d" % i for i in range(1, 100, 2))]
