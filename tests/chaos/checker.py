"""The chaos soak's independent checker: what the devices sent against what reached Kafka.

It shares no code with the appliance (stdlib and kafka-python only), so a bug in the
appliance's codecs or log cannot hide itself here. Two commands:

``watch``  consume upstream topics with a ``read_committed`` consumer for the whole run
           and write every record, with the wall time it arrived, as JSON lines.
``check``  read a run's manifest (the simulators' truth and ack files, the watcher's
           arrivals, the fault log) and report, per system under test:

- acknowledged readings lost (MQTT readings Mosquitto PUBACKed to the simulator, not
  upstream and not accounted for by the drop ledger): must be 0;
- readings lost where no acknowledgement was possible (serial readings sent while the
  service was down or the port unplugged, from 2 s before such a fault to 10 s after it),
  counted; serial readings missing at any other time count separately and must be 0;
- duplicates upstream (one reading arriving twice), and for the appliance the uplink's
  own duplicates (one local record, by its ``edge.partition``/``edge.offset`` headers,
  upstream twice): the latter must be 0 in exactly-once mode;
- per-key order violations;
- drops under the disk quota named by the replicated ``__drop_ledger``, and local offsets
  missing upstream that no ledger entry names (must be 0);
- the time to drain after each fault: from the fault's end until every reading emitted
  during it had arrived upstream.
- hostile frames (``edge-sim --hostile``): each must be a dead letter upstream, raw bytes
  and all; a serial one may be lost while nobody could read it, any other missing one
  counts (beside the dead letters the quota dropped, which may explain as many);
- a topic written once, then idle past the cluster's offset retention: its records
  upstream, as many as were sent (a restarted uplink whose checkpoint expired sends them
  again);
- records the cluster refuses (the soak's, listed in the manifest): never upstream, each
  named in the drop ledger (an entry with a ``dead_letter_topic``, not a quota drop: it
  explains no missing reading) and kept in the local dead-letter topic (the soak dumps it).

It prints a table and writes the result as JSON (``--json`` or ``$CHAOS_RESULT``).

How a reading is recognised upstream: by its device (the record key, or the MQTT topic
for the bridge), its whole second of device time and its main values, rounded. Among
readings of one device that share all of these, a device time finer than the second
(NMEA, bp.json) names the one; else they are told apart by position: an upstream record
is matched to the nearest such reading after the last one matched, and if that one was
already matched, the record is a duplicate (such matches are counted in the table).

A reading missing upstream is put down to the disk quota only if the drop ledger names a
dropped local offset, not yet used for another, between the offsets of the device's
readings that arrived just before and after it; acknowledged readings are paired first.
"""

from __future__ import annotations

import argparse
import bisect
import calendar
import collections
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- reading identity -------------------------------------------------------------------

#: Value fields that identify a reading of each kind, with the decimals they are compared at.
_FIELDS = {
    "gps": (("lat", 6), ("lon", 6)),
    "temperature": (("temperature_c", 2),),
    "blood_pressure": (("systolic_mmhg", 1), ("diastolic_mmhg", 1), ("pulse_bpm", 1)),
}


