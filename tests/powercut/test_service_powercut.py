"""`edge run` under a real power cut, fed over MQTT QoS 1 by real Mosquitto: nothing it PUBACKed is lost.

The service's data dir is on the power-cut filesystem, in its default
durability.  edge-sim publishes QoS 1 readings into Mosquitto; at a random
point of the stream the service is frozen, the power cut, the service
killed.  After the filesystem comes back the service starts again on its
persistent MQTT sessions: Mosquitto redelivers what it never saw
acknowledged, and never what was PUBACKed.  So if every reading the
simulator sent is in the log in the end, nothing the service PUBACKed before
the cut was lost; Mosquitto's debug log says how many PUBACKs that was.
And none is there twice: a reading durable but not yet PUBACKed comes again
and must be recognised (its session's epoch file must have survived the cut
too); offsets must run without a gap and the database must pass SQLite's
integrity check.
"""

from __future__ import annotations

import collections
import json
import random
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.edge._helpers import (
    BIN,
    health,
    read_topic,
    start_edge,
    stop_edge,
    truth_readings,
    wait_for,
)
from tests.fixtures.lazyfs_mount import LazyFs
from tests.fixtures.mosquitto import Mosquitto, free_port

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(240)]

CONVENTIONS = [("gps-mqtt", "gps", "owntracks"), ("rooms-mqtt", "temperature", "zigbee2mqtt"),
               ("beds-mqtt", "blood_pressure", "bp.json")]
TOTAL = 6 * 200  # 2 devices of each kind, 200 readings each


def _config(tmp: Path, data_dir: Path, mqtt_port: int, interval_ms: int = 0) -> tuple[Path, int]:
    health_port = free_port()
    devices = "".join(f'[[devices]]\nname = "{n}"\nkind = "{k}"\ntransport = "mqtt"\n'
                      f'host = "127.0.0.1"\nport = {mqtt_port}\ncodec = "{c}"\nqos = 1\n'
                      for n, k, c in CONVENTIONS)
    path = tmp / "edge.toml"
    # No durability key: the default is what must survive a power cut (with a commit
    # interval too: it delays PUBACKs, it must never send one before the commit is durable).
    interval = f"commit_interval_ms = {interval_ms}\n" if interval_ms else ""
    path.write_text(f'edge_id = "test-edge"\ndata_dir = "{data_dir}"\n[log]\npartitions = 2\n{interval}'
                    f'[health]\naddress = "127.0.0.1:{health_port}"\n{devices}')
    return path, health_port


def _readings(port: int) -> int:
    h = health(port)
    return sum(d["readings"] for d in h["devices"].values()) if h else -1


def _connected(port: int) -> bool:
    h = health(port)
    return bool(h) and all(d["connected"] for d in h["devices"].values())


def _pubacks_from_service(mosq: Mosquitto) -> int:
    # Mosquitto names the sender of each PUBACK; the simulator only publishes, never acks.
    return len(re.findall(r"Received PUBACK from (\S+)", mosq.log_text()))


# The second cut is torn: half of what was not synced gets through, in no order.
@pytest.mark.parametrize(("seed", "keep", "interval_ms"), [(1, 0.0, 0), (2, 0.5, 0), (3, 0.0, 300)],
                         ids=["clean-cut", "torn-cut", "commit-interval-300ms"])
def test_nothing_the_service_pubacked_is_lost_in_a_power_cut(
        tmp_path: Path, lazyfs: LazyFs, seed: int, keep: float, interval_ms: int) -> None:
    mosq = Mosquitto(tmp_path / "mosquitto", debug=True)
    mosq.start()
    try:
        _run(tmp_path, lazyfs, mosq, random.Random(seed), keep, interval_ms)
    finally:
        mosq.stop()


