"""edge fleet against the real 3-broker cluster, with the boxes' side written by the test.

The records a box writes (reported state, command results) are written here as
PROTOCOL.md draws them; tests/fleet/test_fleet_boxes.py runs real `edge run` boxes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions

from broker import default_partition
from edge.control import load_public_key, parse_command, parse_desired, verify

from ._helpers import fleet, prefix, read_all, reported, write

DESIRED = """
[[devices]]
transport = "serial"
name = "t1"
kind = "temperature"
codec = "text"
port = "/dev/ttyUSB0"
"""


def _stop(proc: subprocess.Popen[str]) -> None:
    """A failed test does not leave its `edge fleet` behind (Popen's exit waits for it)."""
    if proc.poll() is None:
        proc.kill()


def test_status_is_one_compacted_read_of_the_latest_state(kafka_cluster3) -> None:
    servers, p = kafka_cluster3.bootstrap_servers, prefix()
    topic = f"{p}.reported"
    empty = fleet("status", "--bootstrap-server", servers, "--control-topics", p)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == "no box has reported yet\n"
    write(servers, topic, [
        ("b1", reported("b1", applied={"version": 1, "hash": "x", "target": "group:g"})),
        ("b2", reported("b2")),
        ("gone", reported("gone")),
        ("b1", reported("b1", applied={"version": 2, "hash": "y", "target": "group:g"},
                        desired_result={"version": 2, "result": "applied"},
                        uplink={"state": "running", "lag_records": 42})),
        ("gone", None),  # a tombstone: the box was retired
        ("junk", b"\xff not json"),
    ])
    proc = fleet("status", "--bootstrap-server", servers, "--control-topics", p)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    rows = {line.split()[0]: line.split() for line in lines[1:lines.index("")]}
    assert set(rows) == {"b1", "b2", "junk"}
    assert rows["b1"][:6] == ["b1", "v2", "applied", "v2", "running", "42"]
    assert rows["b2"][:3] == ["b2", "v0", "-"] and rows["junk"][3] == "unreadable"
    as_json = fleet("status", "--json", "--bootstrap-server", servers, "--control-topics", p)
    doc = {b["edge_id"]: b for b in json.loads(as_json.stdout)}
    assert doc["b1"]["applied_version"] == 2 and doc["b1"]["lag"] == 42
    assert doc["b2"]["state"] == "running" and doc["junk"]["state"] == "unreadable"


def test_set_signs_and_versions_per_target_on_a_compacted_topic(kafka_cluster3, tmp_path) -> None:
    servers, p = kafka_cluster3.bootstrap_servers, prefix()
    assert fleet("keygen", str(tmp_path)).returncode == 0
    key, public = str(tmp_path / "control.key"), load_public_key(tmp_path / "control.pub")
    desired = tmp_path / "desired.toml"
    desired.write_text(DESIRED)
    common = ["--bootstrap-server", servers, "--control-topics", p, "--key", key]
    for args in (["--group", "ward3"], ["--group", "ward3"], ["--edge", "b1"],
                 ["--group", "ward3", "--version", "10"], ["--group", "ward3"]):
        proc = fleet("set", *args, str(desired), *common)
        assert proc.returncode == 0, proc.stderr
    assert "group:ward3: desired version 11 published (devices)" in proc.stdout
    records = read_all(servers, f"{p}.desired", 5)
    # The latest record of a target is unsigned (a stranger's): the next version is still
    # above every version the target was given, not 1.
    write(servers, f"{p}.desired", [("group:ward3", {"kind": "desired", "version": 99})])
    proc = fleet("set", "--group", "ward3", str(desired), *common)
    assert "group:ward3: desired version 12 published" in proc.stdout, proc.stderr
    got = [(r.key, parse_desired(verify(r.value, [public]))) for r in records]
    assert sorted((k, d.version) for k, d in got) == [
        (b"edge:b1", 1), (b"group:ward3", 1), (b"group:ward3", 2), (b"group:ward3", 10),
        (b"group:ward3", 11)]
    assert all(d.target == k.decode() and d.config["devices"][0]["name"] == "t1" for k, d in got)
    admin = KafkaAdminClient(bootstrap_servers=servers)
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, f"{p}.{t}")
                                          for t in ("desired", "reported", "commands")])
    finally:
        admin.close()
    policy, segment = {}, {}
    for response in configs:
        for _, _, _, name, entries in response.resources:
            policy[name] = {e[0]: e[1] for e in entries}["cleanup.policy"]
            segment[name] = {e[0]: e[1] for e in entries}["segment.ms"]
    assert policy == {f"{p}.desired": "compact", f"{p}.reported": "compact",
                      f"{p}.commands": "delete"}
    # compacted topics roll hourly, so a quiet one is cleaned at all (docs/fleet.md)
    assert segment[f"{p}.desired"] == segment[f"{p}.reported"] == "3600000"

    # Someone adds partitions to the desired topic: its records no longer sit where their
    # keys hash, which boxes rely on. edge fleet refuses to publish more and says why.
    grown = next(n for n in range(7, 64) if any(
        default_partition(k, n) != default_partition(k, 6) for k in (b"group:ward3", b"edge:b1")))
    admin = KafkaAdminClient(bootstrap_servers=servers)
    try:
        admin.create_partitions({f"{p}.desired": NewPartitions(grown)})
    finally:
        admin.close()
    proc = fleet("set", "--group", "ward3", str(desired), *common)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"topic '{p}.desired' at {servers} has {grown} partitions, but its record at" in proc.stderr
    assert "partitions were added" in proc.stderr and "published" not in proc.stdout


