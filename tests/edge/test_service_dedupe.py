"""Exactly-once intake over a real Mosquitto into the real service: copies are acked, not written.

1. Redelivery: the service is SIGKILLed between a reading's durable write and its PUBACK
   (the child below kills itself inside the acknowledgement of the 10th message, so the
   crash lands exactly there). Mosquitto resends what it never saw acknowledged with the
   DUP flag on the resumed session; the restarted service finds those deliveries in its
   log and acknowledges them without writing: every message is in the log exactly once.
2. Content: a publisher resending a reading (a new message, no DUP flag) is dropped for a
   device with ``dedupe_window``, counted in ``edge_events_deduplicated_total``; readings
   that share a device time but differ in value are both kept; a device without the key
   keeps both copies (it is opt-in).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from tests.devices.test_mqtt import publish
from tests.edge._helpers import health, read_topic, start_edge, stop_edge, wait_for, write_config
from tests.fixtures.mosquitto import Mosquitto

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]

# The real `edge run`, but the process SIGKILLs itself when it is about to PUBACK the
# KILL_AT-th message: that message (and those behind it in flight) is durable, not acked.
DIE_AT_ACK = textwrap.dedent("""
    import os, signal, sys
    from devices.transports.mqtt import MqttMessage

    kill_at, acks = int(sys.argv[1]), 0
    real_ack = MqttMessage.ack_nowait

    def ack_or_die(self):
        global acks
        acks += 1
        if acks >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real_ack(self)

    MqttMessage.ack_nowait = ack_or_die
    from edge.cli import main
    sys.exit(main(["run", "--config", sys.argv[2]]))
""")


def mqtt_device(name: str, port: int, codec: str, filters: str, topic: str, extra: str = "") -> str:
    kind = "temperature" if codec == "zigbee2mqtt" else "blood_pressure"
    return (f'[[devices]]\nname = "{name}"\nkind = "{kind}"\n'
            f'transport = "mqtt"\nhost = "127.0.0.1"\nport = {port}\ncodec = "{codec}"\n'
            f'filters = ["{filters}"]\nqos = 1\ntopic = "{topic}"\n{extra}')


def metric(port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return 0.0


def waiting(pred, timeout: float, what: str, state, edge_log: Path) -> None:  # type: ignore[no-untyped-def]
    """wait_for, and on a timeout say what was seen and how the service's log ends."""
    try:
        wait_for(pred, timeout, what)
    except AssertionError as exc:
        tail = "\n".join(edge_log.read_text(errors="replace").splitlines()[-40:])
        raise AssertionError(f"{exc}; seen: {state()}\n--- edge log tail ---\n{tail}") from None


def device_health(port: int, name: str) -> dict:
    h = health(port)
    return h["devices"][name] if h else {}


