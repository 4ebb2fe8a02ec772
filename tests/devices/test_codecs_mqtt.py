"""MQTT payload conventions: real-shaped payloads, round trips, fuzzing."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import (
    CONVENTIONS,
    CodecConfigError,
    DecodeError,
    Reading,
    SpecialValue,
    encode_blood_pressure,
)
from devices.codecs.mqtt_conventions import (
    BloodPressureJsonConvention,
    EspHomeConvention,
    GattHexConvention,
    JsonMappingConvention,
    OwnTracksConvention,
    TasmotaConvention,
    Zigbee2MqttConvention,
)


def test_zigbee2mqtt():
    conv = Zigbee2MqttConvention()
    [r] = conv.decode("zigbee2mqtt/living room/aqara", b'{"temperature":21.3,"humidity":48.2,"battery":97,"linkquality":120}')
    assert r.device_id == "living room/aqara"
    assert r.values == {"temperature_c": 21.3, "humidity_pct": 48.2, "battery_pct": 97.0, "linkquality": 120}
    assert conv.decode("zigbee2mqtt/bridge/state", b'{"state":"online"}') == []
    with pytest.raises(DecodeError, match="plug: no 'temperature'"):  # dead-lettered, not lost
        conv.decode("zigbee2mqtt/plug", b'{"state":"ON"}')
    assert conv.decode(*conv.encode(r)) == [r]


def test_tasmota_two_ds18b20():
    payload = (b'{"Time":"2021-07-17T17:29:51","DS18B20-1":{"Id":"000003287EF1","Temperature":24.7},'
               b'"DS18B20-2":{"Id":"0000032A1B2C","Temperature":19.1},"TempUnit":"C"}')
    a, b = TasmotaConvention().decode("tele/boiler/SENSOR", payload)
    assert (a.device_id, a.values["temperature_c"]) == ("boiler/000003287EF1", 24.7)
    assert (b.device_id, b.values["temperature_c"]) == ("boiler/0000032A1B2C", 19.1)
    assert a.values["device_time"] == "2021-07-17T17:29:51" and a.timestamp_ms is None
    assert TasmotaConvention().decode(*TasmotaConvention().encode(a)) == [a]
    assert TasmotaConvention().decode("tele/boiler/STATE", b"{}") == []
    with pytest.raises(DecodeError, match="disconnected"):
        TasmotaConvention().decode("tele/b/SENSOR", b'{"DS18B20":{"Temperature":-127.0},"TempUnit":"C"}')


def test_esphome():
    conv = EspHomeConvention()
    [r] = conv.decode("kitchen/sensor/kitchen_temperature/state", b"22.4")
    assert (r.device_id, r.values["temperature_c"]) == ("kitchen", 22.4)
    assert conv.decode("kitchen/status", b"online") == []
    assert conv.decode("kitchen/sensor/humidity/state", b"40") == []
    # ESPHome's "no reading": an explicit null with its status in the event, not a dead letter.
    [none] = conv.decode("kitchen/sensor/temperature/state", b"nan")
    assert none.values["temperature_c"] is SpecialValue.NAN
    assert none.to_event_value()["temperature_c"] is None
    assert conv.decode(*conv.encode(none)) == [none]
    with pytest.raises(DecodeError, match="not a temperature"):
        conv.decode("kitchen/sensor/temperature/state", b"inf")
    assert conv.decode(*conv.encode(r)) == [r]


def test_owntracks():
    conv = OwnTracksConvention()
    payload = b'{"_type":"location","tid":"jd","lat":52.5163,"lon":13.3777,"tst":1700000000,"acc":12,"alt":34,"vel":36,"batt":80}'
    [r] = conv.decode("owntracks/jane/phone", payload)
    assert r.device_id == "jane/phone" and r.timestamp_ms == 1700000000000
    assert r.values["speed_mps"] == 10.0 and r.values["lat"] == 52.5163
    assert conv.decode(*conv.encode(r)) == [r]
    assert conv.decode("owntracks/jane/phone", b'{"_type":"transition"}') == []


def test_blood_pressure_json_and_specials():
    conv = BloodPressureJsonConvention()
    [r] = conv.decode("bp/ward3-bed2", b'{"systolic":16.0,"diastolic":10.7,"unit":"kPa","pulse":"NaN","time":1700000000000}')
    assert r.values["systolic_mmhg"] == 120.01 and r.values["systolic_kpa"] == 16.0
    assert r.values["pulse_bpm"] is SpecialValue.NAN
    assert r.timestamp_ms == 1700000000000
    assert conv.decode(*conv.encode(r)) == [r]
    with pytest.raises(DecodeError, match="missing"):
        conv.decode("bp/x", b'{"systolic":120}')


def test_gatt_hex_gateway():
    bp = Reading("cuff", "blood_pressure", "gatt.0x2A35",
                 {"systolic_mmhg": 120.0, "diastolic_mmhg": 80.0, "mean_arterial_pressure_mmhg": 93.0, "unit_original": "mmHg"})
    conv = GattHexConvention()
    topic, payload = conv.encode(bp)
    assert topic == "ble/cuff/2A35" and payload == encode_blood_pressure(bp).hex().upper().encode()
    assert conv.decode(topic, payload) == [bp]
    assert conv.decode("ble/cuff/2A19", b"64") == []
    with pytest.raises(DecodeError) as info:
        conv.decode("ble/cuff/2A35", b"0078")
    assert info.value.raw == b"0078"


def test_generic_json_mapping():
    conv = JsonMappingConvention("site/+/{device}/climate", {"env.t": "temperature_c", "env.rh": "humidity_pct"},
                                 timestamp_field="ts", timestamp_unit="ms")
    assert conv.topic_filter == "site/+/+/climate"
    [r] = conv.decode("site/a/room9/climate", b'{"env":{"t":20.5,"rh":40},"ts":1700000000123}')
    assert (r.device_id, r.values, r.timestamp_ms) == ("room9", {"temperature_c": 20.5, "humidity_pct": 40}, 1700000000123)
    topic, payload = conv.encode(r)
    assert json.loads(payload) == {"env": {"t": 20.5, "rh": 40}, "ts": 1700000000123}
    with pytest.raises(DecodeError, match="does not match"):
        conv.decode("other/room9", b"{}")


@pytest.mark.parametrize("kwargs", [
    {"topic_pattern": "a/b", "fields": {"t": "temperature_c"}},
    {"topic_pattern": "a/{device}", "fields": {}},
    {"topic_pattern": "a/{device}", "fields": {"t": "x"}, "kind": "pressure"},
    {"topic_pattern": "a/b+/{device}", "fields": {"t": "x"}},
])
def test_generic_json_bad_config(kwargs):
    with pytest.raises(CodecConfigError):
        JsonMappingConvention(**kwargs)


CASES = [
    (Zigbee2MqttConvention(), "zigbee2mqtt/x", b'{"temperature":1}'),
    (TasmotaConvention(), "tele/x/SENSOR", b'{"DS18B20":{"Temperature":1},"TempUnit":"C"}'),
    (EspHomeConvention(), "x/sensor/temperature/state", b"1.5"),
    (OwnTracksConvention(), "owntracks/u/d", b'{"_type":"location","lat":1,"lon":2,"tst":3}'),
    (BloodPressureJsonConvention(), "bp/x", b'{"systolic":120,"diastolic":80}'),
    (GattHexConvention(), "ble/x/2A35", b"00780050005D00"),
    (JsonMappingConvention("s/{device}", {"a.b": "temperature_c"}), "s/x", b'{"a":{"b":1}}'),
]


def test_registry_names_every_convention():
    assert set(CONVENTIONS) == {"zigbee2mqtt", "tasmota", "esphome", "owntracks", "bp.json", "gatt.hex", "json"}


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=60), st.text(max_size=30))
def test_fuzz_random(payload, topic):
    for conv, good_topic, _ in CASES:
        for t in (topic, good_topic):
            try:
                conv.decode(t, payload)
            except DecodeError:
                pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(CASES) - 1), st.dictionaries(st.sampled_from(
    ["temperature", "Temperature", "DS18B20", "lat", "lon", "tst", "systolic", "diastolic", "a", "_type", "TempUnit", "unit", "pulse"]),
    json_values, max_size=5))
def test_fuzz_mutated_json(index, extra):
    conv, topic, payload = CASES[index]
    obj = json.loads(payload) if payload.startswith(b"{") else {}
    obj.update(extra)
    try:
        conv.decode(topic, json.dumps(obj).encode())
    except DecodeError:
        pass


def test_owntracks_refuses_to_encode_a_reading_without_a_position() -> None:
    from devices import EncodeError, Reading
    from devices.codecs.mqtt_conventions import OwnTracksConvention

    reading = Reading("room-1", "temperature", "text", {"temperature_c": 21.5})
    with pytest.raises(EncodeError, match="no lat/lon"):
        OwnTracksConvention().encode(reading)
