"""The topology builder: what it exports, what describe() prints, what it refuses."""

from __future__ import annotations

import pytest

import edge.streams
from edge.streams import (
    HoppingWindows,
    Record,
    Topology,
    TopologyError,
    TumblingWindows,
)

EXPECTED = {
    "Topology", "Stream", "GroupedStream", "WindowedStream", "Table", "Record", "KeyedStep",
    "Aggregator", "AGGREGATORS", "TumblingWindows", "HoppingWindows", "StreamsRunner",
    "StreamsStatus", "PartitionProgress", "StreamsError", "TopologyError", "FencedError",
}


def test_all_is_exactly_what_we_mean_to_export() -> None:
    assert set(edge.streams.__all__) == EXPECTED
    for name in edge.streams.__all__:
        assert getattr(edge.streams, name) is not None


def test_describe_prints_kafka_streams_topology_description() -> None:
    t = Topology("vitals")
    s = t.source("readings.temperature")
    hot, rest = s.filter(lambda r: r.value["c"] > 0, name="known").branch(
        lambda r: r.value["c"] >= 38, lambda r: True, name="split")
    hot.to("alerts.fever", name="fever-sink")
    rest.group_by_key().windowed_by(TumblingWindows(60_000)).aggregate(
        "mean", value=lambda r: r.value["c"], name="mean-1m").to("readings.temperature.1m")
    t.source(["gps", "gps.raw"]).to_table("last-fix")
    assert t.describe() == """\
Topology: vitals (consumer group streams.vitals)
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [readings.temperature])
      --> known
    Processor: known (stores: [])
      --> split
      <-- KSTREAM-SOURCE-0000000000
    Processor: split (stores: [])
      --> split-0, split-1
      <-- known
    Processor: split-0 (stores: [])
      --> fever-sink
      <-- split
    Processor: split-1 (stores: [])
      --> mean-1m
      <-- split
    Sink: fever-sink (topic: alerts.fever)
      <-- split-0
    Processor: mean-1m (stores: [mean-1m-STORE])
      --> KSTREAM-SINK-0000000007
      <-- split-1
    Sink: KSTREAM-SINK-0000000007 (topic: readings.temperature.1m)
      <-- mean-1m

   Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000008 (topics: [gps, gps.raw])
      --> KSTREAM-TOTABLE-0000000009
    Processor: KSTREAM-TOTABLE-0000000009 (stores: [last-fix])
      --> none
      <-- KSTREAM-SOURCE-0000000008
"""
    assert t.group_id == "streams.vitals"
    assert t.source_topics == ["readings.temperature", "gps", "gps.raw"]
    assert t.sink_topics == ["alerts.fever", "readings.temperature.1m"]
    assert str(t) == t.describe()


def test_hopping_windows_hold_every_window_of_a_timestamp() -> None:
    w = HoppingWindows(size_ms=60, advance_ms=20)
    assert w.starts_for(65) == [20, 40, 60]
    assert w.starts_for(60) == [20, 40, 60]
    assert w.starts_for(59) == [0, 20, 40]
    assert TumblingWindows(60).starts_for(119) == [60]
    assert TumblingWindows(60).starts_for(-1) == [-60]


@pytest.mark.parametrize("build, message", [
    (lambda t: Topology("bad name"), "Topology name"),
    (lambda t: t.source([]), "expected a topic"),
    (lambda t: t.source("a b"), "invalid topic name 'a b'"),
    (lambda t: t.source("in").to("x/y"), "invalid topic name 'x/y'"),
    (lambda t: t.source("in").map("not a function"), "map: expected a function, got str"),
    (lambda t: (t.source("in").map(lambda r: r, name="m"), t.source("in2").map(lambda r: r, name="m")),
     "processor name 'm' is used twice"),
    (lambda t: t.source("in").branch(), "at least one predicate"),
    (lambda t: t.source("in").process(object()), "expected a KeyedStep"),
    (lambda t: t.source("in").dedupe(0), "within_ms: expected a positive integer, got 0"),
    (lambda t: t.source("in").group_by_key().windowed_by(60_000), "expected TumblingWindows"),
    (lambda t: TumblingWindows(0), "size_ms: expected a positive integer"),
    (lambda t: TumblingWindows(10, grace_ms=-1), "grace_ms"),
    (lambda t: HoppingWindows(10, 20), "advance_ms: expected at most size_ms"),
    (lambda t: t.source("in").group_by_key().windowed_by(TumblingWindows(5)).aggregate("median"),
     "expected one of count, sum, min, max, mean"),
    (lambda t: (t.source("in").to_table("x"), t.source("in2").to_table("x")), "table named 'x'"),
])
def test_mistakes_are_refused_with_a_message_naming_them(build, message) -> None:
    with pytest.raises(TopologyError, match=message):
        build(Topology("t"))


def test_record_helpers_derive_records() -> None:
    r = Record(b"k", {"c": 1}, 5, [("a", b"1"), ("a", b"2")], "in", 0, 7)
    d = r.with_value({"c": 2})
    assert (d.key, d.value, d.timestamp_ms, d.topic, d.offset) == (b"k", {"c": 2}, 5, None, None)
    assert d.headers == r.headers and d.headers is not r.headers
    assert r.with_key(None).key is None
    assert r.header("a") == b"2" and r.header("b") is None