def test_a_redelivery_after_sigkill_between_write_and_puback_is_written_once(
        tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    config, port = write_config(tmp_path, mqtt_device("rooms", mosquitto.port, "zigbee2mqtt",
                                                      "zigbee2mqtt/#", "temperature"))
    data, edge_log = tmp_path / "data", tmp_path / "edge.log"
    script = tmp_path / "die_at_ack.py"
    script.write_text(DIE_AT_ACK)
    with edge_log.open("ab") as err:
        child = subprocess.Popen([sys.executable, str(script), "10", str(config)], cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: device_health(port, "rooms").get("connected"), 30, "subscribed")
        messages = [(f"zigbee2mqtt/room-{i % 3}", json.dumps({"temperature": 20 + i / 100}).encode())
                    for i in range(60)]
        publish(mosquitto, messages)
        assert child.wait(30) == -9, "the child should have died inside its 10th PUBACK"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    first_run = len(read_topic(data, "temperature"))
    assert first_run >= 10, "the 10th message was durable before its PUBACK"

    edge = start_edge(config, edge_log)
    try:
        def state() -> str:
            return (f"first run {first_run}, records {len(read_topic(data, 'temperature'))}, "
                    f"health {device_health(port, 'rooms')}")

        waiting(lambda: len(read_topic(data, "temperature")) >= 60, 60, "the rest after restart",
                state, edge_log)
        # Mosquitto resends the unacknowledged ones first, on the resumed session.
        waiting(lambda: device_health(port, "rooms").get("deduplicated", 0) >= first_run - 9,
                30, "the DUP copies of what was durable but never acked", state, edge_log)
        records = read_topic(data, "temperature")
        deduplicated = device_health(port, "rooms")["deduplicated"]
        counted = metric(port, "edge_events_deduplicated_total", device="rooms",
                         reason="redelivery")
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    values = sorted(json.loads(r.value)["temperature_c"] for r in records)
    assert values == sorted(20 + i / 100 for i in range(60)), "each message exactly once"
    assert len(records) == 60
    assert first_run - 9 <= deduplicated <= first_run, (first_run, deduplicated)
    assert counted == deduplicated


def bp(device: str, t_ms: int, systolic: int) -> tuple[str, bytes]:
    return (f"bp/{device}", json.dumps({"systolic": systolic, "diastolic": 80, "pulse": 70,
                                        "time": t_ms}).encode())


def test_content_dedupe_drops_a_resent_reading_only_where_configured(
        tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    devices = (mqtt_device("cuffs", mosquitto.port, "bp.json", "bp/ward-a/#", "bp-dedupe",
                           "codec_options = { prefix = \"bp/ward-a\" }\ndedupe_window = 60\n")
               + mqtt_device("cuffs-plain", mosquitto.port, "bp.json", "bp/ward-b/#", "bp-plain",
                             "codec_options = { prefix = \"bp/ward-b\" }\n"))
    config, port = write_config(tmp_path, devices)
    data, edge_log = tmp_path / "data", tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: device_health(port, "cuffs").get("connected")
                 and device_health(port, "cuffs-plain").get("connected"), 30, "subscribed")
        t = 1_780_000_000_123
        for ward in ("ward-a", "ward-b"):
            # The same reading twice (a publisher's resend: a new message, no DUP flag), then
            # a different reading with the same device time, then a second device at that time.
            publish(mosquitto, [bp(f"{ward}/bed-1", t, 120)])
            publish(mosquitto, [bp(f"{ward}/bed-1", t, 120)])
            publish(mosquitto, [bp(f"{ward}/bed-1", t, 121), bp(f"{ward}/bed-2", t, 120)])
        def state() -> str:
            return (f"plain {len(read_topic(data, 'bp-plain'))}, deduped "
                    f"{len(read_topic(data, 'bp-dedupe'))}, health {health(port)}")

        waiting(lambda: len(read_topic(data, "bp-plain")) >= 4, 30, "the plain device's readings",
                state, edge_log)
        waiting(lambda: len(read_topic(data, "bp-dedupe")) >= 3
                and device_health(port, "cuffs").get("readings", 0)
                + device_health(port, "cuffs").get("deduplicated", 0) >= 4, 30, "all four handled",
                state, edge_log)
        deduped, plain = read_topic(data, "bp-dedupe"), read_topic(data, "bp-plain")
        counted = metric(port, "edge_events_deduplicated_total", device="cuffs", reason="content")
        counted_plain = metric(port, "edge_events_deduplicated_total", device="cuffs-plain",
                               reason="content")
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    # A clean stop confirms the last acks at once (two closes used to race: a 2 s wait, a warning).
    assert "did not confirm" not in edge_log.read_text()
    assert sorted(json.loads(r.value)["systolic_mmhg"] for r in deduped) == [120, 120, 121], deduped
    assert counted == 1
    assert sorted(json.loads(r.value)["systolic_mmhg"] for r in plain) == [120, 120, 120, 121], "opt-in: all kept"
    assert counted_plain == 0


    # Restarted, the service reads the window back from its log: a resend is still dropped.
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: device_health(port, "cuffs").get("connected"), 30, "subscribed again")
        publish(mosquitto, [bp("ward-a/bed-1", t, 120), bp("ward-a/bed-1", t + 1, 120)])
        waiting(lambda: device_health(port, "cuffs").get("readings", 0) >= 1, 30,
                "the new reading after the restart", state, edge_log)
        after = read_topic(data, "bp-dedupe")
        counted = metric(port, "edge_events_deduplicated_total", device="cuffs", reason="content")
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    assert sorted((r.timestamp, json.loads(r.value)["systolic_mmhg"]) for r in after) == [
        (t, 120), (t, 120), (t, 121), (t + 1, 120)], after
    assert counted == 1


