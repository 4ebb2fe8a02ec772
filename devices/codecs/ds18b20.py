"""DS18B20 1-wire thermometers as a Raspberry Pi's w1-gpio/w1-therm driver
shows them in sysfs.

``/sys/bus/w1/devices/28-<serial>/w1_slave`` holds two lines::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

and newer kernels also have a ``temperature`` file with just ``23125``
(millidegrees Celsius). Every way a read goes wrong is a ``DecodeError``.
"""

from __future__ import annotations

import re

from devices._errors import DecodeError, EncodeError
from devices._reading import Arrival, Reading
from devices.codecs._base import guard_decode

__all__ = [
    "TEMPERATURE_FILE_SCHEMA",
    "W1_SLAVE_SCHEMA",
    "Ds18b20TemperatureFileCodec",
    "Ds18b20W1SlaveCodec",
    "crc8_maxim",
    "decode_temperature_file",
    "decode_w1_slave",
    "encode_temperature_file",
    "encode_w1_slave",
]

W1_SLAVE_SCHEMA = "ds18b20.w1"
TEMPERATURE_FILE_SCHEMA = "ds18b20.w1.temperature"

MIN_C, MAX_C = -55.0, 125.0  # the datasheet's measuring range
POWER_ON_MILLI = 85000  # the scratchpad's reset value: no conversion happened

_CRC_LINE = re.compile(rb"^((?:[0-9a-f]{2} ){9}): crc=([0-9a-f]{2}) (YES|NO)$")
_T_LINE = re.compile(rb"^((?:[0-9a-f]{2} ){9})t=(-?\d+)$")


def crc8_maxim(data: bytes | bytearray) -> int:
    """Dallas/Maxim 1-wire CRC-8 (polynomial x^8+x^5+x^4+1, reflected 0x8C)."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def _check_milli(raw: bytes, milli: int, codec: str) -> float:
    if milli == POWER_ON_MILLI:
        raise DecodeError(
            raw,
            "85 °C is the DS18B20 power-on value: no conversion ran "
            "(check the sensor's power, or parasite-power wiring)",
            codec,
        )
    celsius = milli / 1000
    if not MIN_C <= celsius <= MAX_C:
        raise DecodeError(
            raw, f"{celsius} °C is outside the DS18B20 range {MIN_C}..{MAX_C} °C", codec
        )
    return celsius


@guard_decode(W1_SLAVE_SCHEMA)
def decode_w1_slave(data: bytes, device_id: str) -> Reading:
    """Decode the contents of a ``w1_slave`` file into a °C reading.

    Raises ``DecodeError`` on an empty read, a CRC marked ``NO`` or not
    matching the scratchpad, an all-zero scratchpad, the 85 °C power-on
    value, or a value outside -55..125 °C.
    """
    codec = W1_SLAVE_SCHEMA
    text = bytes(data).strip()
    if not text:
        raise DecodeError(
            data, "empty read (newer kernels return nothing when the CRC fails): retry", codec
        )
    lines = text.splitlines()
    if len(lines) != 2:
        raise DecodeError(data, f"expected 2 lines (crc line, t= line), got {len(lines)}", codec)
    crc_m = _CRC_LINE.match(lines[0].strip())
    t_m = _T_LINE.match(lines[1].strip())
    if crc_m is None:
        raise DecodeError(data, "line 1 is not '<9 hex bytes> : crc=XX YES|NO'", codec)
    if t_m is None:
        raise DecodeError(data, "line 2 is not '<9 hex bytes> t=<millidegrees>'", codec)
    if crc_m.group(3) == b"NO":
        raise DecodeError(data, "the driver marked the CRC as failed (crc=.. NO): noise on the bus, retry", codec)
    scratchpad = bytes.fromhex(crc_m.group(1).decode())
    if crc8_maxim(scratchpad) != 0:  # CRC over all 9 bytes including the CRC is 0
        raise DecodeError(data, "scratchpad CRC-8 does not match although the driver said YES", codec)
    if scratchpad == bytes(9):
        raise DecodeError(data, "all-zero scratchpad: the sensor did not answer (bus held low?)", codec)
    return Reading(
        device_id,
        "temperature",
        codec,
        {"temperature_c": _check_milli(data, int(t_m.group(2)), codec)},
    )


@guard_decode(TEMPERATURE_FILE_SCHEMA)
def decode_temperature_file(data: bytes, device_id: str) -> Reading:
    """Decode a ``temperature`` file (millidegrees °C) into a °C reading."""
    codec = TEMPERATURE_FILE_SCHEMA
    text = bytes(data).strip()
    if not text:
        raise DecodeError(data, "empty read (the kernel returns nothing when the CRC fails): retry", codec)
    if not re.fullmatch(rb"-?\d{1,7}", text):
        raise DecodeError(data, "expected an integer number of millidegrees Celsius", codec)
    return Reading(
        device_id, "temperature", codec, {"temperature_c": _check_milli(data, int(text), codec)}
    )


def _raw_and_milli(reading: Reading) -> tuple[int, int]:
    c = reading.values.get("temperature_c")
    if isinstance(c, bool) or not isinstance(c, int | float) or not -60 <= c <= 130:
        raise EncodeError(f"DS18B20: temperature_c must be a number of °C, got {c!r}")
    raw = round(c * 16)  # 12-bit resolution: 1/16 °C
    # The kernel computes raw * 1000 / 16 in C, which truncates toward zero.
    milli = abs(raw) * 1000 // 16 * (1 if raw >= 0 else -1)
    return raw, milli


def encode_w1_slave(reading: Reading, crc_ok: bool = True) -> bytes:
    """The ``w1_slave`` file a driver would show for this reading (12-bit).

    ``crc_ok=False`` writes the ``NO`` line a noisy bus gives (the simulator's
    fault injection).
    """
    raw, milli = _raw_and_milli(reading)
    pad = bytearray(raw.to_bytes(2, "little", signed=True) + bytes([0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10]))
    pad.append(crc8_maxim(pad))
    hexes = " ".join(f"{b:02x}" for b in pad)
    verdict = "YES" if crc_ok else "NO"
    return f"{hexes} : crc={pad[8]:02x} {verdict}\n{hexes} t={milli}\n".encode()


def encode_temperature_file(reading: Reading) -> bytes:
    """The ``temperature`` file for this reading: millidegrees and a newline."""
    return f"{_raw_and_milli(reading)[1]}\n".encode()


class Ds18b20W1SlaveCodec:
    """Codec object for ``w1_slave`` file contents (one read = one frame)."""

    name = W1_SLAVE_SCHEMA

    def decode(self, frame: bytes, device_id: str, arrival: Arrival | None = None) -> list[Reading]:
        return [decode_w1_slave(frame, device_id)]

    def encode(self, reading: Reading) -> bytes:
        return encode_w1_slave(reading)


class Ds18b20TemperatureFileCodec:
    """Codec object for the ``temperature`` file (one read = one frame)."""

    name = TEMPERATURE_FILE_SCHEMA

    def decode(self, frame: bytes, device_id: str, arrival: Arrival | None = None) -> list[Reading]:
        return [decode_temperature_file(frame, device_id)]

    def encode(self, reading: Reading) -> bytes:
        return encode_temperature_file(reading)
