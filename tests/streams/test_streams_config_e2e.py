"""`edge run` as a subprocess with a fever-alert + downsample topology in its config.

Readings go into the service's input topic from this test process through the
broker's producer (another process writing the same log, as the console
producer does), so their event times can be chosen; the service's runner
wakes on each commit. The alerts and downsampled topics are read back with
the broker's consumer. The service is stopped with SIGTERM half-way and
started again: alerts are neither repeated nor lost across the restart.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from broker import KafkaAdminClient, KafkaProducer, LogConfig
from tests.edge._helpers import health, read_topic, start_edge, stop_edge, wait_for, write_config

pytestmark = pytest.mark.timeout(180)

STREAMS = '''
[[streams]]
name = "ward"
source = "temperature"
[[streams.steps]]
builtin = "fever"
raise_at = 38.0
clear_at = 37.5
topic = "alerts"
[[streams.steps]]
builtin = "downsample"
fields = ["temperature_c"]
window_s = 60
grace_s = 5
topic = "temperature.1m"
'''


def feed(data: Path, rows: list[tuple[str, int, float]]) -> None:
    producer = KafkaProducer(log_config=LogConfig(data_dir=data))
    try:
        for device, ts, c in rows:
            producer.send("temperature", json.dumps({"temperature_c": c}).encode(),
                          key=device.encode(), timestamp_ms=ts)
        producer.flush()
    finally:
        producer.close()


def values(data: Path, topic: str) -> list[tuple[str, dict, int]]:
    return [(r.key.decode(), json.loads(r.value), r.timestamp) for r in read_topic(data, topic)]


def streams_health(port: int, name: str = "ward") -> dict | None:
    h = health(port)
    return (h or {}).get("streams", {}).get(name)


def test_fever_alerts_and_minute_means_from_a_running_service(tmp_path: Path) -> None:
    config, port = write_config(tmp_path, "", extra=STREAMS)
    data = tmp_path / "data"
    edge_log = tmp_path / "edge.log"
    t0 = (int(time.time() * 1000) // 60_000 - 10) * 60_000    # a minute boundary, 10 min ago
    bed1 = [36.9, 37.4, 38.0, 38.3, 37.8, 37.6, 37.9, 37.2, 37.0]   # every 10 s
    bed2 = [37.1, 37.3, 37.2]                                        # every 20 s
    rows = sorted([("bed-1", t0 + 10_000 * i, c) for i, c in enumerate(bed1)]
                  + [("bed-2", t0 + 20_000 * i, c) for i, c in enumerate(bed2)],
                  key=lambda r: r[1])
    first, second = rows[:6], rows[6:]        # bed-1's raise in the first half, its clear after
    closing = [(d, t0 + 300_000, 36.8) for d in ("bed-1", "bed-2")]   # closes minutes 0 and 1

    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: (streams_health(port) or {}).get("state") == "running", 30,
                 "the topology running")
        feed(data, first)
        wait_for(lambda: len(values(data, "alerts")) == 1, 30, "the raise alert")
    finally:
        assert stop_edge(edge, edge_log) == 0, edge_log.read_text()
    assert "stopped cleanly" in edge_log.read_text()

    edge = start_edge(config, edge_log)       # the same config again: resumes, exactly once
    try:
        wait_for(lambda: (streams_health(port) or {}).get("state") == "running", 30,
                 "the topology running again")
        feed(data, second + closing)
        wait_for(lambda: len(values(data, "temperature.1m")) >= 3, 30, "the minute means")
        wait_for(lambda: (streams_health(port) or {}).get("lag_records") == 0, 30, "no lag")
        h = health(port)
        assert h is not None and h["ok"], h
        assert h["streams"]["ward"]["records_in"] == len(second) + len(closing)
        assert h["streams"]["ward"]["restarts"] == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'edge_streams_up{topology="ward"} 1.0' in metrics
        assert f'edge_streams_records_in_total{{topology="ward"}} {len(second) + 2}.0' in metrics
    finally:
        assert stop_edge(edge, edge_log) == 0, edge_log.read_text()

    alerts = [(k, v["alert"], v["state"], v["value"], ts) for k, v, ts in values(data, "alerts")]
    assert alerts == [("bed-1", "fever", "raise", 38.0, t0 + 20_000),
                      ("bed-1", "fever", "clear", 37.2, t0 + 70_000)]
    means = {(k, v["window_start_ms"]): (v["temperature_c"], v["count"])
             for k, v, _ in values(data, "temperature.1m")}
    assert means == {
        ("bed-1", t0): (round(sum(bed1[:6]) / 6, 3), 6),
        ("bed-1", t0 + 60_000): (round(sum(bed1[6:]) / 3, 3), 3),
        ("bed-2", t0): (round(sum(bed2) / 3, 3), 3),
    }
    assert len(read_topic(data, "temperature")) == len(rows) + len(closing)   # raw stays as is
    assert read_topic(data, "dead-letters") == [] and read_topic(data, "ward.late") == []


def test_gps_track_on_simulated_fixes_from_a_serial_device(tmp_path: Path) -> None:
    """edge-sim over a real pty → the service's serial GPS device → the log → gps_track."""
    import subprocess

    from tests.edge._helpers import BIN, serial_device, truth_readings

    links = tmp_path / "links"
    links.mkdir()
    fleet = ('[[streams]]\nname = "fleet"\nsource = "gps"\nsink = "gps.track"\n'
             '[[streams.steps]]\nbuiltin = "gps_track"\n')
    config, port = write_config(tmp_path, serial_device("car-1", "gps", str(links / "car-1"),
                                                        "nmea0183"), extra=fleet)
    data = tmp_path / "data"
    edge_log = tmp_path / "edge.log"
    truth = tmp_path / "truth.jsonl"
    edge = start_edge(config, edge_log)
    try:
        sim = subprocess.run([str(BIN / "edge-sim"), "--no-progress", "--seed", "11", "--gps", "1",
                              "--rooms", "0", "--patients", "0", "--output", "pty",
                              "--link-dir", str(links), "--fast", "--count", "120",
                              "--truth", str(truth)], capture_output=True, text=True, timeout=90)
        assert sim.returncode == 0, sim.stderr
        # the NMEA assembler hands on the last fix only when the next epoch starts (or at stop)
        wait_for(lambda: (streams_health(port, "fleet") or {}).get("records_in", 0) >= 119, 60,
                 "119 fixes through the topology")
    finally:
        assert stop_edge(edge, edge_log) == 0, edge_log.read_text()

    fixes = [(r.timestamp, json.loads(r.value)) for r in read_topic(data, "gps")]
    track = [(r.timestamp, json.loads(r.value)) for r in read_topic(data, "gps.track")]
    assert len(fixes) == 120 and 119 <= len(track) <= 120
    assert [t for t, _ in track] == [t for t, _ in fixes[:len(track)]]   # each once, in order
    assert [v["track"] for _, v in track] == ["first"] + ["ok"] * (len(track) - 1)
    legs = [0.0] + [haversine(a, b) for (_, a), (_, b) in zip(fixes, fixes[1:len(track)], strict=False)]
    assert [v["distance_m"] for _, v in track] == pytest.approx(legs, abs=1e-3)
    total = track[-1][1]["distance_total_m"]
    assert total == pytest.approx(sum(legs), abs=1e-2)
    # against the simulator's own odometer (speed x time; ~1 m of jitter per fix on top)
    sim_fixes = [r for r in truth_readings(truth) if r["device_id"] == "car-1"][:len(track)]
    odometer = sum(b["values"]["speed_mps"] * (b["timestamp_ms"] - a["timestamp_ms"]) / 1000
                   for a, b in zip(sim_fixes, sim_fixes[1:], strict=False))
    assert odometer > 200
    assert total == pytest.approx(odometer, rel=0.05)   # measured: ~2 % over, from the jitter


