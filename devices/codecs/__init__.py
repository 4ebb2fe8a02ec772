"""Codecs: pure functions of bytes and readings, and the registries a config
names them by.

``CODECS`` maps a name to a codec factory (call it, with its options, to get
a fresh codec object: NMEA's is stateful, one per device). ``CONVENTIONS``
does the same for MQTT payload conventions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devices.codecs._base import Codec, Convention, guard_decode
from devices.codecs.ds18b20 import Ds18b20TemperatureFileCodec, Ds18b20W1SlaveCodec
from devices.codecs.gatt import GattBloodPressureCodec, GattTemperatureCodec
from devices.codecs.mqtt_conventions import CONVENTIONS
from devices.codecs.text import TextTemperatureCodec

__all__ = ["CODECS", "CONVENTIONS", "Codec", "Convention", "guard_decode"]

#: Codec name (as a config writes it) -> factory of a codec object.
CODECS: dict[str, Callable[..., Codec]] = {
    "ds18b20.w1": Ds18b20W1SlaveCodec,
    "ds18b20.w1.temperature": Ds18b20TemperatureFileCodec,
    "gatt.0x2A1C": GattTemperatureCodec,
    "gatt.0x2A35": GattBloodPressureCodec,
    "nmea0183": lambda *args, **options: _nmea().NmeaFixAssembler(*args, **options),
    "text": TextTemperatureCodec,
}


def _nmea() -> Any:
    """devices.codecs.nmea, imported with the first NMEA codec: it loads pynmeagps."""
    import devices.codecs.nmea

    return devices.codecs.nmea
