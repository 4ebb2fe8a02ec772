"""MQTT devices over TLS in the real `edge run`, and the config keys that ask for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge._config import parse_config
from edge._errors import ConfigError
from tests.devices.test_mqtt import publish
from tests.edge._helpers import read_topic, start_edge, stop_edge, wait_for, write_config
from tests.edge.test_service_dedupe import device_health, mqtt_device
from tests.fixtures.mosquitto import Mosquitto, make_tls_files

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]


def device(extra: str) -> str:
    return ('edge_id = "e"\ndata_dir = "/tmp/e"\n'
            + mqtt_device("rooms", 8883, "zigbee2mqtt", "zigbee2mqtt/#", "temperature", extra))


def test_tls_keys_are_checked_with_file_key_and_cause(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    cfg = parse_config(device(f'tls = true\nca_file = "{ca}"\n'))
    assert (cfg.devices[0].tls, cfg.devices[0].ca_file) == (True, str(ca))
    with pytest.raises(ConfigError) as err:
        parse_config(device(f'ca_file = "{ca}"\n'))
    assert "devices[0].tls: expected true when ca_file is set" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config(device(f'tls = true\nca_file = "{tmp_path / "absent.pem"}"\n'))
    assert "devices[0].ca_file: expected the path of a readable PEM file, got" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config(device(f'tls = true\nkey_file = "{ca}"\n'))
    assert "devices[0].cert_file: expected the client certificate" in str(err.value)


def test_a_device_reads_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    pki = make_tls_files(tmp_path / "pki")
    broker = Mosquitto(tmp_path / "mosquitto", tls=pki, require_certificate=True)
    broker.start()
    extra = (f'tls = true\nca_file = "{pki.ca}"\ncert_file = "{pki.client_cert}"\n'
             f'key_file = "{pki.client_key}"\n')
    config, port = write_config(tmp_path, mqtt_device(
        "rooms", broker.tls_port, "zigbee2mqtt", "zigbee2mqtt/#", "temperature", extra
    ).replace('host = "127.0.0.1"', 'host = "localhost"'))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: device_health(port, "rooms").get("connected"), 30, "connected over TLS")
        publish(broker, [("zigbee2mqtt/room-1", json.dumps({"temperature": 21.5}).encode())])
        wait_for(lambda: read_topic(tmp_path / "data", "temperature"), 30, "the reading")
        records = read_topic(tmp_path / "data", "temperature")
    finally:
        rc = stop_edge(edge, edge_log)
        broker.stop()
    assert rc == 0, edge_log.read_text()
    assert [json.loads(r.value)["temperature_c"] for r in records] == [21.5]
    assert f"localhost:{broker.tls_port}" in records[0].headers[0][1].decode()
