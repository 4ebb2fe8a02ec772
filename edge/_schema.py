"""The config schema's machinery: settings declared once on dataclass fields, read by one walker.

Each key of a table is a dataclass field whose metadata is a ``Setting`` (made by
``setting()``): its TOML key is the field's name, its default the field's default,
and the setting holds what the key means (``doc``), what a value must be (``kind``,
``check``, ``expected``) and how it shows in the example config. ``read_table`` checks
a parsed TOML table against such a class and reports every problem to a ``Problems``
collector; ``edge config example`` and docs/configuration.md are rendered from the
same fields (edge/_example.py, edge/_reference.py), so a default is stated once.

Why not a library: bench/bench_config_libs.py measured pydantic v2, attrs+cattrs and
msgspec (see the commit that added this module); their messages would need
translating into ours anyway, and msgspec stops at the first mistake.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge._errors import ConfigProblem

__all__ = ["ID_EXPECTED", "KIND_WORDS", "REQUIRED", "SKIP", "TOPIC_EXPECTED", "Problems", "Setting",
           "check_values", "default_of", "is_id", "read_table", "setting", "settings_of", "split_address", "toml_value",
           "writable_topic"]

#: What a value of each kind is, for "expected ..." messages.
KIND_WORDS = {
    "str": "a non-empty string",
    "text": "a string",
    "int": "an integer",
    "num": "a number",
    "bool": "true or false",
    "table": "a table",
    "strlist": "a non-empty array of strings",
    "any": "a value",
}

_KIND_OK: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str) and v != "",
    "text": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "num": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "table": lambda v: isinstance(v, dict),
    "strlist": lambda v: isinstance(v, list) and bool(v) and all(isinstance(s, str) and s for s in v),
    "any": lambda v: True,
}


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a key that must be given.
REQUIRED: Any = _Required()
_UNSET: Any = object()


@dataclass(frozen=True)
class Setting:
    """One key of a config table: what it means and what its value must be."""

    doc: str
    kind: str
    expected: str | None = None
    check: Callable[[Any], bool] | None = None
    convert: Callable[[Any], Any] | None = None
    example: Any = _UNSET        # the example config's value, when not the default
    default_doc: str | None = None  # a default computed from other keys, in words
    in_example: bool = True      # False: the example shows it commented out
    custom: bool = False         # read by the table's own code, not by read_table

    @property
    def expects(self) -> str:
        return self.expected or KIND_WORDS[self.kind]


def setting(default: Any = REQUIRED, *, doc: str, kind: str, expected: str | None = None,
            check: Callable[[Any], bool] | None = None, convert: Callable[[Any], Any] | None = None,
            example: Any = _UNSET, default_doc: str | None = None, in_example: bool = True,
            custom: bool = False, factory: Callable[[], Any] | None = None, repr: bool = True) -> Any:
    """A dataclass field that is a config key (see the module docstring)."""
    meta = {"setting": Setting(doc, kind, expected, check, convert, example, default_doc,
                               in_example, custom)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta, repr=repr)
    if default is REQUIRED:
        return dataclasses.field(metadata=meta, repr=repr)
    return dataclasses.field(default=default, metadata=meta, repr=repr)


def settings_of(cls: type) -> list[tuple[dataclasses.Field[Any], Setting]]:
    """The config keys of a dataclass, in declaration order."""
    return [(f, f.metadata["setting"]) for f in dataclasses.fields(cls) if "setting" in f.metadata]


def default_of(f: dataclasses.Field[Any]) -> Any:
    """A field's default (REQUIRED if it has none)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return REQUIRED


class Problems:
    """Collects every problem of one config file; ``bad`` adds one."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []

    def bad(self, key: str, expected: str, got: object = ConfigProblem._MISSING) -> None:
        self.problems.append(ConfigProblem(self.file, key, expected, got))

    def unknown(self, table: Mapping[str, Any], known: set[str] | list[str], prefix: str,
                hint: str = "") -> None:
        for k in table:
            if k not in known:
                self.bad(f"{prefix}{k}", "one of the keys " + ", ".join(sorted(known)) + hint, k)

    def __len__(self) -> int:
        return len(self.problems)


#: What a custom reader returns for a key it reported (or has nothing for).
SKIP: Any = object()


def read_table(cls: type, raw: Mapping[str, Any], prefix: str, problems: Problems, *,
               readers: Mapping[str, Callable[[Mapping[str, Any], str, dict[str, Any]], Any]]
               | None = None, extra_keys: frozenset[str] = frozenset(),
               check_unknown: bool = True) -> dict[str, Any]:
    """The values of ``cls``'s keys in ``raw``, defaults for keys not given.

    A key that is missing and required, of the wrong kind or failing its check is
    reported (``prefix`` + key) and left out of the result; so is a key ``cls`` does
    not declare (``extra_keys`` are read elsewhere). A key marked ``custom`` is read by
    ``readers[name](raw, path, values_so_far)``, in declaration order like the others
    (so problems come in the order of the keys), which returns its value or ``SKIP``.
    """
    fields = settings_of(cls)
    if check_unknown:
        problems.unknown(raw, {f.name for f, _ in fields} | extra_keys, prefix)
    out: dict[str, Any] = {}
    for f, s in fields:
        path = f"{prefix}{f.name}"
        if s.custom:
            reader = (readers or {}).get(f.name)
            if reader is not None and (value := reader(raw, path, out)) is not SKIP:
                out[f.name] = value
            continue
        if f.name not in raw:
            default = default_of(f)
            if default is REQUIRED:
                problems.bad(path, s.expects)
            else:
                out[f.name] = default
            continue
        v = raw[f.name]
        if not _KIND_OK[s.kind](v) or (s.check is not None and not s.check(v)):
            problems.bad(path, s.expects, v)
            continue
        out[f.name] = s.convert(v) if s.convert is not None else v
    return out


def check_values(obj: Any, problems: Problems, prefix: str = "") -> None:
    """Check the fields of a dataclass made in code (not read from TOML) against their
    settings; a field whose default is None may be None. Custom keys are the caller's."""
    for f, s in settings_of(type(obj)):
        if s.custom:
            continue
        v = getattr(obj, f.name)
        if v is None and default_of(f) is None:
            continue
        if not _KIND_OK[s.kind](v) or (s.check is not None and not s.check(v)):
            problems.bad(f"{prefix}{f.name}", s.expects, v)


def toml_value(v: Any) -> str:
    """``v`` as TOML source (strings, numbers, booleans, dates, arrays, inline tables)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's string escapes are TOML's basic string's
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, _dt.date | _dt.datetime):
        return v.isoformat()
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k)


# Shared validators: each rule written once, for every table that has such a key.

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")

#: What an edge or device id must be.
ID_EXPECTED = "letters, digits, '.', '_', ':', '/' or '-'"
TOPIC_EXPECTED = "a topic name (letters, digits, '.', '_', '-'; not starting with '__', the log's own)"


def is_id(v: str) -> bool:
    """An edge or device id: 1 to 128 of ``ID_EXPECTED``, starting with a letter or digit."""
    return _ID.fullmatch(v) is not None


def writable_topic(name: str) -> bool:
    """A topic the appliance may write: Kafka's rule, and not one of the log's own."""
    # '__' names are internal (the drop ledger, as Kafka's __consumer_offsets): the log
    # refuses every send to them, so a device writing there would only make dead letters.
    from broker import is_internal_topic, is_topic_name

    return is_topic_name(name) and not is_internal_topic(name)


def split_address(text: str) -> tuple[str, int] | None:
    """``"host:port"`` (``[v6]:port`` too) as (host, port), or None."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)
