"""Several processes on one log: a writer killed mid-stream, two writers at once, a reader woken by commits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from broker import KafkaAdminClient, KafkaProducer, LogConfig, NewTopic, default_partition

from ._helpers import REPO, read_all

# A writer that keeps about 100 sends in flight and prints each record once
# its future resolved: "partition offset value".  Those lines are the records
# the process was told are durable.
WRITER = r"""
import sys, threading
from broker import KafkaProducer
data_dir, topic, prefix, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = threading.Lock()
def acked(value, md):
    with out:
        sys.stdout.write(f"{md.partition} {md.offset} {value}\n")
        sys.stdout.flush()
producer = KafkaProducer(data_dir=data_dir)
print("ready", flush=True)
sys.stdin.readline()  # go
last = None
for i in range(limit):
    value = f"{prefix}-{i}"
    key = None if prefix.startswith("nokey") else f"dev-{i % 7}".encode()
    last = producer.send(topic, value.encode(), key=key).add_callback(acked, value)
    if i % 100 == 99:
        last.get(30)
producer.close()
"""

READER = r"""
import sys, time
from broker import KafkaConsumer
consumer = KafkaConsumer(sys.argv[2], data_dir=sys.argv[1], auto_offset_reset="latest")
consumer.poll(timeout_ms=0)  # positions at the end now
waits = 0
real_wait = consumer._watcher.wait
def counting_wait(timeout_s):
    global waits
    waits += 1
    real_wait(timeout_s)
consumer._watcher.wait = counting_wait
print(f"ready {consumer._watcher.event_driven}", flush=True)
t0 = time.monotonic()
batch = consumer.poll(timeout_ms=20000)
elapsed = time.monotonic() - t0
got = time.time()
values = [r.value.decode() for recs in batch.values() for r in recs]
print(f"{elapsed:.3f} {waits} {got:.6f} {' '.join(values)}", flush=True)
consumer.close()
"""


def _start(script: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("ready"), f"child did not start: {line!r} {proc.stderr.read()}"
    proc.ready_line = line  # type: ignore[attr-defined]
    return proc


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=60)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f and not f.closed:
            f.close()
    return out, err


def _acks(text: str) -> list[tuple[int, int, str]]:
    # A line cut by SIGKILL has no newline: it was not a complete acknowledgement.
    lines = text.split("\n")[:-1]
    return [(int(p), int(o), v) for p, o, v in (line.split(" ") for line in lines)]


def _contiguous(cfg: LogConfig, topic: str) -> dict[int, list]:
    parts: dict[int, list] = defaultdict(list)
    for r in read_all(cfg, topic):
        parts[r.partition].append(r)
    for p, recs in parts.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"gap or repeat in partition {p}"
    return parts


def test_every_acknowledged_record_survives_sigkill_and_offsets_continue(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with KafkaAdminClient(data_dir=d) as admin:
        admin.create_topics([NewTopic("t", 3)])
    proc = _start(WRITER, str(d), "t", "w", "1000000")
    proc.stdin.write("go\n")
    proc.stdin.flush()
    acked = []
    while len(acked) < 300:  # read acknowledgements as they come, then kill mid-stream
        line = proc.stdout.readline()
        assert line, f"writer ended early: {proc.stderr.read()}"
        acked.append(line)
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = _finish(proc)
    assert proc.returncode == -signal.SIGKILL
    acks = _acks("".join(acked) + rest)
    assert len(acks) >= 300

    cfg = LogConfig(data_dir=d)
    parts = _contiguous(cfg, "t")
    stored = {(r.partition, r.offset): r for recs in parts.values() for r in recs}
    for p, o, v in acks:
        r = stored.get((p, o))
        assert r is not None, f"acknowledged record {v} at {p}/{o} is missing"
        assert r.value == v.encode()
        assert p == default_partition(r.key, 3)
    values = [r.value for r in stored.values()]
    assert len(values) == len(set(values)), "a record was stored twice"
    # A new writer continues right after, in every partition.
    with KafkaProducer(data_dir=d) as producer:
        for p, recs in parts.items():
            assert producer.send("t", b"after", partition=p).get(10).offset == len(recs)
    _contiguous(cfg, "t")


def test_two_writer_processes_append_to_one_topic_at_once(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with KafkaAdminClient(data_dir=d) as admin:
        admin.create_topics([NewTopic("t", 2)])
    n = 400
    procs = [_start(WRITER, str(d), "t", prefix, str(n)) for prefix in ("nokey-a", "nokey-b")]
    for proc in procs:  # both are open and waiting: start them together
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = []
    for proc in procs:
        out, err = _finish(proc)
        assert proc.returncode == 0, err
        outs.append(_acks(out))
    assert [len(a) for a in outs] == [n, n]
    parts = _contiguous(LogConfig(data_dir=d), "t")
    stored = {(r.partition, r.offset): r.value.decode() for recs in parts.values() for r in recs}
    assert sorted(stored.values()) == sorted(f"{p}-{i}" for p in ("nokey-a", "nokey-b") for i in range(n))
    for acks in outs:
        for p, o, v in acks:
            assert stored[(p, o)] == v
    # Both processes' commits interleave in one partition: neither held the log for the whole run.
    owners = [v.split("-")[1] for (p, _o), v in sorted(stored.items()) if p == 0]
    assert {"a", "b"} <= set(owners)


def test_a_consumer_in_another_process_wakes_on_commit_without_polling(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with KafkaAdminClient(data_dir=d) as admin:
        admin.create_topics([NewTopic("t", 1)])
    proc = _start(READER, str(d), "t")
    assert proc.ready_line.split() == ["ready", "True"], "inotify is not working: CommitWatcher fell back to checks"
    time.sleep(0.5)  # let the reader block in poll(); a busy or 50 ms loop would wake ~10 times meanwhile
    with KafkaProducer(data_dir=d) as producer:
        producer.send("t", b"hello").get(10)
        committed = time.time()
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    elapsed, waits, got, *values = out.split()
    assert values == ["hello"]
    assert float(elapsed) < 5.0, f"poll returned after {elapsed} s: it waited for its timeout"
    assert float(got) - committed < 2.0
    # One wait woken by the commit (at most a couple with scheduling noise), not a loop of checks.
    assert int(waits) <= 3, f"{waits} wake-ups during one poll"
