"""Every use of paho-mqtt's private names, in one place, and the probe that checks them.

The MQTT fast path (``_paho_client.BufferedClient``) replaces paho's packet reader and
PUBACK writer. It has to reach into paho for that: the socket and its ``recv`` wrapper,
the keepalive clock, the reader's packet dict and its dispatcher, the write queue, the
connection-lost handler, paho's logger and callback lock. Nothing outside this module
names any of them, so what a new paho release may break is listed here, and ``probe()``
checks that each still BEHAVES as relied on, on a real client and a socket pair, before
the transport uses the fast path (``_paho_client.fast_path_problem``). A paho whose
internals moved makes the probe fail, and the transport falls back to plain
``paho.Client`` (slower, same guarantees) with a warning that says why.

Checked against paho-mqtt 2.1 and 2.2; deploy/test.sh also runs the MQTT tests against
the newest paho release.
"""

from __future__ import annotations

import socket
import struct
from contextlib import AbstractContextManager
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, LogLevel, MQTTErrorCode

# paho.mqtt.properties, not .exception: 2.2 has it in both, 2.1 (which pyproject allows) only here.
from paho.mqtt.properties import MalformedPacket

__all__ = ["SocketCloseHook", "attach_socket", "callback_lock", "connection_lost",
           "handle_packet", "log", "mark_received", "probe", "protocol", "queue_packet", "recv",
           "socket_of"]


def _idle_packet() -> paho._InPacket:
    # paho's reader state between packets, as its _packet_read and reconnect() leave it.
    return {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}


_PACKET_KEYS = frozenset(_idle_packet())


class SocketCloseHook(paho.Client):
    """Calls ``socket_closing()`` whenever paho closes its connection's socket (a lost
    connection, a protocol error, reconnect(), disconnect())."""

    def socket_closing(self) -> None:
        """Override: called in paho's thread before the socket is closed."""

    def _sock_close(self) -> None:
        self.socket_closing()
        super()._sock_close()


def socket_of(client: paho.Client) -> paho.SocketLike | None:
    """The connection's socket (None while not connected); unlike ``client.socket()`` it
    is read without paho's own checks, once per read."""
    return client._sock


def attach_socket(client: paho.Client, sock: socket.socket | None) -> None:
    """Make `sock` the client's connection (the probe's and tests' stand-in broker)."""
    client._sock = sock


def recv(client: paho.Client, size: int) -> bytes:
    """Up to `size` bytes from the connection; ``BlockingIOError`` when none are there
    (also TLS's "want read"), ``OSError`` when it broke."""
    return client._sock_recv(size)


def mark_received(client: paho.Client) -> None:
    """Tell paho's keepalive that bytes came in (else it pings, then drops the link)."""
    with client._msgtime_mutex:
        client._last_bytes_received = paho.time_func()


def connection_lost(client: paho.Client, rc: MQTTErrorCode) -> MQTTErrorCode:
    """End the connection as paho's own reader does on error `rc`: close the socket, run
    on_disconnect, leave the reconnecting to paho's loop. Returns the rc paho's loop reads."""
    return client._loop_rc_handle(rc)


def log(client: paho.Client, level: LogLevel, fmt: str, *args: Any) -> None:
    """Log through paho's own channels (``on_log``, ``enable_logger``)."""
    client._easy_log(level, fmt, *args)


def protocol(client: paho.Client) -> int:
    """The MQTT protocol version the client was made with."""
    return client._protocol


def callback_lock(client: paho.Client) -> AbstractContextManager[Any]:
    """The lock paho holds while it runs a user callback (``loop_stop`` and
    ``disconnect`` from a callback know by it that they are inside one)."""
    return client._in_callback_mutex


def handle_packet(client: paho.Client, command: int, length: int,
                  packet: bytes | bytearray | memoryview) -> MQTTErrorCode:
    """Hand one whole packet (its body after the fixed header) to paho's handlers, as
    paho's own reader would; an rc (MQTT_ERR_PROTOCOL for a malformed packet)."""
    # paho's handlers read the packet from _in_packet, as its _packet_read leaves it.
    state = _idle_packet()
    state["command"], state["have_remaining"] = command, 1
    state["remaining_length"], state["packet"] = length, bytearray(packet)
    client._in_packet = state
    try:
        rc = client._packet_handle()
    except MalformedPacket as exc:
        client._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
        rc = paho.MQTT_ERR_PROTOCOL
    client._in_packet = _idle_packet()
    return rc


