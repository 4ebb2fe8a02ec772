"""The broker's ``LogConfig`` for the appliance's config: one place that maps [log] onto it."""

from __future__ import annotations

from broker import Clock, Durability, FullPolicy, LogConfig, SystemClock, TopicConfig
from edge._config import Config

__all__ = ["log_config_of"]


def log_config_of(cfg: Config, clock: Clock | None = None) -> LogConfig:
    """The broker's LogConfig for the appliance config (``clock``: for tests of time)."""
    retention_ms = -1 if cfg.log.retention_seconds == -1 else cfg.log.retention_seconds * 1000
    return LogConfig(
        data_dir=cfg.data_dir, durability=Durability(cfg.log.durability),
        quota_bytes=cfg.log.quota_bytes, full_policy=FullPolicy(cfg.log.full_policy), default_partitions=cfg.log.partitions,
        default_topic_config=TopicConfig(retention_ms=retention_ms,
                                         retention_bytes=cfg.log.retention_bytes),
        commit_interval_ms=cfg.log.commit_interval_ms,
        clock=clock if clock is not None else SystemClock(),
    )
