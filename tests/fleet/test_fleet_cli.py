"""edge fleet without a cluster: arguments, the desired document's check, keys, the table.

What must fail before anything reaches the cluster is shown failing with no cluster at
all (an address nobody listens on): nothing was sent because nothing could be.
"""

from __future__ import annotations

import argparse
import json
import os
import stat

import pytest

import edge.fleet
from edge.control import load_private_key, load_public_key
from edge.fleet import (
    FleetUsageError,
    box_state,
    check_desired,
    command_args,
    inventory_json,
    render_status,
)
from edge.fleet._cli import parse_duration
from edge.fleet._inventory import group_members
from edge.fleet._watch import watch_line

from ._helpers import fleet, reported

NOWHERE = "127.0.0.1:1"  # nothing listens: a test that reaches the cluster fails loudly

DESIRED_OK = """
[[devices]]
transport = "serial"
name = "t1"
kind = "temperature"
codec = "text"
port = "/dev/ttyUSB0"
"""


def test_exports_are_what_we_mean() -> None:
    assert set(edge.fleet.__all__) == {
        "BoxState", "ClusterError", "FleetConnection", "FleetError", "FleetUsageError",
        "PartitionsChanged", "Published", "Record", "box_state", "check_desired", "command_args",
        "control_topic_specs", "inventory_json", "latest_version", "now_ms", "publish_command",
        "publish_desired", "read_compacted", "read_desired", "read_inventory", "render_status"}
    for name in edge.fleet.__all__:
        assert getattr(edge.fleet, name) is not None


