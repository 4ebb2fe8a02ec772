"""A config file any local user can read that holds a secret: said, at check and at run.

install.sh makes /etc/edge/edge.toml 0640 root:edge-config; a config written by hand (or
by an older install) under the usual umask is 0644, and its passwords are anybody's.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge._errors import SECRET_KEYS

__all__ = ["exposed_secrets_warning", "secret_keys_in"]


def secret_keys_in(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Key paths of the non-empty secrets in a parsed config (``upstream.sasl_password``)."""
    found: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key in SECRET_KEYS and value not in (None, ""):
            found.append(path)
        elif isinstance(value, Mapping):
            found += secret_keys_in(value, f"{path}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    found += secret_keys_in(item, f"{path}[{i}].")
    return found


def exposed_secrets_warning(path: str | os.PathLike[str]) -> str | None:
    """One line if ``path`` is readable by every user and holds a secret, else None."""
    try:
        mode = os.stat(path).st_mode
        if not mode & stat.S_IROTH:
            return None
        keys = secret_keys_in(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None  # unreadable or invalid: load_config says so
    if not keys:
        return None
    return (f"{os.fspath(path)}: readable by every user (mode {stat.S_IMODE(mode):04o}) and holds "
            f"{', '.join(keys)}: chmod 0600 it (or 0640 with the service's group), or pass "
            "the secrets in the environment (EDGE_UPSTREAM_SASL_PASSWORD, "
            "EDGE_DEVICE_<NAME>_PASSWORD)")
