"""A topology's input group is protected: retention keeps input it has not processed.

Time is driven by ``ManualClock`` and ``admin.run_retention()`` (no sleeping);
``retention_check_interval_s`` is huge so the writer's own pass never races the
test's.  Each record of the quota test below has a 3,000-byte value, which takes
a 4 KiB B-tree leaf of the disk quota.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import broker
from broker import KafkaAdminClient, KafkaProducer, LogConfig, ManualClock
from edge._streams import release_removed_topologies
from edge.streams import StreamsRunner, Topology

HOUR_MS = 3600 * 1000
QUOTA = 256 * 1024  # on disk: about two dozen of these records (a leaf page each)


def _cfg(path: Path, clock: ManualClock, **kw: object) -> LogConfig:
    return LogConfig(data_dir=path, clock=clock, retention_check_interval_s=1e9, **kw)


def _topology() -> Topology:
    t = Topology("copy")
    t.source("in").to("out")
    return t


def _create(admin: KafkaAdminClient, name: str, **conf: str) -> None:
    admin.create_topics([broker.NewTopic(name, 1, 1, None, conf)])


def _values(cfg: LogConfig, topic: str) -> list[bytes]:
    with broker.KafkaConsumer(topic, log_config=cfg, auto_offset_reset="earliest") as c:
        out: list[bytes] = []
        while batch := c.poll(timeout_ms=0):
            out.extend(r.value for recs in batch.values() for r in recs)
    return out


def _send(producer: KafkaProducer, topic: str, values: list[bytes], clock: ManualClock) -> None:
    for v in values:
        producer.send(topic, v).get(10)
        clock.advance(1)  # so that "oldest" is unambiguous


@pytest.mark.parametrize("protect", [True, False])
def test_unprocessed_input_survives_retention_then_goes_once_processed(
        tmp_path: Path, protect: bool) -> None:
    clock = ManualClock()
    cfg = _cfg(tmp_path / "log", clock)
    with KafkaAdminClient(log_config=cfg) as admin, KafkaProducer(log_config=cfg) as producer:
        for name in ("in", "local"):
            _create(admin, name, **{"retention.ms": str(HOUR_MS)})
        runner = StreamsRunner(_topology(), cfg, protect_input=protect)
        try:
            first = [b"a%d" % i for i in range(5)]
            _send(producer, "in", first, clock)
            _send(producer, "local", [b"x"] * 3, clock)
            clock.advance(2 * 3600)  # older than retention, and the runner has read nothing
            removed = admin.run_retention()
            if not protect:  # the control: without protection the input is gone unprocessed
                assert removed == {"in": 5, "local": 3}
                assert runner.process_available() == 0
                assert runner.status().skipped == 0 and _values(cfg, "out") == []
                return
            # The group protects "in" only: "local", as old, goes.
            assert removed == {"local": 3}
            assert admin.describe_consumer_group(runner.group_id).protected_topics == ("in",)
            assert runner.process_available() == 5
            assert _values(cfg, "out") == first and runner.status().skipped == 0
            # Processed and committed: the next pass removes them ("out" has the default retention).
            assert admin.run_retention() == {"in": 5}
            assert _values(cfg, "in") == []
            # Again, after the group has a commit: only what lies past it is kept.
            second = [b"b%d" % i for i in range(3)]
            _send(producer, "in", second, clock)
            clock.advance(2 * 3600)
            assert admin.run_retention() == {}  # ("out" keeps the default retention)
            assert _values(cfg, "in") == second
            assert runner.process_available() == 3
            assert _values(cfg, "out") == first + second
            assert admin.run_retention() == {"in": 3}
        finally:
            runner.close()


def test_under_drop_oldest_unprocessed_input_goes_last_and_the_ledger_says_whose(
        tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(tmp_path / "log", clock, quota_bytes=QUOTA, full_policy="drop-oldest")
    value = [(f"{i:06d}".encode() * 500)[:3000] for i in range(60)]
    with KafkaAdminClient(log_config=cfg) as admin, KafkaProducer(log_config=cfg) as producer:
        _create(admin, "in")
        _create(admin, "raw")
        with StreamsRunner(_topology(), cfg) as runner:
            _send(producer, "in", value[:8], clock)   # older, same priority, not processed yet
            _send(producer, "raw", value[8:20], clock)  # nobody protects these
            _send(producer, "raw", value[20:26], clock)  # over the quota: raw goes, in stays
            assert _values(cfg, "in") == value[:8]
            entries = _ledger(cfg)
            assert entries and all(e["topic"] == "raw" and not e["unreplicated"] for e in entries)
            # More input than the quota holds: raw goes to the last record, then the oldest
            # unprocessed input, and the ledger names the group that had not read it.
            _send(producer, "in", value[26:50], clock)
            assert _values(cfg, "raw") == []
            kept = _values(cfg, "in")
            assert kept == value[50 - len(kept):50] and len(kept) < 32
            entries = _ledger(cfg)
            first_in = next(i for i, e in enumerate(entries) if e["topic"] == "in")
            assert all(e["topic"] == "raw" for e in entries[:first_in])
            assert all(e["unreplicated"] and e["unread_by"] == ["streams.copy"]
                       and "unread by streams.copy" in e["reason"] for e in entries[first_in:]
                       if e["topic"] == "in")
            assert runner.process_available() == len(kept)
            assert _values(cfg, "out") == kept
            assert admin.describe_log()["disk_bytes"] <= cfg.quota_bytes


def test_a_topology_gone_from_the_config_is_released(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(tmp_path / "log", clock)
    with KafkaAdminClient(log_config=cfg) as admin:
        _create(admin, "in")
        for name in ("keep", "gone"):
            t = Topology(name)
            t.source("in").to(f"{name}.out")
            StreamsRunner(t, cfg).close()
        admin.protect_consumer_group("edge-uplink-box")  # not a topology's: left alone
        assert release_removed_topologies(cfg, ["keep"]) == ["streams.gone"]
        assert [admin.describe_consumer_group(g).protected
                for g in ("streams.keep", "streams.gone", "edge-uplink-box")] == [True, False, True]
        assert release_removed_topologies(cfg, ["keep"]) == []


def _ledger(cfg: LogConfig) -> list[dict]:
    return [json.loads(v) for v in _values(cfg, broker.DROP_LEDGER_TOPIC)]
