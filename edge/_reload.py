"""What SIGHUP cannot apply: the config sections a running service keeps until a restart."""

from __future__ import annotations

import dataclasses

from edge._config import Config

__all__ = ["RESTART_FIELDS", "restart_needed"]


#: Config sections a running service cannot take on: the log and its writer are opened
#: with them, the uplink, the clock and the control channel built from them; the console's
#: listener and its credentials are set up once. SIGHUP names what changed there; a desired
#: config from the fleet (Service.apply_config) restarts the uplink for [upstream] and leaves
#: the rest for the next start, where it is laid over the file again (edge/control/_overlay.py).
RESTART_FIELDS = ("edge_id", "data_dir", "log", "upstream", "clock", "console", "control")


def restart_needed(old: Config, new: Config) -> list[str]:
    """The keys (``log.quota_bytes``, ``upstream.sasl_password``) that differ in sections
    SIGHUP cannot apply; names only, never values (some are secrets)."""
    changed = []
    for name in RESTART_FIELDS:
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        if name == "upstream":
            keys = sorted(k for k in {*a.settings, *b.settings}
                          if a.settings.get(k) != b.settings.get(k))
            changed += [f"upstream.{k}" for k in keys] + (
                ["upstream.enabled"] if a.enabled != b.enabled else [])
        elif dataclasses.is_dataclass(a):
            changed += [f"{name}.{f.name}" for f in dataclasses.fields(a)
                        if getattr(a, f.name) != getattr(b, f.name)]
        else:
            changed.append(name)
    return changed
