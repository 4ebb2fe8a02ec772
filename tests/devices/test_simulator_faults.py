"""edge-sim's hostile frames: each well-formed enough to pass the first checks a codec
makes, seeded, and written to the truth file; turning them on changes no other draw."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from pynmeagps import calc_checksum

from devices.cli import main
from devices.simulator import HOSTILE_CODECS, hostile_frame, hostile_names

SERIAL = ("nmea0183", "text", "gatt.0x2A35", "gatt.0x2A1C")


def all_frames(codec: str, max_payload: int | None = None):  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    names = [*hostile_names(codec), "noise"] + (["oversized"] if max_payload else [])
    return [hostile_frame(codec, "dev-1", rng, 1_700_000_000_000, name=n, max_payload=max_payload)
            for n in names]


@pytest.mark.parametrize("codec", HOSTILE_CODECS)
def test_every_codec_has_range_and_parser_frames_and_a_seed_replays_them(codec: str) -> None:
    frames = all_frames(codec)
    assert len(frames) >= 3 and len({f.name for f in frames}) == len(frames)
    assert any(f.field for f in frames), "at least one value out of physical range"
    picks = [[hostile_frame(codec, "dev-1", random.Random(9)).payload for _ in range(1)]
             for _ in range(2)]
    assert picks[0] == picks[1]
    rng = random.Random(3)
    assert {hostile_frame(codec, "d", rng).name for _ in range(200)} == {f.name for f in frames}


@pytest.mark.parametrize("codec", SERIAL)
def test_serial_frames_are_one_line_each(codec: str) -> None:
    for f in all_frames(codec):
        assert f.topic is None
        body = f.payload.rstrip(b"\r\n")
        assert f.payload.endswith(b"\n") and b"\n" not in body and b"\r" not in body, f


def test_nmea_frames_carry_valid_checksums_so_only_their_values_can_refuse_them() -> None:
    for f in all_frames("nmea0183"):
        if f.name in ("noise", "truncated"):
            continue
        text = f.payload.decode("ascii").strip()
        body, _, given = text[1:].rpartition("*")
        assert given == calc_checksum(body), f.name


@pytest.mark.parametrize("codec", ["gatt.0x2A35", "gatt.0x2A1C", "gatt.hex"])
def test_gatt_frames_are_hex_of_a_plausible_length(codec: str) -> None:
    least = 7 if codec == "gatt.0x2A35" else 5
    for f in all_frames(codec):
        if f.name in ("noise", "not-hex"):
            with pytest.raises(ValueError):
                bytes.fromhex(f.payload.strip().decode("latin-1"))
            continue
        data = bytes.fromhex(f.payload.strip().decode())
        assert (len(data) < least) == (f.name == "truncated"), f.name


@pytest.mark.parametrize("codec", [c for c in HOSTILE_CODECS if c not in (*SERIAL, "gatt.hex")])
def test_mqtt_json_frames_parse_as_json_except_the_parser_traps(codec: str) -> None:
    for f in all_frames(codec, max_payload=4096):
        assert f.topic and "dev-1" in f.topic
        if f.name == "oversized":
            assert len(f.payload) == 4097
        if f.name in ("noise", "truncated", "deep-json"):
            with pytest.raises((ValueError, RecursionError)):
                json.loads(f.payload)
        else:
            assert isinstance(json.loads(f.payload), dict), f.name


def test_unknown_codec_or_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: nmea0183"):
        hostile_frame("esphome", "d", random.Random(1))
    with pytest.raises(ValueError, match="'nope'"):
        hostile_frame("text", "d", random.Random(1), name="nope")


def truth(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_writes_hostile_frames_to_output_and_truth_and_leaves_other_draws_alone(
        tmp_path: Path) -> None:
    common = ["--fast", "--no-progress", "--count", "40", "--seed", "4", "--output", "file",
              "--start-ms", "1700000000000", "--corrupt", "0.1", "--temperature-format", "gatt"]
    assert main([*common, "--file", str(tmp_path / "plain"), "--truth", str(tmp_path / "t0")]) == 0
    assert main([*common, "--file", str(tmp_path / "hostile"), "--truth", str(tmp_path / "t1"),
                 "--hostile", "0.5"]) == 0
    plain, hostile = truth(tmp_path / "t0"), truth(tmp_path / "t1")
    rows = [r for r in hostile if r["type"] == "hostile"]
    assert 30 <= len(rows) <= 90
    assert all(isinstance(r["timestamp_ms"], int) for r in rows), "when each was sent"
    assert {r["codec"] for r in rows} == {"nmea0183", "gatt.0x2A1C", "gatt.0x2A35"}
    out = (tmp_path / "hostile").read_bytes()
    assert all(bytes.fromhex(r["raw_hex"]) in out for r in rows)
    # The readings, and which of them were corrupted, are the seed's as without --hostile.
    def readings(rows: list[dict]) -> list[tuple]:
        return [(r["seq"], r["device_id"], r["fault"], r["timestamp_ms"])
                for r in rows if r["type"] == "reading"]
    assert readings(hostile) == readings(plain)
    # Every device goes through its codec's whole catalogue before a frame repeats.
    for codec in ("nmea0183", "gatt.0x2A1C", "gatt.0x2A35"):
        names = Counter(r["name"] for r in rows if r["codec"] == codec)
        assert set(names) == {*hostile_names(codec), "noise"}, codec
        assert max(names.values()) - min(names.values()) <= 1, codec
