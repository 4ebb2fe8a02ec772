"""Simulated devices: each turns simulated time into plausible readings (pure, seeded)."""

from __future__ import annotations

import math
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from devices._reading import Reading

EARTH_RADIUS_M = 6_371_000.0
DAY_MS = 86_400_000

# A loop through central Berlin; vehicles start at different points of it.
DEFAULT_ROUTE: tuple[tuple[float, float], ...] = (
    (52.5200, 13.4050), (52.5163, 13.3777), (52.5096, 13.3760), (52.5076, 13.3904),
    (52.5122, 13.4158), (52.5219, 13.4132), (52.5251, 13.4094),
)


def load_gpx(path: str) -> tuple[tuple[float, float], ...]:
    """The track or route points of a GPX file, as (lat, lon) degrees; raises ValueError."""
    root = ET.parse(path).getroot()
    pts = [
        (float(el.attrib["lat"]), float(el.attrib["lon"]))
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] in ("trkpt", "rtept", "wpt")
    ]
    if len(pts) < 2:
        raise ValueError(f"{path}: a GPX route needs at least 2 points, got {len(pts)}")
    return tuple(pts)


def _distance_bearing(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    dlat, dlon = lat2 - lat1, lon2 - lon1
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))
    y = math.sin(dlon) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return dist, (math.degrees(math.atan2(y, x)) + 360) % 360


@dataclass
class Vehicle:
    """A GPS unit on a vehicle driving a closed route at town speeds (m/s, degrees)."""

    device_id: str
    rng: random.Random
    route: tuple[tuple[float, float], ...] = DEFAULT_ROUTE
    leg: int = 0
    progress_m: float = 0.0
    speed_mps: float = 10.0
    last_ms: int | None = None

    def reading(self, t_ms: int) -> Reading:
        """The fix at simulated time `t_ms` (advances the vehicle)."""
        dt = 0.0 if self.last_ms is None else (t_ms - self.last_ms) / 1000
        self.last_ms = t_ms
        # Speed wanders between a crawl and ~60 km/h, like city traffic.
        self.speed_mps = min(17.0, max(0.0, self.speed_mps + self.rng.gauss(0, 1.0) * min(dt, 5)))
        self.progress_m += self.speed_mps * dt
        while True:
            a, b = self.route[self.leg], self.route[(self.leg + 1) % len(self.route)]
            dist, bearing = _distance_bearing(a, b)
            if self.progress_m <= dist or dist == 0 and self.progress_m == 0:
                break
            self.progress_m -= dist
            self.leg = (self.leg + 1) % len(self.route)
        f = self.progress_m / dist if dist else 0.0
        lat = a[0] + (b[0] - a[0]) * f + self.rng.gauss(0, 0.00001)  # ~1 m of GPS jitter
        lon = a[1] + (b[1] - a[1]) * f + self.rng.gauss(0, 0.00001)
        values = {
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "speed_mps": round(self.speed_mps, 2),
            "course_deg": round(bearing, 1),
            "alt_m": round(35 + self.rng.gauss(0, 1.5), 1),
            "fix_quality": 1,
            "satellites_used": self.rng.randint(6, 12),
            "hdop": round(self.rng.uniform(0.7, 1.8), 2),
        }
        return Reading(self.device_id, "gps", "sim.gps", values, t_ms)


@dataclass
class Room:
    """A room whose temperature follows a daily cycle (coolest ~05:00, warmest ~17:00) with noise."""

    device_id: str
    rng: random.Random
    mean_c: float = field(default=21.0)
    amplitude_c: float = 2.0

    def __post_init__(self) -> None:
        self.mean_c = round(self.rng.uniform(19.0, 23.0), 1)

    def reading(self, t_ms: int) -> Reading:
        """The temperature at simulated time `t_ms` (°C, 0.01 resolution)."""
        phase = 2 * math.pi * ((t_ms % DAY_MS) / DAY_MS - 11 / 24)
        temp = self.mean_c + self.amplitude_c * math.sin(phase) + self.rng.gauss(0, 0.1)
        return Reading(self.device_id, "temperature", "sim.temperature", {"temperature_c": round(temp, 2)}, t_ms)


@dataclass
class Patient:
    """A patient's blood pressure (mmHg) and pulse (beats/min), with occasional hypertensive readings."""

    device_id: str
    rng: random.Random
    hypertensive_rate: float = 0.05

    def __post_init__(self) -> None:
        self.base_sys = self.rng.uniform(110, 135)
        self.base_dia = self.rng.uniform(70, 85)
        self.base_pulse = self.rng.uniform(60, 80)

    def reading(self, t_ms: int) -> Reading:
        """One cuff measurement at simulated time `t_ms`."""
        systolic = self.base_sys + self.rng.gauss(0, 6)
        diastolic = self.base_dia + self.rng.gauss(0, 4)
        if self.rng.random() < self.hypertensive_rate:  # stage 2 / crisis territory
            systolic += self.rng.uniform(25, 60)
            diastolic += self.rng.uniform(10, 30)
        diastolic = min(diastolic, systolic - 20)
        mean = diastolic + (systolic - diastolic) / 3
        values = {
            "systolic_mmhg": round(systolic),
            "diastolic_mmhg": round(diastolic),
            "mean_arterial_pressure_mmhg": round(mean),
            "unit_original": "mmHg",
            "pulse_bpm": round(self.base_pulse + self.rng.gauss(0, 5)),
        }
        return Reading(self.device_id, "blood_pressure", "sim.blood_pressure", values, t_ms)


Model = Vehicle | Room | Patient
