"""Which partitions of a control topic a box reads when the topic's count changed."""

from __future__ import annotations

from broker import default_partition
from edge.control._partitions import assigned_partitions

TARGETS = ["group:ward3", "edge:bed-7"]


def _hashed(count: int) -> set[int]:
    return {default_partition(t.encode(), count) for t in TARGETS}


def test_first_connect_and_an_unchanged_count_read_where_the_keys_hash() -> None:
    assert assigned_partitions("d", 6, TARGETS, []) == (_hashed(6), [6], None)
    assert assigned_partitions("d", 6, TARGETS, [6]) == (_hashed(6), [6], None)


def test_added_partitions_are_reported_and_the_old_ones_still_read() -> None:
    mine, counts, warning = assigned_partitions("d", 12, TARGETS, [6])
    assert mine == _hashed(6) | _hashed(12) and counts == [6, 12]
    assert warning is not None
    assert "topic 'd' has 12 partitions, 6 when this box last connected" in warning
    # remembered: the next connect reads the same, quietly
    assert assigned_partitions("d", 12, TARGETS, counts) == (mine, [6, 12], None)


def test_a_topic_made_again_with_fewer_partitions_reads_within_its_count() -> None:
    mine, counts, warning = assigned_partitions("d", 2, TARGETS, [6])
    assert mine == _hashed(2) and counts == [2, 6] and warning is not None
