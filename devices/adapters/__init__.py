"""Adapters: a transport plus a codec, feeding readings to an async sink.

A new device kind is one module here (and its transport); the service builds
each adapter from a device's config in one line of its table (edge/_runner.py).
"""

from devices.adapters._base import (
    Adapter,
    AdapterStats,
    Clock,
    DeadLetterSink,
    Sink,
    system_arrival,
)
from devices.adapters.mqtt import MqttAdapter
from devices.adapters.serial import SerialAdapter
from devices.adapters.w1 import W1Adapter

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
