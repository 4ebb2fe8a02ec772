"""One open log per directory per process, with one config: a second, different config is refused.

``Log.acquire`` used to keep the first caller's ``LogConfig`` without a word, so a
client asking for a quota or fsync could run without either.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker import (
    MIN_QUOTA_BYTES,
    ConfigError,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    ManualClock,
    TopicConfig,
)


def test_clients_with_equal_configs_share_the_log(tmp_path: Path) -> None:
    a = LogConfig(data_dir=tmp_path, quota_bytes=MIN_QUOTA_BYTES, default_partitions=3)
    b = LogConfig(data_dir=tmp_path, quota_bytes=MIN_QUOTA_BYTES, default_partitions=3)
    with KafkaProducer(log_config=a) as producer, KafkaAdminClient(log_config=b) as admin:
        assert producer._log is admin._log


def test_a_different_config_is_refused_naming_each_field(tmp_path: Path) -> None:
    open_cfg = LogConfig(data_dir=tmp_path, quota_bytes=MIN_QUOTA_BYTES)
    other = LogConfig(data_dir=tmp_path / "." , durability="no-fsync",
                      default_topic_config=TopicConfig(retention_ms=1000))
    with KafkaProducer(log_config=open_cfg) as producer:
        with pytest.raises(ConfigError) as err:
            KafkaAdminClient(log_config=other)
        msg = str(err.value)
        assert "durability: 'fsync' vs 'no-fsync'" in msg
        assert f"quota_bytes: {MIN_QUOTA_BYTES} vs None" in msg
        assert "default_topic_config: TopicConfig(retention_ms=604800000" in msg
        assert "vs TopicConfig(retention_ms=1000" in msg
        assert "full_policy" not in msg and "busy_timeout_s" not in msg
        assert "pass the same LogConfig" in msg
        # The refusal changed nothing for the client that holds the log.
        producer.send("t", b"v").get(timeout=10)
        assert producer._log.config is open_cfg


def test_the_same_directory_by_another_path_is_the_same_log(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    with KafkaProducer(log_config=LogConfig(data_dir=real)):
        with pytest.raises(ConfigError, match="default_partitions: 1 vs 2"):
            KafkaProducer(log_config=LogConfig(data_dir=tmp_path / "link", default_partitions=2))


def test_a_client_given_only_data_dir_takes_the_open_log_as_it_is(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path, quota_bytes=MIN_QUOTA_BYTES, durability="no-fsync")
    with KafkaProducer(log_config=cfg) as producer:
        with KafkaConsumer(data_dir=tmp_path) as consumer:
            assert consumer._log is producer._log
            assert consumer._log.config.quota_bytes == MIN_QUOTA_BYTES


def test_a_log_opened_by_data_dir_alone_says_so_when_refusing(tmp_path: Path) -> None:
    with KafkaConsumer(data_dir=tmp_path):
        with pytest.raises(ConfigError, match=r"only data_dir= \(so LogConfig's defaults\)"):
            KafkaProducer(log_config=LogConfig(data_dir=tmp_path, quota_bytes=MIN_QUOTA_BYTES))


def test_clocks_differ_unless_both_are_the_system_clock_or_the_same(tmp_path: Path) -> None:
    clock = ManualClock()
    with KafkaProducer(log_config=LogConfig(data_dir=tmp_path, clock=clock)):
        KafkaAdminClient(log_config=LogConfig(data_dir=tmp_path, clock=clock)).close()
        with pytest.raises(ConfigError, match="clock: .*ManualClock.* vs SystemClock"):
            KafkaAdminClient(log_config=LogConfig(data_dir=tmp_path))
    with KafkaProducer(log_config=LogConfig(data_dir=tmp_path)):
        KafkaAdminClient(log_config=LogConfig(data_dir=tmp_path)).close()  # two SystemClock()s


def test_once_released_the_log_opens_with_a_new_config(tmp_path: Path) -> None:
    with KafkaProducer(log_config=LogConfig(data_dir=tmp_path)):
        pass
    with KafkaProducer(log_config=LogConfig(data_dir=tmp_path, durability="no-fsync")) as producer:
        assert producer._log.config.durability == "no-fsync"
