"""MQTT transport: an async iterator of messages from paho-mqtt 2.x.

paho runs its network loop in its own thread (``loop_start``) and reconnects
with backoff by itself, also when the first connect fails. Messages reach
the event loop through ``call_soon_threadsafe``.

Delivery guarantee: the client uses a persistent session (fixed client id,
``clean_session=False`` / ``clean_start=False`` + session expiry) and paho's
manual acknowledgement, so a QoS 1 message is PUBACKed only when the
consumer calls ``await message.ack()`` after durably accepting it. A crash
before that leaves the message unacknowledged at the broker, which sends it
again when the session resumes. Consumers must therefore tolerate duplicates
(at-least-once). How many unacknowledged messages are in flight at once is
the broker's window (mosquitto's ``max_inflight_messages``, or our MQTT 5
``receive_maximum``), which also bounds this transport's queue for QoS 1.

Per message, the network thread is kept light (``_paho_client.BufferedClient``: one
``recv`` for many packets, no ``MQTTMessage`` for MQTT 3.1.1; plain paho when its probe of
paho's internals fails or ``EDGE_MQTT_FAST_PATH=0``) and the loop wakes once per batch; acks made with ``ack_nowait()`` in one turn of the event loop leave as one write.

Every message carries its session's epoch (``_session.py``): packet ids start over in a
new session, so a redelivery is recognised only within the session it belongs to. A
payload over ``max_payload`` is refused as it arrives (``MqttMessage.oversize``). Why
the broker cannot be used (a refused CONNACK, TLS, TCP) is ``last_error``, logged once
per cause while paho retries with backoff. TLS checks the CA and the hostname (``_tls.py``).

The password is never logged and never appears in a repr.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices._supervise import MQTT_RECONNECT, Backoff
from devices.transports._errors import DeviceUnavailable, TransportClosed, TransportError
from devices.transports._mqtt_errors import connect_error_text, refusal_text
from devices.transports._paho_client import (
    DEFAULT_MAX_PAYLOAD,
    OVERSIZE_HEAD,
    BufferedClient,
    Client,
    use_fast_path,
)
from devices.transports._session import SessionFile, new_epoch
from devices.transports._state import AsyncTransport, ConnectionState, StateCallback
from devices.transports._tls import client_context

log = logging.getLogger(__name__)

PROTOCOLS = {"3.1.1": MQTTProtocolVersion.MQTTv311, "5": MQTTProtocolVersion.MQTTv5}


@dataclass(frozen=True)
class TlsConfig:
    """TLS to the broker; `ca_file` None means the system's trust store."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip hostname check: only for test brokers with self-made certs


