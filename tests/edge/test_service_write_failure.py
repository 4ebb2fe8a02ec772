"""A write the log refuses fails the sink's future (nothing is acknowledged) and is counted.

The real log in a temporary directory with the smallest disk quota, and records larger than it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker import MIN_QUOTA_BYTES, KafkaProducer, LogFullError
from devices import DeadLetter, Reading
from edge import config_from_dict
from edge._logconfig import log_config_of
from edge._metrics import Metrics
from edge._runner import DeviceRunner
from edge._writer import EventWriter

T0 = 1_750_000_000_000  # device-stamped times must lie after 2000 (edge/_validate.py)


async def test_a_refused_write_fails_the_sinks_future_and_is_counted(tmp_path: Path) -> None:
    cfg = config_from_dict({
        "edge_id": "full-edge", "data_dir": str(tmp_path / "data"),
        "log": {"partitions": 1, "durability": "no-fsync", "quota_bytes": MIN_QUOTA_BYTES},
        "devices": [{"name": "room-1", "kind": "temperature", "transport": "serial",
                     "port": "/dev/null", "codec": "text", "topic": "temperature"}],
    })
    producer = KafkaProducer(log_config=log_config_of(cfg))
    metrics = Metrics()
    writer = EventWriter(producer, cfg, metrics)
    runner = DeviceRunner(cfg.devices[0], writer, metrics)
    sink, dead = writer.sink_for(runner), writer.dead_letter_sink_for(runner)
    try:
        await sink(Reading("room-1", "temperature", "text", {"temperature_c": 21.5}, T0 + 1))
        assert runner.readings == 1 and writer.last_failure is None
        with pytest.raises(LogFullError):
            await sink(Reading("room-1", "temperature", "text",
                               {"temperature_c": 21.6, "note": "x" * MIN_QUOTA_BYTES}, T0 + 2))
        with pytest.raises(LogFullError):
            await dead(DeadLetter(b"x" * MIN_QUOTA_BYTES, "not a number", "text", "/dev/null", T0 + 3))
    finally:
        producer.close()
    assert runner.readings == 1 and runner.dead_letters == 0  # only what was written counts
    assert writer.last_failure is not None and writer.last_failure.startswith("LogFullError")
    failures = metrics.registry.get_sample_value(
        "edge_log_write_failures_total", {"device": "room-1", "error": "LogFullError"})
    assert failures == 2
