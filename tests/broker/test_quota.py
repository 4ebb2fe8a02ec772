"""The disk quota of the whole log: reject, or drop the oldest, least precious first, on the record.

Every record here has a 1000-byte value and no key or headers, so it takes
1040 bytes of the quota (with the per-record overhead of 40); a drop-ledger
entry takes about a quarter of that, and counts under the quota too.  The
clock is advanced between sends so that "oldest" is unambiguous.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import broker
from broker import KafkaAdminClient, LogConfig, LogFullError, ManualClock, TopicPartition

from ._helpers import clients, create, ledger, ledger_offsets, offsets, read_all

REC = 1040  # bytes one record takes of the quota


def _value(i: int) -> bytes:
    return (f"{i:06d}".encode() * 200)[:1000]  # distinct per i


def _cfg(path: Path, quota: int, policy: str, clock: ManualClock | None = None) -> LogConfig:
    return LogConfig(data_dir=path, quota_bytes=quota, full_policy=policy,
                     clock=clock or ManualClock(), retention_check_interval_s=1e9)


def _used(admin: KafkaAdminClient) -> int:
    return admin.describe_log()["bytes"]


def test_reject_raises_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "log", 10 * REC, "reject")
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        for i in range(10):
            producer.send("t", _value(i)).get(10)
        fut = producer.send("t", _value(10))
        with pytest.raises(LogFullError) as info:
            fut.get(10)
        msg = str(info.value)
        assert f"quota of {10 * REC} bytes" in msg and "'t'" in msg and "reject" in msg
        assert info.value.retriable
        assert fut.failed() and fut.exception() is info.value
        # A batch that straddles the quota after room was made: what fits goes in, the rest fails.
        admin.delete_topics(["t"])
        create(admin, "t")
        for i in range(8):
            producer.send("t", _value(i)).get(10)
        futs = [producer.send("t", _value(100 + i)) for i in range(4)]
        producer.flush()
        assert sum(f.succeeded() for f in futs) == 2
        assert all(isinstance(f.exception(), LogFullError) for f in futs if f.failed())
        assert producer.metrics()["rejected"] >= 3
        assert admin.describe_log()["dropped_records"] == 0
        assert _used(admin) == 10 * REC
        assert broker.DROP_LEDGER_TOPIC not in admin.list_topics()
    got = [r.value for r in read_all(cfg, "t")]
    assert got[:8] == [_value(i) for i in range(8)]
    assert len(got) == 10


def test_drop_oldest_takes_low_priority_topics_first(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(tmp_path / "log", 20 * REC, "drop-oldest", clock)
    with clients(cfg) as (admin, producer):
        create(admin, "vitals", priority=10)
        create(admin, "gps", priority=0)
        for i in range(5):  # the oldest records are vital signs
            producer.send("vitals", _value(i)).get(10)
            clock.advance(1)
        for i in range(15):
            producer.send("gps", _value(i)).get(10)
            clock.advance(1)
        assert admin.describe_log()["dropped_records"] == 0
        for i in range(5, 10):
            producer.send("vitals", _value(i)).get(10)
            clock.advance(1)
        vitals = read_all(cfg, "vitals")
        assert [r.value for r in vitals] == [_value(i) for i in range(10)], "a vital sign was dropped"
        gone = {(0, o) for o in range(15)} - offsets(cfg, "gps")
        assert gone and gone == {(0, o) for o in range(len(gone))}, "not the oldest gps records"
        assert _used(admin) <= cfg.quota_bytes
        # Once the low-priority topic is empty, the oldest vital signs go.
        for i in range(15):
            producer.send("vitals", _value(100 + i)).get(10)
            clock.advance(1)
        assert read_all(cfg, "gps") == []
        left = [r.offset for r in read_all(cfg, "vitals")]
        assert left == list(range(25 - len(left), 25)), "not the oldest vital signs"
        assert _used(admin) <= cfg.quota_bytes
    _check_ledger(cfg, {"vitals": 25, "gps": 15})


def test_drop_oldest_is_oldest_first_across_partitions(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(tmp_path / "log", 12 * REC, "drop-oldest", clock)
    with clients(cfg) as (admin, producer):
        create(admin, "t", partitions=2)
        for part in (0, 1, 0, 1):  # p0 at t0, p1 at t1, p0 again at t2, p1 at t3: full
            for i in range(3):
                producer.send("t", _value(i), partition=part).get(10)
            clock.advance(10)
        # One record as big as five: five records and the ledger entry's room must go,
        # which is six records, and they must be the six oldest, from both partitions.
        producer.send("t", b"b" * (5 * REC - 40), partition=1).get(10)
        left = offsets(cfg, "t")
        gone = {(p, o) for p in (0, 1) for o in range(6)} - left
        oldest = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)}
        assert gone == oldest, f"dropped {sorted(gone)}, not the oldest"
        assert _used(admin) <= cfg.quota_bytes
        entries = ledger(cfg)
        assert [(e["topic"], e["ranges"], e["count"]) for e in entries] == [
            ("t", [{"partition": 0, "from_offset": 0, "to_offset": 2},
                   {"partition": 1, "from_offset": 0, "to_offset": 2}], 6)]
    _check_ledger(cfg, {"t": None})


def test_replicated_records_go_before_unreplicated_ones(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(tmp_path / "log", 20 * REC, "drop-oldest", clock)
    with clients(cfg) as (admin, producer):
        create(admin, "gps", priority=0)
        create(admin, "vitals", priority=10)
        for i in range(10):  # gps older and less precious, but not upstream yet
            producer.send("gps", _value(i)).get(10)
            clock.advance(1)
        for i in range(10):
            producer.send("vitals", _value(i)).get(10)
            clock.advance(1)
        admin.protect_consumer_group("uplink")
        admin.alter_consumer_group_offsets("uplink", {TopicPartition("vitals", 0): 8})
        for i in range(5):
            producer.send("vitals", _value(100 + i)).get(10)
            clock.advance(1)
        assert offsets(cfg, "gps") == {(0, o) for o in range(10)}, "unreplicated gps dropped first"
        vit = offsets(cfg, "vitals")
        gone = {(0, o) for o in range(15)} - vit
        assert gone and gone <= {(0, o) for o in range(8)}, f"dropped unreplicated vitals {sorted(gone)}"
        entries = ledger(cfg)
        assert entries and all(not e["unreplicated"] and "not yet replicated" not in e["reason"]
                               for e in entries)
        # Replicated records exhausted: now unreplicated ones go, gps (low priority) first.
        for i in range(5, 15):
            producer.send("vitals", _value(100 + i)).get(10)
            clock.advance(1)
        assert {(0, o) for o in range(8)} & offsets(cfg, "vitals") == set()
        assert len(offsets(cfg, "gps")) < 10
        later = ledger(cfg)[len(entries):]
        assert any(e["topic"] == "gps" and e["unreplicated"] and "not yet replicated" in e["reason"]
                   for e in later)
        assert _used(admin) <= cfg.quota_bytes
    _check_ledger(cfg, {"gps": 10, "vitals": 25})


def test_a_record_larger_than_the_quota_is_rejected_without_dropping_anything(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "log", 10 * REC, "drop-oldest")
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        for i in range(5):
            producer.send("t", _value(i)).get(10)
        with pytest.raises(LogFullError, match=f"quota of {10 * REC} bytes"):
            producer.send("t", b"x" * 20 * REC).get(10)
        assert [r.value for r in read_all(cfg, "t")] == [_value(i) for i in range(5)]
        assert admin.describe_log()["dropped_records"] == 0


@pytest.mark.parametrize("seed", range(6))
def test_the_ledger_matches_exactly_what_disappeared(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    clock = ManualClock()
    cfg = _cfg(tmp_path / "log", rnd.randint(30, 50) * REC, "drop-oldest", clock)
    topics = {f"t{i}": rnd.randint(1, 3) for i in range(rnd.randint(1, 3))}
    sent: dict[str, set[tuple[int, int]]] = {t: set() for t in topics}
    with clients(cfg) as (admin, producer):
        for t, n in topics.items():
            create(admin, t, partitions=n, priority=rnd.randint(0, 2))
        if rnd.random() < 0.5:
            admin.protect_consumer_group("uplink")
            t = rnd.choice(list(topics))
            admin.alter_consumer_group_offsets("uplink", {TopicPartition(t, 0): rnd.randint(0, 10)})
        for i in range(rnd.randint(20, 40)):
            t = rnd.choice(list(topics))
            futs = [producer.send(t, _value(i * 10 + j)) for j in range(rnd.randint(1, 3))]
            for f in futs:
                m = f.get(10)
                sent[t].add((m.partition, m.offset))
            clock.advance(rnd.randint(0, 3))
        assert _used(admin) <= cfg.quota_bytes
        dropped = admin.describe_log()["dropped_records"]
    want = {(t, p, o) for t, s in sent.items() for p, o in s - offsets(cfg, t)}
    entries = ledger(cfg)
    assert ledger_offsets(entries) == want
    assert sum(e["count"] for e in entries) == len(want) == dropped
    assert dropped > 0, "nothing was dropped: the test did not reach the quota"


def _check_ledger(cfg: LogConfig, sent_per_topic: dict[str, int | None]) -> None:
    """The ledger names exactly the offsets that are gone, with counts that add up."""
    entries = ledger(cfg)
    assert entries, "no ledger entries"
    for e in entries:
        assert set(e) >= {"topic", "ranges", "count", "reason"}
        assert e["count"] == sum(r["to_offset"] - r["from_offset"] + 1 for r in e["ranges"])
        assert "quota" in e["reason"]
    gone = set()
    with KafkaAdminClient(log_config=cfg) as admin:
        for topic in sent_per_topic:
            for part in admin.describe_topics([topic])[0].partitions:
                have = offsets(cfg, topic)
                gone |= {(topic, part.partition, o) for o in range(part.high_watermark)
                         if (part.partition, o) not in have}
        assert admin.describe_log()["dropped_records"] == len(gone)
    assert ledger_offsets(entries) == gone


def test_describe_log_counts_records_and_bytes_per_topic(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "log", 100 * REC, "reject")
    with clients(cfg) as (admin, producer):
        create(admin, "a", partitions=3)
        create(admin, "b")
        for i in range(7):
            producer.send("a", _value(i)).get(10)
        for i in range(2):
            producer.send("b", _value(i)).get(10)
        info = admin.describe_log()
        assert info["topics"]["a"] == {"partitions": 3, "records": 7, "bytes": 7 * REC}
        assert info["topics"]["b"] == {"partitions": 1, "records": 2, "bytes": 2 * REC}
        assert sum(t["bytes"] for t in info["topics"].values()) == info["bytes"]
