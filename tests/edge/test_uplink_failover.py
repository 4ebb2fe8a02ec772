"""One of three brokers killed while the uplink replicates (RF 3, min ISR 2): nothing lost."""

from __future__ import annotations

import asyncio

from edge.uplink import TopicMapping, Uplink, UplinkConfig, UplinkState

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)


async def test_broker_killed_mid_stream_nothing_lost(tmp_path, kafka_cluster3):
    data = tmp_path / "log"
    t = unique("failover")
    create_local_topics(data, {t: 3})
    produce_local(data, t, 2000, keys=30)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=kafka_cluster3.bootstrap_servers,
                       data_dir=data, topics={t: TopicMapping(t, "up." + t, 3, 3)},
                       default_replication_factor=3, batch_records=200, request_timeout_s=15,
                       backoff_max_s=1.0)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 400, 90, "first batches", uplink)
        await asyncio.to_thread(kafka_cluster3.kill_broker, 1)
        produce_local(data, t, 2000, keys=30, start=2000)
        await wait_for(lambda: uplink.status().lag and uplink.status().lag_records == 0, 120,
                       "drained with a broker down", uplink)
        # A metadata request sent to the dead broker can flip the state to offline for a
        # retry (0.2 s); it must come back online with two of three brokers up.
        await wait_for(lambda: uplink.state == UplinkState.ONLINE, 60, "online with a broker down",
                       uplink)
    got = await read_upstream(kafka_cluster3.bootstrap_servers, ["up." + t], 4000)
    check_exactly_once(got, {t: 4000})
