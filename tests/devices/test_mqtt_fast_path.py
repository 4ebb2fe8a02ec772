"""The MQTT transport's cheaper receive path and batched PUBACKs (devices/transports/_paho_client).

Against a real Mosquitto, QoS 1, manual ack: many packets read at once (and packets split
across reads) arrive whole and in order; acks made with ``ack_nowait`` in one turn of the
loop leave together and none is lost at close; acks of a connection that is gone are not
sent, and the broker redelivers those messages; bytes of a dead connection are never
parsed as part of the next one. Beside them, the PUBACK bytes against paho's own ``ack``.
"""

from __future__ import annotations

import asyncio

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.transports import Backoff, ConnectionState, MqttConfig, MqttMessage, MqttTransport
from devices.transports._paho_client import READ_SIZE, BufferedClient
from devices.transports._paho_private import attach_socket, socket_of
from tests.devices.test_mqtt import publish

pytestmark = pytest.mark.mqtt
FAST = Backoff(initial=0.05, maximum=0.2)


def cfg(broker, client_id: str, **kw) -> MqttConfig:  # type: ignore[no-untyped-def]
    return MqttConfig(broker.host, broker.port, topics=("fast/#",), client_id=client_id,
                      backoff=FAST, **kw)


async def take(t: MqttTransport, n: int, *, ack: bool = False, timeout: float = 20.0) -> list[MqttMessage]:
    """The next `n` messages; with `ack`, each is acked with ack_nowait as it is taken (the
    broker sends its backlog only as acks flow: Mosquitto's window is 20)."""
    out: list[MqttMessage] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await anext(t))
            if ack:
                out[-1].ack_nowait()
    return out


async def next_payload(config: MqttConfig, broker) -> bytes:  # type: ignore[no-untyped-def]
    """What a new session of `config` gets first, after a marker is published."""
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, broker, [("fast/marker", b"marker")])
        [m] = await take(t, 1)
        await m.ack()
        return m.payload


def test_the_transport_uses_the_buffered_client():
    t = MqttTransport(MqttConfig("127.0.0.1", client_id="x"))
    assert isinstance(t._make_client(), BufferedClient)


def test_send_pubacks_writes_what_paho_ack_writes():
    # A fake beside the real tests: no broker, only the bytes queued for the socket.
    ours = BufferedClient(CallbackAPIVersion.VERSION2, client_id="a", manual_ack=True)
    theirs = paho.Client(CallbackAPIVersion.VERSION2, client_id="b", manual_ack=True)
    mids = [1, 258, 65535]
    ours.send_pubacks(mids)
    for mid in mids:
        theirs.ack(mid, 1)
    assert [p["packet"] for p in ours._out_packet] == [b"".join(p["packet"] for p in theirs._out_packet)]
    assert ours.send_pubacks([]) == paho.MQTT_ERR_SUCCESS and len(ours._out_packet) == 1


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_a_burst_read_at_once_arrives_whole_in_order_and_every_ack_lands(mosquitto, protocol):
    config = cfg(mosquitto, f"fast-burst-{protocol}", protocol=protocol)
    # Small messages (hundreds per read) and a few larger than one read, split across reads.
    payloads = [(b"x" * (READ_SIZE + 1000) if i % 500 == 250 else b"%d" % i) for i in range(2000)]
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, mosquitto, [(f"fast/{i % 7}", p) for i, p in enumerate(payloads)])
        # The last acks are still queued for this turn of the loop: close() must send them.
        got = await take(t, len(payloads), ack=True)
    assert [m.payload for m in got] == payloads
    assert [m.topic for m in got] == [f"fast/{i % 7}" for i in range(len(payloads))]
    assert {(m.qos, m.retain, m.duplicate) for m in got} == {(1, False, False)}
    assert t.stats.acks == len(payloads) and t.stats.stale_acks == 0
    assert await next_payload(config, mosquitto) == b"marker"  # nothing came back