@pytest.fixture
def forgetful(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A Mosquitto without persistence (a restart loses sessions), logging every packet."""
    broker = Mosquitto(tmp_path / "mosquitto", persistence=False, debug=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_packet_ids_reused_after_a_broker_restart_are_new_messages(
        tmp_path: Path, forgetful) -> None:  # type: ignore[no-untyped-def]
    # Issue #10 item 1, its exact sequence: 30 readings on A-i, Mosquitto (no persistence)
    # restarted, the service stopped, 10 of the same payload on B-i reach its socket, the
    # service SIGKILLed and started again. Mosquitto resends B-0..B-9 with DUP set and the
    # packet ids 1..10 that A-0..A-9 had before the restart: they are new messages.
    config, port = write_config(tmp_path, mqtt_device("rooms", forgetful.port, "zigbee2mqtt",
                                                      "zigbee2mqtt/#", "temperature"))
    data, edge_log, client = tmp_path / "data", tmp_path / "edge.log", "edge-test-edge-rooms"
    payload = [json.dumps({"temperature": 21.5}).encode()]

    def mosquitto_says(text: str, times: int = 1) -> bool:
        return forgetful.log_text().count(text) >= times

    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: device_health(port, "rooms").get("connected"), 30, "subscribed")
        publish(forgetful, [(f"zigbee2mqtt/A-{i}", payload[0]) for i in range(30)])
        wait_for(lambda: device_health(port, "rooms").get("readings", 0) >= 30, 30, "A written")
        forgetful.restart()
        wait_for(lambda: mosquitto_says(f"Sending SUBACK to {client}", 2), 30, "subscribed again")
        edge.send_signal(signal.SIGSTOP)
        publish(forgetful, [(f"zigbee2mqtt/B-{i}", payload[0]) for i in range(10)])
        wait_for(lambda: mosquitto_says(f"Sending PUBLISH to {client} (d0, q1, r0, m10, "
                                        "'zigbee2mqtt/B-9'"), 30, "B sent to the stopped service")
    finally:
        edge.kill()
        edge.wait()
    edge = start_edge(config, edge_log)
    try:
        def state() -> str:
            return f"records {len(read_topic(data, 'temperature'))}, health {device_health(port, 'rooms')}"

        # A-9 had packet id 10 too, and was acknowledged before the restart: the second one.
        waiting(lambda: mosquitto_says(f"Received PUBACK from {client} (Mid: 10,", 2)
                and device_health(port, "rooms"), 30, "B-9's redelivery acknowledged", state,
                edge_log)
        records = read_topic(data, "temperature")
        deduplicated = device_health(port, "rooms")["deduplicated"]
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    assert mosquitto_says(f"Sending PUBLISH to {client} (d1, q1, r0, m1, 'zigbee2mqtt/B-0'"), \
        "the test needs B-0 redelivered (DUP) with A-0's packet id"
    assert sorted(r.key.decode() for r in records) == sorted(
        [f"A-{i}" for i in range(30)] + [f"B-{i}" for i in range(10)]), "each exactly once"
    assert deduplicated == 0
