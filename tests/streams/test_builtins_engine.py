"""The built-ins through the real engine and log: topologies from config, run by StreamsRunner."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from broker import KafkaAdminClient, KafkaConsumer, KafkaProducer, LogConfig, NewTopic
from edge import parse_config
from edge.streams import StreamsRunner
from edge.streams._config import build_topology

T0 = 1_800_000_000_000 - 1_800_000_000_000 % 60_000   # a minute boundary
HEAD = 'edge_id = "e"\ndata_dir = "/tmp/unused"\n'

VITALS = HEAD + textwrap.dedent('''
    [[streams]]
    name = "vitals"
    source = "temperature"
    [[streams.steps]]
    builtin = "normalise_units"
    [[streams.steps]]
    builtin = "fever"
    topic = "alerts"
    [[streams.steps]]
    builtin = "downsample"
    fields = ["temperature_c"]
    window_s = 60
    grace_s = 5
    topic = "temperature.1m"
''')


@pytest.fixture
def log(tmp_path: Path):
    cfg = LogConfig(data_dir=tmp_path, default_partitions=2)
    admin = KafkaAdminClient(log_config=cfg)
    admin.create_topics([NewTopic("temperature", 2), NewTopic("gps", 2)])
    producer = KafkaProducer(log_config=cfg)
    yield cfg, producer
    producer.close()
    admin.close()


def send(producer, topic, device, ts, value):
    producer.send(topic, json.dumps(value).encode(), key=device.encode(), timestamp_ms=ts)


def read(cfg, topic):
    with KafkaConsumer(topic, log_config=cfg, auto_offset_reset="earliest",
                       consumer_timeout_ms=300) as c:
        return [(m.key.decode(), json.loads(m.value), m.timestamp) for m in c]


def topology(text, i=0):
    return build_topology(parse_config(text).streams[i])


def run(cfg, text, i=0):
    with StreamsRunner(topology(text, i), cfg) as runner:
        return runner.process_available()


# Readings of two patients, one reporting in °F; 10 s apart.
BED1_C = [36.8, 37.2, 38.1, 37.8, 37.6, 38.3, 37.4, 37.0, 36.9]
BED2_F = [98.6, 100.4, 101.3, 99.0]                     # 37.0, 38.0, 38.5, 37.222 °C


def feed_vitals():
    rows = [("bed-1", T0 + 10_000 * i, {"temperature_c": c}) for i, c in enumerate(BED1_C)]
    rows += [("bed-2", T0 + 15_000 * i, {"temperature_f": f}) for i, f in enumerate(BED2_F)]
    # a reading 10 minutes later per device moves each partition's watermark past the windows
    rows += [(d, T0 + 600_000, {"temperature_c": 36.5}) for d in ("bed-1", "bed-2")]
    # in time order, as devices send them: the watermark is per partition, so a device whose
    # readings arrive after another's later ones (same partition) would be late beyond the grace
    return sorted(rows, key=lambda r: r[1])


def test_fever_alerts_and_downsampled_minutes(log):
    cfg, producer = log
    for device, ts, value in feed_vitals():
        send(producer, "temperature", device, ts, value)
    producer.flush()
    assert run(cfg, VITALS) == len(BED1_C) + len(BED2_F) + 2

    alerts = sorted((k, v["state"], v["value"], ts) for k, v, ts in read(cfg, "alerts"))
    assert alerts == [
        ("bed-1", "clear", 37.4, T0 + 60_000),    # 37.8 and 37.6 hold it; 37.4 clears
        ("bed-1", "raise", 38.1, T0 + 20_000),    # 38.3 while raised: no second raise
        ("bed-2", "clear", 37.222, T0 + 45_000),  # 99.0 °F
        ("bed-2", "raise", 38.0, T0 + 15_000),    # 100.4 °F is 38.0 °C: ">= 38.0"
    ]

    minutes = {(k, v["window_start_ms"]): v for k, v, _ in read(cfg, "temperature.1m")}
    with KafkaConsumer("temperature.1m", log_config=cfg, auto_offset_reset="earliest",
                       consumer_timeout_ms=300) as c:
        assert {dict(m.headers).get("schema") for m in c} == {b"edge.downsample.mean"}
    # bed-1: minute 0 holds readings 0..5 (0 s..50 s), minute 1 holds 6..8 (60 s..80 s)
    assert minutes[("bed-1", T0)]["temperature_c"] == round(sum(BED1_C[:6]) / 6, 3)
    assert minutes[("bed-1", T0)]["count"] == 6
    assert minutes[("bed-1", T0 + 60_000)]["temperature_c"] == round(sum(BED1_C[6:]) / 3, 3)
    bed2_c = [round((f - 32) * 5 / 9, 3) for f in BED2_F]
    assert minutes[("bed-2", T0)]["temperature_c"] == pytest.approx(sum(bed2_c) / 4, abs=1e-3)
    assert minutes[("bed-2", T0)]["window_end_ms"] == T0 + 60_000
    assert set(minutes) == {("bed-1", T0), ("bed-1", T0 + 60_000), ("bed-2", T0)}  # 10-min one open
    # the raw topic is untouched
    assert len(read(cfg, "temperature")) == len(BED1_C) + len(BED2_F) + 2


def test_hysteresis_state_survives_a_restart_between_batches(log):
    cfg, producer = log
    rows = feed_vitals()
    first = [r for r in rows if r[1] <= T0 + 20_000]      # up to bed-1's raise
    for device, ts, value in first:
        send(producer, "temperature", device, ts, value)
    producer.flush()
    assert run(cfg, VITALS) == len(first)
    for device, ts, value in rows[len(first):]:
        send(producer, "temperature", device, ts, value)
    producer.flush()
    assert run(cfg, VITALS) == len(rows) - len(first)     # a new runner, a new topology object
    bed1 = [(v["state"], v["value"]) for k, v, _ in read(cfg, "alerts") if k == "bed-1"]
    assert bed1 == [("raise", 38.1), ("clear", 37.4)]    # not raised twice


def test_gps_track_and_geofence_through_the_engine(log):
    cfg, producer = log
    text = HEAD + textwrap.dedent('''
        [[streams]]
        name = "fleet"
        source = "gps"
        sink = "gps.track"
        [[streams.steps]]
        builtin = "gps_track"
        [[streams.steps]]
        builtin = "geofence"
        fences = [{ name = "depot", lat = 52.0, lon = 13.0, radius_m = 100.0 }]
    ''')
    m = 180 / (math.pi * 6_371_008.8)                      # degrees of latitude per metre
    path = [-300, -150, -50, 50, 150, 300]                  # metres north of the depot centre
    for i, d in enumerate(path):
        send(producer, "gps", "car-1", T0 + 10_000 * i, {"lat": 52.0 + d * m, "lon": 13.0})
    producer.flush()
    run(cfg, text)
    track = [v for _, v, _ in read(cfg, "gps.track")]
    assert [t["track"] for t in track] == ["first", "ok", "ok", "ok", "ok", "ok"]
    assert track[-1]["distance_total_m"] == pytest.approx(600, abs=0.01)
    assert track[1]["speed_derived_mps"] == pytest.approx(15, abs=0.01)
    fence = [(v["event"], v["fence"], ts) for _, v, ts in read(cfg, "alerts.geofence")]
    assert fence == [("enter", "depot", T0 + 20_000), ("leave", "depot", T0 + 40_000)]


def test_records_a_builtin_cannot_use_pass_over_without_stalling_or_dead_letters(log):
    cfg, producer = log
    text = HEAD + textwrap.dedent('''
        [[streams]]
        name = "bp"
        source = "temperature"
        [[streams.steps]]
        builtin = "fever"
    ''')
    send(producer, "temperature", "bed-1", T0, {"temperature_c": 38.5})
    producer.send("temperature", b"\xff not json", key=b"bed-1", timestamp_ms=T0 + 1)
    send(producer, "temperature", "bed-1", T0 + 2, {"temperature_c": 37.0})
    producer.flush()
    assert run(cfg, text) == 3
    assert [v["state"] for _, v, _ in read(cfg, "alerts")] == ["raise", "clear"]
    with KafkaConsumer("dead-letters", log_config=cfg, auto_offset_reset="earliest",
                       consumer_timeout_ms=300) as c:
        assert list(c) == []
