"""One uplink per edge id: a second one on the same log is refused; another box with the same
edge id fences the first, exactly once (transactional id) and at least once (the lease)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from edge.uplink import Uplink, UplinkConfig, UplinkLockedError, UplinkState

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
async def test_second_uplink_on_the_same_log_is_refused(tmp_path, delivery):
    data = tmp_path / "log"
    create_local_topics(data, {"t": 1})
    # No cluster needed: the lock is taken before the first connect.
    cfg = UplinkConfig(edge_id="car-17", bootstrap_servers=f"127.0.0.1:{_closed_port()}",
                       data_dir=data, topics={"t": "up.t"}, delivery=delivery,
                       request_timeout_s=1, backoff_max_s=0.5)
    async with Uplink(cfg) as first:
        await wait_for(lambda: first.state == UplinkState.OFFLINE, 30, "first running", first)
        second = Uplink(cfg)
        with pytest.raises(UplinkLockedError, match=f"pid {os.getpid()}.*uplink-car-17.lock"):
            await second.run()
        assert "another uplink with edge id 'car-17'" in second.status().last_error
        assert second.state == UplinkState.STOPPED
        assert first.state == UplinkState.OFFLINE   # the first goes on
    async with Uplink(cfg) as third:   # the lock went with the first
        await wait_for(lambda: third.state == UplinkState.OFFLINE, 30, "third running", third)


async def test_cli_on_a_log_whose_uplink_runs_says_so_and_exits_75(tmp_path):
    data = tmp_path / "log"
    create_local_topics(data, {"t": 1})
    servers = f"127.0.0.1:{_closed_port()}"
    cfg = UplinkConfig(edge_id="car-17", bootstrap_servers=servers, data_dir=data,
                       topics={"t": "up.t"}, request_timeout_s=1, backoff_max_s=0.5)
    root = Path(__file__).resolve().parents[2]
    async with Uplink(cfg) as first:
        await wait_for(lambda: first.state == UplinkState.OFFLINE, 30, "first running", first)
        cli = subprocess.run(
            [sys.executable, "-m", "edge.uplink", "--edge-id", "car-17", "--bootstrap-servers",
             servers, "--data-dir", str(data), "--topic", "t=up.t"],
            capture_output=True, text=True, timeout=60, cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)})
    assert cli.returncode == 75, cli.stderr
    assert "\nedge.uplink: another uplink with edge id 'car-17' is running on this log" in cli.stderr
    assert "Traceback" not in cli.stderr


async def test_exactly_once_other_box_with_same_edge_id_fences_the_first(tmp_path, kafka_cluster):
    t = unique("fence")
    logs = [tmp_path / "box-a", tmp_path / "box-b"]   # a cloned box: the same records
    for data in logs:
        create_local_topics(data, {t: 1})
        produce_local(data, t, 200, keys=5)
    edge_id = unique("edge")
    first_cfg, second_cfg = (
        UplinkConfig(edge_id=edge_id, bootstrap_servers=kafka_cluster.bootstrap_servers,
                     data_dir=data, topics={t: "up." + t}) for data in logs)
    async with Uplink(first_cfg) as first:
        await wait_for(lambda: first.status().records_total >= 200, 60, "first replicates", first)
        async with Uplink(second_cfg) as second:
            await wait_for(lambda: second.state == UplinkState.ONLINE, 60, "second online", second)
            for data in logs:
                produce_local(data, t, 300, keys=5, start=200)
            await wait_for(lambda: first.state == UplinkState.FENCED, 60, "first fenced")
            assert "fenced" in first.status().last_error
            await wait_for(lambda: second.status().lag_records == 0 and second.status().lag, 60,
                           "second drains", second)
            assert second.state == UplinkState.ONLINE
    assert first.state == UplinkState.FENCED
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + t], 500)
    check_exactly_once(got, {t: 500})


async def test_at_least_once_other_box_with_same_edge_id_fences_the_first(tmp_path, kafka_cluster):
    servers = kafka_cluster.bootstrap_servers
    a, b, up = unique("box-a"), unique("box-b"), unique("up.fence")
    # Each box's records are told apart by their local topic name, which is in the value.
    data_a, data_b = tmp_path / "a", tmp_path / "b"
    create_local_topics(data_a, {a: 2})
    create_local_topics(data_b, {b: 2})
    produce_local(data_a, a, 300, keys=10)
    produce_local(data_b, b, 300, keys=10)
    edge_id = unique("edge")
    cfg_a, cfg_b = (UplinkConfig(edge_id=edge_id, bootstrap_servers=servers, data_dir=data,
                                 topics={local: up}, delivery="at-least-once", batch_records=50)
                    for data, local in ((data_a, a), (data_b, b)))
    done = threading.Event()

    def keep_producing() -> None:   # box A keeps having records to send while B comes up
        i = 300
        while not done.wait(0.05):
            produce_local(data_a, a, 20, keys=10, start=i)
            i += 20

    producer = threading.Thread(target=keep_producing)
    async with Uplink(cfg_a) as first:
        await wait_for(lambda: first.status().records_total >= 300, 60, "first replicates", first)
        producer.start()
        try:
            async with Uplink(cfg_b) as second:
                await wait_for(lambda: first.state == UplinkState.FENCED, 30, "first fenced")
                assert "fenced" in first.status().last_error
                await wait_for(lambda: second.status().records_total >= 300, 60, "second sends",
                               second)
                assert second.state == UplinkState.ONLINE
        finally:
            done.set()
            producer.join()
    got = await read_upstream(servers, [up], 600, settle_s=0.5)
    check_exactly_once([r for r in got if r.value.startswith(b.encode())], {b: 300})
    first_b: dict[int, int] = {}
    for r in got:
        if r.value.startswith(b.encode()):
            first_b.setdefault(r.partition, r.offset)
    late_a = defaultdict(int)
    for r in got:
        if r.value.startswith(a.encode()) and r.offset > first_b.get(r.partition, 1 << 62):
            late_a[r.partition] += 1
    assert first_b and not late_a, f"box A wrote after box B's first record: {dict(late_a)}"
