"""The end-to-end smoke that tests/pi/test_arm64.py runs inside the arm64 root.

Run by the installed venv's Python (/opt/edge/venv/bin/python) under qemu-aarch64,
with the commands install.sh linked into /usr/local/bin: `edge-sim` on ptys into
`edge run`, `edge status` while it runs, SIGTERM, then the log read back. It
asserts nothing itself: it prints one JSON document that the test on the host
checks, so a failure reads with every figure beside it. Standard library and the
appliance only; not collected by pytest (no test_ prefix).

    python smoke_inside.py WORKDIR
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Every Python start is emulated (seconds each) and the machine is shared: waits are
# generous, and each is only a bound, never a measurement.
WAIT_S = 240
SIM_COUNT = 60  # readings per device
SIM_RATE = 2  # per device per second: 30 s of readings, time for `edge status` to start

DEVICES = [  # name, kind, codec, codec_options: each of the serial codecs once
    ("car-1", "gps", "nmea0183", ""),
    ("room-1", "temperature", "text", ""),
    ("bed-1", "blood_pressure", "gatt.0x2A35", '{ framing = "hex" }'),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except OSError:
        return None


def readings(h: dict | None) -> int:
    return sum(d["readings"] for d in (h or {"devices": {}})["devices"].values())


def main(work: Path) -> dict:
    out: dict = {"machine": platform.machine(), "python": platform.python_version(),
                 "executable": sys.executable}
    links = work / "links"
    links.mkdir(parents=True)
    port = free_port()
    config = work / "edge.toml"
    text = (f'edge_id = "arm64-smoke"\ndata_dir = "{work / "data"}"\n'
            f'[log]\npartitions = 2\n[health]\naddress = "127.0.0.1:{port}"\n')
    for name, kind, codec, options in DEVICES:
        text += (f'[[devices]]\nname = "{name}"\nkind = "{kind}"\ntransport = "serial"\n'
                 f'port = "{links / name}"\ncodec = "{codec}"\n'
                 + (f"codec_options = {options}\n" if options else ""))
    config.write_text(text)
    check = subprocess.run(["edge", "config", "check", str(config)], capture_output=True,
                           text=True, timeout=WAIT_S)
    out["config_check"] = {"rc": check.returncode, "output": check.stdout + check.stderr}

    edge_log = work / "edge.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with edge_log.open("ab") as stderr:
        edge = subprocess.Popen(["edge", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        # edge-sim makes the ptys and waits for the readers to open them; it runs long
        # enough (SIM_COUNT / SIM_RATE s) that `edge status` sees every device connected.
        sim = subprocess.Popen(
            ["edge-sim", "--no-progress", "--seed", "7", "--output", "pty", "--link-dir",
             str(links), "--gps", "1", "--rooms", "1", "--patients", "1", "--count",
             str(SIM_COUNT), "--rate", str(SIM_RATE), "--wait-reader", str(WAIT_S),
             "--truth", str(work / "truth.jsonl")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + WAIT_S
            h = health(port)
            while not (h and all(d["connected"] and d["readings"] > 0
                                 for d in h["devices"].values())):
                if time.monotonic() > deadline or edge.poll() is not None or sim.poll() is not None:
                    break
                time.sleep(0.5)
                h = health(port)
            out["health_running"] = h
            status = subprocess.run(["edge", "status", "--address", f"127.0.0.1:{port}"],
                                    capture_output=True, text=True, timeout=WAIT_S)
            out["status"] = {"rc": status.returncode, "stdout": status.stdout,
                             "stderr": status.stderr}
            _, err = sim.communicate(timeout=2 * WAIT_S)
        finally:
            if sim.poll() is None:
                sim.kill()
                _, err = sim.communicate()
        out["sim"] = {"rc": sim.returncode, "stderr": err[-2000:]}
        truth = [json.loads(line) for line in (work / "truth.jsonl").read_text().splitlines()
                 if line.strip()]
        expected: dict[str, int] = {}
        for r in truth:
            if r["type"] == "reading" and not r.get("fault"):
                expected[r["device_id"]] = expected.get(r["device_id"], 0) + 1
        out["expected"] = expected
        # Every reading but the GPS's last epoch, which the NMEA assembler holds until the
        # next one and hands on at shutdown.
        want = sum(expected.values()) - 1
        deadline = time.monotonic() + WAIT_S
        h = health(port)
        while readings(h) < want and time.monotonic() < deadline and edge.poll() is None:
            time.sleep(0.5)
            h = health(port)
        out["health"] = h
    finally:
        if edge.poll() is None:
            edge.send_signal(signal.SIGTERM)
        try:
            out["edge_rc"] = edge.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            edge.kill()
            out["edge_rc"] = f"killed: no exit within {WAIT_S} s of SIGTERM"
        out["edge_log"] = edge_log.read_text(errors="replace")[-4000:]

    from broker import KafkaConsumer

    got: dict[str, dict[str, int]] = {}
    for topic in ("gps", "temperature", "blood_pressure"):
        consumer = KafkaConsumer(topic, data_dir=str(work / "data"),
                                 auto_offset_reset="earliest", consumer_timeout_ms=2000)
        try:
            for rec in consumer:
                per = got.setdefault(topic, {})
                per[rec.key.decode()] = per.get(rec.key.decode(), 0) + 1
        finally:
            consumer.close()
    out["log"] = got
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
