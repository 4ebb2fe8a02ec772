"""A fleet of real boxes steered with `edge fleet`, against the 3-broker cluster.

Each box is `edge run` in a process of its own with [control] (tests/control/_box.py's
Box), one temperature sensor of one `edge-sim` (a pty each) and a short heartbeat. The
operator's side is only the CLI: keygen, set, status --json, command --wait; what the
CLI refuses to send (an invalid or unsigned desired state) is written the way a careless
or hostile producer on the cluster would, to see every box refuse it.

The default suite runs 3 boxes; the 10-box fleet of issue #16 is a soak (over 3 min here).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from edge.control import desired_payload, load_private_key, sign
from tests.control._box import Box
from tests.edge._helpers import BIN, serial_device, wait_for
from tests.fixtures.mosquitto import free_port

from ._helpers import fleet as run_fleet
from ._helpers import read_all, write

pytestmark = [pytest.mark.kafka]


class CliFleet:
    """The operator: `edge fleet` with its own control topics and a key from `keygen`."""

    def __init__(self, tmp: Path, servers: str) -> None:
        self.servers = servers
        self.prefix = f"fleet-{time.monotonic_ns() % 10**8:08d}"
        self.keys = tmp / "keys"
        assert self.cli("keygen", str(self.keys), connect=False).returncode == 0
        self.key = self.keys / "control.key"

    def control_toml(self, groups: list[str] | None = None, deadline: float = 20.0) -> str:
        p = self.prefix
        return (f'[control]\nenabled = true\npublic_keys = ["{self.keys / "control.pub"}"]\n'
                f'groups = {json.dumps(groups or [])}\nhealth_deadline = {deadline}\n'
                f'heartbeat = 5.0\ndesired_topic = "{p}.desired"\n'
                f'commands_topic = "{p}.commands"\nreported_topic = "{p}.reported"\n'
                f'results_topic = "{p}.results"\n')

    def cli(self, *args: str, connect: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["--bootstrap-server", self.servers, "--control-topics", self.prefix,
                 "--key", str(self.key)] if connect else []
        if connect and args[0] in ("status", "watch"):
            extra = extra[:-2]
        return run_fleet(*args, *extra)

    def status(self) -> dict[str, dict[str, Any]]:
        proc = self.cli("status", "--json")
        assert proc.returncode == 0, proc.stderr
        return {b["edge_id"]: b for b in json.loads(proc.stdout)}

    def wait_all(self, boxes: list[Box], pred: Any, what: str,
                 timeout: float = 120) -> dict[str, dict[str, Any]]:
        """Until ``pred`` holds for every box's entry of `edge fleet status --json`; on a
        timeout, the laggards' reported state and the tail of their logs."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            late = [b for b in boxes if b.edge_id not in status or not pred(status[b.edge_id])]
            if not late:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}: " + "\n".join(
                    f"{b.edge_id}: {json.dumps(status.get(b.edge_id, {}).get('reported'))}\n"
                    + "\n".join(b.text().splitlines()[-15:]) for b in late))
            time.sleep(1.0)


def _result(box: dict[str, Any]) -> dict[str, Any]:
    return box["desired_result"] or {}


