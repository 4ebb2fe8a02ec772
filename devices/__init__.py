"""Device transports, codecs and the simulator (see README).

The public face of ``devices``: import from here, not from the private
modules. Keep ``__all__`` one name a line, sorted, so merges stay easy.
"""

from devices._errors import (
    CodecConfigError,
    DecodeError,
    DeviceError,
    EncodeError,
    TransportError,
)
from devices._reading import KINDS, DeadLetter, Delivery, Reading, SpecialValue
from devices.adapters import ADAPTERS, Adapter, MqttAdapter, SerialAdapter, W1Adapter
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
from devices.codecs.nmea import NmeaFixAssembler, encode_fix
from devices.codecs.text import TextTemperatureCodec
from devices.transports import (
    Backoff,
    ConnectionState,
    DeviceUnavailable,
    FixedLengthFraming,
    LineFraming,
    MqttConfig,
    MqttMessage,
    MqttTransport,
    SerialConfig,
    SerialTransport,
    TlsConfig,
    TransportClosed,
    W1Config,
    W1Sample,
    W1Transport,
)

__all__ = [
    "ADAPTERS",
    "CODECS",
    "CONVENTIONS",
    "KINDS",
    "Adapter",
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
    "FixedLengthFraming",
    "LineFraming",
    "MqttAdapter",
    "MqttConfig",
    "MqttMessage",
    "MqttTransport",
    "NmeaFixAssembler",
    "Reading",
    "SerialAdapter",
    "SerialConfig",
    "SerialTransport",
    "SpecialValue",
    "TextTemperatureCodec",
    "TlsConfig",
    "TransportClosed",
    "TransportError",
    "W1Adapter",
    "W1Config",
    "W1Sample",
    "W1Transport",
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
]
