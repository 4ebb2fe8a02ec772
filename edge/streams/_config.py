"""The ``[[streams]]`` tables of the appliance's config: topologies of built-ins, or custom ones.

Two forms; each names a topology (its consumer group is ``streams.<name>``)::

    [[streams]]                       # built-ins, no code
    name = "ward-vitals"
    source = "temperature"            # or ["temperature", "temperature.lab"]
    sink = "temperature.normalised"   # optional: where the main chain ends
    steps = [
      { builtin = "normalise_units" },
      { builtin = "fever", raise_at = 38.0, clear_at = 37.5, topic = "alerts" },
      { builtin = "downsample", fields = ["temperature_c"], window_s = 60,
        topic = "temperature.1m" },
    ]

    [[streams]]                       # custom: a function returning a Topology
    name = "fleet"
    module = "fleet_streams.topology:build"
    params = { depot_radius_m = 250 } # passed as keyword arguments

Steps run in order; a *transform* (``normalise_units``, ``gps_track``) passes
changed records on, a *tap* (``fever``, ``threshold``, ``blood_pressure``,
``geofence``, ``downsample``) writes what it derives to its own ``topic`` and
passes its input on unchanged (``edge.streams.builtins`` documents each).

Validation builds every topology once (building only records processors; a
custom module's function is imported and called, so it must only build), so
``edge config check`` names a bad parameter as
``edge.toml: streams[0].steps[1].raise_at: expected a number, got "hot"``.
``parse_streams`` returns problems instead of raising so that the appliance
config can report them with its own.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broker import is_topic_name
from edge._errors import ConfigProblem

if TYPE_CHECKING:
    from edge.streams import Topology

__all__ = ["StepConfig", "TopologyConfig", "build_topology", "describe_streams", "parse_streams"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9._-]{1,200}$")
_MODULE_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
_TOPIC_WORDS = "a topic name (letters, digits, '.', '_', '-')"
_KEYS_BUILTIN = {"name", "source", "steps", "sink", "enabled", "late_topic"}
_KEYS_MODULE = {"name", "module", "params", "enabled", "late_topic"}


@dataclass(frozen=True)
class StepConfig:
    """One step of a built-in topology: the built-in's name and its parameters."""

    builtin: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TopologyConfig:
    """One ``[[streams]]`` table, validated. Either ``source``+``steps`` or ``module``."""

    name: str
    source: tuple[str, ...] = ()
    steps: tuple[StepConfig, ...] = ()
    sink: str | None = None
    module: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    late_topic: str | None = None

    @property
    def is_custom(self) -> bool:
        return self.module is not None


def build_topology(cfg: TopologyConfig) -> Topology:
    """A fresh ``Topology`` for one configured topology (call again for a restart).

    Raises ``ParamError`` or ``StreamsError`` for what validation would have
    reported, and whatever a custom module raises.
    """
    from edge.streams import Topology
    from edge.streams.builtins import make_builtin

    if cfg.module is not None:
        fn = _resolve(cfg.module)
        topology = fn(**cfg.params)
        if not isinstance(topology, Topology):
            raise TypeError(f"{cfg.module} returned {type(topology).__name__}, not a Topology")
        return topology
    topology = Topology(cfg.name)
    stream = topology.source(list(cfg.source), name=f"{cfg.name}-source")
    for i, step in enumerate(cfg.steps):
        stream = make_builtin(step.builtin, step.params)(stream, f"{i + 1:02d}-{step.builtin}")
    if cfg.sink is not None:
        stream.to(cfg.sink, name=f"{cfg.name}-sink")
    return topology


