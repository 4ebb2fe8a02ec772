"""The box side of the control channel against a real Kafka cluster, `edge run` in a process.

A fleet's side (tests/control/_box.py) signs desired configs and commands with
edge.control and reads the compacted reported topic and the results back, as
`edge fleet` does; each test has topics of its own.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest
from kafka.admin import KafkaAdminClient, NewPartitions

from broker import default_partition
from edge.control import desired_payload, generate_keypair, load_private_key
from tests.control._box import Box, Fleet
from tests.edge._helpers import serial_device, wait_for
from tests.edge._uplink_helpers import TS0, produce_local, read_upstream
from tests.fixtures.mosquitto import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


@pytest.fixture
def fleet(tmp_path, kafka_cluster):
    f = Fleet(tmp_path, kafka_cluster.bootstrap_servers)
    yield f
    f.close()


@pytest.fixture
def box(tmp_path, fleet, kafka_cluster):
    b = Box(tmp_path, fleet, kafka_cluster.bootstrap_servers)
    yield b
    b.stop()


def _result(r):
    return (r["desired_result"] or {}).get("result")


def test_apply_then_refuse_invalid_then_refuse_unsigned(box, fleet, tmp_path, kafka_cluster):
    box.start()
    first = fleet.wait_reported(box.edge_id, lambda r: r["uplink"]["state"] == "online",
                                "the box's first reported state, uplink online")
    assert first["applied"]["version"] == 0 and first["desired_result"] is None
    # v1: [upstream] maps dead letters to another topic; the uplink restarts with it.
    moved = f"{fleet.prefix}.moved"
    fleet.push(f"edge:{box.edge_id}", 1, {"upstream": {**box.upstream,
                                                        "topics": {"dead-letters": moved}}})
    r = fleet.wait_reported(box.edge_id, lambda r: _result(r) == "applied", "v1 applied")
    assert r["applied"]["version"] == 1 and r["applied"]["target"] == f"edge:{box.edge_id}"
    assert r["applied"]["hash"] != first["applied"]["hash"]
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers)
    try:
        assert moved in admin.list_topics()  # the restarted uplink created its new topic
    finally:
        admin.close()
    assert box.health()["control"]["applied"]["version"] == 1
    # SIGHUP re-reads the file and lays the desired sections over it again: nothing changed.
    box.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: config reloaded" in box.text(), 20, "the reload")
    assert "at the next restart" not in box.text()

    # v2 does not validate: refused with `edge config check`'s own messages.
    fleet.push(f"edge:{box.edge_id}", 2, {"log": {"partitions": 0, "full_policy": "never"}})
    r = fleet.wait_reported(box.edge_id, lambda r: _result(r) == "refused", "v2 refused")
    bad = tmp_path / "check" / "edge.toml"
    bad.parent.mkdir()
    bad.write_text(box.config.read_text().replace(
        '[log]\npartitions = 1\ndurability = "no-fsync"', '[log]\npartitions = 0\nfull_policy = "never"'))
    check = subprocess.run([sys.executable, "-m", "edge", "config", "check", str(bad)],
                           capture_output=True, text=True)
    assert check.returncode != 0
    assert r["desired_result"]["errors"] == check.stderr.splitlines()[:2]
    assert r["desired_result"]["version"] == 2 and r["applied"]["version"] == 1

    # Unsigned, and signed with a key the box does not hold: refused, nothing applied.
    fleet.send("desired", f"edge:{box.edge_id}", json.dumps(
        desired_payload(f"edge:{box.edge_id}", 3, {}, 0)).encode())
    r = fleet.wait_reported(box.edge_id, lambda r: (r["desired_result"] or {}).get("reason")
                            == "unsigned", "the unsigned v3 refused")
    stranger = load_private_key(generate_keypair(tmp_path / "stranger")[0])
    fleet.push(f"edge:{box.edge_id}", 4, {"upstream": {"enabled": False}}, key=stranger)
    r = fleet.wait_reported(box.edge_id, lambda r: (r["desired_result"] or {}).get("reason")
                            == "unknown_key", "v4 signed by a stranger refused")
    assert r["applied"]["version"] == 1 and r["uplink"]["state"] == "online"
    # Signed but over [control] max_record_bytes (256 KiB by default): refused unread.
    fleet.push(f"edge:{box.edge_id}", 5, {"devices": [{"name": "pad", "note": "x" * 300_000}]})
    r = fleet.wait_reported(box.edge_id, lambda r: (r["desired_result"] or {}).get("reason")
                            == "too_large", "the 400 KB v5 refused as too large")
    assert "max_record_bytes = 262144" in r["desired_result"]["errors"][0]
    assert r["applied"]["version"] == 1
    assert "applying desired" not in box.text().split("v1 applied")[1]


def test_rollback_of_a_config_that_cuts_the_uplink(tmp_path, fleet, kafka_cluster):
    box = Box(tmp_path, fleet, kafka_cluster.bootstrap_servers, deadline=4.0)
    box.start()
    try:
        fleet.wait_reported(box.edge_id, lambda r: r["uplink"]["state"] == "online", "online")
        dead = f"127.0.0.1:{free_port()}"
        fleet.push(f"edge:{box.edge_id}", 1, {"upstream": {**box.upstream,
                                                            "bootstrap_servers": dead}})
        r = fleet.wait_reported(box.edge_id, lambda r: _result(r) == "rolled_back", "rolled back")
        assert r["desired_result"]["version"] == 1 and r["applied"]["version"] == 0
        assert "uplink" in r["desired_result"]["reason"]
        assert "within 4 s" in r["desired_result"]["reason"]
        box.wait_health(lambda h: h["uplink"]["state"] == "online", "the uplink online again")
        # A device that does not come up is rolled back too.
        ghost = {"name": "ghost", "kind": "temperature", "transport": "serial",
                 "port": str(tmp_path / "no-such-tty"), "codec": "text"}
        fleet.push(f"edge:{box.edge_id}", 2, {"devices": [ghost]})
        r = fleet.wait_reported(box.edge_id, lambda r: _result(r) == "rolled_back"
                                and r["desired_result"]["version"] == 2, "v2 rolled back")
        assert r["desired_result"]["errors"][0].startswith("device ghost not connected")
        box.wait_health(lambda h: "ghost" not in h["devices"], "the ghost device gone")
        # Not tried again at the next start: v1 and v2 are known bad. Meanwhile someone added
        # partitions to the desired topic, so the box's key hashes elsewhere now: it says
        # so, still reads where v1 and v2 are (not applied again), and reads v3 where it lands.
        box.stop()
        key = f"edge:{box.edge_id}".encode()
        grown = next(n for n in range(3, 64) if default_partition(key, n) != default_partition(key, 2))
        admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers)
        try:
            admin.create_partitions({fleet.topics["desired"]: NewPartitions(grown)})
        finally:
            admin.close()
        box.start()
        box.wait_health(lambda h: h["uplink"]["state"] == "online", "online after a restart")
        r = fleet.wait_reported(box.edge_id, lambda r: "partitions" in (r["last_error"] or ""),
                                "the partition count change reported")
        assert f"has {grown} partitions, 2 when this box last connected" in r["last_error"]
        assert box.text().count("applying desired") == 2
        fleet.push(f"edge:{box.edge_id}", 3, {"clock": {"jump_threshold": 6.0}})
        fleet.wait_reported(box.edge_id, lambda r: _result(r) == "applied"
                            and r["desired_result"]["version"] == 3, "v3 applied")
    finally:
        box.stop()


def test_commands_run_once_and_expired_ones_are_answered(tmp_path, fleet, kafka_cluster,
                                                         pty_device):
    box = Box(tmp_path, fleet, kafka_cluster.bootstrap_servers, groups=["ward3"],
              devices=serial_device("room-1", "temperature", str(pty_device.link), "text"))
    box.start()
    try:
        box.wait_health(lambda h: h["devices"]["room-1"]["connected"], "room-1 connected")
        fleet.wait_reported(box.edge_id, lambda r: r["uplink"]["state"] == "online", "online")
        # One command, delivered twice (a producer retry, a replay): executed once.
        value = fleet.command("group:ward3", "disable_device", {"device": "room-1"})
        fleet.send("commands", "group:ward3", value)
        command_id = json.loads(__import__("base64").b64decode(json.loads(value)["payload"]))["id"]
        box.wait_health(lambda h: "room-1" not in h["devices"], "room-1 disabled")
        fleet.command(f"edge:{box.edge_id}", "report_status")
        expired = fleet.command(f"edge:{box.edge_id}", "enable_device", {"device": "room-1"},
                                ttl_ms=1000, issued_ms=int(time.time() * 1000) - 60_000)
        results = fleet_results(fleet, box.edge_id, 3)
        by_id = {doc["command_id"]: doc for doc in results}
        assert [doc["result"] for doc in results].count("ok") == 2
        assert by_id[command_id]["result"] == "ok"
        expired_id = json.loads(__import__("base64").b64decode(json.loads(expired)["payload"]))["id"]
        assert by_id[expired_id]["result"] == "expired"
        assert "room-1" not in box.health()["devices"]
        # A reboot keeps the device disabled and executes nothing again.
        box.stop()
        box.start()
        h = box.wait_health(lambda h: h.get("control", {}).get("connected"), "control connected")
        assert "room-1" not in h["devices"]
        fleet.command(f"edge:{box.edge_id}", "enable_device", {"device": "room-1"})
        box.wait_health(lambda h: h["devices"].get("room-1", {}).get("connected"),
                        "room-1 enabled again")
        assert len(fleet_results(fleet, box.edge_id, 4)) == 4
    finally:
        box.stop()


def test_rereplicate_sends_a_topic_again_from_an_offset_or_a_time(tmp_path, fleet, kafka_cluster):
    box = Box(tmp_path, fleet, kafka_cluster.bootstrap_servers, local_topics=("readings",),
              heartbeat=1.0)
    box.start()
    try:
        produce_local(tmp_path / "data", "readings", 20, keys=3)
        upstream = [f"{fleet.prefix}.readings"]
        servers = kafka_cluster.bootstrap_servers
        assert len(asyncio.run(read_upstream(servers, upstream, 20))) == 20
        fleet.command(f"edge:{box.edge_id}", "rereplicate", {"topic": "readings", "offset": 12})
        records = asyncio.run(read_upstream(servers, upstream, 28))
        assert [r.value for r in records[20:]] == [f"readings:{i}".encode() for i in range(12, 20)]
        fleet.command(f"edge:{box.edge_id}", "rereplicate",
                      {"topic": "readings", "timestamp_ms": TS0 + 17})
        fleet.command(f"edge:{box.edge_id}", "rereplicate", {"topic": "nope", "offset": 0})
        records = asyncio.run(read_upstream(servers, upstream, 31))
        assert [r.value for r in records[28:]] == [f"readings:{i}".encode() for i in range(17, 20)]
        results = fleet_results(fleet, box.edge_id, 3)
        assert [d["result"] for d in results] == ["ok", "ok", "error"]
        assert results[0]["detail"] == {"topic": "readings", "from": {"0": 12}}
        assert "args.topic" in results[2]["detail"]
        # Done re-sending: nothing left in /health's or the reported state's resending.
        box.wait_health(lambda h: h["uplink"]["resending"] == {}, "no re-send under way")
        fleet.wait_reported(box.edge_id, lambda r: r["uplink"].get("resending") == {},
                            "no re-send under way reported")
        # Nothing changes from here on: the heartbeat alone writes the reported state.
        count = len([k for k, _ in fleet.read("reported") if k == box.edge_id])
        wait_for(lambda: len([k for k, _ in fleet.read("reported") if k == box.edge_id]) >= count + 2,
                 20, "two heartbeats")
    finally:
        box.stop()


def fleet_results(fleet: Fleet, edge_id: str, n: int) -> list[dict]:
    wait_for(lambda: len([d for k, d in fleet.read("results") if k == edge_id]) >= n, 60,
             f"{n} results")
    time.sleep(1.0)  # a duplicate would show
    return [d for k, d in fleet.read("results") if k == edge_id]


def test_offline_during_two_pushes_applies_only_the_latest_and_keeps_it_offline(
        tmp_path, kafka_cluster_proxied):
    cluster = kafka_cluster_proxied
    fleet = Fleet(tmp_path, cluster.direct_bootstrap_servers)
    box = Box(tmp_path, fleet, cluster.bootstrap_servers)
    try:
        box.start()
        fleet.wait_reported(box.edge_id, lambda r: r["uplink"]["state"] == "online", "online")
        box.stop()
        for version in (1, 2):
            fleet.push(f"edge:{box.edge_id}", version, {"upstream": {
                **box.upstream, "topics": {"dead-letters": f"{fleet.prefix}.v{version}"}}})
        box.start()
        r = fleet.wait_reported(box.edge_id, lambda r: _result(r) == "applied", "applied")
        assert r["applied"]["version"] == 2
        assert f"desired edge:{box.edge_id} v1" not in box.text()
        box.stop()
        cluster.cut()  # offline: the stored v2 is what runs
        box.start()
        h = box.wait_health(lambda h: h.get("control", {}).get("applied"), "control state")
        assert h["control"]["applied"]["version"] == 2
        assert "starting with the stored desired config" in box.text()
    finally:
        cluster.restore()
        box.stop()
        fleet.close()
