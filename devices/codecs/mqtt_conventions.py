"""MQTT payload conventions that real deployments use.

Each convention is an object with ``topic_filter`` (what an adapter
subscribes to), ``decode(topic, payload) -> list[Reading]`` and
``encode(reading) -> (topic, payload)`` (for the simulator). ``decode``
returns ``[]`` for messages of the convention that carry no reading of ours
(bridge state, availability, a humidity-only sensor) and raises only
``DecodeError`` for messages it cannot read. The device id comes from the
topic or payload as each convention says.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from devices._errors import CodecConfigError, DecodeError, EncodeError
from devices._reading import KINDS, Reading, SpecialValue
from devices.codecs._base import Convention, guard_decode
from devices.codecs.gatt import (
    decode_blood_pressure,
    decode_temperature_measurement,
    encode_blood_pressure,
    encode_temperature_measurement,
    kpa_to_mmhg,
)

__all__ = [
    "CONVENTIONS",
    "BloodPressureJsonConvention",
    "EspHomeConvention",
    "GattHexConvention",
    "JsonMappingConvention",
    "OwnTracksConvention",
    "TasmotaConvention",
    "Zigbee2MqttConvention",
]


_decode_json = json.JSONDecoder().decode  # what json.loads uses for a str without options


def _json_object(payload: bytes, codec: str) -> dict[str, Any]:
    try:
        if type(payload) is bytes and len(payload) >= 2 and payload[0] == 0x7B and payload[1]:
            # "{" then not NUL: json.loads would detect UTF-8 (no BOM, not UTF-16/32);
            # decoding here, as it does, skips its detection, which costs per message.
            text = payload.decode("utf-8", "surrogatepass")
            obj = _decode_json(text)
        else:
            text = None
            obj = json.loads(bytes(payload))
    except RecursionError:
        raise DecodeError(payload, "payload nests deeper than the JSON reader follows "
                          f"({sys.getrecursionlimit()} levels)", codec) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(payload, f"payload is not JSON ({exc})", codec) from None
    if not isinstance(obj, dict):
        raise DecodeError(payload, f"payload is JSON {type(obj).__name__}, expected an object", codec)
    # A lone UTF-16 surrogate (an escape such as \ud800, or its bytes) is no Unicode text:
    # nothing downstream could encode it. Only a payload that might hold one is walked.
    if text is None or not text.isascii() or "\\u" in text:
        where = _lone_surrogate(obj)
        if where is not None:
            raise DecodeError(payload, f"{where} holds a lone UTF-16 surrogate: not Unicode text "
                              "(the device's JSON encoder is broken)", codec)
    return obj


def _lone_surrogate(obj: Any) -> str | None:
    """Where in ``obj`` (a key or a string value) a lone surrogate is, or None."""
    stack: list[tuple[str, Any]] = [("payload", obj)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                if not _encodable(k):
                    return f"a key of {path} ({k!r})"
                stack.append((f"{path}.{k}", item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(v))
        elif isinstance(v, str) and not _encodable(v):
            return f"{path} ({v!r})"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _number(obj: Mapping, key: str, payload: bytes, codec: str) -> float | None:
    v = obj.get(key)
    if v is None:
        return None
    # Exact types first (the usual case, several per message); bool is not int by type().
    t = type(v)
    if t is float and math.isfinite(v):
        return v
    if t is int:
        try:
            return float(v)
        except OverflowError:  # past 1.8e308: no measurement (a try costs nothing until then)
            raise DecodeError(payload, f"field {key!r} is an integer of {len(str(abs(v)))} "
                              "digits, beyond any measurement", codec) from None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise DecodeError(payload, f"field {key!r} is {v!r}, expected a number", codec)
    return float(v)


# Event times a codec can represent: year 1 to 9999 (datetime's range; also inside int64 ms).
# The service's narrower window (2000 to a day ahead) is applied to every event, not here.
# Floats, as the times they are compared with: an int against a float compares slowly.
_MIN_MS, _MAX_MS = -62_135_596_800_000.0, 253_402_300_799_999.0


def _epoch_ms(v: float, unit_ms: int, what: str, payload: bytes, codec: str) -> int:
    """Epoch time ``v`` (in units of ``unit_ms`` ms) as int ms; refuses what is not a time."""
    ms = v * unit_ms
    if not _MIN_MS <= ms <= _MAX_MS:  # also NaN and ±inf
        unit = "s" if unit_ms == 1000 else "ms"
        raise DecodeError(payload, f"{what} {v!r} {unit} since 1970 is not a time between the "
                          "years 1 and 9999", codec)
    return int(ms)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


# --- Zigbee2MQTT ----------------------------------------------------------


_Z2M_FIELDS = {  # payload key -> event field
    "temperature": "temperature_c",
    "humidity": "humidity_pct",
    "pressure": "pressure_hpa",
    "battery": "battery_pct",
    "voltage": "voltage_mv",
    "linkquality": "linkquality",
}


class Zigbee2MqttConvention:
    """``<base>/<friendly_name>`` with a JSON object; the name may contain ``/``.

    Messages with a ``temperature`` become temperature readings (humidity,
    battery, link quality kept); a device message without one is a
    ``DecodeError`` (dead-lettered, so it never vanishes); bridge topics and
    ``/set``-style subtopics give ``[]``.
    """

    name = "zigbee2mqtt"

    def __init__(self, base_topic: str = "zigbee2mqtt") -> None:
        self.base_topic = base_topic.rstrip("/")
        self.topic_filter = f"{self.base_topic}/#"

    @guard_decode("zigbee2mqtt")
    def decode(self, topic: str, payload: bytes) -> list[Reading]:
        prefix = self.base_topic + "/"
        if not topic.startswith(prefix) or len(topic) == len(prefix):
            raise DecodeError(payload, f"topic {topic!r} is not under {prefix!r}", self.name)
        name = topic[len(prefix) :]
        if name.startswith("bridge/") or name.rsplit("/", 1)[-1] in ("set", "get", "availability"):
            return []
        obj = _json_object(payload, self.name)
        if obj.get("temperature") is None:
            # Dead-lettered, not dropped: a sensor that stopped reporting temperature (or a
            # device that is no thermometer under the subscription) must show, not vanish.
            raise DecodeError(payload, f"{name}: no 'temperature' in the message (narrow the "
                              "device's filters if it is no thermometer)", self.name)
        values: dict[str, Any] = {}
        for src, dst in _Z2M_FIELDS.items():
            v = _number(obj, src, payload, self.name)
            if v is not None:
                values[dst] = int(v) if src == "linkquality" else v
        return [Reading(name, "temperature", self.name, values)]

    def encode(self, reading: Reading) -> tuple[str, bytes]:
        obj = {src: reading.values[dst] for src, dst in _Z2M_FIELDS.items() if dst in reading.values}
        if "temperature" not in obj:
            raise EncodeError("zigbee2mqtt: reading has no temperature_c")
        return f"{self.base_topic}/{reading.device_id}", _dumps(obj)


# --- Tasmota --------------------------------------------------------------


class TasmotaConvention:
    """``tele/<topic>/SENSOR`` JSON, one reading per sensor with a ``Temperature``.

    Device id ``<topic>/<sensor Id>`` (the DS18B20 ROM id, stable when
    Tasmota renames ``DS18B20`` to ``DS18B20-1``), else ``<topic>/<sensor>``.
    ``Time`` is the device's local time with no zone: kept as
    ``device_time``, not used as the timestamp.
    """

    name = "tasmota"
    topic_filter = "tele/+/SENSOR"
    _TOPIC = re.compile(r"^tele/([^/]+)/SENSOR$")

    @guard_decode("tasmota")
    def decode(self, topic: str, payload: bytes) -> list[Reading]:
        m = self._TOPIC.match(topic)
        if m is None:
            if topic.startswith("tele/"):
                return []  # STATE, LWT, ... : not sensor readings
            raise DecodeError(payload, f"topic {topic!r} is not tele/<topic>/SENSOR", self.name)
        obj = _json_object(payload, self.name)
        unit = obj.get("TempUnit", "C")
        if unit not in ("C", "F"):
            raise DecodeError(payload, f"TempUnit {unit!r} is neither C nor F", self.name)
        out = []
        for key, sensor in obj.items():
            if not isinstance(sensor, dict) or "Temperature" not in sensor:
                continue
            t = _number(sensor, "Temperature", payload, self.name)
            if t is None:
                continue
            if t == -127.0 and unit == "C":
                raise DecodeError(payload, f"{key}: -127 °C is the DS18B20 'disconnected' value", self.name)
            values: dict[str, Any] = {"sensor": key}
            if unit == "F":
                values.update(temperature_c=round((t - 32) * 5 / 9, 3), unit_original="F", temperature_f=t)
            else:
                values["temperature_c"] = t
            if sensor.get("Id"):
                values["sensor_id"] = str(sensor["Id"])
            hum = _number(sensor, "Humidity", payload, self.name)
            if hum is not None:
                values["humidity_pct"] = hum
            if isinstance(obj.get("Time"), str):
                values["device_time"] = obj["Time"]
            dev = f"{m.group(1)}/{values.get('sensor_id', key)}"
            out.append(Reading(dev, "temperature", self.name, values))
        if not out:
            raise DecodeError(payload, "no sensor with a Temperature in the SENSOR message",
                              self.name)
        return out

    def encode(self, reading: Reading) -> tuple[str, bytes]:
        v = reading.values
        topic, _, _ = reading.device_id.partition("/")
        sensor: dict[str, Any] = {}
        if v.get("sensor_id"):
            sensor["Id"] = v["sensor_id"]
        unit = "F" if v.get("unit_original") == "F" else "C"
        t = v.get("temperature_f") if unit == "F" else v.get("temperature_c")
        if t is None:
            raise EncodeError("tasmota: reading has no temperature")
        sensor["Temperature"] = t
        if v.get("humidity_pct") is not None:
            sensor["Humidity"] = v["humidity_pct"]
        obj: dict[str, Any] = {}
        if v.get("device_time"):
            obj["Time"] = v["device_time"]
        obj[v.get("sensor", "DS18B20")] = sensor
        obj["TempUnit"] = unit
        return f"tele/{topic}/SENSOR", _dumps(obj)


# --- ESPHome --------------------------------------------------------------


class EspHomeConvention:
    """``<node>/sensor/<object_id>/state`` with a plain number.

    Object ids containing one of ``temperature_words`` are temperatures in
    °C; other sensors and ``<node>/status`` give ``[]``. Device id is the
    node. ESPHome publishes ``nan`` when a sensor has no value: a reading
    whose ``temperature_c`` is ``SpecialValue.NAN`` (an explicit null with
    status ``"NaN"`` in the event); ``inf`` is a ``DecodeError``.
    """

    name = "esphome"
    topic_filter = "+/sensor/+/state"

    def __init__(self, temperature_words: tuple[str, ...] = ("temp",)) -> None:
        self.temperature_words = temperature_words

    @guard_decode("esphome")
    def decode(self, topic: str, payload: bytes) -> list[Reading]:
        parts = topic.split("/")
        if len(parts) == 2 and parts[1] == "status":
            return []
        if len(parts) != 4 or parts[1] != "sensor" or parts[3] != "state":
            if len(parts) >= 2 and parts[1] in ("binary_sensor", "text_sensor", "switch", "debug"):
                return []
            raise DecodeError(payload, f"topic {topic!r} is not <node>/sensor/<name>/state", self.name)
        node, object_id = parts[0], parts[2]
        if not node:
            raise DecodeError(payload, f"topic {topic!r} has no node name before /sensor/", self.name)
        if not any(w in object_id.lower() for w in self.temperature_words):
            return []
        text = bytes(payload).decode("ascii", "replace").strip()
        try:
            value = float(text)
        except ValueError:
            raise DecodeError(payload, f"state {text!r} is not a number", self.name) from None
        if math.isnan(value):  # the sensor's "no reading": said so, not dropped
            temperature: float | SpecialValue = SpecialValue.NAN
        elif math.isinf(value):
            raise DecodeError(payload, f"sensor {object_id!r} sent {text!r}, not a temperature", self.name)
        else:
            temperature = value
        return [Reading(node, "temperature", self.name, {"temperature_c": temperature, "sensor": object_id})]

    def encode(self, reading: Reading) -> tuple[str, bytes]:
        t = reading.values.get("temperature_c")
        object_id = reading.values.get("sensor", "temperature")
        topic = f"{reading.device_id}/sensor/{object_id}/state"
        if t is SpecialValue.NAN:
            return topic, b"nan"
        if not isinstance(t, int | float):
            raise EncodeError(f"esphome: temperature_c must be a number, got {t!r}")
        return topic, repr(float(t)).encode()


# --- OwnTracks ------------------------------------------------------------

_OT_FIELDS = {"alt": "alt_m", "acc": "accuracy_m", "cog": "course_deg", "batt": "battery_pct"}


class OwnTracksConvention:
    """``owntracks/<user>/<device>`` with ``{"_type": "location", ...}``.

    Device id ``<user>/<device>``; ``vel`` (km/h) becomes ``speed_mps``;
    ``tst`` (epoch seconds) the timestamp. Other ``_type``s give ``[]``.
    """

    name = "owntracks"
    topic_filter = "owntracks/+/+"

    @guard_decode("owntracks")
    def decode(self, topic: str, payload: bytes) -> list[Reading]:
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != "owntracks":
            raise DecodeError(payload, f"topic {topic!r} is not owntracks/<user>/<device>", self.name)
        if len(parts) > 3:
            return []  # .../event, .../cmd, .../info
        obj = _json_object(payload, self.name)
        if obj.get("_type") != "location":
            return []
        lat, lon = _number(obj, "lat", payload, self.name), _number(obj, "lon", payload, self.name)
        if lat is None or lon is None:
            raise DecodeError(payload, "location without lat/lon", self.name)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise DecodeError(payload, f"position {lat}, {lon} is off the globe", self.name)
        values: dict[str, Any] = {"lat": lat, "lon": lon}
        vel = _number(obj, "vel", payload, self.name)
        if vel is not None:
            values["speed_mps"] = round(vel / 3.6, 4)
        for src, dst in _OT_FIELDS.items():
            v = _number(obj, src, payload, self.name)
            if v is not None:
                values[dst] = v
        if isinstance(obj.get("tid"), str):
            values["tracker_id"] = obj["tid"]
        tst = _number(obj, "tst", payload, self.name)
        ts = _epoch_ms(tst, 1000, "tst", payload, self.name) if tst is not None else None
        return [Reading(f"{parts[1]}/{parts[2]}", "gps", self.name, values, ts)]

    def encode(self, reading: Reading) -> tuple[str, bytes]:
        v = reading.values
        user, sep, device = reading.device_id.partition("/")
        if not sep:
            user, device = "sim", reading.device_id
        if v.get("lat") is None or v.get("lon") is None:
            raise EncodeError(f"owntracks: reading of {reading.device_id!r} has no lat/lon (kind {reading.kind!r})")
        obj: dict[str, Any] = {"_type": "location", "lat": v["lat"], "lon": v["lon"]}
        if reading.timestamp_ms is not None:
            obj["tst"] = reading.timestamp_ms // 1000
        if v.get("speed_mps") is not None:
            obj["vel"] = round(v["speed_mps"] * 3.6)
        for src, dst in _OT_FIELDS.items():
            if v.get(dst) is not None:
                obj[src] = v[dst]
        if v.get("tracker_id"):
            obj["tid"] = v["tracker_id"]
        return f"owntracks/{user}/{device}", _dumps(obj)


# --- Blood pressure: our JSON, and 0x2A35 as hex for BLE gateways --------

_SPECIALS = {s.value: s for s in SpecialValue}


class BloodPressureJsonConvention:
    """Ours, since no common convention carries blood pressure.

    Topic ``<prefix>/<device_id>``, payload::

        {"systolic": 120, "diastolic": 80, "map": 93, "pulse": 72,
         "unit": "mmHg", "time": 1700000000000, "user_id": 1}

    ``unit`` is ``mmHg`` (default) or ``kPa``; ``map``, ``pulse``,
    ``time`` (epoch ms) and ``user_id`` are optional; a value may be one of
    the IEEE-11073 special strings ``"NaN"``, ``"NRes"``, ``"+INF"``,
    ``"-INF"``.
    """

    name = "bp.json"

    def __init__(self, prefix: str = "bp") -> None:
        self.prefix = prefix.rstrip("/")
        self.topic_filter = f"{self.prefix}/#"

    def _val(self, obj: Mapping, key: str, payload: bytes) -> Any:
        v = obj.get(key)
        if isinstance(v, str) and v in _SPECIALS:
            return _SPECIALS[v]
        return _number(obj, key, payload, self.name)

    @guard_decode("bp.json")
    def decode(self, topic: str, payload: bytes) -> list[Reading]:
        prefix = self.prefix + "/"
        if not topic.startswith(prefix) or len(topic) == len(prefix):
            raise DecodeError(payload, f"topic {topic!r} is not {prefix}<device_id>", self.name)
        obj = _json_object(payload, self.name)
        unit = obj.get("unit", "mmHg")
        if unit not in ("mmHg", "kPa"):
            raise DecodeError(payload, f"unit {unit!r} is neither mmHg nor kPa", self.name)
        names = {"systolic": "systolic", "diastolic": "diastolic", "map": "mean_arterial_pressure"}
        values: dict[str, Any] = {}
        for src, dst in names.items():
            v = self._val(obj, src, payload)
            if v is None:
                if src == "map":
                    continue
                raise DecodeError(payload, f"missing {src!r}", self.name)
            values[f"{dst}_mmhg"] = kpa_to_mmhg(v) if unit == "kPa" else v
            if unit == "kPa":
                values[f"{dst}_kpa"] = v
        values["unit_original"] = unit
        pulse = self._val(obj, "pulse", payload)
        if pulse is not None:
            values["pulse_bpm"] = pulse
        uid = obj.get("user_id")
        if uid is not None:
            if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid <= 255:
                raise DecodeError(payload, f"user_id {uid!r} is not 0..255", self.name)
            values["user_id"] = uid
        t = _number(obj, "time", payload, self.name)
        ts = None if t is None else _epoch_ms(t, 1, "time", payload, self.name)
        return [Reading(topic[len(prefix) :], "blood_pressure", self.name, values, ts)]

    def encode(self, reading: Reading) -> tuple[str, bytes]:
        v = reading.values
        unit = v.get("unit_original", "mmHg")
        names = {"systolic": "systolic", "diastolic": "diastolic", "map": "mean_arterial_pressure"}
        obj: dict[str, Any] = {}
        for dst, src in names.items():
            key = f"{src}_kpa" if unit == "kPa" else f"{src}_mmhg"
            if key in v:
                obj[dst] = _plain(v[key])
            elif dst != "map":
                raise EncodeError(f"bp.json: reading has no {key!r}")
        if v.get("pulse_bpm") is not None:
            obj["pulse"] = _plain(v["pulse_bpm"])
        obj["unit"] = unit
        if v.get("user_id") is not None:
            obj["user_id"] = v["user_id"]
        if reading.timestamp_ms is not None:
            obj["time"] = reading.timestamp_ms
        return f"{self.prefix}/{reading.device_id}", _dumps(obj)


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, SpecialValue) else v


class GattHexConvention:
    """GATT characteristic values as hex text, as BLE-to-MQTT gateways send.

    Topic ``<prefix>/<device_id>/<uuid>`` with uuid ``2A35`` (blood pressure)
    or ``2A1C`` (temperature), payload the value in hex (spaces allowed).
    """

    name = "gatt.hex"

    def __init__(self, prefix: str = "ble") -> None:
        self.prefix = prefix.rstrip("/")
        self.topic_filter = f"{self.prefix}/+/+"

    @guard_decode("gatt.hex")
    def decode(self, topic: str, payload: bytes) -> list[Reading]:
        prefix = self.prefix + "/"
        device, _, uuid = topic[len(prefix) :].rpartition("/")
        if not topic.startswith(prefix) or not device:
            raise DecodeError(payload, f"topic {topic!r} is not {prefix}<device_id>/<uuid>", self.name)
        decoders: dict[str, Callable[[bytes, str], Reading]] = {
            "2a35": decode_blood_pressure,
            "2a1c": decode_temperature_measurement,
        }
        dec = decoders.get(uuid.lower().removeprefix("0x"))
        if dec is None:
            return []  # a characteristic we do not read (battery level, ...)
        text = bytes(payload).strip().replace(b" ", b"").replace(b":", b"")
        try:
            data = bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise DecodeError(payload, "payload is not hex text", self.name) from None
        try:
            return [dec(data, device)]
        except DecodeError as exc:
            raise DecodeError(payload, exc.reason, exc.codec) from None

    def encode(self, reading: Reading) -> tuple[str, bytes]:
        if reading.kind == "blood_pressure":
            uuid, data = "2A35", encode_blood_pressure(reading)
        elif reading.kind == "temperature":
            uuid, data = "2A1C", encode_temperature_measurement(reading)
        else:
            raise EncodeError(f"gatt.hex: no characteristic for kind {reading.kind!r}")
        return f"{self.prefix}/{reading.device_id}/{uuid}", data.hex().upper().encode()


# --- Generic JSON mapping -------------------------------------------------


class JsonMappingConvention:
    """Anything else: a topic pattern gives the device id, a field map the values.

    ``topic_pattern`` is an MQTT-style pattern where ``{device}`` stands for
    one topic level holding the device id (``+`` and a final ``#`` match
    anything), e.g. ``"sensors/{device}/climate"``; or give ``device_id``
    for a fixed id. ``fields`` maps a dotted JSON path in the payload to an
    event field (``{"env.temp": "temperature_c"}``). ``timestamp_field`` is
    a dotted path to epoch time in ``timestamp_unit`` (``"s"`` or ``"ms"``).
    Raises ``CodecConfigError`` on a bad configuration.
    """

    name = "json"

    def __init__(
        self,
        topic_pattern: str,
        fields: Mapping[str, str],
        kind: str = "temperature",
        *,
        device_id: str | None = None,
        timestamp_field: str | None = None,
        timestamp_unit: str = "s",
        schema: str = "json",
    ) -> None:
        if kind not in KINDS:
            raise CodecConfigError(f"json mapping: kind must be one of {sorted(KINDS)}, got {kind!r}")
        if not fields:
            raise CodecConfigError("json mapping: fields must map at least one JSON path to a field")
        if ("{device}" in topic_pattern) == (device_id is not None):
            raise CodecConfigError(
                f"json mapping: give either '{{device}}' in topic_pattern or device_id, "
                f"got topic_pattern={topic_pattern!r}, device_id={device_id!r}"
            )
        if timestamp_unit not in ("s", "ms"):
            raise CodecConfigError(f"json mapping: timestamp_unit must be 's' or 'ms', got {timestamp_unit!r}")
        self.topic_pattern = topic_pattern
        self.fields = dict(fields)
        self.kind = kind
        self.device_id = device_id
        self.timestamp_field = timestamp_field
        self.timestamp_unit = timestamp_unit
        self.name = schema
        regex = []
        levels = topic_pattern.split("/")
        for i, level in enumerate(levels):
            if level == "{device}":
                regex.append("(?P<device>[^/]+)")
            elif level == "+":
                regex.append("[^/]+")
            elif level == "#" and i == len(levels) - 1:
                regex.append(".*")
            elif "+" in level or "#" in level or "{" in level:
                raise CodecConfigError(f"json mapping: bad topic level {level!r} in {topic_pattern!r}")
            else:
                regex.append(re.escape(level))
        self._regex = re.compile("^" + "/".join(regex) + "$")
        self.topic_filter = "/".join("+" if lv == "{device}" else lv for lv in levels)

    def decode(self, topic: str, payload: bytes) -> list[Reading]:
        return _guarded_json_decode(self, topic, payload)

    def _decode(self, topic: str, payload: bytes) -> list[Reading]:
        m = self._regex.match(topic)
        if m is None:
            raise DecodeError(payload, f"topic {topic!r} does not match {self.topic_pattern!r}", self.name)
        device = self.device_id or m.group("device")
        obj = _json_object(payload, self.name)
        values: dict[str, Any] = {}
        for path, dst in self.fields.items():
            v = _dig(obj, path)
            if v is not None:
                if isinstance(v, float) and not math.isfinite(v):
                    raise DecodeError(payload, f"field {path!r} is {v}", self.name)
                values[dst] = v
        if not values:
            raise DecodeError(payload, f"none of the fields {sorted(self.fields)} is in the payload", self.name)
        ts = None
        if self.timestamp_field:
            t = _dig(obj, self.timestamp_field)
            if t is not None:
                if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
                    raise DecodeError(payload, f"timestamp {self.timestamp_field!r} is {t!r}, expected a number", self.name)
                ts = _epoch_ms(t, 1000 if self.timestamp_unit == "s" else 1,
                               f"timestamp {self.timestamp_field!r}", payload, self.name)
        return [Reading(device, self.kind, self.name, values, ts)]

    def encode(self, reading: Reading) -> tuple[str, bytes]:
        obj: dict[str, Any] = {}
        for path, dst in self.fields.items():
            if dst in reading.values:
                _put(obj, path, _plain(reading.values[dst]))
        if self.timestamp_field and reading.timestamp_ms is not None:
            t = reading.timestamp_ms / 1000 if self.timestamp_unit == "s" else reading.timestamp_ms
            _put(obj, self.timestamp_field, t)
        topic = self.topic_filter.replace("+", reading.device_id, 1) if self.device_id is None else self.topic_filter
        topic = topic.replace("/#", "").replace("+", "x")
        return topic, _dumps(obj)


@guard_decode("json")
def _guarded_json_decode(conv: JsonMappingConvention, topic: str, payload: bytes) -> list[Reading]:
    return conv._decode(topic, payload)


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _put(obj: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
    obj[last] = value


#: Convention name (as a config writes it) -> factory of a convention object.
CONVENTIONS: dict[str, Callable[..., Convention]] = {
    "bp.json": BloodPressureJsonConvention,
    "esphome": EspHomeConvention,
    "gatt.hex": GattHexConvention,
    "json": JsonMappingConvention,
    "owntracks": OwnTracksConvention,
    "tasmota": TasmotaConvention,
    "zigbee2mqtt": Zigbee2MqttConvention,
}
