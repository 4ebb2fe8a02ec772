"""Issue #10 items 2 and 6 at the codec level: every reproducer is a pure function call.

A value the world cannot have, a time no clock can show, text no encoder can write:
each is a ``DecodeError`` with a reason a person can act on, from the codec itself or
from the range check every event passes (``devices.checked_event_value``), never an
"unexpected ..." from the last-resort guard, never a reading.
"""

from __future__ import annotations

import json
import random
import re
import struct
from pathlib import Path

import pytest
from pynmeagps import calc_checksum

from devices import (
    CODECS,
    CONVENTIONS,
    RANGES,
    DecodeError,
    NmeaFixAssembler,
    Reading,
    ReadingRejected,
    SpecialValue,
    TextTemperatureCodec,
    check_reading,
    checked_event_value,
    decode_blood_pressure,
    decode_temperature_measurement,
    ranges_markdown,
    with_overrides,
)
from devices.codecs.mqtt_conventions import (
    BloodPressureJsonConvention,
    EspHomeConvention,
    JsonMappingConvention,
    OwnTracksConvention,
    TasmotaConvention,
    Zigbee2MqttConvention,
)
from devices.simulator._faults import (
    HOSTILE_CODECS,
    SERIAL_HOSTILE,
    hostile_frame,
    hostile_names,
    mqtt_topic,
)
from edge._validate import EventCheck

NOW_MS = 1_764_000_000_000
DOCS = Path(__file__).parent.parent.parent / "docs" / "ranges.md"


def nmea(body: str) -> bytes:
    return f"${body}*{calc_checksum(body)}\r\n".encode()


def refused(fn, *args, match: str) -> DecodeError:
    """``fn(*args)`` raises a DecodeError matching ``match`` that the codec meant to raise."""
    with pytest.raises(DecodeError, match=match) as info:
        fn(*args)
    assert not info.value.reason.startswith("unexpected"), info.value.reason
    return info.value


def out_of_range(readings: list[Reading], match: str) -> None:
    """The codec decoded it; the range check every event passes refuses it."""
    with pytest.raises(ReadingRejected, match=match):
        for r in readings:
            check_reading(r)


# --- item 2: what cannot be written ------------------------------------------------


def test_tasmota_lone_surrogate_in_a_value_or_a_key_is_a_decode_error():
    tasmota = TasmotaConvention()
    for payload in (rb'{"DS18B20":{"Id":"\ud800","Temperature":21.5}}',
                    rb'{"\ud800":{"Temperature":21.5}}',
                    rb'{"\ud800":{"Temperature":-127}}',  # was the dead-letter path's crash
                    b'{"DS18B20":{"Id":"\xed\xa0\x80","Temperature":21.5}}'):  # the bytes of one
        err = refused(tasmota.decode, "tele/t/SENSOR", payload, match="lone UTF-16 surrogate")
        err.reason.encode()  # the reason itself is text a header can carry
    # A proper pair (an escaped emoji) is Unicode: it decodes.
    [r] = tasmota.decode("tele/t/SENSOR", rb'{"DS18B20":{"Id":"\ud83d\ude00","Temperature":21.5}}')
    assert r.values["sensor_id"] == "\U0001f600"


@pytest.mark.parametrize("tst", ["1e17", "1e20", "1e308", "-1e20", "1" + "0" * 400])
def test_owntracks_times_beyond_any_calendar_are_decode_errors(tst):
    payload = f'{{"_type":"location","lat":52.5,"lon":13.4,"tst":{tst}}}'.encode()
    refused(OwnTracksConvention().decode, "owntracks/u/phone", payload,
            match="tst|401 digits")


def test_bp_json_and_json_mapping_times_beyond_any_calendar_are_decode_errors():
    refused(BloodPressureJsonConvention().decode, "bp/cuff",
            b'{"systolic":120,"diastolic":80,"time":1e30}', match="time 1e.30 ms since 1970")
    conv = JsonMappingConvention("s/{device}", {"t": "temperature_c"}, timestamp_field="ts")
    refused(conv.decode, "s/a", b'{"t":21.5,"ts":1e20}', match="timestamp 'ts' 1e.20 s")


