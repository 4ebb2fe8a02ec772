"""`edge run` under a 200 kB disk quota with drop-oldest and no uplink: the device never fails.

Found in the field: after 4,178 events the log held 600 drop-ledger entries and no data,
and from then on every write failed and the device restarted over and over. edge-sim
writes 6,000 readings over a real pty; every one is taken (the oldest dropped, on the
ledger), the device is never restarted, and the log stays within its quota on disk.
The data directory is on tmpfs: a small quota checkpoints the WAL every few commits,
and each checkpoint fsyncs (tests/broker/conftest.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from broker import DROP_LEDGER_TOPIC, KafkaAdminClient, LogConfig
from tests.edge._helpers import (
    BIN,
    health,
    read_topic,
    serial_device,
    start_edge,
    stop_edge,
    wait_for,
)
from tests.fixtures.mosquitto import free_port

pytestmark = pytest.mark.timeout(180)

COUNT = 6000
QUOTA = 200_000


def test_a_full_log_under_drop_oldest_keeps_taking_readings_without_an_uplink(tmp_path: Path) -> None:
    shm = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else tmp_path))
    data = shm / "data"
    links = tmp_path / "links"
    links.mkdir()
    port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(f'edge_id = "quota-edge"\ndata_dir = "{data}"\n'
                      f'[log]\npartitions = 1\ndurability = "no-fsync"\nquota_bytes = {QUOTA}\n'
                      f'full_policy = "drop-oldest"\n[health]\naddress = "127.0.0.1:{port}"\n'
                      + serial_device("room-1", "temperature", str(links / "room-1"), "text"))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        sim = subprocess.run(
            [str(BIN / "edge-sim"), "--no-progress", "--seed", "3", "--output", "pty", "--link-dir", str(links),
             "--gps", "0", "--patients", "0", "--rooms", "1", "--fast", "--count", str(COUNT)],
            capture_output=True, text=True, timeout=150)
        assert sim.returncode == 0, sim.stderr

        def room() -> dict | None:
            h = health(port)
            return h["devices"]["room-1"] if h else None
        wait_for(lambda: (room() or {}).get("readings", 0) >= COUNT - 5, 60,
                 f"{COUNT} readings in the log:\n" + edge_log.read_text()[-2000:])
        d = room()
        # (last_error names the pty, gone with edge-sim: not a failure of the device's writes.)
        assert d is not None and d["restarts"] == 0, d
        lg = health(port)["log"]
        assert lg["ok"] and 0 < lg["disk_bytes"] <= QUOTA == lg["quota_bytes"], lg
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        disk = next(line for line in metrics.splitlines() if line.startswith("edge_log_disk_bytes "))
        assert 0 < float(disk.split()[1]) <= QUOTA
    finally:
        rc = stop_edge(edge, edge_log)
    try:
        assert rc == 0, edge_log.read_text()[-3000:]
        text = edge_log.read_text()
        assert "LogFullError" not in text and "device room-1 failed" not in text, text[-3000:]
        kept = read_topic(data, "temperature")
        ledger = [json.loads(r.value) for r in read_topic(data, DROP_LEDGER_TOPIC)]
        with KafkaAdminClient(log_config=LogConfig(data_dir=data)) as admin:
            info = admin.describe_log()
        assert info["disk_bytes"] <= QUOTA
        # The quota holds readings, not ledger entries (how many depends on where the last
        # drop fell: a 200 kB quota has ~40 kB for records beside the schema and shares).
        assert len(kept) > 20 and info["topics"]["temperature"]["bytes"] > info["topics"][DROP_LEDGER_TOPIC]["bytes"]
        assert info["topics"][DROP_LEDGER_TOPIC]["bytes"] <= max(QUOTA // 32, 4096)
        assert sum(e["count"] for e in ledger) == info["dropped_records"] > COUNT // 2
    finally:
        shutil.rmtree(shm, ignore_errors=True)
