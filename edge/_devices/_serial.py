"""``transport = "serial"``: one device on a serial line (or a pyserial URL)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from devices import CODECS
from edge._schema import ID_EXPECTED, SKIP, Problems, is_id, setting

from ._base import DeviceConfig, Reader, tag

__all__ = ["SerialDevice"]


@dataclass(frozen=True, kw_only=True)
class SerialDevice(DeviceConfig):
    """A serial device: frames are lines (or fixed-size blocks) read from its port."""

    codecs: ClassVar[Mapping[str, Any]] = CODECS
    examples: ClassVar[tuple[Mapping[str, Any], ...]] = (
        {"name": "car-1", "kind": "gps", "port": "/dev/ttyUSB0", "codec": "nmea0183", "topic": "gps"},
        {"name": "bed-1", "kind": "blood_pressure", "port": "/dev/ttyUSB1", "codec": "gatt.0x2A35",
         "codec_options": {"framing": "hex"}, "topic": "blood_pressure"},
    )

    transport: str = tag("serial")
    port: str = setting(
        kind="str", expected='a device path such as "/dev/ttyUSB0" or a pyserial URL',
        doc="a path (symlinks followed on every reconnect) or a pyserial URL")
    baudrate: int = setting(9600, kind="int", check=lambda v: v > 0, expected="an integer",
                            doc="bits per second")
    framing: str = setting(
        "line", kind="str", check=lambda v: v == "line" or re.fullmatch(r"fixed:[1-9][0-9]*", v) is not None,
        expected='"line" or "fixed:<bytes>"', doc='"line" or "fixed:<bytes>"')
    device_id: str = setting(
        "", kind="str", custom=True, expected="a device id", default_doc="the device's name",
        doc=f"the id (event key) of every reading: {ID_EXPECTED}", in_example=False)

    @property
    def where(self) -> str:
        return self.port

    @classmethod
    def readers(cls, problems: Problems, edge_id: str, env: Mapping[str, str]) -> dict[str, Reader]:
        def device_id(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            v = raw.get("device_id", out.get("name"))
            if v is None:
                return SKIP  # the name is wrong, and said so
            if not isinstance(v, str) or not is_id(v):
                problems.bad(path, "a device id", v)
                return SKIP
            return v

        return {**super().readers(problems, edge_id, env), "device_id": device_id}
