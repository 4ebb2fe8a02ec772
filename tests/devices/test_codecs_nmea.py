"""NMEA 0183: real captures, epochs, dates, errors, round trips, fuzzing."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pynmeagps import calc_checksum

from devices import Arrival, DecodeError, NmeaFixAssembler, Reading, encode_fix

DATA = Path(__file__).parent.parent / "data"


def sentences(path: Path) -> list[bytes]:
    return [
        line.encode()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def run(lines: list[bytes]) -> tuple[NmeaFixAssembler, list[Reading]]:
    asm = NmeaFixAssembler("car-17")
    fixes = [r for line in lines for r in asm.decode(line, "car-17")]
    return asm, fixes + asm.flush()


def mk(body: str) -> bytes:
    return f"${body}*{calc_checksum(body)}\r\n".encode()


def test_bu353_glonass_capture():
    asm, fixes = run(sentences(DATA / "bu353-glonass" / "bu353-glonass.nmea"))
    assert [f.values["time_utc"] for f in fixes[:2]] == ["08:14:11", "08:14:12"]
    first = fixes[0].values
    assert first["lat"] == pytest.approx(55 + 41.1955 / 60)  # 55.686591667
    assert first["lon"] == pytest.approx(37 + 37.2872 / 60)  # 37.621453333
    assert first["speed_mps"] == pytest.approx(0.60 * 1852 / 3600, abs=1e-3)
    assert first["course_deg"] == 301.29
    assert first["fix_mode"] == "3d"
    assert first["valid"] is True
    assert first["date"] == "2014-05-26"
    assert fixes[0].timestamp_ms == 1401092051000  # 2014-05-26T08:14:11Z
    second = fixes[1].values
    assert second["alt_m"] == 66.2
    assert second["satellites_used"] == 5
    assert second["fix_quality"] == 1
    assert second["hdop"] == 4.87
    assert set(second["talkers"]) == {"GN", "GP"}
    # 08:14:15 carries the GSV cycle: 12 GPS + 10 GLONASS in view.
    at_15 = next(f for f in fixes if f.values["time_utc"] == "08:14:15")
    assert at_15.values["satellites_in_view"] == 22
    # The fix is lost at 08:14:20: the epoch still comes out, without a position.
    lost = next(f for f in fixes if f.values["time_utc"] == "08:14:20")
    assert lost.values["valid"] is False
    assert lost.values["fix_quality"] == 0
    assert lost.values["fix_mode"] == "none"
    assert "lat" not in lost.values
    assert len(fixes) == 11
    assert asm.proprietary_skipped == 0


def test_sirf_trig_beidou_capture():
    asm, fixes = run(sentences(DATA / "sirf-trig-beidou" / "beidou-gb.nmea"))
    assert asm.proprietary_skipped == 3  # $PSRFEPE
    nofix, fix = fixes[0], fixes[1]
    assert nofix.values["valid"] is False and "lat" not in nofix.values
    assert nofix.values["date"] == "2015-03-02"
    assert fix.values["lat"] == pytest.approx(31 + 14.8789 / 60)  # 31.247981667
    assert fix.values["lon"] == pytest.approx(121 + 35.2442 / 60)  # 121.587403333
    assert fix.values["alt_m"] == 153.8
    assert fix.values["satellites_used"] == 6  # GGA's count wins over GNS's 07
    assert fix.values["satellites_in_view"] == 21 + 11
    assert "GB" in fix.values["talkers"]
    assert fix.timestamp_ms == 1425274352438  # 2015-03-02T05:32:32.438Z
    # The last epoch has only GGA: dated from the RMC before it.
    assert fixes[-1].values["date"] == "2015-03-02"


def test_bad_checksum_is_a_decode_error_and_keeps_state():
    asm = NmeaFixAssembler()
    asm.decode(mk("GPGGA,120000,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "d")
    with pytest.raises(DecodeError, match="checksum") as info:
        asm.decode(b"$GPGGA,120001,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*00\r\n", "d")
    assert info.value.raw.startswith(b"$GPGGA,120001")
    assert info.value.codec == "nmea0183"
    [fix] = asm.flush()
    assert fix.values["time_utc"] == "12:00:00"


def test_a_fix_carries_the_arrival_of_its_epochs_first_sentence():
    # The arrival is an argument, like the sentence: the assembler reads no clock.
    asm = NmeaFixAssembler("car-1")

    def at(mono: int) -> Arrival:
        return Arrival(1_750_000_000_000 + mono, mono)

    lines = [mk("GPRMC,120000,A,4807.038,N,01131.000,E,1.0,1.0,020315,,"),
             mk("GPGGA,120000,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
             mk("GPGSA,A,3,,,,,,,,,,,,,1.5,0.9,1.2")]
    with pytest.raises(DecodeError):  # a bad line first: it starts nothing
        asm.decode(b"$GPRMC,115959,A,4807.038,N,01131.000,E,1.0,1.0,020315,,*00\r\n", "car-1",
                   at(1000))
    for i, line in enumerate(lines):  # the burst at 9600 baud, 40 ms a sentence
        assert asm.decode(line, "car-1", at(1100 + 40 * i)) == []
    # The next epoch, a second later, releases the first.
    [fix] = asm.decode(mk("GPRMC,120001,A,4807.038,N,01131.000,E,1.0,1.0,020315,,"), "car-1",
                       at(2100))
    assert (fix.values["time_utc"], fix.arrival_monotonic_ms) == ("12:00:00", 1100)
    [last] = asm.flush()
    assert (last.values["time_utc"], last.arrival_monotonic_ms) == ("12:00:01", 2100)
    # Carried through the copies adapters make; no arrival given, none carried.
    assert fix.with_timestamp(5).arrival_monotonic_ms == 1100
    assert fix.arrived(at(2100)).arrival_monotonic_ms == 1100
    assert run(lines)[1][0].arrival_monotonic_ms is None


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"GPGGA,1", "starts with"),
        (b"$GPGGA,120000,4807.038,N", "checksum"),
        (mk("GPGGA,126199,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "time"),
        (mk("GPRMC,120000,A,4807.038,N,01131.000,E,1.0,1.0,320194,,"), "date"),
        (mk("GPGGA,120000,4899.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "minutes"),
        (mk("GPGGA,120000,9107.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "globe"),
        (mk("GPGGA,120000,4807.038,N,01131.000,E,x,08,0.9,545.4,M,46.9,M,,"), "GPGGA"),
        ("$GPGGA,é*00".encode(), "ASCII"),
    ],
)
def test_malformed_sentences(line, reason):
    with pytest.raises(DecodeError, match=reason):
        NmeaFixAssembler().decode(line, "d")


def test_unhandled_and_proprietary_are_counted_not_errors():
    asm = NmeaFixAssembler()
    assert asm.decode(mk("GPTXT,01,01,02,ANTSTATUS=OK"), "d") == []
    assert asm.decode(b"$PUBX,00,garbage", "d") == []
    assert (asm.unhandled_skipped, asm.proprietary_skipped) == (1, 1)


def test_capture_starting_mid_gsv_cycle():
    asm = NmeaFixAssembler()
    lines = [
        mk("GPGSV,3,3,12,10,19,202,,13,15,129,23,21,06,346,,15,04,307,"),
        mk("GPGGA,120000,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
    ]
    out = [r for line in lines for r in asm.decode(line, "d")] + asm.flush()
    assert len(out) == 1 and out[0].values["lat"] == pytest.approx(48.1173)


def test_midnight_rollover_keeps_counting_days():
    asm = NmeaFixAssembler()
    lines = [
        mk("GPRMC,235959,A,4807.038,N,01131.000,E,1.0,90.0,311299,,"),
        mk("GPGGA,235959,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        mk("GPGGA,000000,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        mk("GPGGA,000001,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
    ]
    out = [r for line in lines for r in asm.decode(line, "d")] + asm.flush()
    assert [r.values["date"] for r in out] == ["1999-12-31", "2000-01-01", "2000-01-01"]
    assert out[1].timestamp_ms - out[0].timestamp_ms == 1000


def test_time_only_fix_has_no_timestamp_until_a_date_arrives():
    asm = NmeaFixAssembler()
    asm.decode(mk("GPGGA,120000,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "d")
    [fix] = asm.flush()
    assert fix.timestamp_ms is None and fix.values["time_utc"] == "12:00:00"


def test_timeless_no_fix_rmc_stream_gives_one_epoch_each():
    asm = NmeaFixAssembler()
    out = [r for _ in range(3) for r in asm.decode(mk("GPRMC,,V,,,,,,,,,,N"), "d")] + asm.flush()
    assert len(out) == 3 and all(r.values["valid"] is False for r in out)


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "GB", "BD", "GQ"])
def test_all_talkers(talker):
    asm = NmeaFixAssembler()
    asm.decode(mk(f"{talker}GGA,120000,4807.038,S,01131.000,W,1,08,0.9,545.4,M,46.9,M,,"), "d")
    [fix] = asm.flush()
    assert fix.values["talkers"] == [talker]
    assert fix.values["lat"] == pytest.approx(-48.1173)
    assert fix.values["lon"] == pytest.approx(-11.516666667)


fixes = st.builds(
    lambda lat, lon, speed, course, alt, sats, hdop, ts: Reading(
        "car",
        "gps",
        "nmea0183",
        {"lat": lat, "lon": lon, "speed_mps": speed, "course_deg": course, "alt_m": alt,
         "satellites_used": sats, "hdop": hdop, "fix_mode": "3d", "pdop": 1.5},
        ts,
    ),
    st.floats(-89.9999, 89.9999),
    st.floats(-179.9999, 179.9999),
    st.floats(0, 100),
    st.floats(0, 359.99),
    st.floats(-400, 9000),
    st.integers(0, 40),
    st.floats(0.5, 20),
    st.integers(946684800000, 3124223990000).map(lambda ms: ms - ms % 10),  # 2-digit years: 2000..2068
)


@settings(max_examples=60, deadline=None)
@given(fixes)
def test_round_trip(reading):
    asm = NmeaFixAssembler("car")
    out = [r for line in encode_fix(reading).splitlines() for r in asm.decode(line, "car")]
    [back] = out + asm.flush()
    v, b = reading.values, back.values
    assert back.timestamp_ms == reading.timestamp_ms
    assert b["lat"] == pytest.approx(v["lat"], abs=1e-6)
    assert b["lon"] == pytest.approx(v["lon"], abs=1e-6)
    assert b["speed_mps"] == pytest.approx(v["speed_mps"], abs=1e-3)
    assert b["course_deg"] == pytest.approx(v["course_deg"], abs=0.01)
    assert b["alt_m"] == pytest.approx(v["alt_m"], abs=0.05)
    assert b["satellites_used"] == v["satellites_used"]
    assert b["fix_mode"] == "3d" and b["valid"] is True


def test_corrupted_encoding_is_refused():
    r = Reading("car", "gps", "nmea0183", {"lat": 1.0, "lon": 2.0}, 1700000000000)
    asm = NmeaFixAssembler()
    for line in encode_fix(r, corrupt_checksum=True).splitlines():
        with pytest.raises(DecodeError, match="checksum"):
            asm.decode(line, "car")


REAL = sentences(DATA / "bu353-glonass" / "bu353-glonass.nmea")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_fuzz_random_bytes(data):
    try:
        NmeaFixAssembler().decode(data, "d")
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REAL), st.integers(0, 80), st.binary(min_size=1, max_size=3), st.booleans())
def test_fuzz_mutated_real_sentences_with_fixed_checksum(line, pos, junk, truncate):
    # Mutate inside the body and recompute the checksum, so the parser
    # itself (not just the checksum) meets the damage.
    body = line[1 : line.rfind(b"*")]
    pos = pos % (len(body) + 1)
    body = body[:pos] if truncate else body[:pos] + junk + body[pos:]
    text = body.decode("latin-1")
    asm = NmeaFixAssembler()
    try:
        asm.decode(b"$" + body + b"*" + calc_checksum(text).encode(), "d")
        asm.flush()
    except DecodeError:
        pass
