"""The device simulator: a fleet of GPS units, rooms and patients speaking real formats."""

from devices.simulator._faults import Faults
from devices.simulator._models import Patient, Room, Vehicle, load_gpx
from devices.simulator._run import (
    DEFAULT_CONVENTIONS,
    SERIAL_CODECS,
    SimConfig,
    Simulator,
    run,
    serial_codec_name,
)

__all__ = [
    "DEFAULT_CONVENTIONS",
    "SERIAL_CODECS",
    "Faults",
    "Patient",
    "Room",
    "SimConfig",
    "Simulator",
    "Vehicle",
    "load_gpx",
    "run",
    "serial_codec_name",
]
