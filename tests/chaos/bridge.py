"""The setup many people build instead of an edge log: an MQTT → Kafka bridge script.

A paho subscriber forwards every message straight to Kafka with kafka-python's plain
producer, no local log: the MQTT topic becomes the record key, the payload the value,
the first topic level picks the Kafka topic. It is written with reasonable care, as a
careful engineer would: a persistent MQTT session (fixed client id, clean_session off,
QoS 1), so Mosquitto queues messages while the bridge is down; ``acks=all`` with
retries; SIGTERM flushes the producer before exiting. What it cannot do without a log
of its own: paho acknowledges a message to Mosquitto as soon as the callback returns,
while the record still sits in the producer's memory, so a crash loses it; a retried
send after a network fault can land twice.

    python tests/chaos/bridge.py --mqtt-port 1883 --bootstrap-servers kafka:9092 \\
        --map owntracks=bridge.gps --map ble=bridge.temperature --map bp=bridge.blood_pressure
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

import paho.mqtt.client as mqtt
from kafka import KafkaProducer
from paho.mqtt.enums import CallbackAPIVersion


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGTERM or SIGINT; exit 0 after flushing."""
    p = argparse.ArgumentParser(prog="bridge", description=__doc__.splitlines()[0])
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--client-id", default="mqtt-kafka-bridge")
    p.add_argument("--bootstrap-servers", required=True)
    p.add_argument(
        "--map",
        action="append",
        required=True,
        metavar="LEVEL=TOPIC",
        help="MQTT messages under LEVEL/# go to Kafka topic TOPIC",
    )
    args = p.parse_args(argv)
    routes = dict(item.split("=", 1) for item in args.map)

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap_servers,
        acks="all",
        retries=5,
        linger_ms=20,
        request_timeout_ms=10000,
    )
    stop = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe([(f"{level}/#", 1) for level in routes])

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = routes.get(msg.topic.split("/", 1)[0])
        if topic is not None:
            producer.send(topic, key=msg.topic.encode(), value=msg.payload)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, clean_session=False)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(args.mqtt_host, args.mqtt_port)
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    producer.flush(timeout=10)
    producer.close(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
