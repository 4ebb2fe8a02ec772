"""Issue #10 item 2 through the real service: poison messages never stall their device.

Real Mosquitto, the real `edge run`: per device (the Tasmota and the OwnTracks
conventions) 35 good messages with 3 poison ones among them, published QoS 1. The
poison ones decode but cannot be events (a lone surrogate in a key, a time beyond
int64 or before 2000, -300 °C): before the fix they reached the log's group commit,
which rolled back with its good neighbours, and the device restarted into the
broker's redelivery of the same message for ever. Now: every good message is
stored, once; every poison one is in dead-letters with its reason; no device
restarted; /health says the log is well.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.edge._helpers import health, read_topic, start_edge, stop_edge, wait_for, write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(120)]

GOOD = 35
NOW_S = int(time.time())

TASMOTA_POISON = [
    rb'{"DS18B20":{"Id":"\ud800","Temperature":21.5}}',  # the key cannot be encoded
    rb'{"\ud800":{"Temperature":-127}}',  # ... nor its dead letter's reason, once
    b'{"DS18B20":{"Id":"28-00000bad","Temperature":-300}}',  # colder than absolute zero
]
OWNTRACKS_POISON = [
    b'{"_type":"location","lat":52.5,"lon":13.4,"tst":1e17}',  # beyond int64 ms
    b'{"_type":"location","lat":52.5,"lon":13.4,"tst":1e20}',
    b'{"_type":"location","lat":52.5,"lon":13.4,"tst":600000000}',  # 1989: before 2000
]


def devices(port: int) -> str:
    return "".join(
        f'[[devices]]\nname = "{name}"\nkind = "{kind}"\ntransport = "mqtt"\n'
        f'host = "127.0.0.1"\nport = {port}\ncodec = "{codec}"\nqos = 1\n'
        for name, kind, codec in (("rooms", "temperature", "tasmota"), ("phones", "gps", "owntracks")))


def messages() -> list[tuple[str, bytes]]:
    """Good and poison messages of both devices, interleaved: a poison one every 12 good."""
    out: list[tuple[str, bytes]] = []
    for i in range(GOOD):
        out.append(("tele/room/SENSOR",
                    json.dumps({"DS18B20": {"Id": "28-0000000001", "Temperature": 20 + i / 10}}).encode()))
        out.append(("owntracks/ann/phone",
                    json.dumps({"_type": "location", "lat": 52.5, "lon": 13.4 + i / 1000,
                                "tst": NOW_S - GOOD + i}).encode()))
        if i % 12 == 5:
            out.append(("tele/room/SENSOR", TASMOTA_POISON[i // 12]))
            out.append(("owntracks/ann/phone", OWNTRACKS_POISON[i // 12]))
    return out


def publish(port: int, batch: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="poison-sender")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for info in [client.publish(topic, payload, qos=1) for topic, payload in batch]:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def settled(port: int) -> dict | None:
    h = health(port)
    if not h:
        return None
    rooms, phones = h["devices"]["rooms"], h["devices"]["phones"]
    done = all(d["readings"] == GOOD and d["dead_letters"] == 3 for d in (rooms, phones))
    return h if done else None


def test_poison_messages_are_dead_lettered_and_never_stall_their_device(tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    config, port = write_config(tmp_path, devices(mosquitto.port))
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: (h := health(port)) and all(d["connected"] for d in h["devices"].values()),
                 30, "MQTT devices connected")
        publish(mosquitto.port, messages())
        h = wait_for(lambda: settled(port), 30, "35 readings and 3 dead letters per device")
        # Nothing more comes: no redelivery of a poison message, no restart.
        time.sleep(1.0)
        h = health(port)
    finally:
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
    assert h is not None and h["log"]["ok"] is True, h
    for name in ("rooms", "phones"):
        d = h["devices"][name]
        assert (d["readings"], d["dead_letters"], d["restarts"]) == (GOOD, 3, 0), (name, d)

    data = tmp_path / "data"
    temps = [json.loads(r.value)["temperature_c"] for r in read_topic(data, "temperature")]
    assert sorted(temps) == [20 + i / 10 for i in range(GOOD)]  # every good one, once
    fixes = [json.loads(r.value)["lon"] for r in read_topic(data, "gps")]
    assert sorted(fixes) == [13.4 + i / 1000 for i in range(GOOD)]

    letters = read_topic(data, "dead-letters")
    got = sorted((dict(r.headers)["device"].decode(), r.value) for r in letters)
    assert got == sorted([("rooms", p) for p in TASMOTA_POISON] + [("phones", p) for p in OWNTRACKS_POISON])
    reasons = {r.value: dict(r.headers)["reason"].decode() for r in letters}
    assert "lone UTF-16 surrogate" in reasons[TASMOTA_POISON[0]]
    assert "lone UTF-16 surrogate" in reasons[TASMOTA_POISON[1]]
    assert "temperature_c = -300.0 is outside -273.15..2000" in reasons[TASMOTA_POISON[2]]
    assert "tst 1e+17 s since 1970 is not a time" in reasons[OWNTRACKS_POISON[0]]
    assert "tst 1e+20 s since 1970 is not a time" in reasons[OWNTRACKS_POISON[1]]
    assert "is before 2000-01-01" in reasons[OWNTRACKS_POISON[2]]
