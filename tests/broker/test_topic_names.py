"""One topic-name rule (Kafka's), shared by the log, the config, streams and the uplink."""

from __future__ import annotations

import pytest

from broker import (
    TOPIC_NAME_RULE,
    InvalidTopicError,
    KafkaProducer,
    is_internal_topic,
    is_topic_name,
)


@pytest.mark.parametrize("name", ["readings", "a", "alerts.blood_pressure", "x-1_y.z", "a" * 249,
                                  "__drop_ledger"])
def test_kafka_accepts(name: str) -> None:
    assert is_topic_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "a b", "ü", "readings\n", "a/b", 5, None])
def test_kafka_refuses(name: object) -> None:
    # "readings\n" passed the six copies this rule replaced ('$' matches before a final newline).
    assert not is_topic_name(name)


def test_internal_names_are_the_double_underscore_ones() -> None:
    assert is_internal_topic("__drop_ledger") and not is_internal_topic("_private")


def test_the_log_and_the_config_refuse_the_same_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edge import ConfigError, parse_config

    with KafkaProducer(data_dir=tmp_path) as producer, pytest.raises(InvalidTopicError) as info:
        producer.send("readings\n", b"v")
    assert TOPIC_NAME_RULE in str(info.value)
    with pytest.raises(ConfigError) as bad:
        parse_config('edge_id = "e"\ndata_dir = "/d"\n[log]\ndead_letter_topic = "dl\\n"\n')
    assert [p.key for p in bad.value.errors] == ["log.dead_letter_topic"]
