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

Every private name of paho these hooks need is used through ``_paho_private``, whose
probe checks their behaviour on a real client before the first transport uses them
(``fast_path_problem``). When it fails, or ``EDGE_MQTT_FAST_PATH=0`` is set, the
transport uses ``Client`` (plain paho): the same guarantees, more CPU per message.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho

from devices.transports import _paho_private as _private
from devices.transports._limits import DEFAULT_MAX_PAYLOAD

log = logging.getLogger(__name__)

READ_SIZE = 65536  # bytes asked of the socket at once; a QoS 1 reading is ~150

#: ``0`` turns the fast path off (plain paho), e.g. if a paho upgrade misbehaves in a way
#: the probe does not catch; anything else, or unset, lets the probe decide.
ENV_FAST_PATH = "EDGE_MQTT_FAST_PATH"

_PUBACK = struct.Struct("!BBH")
_PUBACK_COMMAND = int(paho.PUBACK)
_MQTT_ERR_SUCCESS = paho.MQTT_ERR_SUCCESS

PublishCallback = Callable[[str, bytes, int, bool, bool, int], None]
"""``(topic, payload, qos, retain, dup, mid)`` of one PUBLISH, called in paho's thread."""

OversizeCallback = Callable[[str, bytes, int, int, bool, bool, int], None]
"""``(topic, head, payload_size, qos, retain, dup, mid)`` of a PUBLISH over max_payload:
``head`` is the payload's first ``OVERSIZE_HEAD`` bytes. Called in paho's thread."""

OVERSIZE_HEAD = 1024  # bytes of an oversize payload kept, for its dead letter
MAX_CONTROL_PACKET = 1024 * 1024  # any packet but PUBLISH: a SUBACK, a CONNACK are bytes


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


@functools.cache
def fast_path_problem() -> str | None:
    """Why ``BufferedClient`` cannot be used with this paho (its probe, run once per
    process), or None when it can."""
    return _private.probe()


def use_fast_path() -> bool:
    """Whether transports should make a ``BufferedClient`` (else a ``Client``); the first
    call that says no logs why, once."""
    if os.environ.get(ENV_FAST_PATH, "").strip() == "0":
        _say_once(f"{ENV_FAST_PATH}=0")
        return False
    problem = fast_path_problem()
    if problem is not None:
        _say_once(f"paho-mqtt {paho_version()} failed the fast path's probe: {problem}")
        return False
    return True


@functools.cache
def _say_once(why: str) -> None:
    log.warning("MQTT fast path off (%s): using plain paho, the same guarantees with more CPU "
                "per message", why)


def paho_version() -> str:
    """The installed paho-mqtt's version, for messages."""
    import paho.mqtt

    return str(getattr(paho.mqtt, "__version__", "?"))


