"""Device runners: one per configured device, owning its transport, adapter and restarts.

A ``DeviceRunner`` builds its device's transport and adapter, runs it, and
restarts it with backoff when it fails (the transports already reconnect by
themselves after a fault; a restart is for what escapes them: the log refusing
a write, a bug). A failing device never takes the others down. Every reading is
appended to the log and only then does the adapter acknowledge it (MQTT QoS 1
PUBACK), so what the device side saw acknowledged is durable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from broker import ClosedError, StorageError
from devices import (
    CODECS,
    CONVENTIONS,
    DEVICE_RESTART,
    Backoff,
    ConnectionState,
    Failure,
    FixedLengthFraming,
    LineFraming,
    W1Adapter,
    W1Config,
    W1Transport,
    supervise,
)
from devices.adapters import Adapter, Clock, DeadLetterSink, Sink, system_arrival
from edge._clock import ClockTrust
from edge._config import DeviceConfig
from edge._dedupe import ContentIndex, RedeliveryIndex
from edge._devices import MqttDevice, SerialDevice, W1Device
from edge._metrics import Metrics
from edge._rates import EventRate

log = logging.getLogger("edge")

__all__ = ["ADAPTERS", "DeviceRunner", "EventSinks"]


def _refused(exc: BaseException) -> bool:
    """Whether a failed write may be the record's own fault (the adapter writes it once more,
    then dead-letters it): not when the log is full or busy (retriable), closed by us, or
    broken (a storage or OS error fails every record alike: the item stays unacknowledged
    and the device restarts, to be redelivered once the log is well)."""
    return not (getattr(exc, "retriable", False)
                or isinstance(exc, ClosedError | StorageError | OSError))


class EventSinks(Protocol):
    """Where a runner's readings go: the service's ``EventWriter`` (edge/_writer.py), or a
    test's stand-in. A sink is made per runner, so it can count and stamp for its device."""

    def sink_for(self, runner: DeviceRunner) -> Sink: ...

    def dead_letter_sink_for(self, runner: DeviceRunner) -> DeadLetterSink: ...

    async def prime(self, runner: DeviceRunner) -> None:
        """Called once before the device starts (teach its dedupe what the log holds)."""


class DeviceRunner:
    """One device: builds its transport and adapter, runs it, restarts it with backoff.

    ``trust``: the service's clock (arrival stamps, GPS time for NMEA); ``data_dir``:
    where MQTT devices keep their session epochs (None: not kept).
    """

    def __init__(self, cfg: DeviceConfig, writer: EventSinks, metrics: Metrics, *,
                 trust: ClockTrust | None = None, data_dir: str | os.PathLike[str] | None = None,
                 backoff: Backoff = DEVICE_RESTART) -> None:
        self.cfg = cfg
        self.writer = writer
        self.metrics = metrics
        self.state = "starting"
        self.last_reading_ms: int | None = None
        self.readings = 0
        self.dead_letters = 0
        self.dead_letter_logged_at = -1e9
        self.restarts = 0
        self.last_error: str | None = None
        self.adapter: Adapter[Any] | None = None
        self._stop = asyncio.Event()
        self._backoff = backoff
        self.data_dir = data_dir
        #: Stamps each frame's arrival; the readings carry it to the sink (``Reading.arrival``).
        self.clock: Clock = trust.arrival if trust is not None else system_arrival
        mono = (lambda: trust.clock.monotonic_ms() / 1000) if trust is not None else time.monotonic
        self.rate = EventRate(60.0, mono)
        #: The last reading written: its key, timestamp and value, for `edge status`.
        self.last_reading: dict[str, Any] | None = None
        #: Whose clock the last reading's time is ("device": its own, e.g. GPS or a cuff's
        #: stamp; "box": the arrival) and the box's clock status when it was stamped.
        self.last_reading_clock: tuple[str, str] | None = None
        #: Deliveries and readings already written, so a copy is acked, not written again.
        self.redeliveries = RedeliveryIndex()
        self.content = ContentIndex(cfg.dedupe_window) if cfg.dedupe_window > 0 else None
        self.deduplicated = 0
        metrics.device_connected.labels(cfg.name).set(0)

    @property
    def connected(self) -> bool:
        return self.state == ConnectionState.CONNECTED.value

    def on_state(self, state: ConnectionState) -> None:
        # Log the edges an operator cares about, not every reconnect attempt of a missing device.
        if not self._stop.is_set():
            if state is ConnectionState.CONNECTED and self.state != state.value:
                log.info("device %s: connected", self.cfg.name)
            elif state is ConnectionState.DISCONNECTED and self.state in ("connected", "starting"):
                log.warning("device %s: disconnected (the transport keeps retrying)", self.cfg.name)
        self.state = state.value
        self.metrics.device_connected.labels(self.cfg.name).set(1 if self.connected else 0)

    def _build(self) -> Adapter[Any]:
        sink, dead = self.writer.sink_for(self), self.writer.dead_letter_sink_for(self)
        return ADAPTERS[self.cfg.transport](self, sink, dead)

    async def run(self) -> None:
        """Run until stop(); failures are logged, counted and retried with backoff."""
        await self.writer.prime(self)  # before the first message: a redelivery comes first
        await supervise(self._run_once, name=f"device {self.cfg.name}", stop=self._stop,
                        backoff=self._backoff, on_failure=self._failed)
        self.state = "stopped"
        self.metrics.device_connected.labels(self.cfg.name).set(0)

    async def _run_once(self) -> None:
        self.adapter = self._build()
        async with self.adapter as adapter:
            if self._stop.is_set():
                return
            await adapter.run()
        if not self._stop.is_set():
            raise RuntimeError("transport ended without being closed")

    def _failed(self, failure: Failure) -> None:
        self.last_error = failure.error
        self.restarts += 1
        self.state = "failed"
        self.metrics.device_connected.labels(self.cfg.name).set(0)
        self.metrics.device_restarts.labels(self.cfg.name).inc()

    async def stop(self) -> None:
        """Stop intake: close the transport (an adapter then hands on what it holds). Idempotent."""
        self._stop.set()
        if self.adapter is not None:
            await self.adapter.close()

    def health(self, now_ms: int) -> dict[str, Any]:
        stats = self.adapter.stats if self.adapter is not None else None
        return {
            "connected": self.connected,
            "state": self.state,
            "kind": self.cfg.kind,
            "transport": self.cfg.transport,
            "topic": self.cfg.topic,
            "last_reading_ms": self.last_reading_ms,
            "last_reading_age_s": (None if self.last_reading_ms is None
                                   else round((now_ms - self.last_reading_ms) / 1000, 3)),
            "readings": self.readings,
            "rate_per_s": round(self.rate.per_second(), 3),
            "rate_window_s": round(self.rate.span_s(), 3),
            "last_reading": self.last_reading,
            "last_reading_clock": (None if self.last_reading_clock is None else
                                   {"source": self.last_reading_clock[0],
                                    "box": self.last_reading_clock[1]}),
            "dead_letters": self.dead_letters,
            "deduplicated": self.deduplicated,
            "decode_errors": stats.decode_error_total if stats else 0,
            "restarts": self.restarts,
            # What is wrong now, if the transport says (a port that cannot be opened, a
            # refused CONNACK: it keeps retrying), else the last failure of the adapter.
            "last_error": getattr(getattr(self.adapter, "transport", None), "last_error", None)
            or self.last_error,
        }



