"""The chaos checker on made-up runs: it must see every kind of damage it reports.

No appliance, no Kafka: truth files and upstream records are written by hand, so each
count the soak relies on is shown to move when the damage is there.
"""

from __future__ import annotations

import calendar
import json
from pathlib import Path
from typing import Any

from tests.chaos import checker

T0 = 1_800_000_000_000


def _truth(path: Path, n: int, device: str = "room-1", transport_rate_ms: int = 1000) -> list[dict]:
    rows = [
        {
            "type": "reading",
            "seq": i + 1,
            "device_id": device,
            "kind": "temperature",
            "timestamp_ms": T0 + i * transport_rate_ms,
            "values": {"temperature_c": 20 + i / 100},
            "fault": None,
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _record(topic: str, row: dict, offset: int, arrival: int, key_prefix: str = "mq-") -> dict:
    return {
        "t": topic,
        "p": 0,
        "o": offset,
        "k": key_prefix + row["device_id"],
        "v": json.dumps({"temperature_c": row["values"]["temperature_c"]}),
        "ts": row["timestamp_ms"] // 1000 * 1000,
        "a": arrival,
        "h": {"edge.partition": "0", "edge.offset": str(offset)},
    }


def _run(
    tmp: Path,
    rows: list[dict],
    upstream: list[dict],
    acked: list[int],
    ledger: list[dict] | None = None,
    faults: list[dict] | None = None,
    system: dict[str, Any] | None = None,
) -> dict[str, Any]:
    (tmp / "acks.txt").write_text("".join(f"{s}\n" for s in acked))
    records = list(upstream) + [
        {
            "t": "up.ledger",
            "p": 0,
            "o": i,
            "k": None,
            "v": json.dumps(e),
            "ts": T0,
            "a": T0,
            "h": {},
        }
        for i, e in enumerate(ledger or [])
    ]
    (tmp / "arrivals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp / "faults.jsonl").write_text("".join(json.dumps(f) + "\n" for f in faults or []))
    manifest = {
        "seed": 1,
        "profile": "test",
        "duration_s": 1,
        "started_ms": T0,
        "arrivals": str(tmp / "arrivals.jsonl"),
        "faults": str(tmp / "faults.jsonl"),
        "sources": [
            {
                "name": "mqtt",
                "truth": str(tmp / "truth.jsonl"),
                "acks": str(tmp / "acks.txt"),
                "transport": "mqtt",
                "key_prefix": "mq-",
            }
        ],
        "systems": [
            {
                "name": "appliance",
                "mode": "edge",
                "sources": ["mqtt"],
                "topics": {"temperature": "up.temperature", "dead-letters": "up.dead-letters"},
                "drop_ledger_topic": "up.ledger",
                **(system or {}),
            }
        ],
    }
    return checker.check_run(manifest)["systems"][0]


def test_a_clean_run_counts_nothing_wrong(tmp_path: Path) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 20)
    up = [_record("up.temperature", r, i, T0 + i * 1000 + 50) for i, r in enumerate(rows)]
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows])
    assert (res["emitted"], res["acked"], res["arrived"]) == (20, 20, 20)
    assert res["lost_acked"] == res["duplicates"] == res["order_violations"] == 0
    assert res["uplink_duplicates"] == res["unledgered_gaps"] == res["unknown_upstream"] == 0


def test_loss_duplicates_order_and_unledgered_gaps_are_seen(tmp_path: Path) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 20)
    up = [_record("up.temperature", r, i, T0 + i * 1000) for i, r in enumerate(rows)]
    del up[5]  # an acknowledged reading lost (offset gap)
    up.append(dict(up[3]))  # the same local record twice: uplink duplicate
    dup = _record("up.temperature", rows[8], 20, T0)  # the same reading at a new offset
    up.insert(12, dup)
    up[14], up[15] = up[15], up[14]  # two readings swapped: order broken
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows])
    assert res["lost_acked"] == 1
    assert res["unledgered_gaps"] == 1
    assert res["uplink_duplicates"] == 1
    assert res["duplicates"] == 2
    assert res["order_violations"] == 1


