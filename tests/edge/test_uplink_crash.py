"""The uplink as a separate process, killed with SIGKILL again and again while it replicates."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from edge.uplink import Uplink, UplinkConfig

from ._uplink_helpers import (
    check_exactly_once,
    create_local_topics,
    explain_missing,
    produce_local,
    read_upstream,
    unique,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


def _start_runner(data, servers, edge_id, topic, log_file) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edge.uplink", "--edge-id", edge_id, "--bootstrap-servers", servers,
         "--data-dir", str(data), "--topic", f"{topic}=up.{topic}", "--batch-records", "200", "--status-interval", "0.1"],
        cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _last_status(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.startswith("{")]
    return lines[-1] if lines else '"records_total": 0'


async def test_sigkill_many_times_every_record_once_in_order(tmp_path, kafka_cluster):
    data = tmp_path / "log"
    topic, edge_id = unique("crash"), unique("edge")
    create_local_topics(data, {topic: 3})
    total, chunk = 6000, 500
    produce_local(data, topic, 1000, keys=40)

    def keep_producing() -> None:
        for start in range(1000, total, chunk):
            produce_local(data, topic, chunk, keys=40, start=start)
    producer = threading.Thread(target=keep_producing)
    producer.start()
    rng = random.Random(4)
    kills_after_progress = 0
    try:
        for i in range(6):
            log_path = tmp_path / f"runner-{i}.log"
            with open(log_path, "wb") as log_file:
                proc = _start_runner(data, kafka_cluster.bootstrap_servers, edge_id, topic, log_file)
            try:
                # Kill it mid-stream: once it has committed a batch or two, at a random moment.
                for _ in range(200):
                    if '"records_total": 0' not in _last_status(log_path):
                        kills_after_progress += 1
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(rng.uniform(0.0, 0.5))
            finally:
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        producer.join()
    assert kills_after_progress >= 3
    cfg = UplinkConfig(edge_id=edge_id, bootstrap_servers=kafka_cluster.bootstrap_servers,
                       data_dir=data, topics={topic: "up." + topic})
    async with Uplink(cfg) as uplink:  # the last one, in process, drains what is left
        await wait_for(lambda: uplink.status().lag and uplink.status().lag_records == 0, 90,
                       "drain after the kills", uplink)
        assert uplink.status().records_total < total  # the killed runners had replicated some
    got = await read_upstream(kafka_cluster.bootstrap_servers, ["up." + topic], total)
    try:
        check_exactly_once(got, {topic: total})
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + await explain_missing(
            kafka_cluster.bootstrap_servers, "up." + topic, got, total)) from None
