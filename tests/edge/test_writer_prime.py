"""A restarted device learns what its topic holds before its first reading, whatever its transport."""

from __future__ import annotations

from pathlib import Path

from broker import KafkaProducer
from devices import Reading
from edge import config_from_dict
from edge._logconfig import log_config_of
from edge._metrics import Metrics
from edge._runner import DeviceRunner
from edge._writer import EventWriter

T0 = 1_750_000_000_000  # device-stamped times must lie after 2000 (edge/_validate.py)


async def test_a_serial_device_with_a_dedupe_window_drops_a_copy_after_a_restart(tmp_path: Path) -> None:
    # Priming read the MQTT client id of every device with a dedupe window, so a serial or
    # 1-wire one failed to start (AttributeError) instead of recognising its copies.
    cfg = config_from_dict({
        "edge_id": "prime-edge", "data_dir": str(tmp_path / "data"),
        "log": {"partitions": 1, "durability": "no-fsync"},
        "devices": [{"name": "room-1", "kind": "temperature", "transport": "serial",
                     "port": "/dev/null", "codec": "text", "topic": "temperature",
                     "dedupe_window": 60}],
    })
    reading = Reading("room-1", "temperature", "text", {"temperature_c": 21.5}, T0 + 1)
    producer = KafkaProducer(log_config=log_config_of(cfg))
    try:
        before = EventWriter(producer, cfg, Metrics())
        await before.sink_for(DeviceRunner(cfg.devices[0], before, Metrics()))(reading)
        # The restart: a new writer and runner, and the same reading sent again.
        writer = EventWriter(producer, cfg, Metrics())
        runner = DeviceRunner(cfg.devices[0], writer, Metrics())
        await writer.prime(runner)
        await writer.sink_for(runner)(reading)
    finally:
        producer.close()
    assert runner.deduplicated == 1 and runner.readings == 0
