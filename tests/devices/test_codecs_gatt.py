"""GATT 0x2A35 / 0x2A1C and IEEE-11073 numbers.

Example frames are derived by hand from the Bluetooth SIG layouts (flags,
SFLOAT/FLOAT, Date Time) and written out byte by byte below; the special
codes match those of Nordic's Android-BLE-Common-Library.
"""

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import (
    DecodeError,
    Reading,
    SpecialValue,
    decode_blood_pressure,
    decode_float,
    decode_sfloat,
    decode_temperature_measurement,
    encode_blood_pressure,
    encode_float,
    encode_sfloat,
    encode_temperature_measurement,
)
from devices.codecs.gatt import GattBloodPressureCodec, GattTemperatureCodec


@pytest.mark.parametrize(
    "raw, value",
    [
        (0x0078, 120.0),  # 120 mmHg, exponent 0
        (0xF0EB, 23.5),  # 235e-1
        (0xF0A0, 16.0),  # 160e-1 kPa
        (0x0FFF, -1.0),  # mantissa -1
        (0x1001, 10.0),  # 1e1
        (0x07FD, 2045.0),  # largest plain mantissa at exponent 0
        (0x0000, 0.0),
    ],
)
def test_sfloat_values(raw, value):
    assert decode_sfloat(raw) == value


@pytest.mark.parametrize(
    "raw, special",
    [
        (0x07FF, SpecialValue.NAN),
        (0x0800, SpecialValue.NRES),
        (0x07FE, SpecialValue.POSITIVE_INFINITY),
        (0x0802, SpecialValue.NEGATIVE_INFINITY),
        (0x0801, SpecialValue.RESERVED),
    ],
)
def test_sfloat_specials_are_reported_not_numbers(raw, special):
    assert decode_sfloat(raw) is special
    assert encode_sfloat(special) == raw


@pytest.mark.parametrize(
    "raw, special",
    [
        (0x007FFFFF, SpecialValue.NAN),
        (0x00800000, SpecialValue.NRES),
        (0x007FFFFE, SpecialValue.POSITIVE_INFINITY),
        (0x00800002, SpecialValue.NEGATIVE_INFINITY),
        (0x00800001, SpecialValue.RESERVED),
    ],
)
def test_float_specials(raw, special):
    assert decode_float(raw) is special
    assert encode_float(special) == raw


def test_float_values():
    assert decode_float(0xFF00016C) == 36.4  # 364e-1
    assert encode_float(36.4) == 0xFF00016C
    assert encode_sfloat(120) == 0x0078  # whole numbers as devices send them
    assert encode_sfloat(math.nan) == 0x07FF
    assert encode_sfloat(-math.inf) == 0x0802


sfloat_codes = st.integers(0, 0xFFFF)
float_codes = st.integers(0, 0xFFFFFFFF)


@settings(max_examples=300)
@given(sfloat_codes)
def test_sfloat_round_trip_every_code(raw):
    value = decode_sfloat(raw)
    assert decode_sfloat(encode_sfloat(value)) == value


@settings(max_examples=300)
@given(float_codes)
def test_float_round_trip(raw):
    value = decode_float(raw)
    back = decode_float(encode_float(value))
    assert back == value or (isinstance(value, float) and back == pytest.approx(value, rel=1e-6))


# 0x2A35, every field: flags 0x1E (mmHg, time, pulse, user, status),
# 138/88/120 mmHg, 2012-12-05 11:50:27, pulse 60, user 1, status 0x0013.
BPM_FULL = bytes.fromhex("1E8A0058007800DC070C050B321B3C00011300")
# kPa, no options: 16.0 / 10.7 / 12.5 kPa.
BPM_KPA = bytes.fromhex("01A0F06BF07DF0")


