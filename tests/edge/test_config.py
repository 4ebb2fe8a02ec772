"""Config: every mistake named with file, key path and expected form; the example validates."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge._config import load_config, parse_config
from edge._errors import ConfigError, EdgeError
from edge._example import EXAMPLE_CONFIG
from edge._exit import EX_CONFIG

GOOD = """
edge_id = "edge-1"
data_dir = "/tmp/edge"

[[devices]]
name = "car-1"
kind = "gps"
transport = "serial"
port = "/dev/ttyUSB0"
codec = "nmea0183"

[[devices]]
name = "ward"
kind = "temperature"
transport = "mqtt"
host = "127.0.0.1"
codec = "zigbee2mqtt"
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "edge.toml")
    assert isinstance(info.value, EdgeError) and info.value.retriable is False
    return [str(p) for p in info.value.errors]


def test_good_config_has_defaults() -> None:
    cfg = parse_config(GOOD)
    assert cfg.edge_id == "edge-1"
    gps, ward = cfg.devices
    assert (gps.topic, gps.device_id, gps.baudrate) == ("gps", "car-1", 9600)
    assert ward.filters == ("zigbee2mqtt/#",) and ward.client_id == "edge-edge-1-ward"
    assert cfg.health.address == "127.0.0.1:9108"
    assert cfg.log.dead_letter_topic == "dead-letters"


def test_the_example_validates() -> None:
    cfg = parse_config(EXAMPLE_CONFIG)
    assert [d.name for d in cfg.devices] == ["car-1", "bed-1", "ward-sensors"]  # w1 is disabled


def test_baudrate_message_names_file_key_and_expectation() -> None:
    text = GOOD + '\n[[devices]]\nname="x"\nkind="gps"\ntransport="serial"\nport="/dev/x"\n' \
        'codec="nmea0183"\nbaudrate="fast"\n'
    assert errors_of(text) == ['edge.toml: devices[2].baudrate: expected an integer, got "fast"']


@pytest.mark.parametrize(("snippet", "expected"), [
    ('[log]\npartitions = 0', "edge.toml: log.partitions: expected an integer in 1..1024, got 0"),
    ('[log]\nfull_policy = "drop"', 'log.full_policy: expected "reject" or "drop-oldest", got "drop"'),
    ('[log]\ndurability = true', 'log.durability: expected "fsync" or "no-fsync", got true'),
    ('[health]\naddress = "localhost"', 'health.address: expected "host:port"'),
    ('[log]\nretension_seconds = 5', "log.retension_seconds: expected one of the keys"),
    ('[upstream]\nenabled = true', "upstream.bootstrap_servers: expected"),
])
def test_each_kind_of_mistake(snippet: str, expected: str) -> None:
    (msg,) = errors_of(GOOD + "\n" + snippet + "\n")
    assert expected in msg


@pytest.mark.parametrize(("change", "expected"), [
    (('data_dir = "/tmp/edge"', 'data_dir = ""'), 'edge.toml: data_dir: expected a directory path, got ""'),
    (('codec = "zigbee2mqtt"', 'codec = "zigbee2mqtt"\ntopic = "__drop_ledger"'),
     "devices[1].topic: expected a topic name"),
    (('codec = "zigbee2mqtt"', 'codec = "zigbee2mqtt"\nfilters = ["zigbee2mqtt/A-+"]'),
     "devices[1].filters: expected a non-empty array of MQTT topic filters"),
    (('codec = "zigbee2mqtt"', 'codec = "zigbee2mqtt"\nfilters = ["a/#/b"]'),
     "devices[1].filters: expected"),
])
def test_what_edge_run_could_not_use_is_a_config_error(change: tuple[str, str], expected: str) -> None:
    # Each passed the check before: "" became the current directory, a device writing
    # to the log's own __drop_ledger had every reading refused, and paho's thread died on
    # the filter ("Invalid subscription filter") so the device never connected.
    (msg,) = errors_of(GOOD.replace(*change))
    assert expected in msg


def test_mqtt_filters_with_whole_level_wildcards_are_fine() -> None:
    text = GOOD.replace('codec = "zigbee2mqtt"', 'codec = "zigbee2mqtt"\nfilters = ["a/+/b", "#", "+/x/#"]')
    assert parse_config(text).devices[1].filters == ("a/+/b", "#", "+/x/#")


