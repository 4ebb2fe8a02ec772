"""The effective config (base file + desired sections) and the local store, without a cluster."""

from __future__ import annotations

import pytest

from edge import ConfigError, load_config
from edge._logconfig import log_config_of
from edge.control._overlay import check_sections, config_hash, effective_config, overlay, targets_of
from edge.control._report import unhealthy
from edge.control._start import effective_at_start
from edge.control._store import ControlStore, read_state

BASE = {"edge_id": "car-17", "data_dir": "/tmp/x",
        "devices": [{"name": "a", "kind": "temperature", "transport": "serial",
                     "port": "/dev/ttyUSB0", "codec": "text"},
                    {"name": "b", "kind": "temperature", "transport": "serial",
                     "port": "/dev/ttyUSB1", "codec": "text"}],
        "log": {"partitions": 2}}


def test_layers_replace_whole_sections_groups_first_then_the_box():
    assert targets_of("car-17", ["ward3", "north"]) == ["group:ward3", "group:north", "edge:car-17"]
    raw = overlay(BASE, [{"log": {"partitions": 4}}, {"log": {"partitions": 5, "durability": "no-fsync"}}])
    assert raw["log"] == {"partitions": 5, "durability": "no-fsync"} and raw["devices"] == BASE["devices"]
    assert [d["name"] for d in overlay(BASE, [], disabled={"a"})["devices"]] == ["b"]
    assert BASE["log"] == {"partitions": 2}  # the base is not changed
    assert config_hash(raw) == config_hash(dict(reversed(list(raw.items())))) != config_hash(BASE)


def test_validation_is_config_checks_and_fixed_sections_are_refused():
    with pytest.raises(ConfigError) as info:
        effective_config(BASE, [{"log": {"partitions": 0}}], file="edge.toml", env={})
    assert str(info.value) == "edge.toml: log.partitions: expected an integer in 1..1024, got 0"
    with pytest.raises(ConfigError) as info:
        check_sections({"control": {}, "edge_id": "x", "log": {}}, "edge.toml")
    assert sorted(p.key for p in info.value.errors) == ["control", "edge_id"]
    assert effective_config(BASE, [{"log": {"partitions": 7}}], env={}).log.partitions == 7


def test_a_stored_desired_config_is_what_a_restart_runs(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(f'edge_id = "car-17"\ndata_dir = "{tmp_path / "data"}"\n[log]\npartitions = 2\n'
                    '[upstream]\nbootstrap_servers = "127.0.0.1:1"\n'
                    '[control]\nenabled = true\npublic_keys = ["k.pub"]\ngroups = ["ward3"]\n')
    base = load_config(path, env={})
    assert effective_at_start(base, str(path)) is base  # nothing stored yet
    store = ControlStore(log_config_of(base))
    store.put({"desired/group:ward3": {"version": 3, "config": {"log": {"partitions": 4}}},
               "desired/edge:car-17": {"version": 1, "config": {"log": {"partitions": 6}}},
               "seen/edge:car-17": 2, "command/x": {"result": "ok"}, "position/t/0": 5})
    store.close()
    state = read_state(log_config_of(base))
    assert state.seen == {"edge:car-17": 2} and state.positions == {"t/0": 5} and "x" in state.commands
    assert effective_at_start(base, str(path)).log.partitions == 6  # the box's own over its group's
    path.write_text(path.read_text().replace('groups = ["ward3"]', ""))
    # a stored config that no longer validates over a changed file: the file runs as it is
    store = ControlStore(log_config_of(base))
    store.put({"desired/edge:car-17": {"version": 2, "config": {"log": {"partitions": 0}}}})
    store.close()
    assert effective_at_start(base, str(path)) is base


def test_unhealthy_names_what_is_down():
    assert unhealthy({"devices": {"a": {"connected": True}}, "uplink": {"ok": True}}) == []
    assert unhealthy({"devices": {"a": {"connected": False, "last_error": "EIO"}},
                      "streams": {"s": {"ok": False, "state": "crashed"}},
                      "uplink": {"ok": False, "state": "offline", "last_error": "refused"}}) == [
        "device a not connected (EIO)", "stream s not running (crashed)",
        "uplink offline: refused"]
