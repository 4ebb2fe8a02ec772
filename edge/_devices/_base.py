"""What every ``[[devices]]`` table has, whatever its transport."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from devices import CODECS, EARLIEST_TIMESTAMP_MS, KINDS
from edge._schema import (
    ID_EXPECTED,
    SKIP,
    TOPIC_EXPECTED,
    Problems,
    is_id,
    setting,
    writable_topic,
)

__all__ = ["MAX_DEDUPE_WINDOW", "DeviceConfig", "Reader", "tag"]

MAX_DEDUPE_WINDOW = 86_400  # a day: a publisher's resend comes within seconds or minutes

#: Reads one custom key: (the table, its key path, the values read so far) -> value or SKIP.
Reader = Callable[[Mapping[str, Any], str, dict[str, Any]], Any]


_TAG_DOC = "how it is read, which decides the table's other keys"


def tag(transport: str) -> Any:
    """A device kind's ``transport`` field: the key that chooses the kind."""
    return setting(transport, kind="str", custom=True, doc=_TAG_DOC)


@dataclass(frozen=True, kw_only=True)
class DeviceConfig:
    """One configured device, or one MQTT subscription or 1-wire bus feeding several.

    The base of the device kinds (edge/_devices: one subclass per transport, chosen by
    the ``transport`` key); its keys are those of every ``[[devices]]`` table.
    """

    #: Codec names this transport accepts, and what they are called in messages.
    codecs: ClassVar[Mapping[str, Callable[..., Any]]] = CODECS
    codecs_are: ClassVar[str] = "a codec"
    #: The example config's tables of this transport (the first is shown with every key).
    examples: ClassVar[tuple[Mapping[str, Any], ...]] = ()

    name: str = setting(
        kind="str", check=is_id, expected=f"a device name of {ID_EXPECTED}",
        doc="the device's name, unique in the file (and the id of its readings unless the "
            "transport gives ids)")
    kind: str = setting(
        kind="str", check=lambda v: v in KINDS, expected=" or ".join(f'"{k}"' for k in sorted(KINDS)),
        doc="what it measures: " + ", ".join(f'"{k}"' for k in sorted(KINDS)))
    transport: str = setting(kind="str", custom=True, doc=_TAG_DOC)
    codec: str = setting(kind="str", custom=True, doc="how its frames are decoded")
    codec_options: Mapping[str, Any] = setting(
        kind="table", factory=dict, doc="keyword arguments of the codec", in_example=False)
    topic: str = setting(
        "", kind="str", custom=True, expected=TOPIC_EXPECTED, default_doc="the device's kind",
        doc="the log topic its readings go to")
    enabled: bool = setting(True, kind="bool", in_example=False,
                            doc="false: the device stays in the file, switched off")
    dedupe_window: float = setting(
        0.0, kind="num", check=lambda v: 0 <= v <= MAX_DEDUPE_WINDOW,
        expected=f"a number of seconds in 0..{MAX_DEDUPE_WINDOW} (0: off)", in_example=False,
        doc="drop a device-stamped reading whose device, time and value were seen within this "
            "many seconds (a publisher's resend after a broker restart); 0: off")
    ranges: Mapping[str, tuple[float, float]] = setting(
        kind="table", factory=dict, custom=True, in_example=False,
        doc="this device's bounds for quantities of the event schema (docs/ranges.md), e.g. "
            "{ temperature_c = [-55, 125] }: a reading outside is a dead letter")
    earliest_time: int = setting(
        EARLIEST_TIMESTAMP_MS, kind="any", custom=True, in_example=False,
        example=_dt.date(2000, 1, 1),
        doc="a device-stamped time before this (a TOML date, an offset date-time or ms since "
            "1970) is a dead letter; held as ms since 1970")

    @property
    def where(self) -> str:
        """Where the device is read from, for log lines."""
        raise NotImplementedError

    @property
    def device_id_prefix(self) -> str:
        """Prepended to a reading's device id for its event key; a kind with the key sets it."""
        return ""

    @classmethod
    def readers(cls, problems: Problems, edge_id: str, env: Mapping[str, str]) -> dict[str, Reader]:
        """The readers of this kind's custom keys; a subclass adds its own."""
        from edge._validate import device_check_settings

        def codec(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            v = raw.get("codec")
            if not isinstance(v, str) or v not in cls.codecs:
                problems.bad(path, f"{cls.codecs_are}: " + ", ".join(f'"{n}"' for n in sorted(cls.codecs)),
                             *(() if v is None else (v,)))
                return SKIP
            return v

        def topic(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            if "codec_options" in out and "codec" in out:
                # Try the options now: a typo fails `config check`, not `run`.
                try:
                    out["_codec"] = cls.codecs[out["codec"]](**out["codec_options"])
                except Exception as exc:  # any refusal is a config mistake
                    problems.bad(path.rpartition(".")[0] + ".codec_options",
                                 f"options that {out['codec']} accepts ({exc})", out["codec_options"])
            if "topic" not in raw:
                return out.get("kind") or "readings"
            v = raw["topic"]
            if not isinstance(v, str) or not writable_topic(v):
                problems.bad(path, TOPIC_EXPECTED, v)
                return SKIP
            return v

        def ranges(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            # ranges and earliest_time are the event check's (edge/_validate.py)
            out["_earliest"] = device_check_settings(raw, path.rpartition(".")[0], problems.bad)
            return out["_earliest"][0]

        def earliest_time(raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> Any:
            return out.pop("_earliest")[1]

        return {"codec": codec, "topic": topic, "ranges": ranges, "earliest_time": earliest_time}
