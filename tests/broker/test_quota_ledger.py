"""The drop ledger under a long-running full log: once replicated, its own entries make room.

Found by the chaos soak (tests/chaos): with drop-oldest and an uplink that keeps up, every
drop adds a ledger entry that was never dropped, until the ledger owned the whole quota and
every new record failed with LogFullError. Entries a protected group (the uplink) has
replicated may go, after replicated data and before any unreplicated record; entries no
protected group has read stay.
"""

from __future__ import annotations

from pathlib import Path

import broker
from broker import KafkaAdminClient, LogConfig, ManualClock, TopicPartition

from ._helpers import clients, create, ledger, offsets

REC = 1040  # a 1000-byte value with the per-record overhead of 40


def _end_offsets(admin: KafkaAdminClient) -> dict[TopicPartition, int]:
    """Every partition's next offset, as an uplink that has replicated everything commits."""
    return {TopicPartition(d.name, p.partition): p.high_watermark
            for d in admin.describe_topics() for p in d.partitions}


def test_a_log_kept_full_for_long_never_fills_up_with_ledger_entries(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = LogConfig(data_dir=tmp_path / "log", quota_bytes=20 * REC, full_policy="drop-oldest",
                    clock=clock, retention_check_interval_s=1e9)
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        admin.protect_consumer_group("uplink")
        for i in range(600):
            producer.send("t", (f"{i:06d}".encode() * 200)[:1000]).get(10)  # never LogFullError
            admin.alter_consumer_group_offsets("uplink", _end_offsets(admin))
            clock.advance(1)
        assert admin.describe_log()["bytes"] <= cfg.quota_bytes
        assert len(offsets(cfg, "t")) >= 10, "the quota holds data, not ledger entries"
        kept = len(offsets(cfg, "t"))
        # Every data drop was counted and ledgered (the ledger entries themselves were
        # replicated, then made room); no entry describes a drop of the ledger.
        assert admin.describe_log()["dropped_records"] == 600 - kept
        assert all(e["topic"] != broker.DROP_LEDGER_TOPIC for e in ledger(cfg))


def test_ledger_entries_nobody_replicated_are_kept(tmp_path: Path) -> None:
    clock = ManualClock()
    cfg = LogConfig(data_dir=tmp_path / "log", quota_bytes=20 * REC, full_policy="drop-oldest",
                    clock=clock, retention_check_interval_s=1e9)
    with clients(cfg) as (admin, producer):
        create(admin, "t")
        for i in range(60):
            producer.send("t", (f"{i:06d}".encode() * 200)[:1000]).get(10)
            clock.advance(1)
        entries = ledger(cfg)
        assert sum(e["count"] for e in entries) == 60 - len(offsets(cfg, "t"))