_D = TypeVar("_D", bound=DeviceConfig)


def _config_of(runner: DeviceRunner, kind: type[_D]) -> _D:
    """The runner's device config as the kind ADAPTERS chose the builder for."""
    d = runner.cfg
    if not isinstance(d, kind):  # ADAPTERS and DEVICE_TYPES are keyed by the same transports
        raise TypeError(f"device {d.name}: a {type(d).__name__} given to the {kind.__name__} adapter")
    return d


# The serial and MQTT builders import their transports when called: pyserial and paho
# load only on a box that has such a device (devices/_lazy.py).
def _serial(runner: DeviceRunner, sink: Sink, dead: DeadLetterSink) -> Adapter[Any]:
    from devices import SerialAdapter, SerialConfig, SerialTransport

    d = _config_of(runner, SerialDevice)
    framing = (LineFraming() if d.framing == "line"
               else FixedLengthFraming(int(d.framing.split(":", 1)[1])))
    st = SerialTransport(SerialConfig(port=d.port, baudrate=d.baudrate, framing=framing),
                         on_state=runner.on_state)
    return SerialAdapter(d.device_id or d.name, st, CODECS[d.codec](**d.codec_options), sink, dead,
                         clock=runner.clock, refused=_refused)


def _mqtt(runner: DeviceRunner, sink: Sink, dead: DeadLetterSink) -> Adapter[Any]:
    from devices import MqttAdapter, MqttTransport
    from edge._mqtt import mqtt_config

    d = _config_of(runner, MqttDevice)
    mt = MqttTransport(mqtt_config(d, runner.data_dir), on_state=runner.on_state)
    return MqttAdapter(d.name, mt, CONVENTIONS[d.codec](**d.codec_options), sink, dead,
                       clock=runner.clock, refused=_refused)


def _w1(runner: DeviceRunner, sink: Sink, dead: DeadLetterSink) -> Adapter[Any]:
    d = _config_of(runner, W1Device)
    wt = W1Transport(W1Config(base_dir=d.directory, interval=d.interval), on_state=runner.on_state)
    return W1Adapter(d.name, wt, CODECS[d.codec](**d.codec_options), sink, dead,
                     names=d.names, clock=runner.clock, refused=_refused)


#: A device's adapter by its transport: a new kind of device is its adapter (and transport)
#: in devices/ and one line here.
ADAPTERS: dict[str, Callable[[DeviceRunner, Sink, DeadLetterSink], Adapter[Any]]] = {
    "serial": _serial,
    "mqtt": _mqtt,
    "w1": _w1,
}