def test_command_waits_for_its_results(kafka_cluster3, tmp_path) -> None:
    servers, p = kafka_cluster3.bootstrap_servers, prefix()
    assert fleet("keygen", str(tmp_path)).returncode == 0
    public = load_public_key(tmp_path / "control.pub")
    with subprocess.Popen(
        [sys.executable, "-m", "edge", "fleet", "command", "--edge", "b1", "rereplicate",
         "topic=readings", "offset=5", "--ttl", "2m", "--wait", "--bootstrap-server", servers,
         "--control-topics", p, "--key", str(tmp_path / "control.key")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("edge:b1: command ") and "waiting for results" in first, (
                first, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
            [record] = read_all(servers, f"{p}.commands", 1)
            command = parse_command(verify(record.value, [public]))
            assert record.key == b"edge:b1" and command.command == "rereplicate"
            assert command.args == {"topic": "readings", "offset": 5} and command.ttl_ms == 120_000
            write(servers, f"{p}.results", [
                ("b2", {"command_id": "another", "edge_id": "b2", "ts_ms": 1, "result": "ok"}),
                ("b1", {"command_id": command.id, "edge_id": "b1", "ts_ms": 2, "result": "ok",
                        "detail": {"from_offset": 5}})])
            out, err = proc.communicate(timeout=60)
        finally:
            _stop(proc)
    assert proc.returncode == 0, err
    assert out == 'b1: ok: {"from_offset": 5}\n'


def test_watch_follows_reported_state_and_results(kafka_cluster3) -> None:
    servers, p = kafka_cluster3.bootstrap_servers, prefix()
    with subprocess.Popen(
        [sys.executable, "-m", "edge", "fleet", "watch", "--bootstrap-server", servers,
         "--control-topics", p], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None and proc.stdout is not None
            assert proc.stderr.readline().startswith(f"watching {p}.reported and {p}.results")
            write(servers, f"{p}.reported", [("b1", reported("b1", last_error="disk full"))])
            write(servers, f"{p}.results", [("b1", {"command_id": "c0ffee00-1", "edge_id": "b1",
                                                    "ts_ms": 1, "result": "expired"})])
            lines = [proc.stdout.readline(), proc.stdout.readline()]
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        finally:
            _stop(proc)
    assert proc.returncode == 130
    assert any("reported b1: applied v0" in line and "last error: disk full" in line
               for line in lines), lines
    assert any("result   b1: command c0ffee00 expired" in line for line in lines), lines


def test_a_group_command_waits_for_the_boxes_that_report_the_group(kafka_cluster3, tmp_path) -> None:
    servers, p = kafka_cluster3.bootstrap_servers, prefix()
    assert fleet("keygen", str(tmp_path)).returncode == 0
    public = load_public_key(tmp_path / "control.pub")
    write(servers, f"{p}.reported", [
        ("b1", reported("b1", groups=["g", "h"])), ("b2", reported("b2", groups=["g"])),
        ("b3", reported("b3", groups=["h"])),
        ("old", reported("old", groups=["g"], ts_ms=1))])  # offline since 1970
    with subprocess.Popen(
        [sys.executable, "-m", "edge", "fleet", "command", "--group", "g", "report_status",
         "--ttl", "6s", "--wait", "--bootstrap-server", servers, "--control-topics", p,
         "--key", str(tmp_path / "control.key")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            offline = proc.stdout.readline()
            assert offline == "group g: not waiting for 1 offline box: old\n", offline
            first = proc.stdout.readline()
            assert first.startswith("group:g: command ") and "waiting for 2 boxes" in first, first
            [record] = read_all(servers, f"{p}.commands", 1)
            command = parse_command(verify(record.value, [public]))
            write(servers, f"{p}.results", [
                ("b1", {"command_id": command.id, "edge_id": "b1", "ts_ms": 2, "result": "ok"})])
            out, err = proc.communicate(timeout=60)
        finally:
            _stop(proc)
    # b2 never answers: the wait ends at the time to live and names it
    assert proc.returncode == 1 and out == "b1: ok\n", (out, err)
    assert "did not answer: b2\n" in err
