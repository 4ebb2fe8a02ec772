"""The drop ledger under a log kept full for long: bounded, so drop-oldest accepts for ever.

Found twice: by the chaos soak (with an uplink that keeps up, every drop added a ledger
entry that was never dropped) and in the field (no uplink: after 4,178 events a 200 kB
quota held 600 ledger entries and no data, and every send failed from then on).  Entries
a protected group (the uplink) has replicated go first; the others are summarised once
the ledger outgrows its share of the quota: fewer entries naming the same offsets with
the same counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import broker
from broker import ConfigError, KafkaAdminClient, LogConfig, ManualClock, TopicPartition

from ._helpers import clients, create, ledger, ledger_offsets, offsets

Q = 256 * 1024
LEDGER_SHARE = max(Q // 32, 4096)  # broker/_disk.py: shares()


def _value(i: int) -> bytes:
    return (f"{i:06d}".encode() * 200)[:1000]


def _cfg(path: Path, clock: ManualClock, quota: int = Q) -> LogConfig:
    return LogConfig(data_dir=path, quota_bytes=quota, full_policy="drop-oldest", durability="no-fsync",
                     clock=clock, retention_check_interval_s=1e9)


def _end_offsets(admin: KafkaAdminClient) -> dict[TopicPartition, int]:
    """Every partition's next offset, as an uplink that has replicated everything commits."""
    return {TopicPartition(d.name, p.partition): p.high_watermark
            for d in admin.describe_topics() for p in d.partitions}


def _ledger_bytes(admin: KafkaAdminClient) -> int:
    return admin.describe_log()["topics"].get(broker.DROP_LEDGER_TOPIC, {}).get("bytes", 0)