def _run(tmp_path: Path, lazyfs: LazyFs, mosq: Mosquitto, rng: random.Random, keep: float,
         interval_ms: int) -> None:
    data_dir = lazyfs.mountpoint / "data"
    config, port = _config(tmp_path, data_dir, mosq.port, interval_ms)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    truth = tmp_path / "truth.jsonl"
    sim = None
    try:
        wait_for(lambda: _connected(port), 60, "MQTT devices connected")
        sim = subprocess.Popen(
            [str(BIN / "edge-sim"), "--no-progress", "--output", "mqtt", "--mqtt-port", str(mosq.port),
             "--gps", "2", "--rooms", "2", "--patients", "2", "--rate", "100", "--count", "200",
             "--seed", str(rng.randint(1, 1000)), "--truth", str(truth)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cut_at = rng.randint(100, TOTAL - 200)
        wait_for(lambda: _readings(port) >= cut_at, 90, f"{cut_at} readings in", every=0.02)
        edge.send_signal(signal.SIGSTOP)  # from here it tells Mosquitto nothing more
        acked_before = _pubacks_from_service(mosq)
        lost = lazyfs.cut(keep=keep, seed=rng.randint(0, 1 << 30))
        edge.kill()
        edge.wait(30)
        _, err = sim.communicate(timeout=120)  # Mosquitto holds the rest for the service's session
        assert sim.returncode == 0, err
    finally:
        for proc in (edge, sim):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert 0 < acked_before < TOTAL, f"the cut should fall mid-stream ({acked_before} PUBACKs)"

    # What the simulator sent, as each reading is found in the log again.
    expected = {topic: collections.Counter(_identity(r["device_id"], topic, r["values"])
                                           for r in truth_readings(truth) if r["kind"] == topic)
                for _, topic, _ in CONVENTIONS}
    assert sum(sum(c.values()) for c in expected.values()) == TOTAL

    def missing() -> dict[str, int]:
        out = {}
        for _, topic, _ in CONVENTIONS:
            got = collections.Counter(_identity(r.key.decode(), topic, json.loads(r.value))
                                      for r in read_topic(data_dir, topic))
            out[topic] = sum((expected[topic] - got).values())
        return out

    lazyfs.mount()
    edge = start_edge(config, edge_log)
    try:
        try:
            wait_for(lambda: not any(missing().values()), 120,
                     "Mosquitto's redelivery after the power came back")
        except AssertionError:
            # Every reading, so every one PUBACKed before the cut: Mosquitto never resends those.
            raise AssertionError(f"readings missing after the cut: {missing()}; {acked_before} PUBACKs "
                                 f"before the cut, which dropped {lost}") from None
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()[-5000:]

    conn = sqlite3.connect(data_dir / "log.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    for _, topic, _ in CONVENTIONS:
        records = read_topic(data_dir, topic)
        # Exactly once: what was durable but not yet PUBACKed comes again and is recognised
        # by its delivery identity, which needs the session's epoch to have survived too.
        copies = collections.Counter(_identity(r.key.decode(), topic, json.loads(r.value))
                                     for r in records) - expected[topic]
        assert not copies, f"{topic}: {sum(copies.values())} readings written twice, e.g. {list(copies)[:3]}"
        by_partition = collections.defaultdict(list)
        for r in records:
            by_partition[r.partition].append(r.offset)
        for p, offs in by_partition.items():
            assert offs == list(range(len(offs))), f"{topic}/{p}: offsets have a gap"


# The fields a reading keeps from the simulator to the log (the log's key is the MQTT
# device's name, "sim/car-1" for OwnTracks; a zigbee2mqtt reading has no device time).
_FIELDS = {"gps": ("lat", "lon"), "temperature": ("temperature_c",),
           "blood_pressure": ("systolic_mmhg", "diastolic_mmhg", "pulse_bpm")}


def _identity(device: str, kind: str, values: dict) -> tuple:
    return (device.rsplit("/", 1)[-1], *(float(values[f]) for f in _FIELDS[kind]))
