"""What a box with [control] starts with: its file, with the stored desired sections laid over."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from broker import BrokerError
from edge._config import Config
from edge._errors import ConfigError
from edge._logconfig import log_config_of

from ._overlay import effective_config, targets_of
from ._store import read_state

log = logging.getLogger("edge.control")

__all__ = ["effective_at_start", "read_base"]


def read_base(path: str) -> tuple[dict[str, Any], str]:
    with open(path, "rb") as f:
        return tomllib.load(f), Path(path).name


def effective_at_start(cfg: Config, config_path: str) -> Config:
    """The config to start with: the file with the stored desired sections laid over.

    A stored desired config that no longer validates over the file (the file changed)
    is logged and the file runs as it is."""
    try:
        state = read_state(log_config_of(cfg))
        layers = [state.desired[t]["config"] for t in targets_of(cfg.edge_id, cfg.control.groups)
                  if t in state.desired]
        if not layers and not state.disabled:
            return cfg
        raw, name = read_base(config_path)
        effective = effective_config(raw, layers, state.disabled, name)
    except (ConfigError, OSError, tomllib.TOMLDecodeError, ValueError, BrokerError) as exc:
        # A log that cannot be opened is the service's to report, as a clean StartupError.
        log.error("control: running %s as it is, without the stored desired config: %s",
                  config_path, str(exc).replace("\n", "; "))
        return cfg
    log.info("control: starting with the stored desired config over %s", config_path)
    return effective
