"""What [control] costs an idle box: edge run with the control channel beside the same box without it.

Both sides: no devices, [upstream] to a 1-broker KRaft cluster started here (its uplink
online), nothing arriving. The control side also holds its consumer of the desired and
commands topics and a producer of reported state (heartbeat at its default, 300 s). Per
run and side, after the box is up and 2 s of settling: CPU % of one core (utime + stime
of every thread, /proc/PID/stat) and wake-ups/s (voluntary + nonvoluntary context
switches summed over every thread), over ``--seconds``. Sides interleave within a run;
the table shows medians [min–max] and ours ÷ peer.

    .venv/bin/python bench/bench_control_idle.py [--runs 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _p in (str(ROOT), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _table import Table  # noqa: E402
from bench_appliance import proc_sample  # noqa: E402
from bench_cpu_budget import _threads  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from deploy.kafka import ClusterSettings, KafkaCluster  # noqa: E402
from edge.control import generate_keypair  # noqa: E402
from tests.edge._helpers import health, wait_for  # noqa: E402
from tests.fixtures.mosquitto import free_port  # noqa: E402

SETTLE_S = 2.0
SIDES = ("with [control]", "without")


def _config(tmp: Path, servers: str, prefix: str, control: bool, port: int) -> Path:
    path = tmp / "edge.toml"
    text = (f'edge_id = "bench-{uuid.uuid4().hex[:6]}"\ndata_dir = "{tmp / "data"}"\n'
            f'[log]\ndurability = "no-fsync"\n[health]\naddress = "127.0.0.1:{port}"\n'
            f'[upstream]\nbootstrap_servers = "{servers}"\n'
            f'topics = {{ "dead-letters" = "{prefix}.dead-letters" }}\n')
    if control:
        text += (f'[control]\nenabled = true\npublic_keys = ["{tmp.parent / "keys" / "control.pub"}"]\n'
                 + "".join(f'{k}_topic = "{prefix}.{k}"\n'
                           for k in ("desired", "commands", "reported", "results")))
    path.write_text(text)
    return path


def idle_once(side: str, servers: str, prefix: str, root: Path, seconds: float) -> dict[str, float]:
    control = side == SIDES[0]
    with tempfile.TemporaryDirectory(dir=root) as name:
        tmp, port = Path(name), free_port()
        config = _config(tmp, servers, prefix, control, port)
        with (tmp / "edge.log").open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)],
                                    stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ))
        try:
            wait_for(lambda: (h := health(port)) and h["uplink"]["state"] == "online" and (
                not control or h.get("control", {}).get("connected")), 60, f"{side} up")
            time.sleep(SETTLE_S)
            before, (_, cpu0), t0 = _threads(proc.pid), proc_sample(proc.pid), time.monotonic()
            time.sleep(seconds)
            after, (_, cpu1), t1 = _threads(proc.pid), proc_sample(proc.pid), time.monotonic()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    wall = t1 - t0
    woke = sum(n - before.get(tid, (name, 0))[1] for tid, (name, n) in after.items())
    return {"cpu": 100 * (cpu1 - cpu0) / wall, "wakeups": woke / wall}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    table = Table("control_idle", "An idle box with and without [control]", list(SIDES))
    with tempfile.TemporaryDirectory(prefix="bench-control-") as root_name:
        root = Path(root_name)
        generate_keypair(root / "keys")
        cluster = KafkaCluster(settings=ClusterSettings(brokers=1))
        cluster.start()
        try:
            prefix = f"bench-{uuid.uuid4().hex[:6]}"
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
            compact = {"cleanup.policy": "compact"}
            admin.create_topics([NewTopic(f"{prefix}.{k}", 1, 1, topic_configs=compact if k in (
                "desired", "reported") else {}) for k in ("desired", "commands", "reported", "results")])
            admin.close()
            for run in range(args.runs):
                for side in SIDES if run % 2 == 0 else tuple(reversed(SIDES)):
                    r: dict[str, Any] = idle_once(side, cluster.bootstrap_servers, prefix, root,
                                                  args.seconds)
                    table.add("CPU, % of one core", side, r["cpu"], higher_is_better=False)
                    table.add("wake-ups/s (all threads)", side, r["wakeups"], higher_is_better=False)
                    print(f"run {run + 1} {side}: {r['cpu']:.2f}% CPU, {r['wakeups']:.1f} wake-ups/s",
                          file=sys.stderr)
        finally:
            cluster.stop()
    print(f"## {table.title}\n\n{args.runs} runs of {args.seconds:g} s each, sides interleaved; "
          f"load average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores.\n")
    print(table.markdown())


if __name__ == "__main__":
    main()
