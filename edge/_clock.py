"""How far the box's clock can be trusted, the best time it can stamp, and clock jumps.

A Raspberry Pi has no real-time clock: it boots at its last saved time (or in
1970) and jumps, maybe by years, when NTP sets it. So the service asks:

* **Is the system clock synchronised?** The kernel says so (``adjtimex``
  returns something other than ``TIME_ERROR``) or systemd-timesyncd does
  (``/run/systemd/timesync/synchronized``). Then the status is ``synced`` and
  the wall clock is used as it is.
* **Else, does a GPS receiver give UTC?** A valid NMEA fix with a date is UTC
  from the satellites. ``ClockTrust.observe_gps`` keeps the offset between
  that UTC and the *monotonic* clock, so ``now_ms()`` returns
  ``monotonic + offset``: right however wrong the wall clock is, and immune to
  its jumps. The status is ``gps`` while the last fix is at most
  ``gps_max_age_s`` old (the monotonic clock drifts well under a second an
  hour). The service does not set the system clock (its unit forbids it:
  ``ProtectClock=yes``); to discipline the system clock from GPS, run gpsd with
  chrony, and the status becomes ``synced``.
  The offset is taken at the *arrival* of the epoch's first sentence, which
  the NMEA assembler carries with the fix (``Reading.arrival_monotonic_ms``:
  the monotonic part of the ``Arrival`` the adapter stamped with this
  object's ``arrival()`` and handed to the codec with the sentence): the assembler
  hands a fix on only when the next epoch's first sentence arrives, up to one
  fix interval (1 s at 1 Hz) later, and an offset taken at that moment would
  put GPS-corrected times that far behind UTC. What remains is the receiver's
  own delay from its time of fix to the first sentence on the wire (tens to
  a few hundred ms at 9600 baud). Of several recent fixes the one that
  arrived soonest wins (the largest offset), as NTP prefers its lowest-delay
  sample.
* **Else** the status is ``unsynced`` when the wall clock is before
  ``PLAUSIBLE_AFTER_MS`` (it cannot be right) and ``unknown`` otherwise.
  If the time was trusted earlier in this run (NTP lost sync, the GPS fix
  went stale), stamps *hold over*: the monotonic clock plus the last trusted
  offset, which drifts by seconds a day at most, rather than a wall clock
  that may never have been set. Otherwise they are the wall clock as it is.

Jumps: the wall clock minus the monotonic clock stays constant while time
runs normally (NTP slews at most 0.5 ms/s); when it changes by more than
``jump_threshold_s`` between two looks, the wall clock was stepped. Each jump
is logged, counted and handed to ``on_jump``. (A suspended machine would look
like a forward jump; a Pi does not suspend.)

Everything takes an injectable ``Clock`` (``wall_ms()``, ``monotonic_ms()``,
e.g. ``broker.ManualClock``) and an injectable NTP probe, so tests step time
without root on the real clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import functools
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker import Clock, SystemClock
from devices import Arrival, Reading

log = logging.getLogger("edge.clock")

__all__ = [
    "PLAUSIBLE_AFTER_MS",
    "ClockJump",
    "ClockStatus",
    "ClockTrust",
    "KeyStamps",
    "gps_fix_utc_ms",
    "ntp_synced",
]

#: Before this the clock cannot be right (a build of this software did not exist yet).
PLAUSIBLE_AFTER_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_TIME_ERROR = 5  # adjtimex's "clock not synchronized"
_SYNC_FLAG = "/run/systemd/timesync/synchronized"


class ClockStatus(enum.StrEnum):
    """What an event's ``clock`` header says about its timestamp."""

    SYNCED = "synced"  # NTP (or chrony with a GPS reference) set the system clock
    GPS = "gps"  # the system clock is not synced; times are corrected from a recent GPS fix
    UNKNOWN = "unknown"  # plausible, but nothing says it is right
    UNSYNCED = "unsynced"  # the time cannot be right (before PLAUSIBLE_AFTER_MS)

    @property
    def trusted(self) -> bool:
        return self in (ClockStatus.SYNCED, ClockStatus.GPS)


