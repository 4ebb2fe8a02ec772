"""The runner on a real log: stateless steps, dead letters, keyed state across restarts, tables,
dedupe, the async loop, fencing and a failed commit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from broker import (
    MIN_QUOTA_BYTES,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    LogConfig,
    LogFullError,
    NewTopic,
    default_partition,
)
from edge.streams import FencedError, Record, StreamsError, StreamsRunner, Topology


def _write(data_dir: Path, topic: str, items: list[tuple[bytes | None, Any, int]], partitions: int = 1,
           headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> None:
    with KafkaAdminClient(data_dir) as admin:
        if topic not in admin.list_topics():
            admin.create_topics([NewTopic(topic, partitions)])
    with KafkaProducer(data_dir) as p:
        for key, value, ts in items:
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            p.send(topic, raw, key=key, timestamp_ms=ts, headers=headers, partition=partition)


def _read(data_dir: Path, topic: str) -> list[Any]:
    with KafkaConsumer(topic, data_dir=data_dir, auto_offset_reset="earliest",
                       consumer_timeout_ms=100) as c:
        return sorted(c, key=lambda r: (r.partition, r.offset))


def _values(data_dir: Path, topic: str) -> list[Any]:
    return [json.loads(r.value) for r in _read(data_dir, topic)]


def test_stateless_steps_partition_link_and_keep_time(tmp_path: Path) -> None:
    _write(tmp_path, "in", [(f"dev-{i % 4}".encode(), {"c": i}, 1000 + i) for i in range(40)],
           headers=[("schema", b"temp/1")])
    with KafkaAdminClient(tmp_path) as admin:
        admin.create_topics([NewTopic("out", 3), NewTopic("big", 1), NewTopic("pairs", 2)])
    t = Topology("stateless")
    s = t.source("in")
    odd, even = s.map(lambda r: r.with_value({"c": r.value["c"] * 10})).branch(
        lambda r: r.value["c"] % 20 == 10, lambda r: True)
    odd.filter(lambda r: r.value["c"] > 200).to("out")
    even.select_key(lambda r: None).filter(lambda r: r.value["c"] >= 380).to("big")
    s.flat_map(lambda r: [r.with_value(r.value["c"]), r.with_value(-r.value["c"])] if r.value["c"] < 2
               else []).to("pairs")
    with StreamsRunner(t, tmp_path) as runner:
        assert runner.process_available() == 40
        st = runner.status()
    out = _read(tmp_path, "out")
    assert sorted(json.loads(r.value)["c"] for r in out) == list(range(210, 400, 20))
    for r in out:
        assert r.partition == default_partition(r.key, 3)  # the broker's murmur2, as Kafka's
        c = json.loads(r.value)["c"] // 10
        assert r.timestamp == 1000 + c
        assert r.headers == [("schema", b"temp/1"), ("streams.source", f"in/0/{c}".encode())]
    assert [(r.key, json.loads(r.value)) for r in _read(tmp_path, "big")] == [(None, {"c": 380})]
    assert _values(tmp_path, "pairs") == [0, 0, 1, -1]  # keyed by dev-0/dev-1, same partition
    assert (st.records_in, st.records_out, st.dead_lettered, st.lag) == (40, 15, 0, 0)
    assert [(p.topic, p.partition, p.committed, p.log_end_offset, p.watermark_ms)
            for p in st.partitions] == [("in", 0, 40, 40, 1039)]
    assert st.state == "idle" and st.transactions == 1 and st.last_commit_ms is not None


def test_a_raising_processor_dead_letters_the_record_and_goes_on(tmp_path: Path) -> None:
    _write(tmp_path, "in", [(b"k", {"c": 1}, 1), (b"k", {"oops": 1}, 2), (b"k", b"\xffraw", 3),
                            (b"k", {"c": 4}, 4)], headers=[("source", b"ttyUSB0")])
    t = Topology("dlq")
    t.source("in").map(lambda r: r.with_value(r.value["c"] + 1), name="plus-one").to("out")
    with StreamsRunner(t, tmp_path, dead_letter_topic="dead") as runner:
        assert runner.process_available() == 4
        st = runner.status()
    assert _values(tmp_path, "out") == [2, 5]
    dead = _read(tmp_path, "dead")
    assert [r.value for r in dead] == [b'{"oops": 1}', b"\xffraw"]  # the input bytes, unchanged
    h = dict(dead[0].headers)
    assert h["source"] == b"ttyUSB0"
    assert h["streams.error.type"] == b"KeyError"
    assert h["streams.error.message"] == b"'c'"
    assert h["reason"] == b"KeyError: 'c'"
    assert h["streams.processor"] == b"plus-one"
    assert h["streams.topology"] == b"dlq"
    assert h["streams.source"] == b"in/0/1"
    assert dict(dead[1].headers)["streams.error.type"] == b"TypeError"
    assert (dead[0].key, dead[0].timestamp) == (b"k", 2)
    assert st.errors == {"plus-one": 2} and st.dead_lettered == 2
    assert "plus-one" in (st.last_error or "")


class RunningTotal:
    """Per-key running total: emits the total after each record."""

    def initial_state(self) -> Any:
        return {"total": 0, "n": 0}

    def apply(self, state: Any, record: Record) -> tuple[Any, list[Record]]:
        if record.value == "poison":
            state["total"] = 10**9  # changed in place, then failing: must not stick
            raise ValueError("poison record")
        state["total"] += record.value
        state["n"] += 1
        if record.value == 0:
            return None, [record.with_value("reset")]
        return state, [record.with_value(dict(state))]


def test_keyed_state_survives_a_restart_and_a_failure_leaves_it_unchanged(tmp_path: Path) -> None:
    t = Topology("totals")
    t.source("in").process(RunningTotal(), name="total").to("out")
    _write(tmp_path, "in", [(b"a", 1, 1), (b"b", 10, 2), (b"a", 2, 3), (b"a", "poison", 4)])
    with StreamsRunner(t, tmp_path, max_batch_records=2) as runner:
        assert runner.process_available() == 4
    _write(tmp_path, "in", [(b"a", 4, 5), (b"b", 0, 6), (b"b", 5, 7)])
    with StreamsRunner(t, tmp_path) as runner:
        assert runner.process_available() == 3
        assert runner.process_available() == 0
    assert _values(tmp_path, "out") == [
        {"total": 1, "n": 1}, {"total": 10, "n": 1}, {"total": 3, "n": 2},
        {"total": 7, "n": 3}, "reset", {"total": 5, "n": 1}]
    assert len(_read(tmp_path, "dead-letters")) == 1


def test_table_keeps_the_latest_value_and_dedupe_drops_repeats(tmp_path: Path) -> None:
    t = Topology("tab")
    s = t.source("in")
    latest = s.to_table("latest")
    s.dedupe(1000, id=lambda r: r.value["id"]).to("unique")
    _write(tmp_path, "in", [
        (b"a", {"id": 1, "v": 1}, 0), (b"a", {"id": 1, "v": 2}, 500),   # repeat within 1 s
        (b"b", {"id": 1, "v": 3}, 600),                                  # other key: kept
        (b"a", {"id": 2, "v": 4}, 700), (b"a", {"id": 1, "v": 5}, 1500),  # 1500 ms after: kept
        (b"a", {"id": 1, "v": 6}, 2400),                                 # repeat of 1500
    ])
    with StreamsRunner(t, tmp_path, max_batch_records=2) as runner:
        runner.process_available()
        assert latest.get(b"a") == {"id": 1, "v": 6}
        assert latest.get(b"zz", "none") == "none"
        assert sorted(latest.items()) == [(b"a", {"id": 1, "v": 6}), (b"b", {"id": 1, "v": 3})]
        assert len(latest) == 2
        assert runner.status().deduplicated == 2
    with pytest.raises(StreamsError, match="not open"):
        latest.get(b"a")
    assert [v["v"] for v in _values(tmp_path, "unique")] == [1, 3, 4, 5]
    with StreamsRunner(t, tmp_path) as runner:  # the table comes back from the state store
        assert latest.get(b"b") == {"id": 1, "v": 3}


async def test_run_wakes_on_new_records_and_stops_when_cancelled(tmp_path: Path) -> None:
    t = Topology("live")
    t.source("in").map(lambda r: r.with_value(r.value * 2)).to("out")
    _write(tmp_path, "in", [(b"k", 1, 1)])
    runner = StreamsRunner(t, tmp_path)
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(20):
            while runner.status().records_out < 1:
                await asyncio.sleep(0.02)
            await asyncio.to_thread(_write, tmp_path, "in", [(b"k", 5, 2), (b"k", 6, 3)])
            while runner.status().records_out < 3:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        runner.close()
    assert _values(tmp_path, "out") == [2, 10, 12]


def test_a_second_runner_of_the_same_topology_is_fenced(tmp_path: Path) -> None:
    t = Topology("twice")
    t.source("in").to("out")
    _write(tmp_path, "in", [(b"k", i, i) for i in range(10)])
    first = StreamsRunner(t, tmp_path, max_batch_records=4)
    second = StreamsRunner(t, tmp_path, max_batch_records=4)
    try:
        assert first.process_available() == 10
        with pytest.raises(FencedError, match="committed offset 10 for in\\[0\\], not None"):
            second.process_available()
        with pytest.raises(FencedError):
            second.process_available()
    finally:
        first.close()
        second.close()
    assert _values(tmp_path, "out") == list(range(10))


def test_a_failed_commit_forgets_the_batch_and_a_retry_processes_it_once(tmp_path: Path) -> None:
    # Written without a quota, and more than the smallest quota holds: nothing more fits.
    _write(tmp_path, "in", [(b"k", {"pad": "x" * 3000, "i": i}, i) for i in range(10)])
    t = Topology("full")
    s = t.source("in")
    table = s.to_table("last")
    s.to("copy")
    tight = LogConfig(data_dir=tmp_path, quota_bytes=MIN_QUOTA_BYTES)
    with StreamsRunner(t, tight) as runner:
        with pytest.raises(LogFullError):
            runner.process_available()
        assert table.get(b"k") is None  # the batch's state was forgotten with it
        assert runner.status().records_in == 0
    assert _read(tmp_path, "copy") == []
    with StreamsRunner(t, tmp_path) as runner:
        assert runner.process_available() == 10
        assert table.get(b"k")["i"] == 9
    assert [v["i"] for v in _values(tmp_path, "copy")] == list(range(10))


class SetOfValues:
    """A buggy custom aggregate: a set is not JSON."""

    def initial(self) -> Any:
        return []

    def add(self, agg: Any, value: Any) -> Any:
        return set(agg) | {value} if value == "bug" else [*agg, value]

    def result(self, agg: Any) -> Any:
        return len(agg)


def test_an_aggregate_json_cannot_hold_dead_letters_its_record_not_the_batch(tmp_path: Path) -> None:
    from edge.streams import TumblingWindows

    t = Topology("aggbug")
    t.source("in").group_by_key().windowed_by(TumblingWindows(100)).aggregate(
        SetOfValues(), name="distinct").to("out")
    _write(tmp_path, "in", [(b"k", 1, 10), (b"k", "bug", 20), (b"k", 2, 30), (b"k", 3, 150)])
    with StreamsRunner(t, tmp_path) as runner:
        assert runner.process_available() == 4
        assert runner.status().errors == {"distinct": 1}
    assert [v["value"] for v in _values(tmp_path, "out")] == [2]
    assert dict(_read(tmp_path, "dead-letters")[0].headers)["streams.processor"] == b"distinct"
