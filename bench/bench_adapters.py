"""Adapter throughput end to end (frames/s), beside a bare peer without our layers.

    .venv/bin/python bench/bench_adapters.py [--frames N] [--messages N]

pty: a writer thread feeds text temperature lines into a pseudo-terminal;
peer = a plain pyserial read-and-split loop; ours = SerialTransport alone and
SerialAdapter (text codec, no-op sink). MQTT: N QoS 1 messages (Zigbee2MQTT
JSON) queued at a real Mosquitto for a persistent session, then drained;
peer = a bare paho subscriber acking each message; ours = MqttAdapter acking
after its (no-op) sink, with the fast path and on plain paho (its fallback). Under a minute on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

import paho.mqtt.client as paho
import serial
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.adapters import MqttAdapter, SerialAdapter
from devices.codecs import CODECS, CONVENTIONS
from devices.transports import (
    ConnectionState,
    MqttConfig,
    MqttTransport,
    SerialConfig,
    SerialTransport,
)
from devices.transports._paho_client import ENV_FAST_PATH
from tests.fixtures.mosquitto import Mosquitto

LINE = b"21.53\n"


def _pty() -> tuple[int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    os.close(slave)
    return master, path


def _writer(master: int, n: int, started: threading.Event) -> threading.Thread:
    def run() -> None:
        started.wait()
        data = LINE * 1000
        for _ in range(n // 1000):
            view = memoryview(data)
            while view:
                view = view[os.write(master, view) :]

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def bench_raw_pyserial(n: int) -> float:
    master, path = _pty()
    port = serial.Serial(path, 115200, timeout=0.1)
    go = threading.Event()
    w = _writer(master, n, go)
    t0 = time.perf_counter()
    go.set()
    got, buf = 0, b""
    while got < n:
        buf += port.read(port.in_waiting or 1)
        *lines, buf = buf.split(b"\n")
        got += len(lines)
    dt = time.perf_counter() - t0
    w.join()
    port.close()
    os.close(master)
    return n / dt


async def bench_serial(n: int, with_adapter: bool) -> float:
    master, path = _pty()
    t = SerialTransport(SerialConfig(path, 115200))
    count = 0
    done = asyncio.Event()

    async def sink(_r) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    await t.start()
    await t.wait_state(ConnectionState.CONNECTED, 5)
    go = threading.Event()
    w = _writer(master, n, go)
    t0 = time.perf_counter()
    go.set()
    if with_adapter:
        adapter = SerialAdapter("room-1", t, CODECS["text"](), sink)
        task = asyncio.create_task(adapter.run())
        await done.wait()
    else:
        async for _ in t:
            count += 1
            if count == n:
                break
    dt = time.perf_counter() - t0
    await t.close()
    if with_adapter:
        await task
    await asyncio.to_thread(w.join)
    os.close(master)
    return n / dt


def _publish(broker: Mosquitto, n: int) -> None:
    c = paho.Client(CallbackAPIVersion.VERSION2)
    c.connect(broker.host, broker.port)
    c.loop_start()
    infos = [c.publish("zigbee2mqtt/room-1", b'{"temperature":21.5}', qos=1) for _ in range(n)]
    for i in infos:
        i.wait_for_publish(30)
    c.disconnect()
    c.loop_stop()


def bench_raw_paho(broker: Mosquitto, n: int, client_id: str) -> float:
    done = threading.Event()
    count = 0
    t0 = 0.0

    def on_message(client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        nonlocal count
        client.ack(msg.mid, msg.qos)
        count += 1
        if count == n:
            done.set()

    def on_connect(client, userdata, flags, rc, props) -> None:  # type: ignore[no-untyped-def]
        client.subscribe("zigbee2mqtt/#", qos=1)

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, manual_ack=True)
    c.on_message, c.on_connect = on_message, on_connect
    c.connect(broker.host, broker.port)
    c.loop_start()
    time.sleep(0.5)  # set-up only: let the session and subscription exist before publishing
    c.disconnect()
    c.loop_stop()
    _publish(broker, n)
    t0 = time.perf_counter()
    c.reconnect()
    c.loop_start()
    done.wait(60)
    dt = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return n / dt


async def bench_mqtt_adapter(broker: Mosquitto, n: int, client_id: str) -> float:
    cfg = MqttConfig(broker.host, broker.port, topics=("zigbee2mqtt/#",), client_id=client_id)
    async with MqttTransport(cfg) as t:
        await t.wait_state(ConnectionState.CONNECTED, 10)
    await asyncio.to_thread(_publish, broker, n)
    count = 0
    done = asyncio.Event()

    async def sink(_r) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    t = MqttTransport(cfg)
    adapter = MqttAdapter("mqtt", t, CONVENTIONS["zigbee2mqtt"](), sink)
    t0 = time.perf_counter()
    await t.start()
    task = asyncio.create_task(adapter.run())
    await asyncio.wait_for(done.wait(), 60)
    dt = time.perf_counter() - t0
    await adapter.close()
    await task
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--messages", type=int, default=20_000)
    args = ap.parse_args()
    rows = []
    raw = bench_raw_pyserial(args.frames)
    rows.append(("pty", "peer: raw pyserial read+split loop", raw))
    rows.append(("pty", "SerialTransport (frames only)", asyncio.run(bench_serial(args.frames, False))))
    rows.append(("pty", "SerialAdapter + text codec", asyncio.run(bench_serial(args.frames, True))))
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            mraw = bench_raw_paho(broker, args.messages, "bench-raw")
            rows.append(("mqtt", "peer: raw paho, manual ack", mraw))
            rows.append(("mqtt", "MqttAdapter + zigbee2mqtt, ack after sink",
                         asyncio.run(bench_mqtt_adapter(broker, args.messages, "bench-adapter"))))
            # The same adapter on plain paho: what a paho release that fails the fast
            # path's probe (or EDGE_MQTT_FAST_PATH=0) costs.
            os.environ[ENV_FAST_PATH] = "0"
            try:
                rows.append(("mqtt", "  the same on plain paho (fast path off)",
                             asyncio.run(bench_mqtt_adapter(broker, args.messages, "bench-plain"))))
            finally:
                del os.environ[ENV_FAST_PATH]
        finally:
            broker.stop()
    peers = {"pty": raw, "mqtt": mraw}
    print(f"{'path':<5} {'what':<44} {'frames/s':>10} {'vs peer':>8}")
    for path, what, rate in rows:
        print(f"{path:<5} {what:<44} {rate:>10,.0f} {rate / peers[path]:>8.2f}")


if __name__ == "__main__":
    main()
