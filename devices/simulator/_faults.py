"""Fault injection on encoded frames (pure, driven by a seeded Random)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    """Probabilities per emitted reading (0..1) of each fault; `burst_size` readings per burst."""

    corrupt: float = 0.0  # break the checksum (NMEA) or a byte (other formats)
    garbage: float = 0.0  # a line of random bytes before the frame
    truncate: float = 0.0  # cut the frame short
    unplug: float = 0.0  # serial only: close the pty and open a new one
    burst: float = 0.0  # the next `burst_size` readings without pacing
    burst_size: int = 20
    hostile: float = 0.0  # a hostile frame (see `hostile_frame`) before the reading
    max_payload: int | None = None  # MQTT: the device's limit; adds 'oversized' frames

    def __post_init__(self) -> None:
        if self.max_payload is not None and self.max_payload < 1:
            raise ValueError(f"max_payload must be >= 1 byte, got {self.max_payload!r}")
        for name in ("corrupt", "garbage", "truncate", "unplug", "burst", "hostile"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fault rate {name} must be within 0..1, got {p!r}")
        if self.burst_size < 1:
            raise ValueError(f"burst_size must be >= 1, got {self.burst_size!r}")


def corrupt_frame(frame: bytes, rng: random.Random) -> bytes:
    """Damage `frame` so that a decoder must refuse it, keeping its line ending."""
    body, end = _split_end(frame)
    if body.startswith(b"$") and b"*" in body:
        # Wrong checksum on every sentence of the epoch: the fix must not appear.
        lines = [ln for ln in frame.split(b"\n") if ln]
        out = []
        for ln in lines:
            ln = ln.rstrip(b"\r")
            star = ln.rfind(b"*")
            good = ln[star + 1 : star + 3]
            bad = b"00" if good != b"00" else b"FF"
            out.append(ln[: star + 1] + bad + b"\r\n")
        return b"".join(out)
    if not body:
        return b"\xff" + end
    i = rng.randrange(len(body))
    # 0xFF is neither ASCII text, hex, nor valid UTF-8: refused by every text codec.
    return body[:i] + b"\xff" + body[i + 1 :] + end


def truncate_frame(frame: bytes, rng: random.Random) -> bytes:
    """The first part of `frame` (at least one byte shorter), with its line ending kept."""
    body, end = _split_end(frame)
    if len(body) <= 1:
        return end
    return body[: rng.randrange(1, len(body))] + end


def garbage(rng: random.Random, newline: bool = True) -> bytes:
    """A burst of line noise: random non-newline bytes, then a newline if asked."""
    n = rng.randint(3, 40)
    noise = bytes(b for b in rng.randbytes(n) if b not in (0x0A, 0x0D)) or b"\x00"
    return noise + (b"\n" if newline else b"")


def _split_end(frame: bytes) -> tuple[bytes, bytes]:
    if frame.endswith(b"\r\n"):
        return frame[:-2], b"\r\n"
    if frame.endswith(b"\n"):
        return frame[:-1], b"\n"
    return frame, b""


# --- hostile frames -----------------------------------------------------------------------
#
# Frames a broken or malicious device sends that are well-formed enough to get past the
# first checks (valid NMEA checksums, valid JSON, the right length of GATT bytes) but hold
# a value no physical device reports, or bytes that trip a parser. Each must end as a dead
# letter with its reason, never as a reading, never restarting the device. They are
# pure functions of a seeded Random, so a fuzz run replays from its seed.


@dataclass(frozen=True)
class HostileFrame:
    """One hostile frame addressed to a device speaking `codec`.

    ``payload`` is the frame as sent (serial: with its line ending); ``topic`` the MQTT
    topic (None on a serial line); ``field`` the value a range check must refuse, as words
    its reason must contain one of ('speed|course'), None for frames that must not parse.
    """

    codec: str
    name: str
    payload: bytes
    topic: str | None = None
    field: str | None = None

    def to_truth(self, device_id: str) -> dict[str, object]:
        """The simulator's truth-file row for this frame."""
        return {"type": "hostile", "device_id": device_id, "codec": self.codec, "name": self.name,
                "topic": self.topic, "field": self.field, "raw_hex": self.payload.hex()}


_BIG_INT = "1" + "0" * 400  # a JSON integer too large for a float
_DEEP = 100_000  # nesting depth beyond any parser's recursion limit


