"""Windowed aggregates against a straightforward reference, on random input with out-of-order
and late records, random batch sizes and a restart half-way (hypothesis, real log)."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from broker import KafkaAdminClient, KafkaConsumer, KafkaProducer, LogConfig, NewTopic
from edge.streams import HoppingWindows, StreamsRunner, Topology, TumblingWindows


class Spread:
    """A custom aggregate: max - min, with the pair as its JSON state."""

    def initial(self) -> Any:
        return None

    def add(self, agg: Any, value: int) -> Any:
        return [value, value] if agg is None else [min(agg[0], value), max(agg[1], value)]

    def result(self, agg: Any) -> int:
        return agg[1] - agg[0]


def _reference_aggregate(name: str, values: list[int]) -> Any:
    if name == "count":
        return len(values)
    if name == "sum":
        return sum(values)
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "mean":
        return sum(values) / len(values)
    return max(values) - min(values)


def _reference_windows(ts: int, size: int, advance: int) -> list[int]:
    """Every start k*advance with start <= ts < start + size, found by walking, not by formula."""
    first = (ts - size) // advance * advance
    return [s for s in range(first, ts + 1, advance) if s <= ts < s + size]


def reference(records: list[tuple[int, str, int, int]], size: int, advance: int, grace: int,
              agg: str) -> tuple[dict[Any, Any], list[Any]]:
    """Final window results and late records, per partition, from the records in arrival order.

    Watermark after a record = the largest timestamp seen on its partition so far.  A record
    misses a window whose end + grace the watermark has reached; a window is emitted when the
    final watermark reached its end + grace.
    """
    results: dict[Any, Any] = {}
    late: list[Any] = []
    for part in sorted({r[0] for r in records}):
        seen_max = None
        members: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        for p, key, ts, value in records:
            if p != part:
                continue
            seen_max = ts if seen_max is None else max(seen_max, ts)
            missed = []
            for start in _reference_windows(ts, size, advance):
                if start + size + grace <= seen_max:
                    missed.append(start)
                else:
                    members[(key, start)].append((ts, value))
            if missed:
                late.append((part, key, ts, value, ",".join(f"{s}-{s + size}" for s in missed)))
        for (key, start), items in members.items():
            if seen_max is not None and start + size + grace <= seen_max:
                values = [v for _t, v in items]
                results[(part, key, start)] = (_reference_aggregate(agg, values), len(values),
                                               max(t for t, _v in items))
    return results, late


def _read(cfg: LogConfig, topic: str) -> list[Any]:
    with KafkaConsumer(topic, log_config=cfg, auto_offset_reset="earliest", consumer_timeout_ms=50) as c:
        return list(c)


def _source_partition(headers: list[tuple[str, bytes]]) -> int:
    return int(dict(headers)["streams.source"].decode().split("/")[1])


records_st = st.lists(
    # Steps of the event clock on a 10 ms grid, so watermarks land exactly on window edges.
    st.tuples(st.integers(0, 1), st.sampled_from("abc"), st.integers(-18, 25).map(lambda n: n * 10),
              st.integers(-50, 50)),
    min_size=1, max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=records_st,
    size=st.integers(2, 30).map(lambda n: n * 10),
    advance_frac=st.one_of(st.none(), st.floats(0.05, 1.0)),
    grace=st.sampled_from([0, 0, 10, 50, 100]),
    agg=st.sampled_from(["count", "sum", "min", "max", "mean", "spread"]),
    batch=st.integers(1, 40),
    split=st.floats(0.0, 1.0),
)
def test_windowed_aggregates_match_the_reference(raw, size, advance_frac, grace, agg, batch,
                                                 split) -> None:
    # Timestamps: a clock that mostly moves on and sometimes jumps back (out of order, late).
    records, clock = [], 1000
    for part, key, step, value in raw:
        clock = max(0, clock + step)
        records.append((part, key, clock, value))
    if advance_frac is None:
        windows: Any = TumblingWindows(size, grace_ms=grace)
        advance = size
    else:
        advance = max(10, int(size * advance_frac) // 10 * 10)
        windows = HoppingWindows(size, advance, grace_ms=grace)
    t = Topology("win")
    t.source("in").group_by_key().windowed_by(windows).aggregate(
        Spread() if agg == "spread" else agg, value=lambda r: r.value["v"]).to("out")

    with tempfile.TemporaryDirectory() as d:
        cfg = LogConfig(data_dir=Path(d), durability="no-fsync")
        with KafkaAdminClient(log_config=cfg) as admin:
            admin.create_topics([NewTopic("in", 2), NewTopic("out", 3)])
        cut = int(len(records) * split)
        with KafkaProducer(log_config=cfg) as producer:
            for part_records in (records[:cut], records[cut:]):
                for part, key, ts, value in part_records:
                    producer.send("in", json.dumps({"v": value}).encode(), key=key.encode(),
                                  partition=part, timestamp_ms=ts)
                producer.flush()
                # A new runner for each half: the second resumes from committed state.
                with StreamsRunner(t, cfg, max_batch_records=batch) as runner:
                    runner.process_available()
        out = _read(cfg, "out")
        late = _read(cfg, "win.late")

    got: dict[Any, Any] = {}
    for r in out:
        v = json.loads(r.value)
        assert v["end"] == v["start"] + size
        k = (_source_partition(r.headers), r.key.decode(), v["start"])
        assert k not in got, f"window {k} emitted twice"
        got[k] = (v["value"], v["count"], r.timestamp)
    got_late = sorted((_source_partition(r.headers), r.key.decode(), r.timestamp,
                       json.loads(r.value)["v"], dict(r.headers)["streams.late.windows"].decode())
                      for r in late)
    want, want_late = reference(records, size, advance, grace, agg)
    assert got == want
    assert got_late == sorted(want_late)
    event(f"windows emitted: {'some' if want else 'none'}; late records: {'some' if want_late else 'none'}")


def test_a_hand_checked_case_late_grace_and_hopping() -> None:
    # Partition 0, key a; tumbling 100 ms, grace 50: [0,100) closes at watermark 150.
    records = [(0, "a", 10, 1), (0, "a", 120, 2), (0, "a", 90, 3),   # 90: in time (wm 120 < 150)
               (0, "a", 150, 4), (0, "a", 95, 5)]                    # 95: late (wm 150)
    results, late = reference(records, 100, 100, 50, "sum")
    assert results == {(0, "a", 0): (4, 2, 90)}
    assert late == [(0, "a", 95, 5, "0-100")]
    # Hopping 100 every 50: 95 belongs to [0,100) and [50,150); only the first is closed.
    results, late = reference(records, 100, 50, 50, "count")
    assert late == [(0, "a", 95, 5, "0-100")]
    assert results[(0, "a", 0)] == (2, 2, 90)


def test_a_late_record_goes_to_the_side_output_with_why(tmp_path: Path) -> None:
    t = Topology("late")
    t.source("in").group_by_key().windowed_by(TumblingWindows(100, grace_ms=50)).aggregate(
        "sum", value=lambda r: r.value["v"], name="sum-100").to("out")
    with KafkaAdminClient(tmp_path) as admin:
        admin.create_topics([NewTopic("in", 1)])
    with KafkaProducer(tmp_path) as producer:
        for ts, v in [(10, 1), (120, 2), (90, 3), (150, 4), (95, 5), (260, 6)]:
            producer.send("in", json.dumps({"v": v}).encode(), key=b"a", timestamp_ms=ts,
                          headers=[("device_kind", b"thermometer")])
    with StreamsRunner(t, tmp_path) as runner:
        assert runner.process_available() == 6
        assert runner.status().late == 1
    cfg = LogConfig(data_dir=tmp_path)
    out = [(json.loads(r.value), r.timestamp) for r in _read(cfg, "out")]
    assert out == [({"start": 0, "end": 100, "value": 4, "count": 2}, 90),     # closed by 150
                   ({"start": 100, "end": 200, "value": 6, "count": 2}, 150)]  # closed by 260
    [late] = _read(cfg, "late.late")
    assert (late.key, json.loads(late.value), late.timestamp) == (b"a", {"v": 5}, 95)
    assert late.headers == [
        ("device_kind", b"thermometer"),
        ("reason", b"late: window(s) 0-100 closed at watermark 150 (grace 50 ms)"),
        ("streams.late.windows", b"0-100"),
        ("streams.watermark", b"150"),
        ("streams.grace_ms", b"50"),
        ("streams.processor", b"sum-100"),
        ("streams.topology", b"late"),
        ("streams.source", b"in/0/4"),
    ]
