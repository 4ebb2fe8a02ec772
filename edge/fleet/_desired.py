"""A desired-state document, read and checked before it is signed (pure but for the files).

``edge fleet set`` refuses locally what every box would refuse: the document is parsed as
TOML, laid over a base config the way a box lays it over its own file (PROTOCOL.md: whole
sections replaced) and validated by ``edge config check``'s own code
(``edge._config.config_from_dict``), so the messages are the ones an operator already
knows. Without ``--base`` the sections are laid over a stub that has only ``edge_id``
and ``data_dir``: sections that need each other (an ``[upstream]`` whose topics are
the devices') are then checked together only if the document holds both.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge._config import config_from_dict
from edge._errors import ConfigError, ConfigProblem

__all__ = ["FORBIDDEN_SECTIONS", "check_desired", "read_desired"]

#: Keys a desired state may not set: a push must never cut a box off its control channel
#: or change which box it is (PROTOCOL.md).
FORBIDDEN_SECTIONS = ("control", "edge_id")

#: What the stub base holds when no --base is given.
_STUB = {"edge_id": "fleet-check", "data_dir": "/var/lib/edge"}


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    name = Path(path).name
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(ConfigProblem(os.fspath(path), "", "a readable file",
                                        exc.strerror or str(exc))) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(ConfigProblem(name, "", "valid TOML", str(exc))) from exc


def check_desired(sections: Mapping[str, Any], file: str = "desired.toml",
                  base: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> None:
    """Raise ``ConfigError`` (every problem, named as ``edge config check`` names them)
    if ``sections`` laid over ``base`` is not a config a box would run."""
    problems = [ConfigProblem(file, key, "a section a desired state may set (not [control] "
                              "or edge_id: they stay the box's own)", sections[key])
                for key in FORBIDDEN_SECTIONS if key in sections]
    if not sections:
        problems.append(ConfigProblem(file, "", "at least one edge.toml section", "an empty file"))
    if problems:
        raise ConfigError(problems)
    merged = {**(base if base is not None else _STUB), **sections}
    merged.pop("control", None)  # the box's own; validated by the box's schema, not a push's
    config_from_dict(merged, file, env if env is not None else os.environ)


def read_desired(path: str | os.PathLike[str], base_path: str | os.PathLike[str] | None = None
                 ) -> dict[str, Any]:
    """The sections of the desired-state file at ``path``, checked (``check_desired``)."""
    sections = _read_toml(path)
    base = _read_toml(base_path) if base_path is not None else None
    check_desired(sections, Path(path).name, base)
    return sections
