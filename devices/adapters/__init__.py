"""Adapters: a transport plus a codec, feeding readings to an async sink.

A new device kind is one module here (and its transport); the service builds
each adapter from a device's config in one line of its table (edge/_runner.py).
"""

from typing import TYPE_CHECKING

from devices._lazy import lazy_getattr
from devices.adapters._base import (
    Adapter,
    AdapterStats,
    Clock,
    DeadLetterSink,
    Sink,
    system_arrival,
)
from devices.adapters.w1 import W1Adapter

if TYPE_CHECKING:
    from devices.adapters.mqtt import MqttAdapter
    from devices.adapters.serial import SerialAdapter

# paho and pyserial load with the first adapter of their kind (devices/_lazy.py).
__getattr__ = lazy_getattr(__name__, {"MqttAdapter": "devices.adapters.mqtt",
                                      "SerialAdapter": "devices.adapters.serial"})

__all__ = [
    "Adapter",
    "AdapterStats",
    "Clock",
    "DeadLetterSink",
    "MqttAdapter",
    "SerialAdapter",
    "Sink",
    "W1Adapter",
    "system_arrival",
]