def test_every_error_is_reported_at_once() -> None:
    text = """
edge_id = "edge 1"
[[devices]]
name = "a"
kind = "thermometer"
transport = "serial"
codec = "nmea"
port = 5
[[devices]]
name = "b"
kind = "temperature"
transport = "mqtt"
host = "h"
codec = "zigbee2mqtt"
qos = 2
"""
    msgs = errors_of(text)
    keys = [m.split(": ")[1] for m in msgs]
    assert keys == ["edge_id", "data_dir", "devices[0].kind", "devices[0].codec",
                    "devices[0].port", "devices[1].qos"]
    assert 'got "thermometer"' in msgs[2] and "nmea0183" in msgs[3]
    assert msgs[-1] == "edge.toml: devices[1].qos: expected 0 or 1, got 2"


def test_duplicate_names_and_bad_codec_options() -> None:
    text = GOOD + '\n[[devices]]\nname="car-1"\nkind="gps"\ntransport="serial"\nport="/dev/y"\n' \
        'codec="gatt.0x2A35"\ncodec_options={framing="base64"}\n'
    (msg,) = errors_of(text)
    assert msg.startswith("edge.toml: devices[2].codec_options: expected options that gatt.0x2A35")


def test_toml_syntax_error() -> None:
    (msg,) = errors_of("edge_id = \n")
    assert msg.startswith("edge.toml: expected valid TOML, got ")


def test_env_overrides_secrets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "edge.toml"
    path.write_text(GOOD + '\n[upstream]\nbootstrap_servers = "k:9092"\nsasl_password = "file"\n')
    cfg = load_config(path, env={"EDGE_UPSTREAM_SASL_PASSWORD": "env-secret",
                                 "EDGE_DEVICE_WARD_PASSWORD": "mqtt-secret"})
    assert cfg.upstream.settings["sasl_password"] == "env-secret"
    assert cfg.devices[1].password == "mqtt-secret"
    assert "secret" not in repr(cfg)


def run_edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True,
                          timeout=60)


SASL = ('\n[upstream]\nbootstrap_servers = "k:9092"\nsecurity_protocol = "SASL_PLAINTEXT"\n'
        'sasl_mechanism = "PLAIN"\nsasl_username = "u"\n')


@pytest.mark.parametrize(("value", "kind"), [('["hunter2-secret"]', "an array"),
                                             ("8675309", "an integer"),
                                             ("{ v = \"hunter2-secret\" }", "a table")])
def test_secrets_are_type_checked_and_never_shown(value: str, kind: str) -> None:
    # Every secret key: devices[].password, [upstream]'s sasl_password and
    # ssl_key_password, [health] token. Each is named with what was expected, its value never shown.
    device = GOOD.replace('codec = "zigbee2mqtt"', f'codec = "zigbee2mqtt"\npassword = {value}')
    for text, key, expected in (
        (device, "devices[1].password", "a non-empty string"),
        (GOOD + SASL + f"sasl_password = {value}\n", "upstream.sasl_password",
         "a string (or $EDGE_UPSTREAM_SASL_PASSWORD)"),
        (GOOD + SASL + f'sasl_password = "p"\nssl_key_password = {value}\n',
         "upstream.ssl_key_password", "a string"),
        (GOOD + f"[health]\ntoken = {value}\n", "health.token",
         "a string of 16 or more printable characters, no spaces"),
    ):
        assert errors_of(text) == [f"edge.toml: {key}: expected {expected}, "
                                   f"got {kind} (not shown: a secret)"]
        with pytest.raises(ConfigError) as info:
            parse_config(text, "edge.toml")
        assert "hunter2" not in repr(info.value.errors) and "8675309" not in repr(info.value.got)


def test_cli_check_names_a_bad_secret_without_showing_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "edge.toml"
    path.write_text(GOOD + SASL + 'sasl_password = ["hunter2-secret"]\n')
    for args in (("config", "check", str(path)), ("run", "--config", str(path))):
        proc = run_edge(*args)
        assert proc.returncode == EX_CONFIG, proc.stderr
        assert "edge.toml: upstream.sasl_password: expected a string" in proc.stderr
        assert "hunter2" not in proc.stderr + proc.stdout


