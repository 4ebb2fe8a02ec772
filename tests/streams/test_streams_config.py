"""[[streams]] in the appliance's config: built-in and custom topologies, errors with their keys."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edge import ConfigError, parse_config
from edge._example import EXAMPLE_CONFIG
from edge._exit import EX_CONFIG
from edge.streams import Topology
from edge.streams._config import TopologyConfig, build_topology

HEAD = 'edge_id = "edge-1"\ndata_dir = "/tmp/edge-test"\n'

GOOD = HEAD + textwrap.dedent('''
    [[streams]]
    name = "vitals"
    source = ["temperature", "temperature.lab"]
    sink = "temperature.c"

    [[streams.steps]]
    builtin = "normalise_units"
    fields = { temp = "F" }

    [[streams.steps]]
    builtin = "fever"
    raise_at = 38.5

    [[streams]]
    name = "custom"
    module = "tests.streams._custom_topology:build"
    params = { threshold = 40 }

    [[streams]]
    name = "off"
    enabled = false
    source = "x"
    steps = [{ builtin = "fever" }]
''')


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(HEAD + textwrap.dedent(text), "edge.toml")
    return [str(p) for p in exc.value.errors]


def test_builtin_and_custom_topologies_parse_and_build():
    cfg = parse_config(GOOD)
    assert [t.name for t in cfg.streams] == ["vitals", "custom"]      # "off" is switched off
    vitals, custom = cfg.streams
    assert vitals.source == ("temperature", "temperature.lab") and vitals.sink == "temperature.c"
    assert [(s.builtin, dict(s.params)) for s in vitals.steps] == [
        ("normalise_units", {"fields": {"temp": "F"}}), ("fever", {"raise_at": 38.5})]
    t = build_topology(vitals)
    assert isinstance(t, Topology) and t.name == "vitals" and t.group_id == "streams.vitals"
    assert t.source_topics == ["temperature", "temperature.lab"]
    assert sorted(t.sink_topics) == ["alerts", "temperature.c"]
    assert "02-fever" in t.describe()
    c = build_topology(custom)
    assert c.name == "custom-hot" and c.sink_topics == ["hot"]
    assert build_topology(vitals) is not t                           # a fresh one per call


def test_the_example_config_validates_and_has_topologies():
    cfg = parse_config(EXAMPLE_CONFIG)
    assert [t.name for t in cfg.streams] == ["ward-temperature", "ward-blood-pressure", "fleet"]
    sinks = {t.name: set(build_topology(t).sink_topics) for t in cfg.streams}
    assert sinks == {"ward-temperature": {"alerts", "temperature.1m"},
                     "ward-blood-pressure": {"alerts.blood_pressure"},
                     "fleet": {"gps.track", "alerts.geofence"}}


@pytest.mark.parametrize(("text", "expected"), [
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     steps = [{ builtin = "fever", raise_at = "hot" }]
     ''', 'edge.toml: streams[0].steps[0].raise_at: expected a number, got "hot"'),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     steps = [{ builtin = "fevr" }]
     ''', 'edge.toml: streams[0].steps[0].builtin: expected a built-in: "normalise_units", '),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     steps = [{ raise_at = 39 }]
     ''', "edge.toml: streams[0].steps[0].builtin: expected a built-in: "),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     steps = [{ builtin = "fever", raise = 39 }]
     ''', 'edge.toml: streams[0].steps[0].raise: expected a parameter of fever: raise_at, '),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     steps = [{ builtin = "fever", raise_at = 37, clear_at = 38 }]
     ''', "edge.toml: streams[0].steps[0].clear_at: expected a number <= raise_at (37)"),
    ('''
     [[streams]]
     name = "v"
     source = "gps"
     steps = [{ builtin = "geofence", fences = [{ name = "a", lat = 1, lon = 2 }] }]
     ''', "edge.toml: streams[0].steps[0].fences[0].radius_m: expected a number"),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     steps = [{ builtin = "downsample", fields = ["temperature_c"] }]
     ''', "edge.toml: streams[0].steps[0].topic: expected a value (downsample needs topic), "
          "got nothing (the key is missing)"),
    ('''
     [[streams]]
     name = "v"
     steps = [{ builtin = "fever" }]
     ''', "edge.toml: streams[0].source: expected a topic name or an array of topic names"),
    ('''
     [[streams]]
     name = "v w"
     source = "temperature"
     sink = "out"
     ''', 'edge.toml: streams[0].name: expected a topology name'),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     ''', "edge.toml: streams[0].steps: expected an array of built-in steps"),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     steps = []
     ''', "edge.toml: streams[0].steps: expected an array of built-in steps"),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     sink = "temperature"
     ''', 'edge.toml: streams[0]: expected output topics other than its own sources (it would '
          'read its own output), got "temperature"'),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     steps = [{ builtin = "fever", topic = "temperature" }]
     ''', "edge.toml: streams[0]: expected output topics other than its own sources"),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     sink = "x"
     [[streams]]
     name = "v"
     source = "temperature"
     sink = "y"
     ''', 'edge.toml: streams[1].name: expected a name not used before (streams[0] has it), '
          'got "v"'),
    ('''
     [[streams]]
     name = "v"
     source = "temperature"
     sink = "x"
     colour = "red"
     ''', 'edge.toml: streams[0].colour: expected one of the keys enabled, late_topic, name, '),
    ('''
     streams = "all of them"
     ''', 'edge.toml: streams: expected an array of tables ([[streams]]), got "all of them"'),
    ('''
     [[streams]]
     name = "c"
     module = "tests.streams._custom_topology:build"
     source = "temperature"
     ''', "edge.toml: streams[0].source: expected one of the keys enabled, late_topic, module, "
          "name, params (a topology with module = ... takes no source, steps or sink)"),
    ('''
     [[streams]]
     name = "c"
     module = "tests/streams/custom.py"
     ''', 'edge.toml: streams[0].module: expected "package.module:function"'),
    ('''
     [[streams]]
     name = "c"
     module = "no_such_package.topology:build"
     ''', 'edge.toml: streams[0].module: expected "package.module:function" naming an '
          "importable function (ModuleNotFoundError: No module named 'no_such_package')"),
    ('''
     [[streams]]
     name = "c"
     module = "tests.streams._custom_topology:nope"
     ''', "naming an importable function (AttributeError: "),
    ('''
     [[streams]]
     name = "c"
     module = "tests.streams._custom_topology:NOT_CALLABLE"
     ''', "(TypeError: tests.streams._custom_topology:NOT_CALLABLE is a int, not a function)"),
    ('''
     [[streams]]
     name = "c"
     module = "tests.streams._custom_topology:not_a_topology"
     ''', "streams[0].module: expected a function that builds a Topology from these params "
          "(TypeError: tests.streams._custom_topology:not_a_topology returned str, not a "
          "Topology)"),
    ('''
     [[streams]]
     name = "c"
     module = "tests.streams._custom_topology:broken"
     params = { threshold = 1 }
     ''', "streams[0].params: expected a function that builds a Topology from these params "
          "(ValueError: threshold 1 is silly), got a table"),
    ('''
     [[streams]]
     name = "c1"
     module = "tests.streams._custom_topology:build"
     [[streams]]
     name = "c2"
     module = "tests.streams._custom_topology:build"
     ''', "edge.toml: streams[1]: expected a topology whose name is not used before "
          "(streams[0] also builds 'custom-hot': they would share a consumer group)"),
])
def test_errors_name_the_file_key_and_what_was_expected(text, expected):
    found = problems(text)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_in_one_pass():
    found = problems('''
        [[streams]]
        name = "a"
        source = "temperature"
        steps = [{ builtin = "fever", raise_at = "hot" }, { builtin = "threshold" }]
        [[streams]]
        name = "b"
        source = 5
        sink = "x"
        ''')
    keys = [p.split(": ")[1] for p in found]
    assert keys == ["streams[0].steps[0].raise_at", "streams[0].steps[1].field",
                    "streams[1].source"]


def test_config_without_streams_has_none():
    assert parse_config(HEAD).streams == ()


def test_build_topology_from_code():
    from edge.streams._config import StepConfig

    t = build_topology(TopologyConfig("bp", source=("blood_pressure",),
                                      steps=(StepConfig("blood_pressure"),)))
    assert t.sink_topics == ["alerts.blood_pressure"]


def test_edge_config_check_names_the_key(tmp_path):
    bad = tmp_path / "edge.toml"
    bad.write_text(HEAD + '[[streams]]\nname = "v"\nsource = "t"\n'
                   'steps = [{ builtin = "fever", clear_at = 39 }]\n')
    r = subprocess.run([sys.executable, "-m", "edge", "config", "check", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == EX_CONFIG
    assert "edge.toml: streams[0].steps[0].clear_at: expected a number <= raise_at (38)" \
        in r.stderr


def test_edge_streams_describe_prints_what_will_run(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(EXAMPLE_CONFIG)
    r = subprocess.run([sys.executable, "-m", "edge", "streams", "describe", "--config", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "# [[streams]] ward-temperature (3 built-in steps: normalise_units, fever, downsample)" \
        in out
    assert '#   02-fever: raise_at = 38.0, clear_at = 37.5, field = "temperature_c"' in out
    assert "Topology: ward-temperature (consumer group streams.ward-temperature)" in out
    assert "Sink: 02-fever-sink (topic: alerts)" in out
    assert "Sink: 03-downsample-sink (topic: temperature.1m)" in out
    assert "Sink: 01-blood_pressure-sink (topic: alerts.blood_pressure)" in out
    assert "Source: fleet-source (topics: [gps])" in out


def test_edge_streams_describe_custom_and_none_and_bad(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(HEAD + '[[streams]]\nname = "c"\nmodule = "tests.streams._custom_topology:build"'
                    "\nparams = { threshold = 40 }\n")
    cmd = [sys.executable, "-m", "edge", "streams", "describe", "-c", str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "# [[streams]] c (custom, tests.streams._custom_topology:build)" in r.stdout
    assert "#   params: { threshold = 40 }" in r.stdout and "(topic: hot)" in r.stdout
    path.write_text(HEAD)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("no [[streams]] topologies configured")
    path.write_text(HEAD + '[[streams]]\nname = "v"\nsource = "t"\n')
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == EX_CONFIG and "streams[0].steps: expected" in r.stderr


def test_edge_config_check_counts_the_topologies(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(EXAMPLE_CONFIG)
    r = subprocess.run([sys.executable, "-m", "edge", "config", "check", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("upstream off, 3 stream topologies)")
