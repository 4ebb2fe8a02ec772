"""Helpers of the edge tests: run `edge` and `edge-sim` as subprocesses, read the log back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from broker import KafkaConsumer
from tests.fixtures.mosquitto import free_port

BIN = Path(sys.executable).parent


def write_config(tmp: Path, devices: str, *, health_port: int | None = None,
                 extra: str = "") -> tuple[Path, int]:
    port = health_port or free_port()
    path = tmp / "edge.toml"
    path.write_text(f'edge_id = "test-edge"\ndata_dir = "{tmp / "data"}"\n'
                    f'[log]\npartitions = 2\ndurability = "no-fsync"\n'
                    f'[health]\naddress = "127.0.0.1:{port}"\n{extra}\n{devices}')
    return path, port


def serial_device(name: str, kind: str, port: str, codec: str, options: str = "") -> str:
    return (f'[[devices]]\nname = "{name}"\nkind = "{kind}"\ntransport = "serial"\n'
            f'port = "{port}"\ncodec = "{codec}"\n' + (f"codec_options = {options}\n" if options else ""))


SIM_SERIAL = [("car-1", "gps", "nmea0183", ""), ("room-1", "temperature", "text", ""),
              ("bed-1", "blood_pressure", "gatt.0x2A35", '{ framing = "hex" }')]


def start_edge(config: Path, log_path: Path,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    with log_path.open("ab") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=stderr, env=env)


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except OSError:
        return None


def wait_for(pred, timeout: float, what: str, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_edge(proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 20) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("edge did not exit after SIGTERM:\n" + log_path.read_text()) from None


def read_topic(data_dir: Path, topic: str) -> list[Any]:
    consumer = KafkaConsumer(topic, data_dir=str(data_dir), auto_offset_reset="earliest",
                             consumer_timeout_ms=500)
    try:
        return list(consumer)
    finally:
        consumer.close()


def truth_readings(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["type"] == "reading" and not r.get("fault")]
