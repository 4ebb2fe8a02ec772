"""An MQTT device's transport settings, from its config entry."""

from __future__ import annotations

import os
from pathlib import Path

from devices.transports import MqttConfig, TlsConfig
from edge._devices import MqttDevice

#: Under the data directory: one small file per MQTT client with its session's epoch.
SESSION_DIR = "mqtt-sessions"


def mqtt_config(d: MqttDevice, data_dir: str | os.PathLike[str] | None) -> MqttConfig:
    """The ``MqttConfig`` of device ``d``; sessions are kept under ``data_dir`` when given.

    The epoch of a session lives beside the log whose ``delivery`` headers name it, so a
    restarted service resumes both together.
    """
    return MqttConfig(host=d.host, port=d.port, topics=d.filters, qos=d.qos,
                      client_id=d.client_id, protocol=d.protocol, username=d.username,
                      password=d.password,
                      tls=TlsConfig(d.ca_file, d.cert_file, d.key_file) if d.tls else None,
                      max_payload=d.max_payload,
                      session_dir=None if data_dir is None else str(Path(data_dir) / SESSION_DIR))
