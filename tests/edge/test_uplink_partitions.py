"""Upstream topics get the local partition count, so a key has the same partition on both
sides; an existing upstream topic with another count is reported, in the uplink's status and
in `edge run`'s /health and /metrics (real 1-broker cluster)."""

from __future__ import annotations

import asyncio
import urllib.request

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from edge.uplink import PartitionMismatch, Uplink, UplinkConfig, UplinkState

from ._helpers import health, start_edge, stop_edge, write_config
from ._helpers import wait_for as wait_sync
from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)


async def _upstream_partitions(servers: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        (desc,) = await admin.describe_topics([topic])
        return len(desc["partitions"])
    finally:
        await admin.close()


async def test_upstream_topic_gets_the_local_count_and_each_key_its_local_partition(
        tmp_path, kafka_cluster):
    data = tmp_path / "log"
    t = unique("parts")
    create_local_topics(data, {"other": 1})
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=kafka_cluster.bootstrap_servers,
                       data_dir=data, topics={t: "up." + t})
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.state == UplinkState.ONLINE, 60, "online", uplink)
        # The local topic appears after the connect: its upstream topic is made before its
        # first batch, with its count (aiokafka's metadata request would auto-create 1).
        create_local_topics(data, {t: 3})
        produce_local(data, t, 300, keys=40)
        await wait_for(lambda: uplink.status().records_total >= 300, 60, "replication", uplink)
        assert uplink.status().partition_mismatches == []
    assert await _upstream_partitions(kafka_cluster.bootstrap_servers, "up." + t) == 3
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + t], 300)
    check_exactly_once(got, {t: 300})
    assert {r.partition for r in got} == {0, 1, 2}
    assert all(r.partition == int(dict(r.headers)["edge.partition"]) for r in got)


async def test_existing_upstream_topic_with_another_count_is_reported(tmp_path, kafka_cluster):
    data = tmp_path / "log"
    t = unique("mismatch")
    create_local_topics(data, {t: 3})
    produce_local(data, t, 200, keys=20)
    servers = kafka_cluster.bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("up." + t, 2, 1)])
    finally:
        await admin.close()
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=servers, data_dir=data,
                       topics={t: "up." + t})
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 200, 60, "replication", uplink)
        assert uplink.status().partition_mismatches == [PartitionMismatch(t, "up." + t, 3, 2)]
        assert "2 partition(s)" in str(uplink.status().partition_mismatches[0])
    assert await _upstream_partitions(servers, "up." + t) == 2   # left as the operator made it
    got = await read_upstream(servers, ["up." + t], 200)
    check_exactly_once(got, {t: 200})   # per-key order holds on 2 partitions too


def test_edge_run_reports_the_mismatch_in_health_and_metrics(tmp_path, kafka_cluster):
    servers = kafka_cluster.bootstrap_servers
    t = unique("mm")

    async def make_upstream() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("up." + t, 1, 1)])
        finally:
            await admin.close()

    asyncio.run(make_upstream())
    create_local_topics(tmp_path / "data", {t: 3})
    config, port = write_config(tmp_path, "", extra=(
        f'[upstream]\nbootstrap_servers = "{servers}"\n[upstream.topics]\n"{t}" = "up.{t}"\n'))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        h = wait_sync(lambda: (x := health(port)) and x["uplink"]
                      and x["uplink"].get("partition_mismatches") and x, 30, "the mismatch")
        assert h["uplink"]["partition_mismatches"] == [
            str(PartitionMismatch(t, "up." + t, 3, 1))]

        def metric() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return f'edge_uplink_partition_mismatch{{topic="{t}"}} 1.0' in r.read().decode()
        wait_sync(metric, 30, "the mismatch in /metrics")
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
