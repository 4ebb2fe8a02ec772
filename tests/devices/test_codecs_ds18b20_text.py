"""DS18B20 sysfs files and plain-text temperature lines."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import CodecConfigError, DecodeError, Reading, TextTemperatureCodec
from devices.codecs.ds18b20 import (
    crc8_maxim,
    decode_temperature_file,
    decode_w1_slave,
    encode_temperature_file,
    encode_w1_slave,
)

# As printed by a Raspberry Pi's w1_therm driver (23.125 °C), and the
# power-on value 85 °C that arrives with a valid CRC.
W1_OK = b"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
W1_85 = b"50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
W1_NO = b"72 01 4b 46 7f ff 0e 10 57 : crc=57 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
W1_ZERO = b"00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n"


def test_w1_slave_ok():
    r = decode_w1_slave(W1_OK, "28-0000075b5d5b")
    assert r.values == {"temperature_c": 23.125}
    assert r.kind == "temperature" and r.schema == "ds18b20.w1"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty read"),
        (W1_NO, "CRC"),
        (W1_85, "power-on"),
        (W1_ZERO, "all-zero"),
        (W1_OK.replace(b"crc=57", b"crc=58").replace(b"10 57", b"10 58"), "CRC-8"),
        (W1_OK.splitlines()[0], "2 lines"),
    ],
)
def test_w1_slave_errors(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_w1_slave(data, "28-x")


@pytest.mark.parametrize("text, reason", [(b"", "empty"), (b"85000\n", "power-on"),
                                          (b"126000", "range"), (b"-56000", "range"), (b"abc", "integer")])
def test_temperature_file_errors(text, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_temperature_file(text, "28-x")


def test_temperature_file_ok():
    assert decode_temperature_file(b"-10125\n", "28-x").values["temperature_c"] == -10.125


def test_crc8_of_real_scratchpads():
    assert crc8_maxim(bytes.fromhex("72014b467fff0e10")) == 0x57
    assert crc8_maxim(bytes.fromhex("50054b467fff0c10")) == 0x1C


@settings(max_examples=150)
@given(st.integers(-55 * 16, 125 * 16).filter(lambda raw: raw != 85 * 16))
def test_ds18b20_round_trip(raw):
    r = Reading("28-x", "temperature", "ds18b20.w1", {"temperature_c": raw / 16})
    back = decode_w1_slave(encode_w1_slave(r), "28-x")
    # The driver prints millidegrees truncated toward zero.
    assert back.values["temperature_c"] == pytest.approx(raw / 16, abs=0.001)
    assert decode_temperature_file(encode_temperature_file(r), "28-x").values == back.values


def test_encoder_fault_injection_writes_a_no_line():
    r = Reading("28-x", "temperature", "ds18b20.w1", {"temperature_c": 20.0})
    with pytest.raises(DecodeError, match="CRC"):
        decode_w1_slave(encode_w1_slave(r, crc_ok=False), "28-x")


@settings(max_examples=200)
@given(st.binary(max_size=90))
def test_ds18b20_fuzz(data):
    for decode in (decode_w1_slave, decode_temperature_file):
        try:
            decode(data, "d")
        except DecodeError:
            pass


@settings(max_examples=200)
@given(st.integers(0, len(W1_OK) - 1), st.integers(0, 255))
def test_ds18b20_fuzz_mutated(pos, byte):
    data = W1_OK[:pos] + bytes([byte]) + W1_OK[pos + 1 :]
    try:
        decode_w1_slave(data, "d")
    except DecodeError:
        pass


# --- text -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, celsius",
    [(b"23.5", 23.5), (b"T=23.5C", 23.5), (b"-4\r\n", -4.0), (b"temp: 74.3 F", 23.5),
     ("temperature = 21.0 °C".encode(), 21.0)],
)
def test_text_default_pattern(line, celsius):
    [r] = TextTemperatureCodec().decode(line, "room1")
    assert r.values["temperature_c"] == celsius


def test_text_csv_and_device_column():
    codec = TextTemperatureCodec.csv(2, device_column=0)
    [r] = codec.decode(b"room7,2024-01-01T00:00:00,19.25\n", "fallback")
    assert (r.device_id, r.values["temperature_c"]) == ("room7", 19.25)
    assert codec.decode(codec.encode(r), "x") == [r]


def test_text_custom_pattern_with_device_group():
    codec = TextTemperatureCodec(r"^(?P<device>\w+) (?P<value>-?\d+\.\d+)$")
    [r] = codec.decode(b"boiler 61.50", "x")
    assert (r.device_id, r.values["temperature_c"]) == ("boiler", 61.5)


@pytest.mark.parametrize("kwargs", [{"pattern": "("}, {"pattern": r"\d+"}, {"unit": "K"},
                                    {"column": -1}, {"pattern": "x", "column": 1}])
def test_text_bad_config(kwargs):
    with pytest.raises(CodecConfigError):
        TextTemperatureCodec(**kwargs)


@pytest.mark.parametrize("line", [b"", b"T=", b"nan", b"\xff\xfe", b"-127", b"1e999"])
def test_text_errors(line):
    with pytest.raises(DecodeError):
        TextTemperatureCodec().decode(line, "x")


@settings(max_examples=150)
@given(st.floats(-100, 1000, allow_nan=False).map(lambda x: round(x, 3)).filter(lambda x: x != -127),
       st.sampled_from(["C", "F"]))
def test_text_round_trip(value, unit):
    codec = TextTemperatureCodec(unit=unit, template="T={temperature_" + unit.lower() + "}" + unit)
    key = "temperature_c" if unit == "C" else "temperature_f"
    r = Reading("x", "temperature", "text", {key: value, "temperature_c": value})
    [back] = codec.decode(codec.encode(r), "x")
    assert back.values[key] == value


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_text_fuzz(data):
    for codec in (TextTemperatureCodec(), TextTemperatureCodec.csv(1)):
        try:
            codec.decode(data, "x")
        except DecodeError:
            pass
