"""Adapters: a transport plus a codec, feeding readings to an async sink.

A new device kind is one module here and one line in ``ADAPTERS``.
"""

from devices.adapters._base import Adapter, AdapterStats, DeadLetterSink, Sink
from devices.adapters.mqtt import MqttAdapter
from devices.adapters.serial import SerialAdapter
from devices.adapters.w1 import W1Adapter

#: Adapter kinds by name, as a config file names them.
ADAPTERS: dict[str, type[Adapter]] = {
    SerialAdapter.kind: SerialAdapter,
    MqttAdapter.kind: MqttAdapter,
    W1Adapter.kind: W1Adapter,
}

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterStats",
    "DeadLetterSink",
    "MqttAdapter",
    "SerialAdapter",
    "Sink",
    "W1Adapter",
]