async def test_retained_flag_and_topic_come_through_the_direct_path(mosquitto):
    publish(mosquitto, [("fast/kept", b"old")], qos=1)  # no subscriber yet: not retained
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="fast-retainer")
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    try:
        c.publish("fast/ünï", b"kept", qos=1, retain=True).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()
    async with MqttTransport(cfg(mosquitto, "fast-retain")) as t:
        [m] = await take(t, 1)
        await m.ack()
    assert (m.topic, m.payload, m.retain, m.qos) == ("fast/ünï", b"kept", True, 1)


async def test_acks_of_a_dead_connection_are_not_sent_and_the_messages_come_again(mosquitto):
    config = cfg(mosquitto, "fast-restart")
    payloads = [b"%d" % i for i in range(300)]
    window = 20  # Mosquitto's max_inflight_messages: sent before any ack
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, mosquitto, [("fast/a", p) for p in payloads])
        before = await take(t, window)  # held, not acked, while the broker restarts
        await asyncio.to_thread(mosquitto.restart)
        await t.wait_state(ConnectionState.DISCONNECTED, timeout=10)
        await t.wait_state(ConnectionState.CONNECTED, timeout=10)
        for m in before:
            m.ack_nowait()  # their packet ids belong to the old connection
        await asyncio.sleep(0)  # the turn of the loop that sends queued acks
        assert t.stats.stale_acks == window and t.stats.acks == 0
        again = await take(t, len(payloads), ack=True)  # copies first, then the rest, whole
    assert [m.payload for m in before] == payloads[:window]
    assert [m.payload for m in again] == payloads
    assert [m.duplicate for m in again] == [True] * window + [False] * (len(payloads) - window)
    assert t.stats.acks == len(payloads)
    assert await next_payload(config, mosquitto) == b"marker"


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish_packet(topic: str, payload: bytes, qos: int, retain: bool, dup: bool, mid: int) -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (mid.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | (0x08 if dup else 0) | (qos << 1) | int(retain)]) + _remaining_length(len(body)) + body


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_packets_split_anywhere_across_reads_come_out_whole(chunk):
    # A socketpair stands in for the broker's connection: the bytes arrive in `chunk`-sized
    # reads, so a packet's command, length bytes or body may be cut anywhere.
    import socket

    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="split", manual_ack=True)
    got: list[tuple] = []
    client.on_publish_fast = lambda *args: got.append(args)
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    attach_socket(client, ours)
    # (topic, payload, qos, retain, dup, mid): as on_publish_fast gets them
    sent = [("a/b", b"", 0, False, False, 0), ("ü/x", b"1" * 200, 1, False, True, 7),
            ("big", bytes(range(256)) * 80, 1, True, False, 65535), ("c", b"last", 1, False, False, 1)]
    stream = b"".join(_publish_packet(*m) for m in sent[:2]) + b"\xd0\x00"  # a PINGRESP between
    stream += b"".join(_publish_packet(*m) for m in sent[2:])
    try:
        for i in range(0, len(stream), chunk):
            broker.sendall(stream[i:i + chunk])
            assert client.loop_read() == paho.MQTT_ERR_SUCCESS
        assert client.loop_read() == paho.MQTT_ERR_SUCCESS  # nothing more to read: no error
    finally:
        attach_socket(client, None)
        ours.close()
        broker.close()
    assert got == sent
    assert not client._parts


def test_a_length_of_more_than_four_bytes_or_a_closed_socket_ends_the_connection():
    import socket

    for stream, expected in [(b"\x30\xff\xff\xff\xff\x01", paho.MQTT_ERR_PROTOCOL), (b"", paho.MQTT_ERR_CONN_LOST)]:
        client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="bad", manual_ack=True)
        got: list[tuple] = []
        client.on_publish_fast = lambda *args, got=got: got.append(args)
        ours, broker = socket.socketpair()
        ours.setblocking(False)
        attach_socket(client, ours)
        try:
            broker.sendall(_publish_packet("ok", b"1", 1, False, False, 5) + stream)
            if not stream:
                assert client.loop_read() == paho.MQTT_ERR_SUCCESS
                broker.shutdown(socket.SHUT_WR)  # the broker hangs up
            assert client.loop_read() == expected
        finally:
            ours.close()
            broker.close()
        assert got == [("ok", b"1", 1, False, False, 5)]  # what came before is handed on
        assert socket_of(client) is None and not client._parts  # paho closed it; nothing kept