def test_cli_example_validates_with_check(tmp_path) -> None:  # type: ignore[no-untyped-def]
    example = run_edge("config", "example")
    assert example.returncode == 0
    path = tmp_path / "edge.toml"
    path.write_text(example.stdout)
    check = run_edge("config", "check", str(path))
    assert check.returncode == 0, check.stderr
    assert "ok (3 devices" in check.stdout


def test_cli_check_reports_all_errors_and_fails(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "edge.toml"
    path.write_text('edge_id = "e"\ndata_dir = "/d"\n[[devices]]\nname = "a"\nkind = "gps"\n'
                    'transport = "serial"\nport = "/dev/x"\ncodec = "nmea0183"\nbaudrate = "fast"\n'
                    '[log]\npartitions = -1\n')
    check = run_edge("config", "check", str(path))
    assert check.returncode == EX_CONFIG
    assert 'edge.toml: devices[0].baudrate: expected an integer, got "fast"' in check.stderr
    assert "edge.toml: log.partitions: expected an integer in 1..1024, got -1" in check.stderr
    assert "2 errors" in check.stderr


def test_cli_run_with_bad_config_exits_non_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "edge.toml"
    path.write_text('edge_id = "e"\n')
    proc = run_edge("run", "--config", str(path))
    assert proc.returncode == EX_CONFIG
    assert "edge.toml: data_dir: expected a directory path" in proc.stderr
    missing = run_edge("run", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == EX_CONFIG and "expected a readable file" in missing.stderr


@pytest.mark.parametrize("kind", ["fifo", "char device", "too big"])
def test_a_config_that_is_no_regular_file_is_refused_at_once(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    # `-c /dev/ttyUSB0` or a FIFO blocked edge run for ever (a SIGHUP reload too);
    # /dev/zero read until MemoryError.
    import os

    path = tmp_path / "edge.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "too big":
        path.write_text("#" * (2 << 20))
    what = {"fifo": 'expected a regular file, got "a FIFO"',
            "char device": 'expected a regular file, got "a character device"',
            "too big": "expected a config of at most 1048576 bytes"}[kind]
    config = "/dev/zero" if kind == "char device" else str(path)
    for argv in (("config", "check", config), ("run", "--config", config)):
        proc = run_edge(*argv)
        assert proc.returncode == EX_CONFIG and what in proc.stderr, proc.stderr


def test_public_face() -> None:
    import edge

    assert sorted(edge.__all__) == sorted([
        "Config", "ConfigError", "ConfigProblem", "DeviceConfig", "DeviceRunner", "EdgeError",
        "HealthConfig", "LogSettings", "Service", "StartupError", "UpstreamSettings", "config_from_dict",
        "load_config", "parse_config", "run_service",
    ])
    assert all(hasattr(edge, name) for name in edge.__all__)


def test_a_config_every_user_can_read_with_a_secret_is_warned_about(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edge._exposure import secret_keys_in

    path = tmp_path / "edge.toml"
    path.write_text(GOOD.replace('codec = "zigbee2mqtt"', 'codec = "zigbee2mqtt"\npassword = "hunter2-secret"')
                    + SASL + 'sasl_password = "hunter2-secret"\n')
    assert secret_keys_in(parse_config_dict(path)) == ["devices[1].password", "upstream.sasl_password"]
    path.chmod(0o644)
    check = run_edge("config", "check", str(path))
    assert check.returncode == 0, check.stderr
    assert "readable by every user (mode 0644) and holds devices[1].password, upstream.sasl_password" \
        in check.stderr and "hunter2" not in check.stderr
    path.chmod(0o640)  # group-readable: the service's group (install.sh: root:edge-config)
    assert run_edge("config", "check", str(path)).stderr == ""


def parse_config_dict(path):  # type: ignore[no-untyped-def]
    import tomllib

    return tomllib.loads(path.read_text())


def test_the_commit_interval_reaches_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edge._logconfig import log_config_of

    assert log_config_of(parse_config(GOOD)).commit_interval_ms == 1000  # the appliance's default
    cfg = parse_config(GOOD.replace('data_dir = "/tmp/edge"', f'data_dir = "{tmp_path}"')
                       + "\n[log]\ncommit_interval_ms = 250\n")
    assert log_config_of(cfg).commit_interval_ms == 250
    [error] = errors_of(GOOD + "\n[log]\ncommit_interval_ms = 60000\n")
    assert "log.commit_interval_ms" in error and "0..5000" in error and "60000" in error
