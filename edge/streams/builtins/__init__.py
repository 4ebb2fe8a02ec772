"""Built-in processors: unit normalisation, threshold and blood-pressure alerts, GPS, downsampling.

Usable from code as ``KeyedStep`` objects (or, for downsampling, a builder)::

    from edge.streams import Topology
    from edge.streams.builtins import BloodPressureAlert, Downsample, fever_alert

    t = Topology("ward")
    temps = t.source("temperature")
    temps.process(fever_alert()).to("alerts")                 # raise >= 38.0 °C, clear < 37.5 °C
    Downsample(["temperature_c"], "temperature.1m").attach(temps)
    t.source("blood_pressure").process(BloodPressureAlert()).to("alerts.blood_pressure")

and by name from the config (``[[streams]]`` with ``steps = [{ builtin = "fever" }]``),
through ``BUILTINS`` / ``make_builtin``. Each keyed built-in's ``step()`` is
a pure function of (state, value, timestamp, device), and its state is a
small JSON object that the engine commits with the input offsets.
"""

from edge.streams.builtins._blood_pressure import (
    BP_CATEGORIES,
    BloodPressureAlert,
    classify_blood_pressure,
)
from edge.streams.builtins._downsample import Downsample, MeanOfFields
from edge.streams.builtins._geo import EARTH_RADIUS_M, haversine_m, point_in_polygon
from edge.streams.builtins._geofence import Circle, Geofence, Polygon
from edge.streams.builtins._gps import GpsTrack, fix_position
from edge.streams.builtins._params import ParamError
from edge.streams.builtins._registry import BUILTINS, BuiltinSpec, make_builtin
from edge.streams.builtins._threshold import ThresholdAlert, fever_alert
from edge.streams.builtins._units import UNITS, NormaliseUnits, convert

__all__ = [
    "BP_CATEGORIES",
    "BUILTINS",
    "EARTH_RADIUS_M",
    "UNITS",
    "BloodPressureAlert",
    "BuiltinSpec",
    "Circle",
    "Downsample",
    "GpsTrack",
    "Geofence",
    "MeanOfFields",
    "NormaliseUnits",
    "ParamError",
    "Polygon",
    "ThresholdAlert",
    "classify_blood_pressure",
    "convert",
    "fever_alert",
    "fix_position",
    "haversine_m",
    "make_builtin",
    "point_in_polygon",
]
