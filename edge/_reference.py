"""docs/configuration.md, rendered from the config schema (a test checks it is up to date).

    .venv/bin/python -m edge._reference > docs/configuration.md
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from typing import Any

from edge._config import (
    SECRET_ENV,
    ClockSettings,
    Config,
    ConsoleConfig,
    ControlSettings,
    HealthConfig,
    LogSettings,
    UpstreamSettings,
)
from edge._devices import DEVICE_TYPES, DeviceConfig
from edge._kafka_config import KafkaSettings
from edge._schema import REQUIRED, default_of, settings_of, toml_value

__all__ = ["reference_markdown"]

_TYPES = {"str": "string", "text": "string (may be empty)", "int": "integer", "num": "number",
          "bool": "boolean", "table": "table", "strlist": "array of strings"}
# Keys of kind "any" (read by their table's own code), by their annotation.
_ANNOTATIONS = {"str": "string", "str | None": "string", "int": "integer", "int | None": "integer",
                "tuple[str, ...]": "string or array of strings",
                "tuple[StepConfig, ...]": "array of tables",
                "Mapping[str, str | TopicMapping] | tuple[TopicMapping, ...]": "table"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(f: dataclasses.Field[Any], doc: str | None) -> str:
    if doc:
        return doc
    value = default_of(f)
    if value is REQUIRED:
        return "**required**"
    if value is None:
        return "none"
    return f"`{toml_value(value)}`"


def _type(f: dataclasses.Field[Any], kind: str) -> str:
    if kind in _TYPES:
        return _TYPES[kind]
    return _ANNOTATIONS.get(str(f.type), "a value")


def _table(cls: type, *, skip: frozenset[str] = frozenset(), only: frozenset[str] | None = None
           ) -> Iterator[str]:
    yield "| key | type | default | what |"
    yield "|---|---|---|---|"
    for f, s in settings_of(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        what = s.doc + (f". Expected: {s.expected}" if s.expected and s.expected != s.doc else "")
        yield (f"| `{f.name}` | {_type(f, s.kind)} | {_cell(_default(f, s.default_doc))} | "
               f"{_cell(what)} |")


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


def _builtins() -> Iterator[str]:
    from edge.streams.builtins import BUILTINS

    yield "| builtin | kind | parameters (defaults) | what |"
    yield "|---|---|---|---|"
    for spec in BUILTINS.values():
        params = []
        for name, p in inspect.signature(spec.make).parameters.items():
            if p.default is inspect.Parameter.empty:
                params.append(f"`{name}` (required)")
            elif p.default is None:
                params.append(f"`{name}`")
            else:
                params.append(f"`{name} = {toml_value(p.default)}`")
        yield f"| `{spec.name}` | {spec.kind} | {_cell(', '.join(params))} | {_cell(spec.summary)} |"


def reference_markdown() -> str:
    """The configuration reference, as Markdown."""
    from edge.streams._config import TopologyConfig

    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from the config schema by `.venv/bin/python -m edge._reference >",
        "docs/configuration.md`; tests/edge/test_config_schema.py fails when it is out of date. -->",
        "",
        "One TOML file (`/etc/edge/edge.toml` on a box). `edge config check FILE` names every",
        "mistake with the file, the key path and what was expected; `edge config example` prints",
        "a commented config with every key. Times are in seconds.",
        "",
        "Secrets can come from the environment instead of the file:",
        "",
        *(f"- `{var}`: {where}" for var, where in SECRET_ENV.items()),
        "",
        "## Top level",
        "",
        *_table(Config, only=frozenset({"edge_id", "data_dir"})),
    ]
    for name, cls in (("log", LogSettings), ("health", HealthConfig), ("console", ConsoleConfig),
                      ("clock", ClockSettings), ("control", ControlSettings), ("kafka", KafkaSettings)):
        out += ["", f"## [{name}]", "", _doc(cls), "", *_table(cls)]
    out += ["", "## [[devices]]", "", "One table per serial device, MQTT subscription or 1-wire bus.",
            "`transport` decides which kind it is, and so its other keys. Every kind has these:",
            "", *_table(DeviceConfig)]
    common = frozenset(f.name for f, _ in settings_of(DeviceConfig))
    for transport, kind in DEVICE_TYPES.items():
        codecs = ", ".join(f"`{n}`" for n in sorted(kind.codecs))
        out += ["", f'### transport = "{transport}"', "", _doc(kind), "",
                f"`codec`: {kind.codecs_are}: {codecs}.", "", *_table(kind, skip=common)]
    out += ["", "## [[streams]]", "", "Each table is one topology run exactly once over the local log:",
            "built-ins (`source`, `steps`, `sink`) or custom (`module`, `params`).", "",
            *_table(TopologyConfig), "", "### Built-in steps", "",
            "A *transform* changes the records and the chain goes on with them; a *tap* writes",
            "what it derives to its own `topic` and passes its input on unchanged.", "",
            *_builtins()]
    out += ["", "## [upstream]", "", "Replication to a Kafka cluster (edge/uplink/README.md).", "",
            *_table(UpstreamSettings)]
    try:
        from edge.uplink import UplinkConfig
        from edge.uplink._config import FROM_EDGE
    except ImportError:  # a build without the uplink
        pass
    else:
        out += [*list(_table(UplinkConfig, skip=FROM_EDGE))[2:]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