# --- item 6: values the world cannot have ------------------------------------------


def test_gatt_blood_pressure_of_minus_one_mmhg_is_out_of_range():
    r = decode_blood_pressure(bytes.fromhex("00FF0F50006000"), "cuff")
    assert r.values["systolic_mmhg"] == -1.0
    out_of_range([r], r"cuff: systolic_mmhg = -1.0 is outside 0..400 mmHg")


def test_gatt_temperature_of_minus_300_c_is_out_of_range():
    r = decode_temperature_measurement(bytes.fromhex("00D4FEFF00"), "thermo")
    out_of_range([r], r"temperature_c = -300.0 is outside -273.15..2000 °C")


def test_mqtt_conventions_out_of_range():
    out_of_range(EspHomeConvention().decode("k/sensor/temperature/state", b"-300"),
                 "temperature_c = -300.0")
    out_of_range(Zigbee2MqttConvention().decode("zigbee2mqtt/aqara",
                                                b'{"temperature":21,"humidity":250}'),
                 r"humidity_pct = 250.0 is outside 0..100 %")
    out_of_range(BloodPressureJsonConvention().decode("bp/cuff",
                                                      b'{"systolic":120,"diastolic":80,"pulse":-3}'),
                 "pulse_bpm = -3.0")


def test_conversions_that_overflow_to_infinity_are_out_of_range():
    out_of_range(TasmotaConvention().decode(
        "tele/t/SENSOR", b'{"DS18B20":{"Temperature":1e308},"TempUnit":"F"}'), "temperature_c = inf")
    out_of_range(BloodPressureJsonConvention().decode(
        "bp/cuff", b'{"systolic":1e308,"diastolic":80,"unit":"kPa"}'), "systolic_mmhg = inf")


