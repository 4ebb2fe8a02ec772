"""The commented example config that ``edge config example`` prints, rendered from the schema.

Every key, default and comment comes from the dataclasses of edge/_config.py,
edge/_devices and the streams' built-ins; this module adds only the example's own
values (which devices and topologies it shows) and the words between the tables.
A test validates the result, and one checks that it is what this module renders.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Iterator, Mapping
from typing import Any

from edge._config import (
    SECRET_ENV,
    ClockSettings,
    Config,
    ConsoleConfig,
    ControlSettings,
    HealthConfig,
    LogSettings,
)
from edge._devices import DEVICE_TYPES
from edge._kafka_config import KafkaSettings
from edge._schema import _UNSET, REQUIRED, Setting, default_of, settings_of, toml_value

__all__ = ["EXAMPLE_CONFIG", "example_config"]

_COMMENT_AT = 35  # the column the comments start at
_WIDTH = 100

# The example's topologies: the built-ins' parameters not given here are shown with
# the defaults of their signatures (edge/streams/builtins/_registry.py).
_STREAMS: tuple[Mapping[str, Any], ...] = (
    {"name": "ward-temperature", "source": "temperature", "steps": (
        {"builtin": "normalise_units"},
        {"builtin": "fever", "topic": "alerts"},
        {"builtin": "downsample", "fields": ["temperature_c"], "topic": "temperature.1m"})},
    {"name": "ward-blood-pressure", "source": "blood_pressure", "steps": (
        {"builtin": "blood_pressure", "topic": "alerts.blood_pressure"},)},
    {"name": "fleet", "source": "gps", "sink": "gps.track", "steps": (
        {"builtin": "gps_track"},
        {"builtin": "geofence", "topic": "alerts.geofence", "exit_margin_m": 10.0, "fences": [
            {"name": "depot", "lat": 52.52, "lon": 13.405, "radius_m": 250.0},
            {"name": "yard", "polygon": [[52.51, 13.4], [52.51, 13.41], [52.52, 13.41],
                                         [52.52, 13.4]]}]})},
)

_UPSTREAM = {"bootstrap_servers": "kafka.example.com:9093"}


def _line(key: str, value: Any, doc: str = "", *, commented: bool = False) -> str:
    text = f"{'# ' if commented else ''}{key} = {toml_value(value)}"
    if not doc:
        return text
    beside = f"{text:<{_COMMENT_AT - 1}} # {doc}"
    if len(beside) <= _WIDTH:
        return beside
    # Too long for one line: the comment goes above the key, wrapped.
    return "\n".join([*textwrap.wrap(doc, _WIDTH - 2, initial_indent="# ", subsequent_indent="# "),
                      text])


def _comment(text: str) -> Iterator[str]:
    for line in inspect.cleandoc(text).splitlines():
        if len(line) > _WIDTH - 2:
            yield from textwrap.wrap(line, _WIDTH - 2, initial_indent="# ", subsequent_indent="# ")
        else:
            yield f"# {line}".rstrip()


def _doc(s: Setting) -> str:
    return s.doc + (f" (default: {s.default_doc})" if s.default_doc else "")


def _keys(cls: type, given: Mapping[str, Any] | None = None, *, all_keys: bool = True
          ) -> Iterator[str]:
    """One line per key of ``cls``: the value the example gives, else the key's example
    or default, commented out for a key a config seldom sets (``in_example=False``).
    ``all_keys=False``: only the keys given."""
    given = given or {}
    for f, s in settings_of(cls):
        if f.name in given:
            yield _line(f.name, given[f.name], _doc(s))
        elif not all_keys or f.name == "transport":
            continue
        elif s.default_doc and s.example is _UNSET:  # computed from other keys: say so
            yield from _comment(f"{f.name}: {_doc(s)}")
        else:
            value = s.example if s.example is not _UNSET else default_of(f)
            if value is None or value is REQUIRED:
                yield from _comment(f"{f.name}: {_doc(s)}")
            else:
                yield _line(f.name, value, _doc(s), commented=not s.in_example)


def _devices() -> Iterator[str]:
    yield "# One [[devices]] table per serial device, MQTT subscription or 1-wire bus; its"
    yield "# transport decides its other keys (docs/configuration.md lists them all)."
    for transport, cls in DEVICE_TYPES.items():
        codecs = ", ".join(f'"{n}"' for n in sorted(cls.codecs))
        for i, example in enumerate(cls.examples):
            yield ""
            if i == 0:
                yield from _comment(f'[[devices]] with transport = "{transport}": {cls.__doc__}')
                yield f"# codec: {codecs}."
            yield "[[devices]]"
            yield _line("transport", transport)
            yield from _keys(cls, example, all_keys=i == 0)


def _steps(step: Mapping[str, Any]) -> Iterator[str]:
    from edge.streams.builtins import BUILTINS

    spec = BUILTINS[step["builtin"]]
    yield _line("builtin", spec.name, f"{spec.kind}: {spec.summary}")
    for name, p in inspect.signature(spec.make).parameters.items():
        if name in step:
            yield _line(name, step[name])
        elif p.default is not inspect.Parameter.empty and p.default is not None:
            yield _line(name, p.default)


def _streams() -> Iterator[str]:
    yield from _comment("""
        Stream processing on the box: each [[streams]] table is one topology, run exactly once
        over the local log (its progress is consumer group "streams.<name>"). Steps run in order:
        a transform changes the records and passes them on; a tap writes what it derives to its
        own topic and passes its input on unchanged. `edge streams describe --config FILE`
        prints what will run.""")
    for topology in _STREAMS:
        yield ""
        yield "[[streams]]"
        for key in ("name", "source", "sink"):
            if key in topology:
                yield _line(key, topology[key])
        for step in topology["steps"]:
            yield ""
            yield "[[streams.steps]]"
            yield from _steps(step)
    yield ""
    yield from _comment("""
        A custom topology: a function that returns an edge.streams.Topology (it must be
        importable, e.g. installed in the appliance's virtual environment; `edge config
        check` calls it).
        [[streams]]
        name = "custom"
        module = "my_streams.topology:build"
        params = { threshold = 40.0 }    # keyword arguments of the function""")


def _upstream() -> Iterator[str]:
    yield "# Replication to a central Kafka cluster: the uplink (edge/uplink/README.md)."
    yield "[upstream]"
    from edge._config import UpstreamSettings

    yield from _keys(UpstreamSettings)
    try:
        from edge.uplink import UplinkConfig
        from edge.uplink._config import FROM_EDGE
    except ImportError:  # a build without the uplink
        return
    yield _line("bootstrap_servers", _UPSTREAM["bootstrap_servers"])
    for f in dataclasses.fields(UplinkConfig):
        s = f.metadata.get("setting")
        if s is None or f.name in _UPSTREAM or f.name in FROM_EDGE:
            continue
        value = default_of(f)
        if s.example is not _UNSET:
            value = s.example
        if value is None or value is REQUIRED:
            yield from _comment(f"{f.name}: {_doc(s)}")
        else:
            yield _line(f.name, value, _doc(s), commented=True)


def example_config() -> str:
    """The example config as TOML text."""
    env = ", ".join(k for k in SECRET_ENV)
    lines = [
        "# edge.toml: the config of one edge appliance. Check it with `edge config check FILE`.",
        "# Every key is in docs/configuration.md. Times are in seconds. Secrets can come from",
        *textwrap.wrap(f"the environment instead of this file: {env}.", _WIDTH - 2,
                       initial_indent="# ", subsequent_indent="#   "),
        "",
        *_keys(Config, {"edge_id": "edge-1", "data_dir": "/var/lib/edge"}, all_keys=False),
    ]
    for name, cls in (("log", LogSettings), ("health", HealthConfig), ("console", ConsoleConfig),
                      ("clock", ClockSettings), ("control", ControlSettings), ("kafka", KafkaSettings)):
        lines += ["", *_comment(cls.__doc__ or ""), f"[{name}]", *_keys(cls)]
    lines += ["", *_devices(), "", *_streams(), "", *_upstream()]
    return "\n".join(lines) + "\n"


EXAMPLE_CONFIG = example_config()