@dataclass(frozen=True)
class MqttConfig:
    """Settings of one MQTT subscription; times in seconds.

    `topics` are filters and may use ``+`` and ``#``. A persistent session
    (the default) needs a fixed, non-empty `client_id`.
    """

    host: str
    port: int = 1883
    topics: tuple[str, ...] = ("#",)
    qos: int = 1
    client_id: str = ""
    protocol: str = "3.1.1"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig | None = None
    keepalive: int = 30
    persistent: bool = True
    session_expiry: int = 7 * 24 * 3600  # MQTT 5: how long the broker keeps our session
    receive_maximum: int | None = None  # MQTT 5: our in-flight window for QoS 1
    # Messages held for the consumer before paho's thread stops reading the socket. The
    # broker's window does not bound this: Mosquitto 2.0 sends its queued backlog in bursts
    # of hundreds once acks flow, whatever max_inflight_messages or Receive Maximum say.
    max_queued: int = 1000
    # And bytes of payload held so, whatever the count: 1000 messages of max_payload would
    # be a gigabyte on a Pi. One message is always let through, however big.
    max_queued_bytes: int = 16 * 1024 * 1024
    # Bytes of payload a message may have. A larger one is refused as it arrives (never
    # held whole): the consumer gets its first OVERSIZE_HEAD bytes and its size
    # (MqttMessage.oversize), for a dead letter. Well under Mosquitto's own 256 MB.
    max_payload: int = DEFAULT_MAX_PAYLOAD
    # Where the session's epoch is kept (see _session.py), so that after a restart the
    # redeliveries of a resumed session carry the epoch their first copies were written
    # with. None: in memory only (a new transport's redeliveries are then new messages).
    session_dir: str | None = None
    backoff: Backoff = MQTT_RECONNECT

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("MQTT host must not be empty, got ''")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"MQTT port must be an integer in 1..65535, got {self.port!r}")
        if isinstance(self.topics, str):
            raise ValueError(f"topics must be a tuple of filters, got the string {self.topics!r}")
        if not self.topics or not all(isinstance(t, str) and t for t in self.topics):
            raise ValueError(f"topics must be non-empty filters, got {self.topics!r}")
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, got {self.qos!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {self.protocol!r}")
        if self.persistent and not self.client_id:
            raise ValueError("a persistent session needs a fixed client_id, got ''")
        if self.keepalive < 1:
            raise ValueError(f"keepalive must be >= 1 second, got {self.keepalive!r}")
        if self.max_queued < 1:
            raise ValueError(f"max_queued must be >= 1 message, got {self.max_queued!r}")
        if self.max_queued_bytes < 1:
            raise ValueError(f"max_queued_bytes must be >= 1, got {self.max_queued_bytes!r}")
        if not isinstance(self.max_payload, int) or self.max_payload < 1:
            raise ValueError(f"max_payload must be >= 1 byte, got {self.max_payload!r}")
        if self.password is not None and not isinstance(self.password, str):
            # Never the value: a numeric password is still a password.
            raise ValueError(f"password must be a string, got a {type(self.password).__name__} "
                             "(not shown: a secret)")


@dataclass(eq=False, slots=True)  # slots: one made per message, in paho's thread
class MqttMessage:
    """One message as it arrived; call ``await ack()`` once it is durably accepted.

    For QoS 0 ack() does nothing. It is safe to call twice.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    duplicate: bool = False  # the broker says it may have been delivered before
    _ack: Callable[[bool], None] | None = field(default=None, repr=False)  # arg: at once
    #: The packet id within our session: a redelivery (``duplicate``) carries the same one.
    mid: int = 0
    #: The session's epoch: packet ids of different epochs are different messages.
    session: str = ""
    #: Not 0: the payload had this many bytes, over ``max_payload``; ``payload`` holds only
    #: its first ``OVERSIZE_HEAD`` bytes (the rest was dropped as it arrived).
    oversize: int = 0

    async def ack(self) -> None:
        """Acknowledge to the broker (QoS 1 PUBACK) at once; never blocks."""
        fn, self._ack = self._ack, None
        if fn is not None:
            fn(True)

    def ack_nowait(self) -> None:
        """``ack()`` for code that does not await; never blocks.

        Called in the event loop's thread, the PUBACK is queued and leaves with the other
        acks of this turn of the loop, as one write (``close()`` sends what is queued
        first). From any other thread it is sent at once.
        """
        fn, self._ack = self._ack, None
        if fn is not None:
            fn(False)


@dataclass
class MqttStats:
    """Counters of one MqttTransport."""

    messages: int = 0
    acks: int = 0
    stale_acks: int = 0  # acks of messages from an earlier connection: the broker resends them
    connects: int = 0
    disconnects: int = 0
    oversize: int = 0  # messages refused for a payload over max_payload


class MqttTransport(AsyncTransport):
    """Async iterator of MqttMessage from the subscribed topic filters.

    State is CONNECTED once connected and all subscriptions are granted.
    Use as ``async with MqttTransport(cfg) as t: async for m in t: ...; await m.ack()``.
    """

    def __init__(self, config: MqttConfig, *, on_state: StateCallback | None = None) -> None:
        self.config = config
        self.stats = MqttStats()
        self._on_state = on_state
        self._state = ConnectionState.CONNECTING
        self._queue: collections.deque[MqttMessage] = collections.deque()  # appended by paho's thread
        self._wake_scheduled = False
        self._room = threading.Event()  # cleared while the queue is full: paho's thread waits
        # Payload bytes queued = _bytes_in - _bytes_out; each counter has one writer thread.
        self._bytes_in = 0  # paho's thread
        self._bytes_out = 0  # the loop's thread
        self._room.set()
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._closed = False
        self._generation = 0  # bumped on every connect; guards acks across reconnects
        self._lock = threading.Lock()
        self._pending_sub: int | None = None
        self._acked_since_barrier = False
        self._barrier: tuple[int, asyncio.Future[None]] | None = None
        self._loop_thread: int | None = None
        self._acks_due: list[tuple[int, int]] = []  # (mid, generation) queued by ack_nowait()
        self._session = SessionFile(config.session_dir, f"{config.host}:{config.port}",
                                    config.client_id)
        self._epoch: str | None = None  # read and written in paho's thread once started
        self._failure: BaseException | None = None  # raised to the reader: the device restarts
        #: Why the broker cannot be used now (refused CONNACK, TLS, TCP), None once
        #: connected: what /health shows while paho retries with backoff.
        self.last_error: str | None = None
        self._up = False  # this connection got a good CONNACK (paho's thread)
        self._refused = False  # this connection got a refusing CONNACK (paho's thread)

    @property
    def id(self) -> str:
        """A stable id for logs and metrics (no credentials in it)."""
        c = self.config
        return f"mqtt://{c.host}:{c.port}/{c.client_id or '-'}"

    @property
    def state(self) -> ConnectionState:
        """The current ConnectionState."""
        return self._state

    async def start(self) -> None:
        """Start connecting in paho's thread; returns at once. Raises TransportClosed after close()."""
        if self._closed:
            raise TransportClosed(f"{self.id} is closed")
        if self._client is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        if self.config.persistent:
            self._epoch = await asyncio.to_thread(self._session.load)
        tls = self.config.tls
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(tls, key, None)
            if path is not None and not os.path.isfile(path):
                raise TransportError(f"{self.id}: TLS {key} {path} is not a readable file")
        try:
            self._client = self._make_client()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise TransportError(f"{self.id}: cannot load the TLS files (ca_file {tls and tls.ca_file}, "
                                 f"cert_file {tls and tls.cert_file}, key_file "
                                 f"{tls and tls.key_file}): {exc}") from exc
        c = self.config
        kwargs: dict[str, Any] = {}
        if c.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = c.session_expiry if c.persistent else 0
            if c.receive_maximum:
                props.ReceiveMaximum = c.receive_maximum
            kwargs = {"clean_start": not c.persistent, "properties": props}
        self._client.connect_async(c.host, c.port, c.keepalive, **kwargs)
        self._client.loop_start()

    def _make_client(self) -> paho.Client:
        c = self.config
        kwargs: dict[str, Any] = {}
        if c.protocol == "3.1.1":
            kwargs["clean_session"] = not c.persistent
        client = (BufferedClient if use_fast_path() else Client)(
            CallbackAPIVersion.VERSION2,
            client_id=c.client_id,
            protocol=PROTOCOLS[c.protocol],
            manual_ack=True,
            **kwargs,
        )
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls is not None:
            client.tls_set_context(client_context(c.tls.ca_file, c.tls.cert_file, c.tls.key_file,
                                                  check_hostname=not c.tls.insecure))
            client.tls_insecure_set(c.tls.insecure)
        # paho annotates whole seconds but waits any float it is given (its time.sleep).
        client.reconnect_delay_set(c.backoff.initial, c.backoff.maximum)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        if isinstance(client, BufferedClient):
            client.on_publish_fast = self._on_publish
            client.on_oversize = self._on_oversize
            client.max_payload = c.max_payload
        client.on_unsubscribe = self._on_unsubscribe
        return client

    async def wait_state(self, state: ConnectionState, timeout: float | None = None) -> None:
        """Wait until the transport reaches `state`; raises TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout):
            while self._state is not state:
                assert self._wakeup is not None, "start() first"
                self._wakeup.clear()
                await self._wakeup.wait()

    async def _close(self) -> None:
        # Disconnect and stop paho's thread; unacked QoS 1 messages stay at the broker.
        # Runs once (AsyncTransport.close); iteration ends after it.
        if self._closed:
            return
        self._send_due_acks()
        client = self._client
        # paho's own "connected" (CONNACK seen), not CONNECTED (subscriptions granted): a
        # resumed session's messages arrive and are acked before the SUBACK.
        if client is not None and self._acked_since_barrier and client.is_connected():
            await self._ack_barrier(client)
        self._closed = True
        self._room.set()  # paho's thread may be waiting for room
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        self._set_state(ConnectionState.CLOSED)

    async def _ack_barrier(self, client: paho.Client, timeout: float = 2.0) -> None:
        # MQTT never answers a PUBACK, and paho closes the socket right after writing
        # DISCONNECT, so an ack written just before close() can be lost and the message
        # redelivered. The broker handles one connection's packets in order: once it
        # answers an UNSUBSCRIBE sent after the acks, every ack before it has landed.
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        with self._lock:
            result, mid = client.unsubscribe(f"$edge-ack-barrier/{id(self):x}")
            if result != paho.MQTT_ERR_SUCCESS or mid is None:  # no mid without a connection
                return
            self._barrier = (mid, done)
        try:
            async with asyncio.timeout(timeout):
                await done
            self._acked_since_barrier = False
        except TimeoutError:
            log.warning(
                "%s: broker did not confirm the last acks within %.0f s; it may redeliver them",
                self.id,
                timeout,
            )
        finally:
            self._barrier = None

    async def __anext__(self) -> MqttMessage:
        """The next message; waits without blocking the loop. StopAsyncIteration after close()."""
        if self._client is None:
            await self.start()
        assert self._wakeup is not None
        while True:
            message = self.next_nowait()
            if message is not None:
                return message
            if self._closed:
                raise StopAsyncIteration
            if self._failure is not None:
                raise self._failure
            self._wakeup.clear()
            await self._wakeup.wait()

    def next_nowait(self) -> MqttMessage | None:
        """The next message if one has arrived, else None; never waits (the loop's thread)."""
        if not self._queue:
            return None
        message = self._queue.popleft()
        self._bytes_out += len(message.payload)
        if not self._room.is_set() and len(self._queue) <= self.config.max_queued // 2 and \
                self._bytes_in - self._bytes_out <= self.config.max_queued_bytes // 2:
            self._room.set()
        return message

    # -- loop side ------------------------------------------------------------------------

    def _wake_reader(self) -> None:
        self._wake_scheduled = False
        assert self._wakeup is not None
        self._wakeup.set()

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state or self._state is ConnectionState.CLOSED:
            return
        self._state = state
        if self._wakeup is not None:
            self._wakeup.set()
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("%s: state callback failed", self.id)

    def _ack(self, mid: int, qos: int, generation: int, at_once: bool) -> None:
        if at_once or qos != 1 or threading.get_ident() != self._loop_thread or self._closed:
            self._send_acks([(mid, generation)], qos)
            return
        # One write for the acks of this turn of the loop (a write per ack also wakes
        # paho's thread through its socket pair per ack).
        due = self._acks_due
        due.append((mid, generation))
        if len(due) == 1:
            assert self._loop is not None
            self._loop.call_soon(self._send_due_acks)

    def _send_due_acks(self) -> None:
        due = self._acks_due
        if due:
            self._acks_due = []
            self._send_acks(due, 1)

    def _send_acks(self, acks: list[tuple[int, int]], qos: int) -> None:
        # Under the lock so a disconnect cannot slip between the check and the send.
        with self._lock:
            generation = self._generation
            mids = [mid for mid, gen in acks if gen == generation]
            # A mid of a connection that is gone: the broker resends the message on the
            # resumed session, and that copy gets acked instead.
            self.stats.stale_acks += len(acks) - len(mids)
            if not mids:
                return
            client = self._client
            assert client is not None
            if qos == 1 and isinstance(client, BufferedClient):
                client.send_pubacks(mids)
            else:
                for mid in mids:
                    client.ack(mid, qos)
        self._acked_since_barrier = True
        self.stats.acks += len(mids)

    # -- paho's thread --------------------------------------------------------------------

    def _call(self, fn: Callable[..., object], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is gone; close() was not awaited, nothing left to tell

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._refused = True
            self._report(refusal_text(reason_code))
            self._call(self._set_state, ConnectionState.DISCONNECTED)
            return
        if self.last_error is not None:
            log.info("%s: the broker accepts the connection again", self.id)
            self.last_error = None
        self._up = True
        if not flags.session_present or self._epoch is None:
            # A new session (or one whose epoch this process cannot know): its packet ids
            # start over, so nothing it delivers can be a copy of an earlier session's.
            # Durable before the SUBSCRIBE that lets its first message in.
            epoch = new_epoch()
            try:
                if self.config.persistent:
                    self._session.save(epoch)
            except OSError as exc:
                error = DeviceUnavailable(
                    f"{self.id}: cannot record the new MQTT session in {self._session.path} "
                    f"({exc.strerror or exc}); not subscribing, so no message of it is taken")
                log.error("%s", error)
                self._call(self._fail, error)
                return
            self._epoch = epoch
        with self._lock:
            self._generation += 1
        self.stats.connects += 1
        log.info("%s: connected (session present: %s, epoch %s)", self.id, flags.session_present,
                 self._epoch)
        qos = self.config.qos
        result, mid = client.subscribe([(t, qos) for t in self.config.topics])
        if result != paho.MQTT_ERR_SUCCESS:
            log.warning("%s: subscribe failed to send: %s", self.id, result)
            return
        self._pending_sub = mid

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        if mid != self._pending_sub:
            return
        for topic, rc in zip(self.config.topics, reason_codes, strict=False):
            if rc.is_failure:
                log.error("%s: subscription to %r refused: %s", self.id, topic, rc)
        self._call(self._set_state, ConnectionState.CONNECTED)

    def _on_unsubscribe(self, client: paho.Client, userdata: Any, mid: int,
                        reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        # Under the lock that _ack_barrier holds from sending the UNSUBSCRIBE until it has
        # noted its mid: paho may write it from the loop's thread, and on loopback the
        # UNSUBACK came back before the mid was noted, so the barrier waited out its 2 s.
        with self._lock:
            barrier = self._barrier
        if barrier is not None and barrier[0] == mid:
            self._call(_resolve, barrier[1])

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        error = getattr(client, "connect_error", None)
        c = self.config
        if self._closed:
            return
        if error is None:
            self._report(f"the broker at {c.host}:{c.port} closed the connection before "
                         "accepting it" + (" (does it want a client certificate: cert_file "
                                           "and key_file?)" if c.tls is not None else ""))
            return
        self._report(connect_error_text(error, f"{c.host}:{c.port}", c.tls is not None,
                                        c.tls.ca_file if c.tls is not None else None))

    def _report(self, text: str) -> None:
        # Once per cause, not once per retry: paho retries with a growing delay (up to
        # backoff.maximum) and the cause stays in last_error until a connect succeeds.
        if text != self.last_error:
            log.warning("%s: %s; retrying with backoff", self.id, text)
            self.last_error = text

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        if self._closed:
            return
        up, self._up = self._up, False
        refused, self._refused = self._refused, False
        if not up:
            if not refused:  # lost before any CONNACK: a TLS alert, a reset
                self._on_connect_fail(client, userdata)
            return  # a refused CONNACK: _report said why, once
        self.stats.disconnects += 1
        log.warning("%s: disconnected (%s); paho reconnects with backoff", self.id, reason_code)
        with self._lock:
            self._generation += 1  # acks of what we hold now would hit the wrong packet ids
        self._call(self._set_state, ConnectionState.DISCONNECTED)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        # paho's own path: MQTT 5, or a client without BufferedClient's.
        if len(msg.payload) > self.config.max_payload:  # without BufferedClient: too late
            self._on_oversize(msg.topic, bytes(msg.payload[:OVERSIZE_HEAD]), len(msg.payload),
                              msg.qos, bool(msg.retain), bool(msg.dup), msg.mid)
            return
        self._on_publish(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), bool(msg.dup),
                         msg.mid)

    def _on_oversize(self, topic: str, head: bytes, size: int, qos: int, retain: bool, dup: bool,
                     mid: int) -> None:
        self.stats.oversize += 1
        log.warning("%s: message on %r has %d bytes of payload, over max_payload %d: refused "
                    "(its first %d bytes go to the dead letters)", self.id, topic, size,
                    self.config.max_payload, len(head))
        self._on_publish(topic, head, qos, retain, dup, mid, size)

    def _on_publish(self, topic: str, payload: bytes, qos: int, retain: bool, dup: bool,
                    mid: int, oversize: int = 0) -> None:
        # functools.partial: made and called in C, cheaper per message than a lambda.
        ack = functools.partial(self._ack, mid, qos, self._generation) if qos > 0 else None
        message = MqttMessage(topic, payload, qos, retain, dup, ack, mid, self._epoch or "",
                              oversize)
        # deque.append is atomic; the loop is woken once per batch, not per message (a
        # call_soon_threadsafe is a self-pipe write and a loop turn). Appending before
        # reading the flag: a wake-up that already reset it still finds this message.
        self._queue.append(message)
        self._bytes_in += len(payload)
        self.stats.messages += 1
        if not self._wake_scheduled:
            self._wake_scheduled = True
            self._call(self._wake_reader)
        # Backpressure: stop reading the socket while the consumer is this far behind (the
        # broker keeps the rest, and TCP tells it to wait), so memory stays flat under
        # overload. Acks queued meanwhile go out when paho's loop runs again.
        limit, byte_limit = self.config.max_queued, self.config.max_queued_bytes
        while (len(self._queue) >= limit or self._bytes_in - self._bytes_out >= byte_limit) \
                and self._queue and not self._closed:
            self._room.clear()
            if len(self._queue) < limit and self._bytes_in - self._bytes_out < byte_limit:
                break  # the consumer took some between the check and clear
            self._room.wait(0.5)

    def _fail(self, error: BaseException) -> None:
        # The loop's thread: the reader raises it once the queue is empty.
        self._failure = error
        if self._wakeup is not None:
            self._wakeup.set()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
