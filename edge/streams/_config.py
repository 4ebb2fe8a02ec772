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
from edge._schema import SKIP, Problems, read_table, setting

if TYPE_CHECKING:
    from edge.streams import Topology

__all__ = ["StepConfig", "TopologyConfig", "build_topology", "describe_streams", "parse_streams"]

_NAME_RE = re.compile(r"[a-zA-Z0-9._-]{1,200}")
_MODULE_RE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*")
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
    """One ``[[streams]]`` table, validated: built-ins (``source`` and ``steps``) or custom
    (``module``). Its keys are read by ``parse_streams``; the rest is the module docstring."""

    name: str = setting(
        kind="any", custom=True, doc='the topology\'s name; its consumer group is "streams.<name>"')
    enabled: bool = setting(True, kind="bool", doc="false: the topology stays in the file, "
                            "switched off")
    late_topic: str | None = setting(
        None, kind="any", check=is_topic_name, expected=_TOPIC_WORDS, default_doc='"<name>.late"',
        doc="where records past a window's grace go")
    module: str | None = setting(
        None, kind="any", custom=True,
        doc='custom: "package.module:function", a function that returns an edge.streams.Topology')
    params: Mapping[str, Any] = setting(
        kind="table", factory=dict, custom=True, doc="custom: keyword arguments of the function")
    source: tuple[str, ...] = setting(
        (), kind="any", custom=True, doc="built-ins: the topic, or array of topics, read")
    sink: str | None = setting(
        None, kind="any", custom=True, doc="built-ins: where the records are written at the end "
        "of the chain (optional)")
    steps: tuple[StepConfig, ...] = setting(
        (), kind="any", custom=True,
        doc='built-ins: the steps in order, { builtin = "<name>", <parameter> = <value> ... }')

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


def parse_streams(raw: Any, file: str) -> tuple[tuple[TopologyConfig, ...], list[ConfigProblem]]:
    """Validate the ``streams`` array of a parsed config: (topologies, problems)."""
    problems = Problems(file)
    bad = problems.bad
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        bad("streams", "an array of tables ([[streams]])", raw)
        return (), problems.problems
    out: list[TopologyConfig] = []
    names: dict[str, int] = {}
    groups: dict[str, int] = {}
    for i, table in enumerate(raw):
        before = len(problems)
        cfg = _one(table, f"streams[{i}]", problems)
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
        if cfg.enabled:
            out.append(cfg)
    return tuple(out), problems.problems


def _one(t: Mapping[str, Any], p: str, problems: Problems) -> TopologyConfig | None:
    """One table as a ``TopologyConfig`` (its problems reported), either form."""
    custom = "module" in t
    known = _KEYS_MODULE if custom else _KEYS_BUILTIN
    for k in t:
        if k not in known:
            hint = (" (a topology with module = ... takes no source, steps or sink)" if custom
                    and k in _KEYS_BUILTIN else "")
            problems.bad(f"{p}.{k}", "one of the keys " + ", ".join(sorted(known)) + hint, k)
    bad = problems.bad

    def name(t: Mapping[str, Any], key: str, out: dict[str, Any]) -> Any:
        v = t.get("name")
        if not isinstance(v, str) or not _NAME_RE.fullmatch(v):
            bad(key, "a topology name of letters, digits, '.', '_' or '-' (it names the "
                'consumer group "streams.<name>")', *(() if v is None else (v,)))
            return "?"
        return v

    def module(t: Mapping[str, Any], key: str, out: dict[str, Any]) -> Any:
        if not custom:
            return None
        v = t["module"]
        if not isinstance(v, str) or not _MODULE_RE.fullmatch(v):
            bad(key, '"package.module:function" naming a function that returns a Topology', v)
            return SKIP
        return v

    def params(t: Mapping[str, Any], key: str, out: dict[str, Any]) -> Any:
        v = t.get("params", {}) if custom else {}
        if not isinstance(v, dict):
            bad(key, "a table of keyword arguments for the function", v)
            return SKIP
        return dict(v)

    def source(t: Mapping[str, Any], key: str, out: dict[str, Any]) -> Any:
        if custom:
            return ()
        v = t.get("source")
        topics = [v] if isinstance(v, str) else v
        if not isinstance(topics, list) or not topics or not all(map(is_topic_name, topics)):
            bad(key, "a topic name or an array of topic names (or module = "
                '"package.module:function" for a custom topology)', *(() if v is None else (v,)))
            return SKIP
        return tuple(topics)

    def sink(t: Mapping[str, Any], key: str, out: dict[str, Any]) -> Any:
        v = None if custom else t.get("sink")
        if v is not None and not is_topic_name(v):
            bad(key, _TOPIC_WORDS, v)
            return SKIP
        return v

    def steps(t: Mapping[str, Any], key: str, out: dict[str, Any]) -> Any:
        if custom:
            return ()
        v = t.get("steps", [])
        if not isinstance(v, list) or not all(isinstance(s, dict) for s in v):
            bad(key, 'an array of tables (e.g. [{ builtin = "fever" }])', v)
            return SKIP
        if not v and t.get("sink") is None:
            bad(key, 'an array of built-in steps (e.g. [{ builtin = "fever" }]), or a sink')
        found: list[StepConfig] = []
        for j, s in enumerate(v):
            builtin = s.get("builtin")
            if not isinstance(builtin, str) or not builtin:
                from edge.streams.builtins import BUILTINS

                bad(f"{key}[{j}].builtin", "a built-in: " + ", ".join(f'"{n}"' for n in BUILTINS),
                    *(() if builtin is None else (builtin,)))
                continue
            found.append(StepConfig(builtin, {k: x for k, x in s.items() if k != "builtin"}))
        return tuple(found)

    readers = {"name": name, "module": module, "params": params, "source": source, "sink": sink,
               "steps": steps}
    values = read_table(TopologyConfig, t, f"{p}.", problems, readers=readers, check_unknown=False)
    return TopologyConfig(**values)


def _try_build(cfg: TopologyConfig, p: str, bad: Any) -> Topology | None:
    from edge.streams import StreamsError
    from edge.streams.builtins import ParamError, make_builtin

    if cfg.module is not None:
        try:
            _resolve(cfg.module)
        except Exception as exc:  # any failure to import is the config's problem
            bad(f"{p}.module", '"package.module:function" naming an importable function '
                f"({type(exc).__name__}: {exc})", cfg.module)
            return None
        try:
            return build_topology(cfg)
        except Exception as exc:  # the user's function refused its params
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
