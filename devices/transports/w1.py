"""1-wire sysfs transport: polls DS18B20-style sensors under /sys/bus/w1/devices.

Each round lists the sensor directories (family prefixes such as ``28-``),
reads each one's file (``w1_slave`` by default; a real DS18B20 read takes
~750 ms, in the kernel) in this transport's own thread, and yields one
``W1Sample`` per sensor with the file's raw bytes. Judging the bytes (CRC
line, 85 °C reset value) is the codec's job. A missing base directory (the
w1-gpio overlay not loaded) is DISCONNECTED, retried every interval.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from devices.transports._errors import TransportClosed
from devices.transports._state import AsyncTransport, ConnectionState, StateCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class W1Config:
    """Where and how often to poll; `interval` in seconds between the starts of rounds."""

    base_dir: str = "/sys/bus/w1/devices"
    interval: float = 10.0
    families: tuple[str, ...] = ("28",)  # 28 = DS18B20; 10 = DS18S20, 22 = DS1822, 3b, 42
    filename: str = "w1_slave"
    sensors: tuple[str, ...] | None = None  # only these ids; None = every one found

    def __post_init__(self) -> None:
        if not self.interval >= 0:
            raise ValueError(f"w1 interval must be >= 0 seconds, got {self.interval!r}")
        if isinstance(self.families, str) or not self.families:
            raise ValueError(f"families must be a tuple of prefixes like ('28',), got {self.families!r}")


@dataclass(frozen=True)
class W1Sample:
    """The raw bytes of one sensor's file at one poll; b"" when the read failed."""

    sensor_id: str
    raw: bytes
    read_at_ms: int


class W1Transport(AsyncTransport):
    """Async iterator of W1Sample, one per sensor per round, until close()."""

    def __init__(self, config: W1Config | None = None, *, on_state: StateCallback | None = None) -> None:
        self.config = config or W1Config()
        self._on_state = on_state
        self._state = ConnectionState.CONNECTING
        self._pending: collections.deque[W1Sample] = collections.deque()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closing: asyncio.Event | None = None
        self._next_round = 0.0
        self._closed = False
        self.rounds = 0

    @property
    def id(self) -> str:
        """A stable id for logs and metrics."""
        return f"w1:{self.config.base_dir}"

    @property
    def state(self) -> ConnectionState:
        """The current ConnectionState."""
        return self._state

    async def start(self) -> None:
        """Prepare the reader thread. Raises TransportClosed after close()."""
        if self._closed:
            raise TransportClosed(f"{self.id} is closed")
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="w1")
            self._closing = asyncio.Event()
            self._next_round = time.monotonic()

    async def _close(self) -> None:
        """Stop polling; waits for a read in progress. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._closing is not None:
            self._closing.set()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._set_state(ConnectionState.CLOSED)

    async def __anext__(self) -> W1Sample:
        """The next sample; between rounds waits for the interval. Ends after close()."""
        await self.start()
        assert self._closing is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        while not self._pending:
            delay = self._next_round - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._closing.wait(), delay)
                except TimeoutError:
                    pass
            if self._closed:
                raise StopAsyncIteration
            self._next_round = max(self._next_round + self.config.interval, time.monotonic())
            samples = await loop.run_in_executor(self._executor, self._poll)
            self.rounds += 1
            if samples is None:
                self._set_state(ConnectionState.DISCONNECTED)
            else:
                self._set_state(ConnectionState.CONNECTED)
                self._pending.extend(samples)
        if self._closed:
            raise StopAsyncIteration
        return self._pending.popleft()

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state or self._state is ConnectionState.CLOSED:
            return
        self._state = state
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("%s: state callback failed", self.id)

    def _poll(self) -> list[W1Sample] | None:
        """One round (reader thread): samples, or None if the bus directory is missing."""
        cfg = self.config
        base = Path(cfg.base_dir)
        try:
            names = sorted(p.name for p in base.iterdir())
        except OSError as exc:
            log.warning("%s: cannot list the bus (%s)", self.id, exc)
            return None
        prefixes = tuple(f + "-" for f in cfg.families)
        ids = [n for n in names if n.startswith(prefixes)]
        if cfg.sensors is not None:
            ids = [n for n in ids if n in cfg.sensors]
        samples = []
        for sensor_id in ids:
            try:
                raw = (base / sensor_id / cfg.filename).read_bytes()
            except OSError as exc:
                # A sensor that drops off mid-read still reports, as an empty read,
                # which the codec turns into a dead letter: never silent.
                log.info("%s: %s read failed (%s)", self.id, sensor_id, exc)
                raw = b""
            samples.append(W1Sample(sensor_id, raw, int(time.time() * 1000)))
        return samples