def test_a_log_kept_full_for_long_never_fills_up_with_ledger_entries(data_dir: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(data_dir, clock)
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        admin.protect_consumer_group("uplink")
        for i in range(300):
            producer.send("t", _value(i)).get(10)  # never LogFullError
            admin.alter_consumer_group_offsets("uplink", _end_offsets(admin))
            clock.advance(1)
        assert admin.describe_log()["disk_bytes"] <= cfg.quota_bytes
        kept = len(offsets(cfg, "t"))
        assert kept >= 10, "the quota holds data, not ledger entries"
        # Every data drop was counted and ledgered (the ledger entries themselves were
        # replicated, then made room); no entry describes a drop of the ledger.
        assert admin.describe_log()["dropped_records"] == 300 - kept
        assert all(e["topic"] != broker.DROP_LEDGER_TOPIC for e in ledger(cfg))


def test_without_an_uplink_old_entries_are_summarised_within_the_ledgers_share(data_dir: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(data_dir, clock)
    with clients(cfg) as (admin, producer):
        create(admin, "a", partitions=2)
        create(admin, "b")
        for i in range(1500):
            producer.send("a" if i % 3 else "b", _value(i)).get(10)  # never LogFullError
            clock.advance(1)
            assert _ledger_bytes(admin) <= LEDGER_SHARE
        info = admin.describe_log()
        assert info["disk_bytes"] <= cfg.quota_bytes
        assert info["ledger_summarised_entries"] > 0, "the ledger never outgrew its share"
        kept = len(offsets(cfg, "a")) + len(offsets(cfg, "b"))
        assert kept >= 10 and info["dropped_records"] == 1500 - kept
    entries = ledger(cfg)
    summaries = [e for e in entries if "summary_of" in e]
    assert summaries and all(e["summary_of"] > 1 and "quota" in e["reason"] for e in summaries)
    # Summarised or not, the ledger names exactly the offsets that are gone, once each.
    with KafkaAdminClient(log_config=cfg) as admin:
        ends = _end_offsets(admin)
    have = {t: offsets(cfg, t) for t in ("a", "b")}
    gone = {(tp.topic, tp.partition, o) for tp, end in ends.items() if tp.topic in have
            for o in range(end) if (tp.partition, o) not in have[tp.topic]}
    assert ledger_offsets(entries) == gone
    assert sum(e["count"] for e in entries) == len(gone)
    assert all(e["count"] == sum(r["to_offset"] - r["from_offset"] + 1 for r in e["ranges"])
               for e in entries)


def test_hundreds_of_thousands_of_sends_under_drop_oldest_all_succeed(data_dir: Path) -> None:
    # 1 MiB, not 256 KiB: a transaction may take 16 pages rather than 4, so 200,000 small
    # records take a quarter of the transactions (the test's time), still ~200x the quota.
    quota = 1 << 20
    clock = ManualClock()
    cfg = _cfg(data_dir, clock, quota)
    sent = 0
    with clients(cfg) as (admin, producer):
        create(admin, "t", partitions=2)
        # The uplink's group, offline all along: every record and ledger entry is unreplicated.
        admin.protect_consumer_group("uplink")
        for _round in range(100):
            futs = [producer.send("t", b"%07d" % (sent + j) * 8, key=b"dev-%d" % (j % 7))
                    for j in range(2000)]
            producer.flush()
            assert all(f.succeeded() for f in futs), next(f.exception() for f in futs if f.failed())
            sent += len(futs)
            clock.advance(1)
            assert _ledger_bytes(admin) <= quota // 32
        info = admin.describe_log()
        assert info["disk_bytes"] <= cfg.quota_bytes
        assert info["dropped_records"] + info["records"] - len(ledger(cfg)) == sent
        assert info["ledger_summarised_entries"] > 0
    entries = ledger(cfg)
    assert entries and all(e["unreplicated"] and e["unread_by"] == ["uplink"] for e in entries)
    assert sum(e["count"] for e in entries) == info["dropped_records"]


def test_a_log_of_many_topics_keeps_its_ledger_within_its_share(data_dir: Path) -> None:
    # One summary per topic was itself past the share beyond ~26 topics: the ledger grew
    # to 4x its share and drop-oldest refused 2,784 of 3,000 sends.  Folded into one
    # coarse summary (counts and topics, no offsets) instead.
    clock = ManualClock()
    cfg = _cfg(data_dir, clock, quota=200_000)
    share = max(200_000 // 32, 4096)
    with clients(cfg) as (admin, producer):
        for t in range(100):
            create(admin, f"t{t}")
        sent = 0
        for _burst in range(60):
            futs = [producer.send(f"t{(sent + j) % 100}", b"%05d" % (sent + j) * 40) for j in range(50)]
            producer.flush()
            assert all(f.succeeded() for f in futs), next(f.exception() for f in futs if f.failed())
            sent += len(futs)
            clock.advance(1)
            assert _ledger_bytes(admin) <= share
        info = admin.describe_log()
        kept = sum(len(offsets(cfg, f"t{t}")) for t in range(100))
    entries = ledger(cfg)
    coarse = [e for e in entries if e["topic"] == "*"]
    assert coarse and all(e["approximate"] and e["ranges"] == [] for e in coarse)
    # Counts stay exact: every record sent is kept or counted in the ledger.
    assert sum(e["count"] for e in entries) == info["dropped_records"] == sent - kept
    assert sum(n for e in coarse for n in e["topics"].values()) <= sum(e["count"] for e in coarse)


def test_drops_a_client_records_are_kept_apart_through_summaries(data_dir: Path) -> None:
    clock = ManualClock()
    cfg = _cfg(data_dir, clock)
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        # The uplink names a record the cluster refused (it keeps it in a dead-letter topic).
        admin.record_drops("t", [(0, 3, 3)], "refused by the cluster: InvalidTimestampError",
                           dead_letter_topic="dead-letters")
        for bad in ([(0, 5, 4)], [], [("0", 1, 2)]):
            with pytest.raises(ConfigError, match="record_drops: ranges"):
                admin.record_drops("t", bad, "why")
        with pytest.raises(ConfigError, match="record_drops: count"):
            admin.record_drops("t", [(0, 1, 1)], "why", count=7)
        for i in range(2000):  # the refusal's entry is among the oldest: it gets summarised
            producer.send("t", _value(i)).get(10)
            clock.advance(1)
        assert admin.describe_log()["ledger_summarised_entries"] > 0
    entries = ledger(cfg)
    refusals = [e for e in entries if e.get("dead_letter_topic")]
    assert [(e["topic"], e["ranges"], e["count"], e["dead_letter_topic"]) for e in refusals] == [
        ("t", [{"partition": 0, "from_offset": 3, "to_offset": 3}], 1, "dead-letters")]
    assert "refused by the cluster" in refusals[0]["reason"] and refusals[0]["summary_of"] == 1
    quota = [e for e in entries if not e.get("dead_letter_topic")]
    assert all("refused" not in e["reason"] for e in quota)


def test_a_summary_joins_adjacent_ranges_exactly_and_says_when_it_joined_across_gaps() -> None:
    from broker._ledger import _MAX_RANGES, _joined

    # Drops take each partition from its start: their ranges meet, and join exactly.
    assert _joined([(10, 19), (0, 9), (20, 20)]) == ([(0, 20)], False)
    # Age retention between drops leaves gaps: kept while few...
    gaps = [(i * 10, i * 10 + 4) for i in range(_MAX_RANGES)]
    assert _joined(gaps) == (gaps, False)
    # ...and past the cap the closest are joined across their gap, said so.
    spans = [*gaps, (1000, 1004)]
    joined, approximate = _joined(spans)
    assert approximate and len(joined) == _MAX_RANGES
    assert joined[0][0] == 0 and joined[-1] == (1000, 1004)
    covered = {o for a, b in joined for o in range(a, b + 1)}
    assert covered >= {o for a, b in spans for o in range(a, b + 1)}