def queue_packet(client: paho.Client, command: int, packet: bytes) -> MQTTErrorCode:
    """Queue `packet` (whole, header included) for paho's thread to write; any thread."""
    return client._packet_queue(command, packet, 0, 1)


# -- the probe ------------------------------------------------------------------------------

_UNSUBACK = bytes([paho.UNSUBACK, 2, 0x12, 0x34])  # packet id 0x1234
_PUBACK = struct.pack("!BBH", paho.PUBACK, 2, 0x0102)


def probe() -> str | None:
    """None when paho's private structures behave as this module relies on; else what
    differs, in words for a log line. Runs on a real client over a socket pair (no
    broker, no thread), in about a millisecond; never raises."""
    try:
        return _probe()
    except Exception as exc:  # any failure is an answer: do not use them
        return f"{type(exc).__name__}: {exc}"


def _probe() -> str | None:
    closed: list[bool] = []

    class Probe(SocketCloseHook):
        def socket_closing(self) -> None:
            closed.append(True)

    client = Probe(CallbackAPIVersion.VERSION2, client_id="edge-probe",
                   protocol=paho.MQTTv311, manual_ack=True)
    if set(client._in_packet) != _PACKET_KEYS:
        return f"paho's reader state has keys {sorted(client._in_packet)}, not {sorted(_PACKET_KEYS)}"
    if protocol(client) != paho.MQTTv311:
        return f"the client's protocol reads {protocol(client)!r}, not {paho.MQTTv311}"
    lines: list[str] = []
    client.on_log = lambda _c, _u, _level, buf: lines.append(buf)
    log(client, paho.MQTT_LOG_DEBUG, "probe %s", "log")
    if "probe log" not in lines:
        return f"paho's log did not reach on_log (got {lines!r})"
    with callback_lock(client):
        pass
    ours, broker = socket.socketpair()
    try:
        ours.setblocking(False)
        broker.setblocking(False)  # paho writes in this thread: what it wrote is there
        attach_socket(client, ours)
        if socket_of(client) is not ours:
            return "a socket attached is not the client's socket"
        try:
            recv(client, 64)
            return "reading an empty socket did not raise BlockingIOError"
        except BlockingIOError:
            pass
        broker.sendall(_UNSUBACK)
        got = recv(client, 64)
        if got != _UNSUBACK:
            return f"read {got!r} of the socket, sent {_UNSUBACK!r}"
        mark_received(client)
        # A packet handed to paho's dispatcher reaches paho's handler and its callback.
        unsubacks: list[int] = []
        client.on_unsubscribe = lambda _c, _u, mid, _codes, _props: unsubacks.append(mid)
        rc = handle_packet(client, got[0], got[1], got[2:])
        if rc != paho.MQTT_ERR_SUCCESS or unsubacks != [0x1234]:
            return f"an UNSUBACK handed to paho gave rc {rc} and callbacks {unsubacks!r}"
        if set(client._in_packet) != _PACKET_KEYS:
            return "paho's reader state changed shape after a packet"
        # A queued packet is written as it is (no thread: paho writes at once).
        rc = queue_packet(client, paho.PUBACK, _PUBACK)
        try:
            written = broker.recv(64)
        except BlockingIOError:
            written = b""
        if rc != paho.MQTT_ERR_SUCCESS or written != _PUBACK:
            return f"a queued PUBACK gave rc {rc} and wrote {written!r}, not {_PUBACK!r}"
        # A lost connection closes the socket through the hook and says so.
        rc = connection_lost(client, paho.MQTT_ERR_CONN_LOST)
        if rc != paho.MQTT_ERR_CONN_LOST or socket_of(client) is not None or not closed:
            return (f"a lost connection gave rc {rc}, socket {socket_of(client)!r}, "
                    f"close hook called: {bool(closed)}")
        return None
    finally:
        attach_socket(client, None)
        ours.close()
        broker.close()
