"""[kafka]'s group settings reach the listener's group coordinator (Kafka's group.* broker settings)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker import LogConfig
from broker.wire import CoordinatorSettings
from broker.wire._groups_api import coordinator
from edge._config import parse_config
from edge._errors import StartupError
from edge._kafka_serve import start_kafka_listener
from tests.fixtures.mosquitto import free_port


def _config(tmp_path: Path, kafka: str) -> str:
    return (f'edge_id = "box"\ndata_dir = "{tmp_path / "data"}"\n'
            f'[kafka]\nlisten = "127.0.0.1:{free_port()}"\n{kafka}')


def test_group_settings_from_the_kafka_table_are_the_coordinators(tmp_path: Path) -> None:
    cfg = parse_config(_config(tmp_path, "group_min_session_timeout = 0.5\n"
                                         "group_max_session_timeout = 60\n"
                                         "group_initial_rebalance_delay = 0\n"), env={})

    async def main() -> CoordinatorSettings:
        server = await start_kafka_listener(cfg, LogConfig(tmp_path / "log"))
        try:
            return coordinator(server.ctx).settings
        finally:
            await server.close()

    assert asyncio.run(main()) == CoordinatorSettings(min_session_timeout_ms=500, max_session_timeout_ms=60_000,
                                                      initial_rebalance_delay_ms=0)


def test_kafkas_defaults_without_the_keys(tmp_path: Path) -> None:
    k = parse_config(_config(tmp_path, ""), env={}).kafka
    assert (k.group_min_session_timeout, k.group_max_session_timeout, k.group_initial_rebalance_delay) == \
        (6.0, 1800.0, 3.0)


def test_a_bad_group_setting_names_its_key(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"kafka\.group_initial_rebalance_delay.*seconds >= 0.*-1"):
        parse_config(_config(tmp_path, "group_initial_rebalance_delay = -1\n"), env={})


def test_a_minimum_above_the_maximum_is_refused_at_start_saying_why(tmp_path: Path) -> None:
    cfg = parse_config(_config(tmp_path, "group_min_session_timeout = 90\ngroup_max_session_timeout = 60\n"),
                       env={})
    with pytest.raises(StartupError, match=r"\[kafka\].*minimum \(90000 ms\) is above their maximum \(60000 ms\)"):
        asyncio.run(start_kafka_listener(cfg, LogConfig(tmp_path / "log")))


def test_coordinator_settings_refuse_what_kafka_would() -> None:
    from broker import ConfigError
    with pytest.raises(ConfigError, match="min_session_timeout_ms.*got 0"):
        CoordinatorSettings(min_session_timeout_ms=0)
