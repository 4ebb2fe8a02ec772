"""The common data model: what every codec produces and every encoder takes.

A ``Reading`` is one measurement of one device, already in the units the
event log uses (docs/design.md, "Events"): degrees for lat/lon, m/s, metres, °C,
mmHg, beats/min. The device's own fields are kept under standard names, and
where a device sent another unit the original unit (and value) is kept too,
e.g. ``"unit_original": "kPa"``.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from devices._errors import DecodeError

__all__ = ["KINDS", "Arrival", "DeadLetter", "Delivery", "Reading", "SpecialValue", "TimeSource"]

#: The kinds of device the appliance knows.
KINDS = frozenset({"gps", "temperature", "blood_pressure"})


class SpecialValue(enum.StrEnum):
    """An IEEE-11073 special value: reported as itself, never as a number.

    A ``str`` enum, so it lands in the JSON event as ``"NaN"``, ``"+INF"``...
    """

    NAN = "NaN"
    NRES = "NRes"  # "not at this resolution": the value did not fit
    POSITIVE_INFINITY = "+INF"
    NEGATIVE_INFINITY = "-INF"
    RESERVED = "reserved"  # a reserved code point: not a value at all


class TimeSource(enum.StrEnum):
    """Where a reading's ``timestamp_ms`` came from."""

    DEVICE = "device"  # the device's own clock (an NMEA fix with a date, a cuff's time stamp)
    ARRIVAL = "arrival"  # the box's best clock when the frame arrived (``Reading.arrival``)
    POLL = "poll"  # the system wall clock when the box read the sensor (1-wire sysfs)


