"""Names a package re-exports from a module imported on first use.

``edge run`` imports ``devices`` for its config and supervision; paho (MQTT),
pyserial and pynmeagps are needed only when a device of that kind is configured, and
cost RSS on every box that has none (the Pi's memory budget, issue #12).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each name of ``names`` from its module, once."""
    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)  # the next lookup is a plain one
        return value

    return __getattr__