def test_the_drop_ledger_accounts_for_dropped_readings_and_no_more(tmp_path: Path) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 20)
    up = [
        _record("up.temperature", r, i, T0 + i * 1000)
        for i, r in enumerate(rows)
        if not 5 <= i <= 9
    ]
    ledger = [
        {
            "topic": "temperature",
            "ranges": [{"partition": 0, "from_offset": 5, "to_offset": 8}],
            "count": 4,
            "unreplicated": True,
            "wall_ms": T0,
        }
    ]
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows], ledger)
    # Offsets 5-8 dropped on the record; offset 9 missing with no entry: one reading lost.
    assert res["quota_dropped_readings"] == 4
    assert res["lost_acked"] == 1 and res["unledgered_gaps"] == 1
    # A ledger entry claiming a drop after replication of a record that is not upstream.
    ledger.append(
        {
            "topic": "temperature",
            "ranges": [{"partition": 0, "from_offset": 9, "to_offset": 9}],
            "count": 1,
            "unreplicated": False,
            "wall_ms": T0,
        }
    )
    # ... and one of a local topic the uplink does not carry: nothing to compare with.
    ledger.append({"topic": "ward.late", "ranges": [{"partition": 0, "from_offset": 0,
                   "to_offset": 3}], "count": 4, "unreplicated": False, "wall_ms": T0})
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows], ledger)
    assert res["ledger_replicated_not_upstream"] == 1
    assert res["lost_acked"] == 1, "a drop 'after replication' explains no missing reading"


def test_unacknowledged_and_serial_losses_are_told_apart_and_drain_is_measured(
    tmp_path: Path,
) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 20)
    up = [
        _record("up.temperature", r, i, T0 + i * 1000 + (4000 if i >= 10 else 0))
        for i, r in enumerate(rows)
        if i != 12
    ]
    fault = {"kind": "service-sigkill", "start_ms": T0 + 9000, "end_ms": T0 + 11_000}
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows if r["seq"] != 13], faults=[fault])
    assert res["lost_acked"] == 0 and res["lost_unacked_mqtt"] == 1
    drain = res["drain_s"][0]
    # Readings emitted from 1 s before the kill to the restart arrived up to 4 s after it.
    assert drain["applies"] and drain["readings"] == 4 and drain["drain_s"] == 4.0


def test_bridge_payloads_are_read_without_the_appliance(tmp_path: Path) -> None:
    # 0x2A1C: flags 0x02 (timestamp), 20.07 °C as FLOAT (mantissa 2007, exponent -2), then
    # 2027-01-15 08:00:00.
    payload = (
        bytes([0x02])
        + (2007).to_bytes(3, "little")
        + (0xFE).to_bytes(1, "little")
        + (2027).to_bytes(2, "little")
        + bytes([1, 15, 8, 0, 0])
    )
    kind, device, ts, values = checker.bridge_reading("ble/room-3/2A1C", payload.hex().encode())
    assert (kind, device, values) == ("temperature", "room-3", {"temperature_c": 20.07})
    assert ts == calendar.timegm((2027, 1, 15, 8, 0, 0)) * 1000
    got = checker.bridge_reading(
        "owntracks/sim/car-2", b'{"_type":"location","lat":52.5,"lon":13.4,"tst":5}'
    )
    assert got == ("gps", "sim/car-2", 5000, {"lat": 52.5, "lon": 13.4})
    assert checker.bridge_reading("bp/bed-1", b"not json") is None
    # The bridge forwards hostile frames as they came: the checker reads them without failing.
    for hostile in (b'{"systolic":' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"[1, 2]"):
        assert checker.bridge_reading("bp/bed-1", hostile) is None
        assert checker.bridge_reading("owntracks/sim/car-1", hostile) is None
    got = checker.bridge_reading("bp/bed-1", b'{"systolic": 1' + b"0" * 400 + b"}")
    assert got is not None
    key = checker.reading_key("blood_pressure", "bed-1", None, got[3])
    assert key[3] == repr(10**400) and key[4] is None


def test_twins_in_one_second_are_told_apart_by_finer_device_time() -> None:
    key = checker.reading_key("temperature", "r", T0, {"temperature_c": 20.0})
    readings = [
        checker.Reading(i, key, T0 + 100 * i, "mqtt", True, "temperature") for i in range(3)
    ]
    m = checker.DeviceMatch(readings)
    m.add(key, T0, ts_ms=T0 + 200)  # bp.json-like: the device's own milliseconds
    assert set(m.arrived) == {2} and m.ambiguous == 0
    m = checker.DeviceMatch(readings)
    m.add(key, T0, ts_ms=T0)  # whole seconds only: by position, the nearest after the last
    m.add(key, T0, ts_ms=T0)
    assert set(m.arrived) == {0, 1} and m.ambiguous == 2 and m.duplicates == 0


def _hostile_rows(path: Path, raws: list[bytes], rooms: list[str] | None = None,
                  step_ms: int = 1) -> None:
    with path.open("a") as f:
        for i, raw in enumerate(raws):
            room = rooms[i] if rooms else "room-1"
            row = {"type": "hostile", "device_id": room, "codec": "zigbee2mqtt",
                   "name": f"h{i}", "topic": f"zigbee2mqtt/{room}", "field": None,
                   "raw_hex": raw.hex(), "timestamp_ms": T0 + i * step_ms}
            f.write(json.dumps(row) + "\n")


