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
from devices._reading import KINDS, DeadLetter, Reading, SpecialValue
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

__all__ = [
    "CODECS",
    "CONVENTIONS",
    "KINDS",
    "Codec",
    "CodecConfigError",
    "Convention",
    "DeadLetter",
    "DecodeError",
    "DeviceError",
    "EncodeError",
    "NmeaFixAssembler",
    "Reading",
    "SpecialValue",
    "TextTemperatureCodec",
    "TransportError",
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
