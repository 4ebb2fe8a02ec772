"""The device simulator: a fleet of GPS units, rooms and patients speaking real formats."""

from devices.simulator._faults import (
    HOSTILE_CODECS,
    Faults,
    HostileFrame,
    hostile_frame,
    hostile_names,
    mqtt_topic,
)
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
    "HOSTILE_CODECS",
    "SERIAL_CODECS",
    "Faults",
    "HostileFrame",
    "Patient",
    "Room",
    "SimConfig",
    "Simulator",
    "Vehicle",
    "hostile_frame",
    "hostile_names",
    "load_gpx",
    "mqtt_topic",
    "run",
    "serial_codec_name",
]
