"""A configured topology supervised as the service runs it: output, health, stop, restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from broker import KafkaConsumer, KafkaProducer, LogConfig
from devices import Backoff
from edge._streams import StreamsCollector, TopologySupervisor
from edge.streams._config import StepConfig, TopologyConfig
from tests.streams import _custom_topology

FEVER = TopologyConfig("vitals", source=("temperature",), steps=(StepConfig("fever"),))


def read(cfg: LogConfig, topic: str) -> list[dict]:
    with KafkaConsumer(topic, log_config=cfg, auto_offset_reset="earliest",
                       consumer_timeout_ms=200) as c:
        return [json.loads(m.value) for m in c]


async def until(pred, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.05)


async def test_runs_the_topology_reports_health_and_stops(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path)
    producer = KafkaProducer(log_config=cfg)
    sup = TopologySupervisor(FEVER, cfg, "dead-letters")
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: sup.state == "running")
        for i, c in enumerate((37.0, 38.2, 38.4, 37.1)):
            producer.send("temperature", json.dumps({"temperature_c": c}).encode(), key=b"bed-1",
                          timestamp_ms=1_800_000_000_000 + i)
        producer.flush()
        await until(lambda: len(read(cfg, "alerts")) == 2)
        assert [a["state"] for a in read(cfg, "alerts")] == ["raise", "clear"]
        await until(lambda: sup.health().get("records_in") == 4)
        h = sup.health()
        assert h["ok"] and h["state"] == "running" and h["restarts"] == 0
        assert h["group_id"] == "streams.vitals" and h["lag_records"] == 0
        registry = CollectorRegistry()
        registry.register(StreamsCollector(lambda: {"vitals": sup}))
        metrics = generate_latest(registry).decode()
        for line in ('edge_streams_up{topology="vitals"} 1.0',
                     'edge_streams_records_in_total{topology="vitals"} 4.0',
                     'edge_streams_records_out_total{topology="vitals"} 2.0',
                     'edge_streams_lag_records{topology="vitals"} 0.0',
                     'edge_streams_restarts_total{topology="vitals"} 0.0'):
            assert line in metrics, metrics
    finally:
        sup.stop()
        async with asyncio.timeout(20):
            await task
        producer.close()
    assert sup.state == "stopped" and not sup.health()["ok"]
    sup.stop()  # twice is fine


async def test_a_failing_topology_is_restarted_with_backoff_and_reported(tmp_path: Path) -> None:
    cfg = LogConfig(data_dir=tmp_path)
    _custom_topology.FAILURES_LEFT["flaky"] = 2
    topo = TopologyConfig("flaky", module="tests.streams._custom_topology:flaky")
    sup = TopologySupervisor(topo, cfg, "dead-letters", backoff=Backoff(0.05, 0.1))
    producer = KafkaProducer(log_config=cfg)
    producer.send("temperature", b'{"temperature_c": 36.6}', key=b"bed-1").get(timeout=10)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: sup.state == "running")
        assert sup.restarts == 2
        assert sup.last_error == "RuntimeError: flaky build failed on purpose"
        h = sup.health()
        assert h["ok"] and h["last_error"] == sup.last_error
        await until(lambda: len(read(cfg, "copied")) == 1)
    finally:
        sup.stop()
        async with asyncio.timeout(20):
            await task
        producer.close()


async def test_stop_while_failing_ends_the_backoff_at_once(tmp_path: Path) -> None:
    _custom_topology.FAILURES_LEFT["flaky"] = 10**6
    topo = TopologyConfig("flaky", module="tests.streams._custom_topology:flaky")
    sup = TopologySupervisor(topo, LogConfig(data_dir=tmp_path), "dead-letters",
                             backoff=Backoff(30, 30))
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: sup.state == "failed")
        h = sup.health()
        assert not h["ok"] and h["state"] == "failed" and "flaky build" in h["last_error"]
    finally:
        sup.stop()
        async with asyncio.timeout(5):  # not the 15-30 s of the backoff
            await task
        _custom_topology.FAILURES_LEFT["flaky"] = 0
    assert sup.state == "stopped"
