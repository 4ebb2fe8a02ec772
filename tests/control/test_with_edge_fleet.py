"""The box and the fleet's own CLI together: `edge fleet set`, `command --wait` and `status`
against a box running `edge run`, so the two sides of PROTOCOL.md are checked as shipped."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.control._box import Box, Fleet

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def fleet_cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    common = ["--bootstrap-server", fleet.servers, "--control-topics", fleet.prefix]
    return subprocess.run([sys.executable, "-m", "edge", "fleet", args[0], *common, *args[1:]],
                          capture_output=True, text=True, timeout=60)


def test_a_push_and_a_command_by_edge_fleet_reach_the_box(tmp_path, kafka_cluster):
    fleet = Fleet(tmp_path, kafka_cluster.bootstrap_servers)
    box = Box(tmp_path, fleet, kafka_cluster.bootstrap_servers, groups=["ward3"])
    key = str(tmp_path / "keys" / "control.key")
    try:
        box.start()
        fleet.wait_reported(box.edge_id, lambda r: r["uplink"]["state"] == "online", "online")
        desired = tmp_path / "desired.toml"
        # whole sections: [log] as the box has it, one key changed (applied at the next start)
        desired.write_text('[log]\npartitions = 1\ndurability = "no-fsync"\nretention_seconds = 3600\n')
        done = fleet_cli(fleet, "set", "--group", "ward3", "--base", str(box.config), "--key", key,
                         str(desired))
        assert done.returncode == 0, done.stderr
        r = fleet.wait_reported(box.edge_id, lambda r: (r["desired_result"] or {}).get("result")
                                == "applied", "the group's v1 applied")
        assert r["applied"]["targets"] == {"group:ward3": 1}
        assert r["groups"] == ["ward3"]  # what edge fleet command --group --wait counts on
        assert r["desired_result"]["restart_needed"] == ["log.retention_seconds"]
        done = fleet_cli(fleet, "command", "--edge", box.edge_id, "--wait", "--key", key,
                         "report_status")
        assert done.returncode == 0, done.stderr + done.stdout
        status = fleet_cli(fleet, "status", "--json")
        assert status.returncode == 0, status.stderr
        boxes = json.loads(status.stdout)
        mine = [b for b in (boxes if isinstance(boxes, list) else boxes.get("boxes", []))
                if b.get("edge_id") == box.edge_id]
        assert mine and mine[0]["applied_version"] == 1, status.stdout
    finally:
        box.stop()
        fleet.close()