class BufferedClient(_private.SocketCloseHook, Client):
    """``paho.Client`` with buffered reads, a direct PUBLISH path and batched PUBACKs.

    Set ``on_publish_fast`` to receive MQTT 3.1.1 QoS 0/1 messages without an
    ``MQTTMessage``; ``on_message`` still gets the rest (MQTT 5, QoS 2).

    A PUBLISH whose payload is over ``max_payload`` bytes is never buffered: its first
    ``OVERSIZE_HEAD`` bytes go to ``on_oversize`` with its size, the rest is read and
    dropped as it arrives. A packet split over many reads is joined once, when its last
    byte is in. ``copied_bytes`` counts the bytes copied for packets of READ_SIZE or more
    and for packets split across reads (joins, stashes, the copy out): linear in what
    arrives, where joining on every read was quadratic in a packet's size. (A small
    packet within one read is sliced and copied out, a bounded cost not counted.)
    """

    # The read buffer, declared here because _drop_buffer() sets it (in __init__ too).
    _parts: list[bytes]  # a packet's start and the reads after it
    _have: int  # bytes in _parts
    _need: int  # the whole packet's size, once its length is known (else 0)
    _skip: int  # bytes of an oversize PUBLISH still to drop
    _skipped: tuple[str, bytes, int, int, bool, bool, int] | None  # its notice, sent once dropped

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_publish_fast: PublishCallback | None = None
        self.on_oversize: OversizeCallback | None = None
        self.max_payload = DEFAULT_MAX_PAYLOAD
        self.copied_bytes = 0
        self._drop_buffer()

    # -- receiving ------------------------------------------------------------------------

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        # paho's loop_read reads one packet per select() with three or more recv calls;
        # this one reads what the socket has (up to READ_SIZE) and handles every complete
        # packet in it. A packet's head or tail that has not arrived yet waits in _parts.
        if _private.socket_of(self) is None:
            return paho.MQTT_ERR_NO_CONN
        try:
            data = _private.recv(self, READ_SIZE)  # an SSL "want read" is BlockingIOError
        except BlockingIOError:
            return _MQTT_ERR_SUCCESS
        except OSError as err:
            # Kept: a TLS alert after the handshake (the broker wanted a client
            # certificate) arrives here, on the first read, not in reconnect().
            self.connect_error = err
            _private.log(self, paho.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return _private.connection_lost(self, paho.MQTT_ERR_CONN_LOST)
        if not data:
            return _private.connection_lost(self, paho.MQTT_ERR_CONN_LOST)
        _private.mark_received(self)
        rc = self.feed(data)
        if rc > 0:
            return _private.connection_lost(self, rc)
        return _MQTT_ERR_SUCCESS

    def feed(self, data: bytes) -> paho.MQTTErrorCode:
        """Handle the bytes of one read: what completes a packet, the rest kept; an rc."""
        if self._skip:  # the tail of an oversize PUBLISH: dropped as it comes
            n = min(self._skip, len(data))
            self._skip -= n
            if self._skip:
                return _MQTT_ERR_SUCCESS
            assert self._skipped is not None  # set together with _skip
            rc = self._oversize(*self._skipped)
            self._skipped = None
            data = data[n:]  # what follows it: at most one read
            self.copied_bytes += len(data)
            if rc > 0 or not data:
                return rc
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return _MQTT_ERR_SUCCESS  # still incomplete: kept as it came, no copy
            data = b"".join(self._parts)  # once per packet, when its last byte is in
            self.copied_bytes += len(data)
            self._parts, self._have, self._need = [], 0, 0
        return self._handle_packets(data)

    def _handle_packets(self, buf: bytes) -> paho.MQTTErrorCode:
        """Handle every complete packet in `buf`; keep the incomplete rest."""
        pos, size = 0, len(buf)
        rc = _MQTT_ERR_SUCCESS
        recheck = False  # an oversize PUBLISH whose head is still on the way
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
            if not complete:
                break
            end = i + length
            if command & 0xF0 == paho.PUBLISH:
                # Maybe over (a payload is most of its packet); without on_oversize, paho's way.
                if length > self.max_payload and self.on_oversize is not None:
                    over = self._check_oversize(command, buf, i, end, size)
                    if over is None:
                        recheck = True
                        break  # its topic or head has not arrived yet: look again next read
                    if over:
                        pos = min(end, size)
                        if _private.socket_of(self) is None:
                            return _MQTT_ERR_SUCCESS
                        continue
            elif length > MAX_CONTROL_PACKET:
                _private.log(self, paho.MQTT_LOG_ERR, "control packet of %d bytes refused", length)
                self._drop_buffer()
                return paho.MQTT_ERR_PROTOCOL
            if end > size:
                break  # the packet has not fully arrived yet
            # A small packet is sliced (a copy, cheaper per message than a memoryview); a
            # big one is viewed, so its payload is copied once, not twice.
            if length < READ_SIZE:
                packet: bytes | memoryview = buf[i:end]
            else:
                packet = memoryview(buf)[i:end]
                self.copied_bytes += length  # its copy out, in _publish or _handle_one
            if command & 0xF0 == paho.PUBLISH:
                rc = self._publish(command, packet)
            else:
                rc = self._handle_one(command, length, packet)
            pos = end
            if rc > 0 or _private.socket_of(self) is None:
                self._drop_buffer()
                return rc
        if pos < size:
            rest = bytes(buf[pos:])  # the start of a packet: at most one read's worth
            self.copied_bytes += len(rest)
            self._parts, self._have = [rest], len(rest)
            # Joined again at the next read when the packet may be oversize: what is kept
            # so is at most its topic and OVERSIZE_HEAD, never the payload.
            self._need = len(rest) + 1 if recheck else self._packet_size(rest)
        return rc

    @staticmethod
    def _packet_size(head: bytes) -> int:
        """The whole size of the packet `head` starts (0 while its length is incomplete)."""
        length, shift = 0, 0
        for i in range(1, min(len(head), 5)):
            length |= (head[i] & 0x7F) << shift
            if head[i] < 0x80:
                return i + 1 + length
            shift += 7
        return 0  # unknown: the next read joins and looks again (a few bytes)

    def _check_oversize(self, command: int, buf: bytes, i: int, end: int,
                        size: int) -> bool | None:
        """Whether the PUBLISH at buf[i:end] has a payload over max_payload, and if so
        refuse it: its head to on_oversize now or once its tail was dropped. None: its
        variable header has not arrived yet."""
        qos = (command & 0x06) >> 1
        if size - i < 2:
            return None
        start = i + 2 + ((buf[i] << 8) | buf[i + 1])  # after the topic
        pos = start + (2 if qos else 0)
        if _private.protocol(self) == paho.MQTTv5:  # properties: a variable byte length, then them
            plen, shift = 0, 0
            while True:
                if pos >= size:
                    return None if end > size else False  # (malformed: paho's to refuse)
                byte = buf[pos]
                pos += 1
                plen |= (byte & 0x7F) << shift
                if byte < 0x80 or shift > 21:
                    break
                shift += 7
            pos += plen
        payload_size = end - pos
        if payload_size <= self.max_payload:
            return False
        if pos + OVERSIZE_HEAD > size and end > size:
            if pos - i > MAX_CONTROL_PACKET:
                return False  # a topic this long is paho's to refuse
            return None  # wait for the head (a read or two; the rest is never held)
        try:
            topic = bytes(buf[i + 2:start]).decode()
        except UnicodeDecodeError:
            topic = bytes(buf[i + 2:start]).decode("utf-8", "backslashreplace")
        mid = ((buf[start] << 8) | buf[start + 1]) if qos else 0
        head = bytes(buf[pos:min(pos + OVERSIZE_HEAD, end)])
        notice = (topic, head, payload_size, qos, bool(command & 0x01), bool(command & 0x08), mid)
        if end <= size:
            self._oversize(*notice)
        else:
            self._skip, self._skipped = end - size, notice
        return True

    def _oversize(self, topic: str, head: bytes, payload_size: int, qos: int, retain: bool,
                  dup: bool, mid: int) -> paho.MQTTErrorCode:
        callback = self.on_oversize
        assert callback is not None  # checked before a packet is refused
        _private.log(self, paho.MQTT_LOG_WARNING, "PUBLISH on %s with %d bytes over max_payload %d",
                     topic, payload_size, self.max_payload)
        with _private.callback_lock(self):
            callback(topic, head, payload_size, qos, retain, dup, mid)
        return _MQTT_ERR_SUCCESS

    def _handle_one(self, command: int, length: int,
                    packet: bytes | bytearray | memoryview) -> paho.MQTTErrorCode:
        return _private.handle_packet(self, command, length, packet)  # paho's own handlers

    def _drop_buffer(self) -> None:
        self._parts = []
        self._have = 0
        self._need = 0
        self._skip = 0
        self._skipped = None

    def socket_closing(self) -> None:
        # Bytes of a dead connection must never be parsed as the start of the next one.
        self._drop_buffer()

    def reconnect(self) -> paho.MQTTErrorCode:
        self._drop_buffer()
        return super().reconnect()

    def _publish(self, command: int, packet: bytes | bytearray | memoryview) -> paho.MQTTErrorCode:
        callback = self.on_publish_fast
        qos = (command & 0x06) >> 1
        if callback is None or qos == 2 or _private.protocol(self) != paho.MQTTv311:
            return self._handle_one(command, len(packet), packet)  # paho's own path
        start = 2 + ((packet[0] << 8) | packet[1]) if len(packet) >= 2 else 2
        pos = start + 2 if qos else start
        if len(packet) < pos:
            _private.log(self, paho.MQTT_LOG_DEBUG, "Received malformed packet: PUBLISH too short")
            return paho.MQTT_ERR_PROTOCOL
        try:
            topic = bytes(packet[2:start]).decode()
        except UnicodeDecodeError:
            return self._handle_one(command, len(packet), packet)  # paho's handling of a bad topic
        mid = ((packet[start] << 8) | packet[start + 1]) if qos else 0
        # For QoS 1 with manual_ack paho sends nothing here either: ack() does, later.
        with _private.callback_lock(self):
            try:
                callback(topic, bytes(packet[pos:]), qos, bool(command & 0x01), bool(command & 0x08),
                         mid)
            except Exception as err:
                _private.log(self, paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
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
        return _private.queue_packet(self, paho.PUBACK, packet)
