"""The effective config: the base file with the desired sections of each target laid over.

Pure: functions of dicts. Groups apply first to last as ``[control] groups`` lists them,
then the box's own ``edge:<id>``; each replaces whole sections (``devices``, ``streams``,
``upstream``, ``log``...). Sections that would let a push cut the box off its own
control channel or move its identity are refused, as are unknown ones (by the schema).
Validation is ``config_from_dict``'s: the same messages as ``edge config check``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from edge._config import Config, config_from_dict
from edge._errors import ConfigError, ConfigProblem

from ._messages import edge_target, group_target

__all__ = ["FIXED_SECTIONS", "config_hash", "effective_config", "overlay", "targets_of"]

#: Sections a desired config may not set: the box's identity, where its log lives,
#: and the channel the desired config itself travels by.
FIXED_SECTIONS = ("edge_id", "data_dir", "control")


def targets_of(edge_id: str, groups: Iterable[str]) -> list[str]:
    """The keys this box reads, in the order their desired configs are laid over."""
    return [*(group_target(g) for g in groups), edge_target(edge_id)]


def overlay(base: Mapping[str, Any], layers: Iterable[Mapping[str, Any]],
            disabled: Iterable[str] = ()) -> dict[str, Any]:
    """``base`` with each layer's sections replacing its own, minus ``disabled`` devices."""
    raw = dict(base)
    for layer in layers:
        raw.update(layer)
    gone = set(disabled)
    if gone and isinstance(raw.get("devices"), list):
        raw["devices"] = [d for d in raw["devices"]
                          if not (isinstance(d, dict) and d.get("name") in gone)]
    return raw


def check_sections(config: Mapping[str, Any], where: str) -> None:
    """ConfigError for a desired config that sets a fixed section (names them all)."""
    problems = [ConfigProblem(where, key, "a section a desired config may set (not "
                              + ", ".join(FIXED_SECTIONS) + ")", key)
                for key in config if key in FIXED_SECTIONS]
    if problems:
        raise ConfigError(problems)


def effective_config(base: Mapping[str, Any], layers: Iterable[Mapping[str, Any]],
                     disabled: Iterable[str] = (), file: str = "edge.toml",
                     env: Mapping[str, str] | None = None) -> Config:
    """The validated effective Config; ConfigError lists every problem, as config check does."""
    return config_from_dict(overlay(base, layers, disabled), file,
                            os.environ if env is None else env)


def config_hash(raw: Mapping[str, Any]) -> str:
    """sha256 hex of the effective config document (keys sorted): what the box runs."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
