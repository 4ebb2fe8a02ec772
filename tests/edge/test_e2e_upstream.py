"""End to end with the uplink: edge-sim → (pty serial | Mosquitto QoS 1) → `edge run` → log → Kafka.

`edge run` is a subprocess with a real config whose [upstream] points at the test
Kafka cluster, exactly once. Upstream is read by a read_committed consumer.

1. Every simulated reading (the simulators' --truth files: GPS, room and cuff over
   ptys, two more rooms over Mosquitto QoS 1) is upstream exactly once, in order
   per device; corrupted frames are dead letters, locally and upstream.
2. SIGKILL under MQTT QoS 1 load after the uplink has replicated something,
   then a restart with the same config: every event committed to the local log
   is upstream exactly once (by its edge.partition/edge.offset headers), in order
   per key, and every reading the simulator published (each one PUBACKed by
   Mosquitto to the simulator, whose exit waits for the acks) is in the local
   log. The service's own PUBACKs to Mosquitto cannot be observed from outside;
   that Mosquitto redelivers what the killed service had not acknowledged is what
   the last check shows.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.edge._helpers import (
    BIN,
    SIM_SERIAL,
    health,
    read_topic,
    serial_device,
    start_edge,
    stop_edge,
    truth_readings,
    wait_for,
)
from tests.edge._uplink_helpers import read_upstream, unique
from tests.fixtures.mosquitto import free_port

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(150)]

DEVICE_TOPICS = ("gps", "temperature", "blood_pressure")
LOCAL_TOPICS = (*DEVICE_TOPICS, "dead-letters")


def write_upstream_config(tmp: Path, devices: str, servers: str, edge_id: str, prefix: str,
                          batch_records: int = 200) -> tuple[Path, int]:
    """A config with every local topic mapped to ``<prefix>.<topic>`` upstream, exactly once."""
    port = free_port()
    mapping = ", ".join(f'"{t}" = "{prefix}.{t}"' for t in LOCAL_TOPICS)
    path = tmp / "edge.toml"
    path.write_text(
        f'edge_id = "{edge_id}"\ndata_dir = "{tmp / "data"}"\n'
        f'[log]\npartitions = 2\ndurability = "no-fsync"\n'
        f'[health]\naddress = "127.0.0.1:{port}"\n'
        f'[upstream]\nbootstrap_servers = "{servers}"\ndelivery = "exactly-once"\n'
        f"batch_records = {batch_records}\ndefault_partitions = 2\nbackoff_max_s = 1.0\n"
        f"topics = {{ {mapping} }}\n\n{devices}")
    return path, port


def uplink_state(port: int) -> dict[str, Any]:
    h = health(port)
    return (h or {}).get("uplink") or {}


def total_readings(port: int) -> int:
    h = health(port)
    return sum(d["readings"] for d in h["devices"].values()) if h else -1


def local_log(data: Path) -> dict[str, list[Any]]:
    return {t: read_topic(data, t) for t in LOCAL_TOPICS}


def check_upstream_is_local_once(local: dict[str, list[Any]], upstream: list[Any], prefix: str) -> None:
    """Each local record exactly once upstream (edge.partition/edge.offset), same key, value and
    timestamp; per key, upstream order is local order."""
    want = {(t, r.partition, r.offset): r for t, recs in local.items() for r in recs}
    seen: collections.Counter[tuple[str, int, int]] = collections.Counter()
    per_key: dict[tuple[str, bytes | None, int], list[int]] = collections.defaultdict(list)
    for u in sorted(upstream, key=lambda r: (r.topic, r.partition, r.offset)):
        h = dict(u.headers)
        topic = u.topic.removeprefix(prefix + ".")
        ident = (topic, int(h["edge.partition"]), int(h["edge.offset"]))
        seen[ident] += 1
        rec = want.get(ident)
        assert rec is not None, f"upstream has {ident}, which is not in the local log"
        assert (u.key, u.value, u.timestamp) == (rec.key, rec.value, rec.timestamp), ident
        per_key[(topic, u.key, ident[1])].append(ident[2])
    dupes = {k: n for k, n in seen.items() if n > 1}
    missing = sorted(set(want) - set(seen))
    assert not dupes and not missing, (
        f"{len(dupes)} duplicated upstream (e.g. {list(dupes)[:3]}), {len(missing)} local records "
        f"missing upstream (e.g. {missing[:3]}) of {len(want)}")
    for key, offsets in per_key.items():
        # A key lives on one partition, locally and upstream; upstream is read in order.
        assert offsets == sorted(offsets), f"per-key order broken upstream for {key}"


async def test_every_simulated_reading_is_upstream_exactly_once(
        tmp_path: Path, kafka_cluster, mosquitto) -> None:  # type: ignore[no-untyped-def]
    servers = kafka_cluster.bootstrap_servers
    prefix, edge_id = unique("e2e"), unique("edge")
    links = tmp_path / "links"
    links.mkdir()
    devices = "".join(serial_device(n, k, str(links / n), c, o) for n, k, c, o in SIM_SERIAL)
    # Two more rooms over Mosquitto, QoS 1 (ids "mq-room-N", apart from the serial room-1).
    devices += (f'[[devices]]\nname = "rooms-mqtt"\nkind = "temperature"\ntransport = "mqtt"\n'
                f'host = "127.0.0.1"\nport = {mosquitto.port}\ncodec = "zigbee2mqtt"\nqos = 1\n'
                f'device_id_prefix = "mq-"\n')
    config, port = write_upstream_config(tmp_path, devices, servers, edge_id, prefix)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    truth, truth_mqtt = tmp_path / "truth.jsonl", tmp_path / "truth-mqtt.jsonl"
    try:
        wait_for(lambda: ((health(port) or {}).get("devices") or {}).get("rooms-mqtt", {})
                 .get("connected"), 30, "the MQTT subscription")
        mqtt_sim = subprocess.Popen(
            [str(BIN / "edge-sim"), "--no-progress", "--seed", "8", "--output", "mqtt", "--mqtt-port",
             str(mosquitto.port), "--gps", "0", "--patients", "0", "--rooms", "2", "--rate", "100",
             "--count", "150", "--truth", str(truth_mqtt)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sim = subprocess.Popen(
            [str(BIN / "edge-sim"), "--no-progress", "--seed", "7", "--output", "pty", "--link-dir",
             str(links), "--fast", "--count", "150", "--truth", str(truth), "--corrupt", "0.05"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err = sim.communicate(timeout=60)
        assert sim.returncode == 0, err
        _, err = mqtt_sim.communicate(timeout=60)
        assert mqtt_sim.returncode == 0, err
        expected = truth_readings(truth)
        assert len(expected) > 400
        expected += [dict(r, device_id="mq-" + r["device_id"]) for r in truth_readings(truth_mqtt)]
        # All but each GPS unit's last epoch (held by the NMEA assembler until shutdown).
        wait_for(lambda: total_readings(port) >= len(expected) - 1, 30, "readings in the log")
        wait_for(lambda: (uplink_state(port).get("records_total") or 0) >= len(expected) - 1, 30,
                 "the uplink to replicate the readings")
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()

    # The uplink stops on SIGTERM without draining: what reached the log during the shutdown
    # (the held GPS epochs) goes upstream at the next start, which resumes from the upstream
    # checkpoint. No device sends any more; the service only replicates.
    local = local_log(tmp_path / "data")
    n_local = sum(map(len, local.values()))
    edge = start_edge(config, edge_log)
    try:
        # Up before it is stopped: what is checked is the replication, not a stop mid-start.
        wait_for(lambda: health(port), 30, "the service's /health")
        upstream = await read_upstream(servers, [f"{prefix}.{t}" for t in LOCAL_TOPICS], n_local,
                                       timeout_s=30)
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    assert local_log(tmp_path / "data") == local
    check_upstream_is_local_once(local, upstream, prefix)

    # Every simulated reading, matched per device in order: GPS by the device's own time
    # (NMEA, to the centisecond), the others by their values.
    want: dict[str, list[dict]] = collections.defaultdict(list)
    for r in expected:
        want[r["device_id"]].append(r)
    got: dict[str, list[Any]] = collections.defaultdict(list)
    for u in sorted(upstream, key=lambda r: (r.topic, r.partition, r.offset)):
        if not u.topic.endswith(".dead-letters"):
            got[u.key.decode()].append(u)
    assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in want.items()}
    assert len(want["mq-room-1"]) == len(want["mq-room-2"]) == 150
    for u, r in zip(got["car-1"], want["car-1"], strict=True):
        assert abs(u.timestamp - r["timestamp_ms"]) < 10, (u, r)
    for device in ("room-1", "bed-1", "mq-room-1", "mq-room-2"):  # the cuff's event adds its device_time
        assert [{k: v for k, v in json.loads(u.value).items() if k in r["values"]}
                for u, r in zip(got[device], want[device], strict=True)] == \
            [r["values"] for r in want[device]]

    faults = sum(1 for line in truth.read_text().splitlines() if json.loads(line).get("fault"))
    dead = local["dead-letters"]
    assert len(dead) >= faults > 0 and all(dict(r.headers)["reason"] for r in dead)
    assert sum(u.topic.endswith(".dead-letters") for u in upstream) == len(dead)


MQTT_DEVICES = [("gps-mqtt", "gps", "owntracks"), ("rooms-mqtt", "temperature", "zigbee2mqtt"),
                ("beds-mqtt", "blood_pressure", "bp.json")]


def _match_key(kind: str, device: str, ts: int) -> tuple[str, int | None]:
    return device, {"gps": ts // 1000 * 1000, "blood_pressure": ts}.get(kind)


async def test_sigkill_under_load_and_restart_every_committed_event_upstream_once(
        tmp_path: Path, kafka_cluster, mosquitto) -> None:  # type: ignore[no-untyped-def]
    servers = kafka_cluster.bootstrap_servers
    prefix, edge_id = unique("e2e"), unique("edge")
    devices = "".join(f'[[devices]]\nname = "{n}"\nkind = "{k}"\ntransport = "mqtt"\n'
                      f'host = "127.0.0.1"\nport = {mosquitto.port}\ncodec = "{c}"\nqos = 1\n'
                      for n, k, c in MQTT_DEVICES)
    config, port = write_upstream_config(tmp_path, devices, servers, edge_id, prefix, batch_records=50)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    truth = tmp_path / "truth.jsonl"
    sim = None
    try:
        wait_for(lambda: (h := health(port)) and all(d["connected"] for d in h["devices"].values()),
                 30, "MQTT devices connected")
        sim = subprocess.Popen(
            [str(BIN / "edge-sim"), "--no-progress", "--output", "mqtt", "--mqtt-port", str(mosquitto.port),
             "--gps", "2", "--rooms", "2", "--patients", "2", "--rate", "100", "--count", "800",
             "--seed", "13", "--truth", str(truth)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Under load, once the uplink has committed something upstream: SIGKILL.
        wait_for(lambda: (uplink_state(port).get("records_total") or 0) >= 200, 30,
                 "upstream progress", every=0.05)
        edge.send_signal(signal.SIGKILL)
        assert edge.wait(10) == -signal.SIGKILL
        assert sim.poll() is None, "the kill should have come mid-stream"
        killed_at = sum(len(read_topic(tmp_path / "data", t)) for t in DEVICE_TOPICS)

        edge = start_edge(config, edge_log)  # the same config, data dir and MQTT sessions
        _, err = sim.communicate(timeout=60)
        assert sim.returncode == 0, err
        expected = collections.Counter(r["kind"] for r in truth_readings(truth))
        assert sum(expected.values()) == 4800
        assert 0 < killed_at < 4800
        wait_for(lambda: all(len(read_topic(tmp_path / "data", k)) >= n for k, n in expected.items()),
                 45, "every published reading in the local log")
        # Read upstream while the service runs: the uplink does not drain on SIGTERM (and its
        # lag, refreshed each second, can be a moment old).
        n_local = sum(map(len, local_log(tmp_path / "data").values()))
        upstream = await read_upstream(servers, [f"{prefix}.{t}" for t in LOCAL_TOPICS], n_local,
                                       timeout_s=30)
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
            sim.communicate()
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()

    local = local_log(tmp_path / "data")
    assert sum(map(len, local.values())) == n_local, "nothing came in after the simulator ended"
    # Every reading Mosquitto acknowledged to the simulator is in the log, matched per device
    # by the event time its convention carries (bp.json: ms; OwnTracks: whole seconds;
    # zigbee2mqtt: none, so counted); redelivery of what the killed service had not PUBACKed
    # may add duplicates (at least once), and only those.
    want = collections.Counter(_match_key(r["kind"], r["device_id"], r["timestamp_ms"])
                               for r in truth_readings(truth))
    have = collections.Counter(_match_key(t, r.key.decode().removeprefix("sim/"), r.timestamp)
                               for t in DEVICE_TOPICS for r in local[t])
    assert not want - have, f"{(want - have).total()} readings not in the log: {list(want - have)[:5]}"
    assert set(have) == set(want) and have.total() - want.total() <= 200, have - want
    assert not local["dead-letters"]
    check_upstream_is_local_once(local, upstream, prefix)
