"""edge-sim: the CLI itself, and end to end into the adapters over real ptys."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from devices.adapters import SerialAdapter
from devices.cli import main
from devices.codecs import CODECS
from devices.simulator import SimConfig, serial_codec_name
from devices.transports import Backoff, SerialConfig, SerialTransport

ROOT = Path(__file__).resolve().parents[2]
FAST = Backoff(initial=0.01, maximum=0.05)


def sim_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "devices", "--no-progress", *args]


def truth_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_version_and_help_name_the_env_vars(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "edge-sim" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["-h"])
    out = capsys.readouterr().out
    assert "EDGE_SIM_RATE" in out and "EDGE_SIM_MQTT_PASSWORD" in out


def test_bad_option_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--fast", "--count", "1", "--convention", "gps=nope"])
    assert exc.value.code == 2 and "got 'nope'" in capsys.readouterr().err


def test_seed_makes_output_reproducible_and_env_vars_work(tmp_path):
    env = os.environ | {"EDGE_SIM_COUNT": "5", "EDGE_SIM_SEED": "7", "EDGE_SIM_START_MS": "1700000000000"}
    runs = [
        subprocess.run(sim_cmd("--fast", "--truth", str(tmp_path / f"t{i}")), cwd=ROOT, env=env,
                       capture_output=True, timeout=60, check=True).stdout
        for i in range(2)
    ]
    assert runs[0] == runs[1] and b"$GPRMC" in runs[0]
    truth = truth_lines(tmp_path / "t0")
    assert [t["seq"] for t in truth] == list(range(1, 16))
    assert {t["device_id"] for t in truth} == {"car-1", "room-1", "bed-1"}


def test_faults_are_in_the_truth_log_and_file_output(tmp_path):
    out, truth = tmp_path / "frames.bin", tmp_path / "truth.jsonl"
    code = main(["--fast", "--no-progress", "--count", "50", "--seed", "1", "--output", "file",
                 "--file", str(out), "--truth", str(truth), "--corrupt", "0.2", "--garbage", "0.1",
                 "--truncate", "0.1"])
    assert code == 0
    kinds = Counter(t.get("fault") or t["type"] for t in truth_lines(truth))
    assert kinds["corrupt"] and kinds["truncate"] and kinds["garbage"] and kinds["reading"]
    assert out.stat().st_size > 0


def test_config_validation_names_the_bad_value():
    with pytest.raises(ValueError, match="got 'carrier-pigeon'"):
        SimConfig(output="carrier-pigeon")
    with pytest.raises(ValueError, match="got 0"):
        SimConfig(rate=0)


async def test_simulator_to_serial_adapters_over_ptys_with_unplug(tmp_path):
    """The acceptance test: every reading the simulator emits arrives, across replugs."""
    links, truth = tmp_path / "dev", tmp_path / "truth.jsonl"
    proc = await asyncio.create_subprocess_exec(
        *sim_cmd("--output", "pty", "--link-dir", str(links), "--fast", "--count", "60",
                 "--seed", "11", "--unplug", "0.03", "--unplug-seconds", "0.05",
                 "--wait-reader", "20", "--truth", str(truth)),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    readings: dict[str, list] = {"car-1": [], "room-1": [], "bed-1": []}
    dead = []

    async def dead_letter(d):
        dead.append(d)

    adapters = []
    for device_id, kind in [("car-1", "gps"), ("room-1", "temperature"), ("bed-1", "blood_pressure")]:
        name, opts = serial_codec_name(kind, SimConfig())
        transport = SerialTransport(SerialConfig(str(links / device_id), baudrate=115200, backoff=FAST))

        async def sink(r, out=readings[device_id]):
            out.append(r)

        adapters.append(SerialAdapter(device_id, transport, CODECS[name](**opts), sink, dead_letter))
    try:
        async with asyncio.timeout(60), asyncio.TaskGroup() as tg:
            for a in adapters:
                await a.transport.start()
                tg.create_task(a.run())
            _, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            for a in adapters:
                await a.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = truth_lines(truth)
    assert any(t["type"] == "unplug" for t in log), "the seed should unplug at least once"
    assert sum(a.transport.stats.faults for a in adapters) >= 1
    assert not dead
    for device_id, got in readings.items():
        expected = [t for t in log if t["type"] == "reading" and t["device_id"] == device_id]
        assert len(got) == len(expected) == 60, device_id
        for r, t in zip(got, expected, strict=True):
            # NMEA carries time to 10 ms, GATT to the second; text lines none (arrival time).
            tolerance = {"car-1": 10, "bed-1": 1000}.get(device_id)
            if tolerance is not None:
                assert 0 <= t["timestamp_ms"] - r.timestamp_ms < tolerance, device_id
            for key in ("temperature_c", "systolic_mmhg", "pulse_bpm", "lat", "lon"):
                if key in t["values"]:
                    assert r.values[key] == pytest.approx(t["values"][key], abs=1e-4), (device_id, key)
