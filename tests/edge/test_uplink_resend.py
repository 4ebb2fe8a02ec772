"""A re-send (the fleet's rereplicate command) survives a cut link and a restart: every
record from the offset arrives upstream again, and what was never upstream arrives once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from broker import KafkaConsumer, TopicPartition
from edge.uplink import Uplink, UplinkConfig, UplinkState, request_resend
from edge.uplink._resend import Resend, decode, settle

from ._uplink_helpers import create_local_topics, produce_local, read_upstream, unique, wait_for

_FIRST = 120     # records upstream before the re-send is asked for
_LATER = 30      # records written during the re-send: never upstream before, sent once
_FROM = 10       # the re-send's offset, in each of the 2 partitions


def _config(servers: str, data: Path, edge_id: str, t: str, **extra: object) -> UplinkConfig:
    return UplinkConfig(edge_id=edge_id, bootstrap_servers=servers, data_dir=data,
                        topics={t: "up." + t}, request_timeout_s=3, backoff_initial_s=0.2,
                        backoff_max_s=1.0, batch_records=10, **extra)


async def _replicated_then_resend_asked(servers: str, data: Path, t: str, edge_id: str) -> None:
    create_local_topics(data, {t: 2})
    produce_local(data, t, _FIRST, keys=7)
    async with Uplink(_config(servers, data, edge_id, t)) as uplink:
        await wait_for(lambda: uplink.status().lag and uplink.status().lag_records == 0, 60,
                       "first records upstream", uplink)
    request_resend(_config(servers, data, edge_id, t),
                   {TopicPartition(t, p): _FROM for p in range(2)})


def _slow(servers: str, data: Path, edge_id: str, t: str) -> UplinkConfig:
    # About 40 records a second: the re-send of 100 records is under way for seconds.
    return _config(servers, data, edge_id, t, max_bytes_per_s=2500)


async def _mid_resend(uplink: Uplink) -> None:
    def sent_again() -> int:
        return sum(at - _FROM for at, _ in uplink.status().resending.values())

    await wait_for(lambda: sent_again() >= 20 or (uplink.state == UplinkState.ONLINE
                                                  and not uplink.status().resending),
                   60, "the re-send under way", uplink)
    assert uplink.status().resending, "online with no re-send under way: it was skipped"


async def _check(servers: str, data: Path, t: str, edge_id: str) -> None:
    got = await read_upstream(servers, ["up." + t], _FIRST + _LATER + _FIRST - 2 * _FROM)
    seen = Counter(int(r.value.decode().rsplit(":", 1)[1]) for r in got)
    local = _local_offsets(data, t)
    again = [i for i, (_, off) in local.items() if i < _FIRST and off >= _FROM]
    assert again, "nothing in the asked range"
    missing = [i for i in again if seen[i] < 2]
    assert not missing, f"{len(missing)} records of the range not sent again (first {missing[:5]})"
    once = [i for i in range(_FIRST) if i not in set(again)]
    assert all(seen[i] == 1 for i in once), "a record below the range was sent again"
    wrong = {i: seen[i] for i in range(_FIRST, _FIRST + _LATER) if seen[i] != 1}
    assert not wrong, f"records never upstream before the re-send, not exactly once: {wrong}"
    # Done: the local commits hold no re-send any more.
    consumer = KafkaConsumer(data_dir=data, group_id=_config(servers, data, edge_id, t).group_id)
    try:
        for p in range(2):
            om = consumer.committed(TopicPartition(t, p), metadata=True)
            assert om is not None and decode(om.metadata) is None, om
    finally:
        consumer.close()


def _local_offsets(data: Path, t: str) -> dict[int, tuple[int, int]]:
    """value index -> (local partition, offset)."""
    consumer = KafkaConsumer(data_dir=data, auto_offset_reset="earliest")
    try:
        tps = [TopicPartition(t, p) for p in range(2)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        out = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    out[int(r.value.decode().rsplit(":", 1)[1])] = (r.partition, r.offset)
        return out
    finally:
        consumer.close()


@pytest.mark.parametrize("cluster", ["kafka_cluster_proxied",
                                     pytest.param("kafka_cluster3_proxied", marks=pytest.mark.soak)])
async def test_a_resend_cut_off_midway_goes_on_after_the_reconnect(tmp_path, request, cluster):
    net = request.getfixturevalue(cluster)
    data, t, edge_id = tmp_path / "log", unique("resend-cut"), unique("edge")
    await _replicated_then_resend_asked(net.bootstrap_servers, data, t, edge_id)
    async with Uplink(_slow(net.bootstrap_servers, data, edge_id, t)) as uplink:
        await _mid_resend(uplink)
        net.cut("drop")
        await asyncio.to_thread(produce_local, data, t, _LATER, keys=7, start=_FIRST)
        await wait_for(lambda: uplink.state == UplinkState.OFFLINE, 30, "offline", uplink)
        assert uplink.status().resending, "the re-send ended before the cut"
        net.restore()
        await wait_for(lambda: uplink.state == UplinkState.ONLINE and not uplink.status().resending
                       and uplink.status().lag_records == 0, 60, "re-sent and drained", uplink)
        assert uplink.status().states_seen[-3:] == [UplinkState.ONLINE, UplinkState.OFFLINE,
                                                    UplinkState.ONLINE]
    await _check(net.direct_bootstrap_servers, data, t, edge_id)


async def test_a_resend_goes_on_after_a_restart(tmp_path, kafka_cluster3):
    servers = kafka_cluster3.bootstrap_servers
    data, t, edge_id = tmp_path / "log", unique("resend-restart"), unique("edge")
    await _replicated_then_resend_asked(servers, data, t, edge_id)
    # Stopped before the re-send sent a record: its end is stored, the upstream checkpoint
    # still says everything is there; the next start must not believe it.
    stalled = _config(servers, data, edge_id, t, max_bytes_per_s=1, stop_timeout_s=0.5)
    async with Uplink(stalled) as uplink:
        await wait_for(lambda: uplink.state == UplinkState.ONLINE, 30, "online", uplink)
        assert uplink.status().resending
    assert uplink.status().records_total == 0
    # Stopped mid-way: the next one goes on from the stored progress.
    async with Uplink(_slow(servers, data, edge_id, t)) as uplink:
        await _mid_resend(uplink)
        produce_local(data, t, _LATER, keys=7, start=_FIRST)
    assert uplink.status().resending, "the re-send ended before the stop"
    async with Uplink(_config(servers, data, edge_id, t)) as uplink:
        await wait_for(lambda: uplink.state == UplinkState.ONLINE, 30, "online", uplink)
        await wait_for(lambda: not uplink.status().resending and uplink.status().lag
                       and uplink.status().lag_records == 0, 60, "re-sent and drained", uplink)
    await _check(servers, data, t, edge_id)


def test_settle_fixes_the_end_goes_on_or_ends_a_resend() -> None:
    tp = TopicPartition("t", 0)
    # Asked: the end is the higher of the hint and where upstream stands; from start.
    assert settle({tp: (Resend(5, None, 40), 40)}, {tp: 50}) == ({tp: 5}, {tp: Resend(5, 50)})
    # Asked from where upstream stands or past it: nothing to send twice, nothing skipped.
    assert settle({tp: (Resend(60, None, 40), 40)}, {tp: 50}) == ({tp: 50}, {tp: None})
    # Under way: its progress (the commit's offset), whatever the stale sources say.
    assert settle({tp: (Resend(5, 50), 17)}, {tp: 50}) == ({tp: 17}, {})
    # Upstream is past the end: only the re-send's own records move it there: done.
    assert settle({tp: (Resend(5, 50), 17)}, {tp: 63}) == ({tp: 63}, {tp: None})
