"""The disk quota of the whole log: reject, or drop the oldest, least precious first, on the record.

The quota bounds the log's files on disk (database, WAL, its index), not the
records' logical sizes: every record here has a 1000-byte value, which SQLite
keeps with an overflow page (about 4.5 KiB on disk).  ``Q`` holds a couple of
dozen of them beside the schema and the WAL's and ledger's shares.  The clock
is advanced between sends so that "oldest" is unambiguous.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import broker
from broker import KafkaAdminClient, LogConfig, LogFullError, ManualClock, TopicPartition

from ._helpers import clients, create, ledger, ledger_offsets, offsets, read_all

Q = 256 * 1024


def _value(i: int) -> bytes:
    return (f"{i:06d}".encode() * 200)[:1000]  # distinct per i


def _cfg(path: Path, quota: int, policy: str, clock: ManualClock | None = None) -> LogConfig:
    # no-fsync: the quota is not about durability, and a small quota checkpoints often.
    return LogConfig(data_dir=path, quota_bytes=quota, full_policy=policy, durability="no-fsync",
                     clock=clock or ManualClock(), retention_check_interval_s=1e9)


def _disk(admin: KafkaAdminClient) -> int:
    """What the log's files take on disk now (the measure the quota bounds)."""
    return admin.describe_log()["disk_bytes"]


def _until_dropped(admin: KafkaAdminClient, send, limit: int = 500) -> int:
    """Call ``send(i)`` until the log has dropped something; return how many were sent."""
    for i in range(limit):
        send(i)
        if admin.describe_log()["dropped_records"]:
            return i + 1
    raise AssertionError(f"{limit} sends and nothing dropped: the quota was never reached")


def test_reject_raises_a_clear_error_and_loses_nothing(data_dir: Path) -> None:
    cfg = _cfg(data_dir, Q, "reject")
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        acked = []
        for i in range(200):
            fut = producer.send("t", _value(i))
            try:
                fut.get(10)
            except LogFullError as exc:
                err = exc
                break
            acked.append(i)
        else:
            raise AssertionError("200 records of 1000 bytes fit a 256 KiB quota")
        # 1,000-byte rows fit their B-tree cells (schema 3): ~4 a page, and 200 if nothing counted.
        assert 10 <= len(acked) < 120, f"{len(acked)} records: the quota counts neither disk nor data"
        msg = str(err)
        assert f"quota of {Q} bytes" in msg and "'t'" in msg and "reject" in msg and "in use" in msg
        assert err.retriable
        assert fut.failed() and fut.exception() is err
        # A batch that straddles the quota after room was made: what fits goes in, the rest fails.
        admin.delete_topics(["t"])
        create(admin, "t")
        for i in range(len(acked) - 3):
            producer.send("t", _value(i)).get(10)
        futs = [producer.send("t", _value(100 + i)) for i in range(12)]
        producer.flush()
        assert 0 < sum(f.succeeded() for f in futs) < 12
        assert all(isinstance(f.exception(), LogFullError) for f in futs if f.failed())
        assert [f.succeeded() for f in futs] == sorted((f.succeeded() for f in futs), reverse=True)
        assert producer.metrics()["rejected"] >= 2
        assert admin.describe_log()["dropped_records"] == 0
        assert _disk(admin) <= Q
        assert broker.DROP_LEDGER_TOPIC not in admin.list_topics()
        kept = len(acked) - 3 + sum(f.succeeded() for f in futs)
    got = [r.value for r in read_all(cfg, "t")]
    assert got[:len(acked) - 3] == [_value(i) for i in range(len(acked) - 3)]
    assert len(got) == kept


