"""Time as data: a reading carries its arrival stamp, and the sink takes its ingest time from it.

The writer runs against the real log in a temporary directory, with a ManualClock
so that "later" is a clock step, not a sleep; the headers are read back from the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker import KafkaProducer, ManualClock
from devices import DeadLetter, DecodeError, Reading, TimeSource
from edge import config_from_dict
from edge._clock import ClockTrust
from edge._logconfig import log_config_of
from edge._metrics import Metrics
from edge._runner import DeviceRunner
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


async def test_every_reading_of_an_item_takes_the_arrival_it_carries(tmp_path: Path) -> None:
    cfg, clock, producer, writer, runner = _setup(tmp_path)
    sink = writer.sink_for(runner)
    try:
        arrival = runner.clock()
        clock.advance(0.5)  # decoding took a while: the readings still carry the arrival
        first = sink(_reading(None).arrived(arrival))
        second = sink(_reading(TRUE_NOW - 5000).arrived(arrival))  # the same item's second
        await first
        await second
    finally:
        producer.close()
    records = read_topic(cfg.data_dir, "gps")
    assert [_ingest(r) for r in records] == [arrival.wall_ms, arrival.wall_ms]
    assert [dict(r.headers)["clock"] for r in records] == [b"synced", b"synced"]
    assert records[0].timestamp == arrival.wall_ms  # box-made: stamped with the arrival
    assert records[1].timestamp == TRUE_NOW - 5000  # the device's own


async def test_a_device_time_equal_to_the_arrival_is_still_the_devices(tmp_path: Path) -> None:
    # The sink used to call a reading box-made when its time equalled the last arrival's;
    # now the reading says whose time it is, and a device's time is checked as one.
    cfg, clock, producer, writer, runner = _setup(tmp_path)
    sink = writer.sink_for(runner)
    try:
        arrival = runner.clock()
        own = _reading(arrival.wall_ms).arrived(arrival)
        assert own.time_source is TimeSource.DEVICE
        stamped = _reading(None).arrived(arrival)
        assert stamped.time_source is TimeSource.ARRIVAL
        await sink(own)
        await sink(stamped)
    finally:
        producer.close()
    assert [r.timestamp for r in read_topic(cfg.data_dir, "gps")] == [arrival.wall_ms] * 2


async def test_a_gps_fix_is_stamped_after_the_fix_is_learned(tmp_path: Path) -> None:
    cfg, clock, producer, writer, runner = _setup(tmp_path, ntp_synced=False)  # GPS gives the time
    sink = writer.sink_for(runner)
    try:
        arrival = runner.clock()
        fix = _reading(TRUE_NOW + 60_000, {"lat": 52.5, "lon": 13.4, "valid": True,
                                           "date": "2026-11-27"}).arrived(arrival)
        await sink(fix)
    finally:
        producer.close()
    [record] = read_topic(cfg.data_dir, "gps")
    headers = dict(record.headers)
    assert headers["clock"] == b"gps"  # not the arrival's "unknown"
    assert _ingest(record) == TRUE_NOW + 60_000


async def test_a_reading_and_a_dead_letter_are_stamped_with_their_own_arrival(
        tmp_path: Path) -> None:
    cfg, clock, producer, writer, runner = _setup(tmp_path)
    sink, dead = writer.sink_for(runner), writer.dead_letter_sink_for(runner)
    try:
        runner.clock()  # an NMEA sentence that completes no fix: no sink call, nothing left
        clock.advance(30)
        last = runner.clock()  # what the codec hands on at close is stamped at close
        await sink(_reading(TRUE_NOW + 10).arrived(last))
        arrival = runner.clock()
        clock.advance(1)
        await dead(DeadLetter.from_error(DecodeError(b"$GPXXX*00", "bad checksum", "nmea0183"),
                                         "pty", arrival))
        await sink(_reading(None))  # no arrival of ours (a plain caller): stamped when written
    finally:
        producer.close()
    first, plain = read_topic(cfg.data_dir, "gps")
    assert _ingest(first) == TRUE_NOW + 30_000  # stamped at close, not 30 s earlier
    assert _ingest(plain) == plain.timestamp == TRUE_NOW + 31_000
    [letter] = read_topic(cfg.data_dir, cfg.log.dead_letter_topic)
    assert _ingest(letter) == letter.timestamp == arrival.wall_ms
