"""The signed envelope and the payloads of PROTOCOL.md, as pure functions."""

from __future__ import annotations

import base64
import json
import os

import pytest

import edge.control as control
from edge.control import (
    ControlRefused,
    KeyFileError,
    command_payload,
    desired_payload,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    parse_command,
    parse_desired,
    sign,
    verify,
)


@pytest.fixture
def keys(tmp_path):
    private, public = generate_keypair(tmp_path / "keys")
    return load_private_key(private), load_public_key(public)


def test_public_face():
    assert {"sign", "verify", "generate_keypair", "ControlRefused", "ControlTopics"} <= set(
        control.__all__
    )
    assert all(not name.startswith("_") and hasattr(control, name) for name in control.__all__)


def test_round_trip_and_key_files(tmp_path, keys):
    private, public = keys
    assert oct(os.stat(tmp_path / "keys" / "control.key").st_mode & 0o777) == "0o600"
    payload = desired_payload("group:ward3", 7, {"log": {"quota_mb": 10}}, issued_ms=5)
    value = sign(payload, private)
    envelope = json.loads(value)
    assert envelope["v"] == 1 and envelope["key_id"] == key_id(public) and len(key_id(public)) == 16
    assert verify(value, [public]) == payload
    assert verify(value, {key_id(public): public}) == payload
    desired = parse_desired(verify(value, [public]))
    assert (desired.target, desired.version, desired.config) == ("group:ward3", 7, {"log": {"quota_mb": 10}})


def test_refusals(tmp_path, keys):
    private, public = keys
    value = sign(desired_payload("edge:a", 1, {}, 0), private)
    with pytest.raises(ControlRefused) as info:
        verify(json.dumps(desired_payload("edge:a", 1, {}, 0)).encode(), [public])
    assert info.value.reason == "unsigned"
    _, other_pub = generate_keypair(tmp_path / "other")
    with pytest.raises(ControlRefused) as info:
        verify(value, [load_public_key(other_pub)])
    assert info.value.reason == "unknown_key"
    envelope = json.loads(value)
    envelope["payload"] = base64.b64encode(
        json.dumps(desired_payload("edge:a", 2, {}, 0)).encode()
    ).decode()
    with pytest.raises(ControlRefused) as info:
        verify(json.dumps(envelope).encode(), [public])
    assert info.value.reason == "bad_signature"
    for bad in (b"", b"not json", b"[1]"):
        with pytest.raises(ControlRefused) as info:
            verify(bad, [public])
        assert info.value.reason == "unsigned"
    # over the cap: refused by its size alone, signed or not, before it is parsed
    assert verify(value, [public], max_bytes=len(value))["version"] == 1
    for big in (value + b" ", b"{" * 2000):
        with pytest.raises(ControlRefused, match=f"is {len(big)} bytes, over the box's "
                           rf"\[control\] max_record_bytes = {len(value)}") as info:
            verify(big, [public], max_bytes=len(value))
        assert info.value.reason == "too_large"


def test_commands_parse_and_expire(keys):
    private, public = keys
    payload = command_payload("edge:a", "disable_device", {"device": "gps"}, issued_ms=1000, ttl_ms=500)
    command = parse_command(verify(sign(payload, private), [public]))
    assert command.id == payload["id"] and command.args == {"device": "gps"}
    assert not command.expired(1500) and command.expired(1501)
    with pytest.raises(ControlRefused, match="command: expected one of"):
        parse_command({**payload, "command": "reboot"})
    with pytest.raises(ControlRefused, match="target"):
        parse_desired({**desired_payload("edge:a", 1, {}, 0), "target": "car-17"})
    with pytest.raises(ControlRefused, match="version"):
        parse_desired({**desired_payload("edge:a", 1, {}, 0), "version": "7"})


def test_key_file_errors(tmp_path):
    generate_keypair(tmp_path)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_keypair(tmp_path)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")
    (tmp_path / "junk.pub").write_text("junk")
    with pytest.raises(KeyFileError, match="junk.pub"):
        load_public_key(tmp_path / "junk.pub")
