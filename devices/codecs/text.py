"""Plain-text temperature lines, by a configurable pattern.

Cheap sensors and microcontroller sketches print lines such as ``23.5``,
``T=23.5C``, ``temp: 74.3 F`` or a CSV row. ``TextTemperatureCodec`` reads
them with a regular expression (named groups ``value``, optional ``unit``
and ``device``) or a CSV column, and writes them back with a template.
"""

from __future__ import annotations

import math
import re

from devices._errors import CodecConfigError, DecodeError, EncodeError
from devices._reading import Arrival, Reading
from devices.codecs._base import guard_decode

__all__ = ["DEFAULT_PATTERN", "TEXT_SCHEMA", "TextTemperatureCodec"]

TEXT_SCHEMA = "text"

#: ``23.5``, ``-4``, ``T=23.5C``, ``temp: 23.5 °C``, ``t 74.3F``.
DEFAULT_PATTERN = (
    r"^\s*(?:[A-Za-z_][\w ]*?\s*[=:]?\s*)?"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:°\s*)?(?P<unit>[CcFf])?\s*$"
)

# C0 controls but tab (a delimiter), and DEL: no sensor prints them; '\x1e' (a record
# separator) ended a CSV cell that float() then refused with an unexpected ValueError.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$")


class TextTemperatureCodec:
    """Temperature lines in text; one line (without its newline) is one frame.

    Either ``pattern`` (a regex with a ``value`` group, optional ``unit``
    [C/F] and ``device`` groups) or ``column`` (0-based CSV column, with
    optional ``device_column``). ``unit`` is the unit when a line names none.
    ``template`` formats encoded lines from ``temperature_c`` (°C, or
    ``temperature_f`` if ``unit='F'``) and ``device_id``.
    Raises ``CodecConfigError`` on a bad configuration.
    """

    name = TEXT_SCHEMA

    def __init__(
        self,
        pattern: str | None = None,
        *,
        column: int | None = None,
        device_column: int | None = None,
        delimiter: str = ",",
        unit: str = "C",
        template: str | None = None,
        encoding: str = "utf-8",
    ) -> None:
        if pattern is not None and column is not None:
            raise CodecConfigError("text codec: give pattern or column, not both")
        if unit not in ("C", "F"):
            raise CodecConfigError(f"text codec: unit must be 'C' or 'F', got {unit!r}")
        if column is not None and (not isinstance(column, int) or column < 0):
            raise CodecConfigError(f"text codec: column must be an integer >= 0, got {column!r}")
        self.column = column
        self.device_column = device_column
        self.delimiter = delimiter
        self.unit = unit
        self.encoding = encoding
        self._regex = None
        if column is None:
            try:
                self._regex = re.compile(pattern or DEFAULT_PATTERN)
            except re.error as exc:
                raise CodecConfigError(f"text codec: pattern {pattern!r} is not a regex: {exc}") from None
            if "value" not in self._regex.groupindex:
                raise CodecConfigError(
                    f"text codec: pattern {pattern!r} needs a named group (?P<value>...)"
                )
        key = "temperature_f" if unit == "F" else "temperature_c"
        if template is None:
            if column is not None:
                width = max(column, device_column or 0) + 1
                cells = [""] * width
                cells[column] = "{" + key + "}"
                if device_column is not None:
                    cells[device_column] = "{device_id}"
                template = delimiter.join(cells)
            else:
                template = "{" + key + "}"
        self.template = template
        self._key = key

    @classmethod
    def csv(cls, column: int, device_column: int | None = None, delimiter: str = ",") -> TextTemperatureCodec:
        """CSV rows, the temperature in ``column`` (0-based)."""
        return cls(column=column, device_column=device_column, delimiter=delimiter)

    @guard_decode(TEXT_SCHEMA)
    def decode(self, frame: bytes, device_id: str, arrival: Arrival | None = None) -> list[Reading]:
        """Decode one text line into a °C reading; raises ``DecodeError``."""
        try:
            text = bytes(frame).decode(self.encoding).strip("\r\n")
        except (UnicodeDecodeError, LookupError) as exc:
            raise DecodeError(frame, f"not {self.encoding} text ({exc.__class__.__name__})", self.name) from None
        # isprintable: the cheap usual case
        if not text.isprintable() and (control := _CONTROL.search(text)) is not None:
            c = control.group()
            raise DecodeError(frame, f"line holds the control character {c!r} (noise on the line, "
                              "or a device that frames its records otherwise?)", self.name)
        unit = self.unit
        if self._regex is not None:
            m = self._regex.search(text)
            if m is None:
                raise DecodeError(frame, f"line does not match pattern {self._regex.pattern!r}", self.name)
            number = m.group("value")
            groups = m.groupdict()
            if groups.get("unit"):
                unit = groups["unit"].upper()
            if groups.get("device"):
                device_id = groups["device"]
        else:
            cells = text.split(self.delimiter)
            assert self.column is not None
            if len(cells) <= max(self.column, self.device_column or 0):
                raise DecodeError(
                    frame, f"row has {len(cells)} columns, need column {self.column}", self.name
                )
            number = cells[self.column]
            if self.device_column is not None and cells[self.device_column].strip():
                device_id = cells[self.device_column].strip()
        if number is None or not _NUMBER.match(number):
            raise DecodeError(frame, f"temperature {_short(number)} is not a number", self.name)
        try:
            value = float(number)
        except ValueError:  # _NUMBER's \s takes Unicode spaces that float() refuses
            raise DecodeError(frame, f"temperature {_short(number)} is not a number", self.name) from None
        if not math.isfinite(value):
            raise DecodeError(frame, f"temperature {_short(number)} is not a finite number", self.name)
        if unit not in ("C", "F"):
            raise DecodeError(frame, f"unit {unit!r} is neither C nor F", self.name)
        if unit == "F":
            values = {
                "temperature_c": round((value - 32) * 5 / 9, 3),
                "unit_original": "F",
                "temperature_f": value,
            }
        else:
            values = {"temperature_c": value}
        if value == -127.0 and unit == "C":
            # The Arduino DallasTemperature library's "disconnected" value,
            # printed as is by many ESP sketches.
            raise DecodeError(frame, "-127 °C is the DS18B20 'disconnected' value, not a temperature", self.name)
        return [Reading(device_id, "temperature", self.name, values)]

    def encode(self, reading: Reading) -> bytes:
        """Format one line (with ``\\n``) from the template."""
        fields = dict(reading.values)
        if self._key not in fields:
            c = fields.get("temperature_c")
            if self._key == "temperature_f" and isinstance(c, int | float):
                fields["temperature_f"] = round(c * 9 / 5 + 32, 3)
            else:
                raise EncodeError(f"text codec: reading has no {self._key!r}")
        try:
            line = self.template.format(device_id=reading.device_id, **fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise EncodeError(f"text codec: template {self.template!r} cannot be filled: {exc}") from None
        return (line + "\n").encode(self.encoding)


def _short(text: str | None, limit: int = 24) -> str:
    """``text`` quoted for a reason, a long run of digits shortened (a 400-digit 'number')."""
    if text is None or len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
