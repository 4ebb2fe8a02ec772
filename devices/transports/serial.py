"""Serial transport: an async iterator of frames read from a pyserial port.

Blocking reads run in one dedicated thread per port; frames reach the event
loop in batches, bounded so a slow consumer pushes back on the reader (the
kernel's tty buffer then holds the rest). A fault (unplug, EIO) moves the
state to DISCONNECTED and the thread reopens the port with backoff; the port
name is resolved again on every attempt, so `/dev/serial/by-id/...` links
and a simulator's re-pointed symlinks are followed. close() is deliberate:
it ends the iteration and never reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import serial as pyserial

from devices._supervise import SERIAL_REOPEN, Backoff
from devices.transports._errors import TransportClosed
from devices.transports._framing import Framer, Framing, LineFraming
from devices.transports._state import AsyncTransport, ConnectionState, StateCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SerialConfig:
    """Settings of one serial port; times in seconds.

    `port` is a device path (symlinks resolved on each open) or a pyserial URL
    such as ``socket://host:port`` or ``rfc2217://host:port``.
    """

    port: str
    baudrate: int = 9600
    framing: Framing = field(default_factory=LineFraming)
    backoff: Backoff = SERIAL_REOPEN
    # How often the reader thread notices close() on a backend it cannot wake (a URL
    # without cancel_read); a device path blocks in read() until data or close().
    poll_interval: float = 0.1
    max_pending_batches: int = 256
    exclusive: bool = True  # flock the port: a second reader is a bug, not a feature

    def __post_init__(self) -> None:
        if not self.port:
            raise ValueError("serial port must be a path or URL, got ''")
        if not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise ValueError(f"baudrate must be a positive integer, got {self.baudrate!r}")
        if not self.poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {self.poll_interval!r}")
        if self.max_pending_batches < 1:
            raise ValueError(f"max_pending_batches must be >= 1, got {self.max_pending_batches!r}")


@dataclass
class SerialStats:
    """Counters of one SerialTransport (read from the loop; written by the reader thread)."""

    frames: int = 0
    bytes: int = 0
    connects: int = 0
    faults: int = 0
    partial_frames_at_fault: int = 0


class SerialTransport(AsyncTransport):
    """Async iterator of byte frames from one serial port, reconnecting after faults.

    Use as ``async with SerialTransport(cfg) as t: async for frame in t: ...``.
    Iteration ends (StopAsyncIteration) only after close(). `on_state` is
    called in the event loop's thread on every ConnectionState change.
    """

    def __init__(self, config: SerialConfig, *, on_state: StateCallback | None = None) -> None:
        self.config = config
        self.stats = SerialStats()
        self._on_state = on_state
        self._state = ConnectionState.CONNECTING
        self._stop = threading.Event()
        self._slots = threading.Semaphore(config.max_pending_batches)
        self._batches: collections.deque[list[bytes]] = collections.deque()
        self._frames: collections.deque[bytes] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._port_lock = threading.Lock()
        self._port: pyserial.SerialBase | None = None  # open in the reader thread, for close() to wake
        #: Why the port is not open now (it cannot be opened, or it faulted), for an
        #: operator's /health; None while it is open. The transport keeps retrying.
        self.last_error: str | None = None

    @property
    def state(self) -> ConnectionState:
        """The current ConnectionState."""
        return self._state

    @property
    def id(self) -> str:
        """A stable id for logs and metrics: the port as configured."""
        return f"serial:{self.config.port}"

    async def start(self) -> None:
        """Start the reader thread; returns at once (the port opens in the background).

        Raises TransportClosed after close().
        """
        if self._closed:
            raise TransportClosed(f"{self.id} is closed")
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=self.id, daemon=True)
        self._thread.start()

    async def wait_state(self, state: ConnectionState, timeout: float | None = None) -> None:
        """Wait until the transport reaches `state`; raises TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout):
            while self._state is not state:
                assert self._wakeup is not None, "start() first"
                self._wakeup.clear()
                await self._wakeup.wait()

    async def _close(self) -> None:
        """Stop reading and close the port; waits for the reader thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with self._port_lock:
            # A reader blocked in read() with no timeout wakes only for data or this.
            cancel = getattr(self._port, "cancel_read", None)
            if cancel is not None:
                cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._set_state(ConnectionState.CLOSED)

    async def __anext__(self) -> bytes:
        """The next frame; waits without blocking the loop. StopAsyncIteration after close()."""
        if self._thread is None:
            await self.start()
        assert self._wakeup is not None
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._batches:
                self._frames.extend(self._batches.popleft())
                self._slots.release()
                continue
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    # -- loop side, called via call_soon_threadsafe ---------------------------------------

    def _deliver(self, frames: list[bytes]) -> None:
        self._batches.append(frames)
        self.stats.frames += len(frames)
        assert self._wakeup is not None
        self._wakeup.set()

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        if self._state is ConnectionState.CLOSED:
            return  # a late report from the thread must not resurrect a closed transport
        self._state = state
        if self._wakeup is not None:
            self._wakeup.set()
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:  # a broken observer must not kill the transport
                log.exception("%s: state callback failed", self.id)

    # -- reader thread --------------------------------------------------------------------

    def _call(self, fn: Callable[..., object], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop already closed: nobody is listening any more
            self._stop.set()

    def _push(self, frames: list[bytes]) -> bool:
        """Hand frames to the loop; blocks while the consumer is behind. False if stopping."""
        while not self._slots.acquire(timeout=self.config.poll_interval):
            if self._stop.is_set():
                return False
        self._call(self._deliver, frames)
        return True

    def _open(self) -> pyserial.SerialBase:
        cfg = self.config
        target = cfg.port if "://" in cfg.port else os.path.realpath(cfg.port)
        port = pyserial.serial_for_url(target, do_not_open=True)
        port.baudrate = cfg.baudrate
        # Without a timeout an idle port costs no wake-ups (3 ports polled every 0.1 s
        # were 30 of the idle service's 44 a second); close() wakes it with cancel_read.
        port.timeout = None if hasattr(port, "cancel_read") else cfg.poll_interval
        if "://" not in cfg.port:
            port.exclusive = cfg.exclusive
        port.open()
        log.info("%s: opened %s at %d baud", self.id, target, cfg.baudrate)
        return port

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._call(self._set_state, ConnectionState.CONNECTING)
            try:
                port = self._open()
            except (pyserial.SerialException, OSError, ValueError) as exc:
                delay = self.config.backoff.delay(attempt)
                log.info("%s: cannot open (%s); retrying in %.2f s", self.id, exc, delay)
                self.last_error = f"cannot open {self.config.port}: {exc}"
                self._call(self._set_state, ConnectionState.DISCONNECTED)
                attempt += 1
                self._stop.wait(delay)
                continue
            attempt = 0
            self.last_error = None
            self.stats.connects += 1
            self._call(self._set_state, ConnectionState.CONNECTED)
            with self._port_lock:
                self._port = port  # close() sets _stop first: the read loop checks it after this
            faulted = self._read_until_fault(port)
            with self._port_lock:
                self._port = None
            try:
                port.close()
            except (pyserial.SerialException, OSError):
                pass  # closing a vanished device may fail; it is gone either way
            if faulted:
                self.stats.faults += 1
                self._call(self._set_state, ConnectionState.DISCONNECTED)
                self._stop.wait(self.config.backoff.delay(0))

    def _read_until_fault(self, port: pyserial.SerialBase) -> bool:
        """Read until close() (returns False) or a fault (returns True)."""
        framer = Framer(self.config.framing)
        while not self._stop.is_set():
            try:
                # Every backend serial_for_url makes (posix, loop://, socket://, rfc2217://)
                # has in_waiting; only the SerialBase it is declared to return lacks it.
                data = port.read(port.in_waiting or 1)  # type: ignore[attr-defined]
            except (pyserial.SerialException, OSError) as exc:
                log.warning("%s: disconnected (%s)", self.id, exc)
                self.last_error = f"lost {self.config.port}: {exc}"
                tail = framer.flush()
                if tail:
                    # A frame cut by the unplug still goes downstream, where the
                    # codec rejects it into the dead letters: never dropped silently.
                    self.stats.partial_frames_at_fault += 1
                    self._push([tail])
                return True
            if not data:
                continue
            self.stats.bytes += len(data)
            frames = framer.feed(data)
            if frames and not self._push(frames):
                return False
        return False
