"""The config schema is stated once: the example and the reference are rendered from it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge import ConfigError, parse_config
from edge._config import (
    ClockSettings,
    ControlSettings,
    HealthConfig,
    LogSettings,
    UpstreamSettings,
)
from edge._devices import DEVICE_TYPES, DeviceConfig
from edge._example import EXAMPLE_CONFIG, example_config
from edge._reference import reference_markdown
from edge._schema import settings_of
from edge.uplink import UplinkConfig, UplinkConfigError
from edge.uplink._config import FROM_EDGE

ROOT = Path(__file__).resolve().parents[2]


def test_the_reference_in_docs_is_up_to_date() -> None:
    # Regenerate with: .venv/bin/python -m edge._reference > docs/configuration.md
    assert (ROOT / "docs" / "configuration.md").read_text() == reference_markdown()


def test_every_key_is_in_the_example_and_the_reference() -> None:
    reference = reference_markdown()
    classes = [LogSettings, HealthConfig, ClockSettings, ControlSettings, UpstreamSettings, DeviceConfig,
               *DEVICE_TYPES.values()]
    for cls in classes:
        for f, _ in settings_of(cls):
            assert f"`{f.name}`" in reference, (cls.__name__, f.name)
            assert (f"\n{f.name} = " in EXAMPLE_CONFIG or f"\n# {f.name} = " in EXAMPLE_CONFIG
                    or f"\n# {f.name}: " in EXAMPLE_CONFIG), (cls.__name__, f.name)
    for f, _ in settings_of(UplinkConfig):
        if f.name not in FROM_EDGE:
            assert f"`{f.name}`" in reference and f.name in EXAMPLE_CONFIG, f.name


def test_the_example_states_the_defaults_of_the_schema() -> None:
    # The example's values for keys it does not choose are the dataclasses' defaults, and
    # its commented-out lines uncommented still validate.
    cfg = parse_config(EXAMPLE_CONFIG)
    assert (cfg.log, cfg.health, cfg.clock) == (LogSettings(), HealthConfig(), ClockSettings())
    assert example_config() == EXAMPLE_CONFIG
    # (but the custom topology's: its module is an example's name, not an importable one)
    commented = re.compile(r"# (?!name |module |params )([a-z_]+) = ")
    uncommented = "\n".join(line[2:] if commented.match(line) else line
                            for line in EXAMPLE_CONFIG.splitlines())
    data = tomllib.loads(uncommented)
    assert data["health"]["token"] and data["devices"][0]["codec_options"] == {}


def test_each_device_kind_is_one_line_in_the_table() -> None:
    assert list(DEVICE_TYPES) == ["serial", "mqtt", "w1"]
    for transport, cls in DEVICE_TYPES.items():
        assert issubclass(cls, DeviceConfig) and cls.examples, transport
        assert [f.default for f in dataclasses.fields(cls) if f.name == "transport"] == [transport]
    bad = 'edge_id = "e"\ndata_dir = "/d"\n[[devices]]\nname = "a"\nkind = "gps"\ntransport = "can"\n' \
          'codec = "nmea0183"\nbaudrate = 9600\n'
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    assert [str(p) for p in info.value.errors] == [
        'edge.toml: devices[0].transport: expected "serial" or "mqtt" or "w1", got "can"']


def test_a_key_of_another_transport_is_named_with_the_keys_of_this_one() -> None:
    text = ('edge_id = "e"\ndata_dir = "/d"\n[[devices]]\nname = "a"\nkind = "gps"\n'
            'transport = "serial"\nport = "/dev/x"\ncodec = "nmea0183"\nqos = 1\n')
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    (problem,) = info.value.errors
    assert problem.key == "devices[0].qos" and "baudrate" in problem.expected
    assert "qos" not in problem.expected  # an MQTT key, not a serial one


def test_the_uplink_reports_every_bad_key_at_once(tmp_path: Path) -> None:
    with pytest.raises(UplinkConfigError) as info:
        UplinkConfig(edge_id="e1", bootstrap_servers="k:9092", data_dir=tmp_path,
                     topics={"readings": "up.readings"}, delivery="maybe", batch_records=0,
                     dlq_topic="bad name!")
    assert [p.key for p in info.value.errors] == ["delivery", "batch_records", "dlq_topic"]
    assert info.value.key == "delivery" and info.value.got == "maybe"
    text = ('edge_id = "e"\ndata_dir = "/d"\n[upstream]\nbootstrap_servers = "k:9092"\n'
            'delivery = "maybe"\nbatch_records = 0\n')
    with pytest.raises(ConfigError) as cfg:
        parse_config(text)
    assert [str(p) for p in cfg.value.errors] == [
        "edge.toml: upstream.delivery: expected 'exactly-once' or 'at-least-once', got \"maybe\"",
        "edge.toml: upstream.batch_records: expected an integer >= 1, got 0"]


def test_cli_example_is_the_rendered_example() -> None:
    proc = subprocess.run([sys.executable, "-m", "edge", "config", "example"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == EXAMPLE_CONFIG
