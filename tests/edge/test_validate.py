"""The per-device event check: time window, encodable text, ranges from the config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broker import KafkaProducer
from devices import EARLIEST_TIMESTAMP_MS, MAX_AHEAD_MS, DeadLetter, Reading, ReadingRejected
from devices.adapters._base import MAX_REASONS
from edge import ConfigError, config_from_dict
from edge._logconfig import log_config_of
from edge._metrics import Metrics
from edge._runner import DeviceRunner
from edge._validate import EventCheck
from edge._writer import EventWriter
from tests.edge._helpers import read_topic

NOW = 1_750_000_000_000


def reading(**values: object) -> Reading:
    return Reading("room-1", "temperature", "text", values or {"temperature_c": 21.5})


def test_time_window():
    check = EventCheck()
    r = reading()
    check.earliest(r, EARLIEST_TIMESTAMP_MS)
    with pytest.raises(ReadingRejected, match="before 2000-01-01T00:00:00"):
        check.earliest(r, EARLIEST_TIMESTAMP_MS - 1)
    check.ahead(r, NOW + MAX_AHEAD_MS, NOW)
    with pytest.raises(ReadingRejected, match="more than 24 h ahead"):
        check.ahead(r, NOW + MAX_AHEAD_MS + 1, NOW)
    EventCheck(earliest_ms=0).earliest(r, 1)  # configured: 1970 is fine


def config(tmp_path: Path, **device: object) -> dict:
    return {"edge_id": "e", "data_dir": str(tmp_path / "data"),
            "log": {"partitions": 1, "durability": "no-fsync"},
            "devices": [{"name": "room-1", "kind": "temperature", "transport": "serial",
                         "port": "/dev/null", "codec": "text", **device}]}


def test_config_ranges_and_earliest_time(tmp_path: Path):
    import datetime as dt

    cfg = config_from_dict(config(tmp_path, ranges={"temperature_c": [-55, 125]},
                                  earliest_time=dt.date(1990, 1, 1)))
    d = cfg.devices[0]
    assert d.ranges == {"temperature_c": (-55, 125)} and d.earliest_time == 631_152_000_000
    with pytest.raises(ConfigError) as info:
        config_from_dict(config(tmp_path, ranges={"temprature_c": [0, 1], "humidity_pct": [5, 1]},
                                earliest_time=dt.datetime(1990, 1, 1)))
    text = str(info.value)
    assert "edge.toml: devices[0].ranges.temprature_c: expected a quantity of the event schema" in text
    assert "devices[0].ranges.humidity_pct: expected [low, high], two numbers with low < high" in text
    assert "devices[0].earliest_time: expected a date (1990-01-01), an offset date-time" in text


async def test_the_sink_refuses_what_cannot_be_an_event(tmp_path: Path):
    cfg = config_from_dict(config(tmp_path, ranges={"temperature_c": [-55, 125]}))
    producer = KafkaProducer(log_config=log_config_of(cfg))
    writer = EventWriter(producer, cfg, Metrics())
    runner = DeviceRunner(cfg.devices[0], writer, writer.metrics)
    sink = writer.sink_for(runner)
    try:
        with pytest.raises(ReadingRejected, match="device id '\\\\ud800' is not Unicode text"):
            sink(Reading("\ud800", "temperature", "text", {"temperature_c": 21.5}, NOW))
        with pytest.raises(ReadingRejected, match=r"130.0 is outside -55..125 °C \(configured"):
            sink(reading(temperature_c=130.0).with_timestamp(NOW))
        with pytest.raises(ReadingRejected, match="timestamp -100000000000000000000 ms is before"):
            sink(reading().with_timestamp(-(10**20)))
        with pytest.raises(ReadingRejected, match="'note' holds a value of type object, which JSON cannot carry"):
            sink(reading(temperature_c=21.5, note=[object()]).with_timestamp(NOW))
        with pytest.raises(ReadingRejected, match="cannot be encoded as an event"):
            sink(Reading("room-1", "temperature", "\ud800", {"temperature_c": 21.5}, NOW))
        await sink(reading().with_timestamp(NOW))
    finally:
        producer.close()
    assert runner.readings == 1


async def test_dead_letter_reasons_are_bounded_in_the_metrics_and_the_header(tmp_path: Path):
    # Commit at once: each dead letter is awaited in turn, and the default 1 s commit
    # interval made this test wait 101 s for what it never checks.
    raw = config(tmp_path)
    raw["log"]["commit_interval_ms"] = 0
    cfg = config_from_dict(raw)
    producer = KafkaProducer(log_config=log_config_of(cfg))
    writer = EventWriter(producer, cfg, Metrics())
    runner = DeviceRunner(cfg.devices[0], writer, writer.metrics)
    dead = writer.dead_letter_sink_for(runner)
    try:
        for i in range(100):  # a hostile device: a new value, so a new reason, each time
            await dead(DeadLetter(b"x", f"temperature_c = {i} is outside", "text", "pty", NOW))
        await dead(DeadLetter(b"x", "k" * 5000, "text", "pty", NOW))
    finally:
        producer.close()
    samples = [s for m in writer.metrics.decode_errors.collect() for s in m.samples
               if s.name.endswith("_total")]
    assert len(samples) == MAX_REASONS + 1 and sum(s.value for s in samples) == 101
    assert {s.labels["reason"] for s in samples} >= {"other", "temperature_c = 0 is outside"}
    [last] = [r for r in read_topic(tmp_path / "data", "dead-letters") if r.offset == 100]
    assert dict(last.headers)["reason"] == b"k" * 1000 + b"... (5000 characters)"


async def test_a_record_the_log_refuses_when_sent_is_refused_as_a_reading_the_log_stays_well(
        tmp_path: Path):
    # The broker's send() refuses a record's arguments with a ConfigError (here: a topic the
    # log writes itself, which only a hand-made DeviceConfig can name): the reading is
    # refused (the adapter dead-letters it), nothing counts as a failure of the log.
    cfg = config_from_dict(config(tmp_path))
    producer = KafkaProducer(log_config=log_config_of(cfg))
    writer = EventWriter(producer, cfg, Metrics())
    device = dataclasses.replace(cfg.devices[0], topic="__drop_ledger")
    runner = DeviceRunner(device, writer, writer.metrics)
    try:
        with pytest.raises(ReadingRejected, match="the log refused the record .InvalidTopicError"):
            writer.sink_for(runner)(reading().with_timestamp(NOW))
    finally:
        producer.close()
    assert writer.last_failure is None


def test_earliest_time_is_not_before_1970(tmp_path: Path):
    import datetime as dt

    with pytest.raises(ConfigError, match="earliest_time: expected .* not before 1970"):
        config_from_dict(config(tmp_path, earliest_time=dt.date(1969, 12, 31)))
