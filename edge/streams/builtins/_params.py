"""Checking a built-in's parameters: one error type that names the key and what was expected.

Built-ins validate in their constructors, so a typo in a config file fails
``edge config check`` (which turns a ``ParamError`` into a ``ConfigProblem``
under ``streams[i].steps[j].<key>``) and code gets the same message.
"""

from __future__ import annotations

import math
from typing import Any

from broker import is_topic_name
from edge._errors import ConfigProblem, EdgeError

__all__ = ["ParamError"]

_MISSING: Any = ConfigProblem._MISSING


class ParamError(EdgeError, ValueError):
    """A built-in processor got a parameter it cannot use (``key``, ``expected``, ``got``)."""

    retriable = False

    def __init__(self, key: str, expected: str, got: object = _MISSING) -> None:
        self.key = key
        self.expected = expected
        self.missing = got is _MISSING
        self.got = None if self.missing else got
        super().__init__(str(ConfigProblem("", key, expected, got)).removeprefix(": "))


def number(key: str, value: object, *, positive: bool = False, at_least: float | None = None
           ) -> float:
    """``value`` as a finite float (TOML integers welcome), else ParamError."""
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or (positive and value <= 0) or (at_least is not None and value < at_least)):
        what = ("a number > 0" if positive else
                f"a number >= {at_least:g}" if at_least is not None else "a number")
        raise ParamError(key, what, value)
    return float(value)


def text(key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ParamError(key, "a non-empty string", value)
    return value


def topic(key: str, value: object) -> str:
    if not is_topic_name(value):
        raise ParamError(key, "a topic name (letters, digits, '.', '_', '-')", value)
    return value


def choice(key: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ParamError(key, " or ".join(f'"{c}"' for c in choices), value)
    return value


def numeric_field(value: Any, field: str) -> float | None:
    """The finite number in ``value[field]``, or None (missing, text such as "NaN", not a dict)."""
    if not isinstance(value, dict):
        return None
    v = value.get(field)
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None