class _Timex(ctypes.Structure):
    # Only the leading fields matter (modes); the rest is padding big enough for struct timex.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 256)]


@functools.cache
def _libc() -> ctypes.CDLL:
    # Once per process: find_library runs `ldconfig -p` in a child process, which the
    # NTP probe did every 5 s on a box whose clock is not synced (a fork and exec on the
    # event loop, the idle service's one process start every 5 s).
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _kernel_synced() -> bool | None:
    try:
        libc = _libc()
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


def ntp_synced() -> bool:
    """True when systemd-timesyncd or the kernel (adjtimex) says the system clock is synced."""
    return os.path.exists(_SYNC_FLAG) or bool(_kernel_synced())


def gps_fix_utc_ms(reading: Reading) -> int | None:
    """UTC in ms from a reading that is a valid NMEA fix with a date, else None.

    Valid means the receiver said so: RMC/GLL status ``A``, else a GGA fix
    quality above 0, else a GSA 2D/3D mode. A receiver without a fix may
    still print a time from its own battery clock; that is not trusted.
    """
    if reading.kind != "gps" or reading.schema != "nmea0183" or reading.timestamp_ms is None:
        return None
    v = reading.values
    if "valid" in v:
        ok = v["valid"] is True
    elif "fix_quality" in v:
        ok = isinstance(v["fix_quality"], int) and v["fix_quality"] > 0
    else:
        ok = v.get("fix_mode") in ("2d", "3d")
    if not ok or "date" not in v:
        return None
    return reading.timestamp_ms


@dataclass(frozen=True)
class ClockJump:
    """The wall clock was stepped by ``step_ms`` (positive: forward) between two looks."""

    step_ms: int
    wall_before_ms: int
    wall_after_ms: int
    monotonic_ms: int

    @property
    def direction(self) -> str:
        return "forward" if self.step_ms > 0 else "backward"


