"""edge._clock: status transitions, GPS correction, jump detection, per-key timestamps.

The wall and monotonic clocks are injected (broker.ManualClock): stepping the
real clock needs root and would disturb everyone else on the machine.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from broker import ManualClock
from devices import Reading
from devices.codecs.nmea import NmeaFixAssembler, encode_fix
from edge._clock import (
    PLAUSIBLE_AFTER_MS,
    ClockJump,
    ClockStatus,
    ClockTrust,
    KeyStamps,
    gps_fix_utc_ms,
)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


BOOT_2020 = ms("2020-06-01T00:00:00")  # a Pi that came up without a clock
TRUE_NOW = ms("2026-11-27T10:00:00")


class Ntp:
    """An NTP probe the test flips; counts how often it is asked."""

    def __init__(self, synced: bool = False) -> None:
        self.synced = synced
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.synced


def trust_at(wall: int, ntp: Ntp | None = None, **kw):  # type: ignore[no-untyped-def]
    clock = ManualClock(wall_ms=wall, monotonic_ms=5_000)
    jumps: list[ClockJump] = []
    t = ClockTrust(clock, ntp=ntp or Ntp(), on_jump=jumps.append, **kw)
    return clock, t, jumps


def nmea_fixes(*utc_ms: int, valid: bool = True) -> list[Reading]:
    """Fixes as the serial adapter gets them: encoded sentences through the real assembler."""
    asm = NmeaFixAssembler("car-1")
    out: list[Reading] = []
    for t in utc_ms:
        values = {"lat": 52.5, "lon": 13.4, "valid": valid} if valid else {}
        for line in encode_fix(Reading("car-1", "gps", "nmea0183", values, t)).splitlines():
            out += asm.decode(line)
    return out + asm.flush()


# -- status --------------------------------------------------------------------------------


def test_status_from_the_system_alone() -> None:
    _, t, _ = trust_at(BOOT_2020)
    assert t.status() is ClockStatus.UNSYNCED  # 2020: cannot be right
    _, t, _ = trust_at(TRUE_NOW)
    assert t.status() is ClockStatus.UNKNOWN  # plausible, nothing says so
    _, t, _ = trust_at(TRUE_NOW, Ntp(True))
    assert t.status() is ClockStatus.SYNCED
    # A "synced" kernel flag with a 2020 clock is not believed.
    _, t, _ = trust_at(BOOT_2020, Ntp(True))
    assert t.status() is ClockStatus.UNSYNCED


def test_status_transitions_unsynced_gps_synced_and_gps_expiry(caplog) -> None:  # type: ignore[no-untyped-def]
    ntp = Ntp(False)
    clock, t, _ = trust_at(BOOT_2020, ntp, gps_max_age_s=600, ntp_check_every_s=5)
    caplog.set_level(logging.INFO, "edge.clock")
    seen = [t.status()]
    assert t.observe_gps(TRUE_NOW)
    seen.append(t.status())
    clock.advance(601)  # the fix is too old now
    seen.append(t.status())
    t.observe_gps(TRUE_NOW + 601_000)
    seen.append(t.status())
    ntp.synced = True
    clock.set_wall(TRUE_NOW + 601_000)  # NTP set the clock
    seen.append(t.status())  # the jump makes it ask NTP at once
    assert seen == ["unsynced", "gps", "unsynced", "gps", "synced"]
    # Became trusted twice (unsynced -> gps, twice); gps -> synced is no correction.
    assert t.corrections == 2
    assert "clock: gps -> synced" in caplog.text


def test_ntp_probe_is_cached() -> None:
    ntp = Ntp(True)
    clock, t, _ = trust_at(TRUE_NOW, ntp, ntp_check_every_s=5)
    for _ in range(100):
        t.stamp()
    assert ntp.asked == 1
    clock.advance(5)
    t.stamp()
    assert ntp.asked == 2
    clock.set_wall(clock.wall_ms() + 60_000)  # a jump: asked again at once
    t.stamp()
    assert ntp.asked == 3


# -- GPS correction ------------------------------------------------------------------------


def test_gps_corrects_the_time_of_a_box_years_behind() -> None:
    clock, t, _ = trust_at(BOOT_2020)
    assert t.stamp() == (BOOT_2020, ClockStatus.UNSYNCED)
    t.observe_gps(TRUE_NOW)
    assert t.stamp() == (TRUE_NOW, ClockStatus.GPS)
    clock.advance(2.5)
    assert t.now_ms() == TRUE_NOW + 2_500  # runs on the monotonic clock
    # A wall-clock step changes nothing while GPS is the reference.
    clock.set_wall(BOOT_2020 - 86_400_000)
    assert t.stamp() == (TRUE_NOW + 2_500, ClockStatus.GPS)
    info = t.describe()
    assert info["status"] == "gps" and info["gps_fixes"] == 1
    assert info["wall_minus_gps_s"] == pytest.approx((BOOT_2020 - 86_400_000 - TRUE_NOW - 2_500) / 1000)


def test_holdover_after_the_gps_fix_goes_stale() -> None:
    clock, t, _ = trust_at(BOOT_2020, gps_max_age_s=600)
    t.observe_gps(TRUE_NOW)
    assert t.stamp() == (TRUE_NOW, ClockStatus.GPS)
    clock.advance(3600)  # no fix for an hour: not "gps" any more...
    clock.set_wall(BOOT_2020)  # ...and the wall clock is stepped back to 2020 on top
    # ...but the stamps run on from the last trusted time, not from 2020.
    assert t.stamp() == (TRUE_NOW + 3_600_000, ClockStatus.UNSYNCED)
    assert t.describe()["holdover"] is True
    # Never trusted in this run: nothing to hold over, the wall clock as it is.
    _, fresh, _ = trust_at(BOOT_2020)
    assert fresh.stamp() == (BOOT_2020, ClockStatus.UNSYNCED)
    assert fresh.describe()["holdover"] is False


def test_gps_prefers_the_fix_that_arrived_soonest() -> None:
    clock, t, _ = trust_at(BOOT_2020)
    mono = clock.monotonic_ms()
    t.observe_gps(TRUE_NOW, at_monotonic_ms=mono)  # arrived 0 ms after its time
    t.observe_gps(TRUE_NOW + 1_000, at_monotonic_ms=mono + 1_400)  # arrived 400 ms late
    assert t.gps_offset_ms() == TRUE_NOW - mono
    # A receiver that changed its mind by more than the jump threshold wins outright.
    t.observe_gps(TRUE_NOW + 60_000, at_monotonic_ms=mono + 2_000)
    assert t.gps_offset_ms() == TRUE_NOW + 58_000 - mono


def test_a_fix_released_a_second_late_still_gives_the_offset_at_its_arrival() -> None:
    clock, t, _ = trust_at(BOOT_2020)
    asm = NmeaFixAssembler("car-1")  # the adapter hands it each sentence's arrival (t.arrival())
    arrived = clock.monotonic_ms()  # the epoch's first sentence, at TRUE_NOW on the wire
    lines = encode_fix(Reading("car-1", "gps", "nmea0183", {"lat": 52.5, "lon": 13.4},
                               TRUE_NOW)).splitlines()
    for line in lines:
        assert asm.decode(line, "car-1", t.arrival()) == []
        clock.advance(0.03)  # 30 ms a sentence
    clock.advance(1.0 - 0.03 * len(lines))
    # The next epoch starts a second later; only now is the first fix handed on.
    nxt = encode_fix(Reading("car-1", "gps", "nmea0183", {"lat": 52.5, "lon": 13.4},
                             TRUE_NOW + 1000)).splitlines()
    [fix] = asm.decode(nxt[0], "car-1", t.arrival())
    released = clock.monotonic_ms()
    assert released - arrived == 1000
    assert t.observe_reading(fix)
    assert abs(t.gps_offset_ms() - (TRUE_NOW - arrived)) <= 5
    clock.advance(0.25)
    assert abs(t.now_ms() - (TRUE_NOW + 1250)) <= 5, "GPS time lags by the release delay"
    # What taking the offset at release would give: a second behind.
    _, late, _ = trust_at(BOOT_2020)
    late.observe_gps(gps_fix_utc_ms(fix) or 0, at_monotonic_ms=released)
    assert late.gps_offset_ms() == TRUE_NOW - arrived - 1000


def test_gps_with_an_implausible_date_is_rejected() -> None:
    _, t, _ = trust_at(BOOT_2020)
    assert not t.observe_gps(ms("2006-03-19T00:00:00"))  # a GPS week-rollover bug
    assert t.status() is ClockStatus.UNSYNCED and t.gps_rejected == 1


def test_only_valid_dated_nmea_fixes_give_time() -> None:
    fixes = nmea_fixes(TRUE_NOW, TRUE_NOW + 1000)
    assert [gps_fix_utc_ms(r) for r in fixes] == [TRUE_NOW, TRUE_NOW + 1000]
    # No fix (RMC status V, GGA quality 0): the receiver's own battery clock, not trusted.
    nofix = nmea_fixes(TRUE_NOW, valid=False)
    assert nofix and all(gps_fix_utc_ms(r) is None for r in nofix)
    # Other schemas carry a phone's or a device's clock, not the satellites'.
    phone = Reading("car-1", "gps", "owntracks", {"lat": 1.0, "lon": 2.0, "valid": True,
                                                    "date": "2026-11-27"}, TRUE_NOW)
    assert gps_fix_utc_ms(phone) is None
    _, t, _ = trust_at(BOOT_2020)
    assert [t.observe_reading(r) for r in fixes + nofix] == [True, True, False]


# -- jumps ---------------------------------------------------------------------------------


def test_jumps_forward_and_backward_are_counted_slews_are_not(caplog) -> None:  # type: ignore[no-untyped-def]
    clock, t, jumps = trust_at(BOOT_2020, jump_threshold_s=2.0)
    caplog.set_level(logging.WARNING, "edge.clock")
    clock.advance(100)
    clock.set_wall(clock.wall_ms() + 1_500)  # within the threshold: a slew, not a jump
    assert t.check() is None
    clock.set_wall(TRUE_NOW)  # NTP's first sync: years forward
    j = t.check()
    assert j is not None and j.direction == "forward" and j.step_ms == TRUE_NOW - (BOOT_2020 + 101_500)
    assert t.check() is None  # counted once
    clock.advance(10)
    clock.set_wall(clock.wall_ms() - 3_600_000)  # stepped back an hour
    assert t.status() is not None  # status() looks too
    assert [x.direction for x in jumps] == ["forward", "backward"]
    assert jumps[1].step_ms == -3_600_000 and t.jump_count == 2
    assert t.describe()["jumps"] == 2 and t.describe()["last_jump_s"] == -3600.0
    assert "jumped backward by 3600.000 s" in caplog.text


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="jump_threshold_s must be > 0, got 0"):
        ClockTrust(ManualClock(), jump_threshold_s=0)
    with pytest.raises(ValueError, match="gps_max_age_s"):
        ClockTrust(ManualClock(), gps_max_age_s=-1)


# -- per-key timestamps --------------------------------------------------------------------


def test_box_stamps_never_go_back_on_a_jump_within_one_trust_level() -> None:
    ntp = Ntp(True)
    clock, t, _ = trust_at(TRUE_NOW, ntp)
    stamps = KeyStamps(t)
    first = stamps.stamp(b"room-1", t.now_ms())
    clock.advance(1)
    clock.set_wall(clock.wall_ms() - 3_600_000)  # NTP stepped back an hour, still synced
    assert t.status() is ClockStatus.SYNCED
    assert stamps.stamp(b"room-1", t.now_ms()) == first  # held, not an hour back
    assert stamps.stamp(b"room-2", t.now_ms()) == t.now_ms()  # keys are independent
    assert stamps.held == 1
    clock.advance(3_601)  # the clock catches up: stamps move again
    assert stamps.stamp(b"room-1", t.now_ms()) == t.now_ms() > first


def test_a_correction_to_trusted_time_may_step_back() -> None:
    # The box booted a year ahead (a bad saved time); a GPS fix says the truth.
    clock, t, _ = trust_at(TRUE_NOW + 365 * 86_400_000)
    stamps = KeyStamps(t)
    wrong = stamps.stamp(b"room-1", t.now_ms())
    t.observe_gps(TRUE_NOW)
    right = stamps.stamp(b"room-1", t.now_ms())
    assert right == TRUE_NOW < wrong and stamps.held == 0


def test_key_memory_is_bounded() -> None:
    _, t, _ = trust_at(TRUE_NOW)
    stamps = KeyStamps(t, max_keys=3)
    for i in range(10):
        stamps.stamp(f"k{i}".encode(), TRUE_NOW)
    assert len(stamps._last) == 3


def test_plausibility_floor_is_2025() -> None:
    assert datetime.fromtimestamp(PLAUSIBLE_AFTER_MS / 1000, UTC).year == 2025


# -- the [clock] table ---------------------------------------------------------------------


def test_clock_settings_from_the_config() -> None:
    from edge import ConfigError, config_from_dict
    from edge._config import ClockSettings

    base = {"edge_id": "e", "data_dir": "/tmp/e"}
    assert config_from_dict(base).clock == ClockSettings(True, 3600.0, 2.0)
    cfg = config_from_dict({**base, "clock": {"gps_time": False, "gps_max_age": 600,
                                              "jump_threshold": 0.5}})
    assert cfg.clock == ClockSettings(False, 600, 0.5)
    with pytest.raises(ConfigError) as err:
        config_from_dict({**base, "clock": {"jump_threshold": -1, "gps_time": "yes"}},
                         file="edge.toml")
    text = str(err.value)
    assert 'edge.toml: clock.jump_threshold: expected a positive number of seconds, got -1' in text
    assert 'edge.toml: clock.gps_time: expected true or false, got "yes"' in text