def test_drop_oldest_takes_low_priority_topics_first(data_dir: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(data_dir, Q, "drop-oldest", clock)
    with clients(cfg) as (admin, producer):
        create(admin, "vitals", priority=10)
        create(admin, "gps", priority=0)
        for i in range(5):  # the oldest records are vital signs
            producer.send("vitals", _value(i)).get(10)
            clock.advance(1)

        def gps(i: int) -> None:
            producer.send("gps", _value(i)).get(10)
            clock.advance(1)
        n = _until_dropped(admin, gps)
        for i in range(5, 10):
            producer.send("vitals", _value(i)).get(10)
            clock.advance(1)
        vitals = read_all(cfg, "vitals")
        assert [r.value for r in vitals] == [_value(i) for i in range(10)], "a vital sign was dropped"
        gone = {(0, o) for o in range(n)} - offsets(cfg, "gps")
        assert gone and gone == {(0, o) for o in range(len(gone))}, "not the oldest gps records"
        assert _disk(admin) <= Q
        # Once the low-priority topic is empty, the oldest vital signs go.
        for i in range(n + 5):
            producer.send("vitals", _value(100 + i)).get(10)
            clock.advance(1)
        assert read_all(cfg, "gps") == []
        left = [r.offset for r in read_all(cfg, "vitals")]
        assert left == list(range(n + 15 - len(left), n + 15)), "not the oldest vital signs"
        assert _disk(admin) <= Q
    _check_ledger(cfg, ["vitals", "gps"])


def test_drop_oldest_is_oldest_first_across_partitions(data_dir: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(data_dir, Q, "drop-oldest", clock)
    with clients(cfg) as (admin, producer):
        create(admin, "t", partitions=2)
        sent = 0
        while not admin.describe_log()["dropped_records"]:  # p0, p1, p0, p1... three at a time
            part = sent // 3 % 2
            producer.send("t", _value(sent), partition=part).get(10)
            sent += 1
            clock.advance(1)
        # What went is the oldest of both partitions: for each partition a prefix, and no
        # record kept is older than one dropped.
        left = offsets(cfg, "t")
        order = [(i // 3 % 2, i // 6 * 3 + i % 3) for i in range(sent)]  # (partition, offset) by age
        gone = [po for po in order if po not in left]
        assert gone and gone == order[:len(gone)], f"dropped {gone}, not the oldest"
        assert {p for p, _o in gone} == {0, 1} or len(gone) <= 3
        assert _disk(admin) <= Q
        entries = ledger(cfg)
        assert ledger_offsets(entries) == {("t", p, o) for p, o in gone}
    _check_ledger(cfg, ["t"])


REPLICATED = 9  # of the vitals below


def test_replicated_records_go_before_unreplicated_ones(data_dir: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(data_dir, Q, "drop-oldest", clock)
    with clients(cfg) as (admin, producer):
        create(admin, "gps", priority=0)
        create(admin, "vitals", priority=10)
        for i in range(10):  # gps older and less precious, but not upstream yet
            producer.send("gps", _value(i)).get(10)
            clock.advance(1)
        # Three 1,000-byte records share a B-tree leaf, which is freed only once all three are
        # gone: replicated records enough to free a few pages.
        for i in range(REPLICATED + 2):
            producer.send("vitals", _value(i)).get(10)
            clock.advance(1)
        admin.protect_consumer_group("uplink")
        admin.alter_consumer_group_offsets("uplink", {TopicPartition("vitals", 0): REPLICATED})

        def vital(i: int) -> None:
            producer.send("vitals", _value(100 + i)).get(10)
            clock.advance(1)
        _until_dropped(admin, vital)
        assert offsets(cfg, "gps") == {(0, o) for o in range(10)}, "unreplicated gps dropped first"
        gone = {(0, o) for o in range(REPLICATED + 2)} - offsets(cfg, "vitals")
        assert gone and gone <= {(0, o) for o in range(REPLICATED)}, f"dropped unreplicated vitals {sorted(gone)}"
        entries = ledger(cfg)
        assert entries and all(not e["unreplicated"] and "not yet replicated" not in e["reason"]
                               for e in entries)
        # Replicated records exhausted: now unreplicated ones go, gps (low priority) first.
        for i in range(10):
            vital(1000 + i)
        assert {(0, o) for o in range(REPLICATED)} & offsets(cfg, "vitals") == set()
        assert len(offsets(cfg, "gps")) < 10
        later = ledger(cfg)[len(entries):]
        assert any(e["topic"] == "gps" and e["unreplicated"] and "not yet replicated" in e["reason"]
                   for e in later)
        assert _disk(admin) <= Q
    _check_ledger(cfg, ["gps", "vitals"])


def test_a_record_larger_than_the_quota_is_rejected_without_dropping_anything(data_dir: Path) -> None:
    cfg = _cfg(data_dir, Q, "drop-oldest")
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        for i in range(5):
            producer.send("t", _value(i)).get(10)
        with pytest.raises(LogFullError, match=f"larger than the disk quota of {Q} bytes"):
            producer.send("t", b"x" * Q).get(10)
        assert [r.value for r in read_all(cfg, "t")] == [_value(i) for i in range(5)]
        assert admin.describe_log()["dropped_records"] == 0


@pytest.mark.parametrize("seed", range(4))
def test_the_ledger_matches_exactly_what_disappeared(data_dir: Path, seed: int) -> None:
    rnd = random.Random(seed)
    clock = ManualClock()
    cfg = _cfg(data_dir, rnd.randint(Q, 2 * Q), "drop-oldest", clock)
    topics = {f"t{i}": rnd.randint(1, 3) for i in range(rnd.randint(1, 3))}
    sent: dict[str, set[tuple[int, int]]] = {t: set() for t in topics}
    with clients(cfg) as (admin, producer):
        for t, n in topics.items():
            create(admin, t, partitions=n, priority=rnd.randint(0, 2))
        if rnd.random() < 0.5:
            admin.protect_consumer_group("uplink")
            t = rnd.choice(list(topics))
            admin.alter_consumer_group_offsets("uplink", {TopicPartition(t, 0): rnd.randint(0, 10)})
        for i in range(rnd.randint(100, 160)):  # 1,000-byte rows fit a B-tree cell: ~3 a page
            t = rnd.choice(list(topics))
            size = rnd.choice((100, 1000, 3000))
            futs = [producer.send(t, _value(i * 10 + j)[:size] * (size // 1000 or 1))
                    for j in range(rnd.randint(1, 3))]
            for f in futs:
                m = f.get(10)
                sent[t].add((m.partition, m.offset))
            clock.advance(rnd.randint(0, 3))
        assert _disk(admin) <= cfg.quota_bytes
        dropped = admin.describe_log()["dropped_records"]
    want = {(t, p, o) for t, s in sent.items() for p, o in s - offsets(cfg, t)}
    entries = ledger(cfg)
    assert ledger_offsets(entries) == want
    assert sum(e["count"] for e in entries) == len(want) == dropped
    assert dropped > 0, "nothing was dropped: the test did not reach the quota"


def _check_ledger(cfg: LogConfig, topics: list[str]) -> None:
    """The ledger names exactly the offsets that are gone, with counts that add up."""
    entries = ledger(cfg)
    assert entries, "no ledger entries"
    for e in entries:
        assert set(e) >= {"topic", "ranges", "count", "reason"}
        assert e["count"] == sum(r["to_offset"] - r["from_offset"] + 1 for r in e["ranges"])
        assert "quota" in e["reason"]
    gone = set()
    with KafkaAdminClient(log_config=cfg) as admin:
        for topic in topics:
            for part in admin.describe_topics([topic])[0].partitions:
                have = offsets(cfg, topic)
                gone |= {(topic, part.partition, o) for o in range(part.high_watermark)
                         if (part.partition, o) not in have}
        assert admin.describe_log()["dropped_records"] == len(gone)
    assert ledger_offsets(entries) == gone


def test_describe_log_counts_records_and_bytes_per_topic(data_dir: Path) -> None:
    cfg = _cfg(data_dir, 4 * Q, "reject")
    with clients(cfg) as (admin, producer):
        create(admin, "a", partitions=3)
        create(admin, "b")
        for i in range(7):
            producer.send("a", _value(i)).get(10)
        for i in range(2):
            producer.send("b", _value(i)).get(10)
        info = admin.describe_log()
        assert info["topics"]["a"] == {"partitions": 3, "records": 7, "bytes": 7 * 1040}
        assert info["topics"]["b"] == {"partitions": 1, "records": 2, "bytes": 2 * 1040}
        assert sum(t["bytes"] for t in info["topics"].values()) == info["bytes"]
        # On disk, each takes an overflow page beside its leaf cell: far more than 1040 bytes.
        assert info["disk_bytes"] >= info["file_bytes"] > 9 * 4096