def _resolve(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    fn = getattr(module, attr)
    if not callable(fn):
        raise TypeError(f"{spec} is a {type(fn).__name__}, not a function")
    return fn


class _Problems:
    """Collects problems; ``bad`` has the signature of edge._config's checker."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []

    def bad(self, key: str, expected: str, got: object = ConfigProblem._MISSING) -> None:
        self.problems.append(ConfigProblem(self.file, key, expected, got))


def parse_streams(raw: Any, file: str) -> tuple[tuple[TopologyConfig, ...], list[ConfigProblem]]:
    """Validate the ``streams`` array of a parsed config: (topologies, problems)."""
    found = _Problems(file)
    bad, problems = found.bad, found.problems
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        bad("streams", "an array of tables ([[streams]])", raw)
        return (), problems
    out: list[TopologyConfig] = []
    names: dict[str, int] = {}
    groups: dict[str, int] = {}
    for i, table in enumerate(raw):
        before = len(problems)
        cfg = _one(table, f"streams[{i}]", bad)
        if cfg is None or len(problems) > before:
            continue
        if cfg.name in names:
            bad(f"streams[{i}].name", f"a name not used before (streams[{names[cfg.name]}] has it)",
                cfg.name)
            continue
        names[cfg.name] = i
        topology = _try_build(cfg, f"streams[{i}]", bad)
        if topology is None:
            continue
        if topology.name in groups:
            bad(f"streams[{i}]", f"a topology whose name is not used before (streams"
                f"[{groups[topology.name]}] also builds {topology.name!r}: they would share a "
                "consumer group)", cfg.module or cfg.name)
            continue
        groups[topology.name] = i
        loops = set(topology.sink_topics) & set(topology.source_topics)
        if loops:
            bad(f"streams[{i}]", "output topics other than its own sources (it would read its "
                "own output)", sorted(loops)[0])
            continue
        if table.get("enabled", True) is not False:
            out.append(cfg)
    return tuple(out), problems


def _one(t: Mapping[str, Any], p: str, bad: Any) -> TopologyConfig | None:
    custom = "module" in t
    known = _KEYS_MODULE if custom else _KEYS_BUILTIN
    for k in t:
        if k not in known:
            hint = (" (a topology with module = ... takes no source, steps or sink)" if custom
                    and k in _KEYS_BUILTIN else "")
            bad(f"{p}.{k}", "one of the keys " + ", ".join(sorted(known)) + hint, k)
    name = t.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        bad(f"{p}.name", "a topology name of letters, digits, '.', '_' or '-' (it names the "
            'consumer group "streams.<name>")', *(() if name is None else (name,)))
        name = None
    enabled = t.get("enabled", True)
    if not isinstance(enabled, bool):
        bad(f"{p}.enabled", "true or false", enabled)
    late = t.get("late_topic")
    if late is not None and (not isinstance(late, str) or not is_topic_name(late)):
        bad(f"{p}.late_topic", _TOPIC_WORDS, late)
    if custom:
        module = t["module"]
        if not isinstance(module, str) or not _MODULE_RE.match(module):
            bad(f"{p}.module", '"package.module:function" naming a function that returns a '
                "Topology", module)
            return None
        params = t.get("params", {})
        if not isinstance(params, dict):
            bad(f"{p}.params", "a table of keyword arguments for the function", params)
            return None
        return TopologyConfig(name=name or "?", module=module, params=dict(params),
                              late_topic=late)
    source = t.get("source")
    if isinstance(source, str):
        source = [source]
    if (not isinstance(source, list) or not source
            or not all(isinstance(s, str) and is_topic_name(s) for s in source)):
        bad(f"{p}.source", "a topic name or an array of topic names (or module = "
            '"package.module:function" for a custom topology)',
            *(() if t.get("source") is None else (t.get("source"),)))
        source = []
    sink = t.get("sink")
    if sink is not None and (not isinstance(sink, str) or not is_topic_name(sink)):
        bad(f"{p}.sink", _TOPIC_WORDS, sink)
    raw_steps = t.get("steps", [])
    steps: list[StepConfig] = []
    if not isinstance(raw_steps, list) or not all(isinstance(s, dict) for s in raw_steps):
        bad(f"{p}.steps", 'an array of tables (e.g. [{ builtin = "fever" }])', raw_steps)
        raw_steps = []
    if not raw_steps and sink is None:
        bad(f"{p}.steps", 'an array of built-in steps (e.g. [{ builtin = "fever" }]), or a sink')
    for j, s in enumerate(raw_steps):
        builtin = s.get("builtin")
        if not isinstance(builtin, str) or not builtin:
            from edge.streams.builtins import BUILTINS

            bad(f"{p}.steps[{j}].builtin", "a built-in: " + ", ".join(f'"{n}"' for n in BUILTINS),
                *(() if builtin is None else (builtin,)))
            continue
        steps.append(StepConfig(builtin, {k: v for k, v in s.items() if k != "builtin"}))
    return TopologyConfig(name=name or "?", source=tuple(source), steps=tuple(steps), sink=sink,
                          late_topic=late)


def _try_build(cfg: TopologyConfig, p: str, bad: Any) -> Topology | None:
    from edge.streams import StreamsError
    from edge.streams.builtins import ParamError, make_builtin

    if cfg.module is not None:
        try:
            _resolve(cfg.module)
        except Exception as exc:  # noqa: BLE001 - any failure to import is the config's problem
            bad(f"{p}.module", '"package.module:function" naming an importable function '
                f"({type(exc).__name__}: {exc})", cfg.module)
            return None
        try:
            return build_topology(cfg)
        except Exception as exc:  # noqa: BLE001 - the user's function refused its params
            bad(f"{p}.params" if cfg.params else f"{p}.module", "a function that builds a "
                f"Topology from these params ({type(exc).__name__}: {exc})",
                dict(cfg.params) if cfg.params else cfg.module)
            return None
    failed = False
    for j, step in enumerate(cfg.steps):  # each step's parameters, with the key that is wrong
        try:
            make_builtin(step.builtin, step.params)
        except ParamError as exc:
            bad(f"{p}.steps[{j}].{exc.key}", exc.expected, *(() if exc.missing else (exc.got,)))
            failed = True
    if failed:
        return None
    try:
        return build_topology(cfg)
    except (StreamsError, ParamError) as exc:
        bad(p, f"a topology that builds ({exc})", cfg.name)
        return None


def describe_streams(topologies: tuple[TopologyConfig, ...] | list[TopologyConfig]) -> str:
    """What ``edge streams describe`` prints: each configured topology's ``describe()``."""
    if not topologies:
        return "no [[streams]] topologies configured (or all have enabled = false)\n"
    parts = []
    for cfg in topologies:
        what = (f"custom, {cfg.module}" if cfg.module is not None
                else f"{len(cfg.steps)} built-in step{'s' if len(cfg.steps) != 1 else ''}: "
                + (", ".join(s.builtin for s in cfg.steps) or "none"))
        lines = [f"# [[streams]] {cfg.name} ({what})"]
        lines += [f"#   {i + 1:02d}-{s.builtin}: {_effective_params(s)}" for i, s in enumerate(cfg.steps)]
        if cfg.params:
            lines.append(f"#   params: {_show(dict(cfg.params))}")
        parts.append("\n".join(lines) + "\n" + build_topology(cfg).describe())
    return "\n".join(parts).rstrip("\n") + "\n"


def _effective_params(step: StepConfig) -> str:
    """The step's parameters with the defaults it runs with, as TOML-ish ``key = value``."""
    import inspect

    from edge.streams.builtins import BUILTINS

    sig = inspect.signature(BUILTINS[step.builtin].make)
    values = {k: p.default for k, p in sig.parameters.items()
              if p.default is not inspect.Parameter.empty}
    values.update(step.params)
    return ", ".join(f"{k} = {_show(v)}" for k, v in values.items()) or "(no parameters)"


def _show(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "(none)"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_show(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False) if isinstance(v, str) else repr(v)
