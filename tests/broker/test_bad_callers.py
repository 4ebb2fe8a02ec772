"""Callers that get things wrong: each wrong type or value is a typed error at the call,
a CLI gets one line on stderr and a non-zero exit, and the log is left as it was.

test_bad_input.py covers bad topic configs, partition counts, corrupt and locked
databases; this file walks the rest of the public API and every CLI flag.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import (
    DROP_LEDGER_TOPIC,
    BrokerError,
    ConfigError,
    GroupIdNotFoundError,
    InvalidPartitionsError,
    InvalidTopicError,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    NewPartitions,
    NewTopic,
    OffsetAndMetadata,
    SerializationError,
    StorageError,
    TopicConfig,
    TopicPartition,
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


# -- the rest of the API: typed errors at the call ------------------------------------------------------

TP = TopicPartition("keep", 0)

BAD_CALLS = [
    # (what to call, error, needle)
    (lambda c, a: c.subscribe(pattern="("), ConfigError, "subscribe: pattern '(' is not a regular expression"),
    (lambda c, a: c.subscribe(topics=["a b"]), InvalidTopicError, "invalid topic name 'a b'"),
    (lambda c, a: c.assign(["keep"]), ConfigError, "assign: expected a TopicPartition(topic, partition), got 'keep'"),
    (lambda c, a: c.assign(TP), ConfigError, "assign: expected a list, got TopicPartition"),
    (lambda c, a: c.assign([("keep", True)]), ConfigError, "got ('keep', True)"),
    (lambda c, a: c.seek(TP, True), ConfigError, "seek: offset must be a non-negative integer, got True"),
    (lambda c, a: c.seek(TP, -5), ConfigError, "got -5"),
    (lambda c, a: c.poll(timeout_ms="x"), ConfigError, "poll: timeout_ms: expected a number >= 0, got 'x'"),
    (lambda c, a: c.poll(timeout_ms=-1), ConfigError, "got -1"),
    (lambda c, a: c.poll(max_records=0), ConfigError, "poll: max_records: expected an integer >= 1 or None, got 0"),
    (lambda c, a: c.poll_raw(max_records="5"), ConfigError, "got '5'"),
    (lambda c, a: c.offsets_for_times({TP: "x"}), ConfigError, "timestamp_ms: expected an integer"),
    (lambda c, a: c.commit({TP: "x"}), ConfigError, "commit: offset for keep[0]: expected an offset (a non-negative integer), got 'x'"),
    (lambda c, a: c.commit({TP: -5}), ConfigError, "got -5"),
    (lambda c, a: c.commit({TP: True}), ConfigError, "got True"),
    (lambda c, a: c.commit({TP: OffsetAndMetadata(3, 5)}), ConfigError, "metadata for keep[0]: expected a str, got 5"),
    (lambda c, a: c.commit({TopicPartition("nope", 0): 1}), UnknownTopicOrPartitionError,
     "commit: no partition 0 of topic 'nope' in this log; nothing was committed"),
    (lambda c, a: c.commit({TopicPartition("keep", 2): 1}), UnknownTopicOrPartitionError, "no partition 2 of topic 'keep'"),
    (lambda c, a: c.commit([TP]), ConfigError, "commit: expected a dict of TopicPartition to offset"),
    (lambda c, a: c.pause("keep"), ConfigError, "pause: expected a TopicPartition"),
    (lambda c, a: a.create_partitions({"keep": NewPartitions("5")}), InvalidPartitionsError,
     "topic 'keep': NewPartitions.total_count must be an integer from 1 to 10000 (the most a topic may have here), got '5'"),
    (lambda c, a: a.create_partitions({"keep": NewPartitions(2_000_000)}), InvalidPartitionsError, "got 2000000"),
    (lambda c, a: a.create_partitions({"keep": 5}), ConfigError, "'keep': expected NewPartitions(total_count), got 5"),
    (lambda c, a: a.create_topics([NewTopic("big", 2_000_000)]), InvalidPartitionsError, "got 2000000"),
    (lambda c, a: a.create_topics(NewTopic("one", 1)), ConfigError, "create_topics: expected a list of NewTopic"),
    (lambda c, a: a.create_topics(["keep"]), ConfigError, "expected NewTopic(name, num_partitions), got 'keep'"),
    (lambda c, a: a.create_topics([NewTopic("r", 1, True)]), ConfigError, "replication_factor True is not possible"),
    (lambda c, a: a.create_topics([NewTopic("c", 1, 1, None, ["retention.ms=5"])]), ConfigError,
     "topic_configs: expected a dict"),
    (lambda c, a: a.create_topics([NewTopic(DROP_LEDGER_TOPIC, 1)]), InvalidTopicError,
     "'__drop_ledger' is the log's own (it records what the log dropped): it cannot be created by a client"),
    (lambda c, a: a.delete_topics([DROP_LEDGER_TOPIC]), InvalidTopicError, "it cannot be deleted"),
    (lambda c, a: a.create_partitions({DROP_LEDGER_TOPIC: NewPartitions(2)}), InvalidTopicError, "given partitions"),
    (lambda c, a: a.delete_topics("keep"), ConfigError, "delete_topics: expected a list of names, got 'keep'"),
    (lambda c, a: a.describe_topics("keep"), ConfigError, "describe_topics: expected a list of names"),
    (lambda c, a: a.alter_topic_config("keep", "retention.ms=5"), ConfigError, "expected a dict of config name"),
    (lambda c, a: a.alter_consumer_group_offsets("g", {TP: -5}), ConfigError, "offset for keep[0]"),
    (lambda c, a: a.alter_consumer_group_offsets("", {TP: 1}), ConfigError, "group_id: expected a non-empty str, got ''"),
    (lambda c, a: a.reset_consumer_group_offsets("g", ["keep"], "offset", True), ConfigError, "got True"),
    (lambda c, a: a.reset_consumer_group_offsets("g", "keep", "earliest"), ConfigError, "expected a list of names"),
    (lambda c, a: a.delete_consumer_groups(["nope"]), GroupIdNotFoundError, "consumer group 'nope' does not exist"),
    (lambda c, a: a.describe_consumer_group(None), ConfigError, "group_id: expected a non-empty str, got None"),
]


@pytest.mark.parametrize(("call", "error", "needle"), BAD_CALLS, ids=[n[:50] for _c, _e, n in BAD_CALLS])
def test_api_calls_with_wrong_types_or_values_raise_typed_errors(log_dir: Path, call: Callable, error: type,
                                                                 needle: str) -> None:
    before = _stored(log_dir)
    with KafkaConsumer(data_dir=log_dir, group_id="g") as consumer, KafkaAdminClient(data_dir=log_dir) as admin:
        with pytest.raises(error, match=re.escape(needle)):
            call(consumer, admin)
        assert admin.list_topics() == ["keep"]
        assert admin.list_consumer_groups() == []
        assert len(admin.describe_topics(["keep"])[0].partitions) == 2
    assert _stored(log_dir) == before


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"consumer_timeout_ms": "x"}, "consumer_timeout_ms: expected a number >= 0, got 'x'"),
    ({"auto_commit_interval_ms": -1}, "auto_commit_interval_ms: expected a number >= 0, got -1"),
    ({"enable_auto_commit": "no"}, "enable_auto_commit: expected True or False, got 'no'"),
    ({"group_id": ""}, "group_id: expected a non-empty str"),
    ({"max_poll_records": True}, "max_poll_records: expected an integer >= 1, got True"),
    ({"value_deserializer": "json"}, "value_deserializer: expected a function of bytes, got 'json'"),
])
def test_consumer_options_of_the_wrong_type_are_refused(log_dir: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        KafkaConsumer("keep", data_dir=log_dir, **kwargs)


def test_a_producer_with_wrong_types_is_refused(log_dir: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("value_serializer: expected a function returning bytes, got 'json'")):
        KafkaProducer(data_dir=log_dir, value_serializer="json")
    with KafkaProducer(data_dir=log_dir) as producer:
        fut = producer.send("keep", b"x")
        for bad in ("10", -1, float("nan")):
            with pytest.raises(ConfigError, match=re.escape(f"get: timeout: expected seconds >= 0 or None, got {bad!r}")):
                fut.get(bad)
            with pytest.raises(ConfigError, match=re.escape(f"flush: timeout: expected seconds >= 0 or None, got {bad!r}")):
                producer.flush(bad)
        assert fut.get(10).offset == 1


# -- anything at all: a BrokerError or an answer, never another exception ---------------------------------

_junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5), st.binary(max_size=5), st.just("keep"), st.just(TP), st.just(DROP_LEDGER_TOPIC),
    st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3), st.just(TP)), max_size=2),
    st.dictionaries(st.one_of(st.text(max_size=3), st.just(TP)), st.one_of(st.integers(-3, 3), st.text(max_size=3)),
                    max_size=2),
)

_METHODS = {
    "producer": ["send", "flush", "partitions_for"],
    "consumer": ["subscribe", "assign", "seek", "position", "beginning_offsets", "end_offsets", "highwater",
                 "offsets_for_times", "pause", "resume", "poll", "poll_raw", "committed", "commit",
                 "partitions_for_topic"],
    "admin": ["create_topics", "delete_topics", "describe_topics", "create_partitions", "alter_topic_config",
              "alter_configs", "describe_configs", "list_consumer_group_offsets", "describe_consumer_group",
              "alter_consumer_group_offsets", "reset_consumer_group_offsets", "delete_consumer_groups",
              "protect_consumer_group", "read_state_store", "delete_state_stores"],
}
_METHODS["transaction"] = ["send", "commit_offsets", "put_state"]
_CALLS = [(client, name) for client, names in _METHODS.items() for name in names]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=st.sampled_from(_CALLS), args=st.lists(_junk, min_size=1, max_size=3))
def test_any_arguments_give_a_broker_error_or_an_answer(log_dir: Path, call: tuple[str, str], args: list) -> None:
    client, name = call
    with KafkaConsumer(data_dir=log_dir, group_id="g") as consumer, KafkaAdminClient(data_dir=log_dir) as admin, \
            KafkaProducer(data_dir=log_dir) as producer:
        txn = producer.begin_transaction()
        target = {"producer": producer, "consumer": consumer, "admin": admin, "transaction": txn}[client]
        if name.startswith("poll") and isinstance(args[0], int | float) and not isinstance(args[0], bool) \
                and args[0] > 10:
            args[0] = 10  # a long wait is a right answer, not one to wait for here
        try:
            result = getattr(target, name)(*args)
            if name == "send" and client == "producer":
                result.get(10)
            if client == "transaction":
                txn.commit()
        except BrokerError:
            pass
        except TypeError as exc:  # a wrong number of arguments is Python's to say
            assert "positional argument" in str(exc), exc


# -- every CLI flag: one line on stderr, exit 1, the log unchanged ---------------------------------------

BAD_CLI = [
    (("topics", "--create", "--topic", "big", "--partitions", "10001"), "got 10001"),
    (("topics", "--create", "--topic", DROP_LEDGER_TOPIC), "'__drop_ledger' is the log's own"),
    (("topics", "--delete", "--topic", DROP_LEDGER_TOPIC), "it cannot be deleted by a client"),
    (("topics", "--create", "--topic", "a b"), "invalid topic name 'a b'"),
    (("topics", "--alter", "--topic", "keep", "--partitions", "99999999999999999999"), "got 99999999999999999999"),
    (("console-producer", "--topic", "keep", "--property", "parse.key=true", "--property", "key.separator="),
     "--property key.separator: expected at least one character, got ''"),
    (("console-producer", "--topic", "keep", "--property", "parse.key=yes"),
     "--property parse.key: expected true or false, got 'yes'"),
    (("console-producer", "--topic", "keep", "--property", "parse.keys=true"),
     "--property parse.keys: unknown property; expected one of ignore.error, key.separator, parse.key"),
    (("console-producer", "--topic", DROP_LEDGER_TOPIC), "'__drop_ledger' is written by the log itself"),
    (("console-consumer", "--topic", "keep", "--max-messages", "0"), "--max-messages: expected an integer >= 1, got 0"),
    (("console-consumer", "--topic", "keep", "--timeout-ms", "-1"), "--timeout-ms: expected an integer >= 0, got -1"),
    (("console-consumer", "--topic", "keep", "--partition", "-1"), "--partition: expected an integer >= 0, got -1"),
    (("console-consumer", "--topic", "keep", "--partition", "2"), "no partition 2 of topic 'keep'"),
    (("console-consumer", "--topic", "keep", "--offset", "0"), "--offset needs --partition"),
    (("console-consumer", "--topic", "keep", "--partition", "0", "--offset", "-5"),
     "seek: offset must be a non-negative integer, got -5"),
    (("console-consumer", "--topic", "a b", "--timeout-ms", "0"), "invalid topic name 'a b'"),
    (("console-consumer", "--topic", "keep", "--property", "print.keys=true"), "--property print.keys: unknown property"),
    (("console-consumer", "--topic", "keep", "--group", ""), "group_id: expected a non-empty str, got ''"),
    (("consumer-groups", "--delete", "--group", "nope"), "consumer group 'nope' does not exist"),
    (("consumer-groups", "--describe", "--group", "nope"), "consumer group 'nope' does not exist"),
    (("consumer-groups", "--reset-offsets", "--group", "g", "--topic", "keep", "--to-offset", "-5", "--execute"),
     "reset to offset: value: expected an offset (a non-negative integer), got -5"),
    (("consumer-groups", "--reset-offsets", "--group", "g", "--topic", "keep", "--to-timestamp", "-1", "--execute"),
     "reset to timestamp: value: expected ms since the epoch (>= 0), got -1"),
    (("consumer-groups", "--reset-offsets", "--group", "g", "--topic", "keep", "--to-datetime", "1960-01-01",
      "--execute"), "reset to timestamp: value: expected ms since the epoch (>= 0), got -315619200000"),
    (("consumer-groups", "--reset-offsets", "--group", "nope", "--all-topics", "--to-earliest", "--execute"),
     "consumer group 'nope' has committed no offsets: --all-topics names no topic"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_CLI, ids=[" ".join(a)[:60] for a, _ in BAD_CLI])
def test_cli_refuses_with_one_line_and_exit_1(log_dir: Path, args: tuple[str, ...], needle: str) -> None:
    before = _stored(log_dir)
    proc = run_tool(*args, data_dir=log_dir, stdin="k\tv\n", timeout=30)
    err = _one_line_error(proc, f"edge-{args[0]}: error: ", needle)
    assert "Traceback" not in err and proc.stdout == b""
    assert _stored(log_dir) == before
    with KafkaAdminClient(data_dir=log_dir) as admin:
        assert admin.list_topics() == ["keep"] and admin.list_consumer_groups() == []
        assert len(admin.describe_topics(["keep"])[0].partitions) == 2


_OPTIONS = {
    KafkaConsumer: ["group_id", "auto_offset_reset", "enable_auto_commit", "auto_commit_interval_ms",
                    "key_deserializer", "value_deserializer", "consumer_timeout_ms", "max_poll_records"],
    KafkaProducer: ["key_serializer", "value_serializer"],
    LogConfig: ["durability", "quota_bytes", "full_policy", "default_partitions", "default_topic_config",
                "auto_create_topics", "retention_check_interval_s", "busy_timeout_s"],
    TopicConfig: ["retention_ms", "retention_bytes", "priority"],
}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_options_give_a_config_error_or_an_object(log_dir: Path, data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(list(_OPTIONS)))
    kwargs = data.draw(st.dictionaries(st.sampled_from(_OPTIONS[cls]), _junk, min_size=1, max_size=3))
    if cls is not TopicConfig:
        kwargs["data_dir"] = log_dir
    try:
        made = cls(**kwargs)
    except ConfigError:
        return
    if hasattr(made, "close"):
        made.close()


def test_a_callback_that_raises_is_logged_and_the_log_goes_on(log_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Callbacks run in the writer thread: one that raised ended it, and every later send waited forever.
    def boom(*_: object) -> None:
        raise ZeroDivisionError("a bug in the caller's callback")
    seen: list[int] = []
    with KafkaProducer(data_dir=log_dir) as producer:
        with pytest.raises(ConfigError, match="a callback must be callable, got 'log it'"):
            producer.send("keep", b"x").add_callback("log it")
        with caplog.at_level(logging.ERROR, logger="broker"):
            fut = producer.send("keep", b"a", partition=0)
            fut.add_callback(boom).add_both(boom).add_callback(lambda m: seen.append(m.offset))
            producer.send("keep", b"b", partition=1, key=b"k").add_errback(boom)
            assert producer.send("keep", b"c", partition=0).get(10).offset == 3
            fut.add_callback(boom)  # added after it completed: runs in the caller's thread, logged too
    assert seen == [2]
    raised = [r for r in caplog.records if "a callback of a record sent to 'keep' raised" in r.getMessage()]
    assert len(raised) == 3 and all(r.exc_info[0] is ZeroDivisionError for r in raised)


def test_a_deserializer_that_fails_stops_at_its_record_and_skips_nothing(log_dir: Path) -> None:
    with KafkaAdminClient(data_dir=log_dir) as admin:
        admin.create_topics([NewTopic("js", 2)])
    with KafkaProducer(data_dir=log_dir) as producer:
        for v in (b"2", b"3", b"not json", b"5"):
            producer.send("js", v, partition=0)
        producer.send("js", b"7", partition=1).get(10)
    with KafkaConsumer(data_dir=log_dir, value_deserializer=json.loads) as consumer:
        tps = [TopicPartition("js", 1), TopicPartition("js", 0)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = [r.value for recs in consumer.poll(0).values() for r in recs]
        assert sorted(got) == [2, 3, 7]  # the records before the bad one, and the other partition's
        for _ in range(2):  # it stays at the bad record: each poll says so, nothing is skipped
            with pytest.raises(SerializationError, match=re.escape(
                    "a deserializer failed on js[0] offset 2: JSONDecodeError")) as info:
                consumer.poll(0)
            assert "seek to 3 to skip it" in str(info.value)
        consumer.seek(tps[1], 3)
        assert [r.value for recs in consumer.poll(0).values() for r in recs] == [5]
