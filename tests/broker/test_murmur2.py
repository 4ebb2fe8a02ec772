"""Kafka's murmur2 and default partitioner, against values Kafka itself gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker import default_partition, murmur2

# org.apache.kafka.common.utils.UtilsTest#testMurmur2
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_kafkas_own_test_vectors() -> None:
    assert {k: murmur2(k) for k in KAFKA_MURMUR2} == KAFKA_MURMUR2


def test_murmur2_matches_kafka_python_partitioner() -> None:
    # kafka-python's DefaultPartitioner is a port of the Java one; a second,
    # independent implementation to compare with on many keys.
    from kafka.partitioner.default import DefaultPartitioner

    parts = list(range(12))
    for i in range(2000):
        key = f"device-{i}".encode()
        assert default_partition(key, 12) == DefaultPartitioner()(key, parts, parts)


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=1000))
def test_partition_is_always_in_range(key: bytes, n: int) -> None:
    assert 0 <= default_partition(key, n) < n


@given(st.binary(max_size=64))
def test_murmur2_is_a_signed_32_bit_int(key: bytes) -> None:
    assert -(2**31) <= murmur2(key) < 2**31