def test_blood_pressure_full_frame():
    r = decode_blood_pressure(BPM_FULL, "ward3-bed2")
    v = r.values
    assert (v["systolic_mmhg"], v["diastolic_mmhg"], v["mean_arterial_pressure_mmhg"]) == (138, 88, 120)
    assert v["unit_original"] == "mmHg"
    assert v["pulse_bpm"] == 60
    assert v["user_id"] == 1
    assert v["device_time"] == [2012, 12, 5, 11, 50, 27]
    assert r.timestamp_ms == 1354708227000
    assert v["status"] == {
        "body_movement": True,
        "cuff_too_loose": True,
        "irregular_pulse": False,
        "improper_position": False,
        "pulse_rate_range": "below_lower",
        "raw": 0x13,
    }
    assert encode_blood_pressure(r) == BPM_FULL


def test_blood_pressure_kpa_is_normalised_and_original_kept():
    r = decode_blood_pressure(BPM_KPA, "cuff")
    v = r.values
    assert v["systolic_mmhg"] == 120.01  # 16.0 kPa
    assert v["diastolic_mmhg"] == 80.26
    assert v["unit_original"] == "kPa"
    assert (v["systolic_kpa"], v["diastolic_kpa"], v["mean_arterial_pressure_kpa"]) == (16.0, 10.7, 12.5)
    assert r.timestamp_ms is None
    # 16.0 is re-encoded as 16e0 rather than 160e-1: same value, same unit.
    again = encode_blood_pressure(r)
    assert again[0] == 0x01
    assert decode_blood_pressure(again, "cuff").values == v


def test_blood_pressure_special_values_survive_to_json():
    frame = bytes.fromhex("04FF07FF07FF07") + struct.pack("<H", 0x07FE)
    r = decode_blood_pressure(frame, "cuff")
    assert r.values["systolic_mmhg"] is SpecialValue.NAN
    assert r.values["pulse_bpm"] is SpecialValue.POSITIVE_INFINITY
    # An explicit null with its status, never a string in a numeric field.
    value = r.to_event_value()
    assert value["systolic_mmhg"] is None and value["systolic_mmhg_status"] == "NaN"
    assert value["pulse_bpm"] is None and value["pulse_bpm_status"] == "+INF"


def test_blood_pressure_unknown_date_has_no_timestamp():
    frame = bytes.fromhex("027800500060000000000C0000")[:7] + bytes(7)
    frame = bytes([0x02]) + frame[1:]
    r = decode_blood_pressure(frame, "cuff")
    assert r.timestamp_ms is None and r.values["device_time"] == [0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "frame, reason",
    [
        (b"", "at least 7"),
        (bytes.fromhex("0078005000"), "at least 7"),
        (BPM_FULL[:-1], "status"),
        (BPM_FULL[:12], "time stamp"),
        (BPM_KPA + b"\x00", "unexpected bytes"),
    ],
)
def test_blood_pressure_bad_frames(frame, reason):
    with pytest.raises(DecodeError, match=reason) as info:
        decode_blood_pressure(frame, "cuff")
    assert info.value.raw == frame and info.value.codec == "gatt.0x2A35"


# 0x2A1C: flags 0x06 (°C, time, type), 36.4 °C, 2024-02-29 23:59:59, type 6 (mouth).
HTM_FULL = bytes.fromhex("066C0100FFE807021D173B3B06")
# °F, no options: 98.6 °F.
HTM_F = bytes.fromhex("01DA0300FF")


def test_temperature_measurement_full():
    r = decode_temperature_measurement(HTM_FULL, "thermo")
    assert r.values["temperature_c"] == 36.4
    assert r.values["measurement_type"] == "mouth"
    assert r.values["device_time"] == [2024, 2, 29, 23, 59, 59]
    assert r.timestamp_ms == 1709251199000
    assert encode_temperature_measurement(r) == HTM_FULL


def test_temperature_fahrenheit_is_normalised():
    r = decode_temperature_measurement(HTM_F, "thermo")
    assert r.values == {"temperature_c": 37.0, "unit_original": "F", "temperature_f": 98.6}
    assert encode_temperature_measurement(r) == HTM_F


