"""``LogConfig.commit_interval_ms``: appends wait for company, never for their durability.

At a few records a second every commit costs the card a few WAL pages whatever it
carries; an interval lets one commit carry many.  Nothing is acknowledged before its
commit, so the interval delays acknowledgements and changes nothing a crash keeps.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from broker import ConfigError, KafkaConsumer, KafkaProducer, LogConfig, TopicPartition
from broker._log import EARLY_COMMIT_RECORDS

LONG_MS = 5_000  # longer than any wait below: a commit seen earlier was not the interval's doing


def _values(cfg: LogConfig) -> list[bytes]:
    with KafkaConsumer(data_dir=cfg.data_dir, auto_offset_reset="earliest", consumer_timeout_ms=300) as c:
        c.assign([TopicPartition("t", 0)])
        return [r.value for r in c]


def test_records_sent_within_the_interval_share_one_commit(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path, commit_interval_ms=LONG_MS)
    with KafkaProducer(log_config=cfg) as producer:
        producer.send("t", b"warm-up").get(10)  # creates the topic (its own commit)
        commits = producer.metrics()["commits"]
        futures = [producer.send("t", b"v%d" % i) for i in range(5)]
        assert not any(f.is_done for f in futures), "acknowledged before the interval or a flush"
        producer.flush()  # commits now, without waiting out the interval
        assert all(f.succeeded() for f in futures)
        assert producer.metrics()["commits"] == commits + 1
        assert [f.get(0).offset for f in futures] == [1, 2, 3, 4, 5]
    assert _values(cfg) == [b"warm-up", *(b"v%d" % i for i in range(5))]


def test_enough_waiting_records_commit_before_the_interval(tmp_path: Path) -> None:
    # An MQTT publisher's in-flight window is 20 by default: PUBACKs held behind a long
    # interval would stall it, so a commit starts as soon as EARLY_COMMIT_RECORDS wait.
    cfg = LogConfig(data_dir=tmp_path, commit_interval_ms=LONG_MS, durability="no-fsync")
    with KafkaProducer(log_config=cfg) as producer:
        producer.send("t", b"warm-up").get(10)
        futures = [producer.send("t", b"v%d" % i) for i in range(EARLY_COMMIT_RECORDS)]
        futures[-1].get(timeout=LONG_MS / 1000 * 0.6)
        assert all(f.succeeded() for f in futures)


def test_records_nobody_acknowledges_wait_out_the_interval(tmp_path: Path) -> None:
    # Serial readings hold no publisher's window: many of them share one commit, and only
    # the awaited records among them (MQTT QoS 1 deliveries) start it early.
    cfg = LogConfig(data_dir=tmp_path, commit_interval_ms=LONG_MS, durability="no-fsync")
    with KafkaProducer(log_config=cfg) as producer:
        producer.send("t", b"warm-up").get(10)
        commits = producer.metrics()["commits"]
        readings = [producer.send("t", b"r%d" % i, awaited=False) for i in range(3 * EARLY_COMMIT_RECORDS)]
        acked = [producer.send("t", b"a%d" % i) for i in range(EARLY_COMMIT_RECORDS - 1)]
        # Time for a commit the readings must not start (the writer runs once it has the GIL).
        committed = threading.Event()
        readings[0].add_both(lambda _: committed.set())
        assert not committed.wait(1.0), "readings nobody acknowledges started a commit"
        assert not any(f.is_done for f in readings + acked)
        last = producer.send("t", b"a-last")  # the EARLY_COMMIT_RECORDS-th awaited one
        last.get(timeout=LONG_MS / 1000 * 0.6)
        assert all(f.succeeded() for f in readings + acked)
        assert producer.metrics()["commits"] == commits + 1


def test_close_commits_what_waits(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path, commit_interval_ms=LONG_MS)
    producer = KafkaProducer(log_config=cfg)
    producer.send("t", b"warm-up").get(10)
    late = producer.send("t", b"late")
    producer.close()
    assert late.get(0).offset == 1
    assert _values(cfg) == [b"warm-up", b"late"]


def test_without_an_interval_each_lone_send_commits_at_once(tmp_path: Path) -> None:
    with KafkaProducer(log_config=LogConfig(data_dir=tmp_path)) as producer:
        assert producer._log.config.commit_interval_ms == 0  # the library's default, as linger.ms=0
        producer.send("t", b"a").get(10)
        before = producer.metrics()["commits"]
        for i in range(3):
            producer.send("t", b"%d" % i).get(10)
        assert producer.metrics()["commits"] == before + 3


@pytest.mark.parametrize("bad", [-1, 5_001, 0.5, True, "100"])
def test_a_commit_interval_out_of_range_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"commit_interval_ms: expected an integer from 0 to 5000"):
        LogConfig(data_dir=tmp_path, commit_interval_ms=bad)


def test_the_interval_is_part_of_the_config_a_log_is_open_with(tmp_path: Path) -> None:
    with KafkaProducer(log_config=LogConfig(data_dir=tmp_path, commit_interval_ms=200)):
        with pytest.raises(ConfigError, match="commit_interval_ms: 200 vs 0"):
            KafkaProducer(log_config=LogConfig(data_dir=tmp_path))
