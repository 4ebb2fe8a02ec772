"""Downsampling: one averaged reading per device per window, for the uplink.

Built on the engine's event-time windows: records are grouped by key (the
device id), cut into tumbling windows of ``window_s`` and each window's
numeric ``fields`` are averaged. A window's reading is emitted once, when
the window closes (the partition's watermark passes its end plus
``grace_s``); records later than that go to the topology's late topic, never
silently dropped. The watermark is per partition, so ``grace_s`` must also
cover how far behind one device's readings can arrive after those of other
devices on the same partition (clock skew, a buffered upload).

A window's reading holds the means of the fields that had values in the
window, ``count`` (records in the window), ``window_start_ms`` and
``window_end_ms``; its ``schema`` header is ``edge.downsample.mean`` and its
timestamp that of the window's latest record. The raw topic is left as it
is, so it can stay local while the uplink carries only the averaged topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge.streams import Record, Stream, TumblingWindows
from edge.streams.builtins._params import ParamError, number, numeric_field
from edge.streams.builtins._params import topic as check_topic

__all__ = ["Downsample", "MeanOfFields"]

#: The ``schema`` header of a downsampled reading.
SCHEMA = b"edge.downsample.mean"


class MeanOfFields:
    """An ``Aggregator`` of several fields at once: per field a [sum, count] pair.

    ``add`` takes a dict of field -> number (fields may be missing);
    ``result`` is a dict of field -> mean rounded to ``decimals``, only for
    fields that had at least one value.
    """

    def __init__(self, fields: Sequence[str], decimals: int = 3) -> None:
        self.fields = tuple(fields)
        self.decimals = decimals

    def initial(self) -> dict[str, list[float]]:
        return {}

    def add(self, agg: dict[str, list[float]], value: dict[str, float]) -> dict[str, list[float]]:
        out = dict(agg)
        for f, v in value.items():
            s, n = out.get(f, (0.0, 0))
            out[f] = [s + v, n + 1]
        return out

    def result(self, agg: dict[str, list[float]]) -> dict[str, float]:
        return {f: round(agg[f][0] / agg[f][1], self.decimals)
                for f in self.fields if f in agg and agg[f][1]}


class Downsample:
    """Average ``fields`` per device per tumbling window of ``window_s`` seconds into ``topic``.

    ``grace_s`` (default 5 s) waits for out-of-order records before a window
    is final. Raises ``ParamError`` for a bad parameter.
    """

    name = "downsample"

    def __init__(self, fields: Sequence[str], topic: str, *, window_s: float = 60.0,
                 grace_s: float = 5.0, decimals: int = 3) -> None:
        if (not isinstance(fields, list | tuple) or not fields
                or not all(isinstance(f, str) and f for f in fields)):
            raise ParamError("fields", 'a non-empty array of field names (e.g. ["temperature_c"])',
                             fields)
        self.fields = tuple(fields)
        self.topic = check_topic("topic", topic)
        window_ms = round(number("window_s", window_s, positive=True) * 1000)
        if window_ms < 1:
            raise ParamError("window_s", "a number of seconds >= 0.001", window_s)
        self.windows = TumblingWindows(window_ms, round(number("grace_s", grace_s, at_least=0)
                                                        * 1000))
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 12:
            raise ParamError("decimals", "an integer in 0..12", decimals)
        self.aggregator = MeanOfFields(self.fields, decimals)

    def values_of(self, value: Any) -> dict[str, float]:
        """The finite numbers among ``fields`` in one reading's value."""
        out = {}
        for f in self.fields:
            v = numeric_field(value, f)
            if v is not None:
                out[f] = v
        return out

    @staticmethod
    def reading_of(window_value: dict[str, Any]) -> dict[str, Any]:
        """The engine's window result as a reading: means, count, window bounds."""
        return dict(window_value["value"], count=window_value["count"],
                    window_start_ms=window_value["start"], window_end_ms=window_value["end"])

    def attach(self, stream: Stream, label: str | None = None) -> Stream:
        """Add the downsampling after ``stream`` and write it to ``topic``; returns the
        stream of averaged readings (already written to ``topic``)."""
        n = (lambda suffix: f"{label}-{suffix}") if label else (lambda suffix: None)
        averaged = (
            stream.filter(lambda r: bool(self.values_of(r.value)), name=n("has-fields"))
            .group_by_key().windowed_by(self.windows)
            .aggregate(self.aggregator, value=lambda r: self.values_of(r.value), name=label)
            .map(lambda r: _with_value(r, self.reading_of(r.value)), name=n("reading"))
        )
        averaged.to(self.topic, name=n("sink"))
        return averaged


def _with_value(record: Record, value: Any) -> Record:
    out = record.with_value(value)
    out.headers = [h for h in out.headers if h[0] != "schema"] + [("schema", SCHEMA)]
    return out