class Arrival(NamedTuple):
    """When a frame arrived at the box: handed to a codec and carried by its readings.

    ``wall_ms``: the box's best-known UTC in ms since the epoch. ``monotonic_ms``: the
    same moment on the monotonic clock (None: not read). ``clock``: how far the box
    trusts ``wall_ms``, in the words of whoever made the stamp (edge's clock status,
    e.g. ``"synced"``); None when nobody said. ``devices`` only carries it.
    """

    wall_ms: int
    monotonic_ms: int | None = None
    clock: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Which broker delivery a reading came from, so a redelivery of it can be recognised.

    ``identity`` names the delivery, not the content: for MQTT QoS 1 it is the session
    (client id and the session's epoch: packet ids start over in a new session), the
    packet id, the reading's place in the message and a digest of topic and payload
    (``Delivery.mqtt``). A redelivery after a lost PUBACK carries the same
    identity with ``redelivered`` set (the DUP flag); the log keeps the identity in the
    event's ``delivery`` header, so the copy can be acknowledged without a second write.
    """

    identity: bytes
    redelivered: bool = False

    @staticmethod
    def mqtt(client_id: str, packet_id: int, payload: bytes, part: int = 0,
             redelivered: bool = False, *, session: str = "", topic: str = "") -> Delivery:
        """The delivery of the ``part``-th reading of one MQTT message of session ``session``."""
        h = hashlib.blake2b(topic.encode(), digest_size=8)
        h.update(b"\0")
        h.update(payload)
        return Delivery(f"mqtt:{client_id}:{session}:{packet_id}:{part}:{h.hexdigest()}".encode(),
                        redelivered)


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement of one device, in normalised units.

    ``values`` holds JSON-able primitives only (str, int, float, bool, None,
    lists, dicts, ``SpecialValue``). ``timestamp_ms`` is in ms since the epoch
    (UTC), and ``time_source`` says whose clock it is: the device's own when the
    frame carried one (a codec's readings), else the adapter stamps the arrival
    (``arrived``) or, for a polled sensor, the poll's time. ``arrival`` is when
    the frame that handed the reading on arrived, with how far that time can be
    trusted: the service takes its ingest time from it. ``delivery`` is set by an
    adapter whose transport can redeliver (MQTT QoS 1). ``arrival_monotonic_ms``
    is when the reading's *first* frame arrived, for a codec that holds frames
    back (NMEA hands on a fix when the next epoch starts, up to a fix interval
    later): the ``monotonic_ms`` of the ``Arrival`` that codec was given with
    that frame. None of these four is part of the value or of equality.
    """

    device_id: str
    kind: str
    schema: str
    values: Mapping[str, Any] = field(hash=False)
    timestamp_ms: int | None = None
    delivery: Delivery | None = field(default=None, compare=False, hash=False)
    arrival_monotonic_ms: int | None = field(default=None, compare=False, hash=False)
    time_source: TimeSource = field(default=TimeSource.DEVICE, compare=False, hash=False)
    arrival: Arrival | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.device_id, str) or not self.device_id:
            raise ValueError(f"Reading.device_id must be a non-empty str, got {self.device_id!r}")
        if self.kind not in KINDS:
            raise ValueError(f"Reading.kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if self.timestamp_ms is not None and not isinstance(self.timestamp_ms, int):
            raise ValueError(f"Reading.timestamp_ms must be int ms or None, got {self.timestamp_ms!r}")

    def to_event_value(self) -> dict[str, Any]:
        """The JSON object for the event log's value, unchecked.

        A fresh dict (safe to mutate) of ``values``. A special value is an explicit
        ``null`` with its status beside it (``"pulse_bpm": null, "pulse_bpm_status":
        "NaN"``), never a string in a numeric field; a non-finite float likewise.
        Kind and schema travel in event headers. The service writes
        ``devices.checked_event_value`` instead, which also refuses values outside
        their physical range.
        """
        plain = _PLAIN
        out: dict[str, Any] = {}
        for k, v in self.values.items():
            if type(v) in plain:
                out[k] = v
            elif isinstance(v, SpecialValue) or (isinstance(v, float) and not math.isfinite(v)):
                out[k] = None
                out[k + "_status"] = _jsonable(v)
            else:
                out[k] = _jsonable(v)
        return out

    def with_timestamp(self, timestamp_ms: int, source: TimeSource | None = None) -> Reading:
        """A copy stamped with ``timestamp_ms`` from ``source`` (None: this reading's)."""
        return Reading(self.device_id, self.kind, self.schema, self.values, timestamp_ms,
                       self.delivery, self.arrival_monotonic_ms,
                       self.time_source if source is None else source, self.arrival)

    def with_delivery(self, delivery: Delivery) -> Reading:
        """A copy that says which broker delivery it came from."""
        return Reading(self.device_id, self.kind, self.schema, self.values, self.timestamp_ms,
                       delivery, self.arrival_monotonic_ms, self.time_source, self.arrival)

    def arrived(self, arrival: Arrival, delivery: Delivery | None = None) -> Reading:
        """A copy that carries its frame's ``arrival`` (and ``delivery``, when given); a
        reading without a time of its own is stamped with the arrival's. One copy for
        both: adapters call it once per reading."""
        ts, source = self.timestamp_ms, self.time_source
        if ts is None:
            ts, source = arrival.wall_ms, TimeSource.ARRIVAL
        return Reading(self.device_id, self.kind, self.schema, self.values, ts,
                       self.delivery if delivery is None else delivery,
                       self.arrival_monotonic_ms, source, arrival)


# Values that are JSON as they are, by exact type (a SpecialValue is a str subclass, and a
# float may be NaN, so neither is here): most values skip _jsonable's isinstance checks.
_PLAIN = frozenset({int, str, bool, type(None)})


def _jsonable(value: Any) -> Any:
    t = type(value)
    if t in _PLAIN or (t is float and math.isfinite(value)):
        return value
    if isinstance(value, SpecialValue):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+INF" if value > 0 else "-INF")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A frame that did not decode, as it goes to the dead-letter topic.

    ``source`` names where it came from (a port, an MQTT topic, a file);
    ``arrived_ms`` is ``arrival.wall_ms`` when it has an arrival.
    """

    raw: bytes
    reason: str
    codec: str
    source: str
    arrived_ms: int | None = None
    #: When the frame arrived and how far that time can be trusted (``Reading.arrival``).
    arrival: Arrival | None = field(default=None, compare=False, hash=False)

    @classmethod
    def from_error(
        cls, error: DecodeError, source: str, arrival: Arrival | None = None
    ) -> DeadLetter:
        """Make a dead letter from a ``DecodeError`` raised for a frame from ``source``."""
        return cls(error.raw, error.reason, error.codec, source,
                   None if arrival is None else arrival.wall_ms, arrival)

    def to_event_value(self) -> dict[str, Any]:
        """The JSON object for the dead-letter topic (raw bytes as hex, exact)."""
        return {
            "raw_hex": self.raw.hex(),
            "raw_text": self.raw.decode("utf-8", "backslashreplace"),
            "reason": self.reason,
            "codec": self.codec,
            "source": self.source,
            "arrived_ms": self.arrived_ms,
        }

