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
