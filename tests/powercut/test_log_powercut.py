"""The log under real power cuts: what the broker API acknowledged is there after the power comes back.

A writer process (``_writer.py``) works on a log on the power-cut
filesystem; at a random moment it is frozen (what it printed is what the
outside world was told), the power is cut (everything not fsynced is
gone), it is killed, and the filesystem comes back with the durable state
alone.  Then the log must open, pass SQLite's integrity check, hold every
acknowledged record, topic, group commit and transaction (whole: its
records, offsets and state row together), and number each partition's
offsets without a gap; and the next writer carries on from there.  The
first cut of each seed may fall while the log is being created; half the
cuts are torn (a random part of the unsynced writes reaches the disk).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from broker import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from tests.fixtures.lazyfs_mount import REPO, LazyFs

CUTS_PER_SEED = 4
LONGEST_RUN_S = 1.5


def _start_writer(data_dir: Path, cycle: int, seed: int, commit_interval_ms: int = 0) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.powercut._writer", str(data_dir), str(cycle), str(seed)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "POWERCUT_COMMIT_INTERVAL_MS": str(commit_interval_ms)},
    )
    line = proc.stdout.readline()
    if line != "ready\n":
        proc.kill()
        raise AssertionError(f"writer did not start: {line!r} {proc.communicate()[1]}")
    return proc


def _power_cut(fs: LazyFs, proc: subprocess.Popen, keep: float = 0.0,
               seed: int = 0) -> tuple[list[str], dict, str]:
    """Freeze the writer, cut the power, kill the writer: (its complete lines, what the cut dropped, stderr)."""
    proc.send_signal(signal.SIGSTOP)  # nothing it does from here on reaches the outside world
    lost = fs.cut(keep=keep, seed=seed)
    proc.kill()
    out, err = proc.communicate(timeout=30)
    return out.split("\n")[:-1], lost, err  # a line cut short by the kill was never said


class Acked:
    """Everything the writers were told was durable, over all cycles."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, int, int], str] = {}
        self.topics: set[str] = set()
        self.group: dict[tuple[str, int], int] = {}
        self.eos = 0  # the last transaction's input offset

    def add(self, lines: list[str]) -> int:
        n = 0
        for line in lines:
            kind, *f = line.split(" ")
            if kind == "rec":
                key = (f[0], int(f[1]), int(f[2]))
                assert key not in self.records, f"{key} acknowledged twice: {self.records[key]} and {f[3]}"
                self.records[key] = f[3]
                n += 1
            elif kind == "topic":
                self.topics.add(f[0])
            elif kind == "group":
                self.group[(f[1], int(f[2]))] = int(f[3])
            elif kind == "eos":
                self.eos = int(f[0])
        return n


def _check(data_dir: Path, acked: Acked, where: str) -> int:
    """Assert the log after a cut holds all it acknowledged; returns how many records it holds."""
    db = data_dir / "log.db"
    if not acked.topics and not acked.records and not db.exists():
        return 0  # cut before the log acknowledged anything: nothing is owed
    # The log opens what the cut left, as the next start of the box does (a cut during the
    # log's creation included), and SQLite finds nothing wrong in it.
    with KafkaAdminClient(data_dir=data_dir) as admin:
        topics = set(admin.list_topics())
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], where
    finally:
        conn.close()
    assert acked.topics <= topics, f"{where}: topics {acked.topics - topics} were created and are gone"
    stored: dict[tuple[str, int, int], str] = {}
    with KafkaConsumer(data_dir=data_dir, auto_offset_reset="earliest") as consumer:
        tps = [TopicPartition(t, p) for t in sorted(topics) if not t.startswith("__")
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=1000)
            assert batch, f"{where}: poll returned nothing short of the end offsets {ends}"
            for recs in batch.values():
                for r in recs:
                    stored[(r.topic, r.partition, r.offset)] = r.value.decode()
    per_partition: dict[tuple[str, int], list[int]] = defaultdict(list)
    for t, p, o in stored:
        per_partition[(t, p)].append(o)
    for tp, offs in per_partition.items():
        assert sorted(offs) == list(range(len(offs))), f"{where}: offsets of {tp} have a gap: {sorted(offs)[:20]}..."
    missing = {k: v for k, v in acked.records.items() if stored.get(k) != v}
    assert not missing, (f"{where}: {len(missing)} of {len(acked.records)} acknowledged records are lost "
                         f"or changed, e.g. {sorted(missing.items())[:5]}")
    values = list(stored.values())
    assert len(values) == len(set(values)), f"{where}: a record is stored twice"
    if acked.group:
        with KafkaConsumer(data_dir=data_dir, group_id="g") as consumer:
            for (t, p), off in acked.group.items():
                got = consumer.committed(TopicPartition(t, p))
                assert got is not None and got >= off, f"{where}: group g committed {off} on {t}/{p}, has {got}"
    # A transaction is there whole or not at all: outputs, the group's offset and the state row.
    with KafkaConsumer(data_dir=data_dir, group_id="eos") as consumer:
        eos = consumer.committed(TopicPartition("t", 1)) or 0
    with KafkaAdminClient(data_dir=data_dir) as admin:
        state = admin.read_state_store("eos/count") if eos else {}
    assert eos >= acked.eos, f"{where}: transaction up to {acked.eos} acknowledged, group eos at {eos}"
    outs = [v for (t, _p, _o), v in sorted(stored.items()) if t == "out"]
    assert outs == [f"o-{i}" for i in range(eos)], f"{where}: group eos at {eos}, out holds {outs[-5:]}"
    assert state == ({b"n": str(eos).encode()} if eos else {}), f"{where}: eos at {eos}, state {state}"
    return len(stored)