def _hhmmss(t_ms: int) -> tuple[str, str]:
    s = (t_ms // 1000) % 86400
    return f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}.{t_ms % 1000 // 10:02d}", "141123"


def _noise(rng: random.Random, serial: bool) -> bytes:
    # 0xFF first: not '$', not hex, not UTF-8, so no codec can take the rest for a frame.
    body = rng.randbytes(rng.randint(3, 60))
    if serial:
        body = bytes(b for b in body if b not in (0x0A, 0x0D))
    return b"\xff" + body


def _nmea(t_ms: int, rng: random.Random) -> list[tuple[str, bytes, str | None]]:
    from devices.codecs.nmea import nmea_sentence

    hms, dmy = _hhmmss(t_ms)
    pos = ["5231.20012", "N", "01324.29934", "E"]

    def rmc(speed: str, course: str) -> bytes:
        return nmea_sentence("GP", "RMC", [hms, "A", *pos, speed, course, dmy, "", "", "A"])

    def gga(sats: str, hdop: str, alt: str) -> bytes:
        return nmea_sentence("GP", "GGA", [hms, *pos, "1", sats, hdop, alt, "M", "", "", "", ""])

    def gsa(pdop: str, hdop: str, vdop: str) -> bytes:
        return nmea_sentence("GP", "GSA", ["A", "3", *[""] * 12, pdop, hdop, vdop])

    return [
        ("rmc-negative-speed-course-400", rmc("-5.0", "400.0"), "speed|course"),
        ("rmc-speed-nan", rmc("nan", "10.0"), "speed"),
        ("rmc-speed-inf", rmc("inf", "10.0"), "speed"),
        ("rmc-course-1e309", rmc("1.0", "1e309"), "course"),
        ("gga-negative-satellites", gga("-3", "1.0", "30.0"), "satellites"),
        ("gga-negative-hdop", gga("08", "-1.5", "30.0"), "hdop"),
        ("gga-altitude-inf", gga("08", "1.0", "inf"), "alt"),
        ("gga-altitude-1e309", gga("08", "1.0", "1e309"), "alt"),
        ("gsa-negative-dop", gsa("-2.0", "-1.0", "-1.5"), "dop"),
        ("zda-20-digit-day", nmea_sentence("GP", "ZDA", [hms, "1" * 20, "11", "2023", "00", "00"]), None),
        ("truncated", rmc("1.0", "10.0")[: rng.randrange(8, 40)] + b"\r\n", None),
    ]


def _text(rng: random.Random) -> list[tuple[str, bytes, str | None]]:
    return [
        ("minus-300-c", b"-300.0\n", "temperature"),
        ("1e400", _BIG_INT.encode() + b"\n", None),  # no number: no field to name
        ("csv-record-separator", b"21.5\x1e\n", None),
        ("truncated-utf8", "21.5 °C".encode()[: -2] + b"\n", None),
    ]


def _gatt_hex(codec: str) -> list[tuple[str, bytes, str | None]]:
    if codec == "gatt.0x2A35":
        # systolic SFLOAT 0x0FFF = -1 mmHg; then pulse -3 (flags bit2) with sane pressures
        return [("systolic-minus-1", b"00FF0F50006000\n", "systolic"),
                ("pulse-minus-3", b"04780050006000FD0F\n", "pulse"),
                ("truncated", b"00780050\n", None)]
    # 0x2A1C FLOAT mantissa -300, exponent 0: -300 degrees C
    return [("minus-300-c", b"00D4FEFF00\n", "temperature"), ("truncated", b"00D4FE\n", None)]


def _mqtt(codec: str, device_id: str, t_ms: int,
          topic: str | None) -> list[tuple[str, bytes, str | None]]:
    """(name, payload, field) per hostile payload of one MQTT convention."""
    deep = b'{"temperature":' + b"[" * _DEEP + b"]" * _DEEP + b"}"
    big = f'{{"temperature":{_BIG_INT}}}'.encode()
    if codec == "zigbee2mqtt":
        return [("humidity-250", b'{"temperature":21.5,"humidity":250}', "humidity"),
                ("no-temperature", b'{"humidity":40,"linkquality":90}', "temperature"),
                ("temperature-1e400", big, "temperature"), ("deep-json", deep, None),
                ("truncated", b'{"temperature":21.5,"humidity":4', None)]
    if codec == "tasmota":
        return [("surrogate-id", b'{"DS18B20":{"Id":"\\ud800","Temperature":21.5},"TempUnit":"C"}', None),
                ("surrogate-key", b'{"\\ud800":{"Temperature":21.5},"TempUnit":"C"}', None),
                ("temperature-1e400", f'{{"DS18B20":{{"Temperature":{_BIG_INT}}}}}'.encode(), "temperature"),
                ("deep-json", b'{"DS18B20":' + b"[" * _DEEP + b"]" * _DEEP + b"}", None),
                ("truncated", b'{"DS18B20":{"Temperature":21', None)]
    if codec == "owntracks":
        loc = '{{"_type":"location","lat":52.52,"lon":13.405,"tst":{}}}'
        return [("tst-1e17", loc.format("1e17").encode(), "tst"),
                ("tst-1e20", loc.format("1e20").encode(), "tst"),
                ("tst-1e308", loc.format("1e308").encode(), "tst"),
                ("lat-1e400", f'{{"_type":"location","lat":{_BIG_INT},"lon":1,"tst":1}}'.encode(), "lat"),
                ("truncated", loc.format(t_ms // 1000).encode()[:30], None)]
    if codec == "bp.json":
        bp = '{{"systolic":120,"diastolic":80,"pulse":{},"unit":"mmHg","time":{}}}'
        return [("time-1e30", bp.format(70, "1e30").encode(), "time"),
                ("pulse-minus-3", bp.format(-3, t_ms).encode(), "pulse"),
                ("systolic-1e400", f'{{"systolic":{_BIG_INT},"diastolic":80}}'.encode(), "systolic"),
                ("deep-json", b'{"systolic":' + b"[" * _DEEP + b"]" * _DEEP + b"}", None),
                ("truncated", bp.format(70, t_ms).encode()[:25], None)]
    if codec == "gatt.hex":
        return [("minus-300-c", b"00D4FEFF00", "temperature"), ("truncated", b"00D4FE", None),
                ("not-hex", b"00D4FEFFZZ", None)]
    if codec == "json":
        # A mapping {"temperature": temperature_c}, timestamp_field "ts" in seconds.
        return [("ts-1e20", b'{"temperature":21.5,"ts":1e20}', "ts"),
                ("temperature-object", b'{"temperature":{"value":21.5}}', "temperature"),
                ("temperature-true", b'{"temperature":true}', "temperature"),
                ("temperature-empty-string", b'{"temperature":""}', "temperature"),
                ("temperature-1e400", big, "temperature"), ("deep-json", deep, None),
                ("truncated", b'{"temperature":21.', None)]
    raise ValueError(f"no hostile frames for codec {codec!r}; known: {', '.join(HOSTILE_CODECS)}")


#: Codecs (serial codec names and MQTT conventions) that `hostile_frame` attacks.
HOSTILE_CODECS = ("nmea0183", "text", "gatt.0x2A35", "gatt.0x2A1C", "zigbee2mqtt", "tasmota",
                  "owntracks", "bp.json", "gatt.hex", "json")
SERIAL_HOSTILE = ("nmea0183", "text", "gatt.0x2A35", "gatt.0x2A1C")


def mqtt_topic(codec: str, device_id: str) -> str:
    """The topic a device `device_id` of an MQTT convention publishes on (as the simulator's
    encoders name it; 'json' uses ``sensors/<device>``)."""
    return {
        "zigbee2mqtt": f"zigbee2mqtt/{device_id}",
        "tasmota": f"tele/{device_id}/SENSOR",
        "owntracks": f"owntracks/sim/{device_id}",
        "bp.json": f"bp/{device_id}",
        "gatt.hex": f"ble/{device_id}/2A1C",
        "json": f"sensors/{device_id}",
    }[codec]


def hostile_names(codec: str) -> list[str]:
    """Names of the hostile frames of `codec` (without the generic 'noise' and 'oversized')."""
    rng = random.Random(0)
    if codec in SERIAL_HOSTILE:
        return [n for n, _, _ in _serial(codec, 0, rng)]
    return [n for n, _, _ in _mqtt(codec, "x", 0, None)]


def _serial(codec: str, t_ms: int, rng: random.Random) -> list[tuple[str, bytes, str | None]]:
    if codec == "nmea0183":
        return _nmea(t_ms, rng)
    if codec == "text":
        return _text(rng)
    return _gatt_hex(codec)


def hostile_frame(codec: str, device_id: str, rng: random.Random, t_ms: int = 0, *,
                  name: str | None = None, topic: str | None = None,
                  max_payload: int | None = None) -> HostileFrame:
    """A hostile frame for a device `device_id` speaking `codec`, chosen by `rng` (or `name`).

    Besides each codec's own frames there are 'noise' (random bytes, never a valid frame)
    and, for MQTT with `max_payload` (the device's limit in bytes), 'oversized': a valid
    payload one byte longer than the limit. `t_ms` (device time) makes NMEA sentences
    plausible; `topic` overrides the MQTT topic. Raises ValueError for an unknown codec
    or name.
    """
    serial = codec in SERIAL_HOSTILE
    if codec not in HOSTILE_CODECS:
        raise ValueError(f"no hostile frames for codec {codec!r}; known: {', '.join(HOSTILE_CODECS)}")
    where = None if serial else (topic or mqtt_topic(codec, device_id))
    table = _serial(codec, t_ms, rng) if serial else _mqtt(codec, device_id, t_ms, where)
    choices = [n for n, _, _ in table] + ["noise"]
    if max_payload is not None and not serial:
        choices.append("oversized")
    pick = name if name is not None else rng.choice(choices)
    if pick == "noise":
        end = b"\r\n" if codec == "nmea0183" else b"\n"
        return HostileFrame(codec, "noise", _noise(rng, serial) + (end if serial else b""), where)
    if pick == "oversized" and max_payload is not None and not serial:
        head = b'{"temperature":21.5,"pad":"'
        pad = max(0, max_payload + 1 - len(head) - 2)
        return HostileFrame(codec, "oversized", head + b"x" * pad + b'"}', where)
    for n, payload, fld in table:
        if n == pick:
            return HostileFrame(codec, n, payload, where, fld)
    raise ValueError(f"no hostile frame {pick!r} for codec {codec!r}; known: {', '.join(choices)}")
