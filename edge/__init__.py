"""The running appliance: config, the supervisor of devices → log → uplink, health, the CLI.

>>> from edge import load_config, run_service
>>> run_service(load_config("/etc/edge/edge.toml"))   # until SIGTERM

The public face of ``edge``: import from here (the uplink from ``edge.uplink``).
"""

from edge._config import (
    Config,
    DeviceConfig,
    HealthConfig,
    LogSettings,
    UpstreamSettings,
    config_from_dict,
    load_config,
    parse_config,
)
from edge._errors import ConfigError, ConfigProblem, EdgeError, StartupError
from edge._runner import DeviceRunner
from edge._service import Service, run_service

__all__ = [
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DeviceConfig",
    "DeviceRunner",
    "EdgeError",
    "HealthConfig",
    "LogSettings",
    "Service",
    "StartupError",
    "UpstreamSettings",
    "config_from_dict",
    "load_config",
    "parse_config",
    "run_service",
]
