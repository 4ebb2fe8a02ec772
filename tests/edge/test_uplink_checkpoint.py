"""The exactly-once checkpoint against real clusters: it outlives Kafka's offset retention
while the uplink runs, and a restart whose checkpoint is gone resumes after the last records
of ours found upstream (``edge.partition`` / ``edge.offset``), sending nothing twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition as UpTP

from broker import KafkaAdminClient, TopicPartition
from edge.uplink import Uplink, UplinkConfig, UplinkState

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


async def _group_offsets(servers: str, group: str) -> dict:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        return await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()


def _delete_upstream_group(servers: str, group: str) -> None:
    """What an operator does with Kafka's own tool (or what retention does after a week)."""
    subprocess.run([sys.executable, "-m", "deploy.kafka", "tool", "consumer-groups",
                    "--bootstrap-server", servers, "--delete", "--group", group],
                   cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                   capture_output=True, timeout=120)


async def test_restart_without_checkpoint_resumes_after_our_last_records_upstream(
        tmp_path, kafka_cluster):
    servers = kafka_cluster.bootstrap_servers
    data, other_data = tmp_path / "log", tmp_path / "other-log"
    t, o = unique("resume"), unique("neighbour")
    create_local_topics(data, {t: 3})
    create_local_topics(other_data, {o: 3})
    produce_local(data, t, 600, keys=30)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=servers, data_dir=data,
                       topics={t: "up." + t}, batch_records=100)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 600, 60, "replication", uplink)
    # A power cut: the local commit lags the upstream one (here by 450 of the 600 records),
    # and the checkpoint is gone (expired after a week away; deleted here).
    with KafkaAdminClient(data) as admin:
        admin.alter_consumer_group_offsets(cfg.group_id, {TopicPartition(t, p): 50 for p in range(3)})
    _delete_upstream_group(servers, cfg.group_id)
    assert await _group_offsets(servers, cfg.group_id) == {}
    # Another box writes to the same upstream topic after our last records, so the scan
    # backwards has to pass over records that are not ours.
    produce_local(other_data, o, 300, keys=30)
    neighbour = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=servers,
                             data_dir=other_data, topics={o: "up." + t}, batch_records=100)
    async with Uplink(neighbour) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 300, 60, "neighbour", uplink)
    produce_local(data, t, 100, keys=30, start=600)
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().lag and uplink.status().lag_records == 0, 60,
                       "drain after the restart", uplink)
        assert uplink.status().records_total == 100   # only the new ones
    got = await read_upstream(servers, ["up." + t], 1000)
    check_exactly_once(got, {t: 700, o: 300})


async def test_idle_topic_checkpoint_outlives_offset_retention_and_a_broker_outage(
        tmp_path, kafka_cluster_short_offsets):
    cluster = kafka_cluster_short_offsets
    servers = cluster.bootstrap_servers
    data = tmp_path / "log"
    busy, idle = unique("busy"), unique("idle")
    create_local_topics(data, {busy: 1, idle: 2})
    produce_local(data, busy, 100, keys=5)
    produce_local(data, idle, 100, keys=5)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=servers, data_dir=data,
                       topics={busy: "up." + busy, idle: "up." + idle}, request_timeout_s=5,
                       backoff_max_s=1)
    busy_total = 100
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 200, 60, "first replication",
                       uplink)
        # A group nobody rewrites: it shows that this cluster really expires offsets meanwhile.
        control_group = unique("control")
        control = AIOKafkaConsumer(bootstrap_servers=servers, group_id=control_group,
                                   enable_auto_commit=False)
        await control.start()
        try:
            control.assign([UpTP("up." + busy, 0)])
            await control.commit({UpTP("up." + busy, 0): 1})
        finally:
            await control.stop()
        assert UpTP("up." + busy, 0) in await _group_offsets(servers, control_group)
        cluster.kill_broker(0)     # an outage without a restart of the uplink
        produce_local(data, busy, 20, keys=5, start=busy_total)   # for the uplink to notice
        busy_total += 20
        await wait_for(lambda: uplink.state == UplinkState.OFFLINE, 30, "offline", uplink)
        await asyncio.sleep(5)
        cluster.restart_broker(0)
        cluster.wait_ready()
        await wait_for(lambda: uplink.state == UplinkState.ONLINE, 60, "back online", uplink)
        # Every checkpoint is written again just after the reconnect; past the retention from
        # there, only the rewrites while the uplink runs can have kept the idle topic's alive.
        rewritten = time.monotonic() + 1
        while time.monotonic() - rewritten < 65:   # retention 60 s, checked every second
            produce_local(data, busy, 20, keys=5, start=busy_total)
            busy_total += 20
            await asyncio.sleep(1)
        await wait_for(lambda: uplink.state == UplinkState.ONLINE
                       and uplink.status().lag_records == 0, 60, "drained", uplink)
        assert await _group_offsets(servers, control_group) == {}
        offsets = await _group_offsets(servers, cfg.group_id)
        assert UpTP("up." + idle, 0) in offsets, offsets   # the idle topic's checkpoint lives
    produce_local(data, idle, 50, keys=5, start=100)
    async with Uplink(cfg) as uplink:   # a restart: resumes from the checkpoint
        await wait_for(lambda: uplink.status().lag and uplink.status().lag_records == 0, 60,
                       "drain after the restart", uplink)
    got = await read_upstream(servers, ["up." + busy, "up." + idle], busy_total + 150)
    check_exactly_once(got, {busy: busy_total, idle: 150})


async def test_box_reimaged_with_the_same_edge_id_sends_its_new_log(tmp_path, kafka_cluster,
                                                                   caplog):
    servers = kafka_cluster.bootstrap_servers
    t, edge_id = unique("reimaged"), unique("edge")
    old, new = tmp_path / "old-card", tmp_path / "new-card"
    create_local_topics(old, {t: 3})
    produce_local(old, t, 300, keys=30)
    cfg = UplinkConfig(edge_id=edge_id, bootstrap_servers=servers, data_dir=old,
                       topics={t: "up." + t})
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().records_total >= 300, 60, "old log", uplink)
    # A new SD card, the same config: the checkpoint upstream (~100 per partition) is past
    # the end of every partition of the new log (~33 each).
    create_local_topics(new, {t: 3})
    produce_local(new, t, 100, keys=30, start=1000)
    cfg = UplinkConfig(edge_id=edge_id, bootstrap_servers=servers, data_dir=new,
                       topics={t: "up." + t})
    async with Uplink(cfg) as uplink:
        await wait_for(lambda: uplink.status().lag and uplink.status().lag_records == 0, 60,
                       "new log", uplink)
        assert uplink.status().records_total == 100
    said = [r.getMessage() for r in caplog.records if "from another log" in r.getMessage()]
    assert len(said) == 3, said   # one per partition, naming where it resumes
    got = await read_upstream(servers, ["up." + t], 400)
    values = sorted(int(r.value.decode().rsplit(":", 1)[1]) for r in got)
    assert values == [*range(300), *range(1000, 1100)]
