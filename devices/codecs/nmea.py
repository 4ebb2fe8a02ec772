"""NMEA 0183 from any GNSS receiver: sentences in, one fix per epoch out.

Sentences are parsed by pynmeagps; this module adds what a stream needs:
checksum and range checks with reasons, combining the sentences of one
epoch (GGA, RMC, VTG, GLL, GNS, GSA, GSV, ZDA) into one fix ``Reading``,
the last date seen (only RMC and ZDA carry one), midnight rollover, and
passing over proprietary ``$P...`` and unhandled sentences with a count.
The encoders build the sentences of a fix, for the simulator.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pynmeagps import VALNONE, NMEAReader, calc_checksum

from devices._errors import DecodeError, EncodeError
from devices._ranges import RANGES
from devices._reading import Arrival, Reading
from devices.codecs._base import guard_decode

__all__ = [
    "NMEA_SCHEMA",
    "NmeaFixAssembler",
    "encode_fix",
    "nmea_sentence",
]

NMEA_SCHEMA = "nmea0183"
KNOTS_TO_MPS = 1852 / 3600

#: Sentences that mark an epoch by their own time of day.
_TIMED = {"GGA", "RMC", "GLL", "GNS", "ZDA"}
#: Sentences that appear once per epoch: a second one starts a new epoch.
_ONCE = {"GGA", "RMC", "GLL", "GNS", "VTG", "ZDA"}
_HANDLED = _ONCE | {"GSA", "GSV"}
_POSITION = {"GGA", "RMC", "GLL", "GNS"}
_FIX_MODE = {1: "none", 2: "2d", 3: "3d"}


@dataclass
class _Epoch:
    time: time | None = None
    date: date | None = None
    seen: set[str] = field(default_factory=set)
    talkers: set[str] = field(default_factory=set)
    values: dict[str, Any] = field(default_factory=dict)
    in_view: dict[tuple[str, str], int] = field(default_factory=dict)
    arrival_ms: int | None = None  # the clock when the epoch's first sentence came


class NmeaFixAssembler:
    """Stateful NMEA 0183 decoder: feed it sentences, get one fix per epoch.

    An epoch ends when a sentence carries a different time of day, or when a
    once-per-epoch sentence (GGA, RMC, ...) repeats; the fix is then
    returned, so a fix comes out when the next epoch starts (``flush()``
    returns the last one). Epochs without any position sentence (a capture
    that starts mid-GSV) are dropped and counted in ``partial_epochs``.

    A fix's ``values``: ``lat``/``lon`` (degrees), ``alt_m``, ``speed_mps``,
    ``course_deg``, ``fix_quality`` (GGA), ``fix_mode`` (GSA), ``valid``
    (RMC/GLL status), ``satellites_used``, ``satellites_in_view``,
    ``hdop``/``pdop``/``vdop``, ``geoid_separation_m``, ``time_utc``,
    ``date``, ``talkers``; each only when some sentence gave it.
    ``timestamp_ms`` is set once a date is known.

    ``decode``'s ``arrival`` (when the sentence arrived): the ``monotonic_ms`` of
    each epoch's first sentence is handed on as the fix's ``arrival_monotonic_ms``.
    A fix comes out up to one fix interval after its epoch began, so its UTC
    belongs with that first arrival, not with the moment it is returned
    (``edge``'s GPS time uses it). Sentences given no arrival make fixes that
    carry ``None``.
    """

    name = NMEA_SCHEMA

    def __init__(self, device_id: str = "gps") -> None:
        self.device_id = device_id
        self.sentences = 0
        self.proprietary_skipped = 0
        self.unhandled_skipped = 0
        self.partial_epochs = 0
        self._epoch = _Epoch()
        self._last_date: date | None = None
        self._last_time: time | None = None

    # -- decoding ------------------------------------------------------------

    @guard_decode(NMEA_SCHEMA)
    def decode(self, frame: bytes, device_id: str | None = None,
               arrival: Arrival | None = None) -> list[Reading]:
        """Feed one sentence (with or without CRLF); returns 0 or 1 finished fixes.

        Raises ``DecodeError`` for a sentence that is malformed, fails its
        checksum or holds an impossible value; the assembler's state is left
        as it was, so one bad line costs only itself.
        """
        if device_id is not None:
            self.device_id = device_id
        arrived = None if arrival is None else arrival.monotonic_ms
        line = bytes(frame).strip(b"\r\n\x00 ")
        body = self._check(frame, line)
        if body is None:
            return []
        self.sentences += 1
        msg_id = body[2:5] if not body.startswith("P") else ""
        talker = body[:2]
        if msg_id not in _HANDLED:
            self.unhandled_skipped += 1
            return []
        try:
            msg = NMEAReader.parse(line, validate=VALNONE)
        except Exception as exc:  # pynmeagps raises several types for bad fields
            raise DecodeError(frame, f"{talker}{msg_id}: {exc}", NMEA_SCHEMA) from None
        if msg is None:
            self.unhandled_skipped += 1
            return []
        update = _extract(msg, msg_id, body, frame)
        return self._merge(talker, msg_id, update, arrived)

    def _check(self, frame: bytes, line: bytes) -> str | None:
        if not line.startswith(b"$"):
            raise DecodeError(frame, "an NMEA sentence starts with '$'", NMEA_SCHEMA)
        if len(line) > 120:  # the standard allows 82; leave room for NMEA 4.x extras
            raise DecodeError(frame, f"sentence is {len(line)} bytes, longer than any NMEA 0183 sentence", NMEA_SCHEMA)
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError(frame, "non-ASCII bytes in sentence (noise on the line?)", NMEA_SCHEMA) from None
        if text[1:2] == "P":  # proprietary ($PUBX, $PGRME, ...): not ours to read
            self.proprietary_skipped += 1
            return None
        star = text.rfind("*")
        if star < 0 or len(text) - star != 3:
            raise DecodeError(frame, "no '*hh' checksum at the end of the sentence", NMEA_SCHEMA)
        body, given = text[1:star], text[star + 1 :].upper()
        if calc_checksum(body) != given:
            raise DecodeError(
                frame,
                f"checksum *{given} does not match computed *{calc_checksum(body)}: corrupted in transit",
                NMEA_SCHEMA,
            )
        if len(body) < 6 or body[5] != "," or not body[:5].isalnum():
            raise DecodeError(frame, "expected '$<talker><type>,...' with a 2-letter talker", NMEA_SCHEMA)
        return body

    def _merge(self, talker: str, msg_id: str, update: dict[str, Any],
               arrived: int | None = None) -> list[Reading]:
        out: list[Reading] = []
        ep = self._epoch
        t = update.pop("_time", None)
        d = update.pop("_date", None)
        if (msg_id in _ONCE and msg_id in ep.seen) or (
            t is not None and ep.time is not None and t != ep.time
        ):
            out.extend(self._finish())
            ep = self._epoch
        if not ep.seen:
            ep.arrival_ms = arrived
        if t is not None and ep.time is None:
            ep.time = t
        if d is not None:
            ep.date = d
        in_view = update.pop("_in_view", None)
        if in_view is not None:
            ep.in_view[(talker, in_view[0])] = in_view[1]
        ep.seen.add(msg_id)
        ep.talkers.add(talker)
        for key, value in update.items():
            # First sentence wins, except that a GGA's fix data is preferred.
            if key not in ep.values or msg_id == "GGA":
                ep.values[key] = value
        return out

    def flush(self) -> list[Reading]:
        """Finish the epoch in progress (end of a capture, or on close).

        Raises only ``DecodeError`` (with no raw bytes: the sentences were taken already).
        """
        try:
            return self._finish()
        except DecodeError:
            raise
        except Exception as exc:  # the last line, as guard_decode is for decode()
            raise DecodeError(b"", f"the last fix cannot be finished: unexpected "
                              f"{type(exc).__name__}: {exc}", NMEA_SCHEMA) from exc

    def _finish(self) -> list[Reading]:
        ep, self._epoch = self._epoch, _Epoch()
        if not ep.seen & _POSITION:
            if ep.seen:
                self.partial_epochs += 1
            return []
        values = dict(ep.values)
        if ep.in_view:
            values["satellites_in_view"] = sum(ep.in_view.values())
        values["talkers"] = sorted(ep.talkers)
        day = self._date_for(ep)
        ts = None
        if ep.time is not None:
            values["time_utc"] = (f"{ep.time.hour:02d}:{ep.time.minute:02d}:60"
                                  if values.get("leap_second") else ep.time.isoformat())
            if day is not None:
                values["date"] = day.isoformat()
                ts = _epoch_ms(datetime.combine(day, ep.time, UTC))
        return [Reading(self.device_id, "gps", NMEA_SCHEMA, values, ts,
                        arrival_monotonic_ms=ep.arrival_ms)]

    def _date_for(self, ep: _Epoch) -> date | None:
        if ep.date is not None:
            day = ep.date
        elif self._last_date is None or ep.time is None:
            return None
        else:
            day = self._last_date
            # Time went back by more than half a day: we crossed midnight
            # since the last dated sentence.
            if self._last_time is not None and _secs(ep.time) < _secs(self._last_time) - 43200:
                if day == date.max:  # a receiver that said 9999-12-31: no day after it
                    self._last_date = None
                    return None
                day += timedelta(days=1)
        self._last_date = day
        if ep.time is not None:
            self._last_time = ep.time
        return day

    # -- encoding ------------------------------------------------------------

    def encode(self, reading: Reading) -> bytes:
        """The RMC, GGA, VTG and GSA sentences of one fix (see ``encode_fix``)."""
        return encode_fix(reading)


def _secs(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _epoch_ms(moment: datetime) -> int:
    # Integer arithmetic: timestamp() is a float, and 18:38:55.320 * 1000 truncates to .319.
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000


def _extract(msg: Any, msg_id: str, body: str, frame: bytes) -> dict[str, Any]:
    """The fix fields one sentence gives, validated; '_time'/'_date' ride along."""
    fields = body.split(",")
    u: dict[str, Any] = {}

    def bad(reason: str) -> DecodeError:
        return DecodeError(frame, f"{fields[0]}: {reason}", NMEA_SCHEMA)

    def get(name: str) -> Any:
        v = getattr(msg, name, "")
        return None if v == "" else v

    if msg_id in ("GGA", "RMC", "GLL", "GNS", "ZDA"):
        raw_time = fields[5 if msg_id == "GLL" else 1] if len(fields) > (5 if msg_id == "GLL" else 1) else ""
        t = get("time")
        if raw_time and not isinstance(t, time):
            t = _leap_second(raw_time)
            if t is None:
                raise bad(f"time {raw_time!r} is not hhmmss[.ss]")
            u["leap_second"] = True
        if isinstance(t, time):
            u["_time"] = t
    if msg_id in _POSITION:
        lat, lon = get("lat"), get("lon")
        if isinstance(lat, float) and isinstance(lon, float):
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise bad(f"position {lat}, {lon} is off the globe")
            li = 1 if msg_id == "GLL" else (3 if msg_id == "RMC" else 2)
            for raw in (fields[li], fields[li + 2]):
                dot = raw.find(".")
                mins = raw[dot - 2 :] if dot >= 2 else raw[-2:]
                if float(mins) >= 60:
                    raise bad(f"coordinate {raw!r} has {mins} minutes")
            u["lat"], u["lon"] = round(lat, 9), round(lon, 9)
    if msg_id == "GGA" or msg_id == "GNS":
        if msg_id == "GGA" and isinstance(get("quality"), int):
            u["fix_quality"] = get("quality")
        for src, dst in (("numSV", "satellites_used"), ("HDOP", "hdop"), ("alt", "alt_m"), ("sep", "geoid_separation_m")):
            if get(src) is not None and _num(get(src)) is not None:
                u[dst] = get(src) if src == "numSV" else float(get(src))
    if msg_id == "RMC":
        if get("status") is not None:
            u["valid"] = get("status") == "A"
        if _num(get("spd")) is not None:
            u["speed_mps"] = round(get("spd") * KNOTS_TO_MPS, 4)
        if _num(get("cog")) is not None:
            u["course_deg"] = float(get("cog"))
        raw_date = fields[9] if len(fields) > 9 else ""
        d = get("date")
        if raw_date and not isinstance(d, date):
            raise bad(f"date {raw_date!r} is not ddmmyy")
        if isinstance(d, date):
            u["_date"] = d
    if msg_id == "GLL" and get("status") is not None:
        u["valid"] = get("status") == "A"
    if msg_id == "ZDA":
        day, month, year = get("day"), get("month"), get("year")
        if None not in (day, month, year):
            try:
                u["_date"] = date(year, month, day)
            except (TypeError, ValueError, OverflowError):
                raise bad(f"date {day}/{month}/{year} does not exist") from None
    if msg_id == "VTG":
        if _num(get("sogk")) is not None:
            u["speed_mps"] = round(get("sogk") / 3.6, 4)
        elif _num(get("sogn")) is not None:
            u["speed_mps"] = round(get("sogn") * KNOTS_TO_MPS, 4)
        if _num(get("cogt")) is not None:
            u["course_deg"] = float(get("cogt"))
    if msg_id == "GSA":
        if isinstance(get("navMode"), int):
            u["fix_mode"] = _FIX_MODE.get(get("navMode"), "unknown")
        for src, dst in (("PDOP", "pdop"), ("HDOP", "hdop"), ("VDOP", "vdop")):
            if _num(get(src)) is not None:
                u[dst] = float(get(src))
    if msg_id == "GSV" and isinstance(get("numSV"), int):
        # numSV is per constellation (talker) and, in NMEA 4.10, per signal.
        sig = fields[-1] if (len(fields) - 4) % 4 == 1 else ""
        _in_range("satellites_in_view", get("numSV"), bad)
        u["_in_view"] = (sig, get("numSV"))
    for key, value in u.items():
        # Here, not on the fix: a bad sentence must cost only itself (the fix comes out with
        # the next epoch's first sentence, whose bytes a dead letter of the fix would carry).
        if type(value) is float or type(value) is int:
            _in_range(key, value, bad)
    return u


def _in_range(key: str, value: float, bad: Callable[[str], DecodeError]) -> None:
    r = RANGES.get(key)
    if r is not None and not r.low <= value <= r.high:  # also refuses NaN
        raise bad(f"{key} {value!r} is outside {r.low:g}..{r.high:g} {r.unit} ({r.why})")
    if r is None and value - value != 0.0:
        raise bad(f"{key} is {value!r}, not a finite number")


_LEAP = re.compile(r"^(\d\d)(\d\d)60(?:\.(\d{1,6}))?$")


def _leap_second(raw: str) -> time | None:
    """A leap second (``235960``, UTC's 23:59:60) as the last instant of its minute's :59.

    Unix time has no 60th second; the fix keeps ``leap_second`` and ``time_utc``
    ``hh:mm:60`` so nothing is hidden. None if ``raw`` is not a leap second.
    """
    m = _LEAP.match(raw)
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        return None
    return time(int(m.group(1)), int(m.group(2)), 59, 999_000)


# --- encoding ------------------------------------------------------------


def nmea_sentence(talker: str, msg_id: str, fields: list[str]) -> bytes:
    """One sentence ``$<talker><msg_id>,<fields>*hh\\r\\n`` with its checksum."""
    body = ",".join([talker + msg_id, *fields])
    return f"${body}*{calc_checksum(body)}\r\n".encode("ascii")


def _lat(deg: float) -> list[str]:
    a = abs(deg)
    d = int(a)
    m = round((a - d) * 60, 5)
    if m >= 60:
        d, m = d + 1, 0.0
    return [f"{d:02d}{m:08.5f}", "N" if deg >= 0 else "S"]


def _lon(deg: float) -> list[str]:
    a = abs(deg)
    d = int(a)
    m = round((a - d) * 60, 5)
    if m >= 60:
        d, m = d + 1, 0.0
    return [f"{d:03d}{m:08.5f}", "E" if deg >= 0 else "W"]


def _opt(v: Any, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def encode_fix(reading: Reading, talker: str = "GP", corrupt_checksum: bool = False) -> bytes:
    """The RMC, VTG, GGA and GSA sentences of one fix, CRLF-terminated.

    Time comes from ``timestamp_ms`` (UTC). Missing values become empty
    fields; no position gives a no-fix epoch (RMC status V, GGA quality 0).
    ``corrupt_checksum`` breaks every checksum (for fault injection).
    Raises ``EncodeError`` if there is no time or a value is out of range.
    """
    v = reading.values
    if reading.timestamp_ms is None:
        raise EncodeError("NMEA: a fix needs timestamp_ms (UTC) to be encoded")
    when = datetime.fromtimestamp(reading.timestamp_ms / 1000, UTC)
    hms = when.strftime("%H%M%S") + f".{when.microsecond // 10000:02d}"
    dmy = when.strftime("%d%m%y")
    lat, lon = _num(v.get("lat")), _num(v.get("lon"))
    has_pos = lat is not None and lon is not None
    pos = ["", "", "", ""]
    if lat is not None and lon is not None:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise EncodeError(f"NMEA: position {lat}, {lon} is off the globe")
        pos = _lat(lat) + _lon(lon)
    # A speed that is not a number is left out, as knots already was: the
    # km/h field multiplied whatever it was given.
    speed, course = _num(v.get("speed_mps")), v.get("course_deg")
    knots = None if speed is None else speed / KNOTS_TO_MPS
    valid = v.get("valid", has_pos)
    quality = v.get("fix_quality", 1 if has_pos else 0)
    mode = "A" if valid and has_pos else "N"
    lines = [
        ("RMC", [hms, "A" if valid and has_pos else "V", *pos, _opt(knots, ".4f"), _opt(course, ".2f"), dmy, "", "", mode]),
        ("VTG", [_opt(course, ".2f"), "T", "", "M", _opt(knots, ".4f"), "N", _opt(None if speed is None else speed * 3.6, ".3f"), "K", mode]),
        ("GGA", [hms, *pos, str(quality), _opt(v.get("satellites_used"), "02d"), _opt(v.get("hdop"), ".2f"), _opt(v.get("alt_m"), ".1f"), "M" if v.get("alt_m") is not None else "", _opt(v.get("geoid_separation_m"), ".1f"), "M" if v.get("geoid_separation_m") is not None else "", "", ""]),
    ]
    if v.get("fix_mode") is not None or v.get("pdop") is not None:
        modes = {name: code for code, name in _FIX_MODE.items()}
        nav = modes.get(v.get("fix_mode", "3d" if has_pos else "none"), 1)
        lines.append(("GSA", ["A", str(nav), *[""] * 12, _opt(v.get("pdop"), ".2f"), _opt(v.get("hdop"), ".2f"), _opt(v.get("vdop"), ".2f")]))
    out = b"".join(nmea_sentence(talker, mid, f) for mid, f in lines)
    if corrupt_checksum:
        out = b"".join(line[:-4] + b"00\r\n" if not line[-4:-2] == b"00" else line[:-4] + b"FF\r\n" for line in out.splitlines(keepends=True))
    return out