def _dead_letter(raw: bytes, offset: int, room: str = "room-1", ingest_ms: int = T0) -> dict:
    return {"t": "up.dead-letters", "p": 0, "o": offset, "k": "rooms", "a": T0, "ts": T0,
            "v": raw.decode("latin-1"),
            "h": {"reason": "humidity_pct 250 outside 0..100", "ingest_ms": str(ingest_ms),
                  "source": f"mqtt://127.0.0.1:1883/edge-rooms#zigbee2mqtt/{room}"}}


def test_hostile_frames_are_counted_as_dead_letters_or_missing(tmp_path: Path) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 5)
    raws = [b'{"temperature":21.5,"humidity":250}', b"\xff\x00noise", b'{"temperature":21.5,"humidity":250}']
    _hostile_rows(tmp_path / "truth.jsonl", raws)
    up = [_record("up.temperature", r, i, T0) for i, r in enumerate(rows)]
    up += [_dead_letter(raws[0], 0), _dead_letter(raws[1] + b"\n", 1)]
    ledger = [{"topic": "dead-letters", "ranges": [{"partition": 1, "from_offset": 0,
               "to_offset": 0}], "count": 1, "unreplicated": True, "wall_ms": T0}]
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows], ledger)
    assert res["hostile_sent"] == 3
    # The same bytes twice need two dead letters: one is missing.
    assert res["hostile_dead_lettered"] == 2 and res["hostile_missing"] == 1
    assert res["dead_letters_dropped_by_quota"] == 1
    assert res["lost_acked"] == 0 and res["unknown_upstream"] == 0
    assert res["refused_sent"] is None, "no refusal fault in this run"


def test_a_hostile_frame_is_paired_with_its_own_dead_letter(tmp_path: Path) -> None:
    # The same bytes sent to room-1 at T0 (dropped under the quota) and T0+60 s, and to
    # room-2 at T0+30 s: the one missing is room-1's first, named with its time, not the
    # one whose copy happens to come first upstream.
    rows = _truth(tmp_path / "truth.jsonl", 2)
    raw = b'{"temperature":21.5,"humidity":250}'
    _hostile_rows(tmp_path / "truth.jsonl", [raw] * 3, ["room-1", "room-2", "room-1"], 30_000)
    up = [_record("up.temperature", r, i, T0) for i, r in enumerate(rows)]
    up += [_dead_letter(raw, 0, "room-2", T0 + 30_001), _dead_letter(raw, 1, "room-1", T0 + 60_001)]
    ledger = [{"topic": "dead-letters", "ranges": [{"partition": 0, "from_offset": 0,
               "to_offset": 0}], "count": 1, "unreplicated": True, "wall_ms": T0}]
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows], ledger)
    assert res["hostile_dead_lettered"] == 2 and res["hostile_missing"] == 1
    [missing] = res["hostile_missing_frames"]
    assert missing["device"] == "#zigbee2mqtt/room-1" and missing["ts"] == T0


def test_refused_records_must_stay_local_and_explain_no_missing_reading(tmp_path: Path) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 10)
    # Reading 4 (offset 4) is missing upstream; a refusal entry names offset 4: it must not
    # pass for the missing reading (the refused record is another one).
    up = [_record("up.temperature", r, i, T0) for i, r in enumerate(rows) if i != 4]
    refused = [{"device": "mq-bed-9", "kind": "temperature", "values": {"temperature_c": 41.25}},
               {"device": "mq-bed-9", "kind": "temperature", "values": {"temperature_c": 41.5}}]
    (tmp_path / "refused.jsonl").write_text("".join(json.dumps(r) + "\n" for r in refused))
    up.append({"t": "up.temperature", "p": 1, "o": 0, "k": "mq-bed-9", "a": T0, "ts": T0,
               "v": json.dumps({"temperature_c": 41.5}), "h": {}})
    # A hostile frame's dead letter upstream: JSON nested past the parser's limit.
    up.append({"t": "up.dead-letters", "p": 0, "o": 0, "k": "beds", "a": T0, "ts": T0,
               "v": '{"systolic":' + "[" * 100_000 + "]" * 100_000 + "}", "h": {}})
    local = [{"t": "dead-letters", "k": "mq-bed-9", "v": json.dumps({"temperature_c": 41.25}),
              "ts": T0, "h": {"reason": "refused by the cluster: InvalidTimestampError"}}]
    (tmp_path / "local-dl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in local))
    ledger = [{"topic": "temperature", "ranges": [{"partition": 0, "from_offset": 4,
               "to_offset": 4}], "count": 1, "unreplicated": True, "wall_ms": T0,
               "dead_letter_topic": "dead-letters"}]
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows], ledger,
               system={"refused": str(tmp_path / "refused.jsonl"),
                       "local_dead_letters": str(tmp_path / "local-dl.jsonl")})
    assert res["refused_sent"] == 2 and res["refused_upstream"] == 1
    assert res["refused_in_ledger"] == 1 and res["refused_in_local_dead_letters"] == 1
    assert res["lost_acked"] == 1 and res["quota_dropped_readings"] == 0
    assert res["ledger_dropped_unreplicated"] == 0


