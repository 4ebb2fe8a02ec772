"""Exactly once across crashes: a runner in a subprocess is killed with SIGKILL at 15 random moments,
restarted each time, then let finish; its output is byte for byte that of an uninterrupted run.

Run as ``python -m tests.streams.test_eos_kill DATA_DIR`` this module is the child: it runs the
topology below over DATA_DIR until the input is processed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from broker import KafkaAdminClient, KafkaConsumer, KafkaProducer, NewTopic
from edge.streams import HoppingWindows, Record, StreamsRunner, Topology

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 3000
PARTITIONS = 3
KILLS = 15  # each life processes at most ~175 records (2 ms each), so all 15 land mid-run
OUTPUTS = ["out.hot", "out.totals", "out.mean", "kill.late", "dead-letters"]


class RunningTotal:
    def initial_state(self) -> Any:
        return {"sum": 0.0, "n": 0}

    def apply(self, state: Any, record: Record) -> tuple[Any, list[Record]]:
        state["sum"] += record.value["c"]
        state["n"] += 1
        return state, [record.with_value(state)]


def _slow_checked(r: Record) -> Record:
    time.sleep(0.002)  # spread the run over seconds, so kills land everywhere in it
    if "bad" in r.value:
        raise ValueError(f"bad reading {r.value['bad']}")
    return r


def build_topology() -> Topology:
    t = Topology("kill")
    s = t.source("in").map(_slow_checked, name="check")
    s.filter(lambda r: r.value["c"] > 37.5, name="hot").to("out.hot")
    s.dedupe(2_000, id=lambda r: r.value["id"], name="dedupe").process(
        RunningTotal(), name="total").to("out.totals")
    s.group_by_key().windowed_by(HoppingWindows(1_000, 500, grace_ms=200)).aggregate(
        "mean", value=lambda r: r.value["c"], name="mean").to("out.mean")
    s.to_table("latest")
    return t


def write_input(data_dir: Path) -> None:
    """The same input, record for record, in every directory it is written to."""
    rng = random.Random(6)
    with KafkaAdminClient(data_dir) as admin:
        admin.create_topics([NewTopic("in", PARTITIONS)] +
                            [NewTopic(t, 2) for t in OUTPUTS])
    with KafkaProducer(data_dir) as producer:
        for i in range(RECORDS):
            # Event time moves 10 ms a record, with jitter back of up to 1.5 s: out of order, some late.
            ts = 1_700_000_000_000 + i * 10 - rng.choice([0, 0, 0, 0, 50, 300, 1500])
            value = {"bad": i} if i % 97 == 5 else {"id": i // 2, "c": round(36 + rng.random() * 3, 2)}
            producer.send("in", json.dumps(value).encode(), key=f"dev-{rng.randrange(20)}".encode(),
                          headers=[("schema", b"temperature/1")], timestamp_ms=ts)


def dump(data_dir: Path) -> dict[str, Any]:
    """Everything the run wrote: output records with their offsets, state, group offsets."""
    out: dict[str, Any] = {}
    for topic in OUTPUTS:
        with KafkaConsumer(topic, data_dir=data_dir, auto_offset_reset="earliest",
                           consumer_timeout_ms=100) as c:
            out[topic] = sorted((r.partition, r.offset, r.timestamp, r.key, r.value, r.headers) for r in c)
    with KafkaAdminClient(data_dir) as admin:
        out["state"] = admin.read_state_store("", prefix="streams.kill/")
        out["offsets"] = {tp: om.offset for tp, om in admin.list_consumer_group_offsets("streams.kill").items()}
    return out


def _committed(admin: KafkaAdminClient) -> int:
    return sum(om.offset for om in admin.list_consumer_group_offsets("streams.kill").values())


def _child(data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.streams.test_eos_kill", str(data_dir)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-3000:]


def test_sigkill_at_random_moments_changes_nothing(tmp_path: Path) -> None:
    calm, killed = tmp_path / "calm", tmp_path / "killed"
    write_input(calm)
    write_input(killed)

    _finish(_child(calm))
    want = dump(calm)
    assert sum(want["offsets"].values()) == RECORDS
    assert all(want[t] for t in OUTPUTS), "every output (late and dead letters too) has records"

    rng = random.Random()
    mid_run = 0
    progress = [0]
    with KafkaAdminClient(killed) as admin:
        for _ in range(KILLS):
            proc = _child(killed)
            # Kill after this life committed a batch, at a random moment of the next few:
            # inside processing or inside a commit, whatever the machine's speed.
            while _committed(admin) == progress[-1] and proc.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.25))
            if proc.poll() is not None:
                _finish(proc)
                break
            proc.send_signal(signal.SIGKILL)
            _out, err = proc.communicate(timeout=30)
            assert proc.returncode == -signal.SIGKILL, err.decode()[-3000:]
            done = _committed(admin)
            assert done >= progress[-1]
            if 0 < done < RECORDS:
                mid_run += 1
            progress.append(done)
    _finish(_child(killed))
    assert mid_run >= 12, f"kills did not land during processing: committed after each {progress}"
    got = dump(killed)
    for key in want:
        assert got[key] == want[key], f"{key} differs after {mid_run} kills mid-run ({progress})"


def main(data_dir: str) -> None:
    with StreamsRunner(build_topology(), data_dir, max_batch_records=25) as runner:
        runner.process_available()


if __name__ == "__main__":
    main(sys.argv[1])
