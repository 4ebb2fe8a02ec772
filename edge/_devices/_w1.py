"""``transport = "w1"``: the Linux 1-wire bus's sensors (DS18B20), read from sysfs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from devices import CODECS
from edge._schema import setting

from ._base import DeviceConfig, tag

__all__ = ["W1Device"]


def _names_ok(v: Mapping[str, Any]) -> bool:
    return all(isinstance(x, str) and x for x in v.values())


@dataclass(frozen=True, kw_only=True)
class W1Device(DeviceConfig):
    """A 1-wire bus: every sensor on it is a device, read each ``interval`` seconds."""

    codecs: ClassVar[Mapping[str, Any]] = CODECS
    examples: ClassVar[tuple[Mapping[str, Any], ...]] = (
        {"name": "boiler-room", "kind": "temperature", "enabled": False, "codec": "ds18b20.w1",
         "names": {"28-0316a2797aff": "boiler-in"}, "topic": "temperature",
         "ranges": {"temperature_c": [-55, 125]}},
    )

    transport: str = tag("w1")
    directory: str = setting("/sys/bus/w1/devices", kind="str", doc="where the bus's sensors appear")
    interval: float = setting(10.0, kind="num", check=lambda v: v > 0,
                              expected="a number of seconds > 0", doc="seconds between two readings")
    names: Mapping[str, str] = setting(
        kind="table", factory=dict, check=_names_ok, convert=dict,
        expected='a table of sensor id = "device id" strings', default_doc="the sensor ids",
        doc="a device id for a sensor id")
    device_id_prefix: str = setting("", kind="text", doc="prepended to the id the bus gives")

    @property
    def where(self) -> str:
        return self.directory
