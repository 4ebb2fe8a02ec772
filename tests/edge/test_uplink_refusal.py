"""Records and topics the real cluster refuses for good: the rest replicates (issue #11, 2)."""

from __future__ import annotations

import json
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from broker import DROP_LEDGER_TOPIC, KafkaConsumer, KafkaProducer
from edge.uplink import TopicMapping, Uplink, UplinkConfig, UplinkState
from edge.uplink._backoff import Backoff

from ._uplink_helpers import (
    TS0,
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)


async def _create_upstream(servers: str, *topics: NewTopic) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics(list(topics))
    finally:
        await admin.close()


def _produce_with(data_dir, topic: str, n: int, bad: int, *, future_ts: bool = False,
                  keyless: bool = False) -> None:
    """``n`` records '<topic>:<i>' keyed k<i % 5>; record ``bad`` stamped an hour ahead of
    now (``future_ts``) or without a key (``keyless``)."""
    with KafkaProducer(data_dir) as producer:
        futures = []
        for i in range(n):
            key, ts = f"k{i % 5}".encode(), TS0 + i
            if i == bad and future_ts:
                ts = int(time.time() * 1000) + 3_600_000
            if i == bad and keyless:
                key = None
            futures.append(producer.send(topic, f"{topic}:{i}".encode(), key=key, timestamp_ms=ts,
                                         partition=0))
        for f in futures:
            f.get(timeout=30)


def _local(data_dir, topic: str) -> list:
    with KafkaConsumer(data_dir=data_dir, auto_offset_reset="earliest") as consumer:
        consumer.assign([(topic, 0)])
        return [r for recs in consumer.poll(timeout_ms=1000, max_records=1000).values() for r in recs]


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
async def test_refused_records_are_dead_lettered_and_the_rest_replicates(tmp_path, kafka_cluster,
                                                                        delivery):
    servers, data = kafka_cluster.bootstrap_servers, tmp_path / "log"
    late, compact = unique("late"), unique("compact")
    ledger_up = unique("ledger")
    # The cluster's own rules: no timestamp more than a minute ahead; a compacted topic.
    await _create_upstream(
        servers, NewTopic("up." + late, 1, 1, topic_configs={"message.timestamp.after.max.ms": "60000"}),
        NewTopic("up." + compact, 1, 1, topic_configs={"cleanup.policy": "compact"}))
    create_local_topics(data, {late: 1, compact: 1})
    _produce_with(data, late, 120, bad=40, future_ts=True)
    _produce_with(data, compact, 120, bad=25, keyless=True)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=servers, data_dir=data,
                       topics={late: "up." + late, compact: "up." + compact}, delivery=delivery,
                       drop_ledger_upstream=ledger_up, request_timeout_s=10)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 240, 60, "replication", uplink)
        await wait_for(lambda: any(p.topic == DROP_LEDGER_TOPIC and p.replicated_offset >= 2
                                   for p in uplink.status().lag), 15, "the ledger replicated")
        status = uplink.status()
        assert status.lag_records == 0
        # Isolating a record is progress, not a fault: the uplink never went offline.
        seen = status.states_seen
        assert UplinkState.OFFLINE not in seen[seen.index(UplinkState.ONLINE):], status
        assert status.state == UplinkState.ONLINE and status.dead_lettered == 2
    got = await read_upstream(servers, ["up." + late, "up." + compact], 238)
    values = [r.value.decode() for r in got]
    expected = ({f"{late}:{i}" for i in range(120) if i != 40}
                | {f"{compact}:{i}" for i in range(120) if i != 25})
    assert set(values) == expected   # at least once: a duplicate is allowed, a loss is not
    if delivery == "exactly-once":
        assert len(values) == len(expected)
        per_key: dict = {}
        for r in got:
            per_key.setdefault((r.topic, r.key), []).append(int(r.value.decode().rsplit(":", 1)[1]))
        assert all(v == sorted(v) for v in per_key.values()), "order per key broken"

    dead = {dict(r.headers)["uplink.source"].decode(): dict(r.headers)["uplink.reason"].decode()
            for r in _local(data, cfg.dlq_topic)}
    assert set(dead) == {f"{late}/0/40", f"{compact}/0/25"}
    assert "InvalidTimestampError" in dead[f"{late}/0/40"] and "message.timestamp" in dead[f"{late}/0/40"]
    assert "InvalidRecordError" in dead[f"{compact}/0/25"] and "compact" in dead[f"{compact}/0/25"]
    ledger = [json.loads(r.value) for r in _local(data, DROP_LEDGER_TOPIC)]
    named = {(e["topic"], e["ranges"][0]["from_offset"]) for e in ledger}
    assert named == {(late, 40), (compact, 25)}
    assert all(e["unreplicated"] and cfg.dlq_topic in e["reason"] for e in ledger)
    # The ledger goes upstream too: the cluster learns what it refused, and where it is kept.
    upstream_ledger = await read_upstream(servers, [ledger_up], 2, settle_s=0.5)
    assert {json.loads(r.value)["topic"] for r in upstream_ledger} == {late, compact}


async def test_a_topic_the_cluster_will_not_create_stops_only_that_topic(tmp_path, kafka_cluster):
    servers, data = kafka_cluster.bootstrap_servers, tmp_path / "log"
    bad, good = unique("rf3"), unique("fine")
    create_local_topics(data, {bad: 1, good: 2})
    produce_local(data, bad, 50, keys=3)
    produce_local(data, good, 300, keys=7)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=servers, data_dir=data,
                       topics={bad: TopicMapping(bad, "up." + bad, replication_factor=3),
                               good: "up." + good}, request_timeout_s=10)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 300, 60, "the other topic", uplink)
        await wait_for(lambda: {p.topic for p in uplink.status().lag if p.records} == {bad}, 15,
                       "lag on the refused topic only")
        status = uplink.status()
        assert status.state == UplinkState.ONLINE
        assert set(status.refused_topics) == {"up." + bad}
        assert "InvalidReplicationFactor" in status.refused_topics["up." + bad]
        assert "up." + bad in status.last_error
    check_exactly_once(await read_upstream(servers, ["up." + good], 300), {good: 300})


def test_backoff_grows_across_connects_that_fail_the_same_way():
    """A connect that works, followed by the same failure each time, is no progress: the
    delay keeps growing (it was reset on every connect: ~4 reconnects a second for ever)."""
    b = Backoff(0.2, 10)
    assert [b.failed() for _ in range(3)] == [0.2, 0.4, 0.8]          # never connected
    assert [b.failed(online_s=0.5) for _ in range(4)] == [1.6, 3.2, 6.4, 10]  # up, then failed
    assert b.failed(progress=True) == 0.2                              # records went up
    assert b.failed(online_s=2) == 0.4
    assert b.failed(online_s=10) == 0.2                                # a long healthy spell
    with pytest.raises(ValueError):
        Backoff(0, 1)
