"""paho's client with a cheaper receive path and PUBACKs sent many to a packet.

Profiling the appliance at 10,000 QoS 1 messages/s showed paho's network thread at about
a third of the process's CPU, most of it per-message overhead rather than work:

* ``_packet_read`` asks the socket for one byte (the command), then one byte at a time
  (the remaining length), then the rest: three ``recv`` calls per message, a dict reset
  and a lock per packet, and ``_loop`` handles one packet per ``select``. Here
  ``loop_read`` makes one ``recv`` of up to 64 KiB and splits every complete packet out of
  it; the start of a packet whose rest is still on the way waits for the next read.
  Packets other than PUBLISH go to paho's own handlers, set up as paho's reader leaves them.
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

FAST_PATH = hasattr(paho, "time_func") and all(hasattr(paho.Client, name) for name in (
    "_sock_recv", "_sock_close", "_packet_handle", "_packet_queue", "_loop_rc_handle", "_easy_log"))

_PUBACK = struct.Struct("!BBH")
_PUBACK_COMMAND = int(paho.PUBACK)
_MQTT_ERR_SUCCESS = paho.MQTT_ERR_SUCCESS

PublishCallback = Callable[[str, bytes, int, bool, bool, int], None]
"""``(topic, payload, qos, retain, dup, mid)`` of one PUBLISH, called in paho's thread."""


class Client(paho.Client):
    """``paho.Client`` that keeps why its last connect attempt failed.

    paho's network thread catches the ``OSError`` of a failed connect (refused, DNS, a
    TLS certificate that does not verify) and only retries; ``on_connect_fail`` gets no
    exception. ``connect_error`` holds it for that callback.
    """

    connect_error: BaseException | None = None  # also a read error (BufferedClient)

    def reconnect(self) -> paho.MQTTErrorCode:
        try:
            rc = super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise
        self.connect_error = None
        return rc


class BufferedClient(Client):
    """``paho.Client`` with buffered reads, a direct PUBLISH path and batched PUBACKs.

    Set ``on_publish_fast`` to receive MQTT 3.1.1 QoS 0/1 messages without an
    ``MQTTMessage``; ``on_message`` still gets the rest (MQTT 5, QoS 2).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = bytearray()  # the start of a packet whose rest has not arrived yet
        self.on_publish_fast: PublishCallback | None = None

    # -- receiving ------------------------------------------------------------------------

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        # paho's loop_read reads one packet per select() with three or more recv calls;
        # this one reads what the socket has (up to READ_SIZE) and handles every complete
        # packet in it. A packet's head or tail that has not arrived yet waits in _rbuf.
        if self._sock is None:
            return paho.MQTT_ERR_NO_CONN
        try:
            data = self._sock_recv(READ_SIZE)  # paho's: an SSL "want read" is BlockingIOError
        except BlockingIOError:
            return _MQTT_ERR_SUCCESS
        except OSError as err:
            # Kept: a TLS alert after the handshake (the broker wanted a client
            # certificate) arrives here, on the first read, not in reconnect().
            self.connect_error = err
            self._easy_log(paho.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return self._loop_rc_handle(paho.MQTT_ERR_CONN_LOST)
        if not data:
            return self._loop_rc_handle(paho.MQTT_ERR_CONN_LOST)
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        if self._rbuf:
            self._rbuf += data
            data = self._rbuf
        rc = self._handle_packets(data)
        if rc > 0:
            return self._loop_rc_handle(rc)
        return _MQTT_ERR_SUCCESS

    def _handle_packets(self, buf: bytes | bytearray) -> int:
        """Handle every complete packet in `buf`; keep the incomplete rest in _rbuf."""
        pos, size = 0, len(buf)
        rc = 0
        while size - pos >= 2:
            command = buf[pos]
            # Remaining length: 1 to 4 bytes, 7 bits each, low bits first.
            length, shift, i, complete = 0, 0, pos + 1, False
            while i < size:
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    self._drop_buffer()
                    return paho.MQTT_ERR_PROTOCOL  # more than 4 length bytes
            if not complete or i + length > size:
                break  # the packet has not fully arrived yet
            end = i + length
            if command & 0xF0 == paho.PUBLISH:
                rc = self._publish(command, buf[i:end])
            else:
                rc = self._handle_one(command, length, buf[i:end])
            pos = end
            if rc > 0 or self._sock is None:
                self._drop_buffer()
                return rc
        self._rbuf = bytearray(buf[pos:]) if pos < size else bytearray()
        return rc

    def _handle_one(self, command: int, length: int, packet: bytes | bytearray) -> int:
        # paho's handlers read the packet from _in_packet, as its _packet_read leaves it.
        self._in_packet = {"command": command, "have_remaining": 1, "remaining_count": [],
                           "remaining_mult": 1, "remaining_length": length,
                           "packet": bytearray(packet), "to_process": 0, "pos": 0}
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = paho.MQTT_ERR_PROTOCOL
        self._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [],
                           "remaining_mult": 1, "remaining_length": 0, "packet": bytearray(b""),
                           "to_process": 0, "pos": 0}
        return rc

    def _drop_buffer(self) -> None:
        self._rbuf = bytearray()

    def _sock_close(self) -> None:
        # Bytes of a dead connection must never be parsed as the start of the next one.
        self._drop_buffer()
        super()._sock_close()

    def reconnect(self) -> paho.MQTTErrorCode:
        self._drop_buffer()
        return super().reconnect()

    def _publish(self, command: int, packet: bytes | bytearray) -> int:
        callback = self.on_publish_fast
        qos = (command & 0x06) >> 1
        if callback is None or qos == 2 or self._protocol != paho.MQTTv311:
            return self._handle_one(command, len(packet), packet)  # paho's own path
        start = 2 + ((packet[0] << 8) | packet[1]) if len(packet) >= 2 else 2
        pos = start + 2 if qos else start
        if len(packet) < pos:
            self._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: PUBLISH too short")
            return paho.MQTT_ERR_PROTOCOL
        try:
            topic = bytes(packet[2:start]).decode()
        except UnicodeDecodeError:
            return self._handle_one(command, len(packet), packet)  # paho's handling of a bad topic
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
