"""Bluetooth GATT health characteristics, little-endian throughout.

* IEEE-11073 16-bit SFLOAT and 32-bit FLOAT, with their special values
  (NaN, NRes, +INF, -INF, reserved) reported as ``SpecialValue``, never as
  numbers.
* Blood Pressure Measurement 0x2A35 (same layout as Intermediate Cuff
  Pressure 0x2A36): ``flags u8 | sys SFLOAT | dia SFLOAT | MAP SFLOAT |
  [Date Time 7 B] | [pulse SFLOAT] | [user id u8] | [status u16]``.
* Temperature Measurement 0x2A1C: ``flags u8 | FLOAT | [Date Time] | [type u8]``.

Pressures are normalised to mmHg, temperatures to °C; a device that sent
kPa or °F keeps its original numbers beside them (``systolic_kpa``,
``temperature_f``) and says so in ``unit_original``, so encoding a decoded
reading gives the device's numbers back, not a twice-rounded conversion.
"""

from __future__ import annotations

import binascii
import math
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from devices._errors import DecodeError, EncodeError
from devices._reading import Arrival, Reading, SpecialValue
from devices.codecs._base import guard_decode

__all__ = [
    "BLOOD_PRESSURE_SCHEMA",
    "TEMPERATURE_SCHEMA",
    "GattBloodPressureCodec",
    "GattTemperatureCodec",
    "decode_blood_pressure",
    "decode_float",
    "decode_sfloat",
    "decode_temperature_measurement",
    "encode_blood_pressure",
    "encode_float",
    "encode_sfloat",
    "encode_temperature_measurement",
    "kpa_to_mmhg",
    "mmhg_to_kpa",
]

BLOOD_PRESSURE_SCHEMA = "gatt.0x2A35"
TEMPERATURE_SCHEMA = "gatt.0x2A1C"

# 760 mmHg = 101.325 kPa by definition of the standard atmosphere.
_MMHG_PER_KPA = 760 / 101.325

_SFLOAT_SPECIAL = {
    0x07FF: SpecialValue.NAN,
    0x0800: SpecialValue.NRES,
    0x07FE: SpecialValue.POSITIVE_INFINITY,
    0x0802: SpecialValue.NEGATIVE_INFINITY,
    0x0801: SpecialValue.RESERVED,
}
_FLOAT_SPECIAL = {
    0x007FFFFF: SpecialValue.NAN,
    0x00800000: SpecialValue.NRES,
    0x007FFFFE: SpecialValue.POSITIVE_INFINITY,
    0x00800002: SpecialValue.NEGATIVE_INFINITY,
    0x00800001: SpecialValue.RESERVED,
}
_SFLOAT_CODE = {v: k for k, v in _SFLOAT_SPECIAL.items()}
_FLOAT_CODE = {v: k for k, v in _FLOAT_SPECIAL.items()}

#: Temperature Type (0x2A1D) codes.
TEMPERATURE_TYPES = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastrointestinal_tract",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}
_PULSE_RANGE = {0: "within", 1: "above_upper", 2: "below_lower", 3: "reserved"}
_STATUS_BITS = {
    "body_movement": 0,
    "cuff_too_loose": 1,
    "irregular_pulse": 2,
    "improper_position": 5,
}

Number = float | SpecialValue


# --- IEEE-11073 numbers ---------------------------------------------------


def _decode_11073(raw: int, mant_bits: int, exp_bits: int, special: dict) -> Number:
    if raw in special:  # checked on the raw code, before sign extension
        return special[raw]
    mantissa = raw & ((1 << mant_bits) - 1)
    if mantissa >= 1 << (mant_bits - 1):
        mantissa -= 1 << mant_bits
    exponent = raw >> mant_bits
    if exponent >= 1 << (exp_bits - 1):
        exponent -= 1 << exp_bits
    # Integer arithmetic then one division: 235e-1 is exactly the float 23.5.
    if exponent >= 0:
        return float(mantissa * 10**exponent)
    return mantissa / 10**-exponent


