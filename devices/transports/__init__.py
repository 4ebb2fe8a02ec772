"""Transports: async iterators of frames from serial ports, MQTT and 1-wire sysfs.

They deal in bytes (or MQTT messages) only and know nothing of codecs.
"""

from devices.transports._errors import DeviceUnavailable, TransportClosed, TransportError
from devices.transports._framing import FixedLengthFraming, Framing, LineFraming
from devices.transports._state import Backoff, ConnectionState, StateCallback
from devices.transports.mqtt import MqttConfig, MqttMessage, MqttStats, MqttTransport, TlsConfig
from devices.transports.serial import SerialConfig, SerialStats, SerialTransport
from devices.transports.w1 import W1Config, W1Sample, W1Transport

__all__ = [
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