def test_hex_line_codec():
    codec = GattBloodPressureCodec(framing="hex")
    [r] = codec.decode(b"1E 8A 00 58 00 78 00 DC 07 0C 05 0B 32 1B 3C 00 01 13 00\r\n", "cuff")
    assert r.values["systolic_mmhg"] == 138
    assert codec.encode(r) == BPM_FULL.hex().upper().encode() + b"\n"
    with pytest.raises(DecodeError, match="hex"):
        codec.decode(b"zz", "cuff")
    with pytest.raises(DecodeError) as info:
        codec.decode(b"0078", "cuff")
    assert info.value.raw == b"0078"  # what arrived, not the unhexed bytes


pressures = st.one_of(
    st.integers(-2000, 2045).map(float),
    st.sampled_from(list(SpecialValue)),
    st.builds(lambda m, e: m / 10**e, st.integers(0, 2045), st.integers(1, 3)),
)


@st.composite
def bp_readings(draw):
    values = {
        "systolic_mmhg": draw(pressures),
        "diastolic_mmhg": draw(pressures),
        "mean_arterial_pressure_mmhg": draw(pressures),
        "unit_original": "mmHg",
    }
    if draw(st.booleans()):
        values["pulse_bpm"] = draw(pressures)
    if draw(st.booleans()):
        values["user_id"] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        values["device_time"] = [draw(st.integers(1582, 9999)), draw(st.integers(1, 12)),
                                 draw(st.integers(1, 28)), draw(st.integers(0, 23)),
                                 draw(st.integers(0, 59)), draw(st.integers(0, 59))]
    if draw(st.booleans()):
        values["status"] = {"raw": draw(st.integers(0, 0x3F))}
    return Reading("cuff", "blood_pressure", "gatt.0x2A35", values)


@settings(max_examples=150)
@given(bp_readings())
def test_blood_pressure_round_trip(reading):
    back = decode_blood_pressure(encode_blood_pressure(reading), "cuff")
    for key, value in reading.values.items():
        if key == "status":
            assert back.values["status"]["raw"] == value["raw"]
        else:
            assert back.values[key] == value, key


@settings(max_examples=150)
@given(
    st.one_of(st.builds(lambda m, e: m / 10**e, st.integers(-8388600, 8388600), st.integers(0, 4)),
              st.sampled_from(list(SpecialValue))),
    st.sampled_from(["C", "F"]),
    st.one_of(st.none(), st.integers(0, 255)),
)
def test_temperature_round_trip(temp, unit, type_code):
    values = {"unit_original": unit, "temperature_c" if unit == "C" else "temperature_f": temp}
    if type_code is not None:
        values["measurement_type_code"] = type_code
    if unit == "F":
        values["temperature_c"] = 0.0  # ignored: the °F original is what is sent
    r = Reading("t", "temperature", "gatt.0x2A1C", values)
    back = decode_temperature_measurement(encode_temperature_measurement(r), "t")
    key = "temperature_c" if unit == "C" else "temperature_f"
    assert back.values[key] == temp
    assert back.values.get("measurement_type_code") == type_code


@settings(max_examples=300)
@given(st.binary(max_size=24))
def test_fuzz_random(data):
    for decode in (decode_blood_pressure, decode_temperature_measurement):
        try:
            decode(data, "d")
        except DecodeError:
            pass
    for codec in (GattBloodPressureCodec("hex"), GattTemperatureCodec("hex")):
        try:
            codec.decode(data, "d")
        except DecodeError:
            pass


@settings(max_examples=300)
@given(st.sampled_from([BPM_FULL, BPM_KPA, HTM_FULL, HTM_F]), st.integers(0, 30), st.integers(0, 255), st.booleans())
def test_fuzz_mutated(frame, pos, byte, truncate):
    pos = pos % len(frame)
    data = frame[:pos] if truncate else frame[:pos] + bytes([byte]) + frame[pos + 1 :]
    for decode in (decode_blood_pressure, decode_temperature_measurement):
        try:
            decode(data, "d")
        except DecodeError:
            pass