@pytest.fixture
def fleet_of(tmp_path, kafka_cluster3):  # type: ignore[no-untyped-def]
    started: list[Any] = []

    def make(n: int) -> tuple[CliFleet, list[Box]]:
        servers = kafka_cluster3.bootstrap_servers
        fleet = CliFleet(tmp_path, servers)
        links = tmp_path / "links"
        sim = subprocess.Popen(
            [str(BIN / "edge-sim"), "--no-progress", "--output", "pty", "--link-dir",
             str(links), "--gps", "0", "--patients", "0", "--rooms", str(n), "--rate", "0.5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(sim)
        wait_for(lambda: all((links / f"room-{i + 1}").exists() for i in range(n)), 30,
                 "the simulator's ptys")
        # The operator's first push creates the control topics; a status read creates none,
        # so they are made here before the boxes subscribe (as `edge fleet set` would).
        import asyncio

        from edge.control import ControlTopics
        from edge.fleet import FleetConnection, control_topic_specs
        from edge.fleet._cluster import ensure_topics

        topics = ControlTopics(*(f"{fleet.prefix}.{t}" for t in
                                 ("desired", "commands", "reported", "results")))
        asyncio.run(ensure_topics(FleetConnection(servers), control_topic_specs(topics)))
        boxes = []
        for i in range(n):
            home = tmp_path / f"box{i}"
            home.mkdir()
            box = Box(home, fleet, servers, groups=["ward"], deadline=15.0, devices=serial_device(
                "room", "temperature", str(links / f"room-{i + 1}"), "text"))
            boxes.append(box)
            started.append(box)
            box.start()
        return fleet, boxes

    yield make
    for thing in reversed(started):
        if isinstance(thing, Box):
            thing.stop()
        else:
            thing.terminate()
            thing.wait(10)


def _online(b: dict[str, Any]) -> bool:
    return b["reported"]["uplink"]["state"] == "online"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("n", [3, pytest.param(10, marks=pytest.mark.soak)])
def test_a_fleet_is_steered_with_edge_fleet(n, fleet_of, tmp_path) -> None:
    fleet, boxes = fleet_of(n)
    status = fleet.wait_all(boxes, lambda b: _online(b) and b["reported"]["devices"],
                            f"{n} boxes reporting, uplink online", timeout=120)
    assert all(status[b.edge_id]["applied_version"] == 0 for b in boxes)

    # v1 for the group: reaches every box, applied, and `edge fleet status` shows it.
    v1 = tmp_path / "v1.toml"
    v1.write_text("[clock]\njump_threshold = 5.0\n")
    proc = fleet.cli("set", "--group", "ward", str(v1))
    assert proc.returncode == 0 and "group:ward: desired version 1 published" in proc.stdout
    fleet.wait_all(boxes, lambda b: b["applied_version"] == 1 and
                   _result(b).get("result") == "applied", "v1 applied by every box")
    table = fleet.cli("status").stdout.splitlines()
    rows = [line.split() for line in table[1:table.index("")]]
    assert {r[0] for r in rows} == {b.edge_id for b in boxes}
    assert all(r[1:4] == ["v1", "applied", "v1"] for r in rows), table

    # v2 does not validate: the CLI refuses to send it; written anyway (signed), every box
    # refuses it with edge config check's message and keeps v1.
    v2 = tmp_path / "v2.toml"
    v2.write_text('[clock]\njump_threshold = "fast"\n')
    refused = fleet.cli("set", "--group", "ward", str(v2))
    assert refused.returncode == 78 and "v2.toml: clock.jump_threshold: expected" in refused.stderr
    key = load_private_key(fleet.key)
    value = sign(desired_payload("group:ward", 2, {"clock": {"jump_threshold": "fast"}},
                                 int(time.time() * 1000)), key)
    write(fleet.servers, f"{fleet.prefix}.desired", [("group:ward", value)])
    status = fleet.wait_all(boxes, lambda b: _result(b).get("result") == "refused" and
                            _result(b).get("version") == 2, "v2 refused by every box")
    for b in boxes:
        assert status[b.edge_id]["applied_version"] == 1
        assert any("clock.jump_threshold: expected" in e for e in _result(status[b.edge_id])
                   ["errors"])

    # v3 validates but cuts the uplink off its cluster: rolled back within the deadline
    # by every box, which reports again over the restored uplink.
    dead = f"127.0.0.1:{free_port()}"
    v3 = tmp_path / "v3.toml"
    v3.write_text(f'[upstream]\nbootstrap_servers = "{dead}"\n'
                  f'topics = {{ "dead-letters" = "{fleet.prefix}.dead-letters" }}\n')
    proc = fleet.cli("set", "--group", "ward", str(v3))
    assert "group:ward: desired version 3 published" in proc.stdout, proc.stderr
    fleet.wait_all(boxes, lambda b: _result(b).get("result") == "rolled_back" and
                   _result(b).get("version") == 3 and _online(b),
                   "v3 rolled back by every box, its uplink online again", timeout=120)

    # Unsigned: refused by every box, nothing applied.
    unsigned = json.dumps(desired_payload("group:ward", 4, {"upstream": {"enabled": False}},
                                          int(time.time() * 1000))).encode()
    write(fleet.servers, f"{fleet.prefix}.desired", [("group:ward", unsigned)])
    status = fleet.wait_all(boxes, lambda b: _result(b).get("reason") == "unsigned",
                            "the unsigned desired state refused by every box")
    assert all(status[b.edge_id]["applied_version"] == 1 and _online(status[b.edge_id])
               for b in boxes)

    # A box offline during two pushes of its own applies only the latest when it returns.
    away = boxes[0]
    away.stop()
    for threshold in (6.0, 7.0):
        mine = tmp_path / f"mine-{threshold}.toml"
        mine.write_text(f"[clock]\njump_threshold = {threshold}\n")
        assert fleet.cli("set", "--edge", away.edge_id, str(mine)).returncode == 0
    away.start()
    back = fleet.wait_all([away], lambda b: _result(b).get("result") == "applied" and
                          _result(b).get("version") == 2 and
                          b["applied_target"] == f"edge:{away.edge_id}",
                          "the returning box applies its v2 only")[away.edge_id]
    assert back["applied_version"] == 2
    assert f"desired edge:{away.edge_id} v1" not in away.text()

    # A command to the group, answered by each box once; delivered again, run no more.
    # --wait knows how many answers to wait for from the boxes' reported groups.
    proc = fleet.cli("command", "--group", "ward", "report_status", "--wait", "--ttl", "2m")
    assert proc.returncode == 0, proc.stderr
    assert f"waiting for {n} boxes" in proc.stdout.splitlines()[0]
    assert sorted(line.split(":")[0] for line in proc.stdout.splitlines()[1:]) == sorted(
        b.edge_id for b in boxes)
    [record] = [r for r in read_all(fleet.servers, f"{fleet.prefix}.commands", 1)]
    command_id = json.loads(base64.b64decode(json.loads(record.value)["payload"]))["id"]
    write(fleet.servers, f"{fleet.prefix}.commands", [("group:ward", record.value)])
    time.sleep(8)  # more than a heartbeat: a second execution would have answered by now
    answers = [json.loads(r.value) for r in read_all(
        fleet.servers, f"{fleet.prefix}.results", n, timeout_s=5)]
    mine_ = [a["edge_id"] for a in answers if a["command_id"] == command_id]
    assert sorted(mine_) == sorted(b.edge_id for b in boxes)
