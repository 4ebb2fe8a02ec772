"""Where simulated frames go: pseudo-terminals, MQTT, a byte stream (stdout or a file)."""

from __future__ import annotations

import collections
import fcntl
import os
import select
import struct
import sys
import termios
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devices._errors import TransportError


def _never() -> bool:
    return False


class SimulatedPort:
    """One pty standing in for one serial device; `link` (optional) follows replugs.

    ``stopping`` is asked while it waits for a reader or for room to write: once it says
    True (SIGTERM), the wait ends, so a run with no reader or a stalled one still stops.
    """

    def __init__(self, device_id: str, link: Path | None,
                 stopping: Callable[[], bool] = _never) -> None:
        self.device_id = device_id
        self.link = link
        self.stopping = stopping
        self.master = -1
        self.path = ""
        self.plug()

    def plug(self) -> None:
        """Open a fresh pty pair and point the link at its slave side."""
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF rewriting, before any reader configures it
        self.path = os.ttyname(slave)
        os.close(slave)  # so POLLHUP on the master tells us whether a reader has it open
        os.set_blocking(master, False)  # write() waits in poll(), where it can hear a stop
        self.master = master
        if self.link is not None:
            tmp = self.link.with_name(f".{self.link.name}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.path)
            os.replace(tmp, self.link)

    def unplug(self, drain_timeout: float = 5.0) -> None:
        """Let the reader drain what was written, then close the master (the reader sees EIO)."""
        if self.master < 0:
            return
        self.drain(drain_timeout)
        os.close(self.master)
        self.master = -1

    def reader_attached(self) -> bool:
        """True while some process holds the slave side open."""
        p = select.poll()
        p.register(self.master, select.POLLHUP)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def wait_reader(self, timeout: float | None, settle: float = 0.2) -> bool:
        """Wait for a reader to open the port; False on timeout (None waits forever) or stop.

        `settle` then gives pyserial time to finish open(), which flushes input.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.reader_attached():
            if (deadline is not None and time.monotonic() > deadline) or self.stopping():
                return False
            time.sleep(0.01)
        time.sleep(settle)
        return True

    def unread(self) -> int:
        """Bytes written but not yet read on the slave side (0 if nobody has it open)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            buf = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
            return struct.unpack("i", buf)[0]
        finally:
            os.close(fd)

    def drain(self, timeout: float) -> None:
        """Wait until the reader has read everything (or `timeout` s, or it went away)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        # FIONREAD misses bytes still in the kernel's flip buffer on their way to the
        # line discipline, so only a queue seen empty several times in a row counts.
        while quiet < 5 and self.reader_attached() and time.monotonic() < deadline:
            quiet = quiet + 1 if self.unread() == 0 else 0
            time.sleep(0.01)

    def write(self, data: bytes) -> bool:
        """Write all of `data`, waiting while the reader is behind; True if all went.

        False when a stop came while it waited: the rest of `data` is dropped.
        """
        view = memoryview(data)
        poll = select.poll()
        poll.register(self.master, select.POLLOUT)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                if self.stopping():
                    return False
                poll.poll(200)
                continue
            view = view[n:]
        return True

    def close(self, drain_timeout: float = 5.0) -> None:
        """Drain, close, and remove the link."""
        self.unplug(drain_timeout)
        if self.link is not None:
            self.link.unlink(missing_ok=True)


MAX_PENDING = 20_000  # unacknowledged publishes per client; paho's message ids wrap at 65,535


class MqttPublisher:
    """Publishes (topic, payload) with QoS 0/1 and knows which the broker acknowledged.

    paho keeps unacknowledged QoS 1 messages across a reconnect and sends them
    again, so a broker restart mid-run loses nothing; `acked()` returns the tags
    of messages whose PUBACK (QoS 1; for QoS 0, the send) has arrived since the
    last call. close() waits until the broker has them all.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        qos: int = 1,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        protocol: str = "3.1.1",
        max_pending: int = MAX_PENDING,
    ) -> None:
        proto = paho.MQTTv5 if protocol == "5" else paho.MQTTv311
        self.qos = qos
        self.max_pending = max_pending
        self.waits = 0  # publishes that waited for room (the broker was slower than the rate)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        # Set on a lost connection, cleared once everything published before it is acked.
        # paho calls on_connect *before* it resends the unacknowledged messages, so a
        # message published in that gap would reach the broker ahead of older ones: a
        # device must not reorder its own readings.
        self._resending = False
        # paho calls on_publish on its thread while holding its own lock: only append there
        # (deque.append is atomic); the tags are looked up on the caller's thread.
        self._acked_mids: collections.deque[int] = collections.deque()
        self._tags: dict[int, Any] = {}
        try:
            self.client.connect(host, port)
        except OSError as exc:
            raise TransportError(f"cannot connect to MQTT broker {host}:{port}: {exc}") from exc
        self.client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, *args: Any) -> None:
        self._acked_mids.append(mid)

    def _on_disconnect(self, client: Any, userdata: Any, *args: Any) -> None:
        self._resending = True

    def publish(self, topic: str, payload: bytes, tag: Any = None) -> None:
        """Queue one message; it is sent by paho's thread (again after a reconnect if need be).

        `tag` (e.g. a reading's sequence number) comes back from `acked()` once the
        broker has acknowledged the message. With `max_pending` messages unacknowledged
        it waits for room: a generator faster than the broker slows down (its achieved
        rate says so) instead of dying when paho's 16-bit message ids run out.
        """
        if self.unacked() >= self.max_pending:
            self.waits += 1
            while self.unacked() >= self.max_pending:
                time.sleep(0.002)
        if self._resending:
            # After a reconnect, wait until paho's resent backlog is acknowledged, so this
            # message cannot overtake it (readings reach the broker in the order made).
            self.waits += 1
            self._resending = False   # a disconnect while we wait sets it again
            while self.unacked() > 0 or not self.client.is_connected():
                time.sleep(0.002)
        info = self.client.publish(topic, payload, qos=self.qos)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            raise TransportError(f"MQTT client queue full publishing to {topic!r}")
        # MQTT_ERR_NO_CONN: not connected right now; paho keeps the message and sends it
        # after reconnecting, so it is pending like any other.
        self._tags[info.mid] = tag

    def acked(self) -> list[Any]:
        """Tags (not None) of the messages acknowledged since the last call, in ack order."""
        out = []
        while self._acked_mids:
            tag = self._tags.pop(self._acked_mids.popleft(), None)
            if tag is not None:
                out.append(tag)
        return out

    def unacked(self) -> int:
        """Messages published but not yet acknowledged."""
        return len(self._tags) - len(self._acked_mids)

    def close(self, timeout: float = 30.0) -> None:
        """Wait (up to `timeout` s) for every publish to be acknowledged (QoS 1) or sent
        (QoS 0), then disconnect. Call `acked()` after it for the last tags."""
        deadline = time.monotonic() + timeout
        while self.unacked() > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.client.disconnect()
        self.client.loop_stop()


class StreamOutput:
    """Frames as bytes into a binary stream (stdout or a file)."""

    def __init__(self, path: str) -> None:
        self._own = path != "-"
        self.stream: BinaryIO = open(path, "wb") if self._own else sys.stdout.buffer

    def write(self, data: bytes) -> None:
        """Write and flush (a reader on the other end of a pipe sees frames at once)."""
        self.stream.write(data)
        self.stream.flush()

    def close(self) -> None:
        """Close the file (never stdout)."""
        if self._own:
            self.stream.close()
