"""Retention by age and size, on the persisted log clock, never below a protected group's commit.

Time is driven by ``ManualClock`` and ``admin.run_retention()``: no sleeping.
``retention_check_interval_s`` is huge so the writer's own periodic pass never
races the test's explicit one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import broker
from broker import KafkaAdminClient, KafkaConsumer, LogConfig, ManualClock, TopicPartition

from ._helpers import DAY_S, clients, create, offsets, read_all

HOUR_MS = 3600 * 1000
YEARS_10_MS = 10 * 365 * DAY_S * 1000


def _cfg(path: Path, clock: ManualClock, **kw: object) -> LogConfig:
    return LogConfig(data_dir=path, clock=clock, retention_check_interval_s=1e9, **kw)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cfg(tmp_path: Path, clock: ManualClock) -> LogConfig:
    return _cfg(tmp_path / "log", clock)


def _send(producer: broker.KafkaProducer, topic: str, n: int, size: int = 60, **kw: object) -> list:
    return [producer.send(topic, bytes([i % 256]) * size, **kw).get(10) for i in range(n)]


def test_age_retention_removes_records_older_than_retention_ms_and_keeps_younger(
        cfg: LogConfig, clock: ManualClock) -> None:
    with clients(cfg) as (admin, producer):
        create(admin, "t", retention_ms=HOUR_MS)
        _send(producer, "t", 3)
        clock.advance(30 * 60)
        _send(producer, "t", 2)
        clock.advance(29 * 60)
        assert admin.run_retention() == {}, "nothing is an hour old yet"
        clock.advance(2 * 60)  # the first three are 61 min old, the last two 31 min
        assert admin.run_retention() == {"t": 3}
        assert offsets(cfg, "t") == {(0, 3), (0, 4)}
        part = admin.describe_topics(["t"])[0].partitions[0]
        assert (part.log_start_offset, part.high_watermark, part.records) == (3, 5, 2)
        assert admin.describe_log()["expired_records"] == 3


def test_a_wall_clock_jump_of_years_expires_nothing(cfg: LogConfig, clock: ManualClock) -> None:
    with clients(cfg) as (admin, producer):
        create(admin, "t", retention_ms=HOUR_MS)
        _send(producer, "t", 5)
        clock.set_wall(clock.wall_ms() + YEARS_10_MS)  # NTP sync on a box without an RTC
        assert admin.run_retention() == {}
        clock.set_wall(0)  # and back to 1970
        assert admin.run_retention() == {}
        assert len(read_all(cfg, "t")) == 5
        # The same records do expire once an hour of running time has passed.
        clock.advance(3600 + 1)
        assert admin.run_retention() == {"t": 5}
        assert read_all(cfg, "t") == []


def test_records_carry_the_wall_clock_as_timestamp_but_age_on_the_log_clock(
        cfg: LogConfig, clock: ManualClock) -> None:
    with clients(cfg) as (admin, producer):
        create(admin, "t", retention_ms=HOUR_MS)
        # An event time years in the past (a device with a flat RTC battery) is kept as sent...
        producer.send("t", b"old", timestamp_ms=1000).get(10)
        assert admin.run_retention() == {}
        assert [r.timestamp for r in read_all(cfg, "t")] == [1000]


def test_the_log_clock_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "log"
    clock1 = ManualClock(monotonic_ms=50_000)
    cfg1 = _cfg(path, clock1)
    with clients(cfg1) as (admin, producer):
        create(admin, "t", retention_ms=7 * DAY_S * 1000)
        producer.send("t", b"first").get(10)
        clock1.advance(4 * DAY_S)  # the box runs four days without new records
        assert admin.run_retention() == {}
        assert admin.describe_log()["log_clock_ms"] == 4 * DAY_S * 1000

    # Reboot: the monotonic clock starts again near 0; the wall clock is anywhere.
    clock2 = ManualClock(wall_ms=0, monotonic_ms=7)
    cfg2 = _cfg(path, clock2)
    with clients(cfg2) as (admin, producer):
        assert admin.describe_log()["log_clock_ms"] >= 4 * DAY_S * 1000, "the log clock went back"
        # Two sends: the writer's first retention pass runs after its first commit, so
        # once the second is acknowledged that pass is over and cannot race the one below.
        producer.send("t", b"second").get(10)
        producer.send("t", b"third").get(10)
        clock2.advance(3 * DAY_S + 3600)  # 7 days and an hour of running time in all
        assert admin.run_retention() == {"t": 1}
        assert [r.value for r in read_all(cfg2, "t")] == [b"second", b"third"]
        assert admin.describe_log()["log_clock_ms"] >= (7 * DAY_S + 3600) * 1000


def test_switched_off_time_does_not_age_records(tmp_path: Path) -> None:
    path = tmp_path / "log"
    clock1 = ManualClock()
    with clients(_cfg(path, clock1)) as (admin, producer):
        create(admin, "t", retention_ms=HOUR_MS)
        producer.send("t", b"kept").get(10)
    # Powered off for a year: the wall clock moved, the monotonic one restarted.
    clock2 = ManualClock(wall_ms=clock1.wall_ms() + YEARS_10_MS // 10, monotonic_ms=0)
    cfg2 = _cfg(path, clock2)
    with clients(cfg2) as (admin, _producer):
        clock2.advance(59 * 60)
        assert admin.run_retention() == {}
        assert [r.value for r in read_all(cfg2, "t")] == [b"kept"]


def test_retention_bytes_trims_oldest_first_per_partition(cfg: LogConfig) -> None:
    with clients(cfg) as (admin, producer):
        # 60-byte values, no key or headers: 100 bytes each with the per-record overhead.
        per_record = 60 + 40
        create(admin, "t", partitions=2, retention_bytes=3 * per_record)
        for p in (0, 1):
            _send(producer, "t", 10 if p == 0 else 4, partition=p)
        assert admin.run_retention() == {"t": 7 + 1}
        assert offsets(cfg, "t") == {(0, 7), (0, 8), (0, 9), (1, 1), (1, 2), (1, 3)}
        for part in admin.describe_topics(["t"])[0].partitions:
            assert part.size_bytes <= 3 * per_record
            assert part.size_bytes == part.records * per_record


def test_offsets_never_go_back_or_repeat_after_retention(cfg: LogConfig, clock: ManualClock) -> None:
    with clients(cfg) as (admin, producer):
        create(admin, "t", retention_ms=HOUR_MS)
        assert [m.offset for m in _send(producer, "t", 10)] == list(range(10))
        clock.advance(2 * 3600)
        assert admin.run_retention() == {"t": 10}
        part = admin.describe_topics(["t"])[0].partitions[0]
        assert (part.log_start_offset, part.high_watermark, part.records) == (10, 10, 0)
        assert producer.send("t", b"next").get(10).offset == 10
    with clients(cfg) as (admin, producer):  # and after reopening
        assert producer.send("t", b"after").get(10).offset == 11
        part = admin.describe_topics(["t"])[0].partitions[0]
        assert (part.log_start_offset, part.high_watermark) == (10, 12)
        with KafkaConsumer(log_config=cfg) as consumer:
            tp = TopicPartition("t", 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            assert consumer.position(tp) == 10
    assert [(r.offset, r.value) for r in read_all(cfg, "t")] == [(10, b"next"), (11, b"after")]


def test_a_protected_group_keeps_what_it_has_not_committed(cfg: LogConfig, clock: ManualClock) -> None:
    tp = TopicPartition("t", 0)
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        _send(producer, "t", 10)
        admin.protect_consumer_group("uplink")
        admin.alter_consumer_group_offsets("uplink", {tp: 4})
        admin.alter_consumer_group_offsets("other", {tp: 9})  # not protected: no say
        admin.alter_topic_config("t", {"retention.ms": str(HOUR_MS), "retention.bytes": "0"})
        clock.advance(2 * 3600)
        # Both age and size say "remove everything"; the uplink has only sent 0..3.
        assert admin.run_retention() == {"t": 4}
        assert offsets(cfg, "t") == {(0, o) for o in range(4, 10)}
        admin.alter_consumer_group_offsets("uplink", {tp: 8})
        assert admin.run_retention() == {"t": 4}
        assert offsets(cfg, "t") == {(0, 8), (0, 9)}
        # A second protected group that is further behind holds retention back.
        admin.protect_consumer_group("audit")
        admin.alter_consumer_group_offsets("audit", {tp: 8})
        admin.alter_consumer_group_offsets("uplink", {tp: 10})
        assert admin.run_retention() == {}
        admin.alter_consumer_group_offsets("audit", {tp: 9})
        assert admin.run_retention() == {"t": 1}
        assert offsets(cfg, "t") == {(0, 9)}


def test_a_protected_group_without_a_commit_protects_everything(cfg: LogConfig, clock: ManualClock) -> None:
    with clients(cfg) as (admin, producer):
        create(admin, "t", partitions=2)
        _send(producer, "t", 6)
        admin.protect_consumer_group("uplink")
        # Its commit on partition 0 does not unprotect partition 1.
        admin.alter_consumer_group_offsets("uplink", {TopicPartition("t", 0): 1})
        admin.alter_topic_config("t", {"retention.ms": str(HOUR_MS), "retention.bytes": "0"})
        clock.advance(10 * 3600)
        assert admin.run_retention() == {"t": 1}
        assert len(read_all(cfg, "t")) == 5
        assert admin.describe_consumer_group("uplink").protected
        admin.protect_consumer_group("uplink", protected=False)
        assert admin.run_retention() == {"t": 5}
        assert read_all(cfg, "t") == []


def test_a_group_protected_on_some_topics_holds_only_those(cfg: LogConfig, clock: ManualClock) -> None:
    with clients(cfg) as (admin, producer):
        for t in ("in", "other"):
            create(admin, t, retention_ms=HOUR_MS)
            _send(producer, t, 3)
        # A stream topology's group: it reads "in" only and has committed nothing yet.
        admin.protect_consumer_group("streams.t", topics=["in"])
        d = admin.describe_consumer_group("streams.t")
        assert (d.protected, d.protected_topics) == (True, ("in",))
        clock.advance(2 * 3600)
        assert admin.run_retention() == {"other": 3}, "an unscoped group would have held 'other'"
        admin.alter_consumer_group_offsets("streams.t", {TopicPartition("in", 0): 2})
        assert admin.run_retention() == {"in": 2}
        assert offsets(cfg, "in") == {(0, 2)}
        # Protecting it again without topics widens it to every topic; False lifts all of it.
        admin.protect_consumer_group("streams.t")
        assert admin.describe_consumer_group("streams.t").protected_topics is None
        admin.protect_consumer_group("streams.t", protected=False)
        assert admin.run_retention() == {"in": 1}
        with pytest.raises(broker.ConfigError, match="topics: expected topic names"):
            admin.protect_consumer_group("streams.t", topics=[])


@pytest.mark.parametrize(("reset", "expected"), [("earliest", [8, 9]), ("latest", [])])
def test_a_committed_offset_below_log_start_is_reset_per_auto_offset_reset(
        cfg: LogConfig, reset: str, expected: list[int]) -> None:
    tp = TopicPartition("t", 0)
    with clients(cfg) as (admin, producer):
        create(admin, "t", retention_bytes=2 * 100)
        _send(producer, "t", 10)
        with KafkaConsumer(log_config=cfg, group_id="g", enable_auto_commit=False) as c:
            c.commit({tp: broker.OffsetAndMetadata(3)})
        assert admin.run_retention() == {"t": 8}
        with KafkaConsumer("t", log_config=cfg, group_id="g", auto_offset_reset=reset,
                           enable_auto_commit=False) as c:
            got = [r.offset for recs in c.poll(timeout_ms=0).values() for r in recs]
            assert got == expected
            assert c.position(tp) == 10


@pytest.mark.parametrize(("reset", "expected"), [("earliest", [8, 9]), ("latest", [])])
def test_a_live_position_passed_by_retention_is_reset(cfg: LogConfig, reset: str, expected: list[int]) -> None:
    tp = TopicPartition("t", 0)
    with clients(cfg) as (admin, producer):
        create(admin, "t", retention_bytes=2 * 100)
        _send(producer, "t", 10)
        with KafkaConsumer(log_config=cfg, auto_offset_reset=reset) as c:
            c.assign([tp])
            c.seek(tp, 2)
            assert admin.run_retention() == {"t": 8}
            got = [r.offset for recs in c.poll(timeout_ms=0).values() for r in recs]
            assert got == expected


def test_a_position_passed_by_retention_raises_with_reset_none(cfg: LogConfig) -> None:
    tp = TopicPartition("t", 0)
    with clients(cfg) as (admin, producer):
        create(admin, "t", retention_bytes=2 * 100)
        _send(producer, "t", 10)
        with KafkaConsumer(log_config=cfg, auto_offset_reset="none") as c:
            c.assign([tp])
            c.seek(tp, 2)
            admin.run_retention()
            with pytest.raises(broker.OffsetOutOfRangeError, match=r"t\[0\].*8\.\.10"):
                c.poll(timeout_ms=0)


def test_retention_config_can_be_altered_and_takes_effect(cfg: LogConfig, clock: ManualClock) -> None:
    with clients(cfg) as (admin, producer):
        create(admin, "t")  # the default: 7 days
        _send(producer, "t", 3)
        clock.advance(2 * 3600)
        assert admin.run_retention() == {}
        admin.alter_topic_config("t", {"retention.ms": str(HOUR_MS)})
        assert admin.describe_topics(["t"])[0].config["retention.ms"] == str(HOUR_MS)
        assert admin.run_retention() == {"t": 3}


def test_the_admin_used_by_retention_is_closed_cleanly(cfg: LogConfig) -> None:
    admin = KafkaAdminClient(log_config=cfg)
    admin.close()
    admin.close()  # safe twice
    with pytest.raises(broker.ClosedError):
        admin.run_retention()


def test_the_log_clock_never_goes_back_behind_its_records(tmp_path: Path) -> None:
    # Appends store the log clock at most once a minute (a page less in every commit);
    # a run that ended in between stamped records later than what meta holds, and the
    # next run's clock starts from the newest of them.
    path = tmp_path / "log"
    clock1 = ManualClock(monotonic_ms=0)
    with clients(_cfg(path, clock1)) as (admin, producer):
        create(admin, "t", retention_ms=HOUR_MS)
        producer.send("t", b"a").get(10)
        clock1.advance(30)
        producer.send("t", b"b").get(10)
        assert admin.describe_log()["log_clock_ms"] < 30_000  # not stored: under a minute on
    clock2 = ManualClock(wall_ms=0, monotonic_ms=7)
    with clients(_cfg(path, clock2)) as (admin, producer):
        assert producer._log.log_now() >= 30_000
        # Two sends: the writer's first retention pass, after its first commit, is over.
        producer.send("t", b"c").get(10)
        producer.send("t", b"d").get(10)
        clock2.advance(3600 - 30 + 1)  # "a" is an hour and a second old; "b" not yet an hour
        assert admin.run_retention() == {"t": 1}
        assert [r.value for r in read_all(_cfg(path, clock2), "t")] == [b"b", b"c", b"d"]
