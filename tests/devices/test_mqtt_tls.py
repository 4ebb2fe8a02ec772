"""MQTT over TLS against a real Mosquitto with a TLS listener and a throwaway PKI.

The broker's certificate names ``localhost`` only and is signed by a test CA; the
listener asks for a client certificate. A good CA, client certificate and hostname
connect and receive; a wrong CA, a wrong hostname or a missing client certificate do
not connect and say why in ``last_error``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from devices.transports import (
    Backoff,
    ConnectionState,
    MqttConfig,
    MqttTransport,
    TlsConfig,
    TransportError,
)
from tests.devices.test_mqtt import publish, take
from tests.fixtures.mosquitto import Mosquitto, TlsFiles, make_tls_files

pytestmark = pytest.mark.mqtt
FAST = Backoff(initial=0.05, maximum=0.2)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(tmp_path: Path, pki: TlsFiles):  # type: ignore[no-untyped-def]
    broker = Mosquitto(tmp_path / "mosquitto", tls=pki, require_certificate=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def config(broker, pki: TlsFiles, host: str = "localhost", **tls) -> MqttConfig:  # type: ignore[no-untyped-def]
    files = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert),
             "key_file": str(pki.client_key)} | tls
    return MqttConfig(host, broker.tls_port, topics=("tls/#",), client_id="edge-tls",
                      username="edge", password="4711", tls=TlsConfig(**files), backoff=FAST)


async def test_ca_client_certificate_and_hostname_connect_and_receive(tls_broker, pki) -> None:  # type: ignore[no-untyped-def]
    async with MqttTransport(config(tls_broker, pki)) as t:
        await t.wait_state(ConnectionState.CONNECTED, timeout=10)
        await asyncio.to_thread(publish, tls_broker, [("tls/a", b"secret reading")])
        [m] = await take(t, 1)
        await m.ack()
    assert m.payload == b"secret reading" and t.last_error is None


async def failure(cfg: MqttConfig) -> str:
    async with MqttTransport(cfg) as t:
        async with asyncio.timeout(10):
            while t.last_error is None:
                await asyncio.sleep(0.02)
        assert t.state is not ConnectionState.CONNECTED
        return t.last_error


async def test_a_wrong_ca_fails_and_says_so(tls_broker, pki, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    error = await failure(config(tls_broker, pki, ca_file=str(pki.other_ca)))
    assert "certificate verify failed" in error, error
    assert f"not signed by ca_file {pki.other_ca}" in error, error
    assert "4711" not in error and "4711" not in caplog.text


async def test_a_wrong_hostname_fails_and_says_so(tls_broker, pki) -> None:  # type: ignore[no-untyped-def]
    error = await failure(config(tls_broker, pki, host="127.0.0.1"))
    assert "certificate verify failed" in error and "does not name '127.0.0.1'" in error, error


async def test_a_missing_client_certificate_fails_and_says_so(tls_broker, pki) -> None:  # type: ignore[no-untyped-def]
    error = await failure(config(tls_broker, pki, cert_file=None, key_file=None))
    # The broker's alert, or (if the socket closes before it is read) the likely cause.
    assert "client certificate" in error and "cert_file and key_file" in error, error


async def test_unreadable_tls_files_are_refused_at_start(tls_broker, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = MqttTransport(config(tls_broker, pki, ca_file=str(tmp_path / "absent.pem")))
    with pytest.raises(TransportError, match="absent.pem"):
        await t.start()
    await t.close()