def haversine(a: dict, b: dict) -> float:
    from edge.streams.builtins import haversine_m

    return haversine_m(a["lat"], a["lon"], b["lat"], b["lon"])


def test_sighup_starts_and_stops_only_the_topologies_that_changed(tmp_path: Path) -> None:
    import signal

    ward = '[[streams]]\nname = "ward"\nsource = "temperature"\nsteps = [{ builtin = "fever" }]\n'
    bp = ('[[streams]]\nname = "bp"\nsource = "blood_pressure"\n'
          'steps = [{ builtin = "blood_pressure" }]\n')
    config, port = write_config(tmp_path, "", extra=ward)
    data = tmp_path / "data"
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: (streams_health(port) or {}).get("state") == "running", 30, "ward")
        feed(data, [("bed-1", int(time.time() * 1000), 38.6)])
        wait_for(lambda: (streams_health(port) or {}).get("records_in") == 1, 30, "one reading")

        config.write_text(config.read_text() + bp)          # ward unchanged, bp new
        edge.send_signal(signal.SIGHUP)
        wait_for(lambda: (streams_health(port, "bp") or {}).get("state") == "running", 30, "bp")
        assert (streams_health(port) or {}).get("records_in") == 1   # ward was not restarted
        producer = KafkaProducer(log_config=LogConfig(data_dir=data))
        producer.send("blood_pressure", b'{"systolic_mmhg": 185, "diastolic_mmhg": 95}',
                      key=b"bed-1").get(timeout=10)
        producer.close()
        wait_for(lambda: read_topic(data, "alerts.blood_pressure"), 30, "the crisis alert")

        config.write_text(config.read_text().replace(ward, ""))   # ward removed
        edge.send_signal(signal.SIGHUP)
        wait_for(lambda: "ward" not in (health(port) or {"streams": {"ward": 1}}).get(
            "streams", {}), 30, "ward stopped")
        assert (streams_health(port, "bp") or {}).get("state") == "running"
    finally:
        assert stop_edge(edge, edge_log) == 0, edge_log.read_text()
    log_text = edge_log.read_text()
    assert "SIGHUP: starting topology bp" in log_text
    assert "SIGHUP: stopping topology ward" in log_text
    assert "SIGHUP: stopping topology bp" not in log_text
    # The removed topology no longer holds its input from retention; the running one does.
    with KafkaAdminClient(log_config=LogConfig(data_dir=data)) as admin:
        assert not admin.describe_consumer_group("streams.ward").protected
        assert admin.describe_consumer_group("streams.bp").protected_topics == ("blood_pressure",)
    (alert,) = [json.loads(r.value) for r in read_topic(data, "alerts.blood_pressure")]
    assert alert["category"] == "hypertensive_crisis"
    assert [json.loads(r.value)["state"] for r in read_topic(data, "alerts")] == ["raise"]