def decode_sfloat(raw: int) -> Number:
    """Value of a 16-bit IEEE-11073 SFLOAT code (u16), or its ``SpecialValue``."""
    return _decode_11073(raw & 0xFFFF, 12, 4, _SFLOAT_SPECIAL)


def decode_float(raw: int) -> Number:
    """Value of a 32-bit IEEE-11073 FLOAT code (u32), or its ``SpecialValue``."""
    return _decode_11073(raw & 0xFFFFFFFF, 24, 8, _FLOAT_SPECIAL)


def _encode_11073(
    value: Number, mant_bits: int, exp_bits: int, codes: dict, special: dict, what: str
) -> int:
    if isinstance(value, SpecialValue):
        return codes[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{what}: expected a number or SpecialValue, got {value!r}")
    if math.isnan(value):
        return codes[SpecialValue.NAN]
    if math.isinf(value):
        return codes[SpecialValue.POSITIVE_INFINITY if value > 0 else SpecialValue.NEGATIVE_INFINITY]
    m_max = (1 << (mant_bits - 1)) - 1
    e_min, e_max = -(1 << (exp_bits - 1)), (1 << (exp_bits - 1)) - 1
    # The shortest decimal that reads back as this float, so 23.5 -> 235e-1.
    sign, digits, exp = Decimal(repr(float(value))).normalize().as_tuple()
    # NaN and the infinities returned above, so the exponent is a number, never 'n'/'N'/'F'.
    exponent = cast(int, exp)
    mantissa = int("".join(map(str, digits)))
    if exponent < e_min:  # finer than the format resolves: round to e_min
        mantissa = _round_div(mantissa, 10 ** (e_min - exponent))
        exponent = e_min
    while mantissa > m_max - 2:  # keep clear of the special codes at exponent 0
        if mantissa <= m_max and exponent != 0:
            break
        mantissa = _round_div(mantissa, 10)
        exponent += 1
    # Whole numbers the way devices send them: 120 as 120e0, not 12e1.
    while exponent > 0 and mantissa * 10 <= (m_max - 2 if exponent == 1 else m_max):
        mantissa *= 10
        exponent -= 1
    if mantissa == 0:
        exponent = 0
    if exponent > e_max:
        raise EncodeError(f"{what}: {value!r} is too large for the format")
    if sign:
        mantissa = -mantissa
    raw = ((exponent & ((1 << exp_bits) - 1)) << mant_bits) | (mantissa & ((1 << mant_bits) - 1))
    if raw in special:  # only reachable for |mantissa| near the limit at e=0
        raise EncodeError(f"{what}: {value!r} collides with a special value code")
    return raw


def _round_div(n: int, d: int) -> int:
    q, r = divmod(n, d)  # half-up for non-negative n
    return q + (1 if 2 * r >= d else 0)


def encode_sfloat(value: Number) -> int:
    """The u16 SFLOAT code nearest ``value`` (a float or a ``SpecialValue``).

    Chooses the smallest exponent that fits, so precision is kept; non-finite
    floats map to NaN/+INF/-INF. Raises ``EncodeError`` if out of range.
    """
    return _encode_11073(value, 12, 4, _SFLOAT_CODE, _SFLOAT_SPECIAL, "SFLOAT")


def encode_float(value: Number) -> int:
    """The u32 FLOAT code nearest ``value`` (a float or a ``SpecialValue``)."""
    return _encode_11073(value, 24, 8, _FLOAT_CODE, _FLOAT_SPECIAL, "FLOAT")


def kpa_to_mmhg(kpa: Number) -> Number:
    """kPa to mmHg, rounded to 0.01 mmHg; special values pass through."""
    if isinstance(kpa, SpecialValue):
        return kpa
    return round(kpa * _MMHG_PER_KPA, 2)


def mmhg_to_kpa(mmhg: Number) -> Number:
    """mmHg to kPa, rounded to 0.001 kPa; special values pass through."""
    if isinstance(mmhg, SpecialValue):
        return mmhg
    return round(mmhg / _MMHG_PER_KPA, 3)


def _f_to_c(f: Number) -> Number:
    if isinstance(f, SpecialValue):
        return f
    return round((f - 32) * 5 / 9, 3)


def _c_to_f(c: Number) -> Number:
    if isinstance(c, SpecialValue):
        return c
    return round(c * 9 / 5 + 32, 3)


# --- Date Time (0x2A08) ---------------------------------------------------


def _decode_date_time(b: bytes) -> tuple[list[int], int | None]:
    year, month, day, hour, minute, second = struct.unpack_from("<HBBBBB", b)
    fields = [year, month, day, hour, minute, second]
    if 0 in (year, month, day):  # 0 means "not known" for these three
        return fields, None
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return fields, None  # keep the reading; an odd clock is no reason to lose it
    # The characteristic has no time zone: devices set it to local time, and
    # we cannot know which, so it is read as UTC and the raw fields are kept.
    return fields, int(dt.timestamp()) * 1000


def _encode_date_time(fields: Any) -> bytes:
    try:
        year, month, day, hour, minute, second = (int(x) for x in fields)
        return struct.pack("<HBBBBB", year, month, day, hour, minute, second)
    except (TypeError, ValueError, struct.error) as exc:
        raise EncodeError(
            f"device_time: expected [year, month, day, hour, minute, second], got {fields!r}"
        ) from exc


def date_time_fields(ts_ms: int) -> list[int]:
    """[year, month, day, hour, minute, second] in UTC for a time in ms."""
    dt = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return [dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second]


# --- Blood Pressure Measurement 0x2A35 -----------------------------------


def _need(data: bytes, pos: int, n: int, what: str, codec: str) -> None:
    if len(data) < pos + n:
        raise DecodeError(
            data,
            f"frame ends after {len(data)} bytes but flags 0x{data[0]:02x} announce {what} "
            f"at bytes {pos}..{pos + n - 1}",
            codec,
        )


@guard_decode(BLOOD_PRESSURE_SCHEMA)
def decode_blood_pressure(data: bytes, device_id: str) -> Reading:
    """Decode a Blood Pressure Measurement (0x2A35) value.

    Pressures in mmHg (kPa originals kept), pulse in beats/min. Raises
    ``DecodeError`` if the frame is shorter or longer than its flags say.
    """
    data = bytes(data)
    codec = BLOOD_PRESSURE_SCHEMA
    if len(data) < 7:
        raise DecodeError(data, f"frame is {len(data)} bytes, 0x2A35 needs at least 7", codec)
    flags = data[0]
    kpa = bool(flags & 0x01)
    sys_, dia, mean = (decode_sfloat(v) for v in struct.unpack_from("<HHH", data, 1))
    values: dict[str, Any] = {}
    if kpa:
        values.update(
            systolic_mmhg=kpa_to_mmhg(sys_),
            diastolic_mmhg=kpa_to_mmhg(dia),
            mean_arterial_pressure_mmhg=kpa_to_mmhg(mean),
            unit_original="kPa",
            systolic_kpa=sys_,
            diastolic_kpa=dia,
            mean_arterial_pressure_kpa=mean,
        )
    else:
        values.update(
            systolic_mmhg=sys_,
            diastolic_mmhg=dia,
            mean_arterial_pressure_mmhg=mean,
            unit_original="mmHg",
        )
    pos = 7
    timestamp_ms = None
    if flags & 0x02:
        _need(data, pos, 7, "a time stamp", codec)
        values["device_time"], timestamp_ms = _decode_date_time(data[pos : pos + 7])
        pos += 7
    if flags & 0x04:
        _need(data, pos, 2, "a pulse rate", codec)
        values["pulse_bpm"] = decode_sfloat(struct.unpack_from("<H", data, pos)[0])
        pos += 2
    if flags & 0x08:
        _need(data, pos, 1, "a user id", codec)
        values["user_id"] = data[pos]  # 255 means "unknown user"
        pos += 1
    if flags & 0x10:
        _need(data, pos, 2, "a measurement status", codec)
        raw_status = struct.unpack_from("<H", data, pos)[0]
        status: dict[str, Any] = {k: bool(raw_status >> bit & 1) for k, bit in _STATUS_BITS.items()}
        status["pulse_rate_range"] = _PULSE_RANGE[raw_status >> 3 & 0b11]
        status["raw"] = raw_status
        values["status"] = status
        pos += 2
    if pos != len(data):
        raise DecodeError(
            data,
            f"{len(data) - pos} unexpected bytes after the last field that flags 0x{flags:02x} "
            f"announce (expected {pos} bytes)",
            codec,
        )
    return Reading(device_id, "blood_pressure", codec, values, timestamp_ms)


def _value(values: Any, key: str, what: str) -> Any:
    try:
        return values[key]
    except KeyError:
        raise EncodeError(f"{what}: reading has no {key!r} (has {sorted(values)})") from None


def encode_blood_pressure(reading: Reading) -> bytes:
    """Encode a blood-pressure reading as a 0x2A35 value.

    Uses kPa when ``unit_original`` is ``"kPa"`` (the ``*_kpa`` originals if
    present). Optional fields are written when present in ``values``; a
    ``timestamp_ms`` without ``device_time`` is written as a UTC time stamp.
    """
    v = reading.values
    what = "0x2A35"
    flags = 0
    names = ("systolic", "diastolic", "mean_arterial_pressure")
    if v.get("unit_original") == "kPa":
        flags |= 0x01
        press = [
            v[f"{n}_kpa"] if f"{n}_kpa" in v else mmhg_to_kpa(_value(v, f"{n}_mmhg", what))
            for n in names
        ]
    else:
        press = [_value(v, f"{n}_mmhg", what) for n in names]
    out = bytearray(struct.pack("<BHHH", 0, *(encode_sfloat(p) for p in press)))
    device_time = v.get("device_time")
    if device_time is None and reading.timestamp_ms is not None:
        device_time = date_time_fields(reading.timestamp_ms)
    if device_time is not None:
        flags |= 0x02
        out += _encode_date_time(device_time)
    if v.get("pulse_bpm") is not None:
        flags |= 0x04
        out += struct.pack("<H", encode_sfloat(v["pulse_bpm"]))
    if v.get("user_id") is not None:
        flags |= 0x08
        uid = v["user_id"]
        if not isinstance(uid, int) or not 0 <= uid <= 255:
            raise EncodeError(f"{what}: user_id must be 0..255, got {uid!r}")
        out.append(uid)
    if v.get("status") is not None:
        flags |= 0x10
        out += struct.pack("<H", _encode_status(v["status"]))
    out[0] = flags
    return bytes(out)


def _encode_status(status: Any) -> int:
    if isinstance(status, int):
        return status & 0xFFFF
    if "raw" in status:
        return int(status["raw"]) & 0xFFFF
    raw = 0
    for key, bit in _STATUS_BITS.items():
        if status.get(key):
            raw |= 1 << bit
    ranges = {name: code for code, name in _PULSE_RANGE.items()}
    raw |= ranges.get(status.get("pulse_rate_range", "within"), 0) << 3
    return raw


# --- Temperature Measurement 0x2A1C ---------------------------------------


@guard_decode(TEMPERATURE_SCHEMA)
def decode_temperature_measurement(data: bytes, device_id: str) -> Reading:
    """Decode a Temperature Measurement (0x2A1C) value.

    Temperature in °C (a °F original kept as ``temperature_f``). Raises
    ``DecodeError`` if the frame is shorter or longer than its flags say.
    """
    data = bytes(data)
    codec = TEMPERATURE_SCHEMA
    if len(data) < 5:
        raise DecodeError(data, f"frame is {len(data)} bytes, 0x2A1C needs at least 5", codec)
    flags = data[0]
    temp = decode_float(struct.unpack_from("<I", data, 1)[0])
    values: dict[str, Any]
    if flags & 0x01:
        values = {"temperature_c": _f_to_c(temp), "unit_original": "F", "temperature_f": temp}
    else:
        values = {"temperature_c": temp, "unit_original": "C"}
    pos = 5
    timestamp_ms = None
    if flags & 0x02:
        _need(data, pos, 7, "a time stamp", codec)
        values["device_time"], timestamp_ms = _decode_date_time(data[pos : pos + 7])
        pos += 7
    if flags & 0x04:
        _need(data, pos, 1, "a temperature type", codec)
        values["measurement_type"] = TEMPERATURE_TYPES.get(data[pos], "reserved")
        values["measurement_type_code"] = data[pos]
        pos += 1
    if pos != len(data):
        raise DecodeError(
            data,
            f"{len(data) - pos} unexpected bytes after the last field that flags 0x{flags:02x} "
            f"announce (expected {pos} bytes)",
            codec,
        )
    return Reading(device_id, "temperature", codec, values, timestamp_ms)


def encode_temperature_measurement(reading: Reading) -> bytes:
    """Encode a temperature reading as a 0x2A1C value (°F if ``unit_original`` is ``"F"``)."""
    v = reading.values
    flags = 0
    if v.get("unit_original") == "F":
        flags |= 0x01
        temp = v["temperature_f"] if "temperature_f" in v else _c_to_f(
            _value(v, "temperature_c", "0x2A1C")
        )
    else:
        temp = _value(v, "temperature_c", "0x2A1C")
    out = bytearray(struct.pack("<BI", 0, encode_float(temp)))
    device_time = v.get("device_time")
    if device_time is None and reading.timestamp_ms is not None:
        device_time = date_time_fields(reading.timestamp_ms)
    if device_time is not None:
        flags |= 0x02
        out += _encode_date_time(device_time)
    code = v.get("measurement_type_code")
    if code is None and v.get("measurement_type") is not None:
        names = {n: c for c, n in TEMPERATURE_TYPES.items()}
        if v["measurement_type"] not in names:
            raise EncodeError(
                f"0x2A1C: measurement_type must be one of {sorted(names)}, "
                f"got {v['measurement_type']!r}"
            )
        code = names[v["measurement_type"]]
    if code is not None:
        flags |= 0x04
        out.append(int(code) & 0xFF)
    out[0] = flags
    return bytes(out)


# --- Codec objects for serial frames --------------------------------------


def _unhex(frame: bytes, codec: str) -> bytes:
    text = bytes(frame).strip()
    for sep in (b" ", b":", b"-", b"\t"):
        text = text.replace(sep, b"")
    if text[:2].lower() == b"0x":
        text = text[2:]
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(frame, f"not a hex line ({exc})", codec) from None


class _GattCodec:
    name = ""
    _decode = staticmethod(decode_blood_pressure)
    _encode = staticmethod(encode_blood_pressure)

    def __init__(self, framing: str = "raw") -> None:
        if framing not in ("raw", "hex"):
            raise ValueError(f"framing must be 'raw' or 'hex', got {framing!r}")
        self.framing = framing

    def decode(self, frame: bytes, device_id: str, arrival: Arrival | None = None) -> list[Reading]:
        """Decode one frame (raw bytes, or a hex text line if ``framing='hex'``)."""
        data = _unhex(frame, self.name) if self.framing == "hex" else frame
        try:
            return [type(self)._decode(data, device_id)]
        except DecodeError as exc:
            # Dead-letter what actually arrived, not our unhexed copy.
            raise DecodeError(frame, exc.reason, exc.codec) from None

    def encode(self, reading: Reading) -> bytes:
        """One frame: raw bytes, or upper-case hex and a newline if ``framing='hex'``."""
        data = type(self)._encode(reading)
        return data.hex().upper().encode() + b"\n" if self.framing == "hex" else data


class GattBloodPressureCodec(_GattCodec):
    """0x2A35 frames over a serial line, raw or as hex text lines."""

    name = BLOOD_PRESSURE_SCHEMA
    _decode = staticmethod(decode_blood_pressure)
    _encode = staticmethod(encode_blood_pressure)


class GattTemperatureCodec(_GattCodec):
    """0x2A1C frames over a serial line, raw or as hex text lines."""

    name = TEMPERATURE_SCHEMA
    _decode = staticmethod(decode_temperature_measurement)
    _encode = staticmethod(encode_temperature_measurement)
