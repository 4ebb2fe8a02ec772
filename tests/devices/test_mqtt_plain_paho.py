"""The MQTT fast path's guard, and the plain-paho fallback it falls back to, for real.

``_paho_private.probe()`` checks on a real paho client and a socket pair that paho's
private structures still behave as the fast path relies on. A paho whose internals moved
(emulated here by changing one of them on paho's class) fails it, with a reason, and the
transport then makes a plain ``paho.Client``. ``EDGE_MQTT_FAST_PATH=0`` forces that
fallback, and the fallback is run end to end against a real Mosquitto: messages arrive
in order, every ack lands, and what was not acked (not durable yet) comes again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest

from devices.transports import (
    Backoff,
    ConnectionState,
    MqttConfig,
    MqttMessage,
    MqttTransport,
    _paho_client,
    _paho_private,
)
from devices.transports._paho_client import READ_SIZE, BufferedClient, Client
from tests.devices.test_mqtt import publish

FAST = Backoff(initial=0.05, maximum=0.2)


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    """Each test decides the fast path anew (the answer is cached per process)."""
    _paho_client.fast_path_problem.cache_clear()
    _paho_client._say_once.cache_clear()
    yield
    _paho_client.fast_path_problem.cache_clear()
    _paho_client._say_once.cache_clear()


@pytest.fixture
def plain_paho(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_paho_client.ENV_FAST_PATH, "0")


def test_the_installed_paho_passes_the_probe() -> None:
    assert _paho_private.probe() is None
    assert _paho_client.use_fast_path()
    assert isinstance(MqttTransport(MqttConfig("127.0.0.1", client_id="x"))._make_client(),
                      BufferedClient)


def _swallow_queue(self, command, packet, mid, qos, info=None):  # type: ignore[no-untyped-def]
    return paho.MQTT_ERR_SUCCESS  # a paho that queues elsewhere: nothing is written


def _init_with_another_reader(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _INIT(self, *args, **kwargs)
    self._in_packet["varint"] = 0  # a paho whose reader keeps another state


_INIT = paho.Client.__init__

# What a future paho might do to the names the fast path uses, and what the probe says.
MOVED = {
    "recv renamed": (lambda m: m.delattr(paho.Client, "_sock_recv"), "_sock_recv"),
    "queue writes elsewhere": (lambda m: m.setattr(paho.Client, "_packet_queue", _swallow_queue),
                               "queued PUBACK"),
    "reader state reshaped": (lambda m: m.setattr(paho.Client, "__init__", _init_with_another_reader),
                              "reader state"),
    "dispatcher renamed": (lambda m: m.delattr(paho.Client, "_packet_handle"), "_packet_handle"),
    "keepalive clock gone": (lambda m: m.delattr(paho, "time_func"), "time_func"),
}


@pytest.mark.parametrize("change", list(MOVED))
def test_a_paho_whose_internals_moved_gets_the_plain_client(
        change: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    breaking, named = MOVED[change]
    breaking(monkeypatch)
    problem = _paho_private.probe()
    assert problem is not None and named in problem
    with caplog.at_level(logging.WARNING, logger=_paho_client.__name__):
        assert not _paho_client.use_fast_path()
        assert not _paho_client.use_fast_path()
    monkeypatch.undo()  # the plain client is paho's own: it needs paho whole
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "MQTT fast path off" in warnings[0] and named in warnings[0]
    client = MqttTransport(MqttConfig("127.0.0.1", client_id="x"))._make_client()
    assert type(client) is Client  # decided once per process, as the first transport found


def test_the_environment_turns_the_fast_path_off(plain_paho: None) -> None:
    assert not _paho_client.use_fast_path()
    client = MqttTransport(MqttConfig("127.0.0.1", client_id="x"))._make_client()
    assert type(client) is Client and not isinstance(client, BufferedClient)


def cfg(broker, client_id: str, **kw) -> MqttConfig:  # type: ignore[no-untyped-def]
    return MqttConfig(broker.host, broker.port, topics=("plain/#",), client_id=client_id,
                      backoff=FAST, **kw)


async def take(t: MqttTransport, n: int, timeout: float = 20.0) -> list[MqttMessage]:
    out: list[MqttMessage] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await anext(t))
    return out


async def nothing_more(config: MqttConfig, broker) -> bool:  # type: ignore[no-untyped-def]
    """Whether a new connection of `config`'s session gets a marker first (nothing held)."""
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, broker, [("plain/marker", b"marker")])
        [m] = await take(t, 1)
        await m.ack()
        return m.payload == b"marker"


@pytest.mark.mqtt
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_plain_paho_delivers_in_order_and_every_ack_lands(plain_paho, mosquitto, protocol):  # type: ignore[no-untyped-def]
    config = cfg(mosquitto, f"plain-burst-{protocol}", protocol=protocol)
    payloads = [(b"x" * (READ_SIZE + 1000) if i % 200 == 100 else b"%d" % i) for i in range(600)]
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        assert type(t._client) is Client
        await asyncio.to_thread(publish, mosquitto, [(f"plain/{i % 5}", p) for i, p in enumerate(payloads)])
        got: list[MqttMessage] = []
        async with asyncio.timeout(30):
            while len(got) < len(payloads):
                got.append(await anext(t))
                got[-1].ack_nowait()  # Mosquitto sends its backlog only as acks flow
    assert [m.payload for m in got] == payloads
    assert t.stats.acks == len(payloads)
    assert await nothing_more(config, mosquitto), "an acked message came again"


@pytest.mark.mqtt
async def test_plain_paho_redelivers_what_was_not_acked(plain_paho, mosquitto):  # type: ignore[no-untyped-def]
    config = cfg(mosquitto, "plain-redeliver")
    payloads = [b"%d" % i for i in range(10)]
    async with MqttTransport(config) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=5)
        await asyncio.to_thread(publish, mosquitto, [("plain/a", p) for p in payloads])
        got = await take(t, 10)
        for m in got[:6]:  # durably accepted: acked; the rest never were
            await m.ack()
    async with MqttTransport(config) as t:
        again = await take(t, 4)
        for m in again:
            await m.ack()
    assert [m.payload for m in again] == payloads[6:]
    assert all(m.duplicate for m in again)
    assert await nothing_more(config, mosquitto)
