"""The uplink through outages: the cluster down for a while, then back; priorities on drain."""

from __future__ import annotations

import asyncio

from broker import DROP_LEDGER_TOPIC, KafkaAdminClient
from edge.uplink import Uplink, UplinkConfig, UplinkState
from edge.uplink._local import LocalSide

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)


async def test_cluster_down_then_back_everything_arrives_once(tmp_path, kafka_cluster):
    data = tmp_path / "log"
    t = unique("outage")
    create_local_topics(data, {t: 2})
    produce_local(data, t, 500, keys=11)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=kafka_cluster.bootstrap_servers,
                       data_dir=data, topics={t: "up." + t}, request_timeout_s=4,
                       backoff_initial_s=0.2, backoff_max_s=1.0)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 500, 60, "first records", uplink)
        await asyncio.to_thread(kafka_cluster.kill_broker, 0)
        produce_local(data, t, 1500, keys=11, start=500)   # while the cluster is away
        await wait_for(lambda: uplink.state == UplinkState.OFFLINE, 30, "offline", uplink)
        await asyncio.sleep(1.5)   # a few failed reconnects, backing off
        status = uplink.status()
        assert status.state == UplinkState.OFFLINE and status.last_error
        assert status.lag_records > 0 and max(p.seconds for p in status.lag) > 0
        await asyncio.to_thread(kafka_cluster.restart_broker, 0)
        await wait_for(lambda: uplink.state == UplinkState.ONLINE and uplink.status().lag_records == 0,
                       90, "drained after the outage", uplink)
        assert uplink.status().states_seen[-3:] == [UplinkState.ONLINE, UplinkState.OFFLINE,
                                                    UplinkState.ONLINE]
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + t], 2000)
    check_exactly_once(got, {t: 2000})


def test_backlog_drains_drop_ledger_first_then_by_topic_priority(tmp_path):
    data = tmp_path / "log"
    low, high = unique("low"), unique("high")
    create_local_topics(data, {low: 2, high: 1}, priority={high: 5})
    produce_local(data, low, 300, keys=3)
    produce_local(data, high, 300, keys=3)
    with KafkaAdminClient(data) as admin:   # clients cannot send to the ledger: the log writes it
        for i in range(5):
            admin.record_drops(low, [(0, i, i)], "test")
    cfg = UplinkConfig(edge_id="e", bootstrap_servers="127.0.0.1:9", data_dir=data,
                       topics={low: "up." + low, high: "up." + high}, batch_records=100)
    side = LocalSide(cfg)
    try:
        side.rewind({})
        order = []
        while batch := side.poll(0.1):
            order.append({r.topic for r in batch})
    finally:
        side.close()
    flat = [t for topics in order for t in sorted(topics)]
    assert order[0] == {DROP_LEDGER_TOPIC}
    assert flat.index(low) > max(i for i, t in enumerate(flat) if t == high)
    assert sum(1 for s in order if low in s) == 3 and sum(1 for s in order if high in s) == 3


async def test_unreachable_cluster_offline_with_error_and_local_records_protected(tmp_path):
    data = tmp_path / "log"
    t, local_only = unique("kept"), unique("alerts")
    create_local_topics(data, {t: 1, local_only: 1})
    produce_local(data, t, 50, keys=2)
    produce_local(data, local_only, 20, keys=2)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers="127.0.0.1:9", data_dir=data,
                       topics={t: "up." + t}, request_timeout_s=2, backoff_max_s=0.5)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.state == UplinkState.OFFLINE, 20, "offline", uplink)
        await wait_for(lambda: uplink.status().lag_records == 50, 10, "lag reported", uplink)
        status = uplink.status()
        assert "127.0.0.1:9" in status.last_error and "connection refused" in status.last_error
        # Retention shortened only now: set before the uplink protected its group, the log's
        # own retention pass after the producer's commit could remove the records first.
        with KafkaAdminClient(data) as admin:
            for topic in (t, local_only):
                admin.alter_topic_config(topic, {"retention.ms": "1"})
            await asyncio.sleep(0.01)   # older than 1 ms on the log clock
            await asyncio.to_thread(admin.run_retention)
            kept, other = admin.describe_topics([t, local_only])
            assert kept.records == 50   # the uplink's group protects them
            # ... and only the topics it replicates: a local-only topic (a stream's alerts)
            # still ages out, though the uplink never commits an offset on it
            assert other.records == 0
    assert uplink.state == UplinkState.STOPPED
