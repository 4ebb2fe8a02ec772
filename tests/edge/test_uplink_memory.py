"""Memory bounded by bytes, a stop bounded in time, a clean fenced exit (issue #11, 6)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.uplink import Uplink, UplinkConfig, UplinkState
from edge.uplink._aiokafka_private import ENV_ABANDON

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
#: The peak RSS the uplink keeps under, whatever its records' sizes (edge/uplink/README.md).
RSS_BUDGET_MB = 128


def _uplink_cli(servers: str, data: Path, topic: str, edge_id: str, *more: str,
                env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-m", "edge.uplink", "--edge-id", edge_id, "--bootstrap-servers", servers,
         "--data-dir", str(data), "--topic", f"{topic}=up.{topic}", "--status-interval", "0.2", *more],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _peak_rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) // 1024


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_rss_stays_within_budget_with_200_kb_records(tmp_path, kafka_cluster, delivery):
    """300 records of 200 KB: read 1,000 at a time they took the uplink past 170 MB (642 MB
    in the issue's run); bounded by batch_bytes, the peak stays within the budget."""
    data, t = tmp_path / "log", unique("big")
    create_local_topics(data, {t: 2})
    for start in range(0, 300, 50):
        produce_local(data, t, 50, keys=10, start=start, size=200_000)
    proc = _uplink_cli(kafka_cluster.bootstrap_servers, data, t, unique("edge"), "--delivery", delivery)
    try:
        for line in proc.stdout:
            if json.loads(line)["records_total"] >= 300:
                break
        else:
            pytest.fail(f"the uplink ended early: {proc.stderr.read()[-2000:]}")
        peak = _peak_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert peak <= RSS_BUDGET_MB, f"peak RSS {peak} MB"


async def test_stop_against_a_frozen_cluster_is_bounded_and_loses_nothing(tmp_path,
                                                                          kafka_cluster_proxied):
    data, t = tmp_path / "log", unique("frozen")
    create_local_topics(data, {t: 2})
    produce_local(data, t, 3000, keys=20)
    cfg = UplinkConfig(edge_id=unique("edge"), bootstrap_servers=kafka_cluster_proxied.bootstrap_servers,
                       data_dir=data, topics={t: "up." + t}, batch_records=100,
                       request_timeout_s=300, stop_timeout_s=1)
    uplink = Uplink(cfg)
    task = asyncio.create_task(uplink.run())
    try:
        await wait_for(lambda: uplink.status().records_total >= 200, 60, "some replication", uplink)
        kafka_cluster_proxied.cut("blackhole")   # the cluster answers nothing, like SIGSTOP
        await asyncio.sleep(0.3)                 # a transaction is stuck in it now
        uplink.stop()
        # request_timeout_s is 300: only stop_timeout_s (or the probe) ends this.
        await asyncio.wait_for(asyncio.shield(task), 30)
    finally:
        kafka_cluster_proxied.restore()
        if not task.done():
            task.cancel()
    assert uplink.state == UplinkState.STOPPED
    produce_local(data, t, 100, keys=20, start=3000)
    async with Uplink(cfg) as again:
        await wait_for(lambda: again.status().lag_records == 0 and again.status().lag, 60,
                       "the rest after the restart", again)
    got = await read_upstream(kafka_cluster_proxied.direct_bootstrap_servers, ["up." + t], 3100)
    check_exactly_once(got, {t: 3100})


# plain-stop: aiokafka's public stop() only, the fallback when its internals fail the probe.
@pytest.mark.parametrize("abandon", ["1", "0"], ids=["abandon", "plain-stop"])
def test_a_fenced_uplink_exits_with_its_message_and_no_stray_tracebacks(tmp_path, kafka_cluster,
                                                                        abandon):
    env = {ENV_ABANDON: abandon}
    edge_id, t = unique("edge"), unique("fence")
    first_data, second_data = tmp_path / "a", tmp_path / "b"
    for d in (first_data, second_data):
        create_local_topics(d, {t: 2})
        produce_local(d, t, 20_000, keys=10)
    first = _uplink_cli(kafka_cluster.bootstrap_servers, first_data, t, edge_id, "--batch-records", "50",
                        env_extra=env)
    second = None
    err_lines: list[str] = []
    readers = [threading.Thread(target=lambda: [None for _ in first.stdout], daemon=True),
               threading.Thread(target=lambda: err_lines.extend(first.stderr), daemon=True)]
    try:
        for line in first.stdout:   # busy replicating: a transaction open when it is fenced
            if json.loads(line)["records_total"] >= 500:
                break
        for r in readers:  # so a full pipe never stalls it
            r.start()
        second = _uplink_cli(kafka_cluster.bootstrap_servers, second_data, t, edge_id, env_extra=env)
        # A fenced producer learns it only at its next transaction: on a slow machine the
        # first may have sent all it had before the second started, so it is kept fed.
        n, deadline = 20_000, time.monotonic() + 90
        while first.poll() is None and time.monotonic() < deadline:
            produce_local(first_data, t, 50, keys=10, start=n)
            n += 50
            time.sleep(0.2)
        first.wait(timeout=5)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        if second is not None:
            second.communicate(timeout=60)
        for r in readers:
            if r.ident is not None:
                r.join(timeout=60)
        first.communicate(timeout=60)  # what the readers did not take; closes the pipes
    err = "".join(err_lines)
    assert first.returncode == 3, err[-3000:]
    assert "fenced by a newer uplink" in err
    if abandon == "1":
        assert "Traceback" not in err and "never retrieved" not in err, err[-3000:]
    else:
        # aiokafka's public stop() cannot reach the futures its fenced transaction failed:
        # the fallback's known cost is asyncio's "never retrieved" noise after our message.
        assert "closing producers with aiokafka's stop() only" in err
