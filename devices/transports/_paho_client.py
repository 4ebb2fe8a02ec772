"""paho's client with a cheaper receive path and PUBACKs sent many to a packet.

Profiling the appliance at 10,000 QoS 1 messages/s showed paho's network thread at about
a third of the process's CPU, most of it per-message overhead rather than work:

* ``_packet_read`` asks the socket for one byte (the command), then one byte at a time
  (the remaining length), then the rest: three ``recv`` calls per message, and ``_loop``
  handles one packet per ``select``. Here ``_sock_recv`` serves those reads from one
  64 KiB ``recv`` and ``loop_read`` handles every complete packet already read before
  going back to ``select``.
* ``_handle_publish`` builds an ``MQTTMessage`` (with an ``MQTTMessageInfo`` and a
  condition variable) and walks the topic matcher of ``message_callback_add`` for every
  message. For MQTT 3.1.1 QoS 0 and 1 the packet is parsed here and handed straight to
  ``on_publish_fast``; MQTT 5 (properties, topic aliases) and QoS 2 take paho's own path.
* ``ack()`` queues one 4-byte PUBACK per call and wakes paho's thread through its socket
  pair each time; ``send_pubacks`` queues many as one write.

Nothing else changes: paho still owns connecting, keepalive, reconnecting and the
session, and a PUBACK still goes out only when the caller asks for it.

These hooks use paho's private methods (checked against paho-mqtt 2.1 and 2.2);
``FAST_PATH`` is False when a paho release lacks them, and the transport then uses the
plain ``paho.Client``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.exception import MalformedPacket

READ_SIZE = 65536  # bytes asked of the socket at once; a QoS 1 reading is ~150

FAST_PATH = all(hasattr(paho.Client, name) for name in (
    "_sock_recv", "_sock_close", "_packet_read", "_packet_queue", "_handle_publish", "_loop_rc_handle"))

_PUBACK = struct.Struct("!BBH")
_PUBACK_COMMAND = int(paho.PUBACK)
_MQTT_ERR_SUCCESS = paho.MQTT_ERR_SUCCESS
_MQTT_ERR_AGAIN = paho.MQTT_ERR_AGAIN

PublishCallback = Callable[[str, bytes, int, bool, bool, int], None]
"""``(topic, payload, qos, retain, dup, mid)`` of one PUBLISH, called in paho's thread."""


class BufferedClient(paho.Client):
    """``paho.Client`` with buffered reads, a direct PUBLISH path and batched PUBACKs.

    Set ``on_publish_fast`` to receive MQTT 3.1.1 QoS 0/1 messages without an
    ``MQTTMessage``; ``on_message`` still gets the rest (MQTT 5, QoS 2).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""  # bytes read from the socket and not yet handed to paho's parser
        self._rpos = 0
        self.on_publish_fast: PublishCallback | None = None

    # -- receiving ------------------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            buf = super()._sock_recv(READ_SIZE)  # raises BlockingIOError when nothing is there
            if not buf:
                return buf  # the broker closed the connection: paho handles b""
            pos = 0
        end = pos + bufsize
        if end >= len(buf):
            self._rbuf, self._rpos = b"", 0
            return buf[pos:] if pos else buf
        self._rbuf, self._rpos = buf, end
        return buf[pos:end]

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # paho handles one packet per select(); the rest of what one recv brought is
        # handled now (select would not see it: it is no longer in the socket).
        while rc == _MQTT_ERR_SUCCESS and self._rpos < len(self._rbuf) and self._sock is not None:
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == _MQTT_ERR_AGAIN:  # a packet's tail is still on the way
                return _MQTT_ERR_SUCCESS
        return rc

    def _drop_buffer(self) -> None:
        self._rbuf, self._rpos = b"", 0

    def _sock_close(self) -> None:
        # Bytes of a dead connection must never be parsed as the start of the next one.
        self._drop_buffer()
        super()._sock_close()

    def reconnect(self) -> paho.MQTTErrorCode:
        self._drop_buffer()
        return super().reconnect()

    def _handle_publish(self) -> paho.MQTTErrorCode:
        callback = self.on_publish_fast
        command = self._in_packet["command"]
        qos = (command & 0x06) >> 1
        if callback is None or qos == 2 or self._protocol != paho.MQTTv311:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        if len(packet) < 2:
            raise MalformedPacket("PUBLISH shorter than its topic length")
        start = 2 + ((packet[0] << 8) | packet[1])
        pos = start + 2 if qos else start
        if len(packet) < pos:
            raise MalformedPacket("PUBLISH shorter than its topic and packet id")
        try:
            topic = packet[2:start].decode()
        except UnicodeDecodeError:
            return super()._handle_publish()  # paho's own handling of a bad topic
        mid = ((packet[start] << 8) | packet[start + 1]) if qos else 0
        # For QoS 1 with manual_ack paho sends nothing here either: ack() does, later.
        with self._in_callback_mutex:
            try:
                callback(topic, bytes(packet[pos:]), qos, bool(command & 0x01), bool(command & 0x08),
                         mid)
            except Exception as err:
                self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise
        return _MQTT_ERR_SUCCESS

    # -- acknowledging ------------------------------------------------------------------

    def send_pubacks(self, mids: Iterable[int]) -> paho.MQTTErrorCode:
        """Queue a QoS 1 PUBACK for each packet id, as one write; callable from any thread.

        ``manual_ack`` must be on. The same bytes as ``ack(mid, 1)`` once per mid (MQTT 5
        allows the reason code to be left out when it is Success).
        """
        pack = _PUBACK.pack
        packet = b"".join([pack(_PUBACK_COMMAND, 2, mid) for mid in mids])
        if not packet:
            return _MQTT_ERR_SUCCESS
        return self._packet_queue(paho.PUBACK, packet, 0, 1)
