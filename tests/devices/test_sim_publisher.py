"""edge-sim's MQTT publisher against a real Mosquitto: a slow broker slows it down, never kills it."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from devices.simulator._outputs import MqttPublisher

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]


def test_publish_waits_for_room_while_the_broker_stalls(mosquitto):
    pub = MqttPublisher(mosquitto.host, mosquitto.port, client_id="sim-pending", max_pending=20)
    try:
        for i in range(5):
            pub.publish("sim/t", b"warm", tag=("warm", i))
        deadline = time.monotonic() + 10
        while pub.unacked() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pub.unacked() == 0
        mosquitto.proc.send_signal(signal.SIGSTOP)  # acknowledges nothing until SIGCONT
        try:
            for i in range(20):
                pub.publish("sim/t", b"x", tag=i)
            assert pub.unacked() == 20 and pub.waits == 0
            extra = threading.Thread(target=pub.publish, args=("sim/t", b"y", 20))
            extra.start()
            extra.join(0.5)
            assert extra.is_alive(), "the 21st publish should wait for room, not queue or fail"
        finally:
            mosquitto.proc.send_signal(signal.SIGCONT)
        extra.join(10)
        assert not extra.is_alive() and pub.waits == 1
    finally:
        pub.close(timeout=10)
    acked = [t for t in pub.acked() if not isinstance(t, tuple)]
    assert sorted(acked) == list(range(21))


def test_readings_reach_the_broker_in_order_across_a_broker_restart(mosquitto):
    """paho resends its unacknowledged messages only after on_connect; a message published
    in that gap used to overtake them (seen by the chaos soak as a cuff's readings out of
    order). The publisher now waits for the resent backlog first."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[int] = []
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="sim-order-sub", clean_session=False)
    sub.on_connect = lambda c, *a: c.subscribe("sim/order", qos=1)
    sub.on_message = lambda c, u, m: got.append(int(m.payload))
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    pub = MqttPublisher(mosquitto.host, mosquitto.port, client_id="sim-order-pub")
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set() and i < 3000:
            pub.publish("sim/order", str(i).encode(), tag=i)
            i += 1
            time.sleep(0.002)

    producer = threading.Thread(target=produce)
    try:
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            sub.publish("sim/order", b"-1", qos=1)   # until the subscription is in place
            time.sleep(0.1)
        producer.start()
        time.sleep(0.5)
        mosquitto.restart()
        time.sleep(1.0)
        stop.set()
        producer.join(30)
        pub.close(timeout=20)
        deadline = time.monotonic() + 20
        while (not got or max(got) < len(pub._tags) - 1) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        sub.loop_stop()
        sub.disconnect()
    seq = [n for n in got if n >= 0]
    firsts = list(dict.fromkeys(seq))   # a QoS 1 redelivery may repeat; order is what counts
    assert firsts == sorted(firsts), [
        (a, b) for a, b in zip(firsts, firsts[1:], strict=False) if b < a][:5]
    assert pub.waits >= 1 and len(firsts) > 100
