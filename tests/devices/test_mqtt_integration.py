"""edge-sim into a real Mosquitto into MqttAdapter; and redelivery after SIGKILL (fast path and
plain paho)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from devices.adapters import MqttAdapter
from devices.codecs import CONVENTIONS
from devices.transports import Backoff, ConnectionState, MqttConfig, MqttTransport

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[2]
FAST = Backoff(initial=0.05, maximum=0.2)


async def test_simulator_publishes_and_the_adapter_receives_everything(mosquitto, tmp_path):
    truth = tmp_path / "truth.jsonl"
    conventions = {"owntracks/#": "owntracks", "zigbee2mqtt/#": "zigbee2mqtt", "bp/#": "bp.json"}
    got, dead = [], []

    async def sink(r):
        got.append(r)

    async def dead_letter(d):
        dead.append(d)

    transport = MqttTransport(MqttConfig(mosquitto.host, mosquitto.port, topics=tuple(conventions),
                                         client_id="sim-e2e", backoff=FAST))
    adapter = MqttAdapter("mqtt", transport, {f: CONVENTIONS[n]() for f, n in conventions.items()},
                          sink, dead_letter)
    async with adapter, asyncio.timeout(60), asyncio.TaskGroup() as tg:
        tg.create_task(adapter.run())
        await transport.wait_state(ConnectionState.CONNECTED, timeout=10)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devices", "--no-progress", "--output", "mqtt",
            "--mqtt-port", str(mosquitto.port), "--fast", "--count", "100", "--seed", "5",
            "--gps", "2", "--rooms", "2", "--patients", "2", "--truth", str(truth), cwd=ROOT,
        )
        assert await proc.wait() == 0
        expected = len(truth.read_text().splitlines())
        while len(got) + len(dead) < expected:
            await asyncio.sleep(0.02)
        await adapter.close()
    assert expected == 600 and not dead
    assert Counter(r.kind for r in got) == {"gps": 200, "temperature": 200, "blood_pressure": 200}
    assert transport.stats.acks == 600


CHILD = textwrap.dedent("""
    import asyncio, json, os, sys
    from devices.adapters import MqttAdapter
    from devices.codecs import CONVENTIONS
    from devices.transports import ConnectionState, MqttConfig, MqttTransport

    port, out, block_at = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

    async def main():
        seen = 0
        f = open(out, "a")

        async def sink(r):
            nonlocal seen
            f.write(json.dumps(r.values["temperature_c"]) + "\\n")
            f.flush()
            os.fsync(f.fileno())  # durably accepted from here on
            seen += 1
            if seen == block_at:
                await asyncio.Event().wait()  # hang before returning: never acked

        t = MqttTransport(MqttConfig("127.0.0.1", port, topics=("zigbee2mqtt/#",),
                                     client_id="edge-crash-test"))
        adapter = MqttAdapter("mqtt", t, CONVENTIONS["zigbee2mqtt"](), sink)
        async with adapter, asyncio.TaskGroup() as tg:
            tg.create_task(adapter.run())
            await t.wait_state(ConnectionState.CONNECTED, 10)  # subscribed: the session exists
            print("ready", flush=True)

    asyncio.run(main())
""")


def _start_child(script: Path, port: int, out: Path, block_at: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(out), str(block_at)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _lines(path: Path) -> list[float]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("fast_path", ["1", "0"], ids=["fast-path", "plain-paho"])
def test_sigkilled_adapter_gets_unacked_qos1_messages_again(mosquitto, tmp_path, fast_path,
                                                            monkeypatch):
    # A message is acked only once the child's sink has made it durable (fsync), with the
    # fast path and with plain paho (its fallback, EDGE_MQTT_FAST_PATH=0 in the children).
    from tests.devices.test_mqtt import publish

    monkeypatch.setenv("EDGE_MQTT_FAST_PATH", fast_path)

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    # Run once to create the persistent session (subscription), then stop it.
    proc = _start_child(script, mosquitto.port, first, block_at=1_000_000)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    messages = [("zigbee2mqtt/room-1", json.dumps({"temperature": i}).encode()) for i in range(50)]
    publish(mosquitto, messages)  # queued for the offline session

    proc = _start_child(script, mosquitto.port, first, block_at=10)
    try:
        end = time.monotonic() + 15
        while len(_lines(first)) < 10:
            assert time.monotonic() < end, "child never got 10 messages"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)  # the 10th was written but not acked
        proc.wait(10)
        proc.stdout.close()

    proc = _start_child(script, mosquitto.port, second, block_at=1_000_000)
    try:
        end = time.monotonic() + 15
        while len(set(_lines(first)[:9]) | set(_lines(second))) < 50:
            assert time.monotonic() < end, f"only {sorted(set(_lines(second)))} came back"
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    redelivered = set(_lines(second))
    assert 9.0 in redelivered, "the message written but never acked must come again"
    assert set(range(10, 50)) <= redelivered, "messages never delivered before must come"
    # QoS 1 is at least once: a PUBACK still in the killed child's socket
    # buffer never reached Mosquitto, so recently acked messages may come
    # again (seen under CI load). Duplicates are allowed; losses are not.
    assert len(redelivered - set(range(50))) == 0
