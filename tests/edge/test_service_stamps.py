"""One clock stamp per event: the sink takes the adapter's arrival stamp, once.

The writer runs against the real log in a temporary directory, with a ManualClock
so that "later" is a clock step, not a sleep; the headers are read back from the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker import KafkaProducer, ManualClock
from devices import DeadLetter, Reading
from edge import config_from_dict
from edge._clock import ClockTrust
from edge._metrics import Metrics
from edge._runner import DeviceRunner
from edge._service import log_config_of
from edge._writer import EventWriter
from tests.edge._helpers import read_topic
from tests.edge.test_clock import TRUE_NOW, Ntp


def _setup(tmp_path: Path, ntp_synced: bool = True) -> tuple[Any, ...]:
    cfg = config_from_dict({
        "edge_id": "stamp-edge", "data_dir": str(tmp_path / "data"),
        "log": {"partitions": 1, "durability": "no-fsync"},
        "devices": [{"name": "car-1", "kind": "gps", "transport": "serial",
                     "port": "/dev/null", "codec": "nmea0183", "topic": "gps"}],
    })
    clock = ManualClock(wall_ms=TRUE_NOW, monotonic_ms=1_000_000)
    trust = ClockTrust(clock, ntp=Ntp(ntp_synced))
    producer = KafkaProducer(log_config=log_config_of(cfg, clock))
    metrics = Metrics()
    writer = EventWriter(producer, cfg, metrics, trust)
    runner = DeviceRunner(cfg.devices[0], writer, metrics, trust=trust)
    return cfg, clock, producer, writer, runner


def _ingest(record: Any) -> int:
    return int(dict(record.headers)["ingest_ms"])


def _reading(ts: int | None, values: dict[str, Any] | None = None) -> Reading:
    return Reading("car-1", "gps", "nmea0183", values or {"lat": 52.5, "lon": 13.4}, ts)


async def test_the_first_reading_of_an_item_takes_the_arrival_stamp_the_next_a_fresh_one(
        tmp_path: Path) -> None:
    cfg, clock, producer, writer, runner = _setup(tmp_path)
    sink = writer.sink_for(runner)
    try:
        arrived = runner._arrival()
        clock.advance(0.5)  # decoding took a while: the first reading still gets the arrival
        first = sink(_reading(arrived))
        second = sink(_reading(TRUE_NOW - 5000))  # the same item's second reading
        await first
        await second
    finally:
        producer.close()
    records = read_topic(cfg.data_dir, "gps")
    assert [_ingest(r) for r in records] == [arrived, arrived + 500]
    assert records[0].timestamp == arrived  # box-made: stamped with the arrival
    assert records[1].timestamp == TRUE_NOW - 5000  # the device's own


async def test_a_gps_fix_is_stamped_after_the_fix_is_learned(tmp_path: Path) -> None:
    cfg, clock, producer, writer, runner = _setup(tmp_path, ntp_synced=False)  # GPS gives the time
    sink = writer.sink_for(runner)
    try:
        runner._arrival()
        fix = _reading(TRUE_NOW + 60_000, {"lat": 52.5, "lon": 13.4, "valid": True,
                                           "date": "2026-11-27"})
        await sink(fix)
    finally:
        producer.close()
    [record] = read_topic(cfg.data_dir, "gps")
    headers = dict(record.headers)
    assert headers["clock"] == b"gps"  # not the arrival's "unknown"
    assert _ingest(record) == TRUE_NOW + 60_000


async def test_a_stamp_left_by_an_item_without_readings_is_dropped_at_stop(tmp_path: Path) -> None:
    cfg, clock, producer, writer, runner = _setup(tmp_path)
    sink, dead = writer.sink_for(runner), writer.dead_letter_sink_for(runner)
    try:
        runner._arrival()  # an NMEA sentence that completes no fix: no sink call
        clock.advance(30)
        await runner.stop()
        await sink(_reading(TRUE_NOW + 10))  # what the codec hands on at close
        arrived = runner._arrival()
        clock.advance(1)
        await dead(DeadLetter(b"$GPXXX*00", "bad checksum", "nmea0183", "pty", arrived))
    finally:
        producer.close()
    [record] = read_topic(cfg.data_dir, "gps")
    assert _ingest(record) == TRUE_NOW + 30_000  # stamped when written, not 30 s earlier
    [letter] = read_topic(cfg.data_dir, cfg.log.dead_letter_topic)
    assert _ingest(letter) == arrived  # a dead letter takes its item's stamp too