def test_an_idle_topic_sent_again_after_a_restart_is_seen(tmp_path: Path) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 3)
    up = [_record("up.temperature", r, i, T0) for i, r in enumerate(rows)]
    idle = [{"t": "up.idle", "p": 0, "o": o, "k": "idle-sensor-1", "a": T0, "ts": T0,
             "v": json.dumps({"temperature_c": 20}), "h": {"edge.partition": "0",
                                                         "edge.offset": str(o % 2)}}
            for o in range(3)]  # two records, the first sent again by a restarted uplink
    res = _run(tmp_path, rows, up + idle, [r["seq"] for r in rows],
               system={"idle_topic": {"topic": "up.idle", "sent": 2},
                       "topics": {"temperature": "up.temperature", "idle": "up.idle"}})
    assert (res["idle_topic_sent"], res["idle_topic_upstream"]) == (2, 3)
    assert res["idle_topic_dropped"] == 0
    assert res["uplink_duplicates"] == 1 and res["unknown_upstream"] == 0


def test_refused_records_are_each_named_as_refused_or_as_dropped_by_the_quota(
        tmp_path: Path) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 3)
    up = [_record("up.temperature", r, i, T0) for i, r in enumerate(rows)]
    refused = [{"device": f"mq-refused-{n}", "kind": "temperature", "partition": 1,
                "offset": 10 + n, "values": {"temperature_c": 40 + n}} for n in range(3)]
    (tmp_path / "refused.jsonl").write_text("".join(json.dumps(r) + "\n" for r in refused))
    local = [{"t": "uplink.dlq", "k": "mq-refused-0", "v": json.dumps({"temperature_c": 40}),
              "ts": T0, "h": {}}]
    (tmp_path / "local-dl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in local))

    def entry(topic: str, offset: int, **kw: Any) -> dict:
        return {"topic": topic, "ranges": [{"partition": 1, "from_offset": offset,
                "to_offset": offset}], "count": 1, "unreplicated": True, "wall_ms": T0, **kw}

    ledger = [entry("temperature", 10, dead_letter_topic="uplink.dlq"),  # refused, kept
              entry("temperature", 11, dead_letter_topic="uplink.dlq"),  # refused ...
              entry("uplink.dlq", 0),  # ... and its kept copy dropped later
              entry("temperature", 12)]  # dropped under the quota before the uplink got to it
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows], ledger,
               system={"refused": str(tmp_path / "refused.jsonl"),
                       "local_dead_letters": str(tmp_path / "local-dl.jsonl")})
    assert (res["refused_sent"], res["refused_in_ledger"], res["refused_dropped_by_quota"]) == (
        3, 2, 1)
    assert res["refused_in_local_dead_letters"] == 1 and res["refused_local_copies_dropped"] == 1
    assert res["refused_upstream"] == 0 and res["lost_acked"] == 0


def test_idle_records_dropped_before_replication_are_the_ledgers_account(tmp_path: Path) -> None:
    rows = _truth(tmp_path / "truth.jsonl", 3)
    up = [_record("up.temperature", r, i, T0) for i, r in enumerate(rows)]
    up.append({"t": "up.idle", "p": 0, "o": 0, "k": "idle-sensor-1", "a": T0, "ts": T0,
               "v": json.dumps({"temperature_c": 20}),
               "h": {"edge.partition": "0", "edge.offset": "3"}})
    ledger = [{"topic": "idle", "ranges": [{"partition": 0, "from_offset": 0, "to_offset": 2}],
               "count": 3, "unreplicated": True, "wall_ms": T0}]
    res = _run(tmp_path, rows, up, [r["seq"] for r in rows], ledger,
               system={"idle_topic": {"topic": "up.idle", "sent": 4},
                       "topics": {"temperature": "up.temperature", "idle": "up.idle"}})
    assert (res["idle_topic_upstream"], res["idle_topic_dropped"]) == (1, 3)
    assert res["unledgered_gaps"] == 0 and res["uplink_duplicates"] == 0