@pytest.mark.parametrize("body, match", [
    ("GPRMC,120000.00,A,4807.038,N,01131.000,E,-5,054.7,311224,,,A", r"speed_mps -2\.57.* outside 0\.\.600"),
    ("GPRMC,120000.00,A,4807.038,N,01131.000,E,5,400,311224,,,A", r"course_deg 400.0 is outside 0\.\.360"),
    ("GPRMC,120000.00,A,4807.038,N,01131.000,E,nan,054.7,311224,,,A", "speed_mps nan"),
    ("GPRMC,120000.00,A,4807.038,N,01131.000,E,5,inf,311224,,,A", "course_deg inf"),
    ("GPGGA,120000,4807.038,N,01131.000,E,1,08,0.9,1e309,M,46.9,M,,", "alt_m inf"),
    ("GPGGA,120000,4807.038,N,01131.000,E,1,-08,0.9,545.4,M,46.9,M,,", "satellites_used -8"),
    ("GPGGA,120000,4807.038,N,01131.000,E,1,08,-0.9,545.4,M,46.9,M,,", "hdop -0.9"),
    ("GPGSA,A,3,,,,,,,,,,,,,-1.5,1.0,1.0", "pdop -1.5"),
    ("GPGSA,A,3,,,,,,,,,,,,,1.5,nan,1.0", "hdop nan"),
    ("GPGSV,1,1,-3,01,40,083,46", "satellites_in_view -3"),
    ("GPZDA,120000.00,12345678901234567890,12,2024,00,00", "does not exist"),
    ("GPGGA,120000,4807.038,N,01131.000,E,1,1e309,0.9,545.4,M,46.9,M,,", "numSV"),
])
def test_nmea_impossible_values_cost_only_their_sentence(body, match):
    asm = NmeaFixAssembler("car")
    good = [nmea("GPGGA,115959,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
            nmea("GPRMC,115959.00,A,4807.038,N,01131.000,E,5,054.7,311224,,,A")]
    for line in good:
        asm.decode(line)
    refused(asm.decode, nmea(body), match=match)
    [fix] = asm.flush()  # the epoch before the bad sentence is whole
    assert fix.values["alt_m"] == 545.4 and fix.values["course_deg"] == 54.7
    check_reading(fix)


def test_nmea_leap_second_is_accepted():
    asm = NmeaFixAssembler("car")
    asm.decode(nmea("GPRMC,235960.00,A,4807.038,N,01131.000,E,5,054.7,311216,,,A"))
    [fix] = asm.flush()
    assert fix.values["time_utc"] == "23:59:60" and fix.values["leap_second"] is True
    assert fix.timestamp_ms == 1483228799999  # 2016-12-31T23:59:59.999Z: Unix time has no :60
    check_reading(fix)


def test_nmea_flush_after_a_fix_dated_9999_12_31_is_no_crash():
    asm = NmeaFixAssembler("car")
    asm.decode(nmea("GPZDA,235959.00,31,12,9999,00,00"))
    asm.decode(nmea("GPGGA,235959,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
    asm.decode(nmea("GPGGA,000001,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
    [fix] = asm.flush()  # midnight after the last day there is: no date, no crash
    assert fix.timestamp_ms is None and "date" not in fix.values


def test_json_mapping_refuses_an_object_true_or_empty_text_as_a_temperature():
    conv = JsonMappingConvention("s/{device}", {"t": "temperature_c", "note": "note"})
    for payload, what in ((b'{"t":{"a":1}}', r"\{'a': 1\}"), (b'{"t":true}', "True"), (b'{"t":""}', "''")):
        out_of_range(conv.decode("s/a", payload), f"temperature_c is {what}, expected a number")
    # A field of the device's own (not a quantity) keeps what JSON gave it.
    [r] = conv.decode("s/a", b'{"t":21.5,"note":{"x":[1,"y"]}}')
    assert checked_event_value(r) == {"temperature_c": 21.5, "note": {"x": [1, "y"]}}


def test_a_topic_without_a_device_name_is_a_decode_error_with_a_reason():
    refused(EspHomeConvention().decode, "/sensor/temperature/state", b"21", match="no node name")


def test_a_message_that_yields_nothing_is_a_dead_letter():
    refused(Zigbee2MqttConvention().decode, "zigbee2mqtt/aqara", b'{"humidity":40}',
            match="aqara: no 'temperature'")
    refused(TasmotaConvention().decode, "tele/plug/SENSOR", b'{"ENERGY":{"Power":3}}',
            match="no sensor with a Temperature")
    # What the convention says carries no reading stays quiet: bridge state, STATE, status.
    assert Zigbee2MqttConvention().decode("zigbee2mqtt/bridge/state", b"online") == []
    assert TasmotaConvention().decode("tele/plug/STATE", b"{}") == []


def test_gatt_special_values_are_null_with_a_status_and_reserved_is_refused():
    frame = bytes.fromhex("04FF07FF07FF07") + struct.pack("<H", 0x0800)  # NaN x3, pulse NRes
    value = checked_event_value(decode_blood_pressure(frame, "cuff"))
    assert value["systolic_mmhg"] is None and value["systolic_mmhg_status"] == "NaN"
    assert value["pulse_bpm"] is None and value["pulse_bpm_status"] == "NRes"
    assert json.loads(json.dumps(value)) == value
    reserved = bytes.fromhex("00") + struct.pack("<HHH", 0x0801, 80, 90)
    out_of_range([decode_blood_pressure(reserved, "cuff")], "reserved IEEE-11073 code")


# --- item 6: the last-resort guard's cases become reasons -------------------------


def test_errors_once_caught_only_by_the_guard_have_reasons():
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    refused(TasmotaConvention().decode, "tele/t/SENSOR", deep, match="nests deeper")
    big = b'{"DS18B20":{"Temperature":1' + b"0" * 400 + b"}}"
    refused(TasmotaConvention().decode, "tele/t/SENSOR", big, match="integer of 401 digits")
    refused(OwnTracksConvention().decode, "owntracks/u/p",
            b'{"_type":"location","lat":1,"lon":2,"tst":1e308}', match="tst 1e.308 s")
    refused(NmeaFixAssembler("car").decode, nmea("GPZDA,120000.00,12345678901234567890,12,2024,00,00"),
            match="does not exist")
    refused(TextTemperatureCodec.csv(1).decode, b"room,23.5\x1e", "room", match="control character '\\\\x1e'")
    refused(TextTemperatureCodec().decode, b"23.5\x1e", "room", match="control character")
    refused(TextTemperatureCodec().decode, b"1" + b"0" * 400, "room",
            match=r"temperature '1000.*'\.\.\. \(401 characters\) is not a finite number")


@pytest.mark.parametrize("codec", HOSTILE_CODECS)
def test_every_hostile_frame_of_edge_sim_is_refused_naming_its_field(codec):
    """edge-sim --hostile's corpus (devices/simulator/_faults.py): each frame a dead letter
    whose reason names the field it names (``field``), none a reading, none 'unexpected'."""
    check = EventCheck()
    for name in hostile_names(codec):
        frame = hostile_frame(codec, "dev1", random.Random(1), NOW_MS, name=name)
        with pytest.raises(DecodeError) as info:
            if codec in SERIAL_HOSTILE:
                c = CODECS[codec](**({"framing": "hex"} if codec.startswith("gatt") else {}))
                readings = c.decode(frame.payload.rstrip(b"\r\n"), "dev1")
                readings += c.flush() if isinstance(c, NmeaFixAssembler) else []
            else:
                options = {"topic_pattern": "sensors/{device}", "fields": {"temperature": "temperature_c"},
                           "timestamp_field": "ts"} if codec == "json" else {}
                readings = CONVENTIONS[codec](**options).decode(mqtt_topic(codec, "dev1"), frame.payload)
            for r in readings:
                check_reading(r)
                check.earliest(r, r.timestamp_ms or NOW_MS)
                check.ahead(r, r.timestamp_ms or NOW_MS, NOW_MS)
            raise AssertionError(f"{codec} {name}: accepted as {readings}")
        reason = info.value.reason
        assert not reason.startswith("unexpected"), (name, reason)
        assert frame.field is None or re.search(frame.field, reason, re.I), (name, frame.field, reason)


# --- the table ---------------------------------------------------------------------


def test_every_range_holds_its_own_bounds_and_refuses_nan():
    for name, r in RANGES.items():
        for v in (r.low, r.high):
            check_reading(Reading("d", "temperature", "t", {name: v}))
        for v in (float("nan"), r.low - 1, r.high + 1):
            with pytest.raises(ReadingRejected, match=name):
                check_reading(Reading("d", "temperature", "t", {name: v}))


def test_overrides_replace_bounds_for_one_device():
    ds18b20 = with_overrides({"temperature_c": (-55, 125)})
    r = Reading("d", "temperature", "t", {"temperature_c": 130.0})
    check_reading(r)
    with pytest.raises(ReadingRejected, match=r"130.0 is outside -55..125 °C \(configured"):
        check_reading(r, ds18b20)
    with pytest.raises(ValueError, match="not a quantity"):
        with_overrides({"temprature_c": (0, 1)})


def test_docs_table_is_rendered_from_the_range_table():
    text = DOCS.read_text(encoding="utf-8")
    assert ranges_markdown() in text, "docs/ranges.md: paste devices.ranges_markdown() again"


def test_special_value_of_a_device_field_is_its_text():
    r = Reading("d", "temperature", "t", {"temperature_c": SpecialValue.POSITIVE_INFINITY})
    assert checked_event_value(r) == {"temperature_c": None, "temperature_c_status": "+INF"}