@pytest.mark.parametrize(("text", "seconds"), [("30", 30), ("30s", 30), ("10m", 600),
                                               ("2h", 7200), ("7d", 604800), ("500ms", 0.5),
                                               ("1.5m", 90)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1s", "10x", "nan", "fast"])
def test_bad_durations_say_the_form(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="30s, 10m, 2h or 7d"):
        parse_duration(text)


def test_command_arguments() -> None:
    assert command_args("rereplicate", ["topic=readings", "offset=0"]) == (
        "rereplicate", {"topic": "readings", "offset": 0})
    assert command_args("rereplicate", ["topic=r", "timestamp_ms=1700000000000"])[1] == {
        "topic": "r", "timestamp_ms": 1700000000000}
    assert command_args("enable-device", ["device=t1"]) == ("enable_device", {"device": "t1"})
    assert command_args("report_status", []) == ("report_status", {})


@pytest.mark.parametrize(("name", "words", "message"), [
    ("reboot", [], "expected one of disable_device, enable_device, report_status, rereplicate"),
    ("rereplicate", ["topic=r"], "takes topic=... (offset=... | timestamp_ms=...)"),
    ("rereplicate", ["topic=r", "offset=1", "timestamp_ms=2"], "takes topic=..."),
    ("rereplicate", ["topic=r", "offset=-1"], "offset: expected an integer >= 0, got -1"),
    ("enable_device", ["t1"], "expected KEY=VALUE, got 't1'"),
    ("disable_device", ["name=t1"], "unknown argument 'name' (disable_device takes device=...)"),
    ("report_status", ["now=1"], "takes no arguments"),
])
def test_bad_command_arguments_say_what_the_command_takes(name: str, words: list[str],
                                                          message: str) -> None:
    with pytest.raises(FleetUsageError) as info:
        command_args(name, words)
    assert message in str(info.value)


def test_a_desired_state_is_checked_by_edge_config_checks_code() -> None:
    from edge._errors import ConfigError

    check_desired({"devices": []})
    with pytest.raises(ConfigError) as info:
        check_desired({"devices": [{"transport": "serial", "name": "t1", "kind": "temperature",
                                    "codec": "text", "port": "/dev/x", "baudrate": "fast"}],
                       "control": {"enabled": False}, "edge_id": "other"}, "d.toml")
    text = str(info.value)
    assert "d.toml: control: expected a section a desired state may set" in text
    assert "d.toml: edge_id: expected a section" in text
    with pytest.raises(ConfigError, match='d.toml: devices.0..baudrate: expected .*got "fast"'):
        check_desired({"devices": [{"transport": "serial", "name": "t1", "kind": "temperature",
                                    "codec": "text", "port": "/dev/x", "baudrate": "fast"}]},
                      "d.toml")


def test_set_refuses_an_invalid_document_before_the_key_or_the_cluster(tmp_path) -> None:
    bad = tmp_path / "desired.toml"
    bad.write_text(DESIRED_OK + 'baudrate = "fast"\n')
    proc = fleet("set", "--group", "ward3", str(bad), "--bootstrap-server", NOWHERE)
    assert proc.returncode == 78, proc.stderr
    assert 'desired.toml: devices[0].baudrate: expected' in proc.stderr
    assert "1 error in" in proc.stderr and "nothing was published" in proc.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[[devices]\n")
    proc = fleet("set", "--edge", "b1", str(broken), "--bootstrap-server", NOWHERE)
    assert proc.returncode == 78 and "broken.toml: expected valid TOML" in proc.stderr


def test_keygen_and_the_key_that_set_needs(tmp_path) -> None:
    proc = fleet("keygen", str(tmp_path / "keys"))
    assert proc.returncode == 0, proc.stderr
    private, public = tmp_path / "keys" / "control.key", tmp_path / "keys" / "control.pub"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert load_private_key(private).public_key() == load_public_key(public)
    again = fleet("keygen", str(tmp_path / "keys"))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert private.read_bytes() == private.read_bytes()
    desired = tmp_path / "d.toml"
    desired.write_text(DESIRED_OK)
    proc = fleet("set", "--edge", "b1", str(desired), "--bootstrap-server", NOWHERE,
                 env={"EDGE_FLEET_KEY": ""})
    assert proc.returncode == 2 and "no signing key: pass --key FILE" in proc.stderr
    proc = fleet("set", "--edge", "b1", str(desired), "--bootstrap-server", NOWHERE,
                 "--key", str(public))
    assert proc.returncode == 2 and "control.pub: not an unencrypted PEM private key" in proc.stderr


def test_an_unreachable_cluster_is_one_line_and_status_75(tmp_path) -> None:
    proc = fleet("status", "--bootstrap-server", NOWHERE, "--timeout", "3s")
    assert proc.returncode == 75, proc.stderr
    assert proc.stderr.startswith("edge fleet: connecting to the cluster at 127.0.0.1:1: ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = fleet("status")
    assert proc.returncode == 2 and "--bootstrap-server: expected host:port" in proc.stderr


def test_connection_options_are_checked(tmp_path) -> None:
    proc = fleet("status", "--bootstrap-server", NOWHERE, "--security-protocol", "SASL_SSL",
                 "--sasl-mechanism", "PLAIN", "--sasl-username", "ops",
                 env={"EDGE_FLEET_SASL_PASSWORD": ""})
    assert proc.returncode == 2 and "$EDGE_FLEET_SASL_PASSWORD" in proc.stderr
    proc = fleet("status", "--bootstrap-server", NOWHERE, "--ssl-cafile", "/etc/hostname")
    assert proc.returncode == 2 and "--ssl-cafile needs --security-protocol SSL" in proc.stderr


NOW = 1_764_780_000_000


def _boxes() -> list:
    out = [box_state(f"ward3-bed{i:02d}".encode(), json.dumps(reported(
        f"ward3-bed{i:02d}", ts_ms=NOW - i * 30_000,
        applied={"version": 7, "hash": "a" * 64, "target": "group:ward3"},
        desired_result={"version": 7, "result": "applied"},
        uplink={"state": "running", "lag_records": i * 1000})).encode()) for i in range(12)]
    out.append(box_state(b"ward3-bed99", json.dumps(reported(
        "ward3-bed99", ts_ms=NOW, desired_result={
            "version": 8, "result": "refused", "errors": [
                'desired.toml: devices[0].baudrate: expected an integer, got "fast"']},
        last_error="devices t1: /dev/ttyUSB0: no such device")).encode()))
    out.append(box_state(b"a-box-with-a-much-longer-edge-id-than-the-column", b"{not json"))
    return out


def test_the_status_table_fits_80_columns_and_says_what_went_wrong() -> None:
    text = render_status(_boxes(), NOW, stale_s=300)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    assert lines[0].split() == ["EDGE", "APPLIED", "LAST", "DESIRED", "STATE", "LAG", "LAST",
                                "SEEN"]
    bed1 = next(line for line in lines if line.startswith("ward3-bed01 "))
    assert bed1.split() == ["ward3-bed01", "v7", "applied", "v7", "running", "1000", "30s", "ago"]
    bed11 = next(line for line in lines if line.startswith("ward3-bed11 "))
    assert "offline" in bed11.split() and "5m ago" in bed11  # 330 s > the 300 s stale bound
    assert any(line.startswith("ward3-bed99 ") and "refused v8" in line for line in lines)
    notes = "\n".join(lines)
    assert 'ward3-bed99: refused v8: desired.toml: devices[0].baudrate: expected an integer' in notes
    assert "ward3-bed99: last error: devices t1: /dev/ttyUSB0: no such device" in notes
    assert "unreadable" in notes and "a-box-with-a-much-longer-edge-id-than-the-column:" in notes
    assert lines[-1].startswith("14 boxes: ")
    assert render_status([], NOW) == "no box has reported yet\n"


def test_status_json_has_every_field_and_the_derived_state() -> None:
    doc = json.loads(inventory_json(_boxes(), NOW, stale_s=300))
    assert [b["edge_id"] for b in doc] == sorted(b["edge_id"] for b in doc)
    bed = next(b for b in doc if b["edge_id"] == "ward3-bed02")
    assert bed["state"] == "running" and bed["last_seen_s"] == 60 and bed["lag"] == 2000
    assert bed["applied_version"] == 7 and bed["reported"]["clock"] == "trusted"


def test_a_refusal_without_a_version_says_why() -> None:
    unsigned = box_state(b"b1", json.dumps(reported("b1", ts_ms=NOW, desired_result={
        "version": None, "target": "group:g", "result": "refused", "reason": "unsigned",
        "errors": ["unsigned: the record value is not a signed envelope"]})).encode())
    assert unsigned.result_text() == "refused unsigned"
    text = render_status([unsigned], NOW)
    assert "b1: refused unsigned: unsigned: the record value is not a signed envelope" in text
    rolled = box_state(b"b2", json.dumps(reported("b2", ts_ms=NOW, desired_result={
        "version": 3, "result": "rolled_back", "reason": "not healthy within 15 s: uplink",
        "errors": ["uplink: offline"]})).encode())
    assert rolled.result_text() == "rolled back v3" and rolled.result_detail() == "uplink: offline"


def test_watch_lines() -> None:
    from edge.fleet import Record

    rec = Record("edge.control.results", 0, 5, NOW, b"b1", json.dumps(
        {"command_id": "0123456789", "edge_id": "b1", "ts_ms": NOW, "result": "expired",
         "detail": "seen 2 h after it was issued"}).encode())
    assert watch_line(rec).endswith("result   b1: command 01234567 expired: seen 2 h after it "
                                    "was issued")
    rec = Record("edge.control.reported", 0, 5, NOW, b"b1",
                 json.dumps(reported("b1", uplink={"state": "offline", "lag_records": 12})).encode())
    assert watch_line(rec).endswith("reported b1: applied v0, last desired -, uplink offline, "
                                    "lag 12")
    assert json.loads(watch_line(rec, as_json=True))["value"]["edge_id"] == "b1"


def test_group_members_are_the_online_boxes_whose_report_lists_the_group() -> None:
    boxes = [box_state(k.encode(), json.dumps(doc).encode()) for k, doc in [
        ("a", reported("a", ts_ms=NOW, groups=["ward3", "icu"])),
        ("b", reported("b", ts_ms=NOW, groups=["icu"])),
        ("c", reported("c", ts_ms=NOW - 3_600_000, groups=["ward3"])),  # an hour silent
        ("d", reported("d", ts_ms=NOW))]]  # from before reports carried groups
    assert boxes[0].groups == ("ward3", "icu") and boxes[3].groups is None
    assert group_members(boxes, "ward3", NOW) == ({"a"}, {"c"})
    assert group_members(boxes, "icu", NOW) == ({"a", "b"}, set())