def reading_key(kind: str, device: str, ts_ms: int | None, values: dict[str, Any]) -> tuple:
    """(device, second of device time, rounded identifying values) of one reading."""
    parts: list[Any] = [kind, device, None if ts_ms is None else int(ts_ms) // 1000]
    for name, places in _FIELDS[kind]:
        v = values.get(name)
        parts.append(_rounded(v, places))
    return tuple(parts)


def _rounded(v: Any, places: int) -> Any:
    """A number rounded to `places`; what is no finite float (1e400, a bool) as it is."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return v
    try:
        return round(float(v), places)
    except (OverflowError, ValueError):
        return repr(v)


# --- what the devices sent --------------------------------------------------------------


@dataclass
class Reading:
    """One reading a simulator emitted."""

    index: int  # position among this device's readings, in emission order
    key: tuple
    emitted_ms: int
    transport: str  # "serial" or "mqtt"
    acked: bool  # Mosquitto PUBACKed it to the simulator (never for serial)
    topic: str  # the appliance's local topic (= kind)


def load_truth(
    path: Path, acks: Path | None, key_prefix: str | dict[str, str], transport: str
) -> list[dict]:
    """Readings (not faulty frames) of one simulator's --truth file, with their ack state.

    `key_prefix` turns a simulator's device id into the record key the system under test
    gives it: one prefix, or one per kind (``"*"`` for the rest), since conventions differ
    (OwnTracks names ``<user>/<device>``).
    """
    acked: set[int] = set()
    if acks is not None and acks.exists():
        acked = {int(x) for x in acks.read_text().split()}
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("type") != "reading" or row.get("fault"):
            continue
        prefix = (
            key_prefix
            if isinstance(key_prefix, str)
            else key_prefix.get(row["kind"], key_prefix.get("*", ""))
        )
        out.append(
            {
                "device": prefix + row["device_id"],
                "kind": row["kind"],
                "ts": row["timestamp_ms"],
                "values": row["values"],
                "transport": transport,
                "acked": row["seq"] in acked,
                "seq": row["seq"],
            }
        )
    return out


# --- what arrived upstream --------------------------------------------------------------


def _ieee11073_float(raw: int) -> float:
    mantissa, exponent = raw & 0xFFFFFF, (raw >> 24) & 0xFF
    if mantissa >= 0x800000:
        mantissa -= 0x1000000
    if exponent >= 0x80:
        exponent -= 0x100
    return round(mantissa * 10.0**exponent, 6)


def _gatt_temperature(payload: bytes) -> tuple[dict[str, Any], int | None]:
    """Bluetooth 0x2A1C (hex text) → temperature °C and its timestamp (UTC assumed)."""
    data = bytes.fromhex(payload.decode("ascii").replace(" ", "").replace(":", ""))
    flags = data[0]
    value = _ieee11073_float(int.from_bytes(data[1:5], "little"))
    if flags & 0x01:
        value = round((value - 32) * 5 / 9, 6)
    ts = None
    if flags & 0x02 and len(data) >= 12:
        year = int.from_bytes(data[5:7], "little")
        month, day, hour, minute, second = data[7:12]
        ts = calendar.timegm((year, month, day, hour, minute, second)) * 1000
    return {"temperature_c": value}, ts


def bridge_reading(mqtt_topic: str, payload: bytes) -> tuple[str, str, int | None, dict] | None:
    """(kind, device, ts_ms, values) from a raw MQTT message the bridge forwarded."""
    head, _, rest = mqtt_topic.partition("/")
    try:
        if head == "owntracks":  # owntracks/<user>/<device>, tst in seconds
            obj = json.loads(payload)
            tst = obj.get("tst")
            return (
                "gps",
                rest,
                None if tst is None else int(tst) * 1000,
                {"lat": obj.get("lat"), "lon": obj.get("lon")},
            )
        if head == "bp":  # bp/<device>, time in ms
            obj = json.loads(payload)
            return (
                "blood_pressure",
                rest,
                obj.get("time"),
                {
                    "systolic_mmhg": obj.get("systolic"),
                    "diastolic_mmhg": obj.get("diastolic"),
                    "pulse_bpm": obj.get("pulse"),
                },
            )
        if head == "ble":  # ble/<device>/2A1C
            device, _, uuid = rest.rpartition("/")
            if uuid.upper() == "2A1C":
                values, ts = _gatt_temperature(payload)
                return "temperature", device, ts, values
    except (ValueError, IndexError, UnicodeDecodeError, TypeError, AttributeError,
            OverflowError, RecursionError):
        return None  # not a reading: the bridge forwards hostile frames as they came
    return None


def read_arrivals(path: Path) -> list[dict]:
    """The watcher's records, in arrival order (a torn last line is skipped)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


# --- matching ---------------------------------------------------------------------------


@dataclass
class DeviceMatch:
    """Upstream records of one device matched to its readings."""

    readings: list[Reading]
    by_key: dict[tuple, list[int]] = field(default_factory=dict)
    arrived: dict[int, int] = field(default_factory=dict)  # reading index -> arrival ms
    local: dict[int, tuple[int, int]] = field(default_factory=dict)  # -> (partition, offset)
    last: int = -1
    duplicates: int = 0
    order_violations: int = 0
    unknown: int = 0
    ambiguous: int = 0

    def __post_init__(self) -> None:
        for r in self.readings:
            self.by_key.setdefault(r.key, []).append(r.index)

    def add(
        self,
        key: tuple,
        arrival_ms: int,
        local: tuple[int, int] | None = None,
        ts_ms: int | None = None,
    ) -> None:
        cands = self.by_key.get(key)
        if not cands:
            self.unknown += 1
            return
        if len(cands) > 1 and ts_ms is not None and ts_ms % 1000:
            # The device's time is finer than the second (NMEA: 10 ms, bp.json: 1 ms): it
            # names the reading.
            exact = [i for i in cands if 0 <= ts_ms - self.readings[i].emitted_ms // 10 * 10 < 10]
            cands = exact or cands
        if len(cands) > 1:
            self.ambiguous += 1
        want = self.last + 1
        best = min(cands, key=lambda i: (abs(i - want), i < want))
        if best in self.arrived:
            self.duplicates += 1
            return
        if best < self.last:
            self.order_violations += 1
        self.arrived[best] = arrival_ms
        if local is not None:
            self.local[best] = local
        self.last = max(self.last, best)


@dataclass
class SystemResult:
    """The checker's findings for one system under test."""

    name: str
    emitted: int = 0
    acked: int = 0
    serial: int = 0
    arrived: int = 0
    lost_acked: int = 0
    lost_unacked_serial: int = 0
    serial_lost_in_windows: int | None = 0
    serial_lost_outside_windows: int = 0
    quota_dropped_readings: int = 0
    lost_unacked_mqtt: int = 0
    duplicates: int = 0
    uplink_duplicates: int | None = None
    order_violations: int = 0
    unknown_upstream: int = 0
    ambiguous_matches: int = 0
    ledger_dropped_unreplicated: int | None = None
    ledger_dropped_replicated: int | None = None
    ledger_entries: int | None = None
    unledgered_gaps: int | None = None
    ledger_replicated_not_upstream: int | None = None
    hostile_sent: int | None = None
    hostile_dead_lettered: int | None = None
    hostile_lost_in_windows: int | None = None
    hostile_missing: int | None = None
    dead_letters_dropped_by_quota: int | None = None
    refused_sent: int | None = None
    refused_upstream: int | None = None
    refused_in_ledger: int | None = None
    refused_in_local_dead_letters: int | None = None
    refused_dropped_by_quota: int | None = None
    refused_local_copies_dropped: int | None = None
    idle_topic_sent: int | None = None
    idle_topic_upstream: int | None = None
    idle_topic_dropped: int | None = None
    hostile_missing_frames: list[dict[str, Any]] = field(default_factory=list)
    missing_by_topic: dict[str, int] = field(default_factory=dict)
    drain_s: list[dict[str, Any]] = field(default_factory=list)


def _readings(truth_rows: Iterable[dict]) -> dict[str, list[Reading]]:
    per_device: dict[str, list[Reading]] = collections.defaultdict(list)
    for row in truth_rows:
        dev = per_device[row["device"]]
        dev.append(
            Reading(
                len(dev),
                reading_key(row["kind"], row["device"], row["ts"], row["values"]),
                row["ts"],
                row["transport"],
                row["acked"],
                row["kind"],
            )
        )
    return per_device


def _upstream_edge(
    records: list[dict], topic_of: dict[str, str]
) -> Iterator[tuple[str, tuple, dict, int | None]]:
    """(device, reading key, record, device time) of each appliance record of readings."""
    for rec in records:
        kind = topic_of.get(rec["t"])
        if kind is None or kind not in _FIELDS:
            continue
        try:
            value = json.loads(rec["v"])
        except (TypeError, ValueError, RecursionError):
            continue
        device = rec["k"]
        yield device, reading_key(kind, device, rec["ts"], value), rec, rec["ts"]


def _upstream_bridge(
    records: list[dict], bridge_topics: set[str], key_prefix: str
) -> Iterator[tuple[str, tuple, dict, int | None]]:
    for rec in records:
        if rec["t"] not in bridge_topics or rec["k"] is None:
            continue
        parsed = bridge_reading(rec["k"], (rec["v"] or "").encode("latin-1"))
        if parsed is None:
            continue
        kind, device, ts, values = parsed
        device = key_prefix + device
        yield device, reading_key(kind, device, ts, values), rec, ts


def check_system(
    name: str,
    truth_rows: list[dict],
    upstream: Iterable[tuple[str, tuple, dict, int | None]],
    faults: list[dict],
    applies: set[str] | None = None,
    ledger: list[dict] | None = None,
    edge_records: list[dict] | None = None,
    topic_of: dict[str, str] | None = None,
    serial_grace_ms: int = 10_000,
) -> SystemResult:
    """Match one system's upstream records to the readings it was sent; see the module doc.

    A reading missing upstream counts as dropped under the quota (not lost) only when the
    drop ledger names an unreplicated drop, in its device's local partition, between the
    local offsets of the device's readings that did arrive just before and after it. A
    serial reading missing upstream is "no ack possible" when it was sent while the service
    was down or its port unplugged (a fault window plus `serial_grace_ms` to reopen);
    missing outside such windows, it counts as lost outright.
    """
    res = SystemResult(name)
    devices = {d: DeviceMatch(rs) for d, rs in _readings(truth_rows).items()}
    for device, key, rec, ts in upstream:
        m = devices.get(device)
        if m is None:
            res.unknown_upstream += 1
            continue
        m.add(key, rec["a"], _local_offset(rec), ts)
    # A record the cluster refused is named in the ledger too (with the local topic that
    # keeps it); it explains no missing reading of a device: those are counted apart.
    dropped = _ledger_ranges(_quota_entries(ledger or []), unreplicated=True)
    # From 2 s before (bytes read but not yet committed, and the NMEA epoch the service
    # holds until the next one begins) to the port being open again.
    windows = [
        (f["start_ms"] - 2000, f["end_ms"] + serial_grace_ms)
        for f in faults
        if f["kind"] in ("service-sigkill", "service-sigterm", "serial-unplug")
    ]
    if ledger is not None:
        res.ledger_entries = len(ledger)
        res.ledger_dropped_unreplicated = sum(
            e.get("count", 0) for e in _quota_entries(ledger) if e.get("unreplicated")
        )
        res.ledger_dropped_replicated = sum(
            e.get("count", 0) for e in _quota_entries(ledger) if not e.get("unreplicated")
        )
        res.refused_in_ledger = sum(e.get("count", 0) for e in ledger if _is_refusal(e))
    res.serial_lost_in_windows = 0
    explained = _explain_by_ledger(devices, dropped) if ledger is not None else set()
    for m in devices.values():
        res.duplicates += m.duplicates
        res.order_violations += m.order_violations
        res.unknown_upstream += m.unknown
        res.ambiguous_matches += m.ambiguous
        for r in m.readings:
            res.emitted += 1
            res.acked += r.acked
            res.serial += r.transport == "serial"
            if r.index in m.arrived:
                res.arrived += 1
                continue
            res.missing_by_topic[r.topic] = res.missing_by_topic.get(r.topic, 0) + 1
            if (id(m), r.index) in explained:
                res.quota_dropped_readings += 1
            elif r.acked:
                res.lost_acked += 1
            elif r.transport == "serial":
                if any(a <= r.emitted_ms <= b for a, b in windows):
                    res.serial_lost_in_windows += 1
                    res.lost_unacked_serial += 1
                else:
                    res.serial_lost_outside_windows += 1
            else:
                res.lost_unacked_mqtt += 1
    if edge_records is not None and topic_of is not None:
        res.uplink_duplicates, res.unledgered_gaps, res.ledger_replicated_not_upstream = (
            _edge_offsets(edge_records, topic_of, ledger or [])
        )
    else:
        res.serial_lost_in_windows = None
    res.drain_s = _drain(devices, faults, applies)
    return res


def _only(res: SystemResult, keep: set[str]) -> SystemResult:
    """`res` with every measure outside `keep` set to None (shown as n/a)."""
    out = SystemResult(res.name)
    for f in dataclasses.fields(SystemResult):
        if f.name != "name":
            setattr(out, f.name, getattr(res, f.name) if f.name in keep else None)
    return out


def _local_offset(rec: dict) -> tuple[int, int] | None:
    h = rec.get("h") or {}
    try:
        return int(h["edge.partition"]), int(h["edge.offset"])
    except (KeyError, ValueError):
        return None


def _is_refusal(entry: dict) -> bool:
    """A ledger entry for a record the cluster refused (kept in a local dead-letter topic)."""
    return bool(entry.get("dead_letter_topic"))


def _quota_entries(ledger: list[dict]) -> list[dict]:
    return [e for e in ledger if not _is_refusal(e)]


def load_hostile(path: Path, transport: str) -> list[dict]:
    """The hostile frames (``edge-sim --hostile``) of one simulator's --truth file."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("type") == "hostile":
                # Where the dead letter upstream says it came from: the MQTT topic (in
                # its source header) or the serial device's name (its device header).
                where = f"#{row['topic']}" if row.get("topic") else row.get("device_id") or ""
                out.append({"raw": bytes.fromhex(row["raw_hex"]).strip(b"\r\n"),
                            "where": where,
                            "ts": row.get("timestamp_ms"), "transport": transport,
                            "name": f"{row.get('codec')}/{row.get('name')}"})
    return out


def check_hostile(
    res: SystemResult,
    hostile: list[dict],
    dead_letters: list[dict],
    faults: list[dict],
    dead_letter_topic: str,
    ledger: list[dict],
    serial_grace_ms: int = 10_000,
) -> None:
    """Every hostile frame a dead letter upstream (by its raw bytes); a serial one may be
    missing if sent while nobody could read it (as for readings); any other missing one
    counts, beside how many dead letters the quota dropped (the ledger's entries for the
    local dead-letter topic), which may explain as many."""
    windows = [
        (f["start_ms"] - 2000, f["end_ms"] + serial_grace_ms)
        for f in faults
        if f["kind"] in ("service-sigkill", "service-sigterm", "serial-unplug")
    ]
    # Upstream dead letters by raw bytes, each with where it came from: the same hostile
    # payload goes to several devices (and again to one in its next round), and matching by
    # bytes alone let a later copy stand in for a dropped one, so the frames listed missing
    # were not the ones missing. The copy from the same place nearest in time is taken.
    have: dict[bytes, list[tuple[str, int]]] = collections.defaultdict(list)
    for rec in dead_letters:
        h = rec.get("h") or {}
        try:
            ingest = int(h.get("ingest_ms") or 0)
        except ValueError:
            ingest = 0
        have[(rec.get("v") or "").encode("latin-1").strip(b"\r\n")].append(
            (f"{h.get('device', '')} {h.get('source', '')}", ingest)
        )
    # Pairs closest first (same place, then nearest in time), not in the order sent: an
    # earlier dropped frame must not take the copy of a later one.
    pairs = sorted(
        (h["where"] == "" or h["where"] not in c[0], abs(c[1] - (h["ts"] or 0)), i, j)
        for i, h in enumerate(hostile)
        for j, c in enumerate(have.get(h["raw"], ()))
    )
    matched: set[int] = set()
    taken: set[tuple[bytes, int]] = set()
    for _, _, i, j in pairs:
        if i not in matched and (hostile[i]["raw"], j) not in taken:
            matched.add(i)
            taken.add((hostile[i]["raw"], j))
    res.hostile_sent = len(hostile)
    res.hostile_dead_lettered = res.hostile_lost_in_windows = res.hostile_missing = 0
    for i, h in enumerate(hostile):
        if i in matched:
            res.hostile_dead_lettered += 1
        elif h["transport"] == "serial" and any(
            a <= (h["ts"] or 0) <= b for a, b in windows
        ):
            res.hostile_lost_in_windows += 1
        else:
            res.hostile_missing += 1
            # Named with the fault nearest in time: a count alone left a failed run
            # (25 missing, 23 dropped) with nothing to say which frames and when.
            res.hostile_missing_frames.append(
                {"frame": h["name"], "device": h["where"], "transport": h["transport"],
                 "ts": h["ts"], "near": _nearest_fault(faults, h["ts"] or 0)}
            )
    res.dead_letters_dropped_by_quota = sum(
        e.get("count", 0)
        for e in _quota_entries(ledger)
        if e.get("topic") == dead_letter_topic and e.get("unreplicated")
    )


def _nearest_fault(faults: list[dict], ts: int) -> str:
    """'<kind> <s> s after its start' or 'before it', for a reader of a failed run."""
    if not faults:
        return "no fault"
    f = min(faults, key=lambda f: min(abs(ts - f["start_ms"]), abs(ts - f["end_ms"])))
    if ts < f["start_ms"]:
        return f"{f['kind']}, {(f['start_ms'] - ts) / 1000:.1f} s before it"
    if ts <= f["end_ms"]:
        return f"{f['kind']}, during it"
    return f"{f['kind']}, {(ts - f['end_ms']) / 1000:.1f} s after it"


def load_refused(path: Path) -> list[dict]:
    """Readings the soak sent that the upstream topic refuses (a timestamp beyond its
    message.timestamp.after.max.ms): JSON lines of device (record key), kind, values."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_refused(
    res: SystemResult,
    refused: list[dict],
    upstream_records: list[dict],
    topic_of: dict[str, str],
    local_dead_letters: list[dict] | None,
    ledger: list[dict] | None = None,
) -> None:
    """Refused readings: never upstream in their topic; each kept in the local dead-letter
    topic (its value, under its key). With their local offsets (``partition``/``offset`` in
    a row) and the ledger: each named by a refusal entry, or dropped under the quota before
    the uplink reached it (an unreplicated drop: the same account, by another cause)."""
    if ledger is not None and all("offset" in r for r in refused):
        refusals = _ledger_ranges([e for e in ledger if _is_refusal(e)])
        drops = _ledger_ranges(_quota_entries(ledger), unreplicated=True)

        def named(ranges: dict, r: dict) -> bool:
            return any(a <= r["offset"] <= b for a, b in ranges.get((r["kind"], r["partition"]), []))

        res.refused_in_ledger = sum(1 for r in refused if named(refusals, r))
        res.refused_dropped_by_quota = sum(
            1 for r in refused if not named(refusals, r) and named(drops, r)
        )
        kept_in = {e["dead_letter_topic"] for e in ledger if _is_refusal(e)}
        res.refused_local_copies_dropped = sum(
            e.get("count", 0) for e in _quota_entries(ledger) if e.get("topic") in kept_in
        )

    def ident(kind: str, key: str | None, value: Any) -> tuple | None:
        if kind not in _FIELDS or not isinstance(value, dict):
            return None
        return reading_key(kind, key or "", None, value)

    want = collections.Counter(ident(r["kind"], r["device"], r["values"]) for r in refused)
    res.refused_sent = len(refused)
    res.refused_upstream = 0
    for rec in upstream_records:
        kind = topic_of.get(rec["t"])
        if kind not in _FIELDS:
            continue  # dead letters (hostile frames among them) are no readings
        try:
            value = json.loads(rec["v"])
        except (TypeError, ValueError, RecursionError):
            continue
        if ident(kind, rec["k"], value) in want:
            res.refused_upstream += 1
    if local_dead_letters is None:
        return
    res.refused_in_local_dead_letters = 0
    left = collections.Counter(want)
    for rec in local_dead_letters:
        try:
            value = json.loads(rec["v"])
        except (TypeError, ValueError, RecursionError):
            continue
        for kind in _FIELDS:
            i = ident(kind, rec.get("k"), value)
            if i is not None and left[i] > 0:
                left[i] -= 1
                res.refused_in_local_dead_letters += 1
                break


def _ledger_ranges(
    ledger: list[dict], unreplicated: bool | None = None
) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """(local topic, partition) -> [(first, last offset)] dropped, per the ledger."""
    out: dict[tuple[str, int], list[tuple[int, int]]] = collections.defaultdict(list)
    for e in ledger:
        if unreplicated is not None and bool(e.get("unreplicated")) != unreplicated:
            continue
        for r in e.get("ranges", []):
            out[(e.get("topic", ""), r["partition"])].append((r["from_offset"], r["to_offset"]))
    return out


def _explain_by_ledger(
    devices: dict[str, DeviceMatch], dropped: dict[tuple[str, int], list[tuple[int, int]]]
) -> set[tuple[int, int]]:
    """Missing readings that an unreplicated drop can account for, one dropped offset each.

    A missing reading's local offset lies between those of its device's readings that did
    arrive just before and after it (a device is one key, so one partition); it is
    accounted for if a dropped offset in that interval is not yet used for another.
    A dropped record's content is gone, so which missing reading it was is not known: the
    acknowledged readings are matched first (the bound is the same either way, and a
    serial reading can also be missing because it never reached the log at all).
    """
    # (not acked, hi, lo, tp, id): acknowledged first, then earliest upper bound first.
    wanted: list[tuple[bool, int, int, tuple[str, int], tuple[int, int]]] = []
    for m in devices.values():
        arrived = sorted(m.arrived)
        for r in m.readings:
            if r.index in m.arrived:
                continue
            i = bisect.bisect_left(arrived, r.index)
            before = m.local.get(arrived[i - 1]) if i > 0 else None
            after = m.local.get(arrived[i]) if i < len(arrived) else None
            part = (before or after or (None, None))[0]
            if part is None:
                continue
            lo = before[1] if before and before[0] == part else -1
            hi = after[1] if after and after[0] == part else 1 << 62
            wanted.append((not r.acked, hi, lo, (r.topic, part), (id(m), r.index)))
    free: dict[tuple[str, int], list[int]] = {
        tp: sorted({o for a, b in ranges for o in range(a, b + 1)})
        for tp, ranges in dropped.items()
    }
    out: set[tuple[int, int]] = set()
    for _, hi, lo, tp, ident in sorted(wanted):
        offsets = free.get(tp)
        if not offsets:
            continue
        j = bisect.bisect_right(offsets, lo)
        if j < len(offsets) and offsets[j] < hi:
            del offsets[j]
            out.add(ident)
    return out


def _edge_offsets(
    records: list[dict], topic_of: dict[str, str], ledger: list[dict]
) -> tuple[int, int, int]:
    """From the appliance's ``edge.partition``/``edge.offset`` headers: uplink duplicates (a
    local record upstream twice); local offsets upstream nowhere and in no ledger range
    (below the highest offset seen per local partition); and offsets the ledger says were
    dropped *after* replication that are not upstream."""
    seen: collections.Counter[tuple[str, int, int]] = collections.Counter()
    for rec in records:
        local = topic_of.get(rec["t"])
        off = _local_offset(rec)
        if local is not None and off is not None:
            seen[(local, *off)] += 1
    dupes = sum(n - 1 for n in seen.values() if n > 1)
    dropped = _ledger_ranges(ledger)
    by_part: dict[tuple[str, int], set[int]] = collections.defaultdict(set)
    for t, p, o in seen:
        by_part[(t, p)].add(o)
    gaps = 0
    for tp, offsets in by_part.items():
        ranges = dropped.get(tp, [])
        for o in range(0, max(offsets) + 1):
            if o not in offsets and not any(a <= o <= b for a, b in ranges):
                gaps += 1
    # Only topics this system replicates: a local topic the uplink does not carry (a stream's
    # late records, say) has nothing upstream to compare with.
    replicated = set(topic_of.values())
    false_replicated = sum(
        1
        for (t, p), ranges in _ledger_ranges(ledger, unreplicated=False).items()
        if t in replicated
        for a, b in ranges
        for o in range(a, b + 1)
        if (t, p, o) not in seen
    )
    return dupes, gaps, false_replicated


def _drain(
    devices: dict[str, DeviceMatch], faults: list[dict], applies: set[str] | None
) -> list[dict[str, Any]]:
    """Per fault: seconds from its end until the last reading emitted during it arrived."""
    out: list[dict[str, Any]] = []
    for f in faults:
        if applies is not None and f["kind"] not in applies:
            out.append({"fault": f["kind"], "applies": False, "readings": 0, "drain_s": None})
            continue
        start, end = f["start_ms"] - 1000, f["end_ms"]
        last, n = None, 0
        for m in devices.values():
            for r in m.readings:
                if start <= r.emitted_ms <= end and r.index in m.arrived:
                    n += 1
                    a = m.arrived[r.index]
                    last = a if last is None else max(last, a)
        out.append(
            {
                "fault": f["kind"],
                "applies": True,
                "readings": n,
                "drain_s": None if last is None else round(max(0, last - end) / 1000, 2),
            }
        )
    return out


# --- the run ----------------------------------------------------------------------------


def check_run(manifest: dict[str, Any]) -> dict[str, Any]:
    """Check a whole run described by `manifest` (written by the soak); returns the result."""
    records = read_arrivals(Path(manifest["arrivals"]))
    faults = [
        json.loads(line)
        for line in Path(manifest["faults"]).read_text().splitlines()
        if line.strip()
    ]
    sources = manifest["sources"]
    truth = {
        s["name"]: load_truth(
            Path(s["truth"]),
            Path(s["acks"]) if s.get("acks") else None,
            s.get("key_prefix", ""),
            s["transport"],
        )
        for s in sources
    }
    systems = []
    for sysdef in manifest["systems"]:
        rows = [r for s in sysdef["sources"] for r in truth[s]]
        applies = set(sysdef["faults"]) if "faults" in sysdef else None
        if sysdef["mode"] == "edge":
            topic_of = {up: local for local, up in sysdef["topics"].items()}
            ledger_topic = sysdef["drop_ledger_topic"]
            ledger = []
            for rec in records:
                if rec["t"] == ledger_topic:
                    try:
                        ledger.append(json.loads(rec["v"]))
                    except (TypeError, ValueError):
                        pass
            mine = [r for r in records if r["t"] in topic_of]
            res = check_system(
                sysdef["name"],
                rows,
                _upstream_edge(mine, topic_of),
                faults,
                applies,
                ledger=ledger,
                edge_records=mine,
                topic_of=topic_of,
            )
            dl_local = sysdef.get("dead_letter_topic", "dead-letters")
            dl_up = {up for up, local in topic_of.items() if local == dl_local}
            hostile = [
                h
                for src in sources
                if src["name"] in sysdef["sources"]
                for h in load_hostile(Path(src["truth"]), src["transport"])
            ]
            check_hostile(
                res,
                hostile,
                [r for r in records if r["t"] in dl_up],
                faults,
                dl_local,
                ledger,
            )
            idle = sysdef.get("idle_topic")
            if idle:
                res.idle_topic_sent = idle["sent"]
                res.idle_topic_upstream = sum(1 for r in records if r["t"] == idle["topic"])
                # Dropped under the quota before they were replicated: the ledger's account.
                local_idle = topic_of.get(idle["topic"])
                res.idle_topic_dropped = sum(
                    e.get("count", 0)
                    for e in _quota_entries(ledger)
                    if e.get("topic") == local_idle and e.get("unreplicated")
                )
            if sysdef.get("refused"):
                local_dl = sysdef.get("local_dead_letters")
                check_refused(
                    res,
                    load_refused(Path(sysdef["refused"])),
                    mine,
                    topic_of,
                    read_arrivals(Path(local_dl)) if local_dl else None,
                    ledger,
                )
        elif sysdef["mode"] == "derived":
            # A stream processor's output: one record per input reading it saw, each once, in
            # order per key. Readings it never saw (dropped before it ran) are not its loss.
            topic_of = dict(sysdef["topics"])
            kinds = set(topic_of.values())
            mine = [r for r in records if r["t"] in topic_of]
            res = check_system(
                sysdef["name"],
                [r for r in rows if r["kind"] in kinds],
                _upstream_edge(mine, topic_of),
                faults,
                applies,
            )
            res = _only(
                res,
                {
                    "arrived",
                    "duplicates",
                    "order_violations",
                    "unknown_upstream",
                    "ambiguous_matches",
                    "drain_s",
                },
            )
        else:
            bridge_topics = set(sysdef["topics"])
            res = check_system(
                sysdef["name"],
                rows,
                _upstream_bridge(records, bridge_topics, sysdef.get("key_prefix", "")),
                faults,
                applies,
            )
        systems.append(res)
    return {
        "seed": manifest.get("seed"),
        "profile": manifest.get("profile"),
        "duration_s": manifest.get("duration_s"),
        "started_ms": manifest.get("started_ms"),
        "crashes": manifest.get("crashes", {}),
        "second_uplinks": manifest.get("second_uplinks", []),
        "faults": faults,
        "systems": [vars(s) for s in systems],
    }


_ROWS = [
    ("readings emitted", "emitted"),
    ("  of which PUBACKed by Mosquitto", "acked"),
    ("  of which over serial (no ack possible)", "serial"),
    ("arrived upstream (distinct)", "arrived"),
    ("acknowledged readings lost (must be 0)", "lost_acked"),
    (
        "serial readings lost while the service was down or unplugged (no ack possible)",
        "lost_unacked_serial",
    ),
    ("serial readings lost at other times (must be 0)", "serial_lost_outside_windows"),
    ("MQTT readings lost, never PUBACKed", "lost_unacked_mqtt"),
    ("duplicates upstream (same reading twice)", "duplicates"),
    ("uplink duplicates (same local record twice; must be 0)", "uplink_duplicates"),
    ("per-key order violations (must be 0)", "order_violations"),
    ("upstream records matching no reading", "unknown_upstream"),
    ("  records told apart from a same-second twin by position only", "ambiguous_matches"),
    ("readings dropped under the quota, named by the drop ledger", "quota_dropped_readings"),
    ("ledger: records dropped unreplicated", "ledger_dropped_unreplicated"),
    ("ledger: records dropped after replication", "ledger_dropped_replicated"),
    ("local offsets missing upstream, not in ledger (must be 0)", "unledgered_gaps"),
    (
        "ledger: dropped 'after replication' but not upstream (must be 0)",
        "ledger_replicated_not_upstream",
    ),
    ("hostile frames sent (edge-sim --hostile)", "hostile_sent"),
    ("  dead letters upstream, raw bytes and all", "hostile_dead_lettered"),
    ("  serial, lost while the service was down or unplugged", "hostile_lost_in_windows"),
    ("  missing otherwise (at most the quota's dead-letter drops)", "hostile_missing"),
    ("dead letters dropped under the quota, named by the ledger", "dead_letters_dropped_by_quota"),
    ("records the cluster refuses, sent", "refused_sent"),
    ("  of which upstream anyway (must be 0)", "refused_upstream"),
    ("  named in the drop ledger as refused", "refused_in_ledger"),
    ("  dropped under the quota before the uplink reached them", "refused_dropped_by_quota"),
    ("  their kept copies dropped under the quota later", "refused_local_copies_dropped"),
    ("  kept in the local dead-letter topic", "refused_in_local_dead_letters"),
    ("records sent to a topic then left idle", "idle_topic_sent"),
    ("  upstream (with those dropped: as many, none sent again)", "idle_topic_upstream"),
    ("  dropped under the quota before they were replicated", "idle_topic_dropped"),
]


def format_table(result: dict[str, Any]) -> str:
    """The result as two markdown tables: counts per system, drain time per fault."""
    systems = result["systems"]
    crashes = ", ".join(f"{k} {v}" for k, v in (result.get("crashes") or {}).items())
    lines = [
        f"chaos soak: profile {result.get('profile')}, seed {result.get('seed')}, "
        f"{result.get('duration_s')} s of load, {len(result['faults'])} faults"
        + (f"; restarted after exiting on their own: {crashes}" if crashes else ""),
        "",
    ]
    for u in result.get("second_uplinks") or []:
        lines.append(
            f"second uplink ({u['delivery']}): exit {u['exit']} after {u['ran_s']} s; "
            f"last line: {u['last_line']}"
        )
    if result.get("second_uplinks"):
        lines.append("")
    lines.append("| measure | " + " | ".join(s["name"] for s in systems) + " |")
    lines.append("|---|" + "---:|" * len(systems))
    for label, attr in _ROWS:
        cells = ["n/a" if s.get(attr) is None else f"{s[attr]:,}" for s in systems]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| # | at s | fault | detail | "
        + " | ".join(f"drain s ({s['name']})" for s in systems)
        + " |",
        "|---|---:|---|---|" + "---:|" * len(systems),
    ]
    t0 = result.get("started_ms") or 0
    for i, f in enumerate(result["faults"]):
        cells = []
        for s in systems:
            entry = s["drain_s"][i]
            if not entry["applies"]:
                cells.append("n/a")
            else:
                cells.append("—" if entry["drain_s"] is None else f"{entry['drain_s']:.1f}")
        at = (f["start_ms"] - t0) / 1000 if t0 else 0
        lines.append(
            f"| {i + 1} | {at:.0f} | {f['kind']} | {f.get('detail', '')} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


# --- the watcher ------------------------------------------------------------------------


def watch(bootstrap: str, topics: list[str], out: Path) -> int:
    """Consume `topics` read_committed from the start into `out` until SIGTERM/SIGINT."""
    from kafka import KafkaConsumer, TopicPartition  # kafka-python, not the appliance's API

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=30000,
        metadata_max_age_ms=2000,
    )
    assigned: set[TopicPartition] = set()
    with out.open("a", encoding="utf-8") as f:
        while not stopping:
            want = set()
            for t in topics:
                for p in consumer.partitions_for_topic(t) or ():
                    want.add(TopicPartition(t, p))
            if want - assigned:
                new = want - assigned
                assigned |= want
                consumer.assign(sorted(assigned))
                consumer.seek_to_beginning(*new)
            if not assigned:
                time.sleep(0.5)
                continue
            batch = consumer.poll(timeout_ms=500)
            now = int(time.time() * 1000)
            for _tp, msgs in sorted(batch.items()):
                for m in msgs:
                    f.write(
                        json.dumps(
                            {
                                "t": m.topic,
                                "p": m.partition,
                                "o": m.offset,
                                "k": None if m.key is None else m.key.decode("utf-8", "replace"),
                                "v": None if m.value is None else m.value.decode("latin-1"),
                                "ts": m.timestamp,
                                "a": now,
                                "h": {
                                    k: (v or b"").decode("utf-8", "replace")
                                    for k, v in m.headers or []
                                },
                            },
                            separators=(",", ":"),
                        )
                        + "\n"
                    )
            f.flush()
    consumer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.chaos.checker watch|check ...``; see --help."""
    p = argparse.ArgumentParser(prog="checker", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch", help="consume upstream read_committed into a JSON-lines file")
    w.add_argument("--bootstrap-servers", required=True)
    w.add_argument("--topic", action="append", required=True)
    w.add_argument("--out", required=True, type=Path)
    c = sub.add_parser("check", help="check a run from its manifest; print the table")
    c.add_argument("--manifest", required=True, type=Path)
    c.add_argument(
        "--json",
        type=Path,
        default=os.environ.get("CHAOS_RESULT"),
        help="write the result here [env: CHAOS_RESULT]",
    )
    args = p.parse_args(argv)
    if args.cmd == "watch":
        return watch(args.bootstrap_servers, args.topic, args.out)
    result = check_run(json.loads(args.manifest.read_text()))
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