class ClockTrust:
    """The service's view of time: status, best-known UTC, GPS offset, jumps.

    Not thread-safe; the service calls it from its event loop only. Cheap
    enough for every event: two clock reads, and the NTP probe at most every
    ``ntp_check_every_s``.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        ntp: Callable[[], bool] = ntp_synced,
        jump_threshold_s: float = 2.0,
        gps_max_age_s: float = 3600.0,
        ntp_check_every_s: float = 5.0,
        on_jump: Callable[[ClockJump], None] | None = None,
    ) -> None:
        if jump_threshold_s <= 0:
            raise ValueError(f"jump_threshold_s must be > 0, got {jump_threshold_s!r}")
        if gps_max_age_s <= 0:
            raise ValueError(f"gps_max_age_s must be > 0, got {gps_max_age_s!r}")
        self.clock = clock if clock is not None else SystemClock()
        self._ntp = ntp
        self.jump_threshold_ms = int(jump_threshold_s * 1000)
        self.gps_max_age_ms = int(gps_max_age_s * 1000)
        self._ntp_every_ms = int(ntp_check_every_s * 1000)
        self._on_jump = on_jump
        self._ntp_at: int | None = None
        self._ntp_value = False
        mono = self.clock.monotonic_ms()
        self._skew = self.clock.wall_ms() - mono  # wall - monotonic at the last look
        self._fixes: deque[tuple[int, int]] = deque(maxlen=32)  # (monotonic at arrival, offset)
        self._gps: tuple[int, int] | None = None  # (offset, monotonic of the newest fix)
        self.gps_fixes = 0
        self.gps_rejected = 0
        self.jumps: list[ClockJump] = []  # the last few, newest last
        self.jump_count = 0
        #: Bumped each time the status becomes trusted (synced or gps) from untrusted: a
        #: timestamp may step back across such a correction (the earlier one was wrong).
        self.corrections = 0
        self._last_status: ClockStatus | None = None
        self._trusted_offset: int | None = None  # best UTC - monotonic, while last trusted

    # -- looking at the clocks ---------------------------------------------------------

    def check(self) -> ClockJump | None:
        """Look for a wall-clock jump since the last look; log, count and report it."""
        return self._check(self.clock.wall_ms(), self.clock.monotonic_ms())

    def _check(self, wall: int, mono: int) -> ClockJump | None:
        skew = wall - mono
        step = skew - self._skew
        if -self.jump_threshold_ms <= step <= self.jump_threshold_ms:
            self._skew = skew
            return None
        self._skew = skew
        jump = ClockJump(step, wall - step, wall, mono)
        self._ntp_at = None  # a step is often NTP's first sync: ask again now
        self.jump_count += 1
        self.jumps = [*self.jumps[-7:], jump]
        log.warning("clock: the wall clock jumped %s by %.3f s (to %d ms since the epoch); "
                    "retention and ordering do not depend on it", jump.direction,
                    abs(step) / 1000, wall)
        if self._on_jump is not None:
            self._on_jump(jump)
        return jump

    def _ntp_synced(self, mono: int) -> bool:
        if self._ntp_at is None or mono - self._ntp_at >= self._ntp_every_ms:
            self._ntp_value, self._ntp_at = bool(self._ntp()), mono
        return self._ntp_value

    def gps_offset_ms(self, mono: int | None = None) -> int | None:
        """UTC minus the monotonic clock from recent GPS fixes, or None when there are none.

        Worked out when a fix arrives (this is on every event's path): of the fixes
        within ``gps_max_age_s`` before the newest that agree with it, the one that
        arrived soonest (a GPS that changed its mind, e.g. after a cold start, wins
        outright); valid while the newest is at most ``gps_max_age_s`` old.
        """
        if self._gps is None:
            return None
        mono = self.clock.monotonic_ms() if mono is None else mono
        offset, newest_at = self._gps
        return offset if mono - newest_at <= self.gps_max_age_ms else None

    def _status(self, wall: int, mono: int) -> ClockStatus:
        if wall >= PLAUSIBLE_AFTER_MS and self._ntp_synced(mono):
            status = ClockStatus.SYNCED
        elif self._gps is not None and mono - self._gps[1] <= self.gps_max_age_ms:
            status = ClockStatus.GPS
        elif wall < PLAUSIBLE_AFTER_MS:
            status = ClockStatus.UNSYNCED
        else:
            status = ClockStatus.UNKNOWN
        if status is not self._last_status:
            if self._last_status is not None:
                log.info("clock: %s -> %s", self._last_status.value, status.value)
            if status.trusted and (self._last_status is None or not self._last_status.trusted):
                self.corrections += 1
            self._last_status = status
        return status

    def status(self) -> ClockStatus:
        """The clock status now (see the module docstring)."""
        return self.stamp()[1]

    def stamp(self) -> tuple[int, ClockStatus]:
        """The best-known UTC in ms since the epoch, and the status it was taken under.

        Synced: the wall clock. GPS: monotonic + the GPS offset. Otherwise
        monotonic + the last trusted offset if there was one (holdover), else the
        wall clock, whatever it says (the status tells a reader not to trust it).
        """
        return self._stamp(self.clock.wall_ms(), self.clock.monotonic_ms())

    def arrival(self) -> Arrival:
        """``stamp()`` as a frame's arrival: best-known UTC, the monotonic clock, the status.

        The device adapters' clock: a reading carries it, so the sink takes its ingest
        time and status from the reading instead of reading the clocks again."""
        wall, mono = self.clock.wall_ms(), self.clock.monotonic_ms()
        ts, status = self._stamp(wall, mono)
        return Arrival(ts, mono, status)

    def _stamp(self, wall: int, mono: int) -> tuple[int, ClockStatus]:
        self._check(wall, mono)
        status = self._status(wall, mono)
        if status is ClockStatus.SYNCED:
            self._trusted_offset = wall - mono
            return wall, status
        if status is ClockStatus.GPS:
            self._trusted_offset = self._gps[0]  # type: ignore[index]  # GPS implies a fix
            return mono + self._trusted_offset, status
        if self._trusted_offset is not None:  # holdover (see the module docstring)
            return mono + self._trusted_offset, status
        return wall, status

    def now_ms(self) -> int:
        """The best-known UTC in ms since the epoch (see ``stamp``)."""
        return self.stamp()[0]

    # -- GPS -----------------------------------------------------------------------------

    def observe_gps(self, utc_ms: int, at_monotonic_ms: int | None = None) -> bool:
        """Learn the time from a GPS fix's UTC, which arrived at ``at_monotonic_ms``.

        Returns False (and counts it) for an implausible UTC, e.g. a receiver
        with a GPS week-rollover bug reporting 2006.
        """
        at = self.clock.monotonic_ms() if at_monotonic_ms is None else at_monotonic_ms
        if utc_ms < PLAUSIBLE_AFTER_MS:
            self.gps_rejected += 1
            return False
        newest = utc_ms - at
        self._fixes.append((at, newest))
        agreeing = [off for t, off in self._fixes if at - t <= self.gps_max_age_ms
                    and abs(off - newest) <= self.jump_threshold_ms]
        self._gps = (max(agreeing), at)
        self.gps_fixes += 1
        return True

    def observe_reading(self, reading: Reading) -> bool:
        """``observe_gps`` for a reading that is a valid NMEA fix; False for any other.

        The fix counts from its ``arrival_monotonic_ms`` when it carries one (its
        epoch's first sentence), else from now: the reading must come from a codec
        whose clock is this one's ``clock.monotonic_ms``.
        """
        utc = gps_fix_utc_ms(reading)
        return utc is not None and self.observe_gps(utc, reading.arrival_monotonic_ms)

    # -- reporting -----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The clock part of /health: status, how far the wall clock is from GPS, jumps."""
        now, status = self.stamp()
        wall, mono = self.clock.wall_ms(), self.clock.monotonic_ms()
        gps = self.gps_offset_ms(mono)
        last_fix = self._fixes[-1][0] if self._fixes else None
        last = self.jumps[-1] if self.jumps else None
        return {
            "status": status.value,
            "holdover": not status.trusted and self._trusted_offset is not None,
            "now_ms": now,
            "wall_ms": wall,
            "wall_minus_gps_s": None if gps is None else round((wall - (mono + gps)) / 1000, 3),
            "gps_fixes": self.gps_fixes,
            "gps_rejected": self.gps_rejected,
            "last_gps_fix_age_s": None if last_fix is None else round((mono - last_fix) / 1000, 1),
            "jumps": self.jump_count,
            "last_jump_s": None if last is None else round(last.step_ms / 1000, 3),
        }


class KeyStamps:
    """Box-made timestamps that a clock jump never moves backwards, per event key.

    The order of a key's events is their offset order in the log (one key, one
    partition, appended in arrival order), whatever the clocks do. Their
    *timestamps* come from the box's clock when the device sends none, and
    this keeps those from going back when the clock steps back: such an event
    gets the key's previous timestamp instead (counted in ``held``). One
    exception: when the clock status became trusted since the key's last
    event (NTP synced, a GPS fix), the earlier stamp was the wrong one, so the
    new, right one stands even if it is earlier; the ``clock`` header of the
    two events tells a reader which is which.
    """

    def __init__(self, trust: ClockTrust, max_keys: int = 100_000) -> None:
        self._trust = trust
        self._max_keys = max_keys
        self._last: dict[bytes, tuple[int, int]] = {}
        self.held = 0

    def stamp(self, key: bytes, timestamp_ms: int) -> int:
        """The timestamp to write for ``key``: ``timestamp_ms``, or the key's last if later."""
        corrections = self._trust.corrections
        prev = self._last.pop(key, None)
        if prev is not None and timestamp_ms < prev[0] and prev[1] == corrections:
            timestamp_ms = prev[0]
            self.held += 1
        elif prev is None and len(self._last) >= self._max_keys:
            del self._last[next(iter(self._last))]  # the least recently stamped key
        self._last[key] = (timestamp_ms, corrections)
        return timestamp_ms