# The last: appends wait up to 200 ms for company (LogConfig.commit_interval_ms), and
# still nothing is acknowledged before its commit is durable.
@pytest.mark.parametrize("seed,commit_interval_ms", [(1, 0), (2, 0), (3, 0), (4, 200)])
def test_every_acknowledged_record_survives_power_cuts(lazyfs: LazyFs, seed: int,
                                                       commit_interval_ms: int) -> None:
    rng = random.Random(seed)
    data_dir = lazyfs.mountpoint / "var" / "edge"  # made by the log itself, as on a fresh card
    acked = Acked()
    dropped = []
    for cycle in range(CUTS_PER_SEED):
        proc = _start_writer(data_dir, cycle, seed, commit_interval_ms)
        try:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            # The first cut of a seed falls early, often inside the log's creation.
            # A writer whose sends wait for a commit interval gets through less in that time.
            time.sleep(rng.uniform(0, 0.3 if cycle == 0 else LONGEST_RUN_S) * (3 if commit_interval_ms else 1))
            # Some cuts are torn: part of what was not synced gets through, in no order.
            lines, lost, err = _power_cut(lazyfs, proc, keep=rng.choice([0.0, 0.0, 0.5, 0.9]),
                                          seed=rng.randint(0, 1 << 30))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        acked.add(lines)
        dropped.append(lost["unsynced_pages"])
        lazyfs.mount()
        _check(data_dir, acked, f"seed {seed}, after cut {cycle + 1} (dropped {lost})")
    # The cuts threw real work away (else this tested nothing) and the log took acks between them.
    assert sum(dropped) > 0, f"no cut dropped anything: {dropped}"
    assert len(acked.records) > 100, f"only {len(acked.records)} records acknowledged in {CUTS_PER_SEED} runs"
    assert acked.eos > 0, "no transaction was acknowledged"
    # After the last cut the log goes on where it stopped.
    with KafkaProducer(data_dir=data_dir) as producer:
        md = producer.send("t", b"after", partition=0).get(10)
    held = [o for (t, p, o) in acked.records if (t, p) == ("t", 0)]
    assert md.offset >= (max(held) + 1 if held else 0)


ONE_RECORD = r"""
import sys, time
from broker import KafkaProducer
producer = KafkaProducer(data_dir=sys.argv[1])
md = producer.send("t", b"first", key=b"k").get(10)
print(f"rec t {md.partition} {md.offset} first", flush=True)
time.sleep(60)  # the power goes before it closes anything
"""


def test_a_new_data_dir_survives_a_cut_after_its_first_acknowledged_record(lazyfs: LazyFs) -> None:
    # SQLite fsyncs the directory that holds its WAL, never the ones above: a data dir the
    # log made had no durable name, and a cut took the whole log with every acknowledged record.
    data_dir = lazyfs.mountpoint / "var" / "lib" / "edge"
    proc = subprocess.Popen([sys.executable, "-c", ONE_RECORD, str(data_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        line = proc.stdout.readline()
        assert line.startswith("rec "), f"no acknowledgement: {line!r} {proc.stderr.read() if not line else ''}"
        lines, lost, _err = _power_cut(lazyfs, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert lost["unsynced_pages"] > 0  # the cut did drop something (log.notify, -shm)
    lazyfs.mount()
    acked = Acked()
    acked.add([line.strip(), *lines])
    assert _check(data_dir, acked, "after the first record") == 1


def test_a_log_is_made_where_directories_cannot_be_fsynced(tmp_path: Path) -> None:
    # The directory fsyncs above are the log's own; where a filesystem refuses them (EINVAL),
    # SQLite carries on, and so must the log rather than refuse to start.
    fs = LazyFs(tmp_path / "fs", dir_fsync_einval=True)
    try:
        fs.mount()
        data_dir = fs.mountpoint / "var" / "edge"
        with KafkaProducer(data_dir=data_dir) as producer:
            assert producer.send("t", b"x").get(10).offset == 0
    finally:
        fs.stop()
