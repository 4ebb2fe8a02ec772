"""What the three clients share: turning their arguments into an open ``Log``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._config import LogConfig, check_data_dir_arg
from ._errors import ConfigError
from ._log import Log

# kafka-python options that mean nothing on one box but appear in ported code;
# accepted and ignored so that porting is changing the import and data_dir.
KAFKA_COMPAT_OPTIONS = frozenset({
    "acks", "api_version", "batch_size", "buffer_memory", "client_id", "compression_type",
    "connections_max_idle_ms", "enable_idempotence", "linger_ms", "max_block_ms",
    "max_in_flight_requests_per_connection", "max_request_size", "metadata_max_age_ms",
    "request_timeout_ms", "retries", "retry_backoff_ms", "security_protocol",
    "fetch_max_wait_ms", "fetch_min_bytes", "fetch_max_bytes", "max_partition_fetch_bytes",
    "heartbeat_interval_ms", "session_timeout_ms", "max_poll_interval_ms", "isolation_level",
    "check_crcs", "exclude_internal_topics", "partition_assignment_strategy", "group_instance_id",
})

ENV_DATA_DIR = "EDGE_DATA_DIR"


def open_log(data_dir: str | os.PathLike[str] | None, log_config: LogConfig | None,
             options: dict[str, Any], client: str) -> Log:
    """Validate a client's arguments and return the shared ``Log`` for its directory."""
    unknown = set(options) - KAFKA_COMPAT_OPTIONS - {"bootstrap_servers"}
    if unknown:
        raise ConfigError(f"{client}: unknown option(s) {', '.join(sorted(unknown))}")
    if "bootstrap_servers" in options and data_dir is None and log_config is None:
        raise ConfigError(
            f"{client}: this is the local log: pass data_dir='/path/to/log' instead of bootstrap_servers"
        )
    as_open = log_config is None  # only a directory: take the log as this process has it open
    if log_config is None:
        if data_dir is None:
            data_dir = os.environ.get(ENV_DATA_DIR)
        if data_dir is None:
            raise ConfigError(f"{client}: data_dir is required (or set ${ENV_DATA_DIR})")
        log_config = LogConfig(data_dir=check_data_dir_arg(data_dir, f"{client}: data_dir"))
    elif not isinstance(log_config, LogConfig):
        raise ConfigError(f"{client}: log_config: expected a LogConfig, got {log_config!r}")
    elif data_dir is not None and check_data_dir_arg(data_dir, f"{client}: data_dir") != Path(log_config.data_dir):
        raise ConfigError(f"{client}: data_dir {data_dir} differs from log_config.data_dir {log_config.data_dir}")
    return Log.acquire(log_config, as_open=as_open)
