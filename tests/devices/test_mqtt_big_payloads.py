"""Big MQTT payloads: parsed in linear work, refused early over ``max_payload``.

A packet split over many 64 KiB reads was joined on every read (quadratic: 100 MB took
86 s of CPU while the device stalled). Here work is counted, not timed:
``BufferedClient.copied_bytes`` counts every byte the reader copies. A payload over the
device's ``max_payload`` is never held: its head and size are handed on, the rest is
dropped as it arrives. Then, against a real Mosquitto, the transport hands the head on
and the adapter dead-letters it with its size and acknowledges it.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator

import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices._reading import DeadLetter
from devices.adapters.mqtt import MqttAdapter
from devices.codecs import CONVENTIONS
from devices.transports import Backoff, ConnectionState, MqttConfig, MqttTransport
from devices.transports._paho_client import OVERSIZE_HEAD, READ_SIZE, BufferedClient
from tests.devices.test_mqtt import publish
from tests.devices.test_mqtt_fast_path import _publish_packet, _remaining_length

FAST = Backoff(initial=0.05, maximum=0.2)
MiB = 1024 * 1024


def client(max_payload: int, protocol: int | None = None) -> tuple[BufferedClient, list, list]:
    kw = {"protocol": protocol} if protocol else {}
    c = BufferedClient(CallbackAPIVersion.VERSION2, client_id="big", manual_ack=True, **kw)
    c.max_payload = max_payload
    got: list[tuple] = []
    refused: list[tuple] = []
    c.on_publish_fast = lambda *args: got.append(args)
    c.on_oversize = lambda *args: refused.append(args)
    return c, got, refused


def reads(topic: str, size: int, mid: int) -> Iterator[bytes]:
    """A QoS 1 PUBLISH of `size` payload bytes (byte i is i % 251) in READ_SIZE reads,
    made as it is read so the test itself never holds it whole."""
    t = topic.encode()
    head = t.__len__().to_bytes(2, "big") + t + mid.to_bytes(2, "big")
    stream = bytes([0x32]) + _remaining_length(len(head) + size) + head
    pattern = bytes(i % 251 for i in range(251)) * (READ_SIZE // 251 + 2)
    sent = 0
    while sent < size:
        n = min(READ_SIZE - len(stream), size - sent)
        offset = sent % 251
        stream += pattern[offset:offset + n]
        sent += n
        yield stream
        stream = b""


def expected_payload(size: int) -> bytes:
    return (bytes(i % 251 for i in range(251)) * (size // 251 + 1))[:size]


@pytest.mark.parametrize("size", [MiB, 8 * MiB])
def test_a_big_payload_costs_linear_copies(size: int) -> None:
    c, got, refused = client(max_payload=16 * MiB)
    for data in reads("big/x", size, 9):
        assert c.feed(data) == 0
    assert c.feed(_publish_packet("next", b"1", 1, False, False, 10)) == 0
    assert [(g[0], len(g[1]), g[5]) for g in got] == [("big/x", size, 9), ("next", 1, 10)]
    assert got[0][1] == expected_payload(size) and not refused
    # One join when the last byte is in, one copy of the payload out, and the first read's
    # stash: about 2x. Joining on every read was size^2 / (2 x 64 KiB): 512 MiB for 8 MiB.
    assert c.copied_bytes <= 2 * size + 2 * READ_SIZE, c.copied_bytes


def test_a_payload_over_max_payload_is_refused_as_it_arrives() -> None:
    c, got, refused = client(max_payload=64 * 1024)
    size = 32 * MiB
    tracemalloc.start()
    try:
        for data in reads("big/y", size, 11):
            assert c.feed(data) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert c.feed(_publish_packet("after", b"ok", 1, False, False, 12)) == 0
    assert refused == [("big/y", expected_payload(OVERSIZE_HEAD), size, 1, False, False, 11)]
    assert got == [("after", b"ok", 1, False, False, 12)], "the stream goes on after it"
    assert c.copied_bytes < 4 * READ_SIZE, c.copied_bytes  # its head, never its body
    assert peak < 8 * MiB, peak  # a few reads' worth, not 32 MiB


@pytest.mark.parametrize("protocol", [4, 5])  # MQTTv311, MQTTv5 (properties before payload)
def test_an_oversize_payload_inside_one_read_is_refused_too(protocol: int) -> None:
    c, got, refused = client(max_payload=100, protocol=protocol)
    t = b"small/z"
    props = b"\x00" if protocol == 5 else b""
    body = len(t).to_bytes(2, "big") + t + (3).to_bytes(2, "big") + props + b"p" * 500
    assert c.feed(bytes([0x32]) + _remaining_length(len(body)) + body) == 0
    assert refused == [("small/z", b"p" * 500, 500, 1, False, False, 3)] and not got


@pytest.mark.mqtt
async def test_an_oversize_message_is_dead_lettered_with_its_size_and_acked(mosquitto) -> None:  # type: ignore[no-untyped-def]
    config = MqttConfig(mosquitto.host, mosquitto.port, topics=("zigbee2mqtt/#",),
                        client_id="edge-big", backoff=FAST, max_payload=64 * 1024)
    letters: list[DeadLetter] = []
    readings = []

    async def sink(reading):  # type: ignore[no-untyped-def]
        readings.append(reading)

    async def dead(letter: DeadLetter) -> None:
        letters.append(letter)

    transport = MqttTransport(config)
    adapter = MqttAdapter("rooms", transport, CONVENTIONS["zigbee2mqtt"](), sink, dead)
    async with adapter:
        await transport.wait_state(ConnectionState.CONNECTED, timeout=5)
        big = b'{"temperature": 21.5, "pad": "' + b"x" * (3 * MiB) + b'"}'
        await asyncio.to_thread(publish, mosquitto, [("zigbee2mqtt/room-1", big),
                                                     ("zigbee2mqtt/room-2", b'{"temperature": 22}')])
        task = asyncio.create_task(adapter.run())
        async with asyncio.timeout(10):
            while not readings:
                await asyncio.sleep(0.02)
        await adapter.close()
        await task
    assert transport.stats.oversize == 1 and adapter.stats.decode_error_total == 1
    [letter] = letters
    assert letter.raw == big[:OVERSIZE_HEAD]
    assert f"payload of {len(big)} bytes is over max_payload (65536 bytes)" in letter.reason
    assert [r.device_id for r in readings] == ["room-2"]
    # Acknowledged: a new session of the same client gets nothing back.
    async with MqttTransport(config) as again:
        await again.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, mosquitto, [("zigbee2mqtt/marker", b"{}")])
        async with asyncio.timeout(5):
            m = await anext(again)
        await m.ack()
    assert m.topic == "zigbee2mqtt/marker"


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_an_oversize_payload_cut_anywhere_is_refused_with_its_head(chunk: int) -> None:
    # Its command, length, topic or head may arrive a byte at a time: it is looked at again
    # until its head is in, then the rest is dropped as it comes.
    c, got, refused = client(max_payload=2000)
    payload = bytes(range(256)) * 20  # 5,120 bytes
    stream = (_publish_packet("t" * 300, payload, 1, True, True, 77)
              + _publish_packet("next", b"n", 1, False, False, 78))
    for i in range(0, len(stream), chunk):
        assert c.feed(stream[i:i + chunk]) == 0
    assert refused == [("t" * 300, payload[:OVERSIZE_HEAD], len(payload), 1, True, True, 77)]
    assert got == [("next", b"n", 1, False, False, 78)] and not c._parts
