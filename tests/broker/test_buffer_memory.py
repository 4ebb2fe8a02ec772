"""``KafkaProducer(buffer_memory=..., max_block_ms=...)``: the queue of records not yet
committed is bounded, as kafka-python's is, so no caller can grow the box's memory.

The writer is held by a real second process that keeps SQLite's write lock (what another
appliance process or a ``sqlite3`` shell would do), not by a mock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from broker import ConfigError, KafkaProducer, KafkaTimeoutError, LogConfig

from ._helpers import REPO, read_all

VALUE = b"v" * 1000
SMALL_BUFFER = 4 * 1024  # room for 3 records of VALUE with their overhead, not 4

_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the log's write lock until the block ends."""
    with subprocess.Popen([sys.executable, "-c", _HOLDER, str(data_dir / "log.db")],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            yield holder
        finally:
            if holder.poll() is None:
                release(holder)


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=30)


def test_send_blocks_while_the_buffer_is_full_and_proceeds_when_the_writer_drains(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path, busy_timeout_s=60)
    with KafkaProducer(log_config=cfg, buffer_memory=SMALL_BUFFER) as producer:
        producer.send("t", b"warm-up").get(10)  # creates the topic and the file
        with write_lock_held(tmp_path) as holder:
            queued = [producer.send("t", VALUE) for _ in range(3)]  # fit: no wait
            sent: list[object] = []
            sender = threading.Thread(target=lambda: sent.append(producer.send("t", b"fourth" + VALUE)))
            sender.start()
            sender.join(0.5)
            assert sender.is_alive(), "send() returned although the buffer was full"
            assert not any(f.is_done for f in queued)
            release(holder)
            sender.join(60)
            assert not sender.is_alive()
        producer.flush()
        assert all(f.succeeded() for f in queued)
    values = [r.value for r in read_all(cfg, "t")]
    assert values == [b"warm-up", VALUE, VALUE, VALUE, b"fourth" + VALUE]


def test_send_times_out_with_kafka_timeout_error_when_the_writer_cannot_drain(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path, busy_timeout_s=60)
    with KafkaProducer(log_config=cfg, buffer_memory=SMALL_BUFFER, max_block_ms=200) as producer:
        producer.send("t", b"warm-up").get(10)
        with write_lock_held(tmp_path) as holder:
            queued = [producer.send("t", VALUE) for _ in range(3)]
            with pytest.raises(KafkaTimeoutError, match="buffer_memory=4,096.*max_block_ms=200") as err:
                producer.send("t", VALUE)
            assert err.value.retriable
            release(holder)
        producer.flush()
        assert all(f.succeeded() for f in queued)
        # the room the committed records held is free again: sends go on without waiting
        producer.send("t", b"after").get(10)
    assert [r.value for r in read_all(cfg, "t")][-1] == b"after"


def test_a_record_larger_than_the_buffer_is_sent_alone(tmp_path: Path) -> None:
    with KafkaProducer(data_dir=tmp_path, buffer_memory=100, max_block_ms=0) as producer:
        assert producer.send("t", VALUE).get(10).offset == 0
        assert producer.send("t", VALUE).get(10).offset == 1


@pytest.mark.parametrize(("option", "value"), [("buffer_memory", 0), ("buffer_memory", "32m"),
                                                ("max_block_ms", -1), ("max_block_ms", 1.5)])
def test_bad_bounds_are_refused_with_the_value(tmp_path: Path, option: str, value: object) -> None:
    bad: dict[str, Any] = {option: value}  # the wrong types are the point
    with pytest.raises(ConfigError, match=f"{option}: expected an integer.*got {value!r}"):
        KafkaProducer(data_dir=tmp_path, **bad)


_QUEUE_200K = """
import json, sys
from broker import KafkaProducer
with KafkaProducer(data_dir=sys.argv[1]) as producer:
    for i in range(200_000):
        # a distinct 1 KB value each: unbounded, the queue alone would hold ~250 MB
        producer.send("t", i.to_bytes(8, "big") * 128, key=b"dev-%d" % (i % 100))
    producer.flush()
    n = producer.metrics()["records"]
with open("/proc/self/status") as f:  # VmHWM: ru_maxrss carries the parent's peak across exec
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(json.dumps({"records": n, "peak_rss_mb": hwm / 1024}))
"""


def test_memory_stays_bounded_when_a_caller_queues_200000_records(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _QUEUE_200K, str(tmp_path)], capture_output=True,
                         text=True, check=True, timeout=600, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["records"] == 200_000
    # 32 MiB of queue, the interpreter, SQLite's cache: generous, and far below the
    # ~250 MB the same loop peaks at without the bound.
    assert res["peak_rss_mb"] < 120, res
