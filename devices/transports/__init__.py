"""Transports: async iterators of frames from serial ports, MQTT and 1-wire sysfs.

They deal in bytes (or MQTT messages) only and know nothing of codecs.
"""

from typing import TYPE_CHECKING

from devices._lazy import lazy_getattr
from devices.transports._errors import DeviceUnavailable, TransportClosed, TransportError
from devices.transports._framing import FixedLengthFraming, Framing, LineFraming
from devices.transports._limits import DEFAULT_MAX_PAYLOAD
from devices.transports._state import Backoff, ConnectionState, StateCallback
from devices.transports.w1 import W1Config, W1Sample, W1Transport

if TYPE_CHECKING:
    from devices.transports.mqtt import MqttConfig, MqttMessage, MqttStats, MqttTransport, TlsConfig
    from devices.transports.serial import SerialConfig, SerialStats, SerialTransport

# paho and pyserial load with the first use of their transport (devices/_lazy.py).
_MQTT, _SERIAL = "devices.transports.mqtt", "devices.transports.serial"
__getattr__ = lazy_getattr(__name__, {
    "MqttConfig": _MQTT, "MqttMessage": _MQTT, "MqttStats": _MQTT, "MqttTransport": _MQTT,
    "TlsConfig": _MQTT, "SerialConfig": _SERIAL, "SerialStats": _SERIAL, "SerialTransport": _SERIAL,
})

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "Backoff",
    "ConnectionState",
    "DeviceUnavailable",
    "FixedLengthFraming",
    "Framing",
    "LineFraming",
    "MqttConfig",
    "MqttMessage",
    "MqttStats",
    "MqttTransport",
    "SerialConfig",
    "SerialStats",
    "SerialTransport",
    "StateCallback",
    "TlsConfig",
    "TransportClosed",
    "TransportError",
    "W1Config",
    "W1Sample",
    "W1Transport",
]
