"""Device transports, codecs and the simulator (see README).

The public face of ``devices``: import from here, not from the private
modules. Keep ``__all__`` one name a line, sorted, so merges stay easy.
"""

from typing import TYPE_CHECKING

from devices._errors import (
    CodecConfigError,
    DecodeError,
    DeviceError,
    EncodeError,
    ReadingRejected,
    TransportError,
)
from devices._lazy import lazy_getattr
from devices._ranges import (
    EARLIEST_TIMESTAMP_MS,
    MAX_AHEAD_MS,
    RANGES,
    Range,
    check_reading,
    checked_event_value,
    ranges_markdown,
    with_overrides,
)
from devices._reading import (
    KINDS,
    Arrival,
    DeadLetter,
    Delivery,
    Reading,
    SpecialValue,
    TimeSource,
)
from devices._supervise import (
    DEVICE_RESTART,
    STREAMS_RESTART,
    UPLINK_RESTART,
    Failure,
    stop_child,
    supervise,
)
from devices.adapters import Adapter, W1Adapter
from devices.codecs import CODECS, CONVENTIONS, Codec, Convention
from devices.codecs.ds18b20 import decode_temperature_file, decode_w1_slave
from devices.codecs.gatt import (
    decode_blood_pressure,
    decode_float,
    decode_sfloat,
    decode_temperature_measurement,
    encode_blood_pressure,
    encode_float,
    encode_sfloat,
    encode_temperature_measurement,
)
from devices.codecs.text import TextTemperatureCodec
from devices.transports import (
    Backoff,
    ConnectionState,
    DeviceUnavailable,
    FixedLengthFraming,
    LineFraming,
    TransportClosed,
    W1Config,
    W1Sample,
    W1Transport,
)

if TYPE_CHECKING:
    from devices.adapters import MqttAdapter, SerialAdapter
    from devices.codecs.nmea import NmeaFixAssembler, encode_fix
    from devices.transports import (
        MqttConfig,
        MqttMessage,
        MqttTransport,
        SerialConfig,
        SerialTransport,
        TlsConfig,
    )

# What needs paho, pyserial or pynmeagps loads on first use (devices/_lazy.py).
__getattr__ = lazy_getattr(__name__, {
    "MqttAdapter": "devices.adapters", "SerialAdapter": "devices.adapters",
    "NmeaFixAssembler": "devices.codecs.nmea", "encode_fix": "devices.codecs.nmea",
    **dict.fromkeys(["MqttConfig", "MqttMessage", "MqttTransport", "SerialConfig", "SerialTransport",
                     "TlsConfig"], "devices.transports"),
})

__all__ = [
    "CODECS",
    "CONVENTIONS",
    "DEVICE_RESTART",
    "EARLIEST_TIMESTAMP_MS",
    "KINDS",
    "MAX_AHEAD_MS",
    "RANGES",
    "STREAMS_RESTART",
    "UPLINK_RESTART",
    "Adapter",
    "Arrival",
    "Backoff",
    "Codec",
    "CodecConfigError",
    "ConnectionState",
    "Convention",
    "DeadLetter",
    "DecodeError",
    "Delivery",
    "DeviceError",
    "DeviceUnavailable",
    "EncodeError",
    "Failure",
    "FixedLengthFraming",
    "LineFraming",
    "MqttAdapter",
    "MqttConfig",
    "MqttMessage",
    "MqttTransport",
    "NmeaFixAssembler",
    "Range",
    "Reading",
    "ReadingRejected",
    "SerialAdapter",
    "SerialConfig",
    "SerialTransport",
    "SpecialValue",
    "TextTemperatureCodec",
    "TimeSource",
    "TlsConfig",
    "TransportClosed",
    "TransportError",
    "W1Adapter",
    "W1Config",
    "W1Sample",
    "W1Transport",
    "check_reading",
    "checked_event_value",
    "decode_blood_pressure",
    "decode_float",
    "decode_sfloat",
    "decode_temperature_file",
    "decode_temperature_measurement",
    "decode_w1_slave",
    "encode_blood_pressure",
    "encode_fix",
    "encode_float",
    "encode_sfloat",
    "encode_temperature_measurement",
    "ranges_markdown",
    "stop_child",
    "supervise",
    "with_overrides",
]
