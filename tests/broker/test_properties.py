"""Property tests: offsets, partitioning and round trips for random sends; topic config validation."""

from __future__ import annotations

import re
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import (
    ConfigError,
    Durability,
    KafkaProducer,
    LogConfig,
    ManualClock,
    NewTopic,
    TopicConfig,
    default_partition,
)
from broker import KafkaAdminClient as Admin

from ._helpers import read_all

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

headers_st = st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=12))), max_size=3)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[int, list[dict]]:
    n = draw(st.integers(1, 8))
    sends = draw(st.lists(st.fixed_dictionaries({
        "key": st.one_of(st.none(), st.binary(max_size=16), st.sampled_from([b"car-17", b"ward3-bed2", b""])),
        "value": st.binary(max_size=64),
        "headers": headers_st,
        "partition": st.one_of(st.none(), st.none(), st.integers(0, n - 1)),
        "timestamp_ms": st.one_of(st.none(), st.integers(0, 2**42)),
    }), min_size=1, max_size=40))
    return n, sends


@PROPS
@given(workloads())
def test_random_sends_get_contiguous_offsets_and_read_back_identical(workload: tuple[int, list[dict]]) -> None:
    n, sends = workload
    clock = ManualClock()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = LogConfig(data_dir=Path(tmp) / "log", durability=Durability.NO_FSYNC, clock=clock)
        with Admin(log_config=cfg) as admin, KafkaProducer(log_config=cfg) as producer:
            admin.create_topics([NewTopic("t", n)])
            futures = [producer.send("t", **s) for s in sends]
            producer.flush()
            metas = [f.get(0) for f in futures]
            per_partition: dict[int, list[int]] = defaultdict(list)
            for s, m in zip(sends, metas, strict=True):
                per_partition[m.partition].append(m.offset)
                if s["partition"] is not None:
                    assert m.partition == s["partition"]
                elif s["key"] is not None:
                    assert m.partition == default_partition(s["key"], n)
                assert m.timestamp == (clock.wall_ms() if s["timestamp_ms"] is None else s["timestamp_ms"])
            # In send order, each partition's offsets are 0, 1, 2, ...
            for offsets in per_partition.values():
                assert offsets == list(range(len(offsets)))
            # Keyless records without a partition rotate: no partition gets two more than another.
            rotated = Counter(m.partition for s, m in zip(sends, metas, strict=True)
                              if s["key"] is None and s["partition"] is None)
            if rotated:
                counts = [rotated.get(p, 0) for p in range(n)]
                assert max(counts) - min(counts) <= 1
            got = {(r.partition, r.offset): r for r in read_all(cfg, "t")}
            assert len(got) == len(sends)
            for s, m in zip(sends, metas, strict=True):
                r = got[(m.partition, m.offset)]
                assert (r.key, r.value, r.timestamp) == (s["key"], s["value"], m.timestamp)
                assert r.headers == [tuple(h) for h in s["headers"]]
                assert r.serialized_value_size == len(s["value"])


@PROPS
@given(st.binary(max_size=64), st.integers(1, 64))
def test_keyed_records_land_where_kafkas_partitioner_says(key: bytes, n: int) -> None:
    p = default_partition(key, n)
    assert 0 <= p < n
    assert p == default_partition(bytes(key), n)  # a pure function of the bytes


_ASCII_INT = re.compile(r"^\s*[+-]?[0-9]+\s*$")
KEYS = ["retention.ms", "retention.bytes", "priority"]


@PROPS
@given(st.sampled_from(KEYS), st.text(max_size=12))
def test_topic_config_rejects_non_integers_naming_the_value(key: str, raw: str) -> None:
    if _ASCII_INT.match(raw) and -(2**63) <= int(raw) < 2**63 and (key == "priority" or int(raw) >= -1):
        assert getattr(TopicConfig().altered({key: raw}), key.replace(".", "_")) == int(raw)
        return
    with pytest.raises(ConfigError) as info:
        TopicConfig().altered({key: raw})
    assert repr(raw) in str(info.value) and key in str(info.value)


@PROPS
@given(st.sampled_from(KEYS), st.integers(-(2**70), 2**70))
def test_topic_config_integers_in_range_are_kept_others_named(key: str, value: int) -> None:
    lowest = -(2**63) if key == "priority" else -1
    if lowest <= value < 2**63:
        cfg = TopicConfig().altered({key: str(value)})
        assert getattr(cfg, key.replace(".", "_")) == value
        assert cfg.to_kafka()[key] == str(value)
    else:
        with pytest.raises(ConfigError, match=re.escape(repr(str(value)))):
            TopicConfig().altered({key: str(value)})


@PROPS
@given(st.text(min_size=1, max_size=20).filter(lambda k: k not in KEYS))
def test_topic_config_rejects_unknown_keys_naming_them(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        TopicConfig().altered({key: "1"})
    assert repr(key) in str(info.value)
    assert all(k in str(info.value) for k in KEYS)
