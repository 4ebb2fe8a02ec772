"""The supervisor: device adapters → the local log, with health, metrics and systemd hooks.

One asyncio process. A ``DeviceRunner`` per configured device owns its
transport and adapter, restarts it with backoff when it fails (the transports
already reconnect by themselves after a fault; a restart is for what escapes
them: the log refusing a write, a bug) and never takes the others down. Every
reading is appended to the log and only then does the adapter acknowledge it
(MQTT QoS 1 PUBACK), so what the device side saw acknowledged is durable.

Signals: SIGTERM/SIGINT stop intake, flush and close within the shutdown
bound and exit 0; SIGHUP re-reads the config file and starts, stops or
restarts only the devices and stream topologies whose settings changed, moves
/health to a new [health] address and applies show_values; a change to
edge_id, data_dir, [log], [upstream] or [clock] is logged by key as needing a
restart (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from broker import (
    BrokerError,
    Clock,
    ClosedError,
    KafkaAdminClient,
    KafkaProducer,
    LogConfig,
    StorageError,
    SystemClock,
    TopicConfig,
)
from broker import ConfigError as BrokerConfigError
from devices import (
    CODECS,
    CONVENTIONS,
    ConnectionState,
    DeadLetter,
    FixedLengthFraming,
    LineFraming,
    MqttAdapter,
    MqttTransport,
    Reading,
    ReadingRejected,
    SerialAdapter,
    SerialConfig,
    SerialTransport,
    W1Adapter,
    W1Config,
    W1Transport,
    checked_event_value,
)
from devices.adapters import Adapter
from devices.adapters._base import MAX_REASONS
from edge._clock import ClockJump, ClockStatus, ClockTrust, KeyStamps, gps_fix_utc_ms
from edge._config import Config, DeviceConfig, HealthConfig, load_config
from edge._dedupe import DELIVERY_HEADER, ContentIndex, RedeliveryIndex, read_tail
from edge._errors import ConfigError, StartupError
from edge._exit import health_bind_error, log_open_error
from edge._health import HealthServer
from edge._metrics import Metrics
from edge._mqtt import mqtt_config
from edge._notify import sd_notify, watchdog_interval
from edge._rates import EventRate
from edge._runlock import RunLock
from edge._validate import EventCheck

log = logging.getLogger("edge")

__all__ = ["DeviceRunner", "Service", "run_service"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _refused(exc: BaseException) -> bool:
    """Whether a failed write may be the record's own fault (the adapter writes it once more,
    then dead-letters it): not when the log is full or busy (retriable), closed by us, or
    broken (a storage or OS error fails every record alike: the item stays unacknowledged
    and the device restarts, to be redelivered once the log is well)."""
    return not (getattr(exc, "retriable", False)
                or isinstance(exc, ClosedError | StorageError | OSError))


class DeviceRunner:
    """One device: builds its transport and adapter, runs it, restarts it with backoff."""

    def __init__(self, cfg: DeviceConfig, writer: EventWriter, metrics: Metrics,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0) -> None:
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
        self._adapter: Adapter[Any] | None = None
        self._stopping = False
        self._backoff = (backoff_initial, backoff_max)
        #: The last arrival time this runner's adapter stamped (see ``_arrival``).
        self.last_arrival_ms: int | None = None
        trust = getattr(writer, "trust", None)
        self._trust: ClockTrust | None = trust
        #: The whole stamp (time, status) of the last arrival, until one sink call takes it.
        self.arrival_stamp: tuple[int, ClockStatus] | None = None
        mono = (lambda: trust.clock.monotonic_ms() / 1000) if trust is not None else time.monotonic
        self.rate = EventRate(60.0, mono)
        #: The last reading written: its key, timestamp and value, for `edge status`.
        self.last_reading: dict[str, Any] | None = None
        #: Deliveries and readings already written, so a copy is acked, not written again.
        self.redeliveries = RedeliveryIndex()
        self.content = ContentIndex(cfg.dedupe_window) if cfg.dedupe_window > 0 else None
        self.deduplicated = 0
        metrics.device_connected.labels(cfg.name).set(0)

    def _arrival(self) -> int:
        """The adapter's clock: the best-known UTC (GPS-corrected), remembered so the
        sink can tell a box-stamped reading from one the device stamped itself.

        The adapter calls it for each item just before it decodes the item and calls the
        sinks (in one go, no await between), so the first sink call of the item takes this
        stamp (``take_arrival_stamp``) as its ingest time instead of reading the clocks
        again: one stamp per event, not two.
        """
        trust = self._trust
        if trust is None:
            self.last_arrival_ms = _now_ms()
            return self.last_arrival_ms
        stamp = self.arrival_stamp = trust.stamp()
        self.last_arrival_ms = stamp[0]
        return stamp[0]

    def take_arrival_stamp(self) -> tuple[int, ClockStatus] | None:
        """The stamp of the last arrival, once: a later sink call (another reading of the
        same item) gets None and takes a fresh stamp. ``stop()`` drops a stamp no sink
        took, so what a codec hands on at close (NMEA's last fix) is stamped anew."""
        stamp, self.arrival_stamp = self.arrival_stamp, None
        return stamp

    @property
    def connected(self) -> bool:
        return self.state == ConnectionState.CONNECTED.value

    def _on_state(self, state: ConnectionState) -> None:
        # Log the edges an operator cares about, not every reconnect attempt of a missing device.
        if not self._stopping:
            if state is ConnectionState.CONNECTED and self.state != state.value:
                log.info("device %s: connected", self.cfg.name)
            elif state is ConnectionState.DISCONNECTED and self.state in ("connected", "starting"):
                log.warning("device %s: disconnected (the transport keeps retrying)", self.cfg.name)
        self.state = state.value
        self.metrics.device_connected.labels(self.cfg.name).set(1 if self.connected else 0)

    def _build(self) -> Adapter[Any]:
        d = self.cfg
        sink, dead = self.writer.sink_for(self), self.writer.dead_letter_sink_for(self)
        if d.transport == "serial":
            framing = (LineFraming() if d.framing == "line"
                       else FixedLengthFraming(int(d.framing.split(":", 1)[1])))
            st = SerialTransport(SerialConfig(port=d.port or "", baudrate=d.baudrate, framing=framing),
                                 on_state=self._on_state)
            options = dict(d.codec_options)
            trust = getattr(self.writer, "trust", None)
            if d.codec == "nmea0183" and trust is not None:
                # A fix is handed on when the next epoch starts: GPS time needs its first arrival.
                options["clock"] = trust.clock.monotonic_ms
            return SerialAdapter(d.device_id or d.name, st, CODECS[d.codec](**options), sink, dead,
                                 clock=self._arrival, refused=_refused)
        if d.transport == "mqtt":
            mt = MqttTransport(mqtt_config(d, getattr(self.writer, "data_dir", None)),
                               on_state=self._on_state)
            return MqttAdapter(d.name, mt, CONVENTIONS[d.codec](**d.codec_options), sink, dead,
                               clock=self._arrival, refused=_refused)
        wt = W1Transport(W1Config(base_dir=d.w1_dir, interval=d.interval), on_state=self._on_state)
        return W1Adapter(d.name, wt, CODECS[d.codec](**d.codec_options), sink, dead,
                         names=d.names, clock=self._arrival, refused=_refused)

    async def run(self) -> None:
        """Run until stop(); failures are logged, counted and retried with backoff."""
        attempt = 0
        prime = getattr(self.writer, "prime", None)
        if prime is not None:
            await prime(self)  # before the first message: a redelivery comes first
        while not self._stopping:
            started = time.monotonic()
            try:
                self._adapter = self._build()
                async with self._adapter as adapter:
                    if self._stopping:
                        break
                    await adapter.run()
                if self._stopping:
                    break
                raise RuntimeError("transport ended without being closed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing device is reported, never fatal to the others
                if self._stopping:
                    break
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.restarts += 1
                self.state = "failed"
                self.metrics.device_connected.labels(self.cfg.name).set(0)
                self.metrics.device_restarts.labels(self.cfg.name).inc()
                if time.monotonic() - started > 60:
                    attempt = 0  # it ran well for a while: start the backoff over
                first, cap = self._backoff
                delay = random.uniform(0.5, 1.0) * min(cap, first * 2**attempt)
                attempt += 1
                log.error("device %s failed (%s); restart %d in %.1fs",
                          self.cfg.name, self.last_error, self.restarts, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        while not self._stopping:
                            await asyncio.sleep(0.05)
        self.state = "stopped"
        self.metrics.device_connected.labels(self.cfg.name).set(0)

    async def stop(self) -> None:
        """Stop intake: close the transport (an adapter then hands on what it holds). Idempotent."""
        self._stopping = True
        self.arrival_stamp = None  # intake ends: nothing after this is the last item's reading
        if self._adapter is not None:
            await self._adapter.close()

    def health(self, now_ms: int) -> dict[str, Any]:
        stats = self._adapter.stats if self._adapter is not None else None
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
            "dead_letters": self.dead_letters,
            "deduplicated": self.deduplicated,
            "decode_errors": stats.decode_error_total if stats else 0,
            "restarts": self.restarts,
            # What is wrong now, if the transport says (a port that cannot be opened, a
            # refused CONNACK: it keeps retrying), else the last failure of the adapter.
            "last_error": getattr(getattr(self._adapter, "transport", None), "last_error", None)
            or self.last_error,
        }


class _Completions:
    """Hands the log's "durable" (or failed) outcomes to the event loop, many per wake-up.

    The log's writer thread resolves a whole commit's records at once; waking the
    loop once per record (``call_soon_threadsafe`` writes to its self-pipe) would
    cost a syscall and a loop turn per event. Outcomes queue here and one
    scheduled drain hands them all on. At the end of each drain the callbacks put
    in ``after_drain`` during it run once (the sinks' counters, added up per drain
    rather than per event), before any waiter's own callbacks can: whoever awaits a
    record sees it counted.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ready: collections.deque[tuple[asyncio.Future[None], Callable[[], None],
                                             Callable[[BaseException], None], Any]] = \
            collections.deque()
        self._scheduled = False
        self.after_drain: dict[object, Callable[[], None]] = {}

    def wait_for(self, record: Any, on_durable: Callable[[], None],
                 on_failed: Callable[[BaseException], None]) -> asyncio.Future[None]:
        """A future resolved once ``record`` (a broker send future) is durable or failed.

        ``on_durable()`` or ``on_failed(error)`` runs in the loop first.
        """
        waiter: asyncio.Future[None] = self._loop.create_future()
        record.add_both(self._put, waiter, on_durable, on_failed)
        return waiter

    def _put(self, waiter: asyncio.Future[None], on_durable: Callable[[], None],
             on_failed: Callable[[BaseException], None], outcome: Any) -> None:
        # The writer thread. Appending before reading the flag means a drain that has
        # already reset it will either see this outcome or be followed by a new drain.
        self._ready.append((waiter, on_durable, on_failed, outcome))
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

    def _drain(self) -> None:
        self._scheduled = False
        ready = self._ready
        try:
            while ready:
                waiter, on_durable, on_failed, outcome = ready.popleft()
                try:
                    if isinstance(outcome, BaseException):
                        on_failed(outcome)
                    else:
                        on_durable()
                except Exception:  # noqa: BLE001 - bookkeeping must not lose the outcome
                    log.exception("bookkeeping after a write failed")
                if waiter.done():
                    continue
                if isinstance(outcome, BaseException):
                    waiter.set_exception(outcome)
                else:
                    waiter.set_result(None)
        finally:
            flushes, self.after_drain = self.after_drain, {}
            for flush in flushes.values():
                try:
                    flush()
                except Exception:  # noqa: BLE001 - a counter must not stop the others
                    log.exception("counting written events failed")


def _value_encoder() -> Callable[[Any], str]:
    """``json.dumps(v, separators=(",", ":"))``, with its C encoder built once, not per event.

    JSONEncoder.encode makes a new C encoder (and a markers dict for its cycle check) on
    every call. The check is left out: an event value comes from Reading.to_event_value,
    a fresh tree that cannot hold a cycle. Same text, byte for byte.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # a Python without the C accelerator
        return json.JSONEncoder(separators=(",", ":")).encode
    encode = c_make_encoder(None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii,
                            None, ":", ",", False, False, True)
    return lambda value: "".join(encode(value, 0))


_encode_value = _value_encoder()


class _Bytes(dict[str, bytes]):
    """``str`` → its UTF-8 bytes, remembered: header values repeat on every event."""

    def __missing__(self, text: str) -> bytes:
        encoded = text.encode()
        if len(self) < 1024:  # a bound, in case a codec makes up many schema names
            self[text] = encoded
        return encoded


_CLOCK_BYTES = {status: status.value.encode() for status in ClockStatus}
MAX_REASON_CHARS = 1000  # of a dead letter's reason header
_TRUSTED = frozenset(s for s in ClockStatus if s.trusted)  # not .trusted per event: a property


class _Written:
    """One sink's durable readings since the last drain, added to its metrics once per drain."""

    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        self.last: tuple[Reading, int, int, dict[str, Any]] | None = None  # reading, ts, ingest, value


class EventWriter:
    """Turns readings and dead letters into events and appends them to the log.

    The sinks queue the append when called and return a future that completes
    once the record is durable, so an adapter can keep several readings in
    flight (in order: the log appends in call order) and acknowledge each only
    when its future completes.
    """

    def __init__(self, producer: KafkaProducer, cfg: Config, metrics: Metrics,
                 trust: ClockTrust | None = None) -> None:
        self.producer = producer
        self.cfg = cfg
        self.metrics = metrics
        self.trust = trust if trust is not None else ClockTrust()
        self.stamps = KeyStamps(self.trust)
        self.last_failure_ms: int | None = None
        self.last_failure: str | None = None
        #: The log's count of records written when the last failure was seen: once it
        #: grows, writes have resumed (``Service.health``).
        self.records_at_failure: int | None = None
        self._edge = cfg.edge_id.encode()
        #: Where MQTT devices keep their session epochs (edge/_mqtt.py).
        self.data_dir = cfg.data_dir
        self._completions: _Completions | None = None
        self._bytes = _Bytes()

    def _append(self, on_failed: Callable[[BaseException], None], topic: str,
                on_durable: Callable[[], None], value: bytes, key: bytes,
                headers: list[tuple[str, bytes]], timestamp_ms: int) -> asyncio.Future[None]:
        """Queue one record; the future completes once it is durable (or fails with the error).

        ``on_failed``: the runner's ``_failed``, made once per sink, not once per event.
        """
        completions = self._completions
        if completions is None:
            completions = self._completions = _Completions(asyncio.get_running_loop())
        try:
            record = self.producer.send(topic, value, key, headers, None, timestamp_ms)
        except BrokerConfigError:
            raise  # this record's arguments, not the log's state: the caller refuses the record
        except Exception as exc:
            on_failed(exc)
            raise
        return completions.wait_for(record, on_durable, on_failed)

    def _failed(self, runner: DeviceRunner, exc: BaseException) -> None:
        self.last_failure_ms = self.trust.clock.monotonic_ms()
        self.last_failure = f"{type(exc).__name__}: {exc}"
        self.records_at_failure = self.producer.metrics()["records"]
        self.metrics.write_failures.labels(runner.cfg.name, type(exc).__name__).inc()

    async def prime(self, runner: DeviceRunner) -> None:
        """Teach the runner's dedupe indexes what the tail of its topic already holds.

        A failure costs only the dedupe of copies of what came before it: logged, not fatal.
        """
        d = runner.cfg
        if not (d.transport == "mqtt" and d.qos > 0) and runner.content is None:
            return
        try:
            tail = await asyncio.to_thread(read_tail, self.cfg.data_dir, d.topic)
        except Exception as exc:  # noqa: BLE001 - the device must still start
            log.warning("device %s: could not read the tail of %s to recognise copies (%s: %s)",
                        d.name, d.topic, type(exc).__name__, exc)
            return
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        durable.set_result(None)
        deliveries = runner.redeliveries.prime(tail, durable, f"mqtt:{d.client_id}:".encode())
        content = runner.content  # (an empty index is falsy: compare with None)
        readings = content.prime(tail, durable, self.trust.now_ms()) if content is not None else 0
        log.info("device %s: %d records of %s read back: %d MQTT deliveries, %d readings within "
                 "the dedupe window", d.name, len(tail), d.topic, deliveries, readings)

    def _deduplicated(self, runner: DeviceRunner, reason: str, reading: Reading,
                      prior: asyncio.Future[None]) -> asyncio.Future[None]:
        """Count and log a copy of a reading the log holds (or is writing): acked with the first."""
        runner.deduplicated += 1
        self.metrics.deduplicated.labels(runner.cfg.name, reason).inc()
        log.debug("device %s: %s copy of %s at %s not written again", runner.cfg.name, reason,
                  reading.device_id, reading.timestamp_ms)
        return prior

    def sink_for(self, runner: DeviceRunner) -> Callable[[Reading], Awaitable[None]]:
        d = runner.cfg
        m_in = self.metrics.events_in.labels(d.name, d.topic)
        m_last = self.metrics.last_reading.labels(d.name)
        observe = self.metrics.commit_latency.observe
        prefix = d.device_id_prefix
        as_bytes = self._bytes
        edge_id = self._edge
        w1 = d.transport == "w1"
        failed = functools.partial(self._failed, runner)
        key_of = _Bytes()  # device id -> event key (prefix + id, encoded)
        # The transport's id, encoded once per adapter (a property that formats a string).
        source_of: list[Any] = [None, b""]  # [adapter, its transport id as bytes]
        written = _Written()
        redeliveries, content = runner.redeliveries, runner.content
        check = EventCheck(d.ranges, d.earliest_time_ms)
        # Bound here: the checks run for every event (the methods only to say why).
        checked, ranges = checked_event_value, check.ranges
        earliest, max_ahead = check.earliest_ms, check.max_ahead_ms

        def flush() -> None:
            # Counters per drain, not per event: each prometheus inc/set takes a lock.
            n, last = written.count, written.last
            if not n or last is None:
                return
            written.count, written.last = 0, None
            m_in.inc(n)
            runner.readings += n
            runner.rate.add(n)
            reading, ts, ingest, event_value = last
            runner.last_reading = {"key": reading.device_id, "timestamp_ms": ts,
                                   "value": event_value}
            runner.last_reading_ms = ingest
            m_last.set(ingest / 1000)

        def sink(reading: Reading) -> asyncio.Future[None]:
            delivery = reading.delivery
            if delivery is not None and delivery.redelivered:
                prior = redeliveries.prior(delivery.identity)
                if prior is not None:
                    return self._deduplicated(runner, "redelivery", reading, prior)
            trust = self.trust
            # Refused here (ReadingRejected: the adapter dead-letters the frame), never in the
            # log's group commit, where one bad record would take the others down with it.
            event_value = checked(reading, ranges)
            device_ts = reading.timestamp_ms
            box_made = w1 or device_ts is None or device_ts == runner.last_arrival_ms
            if not box_made and (type(device_ts) is not int or device_ts < earliest):
                check.earliest(reading, device_ts)  # type: ignore[arg-type]  # raises
            fix_utc = (gps_fix_utc_ms(reading)
                       if reading.kind == "gps" and self.cfg.clock.gps_time else None)
            stamp = runner.take_arrival_stamp()
            if fix_utc is not None:
                trust.observe_gps(fix_utc, reading.arrival_monotonic_ms)
                stamp = None  # the fix may have changed the time and status: stamp anew
            elif w1:
                stamp = None  # its offset below is taken against a wall clock read now
            ingest, status = stamp if stamp is not None else trust.stamp()
            try:
                key = key_of[prefix + reading.device_id]
            except UnicodeEncodeError:
                raise ReadingRejected(f"device id {reading.device_id!r} is not Unicode text "
                                      "(a lone surrogate): no event key", reading.schema) from None
            ts = ingest if device_ts is None else device_ts
            if w1:
                # The bus poll was stamped by the system clock: move it onto the trusted one.
                ts += ingest - trust.clock.wall_ms()
            elif not box_made and ts > ingest + max_ahead and status in _TRUSTED:
                check.ahead(reading, ts, ingest)  # raises
            if box_made:
                ts = self.stamps.stamp(key, ts)  # box-made: never back because of a jump
            adapter = runner._adapter
            if adapter is not source_of[0]:
                source_of[0] = adapter
                source_of[1] = (adapter.transport.id if adapter is not None else d.name).encode()
            try:
                headers = [
                    ("source", source_of[1]),
                    ("device_kind", as_bytes[reading.kind]),
                    ("schema", as_bytes[reading.schema]),
                    ("edge_id", edge_id),
                    ("ingest_ms", str(ingest).encode()),
                    ("clock", _CLOCK_BYTES[status]),  # not status.value: an enum property, slow
                ]
                value = _encode_value(event_value).encode()
            except (UnicodeEncodeError, ValueError, TypeError, RecursionError) as exc:
                raise ReadingRejected(f"{reading.device_id}: cannot be encoded as an event "
                                      f"({type(exc).__name__}: {exc})", reading.schema) from None
            if delivery is not None:
                headers.append((DELIVERY_HEADER, delivery.identity))
            content_key = None
            if content is not None and not box_made:
                content_key = content.key(key, ts, value)
                prior = content.prior(content_key)
                if prior is not None:
                    return self._deduplicated(runner, "content", reading, prior)
            t0 = time.perf_counter()

            def durable() -> None:
                observe(time.perf_counter() - t0)
                if not written.count:  # the first since the last drain: count at its end
                    self._completions.after_drain[written] = flush  # type: ignore[union-attr]
                written.count += 1
                written.last = (reading, ts, ingest, event_value)

            try:
                write = self._append(failed, d.topic, durable, value, key, headers, ts)
            except BrokerConfigError as exc:  # the log refused the record itself: its data
                raise ReadingRejected(f"{reading.device_id}: the log refused the record "
                                      f"({type(exc).__name__}: {exc})", reading.schema) from None
            if delivery is not None:
                redeliveries.add(delivery.identity, write)
            if content_key is not None:
                content.add(content_key, write)  # type: ignore[union-attr]
            return write

        return sink

    def dead_letter_sink_for(self, runner: DeviceRunner) -> Callable[[DeadLetter], Awaitable[None]]:
        d = runner.cfg
        topic = self.cfg.log.dead_letter_topic
        failed = functools.partial(self._failed, runner)
        labels: set[str] = set()  # the reasons this device's counter is labelled with

        def dead_letter(letter: DeadLetter) -> asyncio.Future[None]:
            stamp = runner.take_arrival_stamp()
            ingest, status = stamp if stamp is not None else self.trust.stamp()
            reason = letter.reason
            if len(reason) > MAX_REASON_CHARS:  # a reason may quote what the device sent
                reason = reason[:MAX_REASON_CHARS] + f"... ({len(reason)} characters)"
            headers = [  # what a device sent may not be Unicode: escaped, never refused here
                ("reason", reason.encode("utf-8", "backslashreplace")),
                ("codec", letter.codec.encode("utf-8", "backslashreplace")),
                ("source", letter.source.encode("utf-8", "backslashreplace")),
                ("device", d.name.encode()),
                ("device_kind", d.kind.encode()),
                ("edge_id", self._edge),
                ("ingest_ms", str(ingest).encode()),
                ("clock", status.value.encode()),
            ]

            def durable() -> None:
                runner.dead_letters += 1
                self.metrics.dead_letters.labels(d.name).inc()
                short = reason if len(reason) <= 80 else reason[:77] + "..."
                # Reasons name values (a hostile device sends a new one each time): past
                # MAX_REASONS labels per device they share "other", or /metrics and the
                # process grow with every new value.
                if short not in labels and len(labels) >= MAX_REASONS:
                    short = "other"
                labels.add(short)
                self.metrics.decode_errors.labels(d.name, short).inc()
                # One line per device every 10 s at most: a noisy line must not flood the journal.
                now = time.monotonic()
                if now - runner.dead_letter_logged_at >= 10.0:
                    log.warning("device %s: dead letter (%s); %d so far", d.name, short,
                                runner.dead_letters)
                    runner.dead_letter_logged_at = now

            return self._append(failed, topic, durable, letter.raw or b"", d.name.encode(),
                                headers, letter.arrived_ms or ingest)

        return dead_letter


def log_config_of(cfg: Config, clock: Clock | None = None) -> LogConfig:
    """The broker's LogConfig for the appliance config (``clock``: for tests of time)."""
    retention_ms = -1 if cfg.log.retention_seconds == -1 else cfg.log.retention_seconds * 1000
    return LogConfig(
        data_dir=cfg.data_dir, durability=cfg.log.durability, quota_bytes=cfg.log.quota_bytes,
        full_policy=cfg.log.full_policy, default_partitions=cfg.log.partitions,
        default_topic_config=TopicConfig(retention_ms=retention_ms,
                                         retention_bytes=cfg.log.retention_bytes),
        clock=clock if clock is not None else SystemClock(),
    )


#: Config sections a running service cannot take on: the log and its writer are opened
#: with them, the uplink and the clock built from them. SIGHUP names what changed there.
_RESTART_FIELDS = ("edge_id", "data_dir", "log", "upstream", "clock")


def restart_needed(old: Config, new: Config) -> list[str]:
    """The keys (``log.quota_bytes``, ``upstream.sasl_password``) that differ in sections
    SIGHUP cannot apply; names only, never values (some are secrets)."""
    changed = []
    for name in _RESTART_FIELDS:
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        if name == "upstream":
            keys = sorted(k for k in {*a.settings, *b.settings}
                          if a.settings.get(k) != b.settings.get(k))
            changed += [f"upstream.{k}" for k in keys] + (
                ["upstream.enabled"] if a.enabled != b.enabled else [])
        elif dataclasses.is_dataclass(a):
            changed += [f"{name}.{f.name}" for f in dataclasses.fields(a)
                        if getattr(a, f.name) != getattr(b, f.name)]
        else:
            changed.append(name)
    return changed


def _withhold_values(devices: dict[str, dict[str, Any]]) -> None:
    """Drop the last readings' values from /health: any local user can read it, and a
    value may be a patient's; the key and time stay (``[health] show_values`` shows all)."""
    for d in devices.values():
        last = d.get("last_reading")
        if last and "value" in last:
            d["last_reading"] = {k: v for k, v in last.items() if k != "value"}
            d["last_reading"]["value_withheld"] = True


class Service:
    """The running appliance. ``await run()`` until ``request_stop()`` (or SIGTERM)."""

    def __init__(self, cfg: Config, *, config_path: str | None = None,
                 shutdown_timeout: float = 10.0, clock: Clock | None = None,
                 ntp: Callable[[], bool] | None = None) -> None:
        """``clock`` (wall and monotonic) and ``ntp`` (is the system clock synced?) are
        injectable so tests can step time; by default the machine's own."""
        self.cfg = cfg
        self.config_path = config_path
        self.shutdown_timeout = shutdown_timeout
        self.metrics = Metrics()
        self.clock = clock if clock is not None else SystemClock()
        self.trust = ClockTrust(self.clock, on_jump=self._on_clock_jump,
                                jump_threshold_s=cfg.clock.jump_threshold,
                                gps_max_age_s=cfg.clock.gps_max_age,
                                **({"ntp": ntp} if ntp is not None else {}))
        self.runners: dict[str, tuple[DeviceRunner, asyncio.Task[None]]] = {}
        self.streams: dict[str, tuple[Any, asyncio.Task[None]]] = {}  # name: (TopologySupervisor, task)
        self.log_info: dict[str, Any] = {}
        self.log_ok = True
        self.uplink: Any = None
        self.started_ms = _now_ms()
        self._started_mono = self.clock.monotonic_ms()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self.producer: KafkaProducer | None = None
        self.writer: EventWriter | None = None
        self.health_server: HealthServer | None = None
        self._run_lock = RunLock(cfg.data_dir)

    def _health_token(self) -> str | None:
        return self.cfg.health.token  # read per request: SIGHUP may change it

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def health(self, show_values: bool | None = None) -> dict[str, Any]:
        """What /health returns; ``ok`` is true when every device and the log are well.

        ``show_values``: the last readings' values (None: as ``[health] show_values`` says)."""
        now, mono = self.trust.now_ms(), self.clock.monotonic_ms()
        devices = {name: r.health(now) for name, (r, _) in self.runners.items()}
        if not (self.cfg.health.show_values if show_values is None else show_values):
            _withhold_values(devices)
        w = self.writer
        # Failing from a refused write until the log writes a record again (not for a
        # fixed time after it): /health turns 200 with the first write that succeeds.
        failing = (w is not None and w.last_failure is not None and self.producer is not None
                   and self.producer.metrics()["records"] == w.records_at_failure)
        log_ok = self.log_ok and not failing
        info = dict(self.log_info, ok=log_ok,
                    last_write_error=w.last_failure if failing else None)  # type: ignore[union-attr]
        uplink = self._uplink_health()
        streams = {name: sup.health() for name, (sup, _) in self.streams.items()}
        ok = log_ok and all(d["connected"] for d in devices.values()) and (
            uplink is None or bool(uplink.get("ok", True))) and all(
            st["ok"] for st in streams.values())
        clock = self.trust.describe()
        if w is not None:
            clock["held_timestamps"] = w.stamps.held
        return {"ok": ok, "edge_id": self.cfg.edge_id,
                "uptime_s": round((mono - self._started_mono) / 1000, 1),
                "clock": clock["status"], "time": clock,
                "devices": devices, "log": info, "uplink": uplink,
                **({"streams": streams} if streams else {})}

    def _on_clock_jump(self, jump: ClockJump) -> None:
        self.metrics.clock_jumps.labels(jump.direction).inc()

    def _uplink_health(self) -> dict[str, Any] | None:
        if self.uplink is None:
            if self.cfg.upstream.enabled:
                return {"ok": False, "state": "not available in this build"}
            return None
        try:
            st = self.uplink.status()
        except Exception as exc:  # noqa: BLE001 - health must answer whatever the uplink does
            return {"ok": False, "state": f"error: {exc}"}
        state = str(getattr(st.state, "value", st.state))
        return {"ok": state == "online", "state": state, "lag_records": st.lag_records,
                "records_per_s": round(st.records_per_s, 1), "records_total": st.records_total,
                "dead_lettered": st.dead_lettered,
                "partition_mismatches": [str(m) for m in st.partition_mismatches],
                "last_error": st.last_error or getattr(self, "uplink_error", None)}

    def _start_device(self, d: DeviceConfig) -> None:
        assert self._tg is not None and self.writer is not None
        runner = DeviceRunner(d, self.writer, self.metrics)
        task = self._tg.create_task(runner.run(), name=f"device:{d.name}")
        self.runners[d.name] = (runner, task)
        log.info("device %s: starting (%s %s, codec %s, topic %s)", d.name, d.transport,
                 d.port or d.host or d.w1_dir, d.codec, d.topic)

    async def _stop_device(self, name: str) -> None:
        runner, task = self.runners.pop(name)
        await runner.stop()
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await task
        except TimeoutError:
            log.error("device %s: did not stop within %.0fs; cancelled", name, self.shutdown_timeout)
            task.cancel()

    async def _reload_loop(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            if self.config_path is None:
                log.warning("SIGHUP: no config file to reload")
                continue
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                log.error("SIGHUP: config not reloaded, keeping the running one: %s",
                          str(exc).replace("\n", "; "))
                continue
            await self._apply_reload(new)

    async def _apply_reload(self, new: Config) -> None:
        """SIGHUP: apply what can change while running; name what needs a restart."""
        old = self.cfg
        wanted = {d.name: d for d in new.devices}
        for name in list(self.runners):
            if name not in wanted or wanted[name] != self.runners[name][0].cfg:
                log.info("SIGHUP: stopping device %s", name)
                await self._stop_device(name)
        for name, d in wanted.items():
            if name not in self.runners:
                self._start_device(d)
        await self._reload_streams(new.streams)
        health = await self._reload_health(old, new)
        pending = restart_needed(old, new)
        if pending:
            log.warning("SIGHUP: %s changed: applied at the next restart (systemctl restart "
                        "edge); running with the values it started with", ", ".join(pending))
        self.cfg = dataclasses.replace(new, health=health,
                                       **{f: getattr(old, f) for f in _RESTART_FIELDS})
        log.info("SIGHUP: config reloaded: %d devices, %d stream topologies",
                 len(self.runners), len(self.streams))

    async def _reload_health(self, old: Config, new: Config) -> HealthConfig:
        """Move /health to a new address (listening there first); returns what now runs."""
        if (new.health.host, new.health.port) == (old.health.host, old.health.port):
            return new.health
        server = HealthServer(new.health.host, new.health.port, self.health, self.metrics.registry,
                              token=self._health_token)
        try:
            await server.start()
        except OSError as exc:
            log.error("SIGHUP: %s; /health stays on %s",
                      health_bind_error(exc, new.health.address, new.file), old.health.address)
            return dataclasses.replace(new.health, host=old.health.host, port=old.health.port)
        previous, self.health_server = self.health_server, server
        if previous is not None:
            await previous.close()
        log.info("SIGHUP: /health moved from %s to %s", old.health.address, new.health.address)
        return new.health

    async def _housekeeping(self, admin: KafkaAdminClient) -> None:
        ping = watchdog_interval()
        last_ping = 0.0
        while True:
            try:
                # Shielded: a cancel at shutdown waits for the thread's read to end,
                # so admin.close() never runs under a describe_log in flight.
                read = asyncio.ensure_future(asyncio.to_thread(admin.describe_log))
                try:
                    info = await asyncio.shield(read)
                except asyncio.CancelledError:
                    await asyncio.wait([read])
                    if not read.cancelled():
                        read.exception()  # seen: shutting down, nothing to report
                    raise
                self.log_info = {k: info[k] for k in ("data_dir", "bytes", "records", "file_bytes", "disk_bytes",
                                                      "quota_bytes", "dropped_records", "expired_records",
                                                      "topics")}
                m = self.metrics
                m.log_bytes.set(info["bytes"])
                m.log_records.set(info["records"])
                m.log_file_bytes.set(info["file_bytes"])
                m.log_disk_bytes.set(info["disk_bytes"])
                m.log_dropped.set(info["dropped_records"])
                m.log_expired.set(info["expired_records"])
                if self.uplink is not None:
                    m.uplink_up.set(1 if str(self.uplink.state.value) == "online" else 0)
                    for mm in self.uplink.status().partition_mismatches:
                        m.uplink_partition_mismatch.labels(mm.local).set(1)
                # Also looks for clock jumps while no events flow.
                status = self.trust.status()
                for s in ClockStatus:
                    m.clock_status.labels(s.value).set(1 if s is status else 0)
                self.log_ok = True
            except Exception as exc:  # noqa: BLE001 - reported in /health, then retried
                if self.log_ok:
                    log.error("log: cannot describe the log: %s", exc)
                self.log_ok = False
            if ping is not None and time.monotonic() - last_ping >= ping:
                # Only ping while the loop runs and the log answers: a hung box gets restarted.
                if self.log_ok:
                    sd_notify("WATCHDOG=1")
                last_ping = time.monotonic()
            await asyncio.sleep(min(1.0, ping or 1.0))

    async def run(self) -> None:
        """Run until request_stop(); then stop intake, flush and close within the bound.

        Raises StartupError when the log, its run lock or the health address cannot be had."""
        cfg = self.cfg
        self.producer, admin = await asyncio.to_thread(self._open_log)
        self.writer = EventWriter(self.producer, cfg, self.metrics, self.trust)
        self.health_server = HealthServer(cfg.health.host, cfg.health.port, self.health,
                                          self.metrics.registry, token=self._health_token)
        try:
            try:
                await self.health_server.start()
            except OSError as exc:
                raise health_bind_error(exc, cfg.health.address, cfg.file) from exc
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for d in cfg.devices:
                    self._start_device(d)
                helpers = [tg.create_task(self._housekeeping(admin), name="housekeeping"),
                           tg.create_task(self._reload_loop(), name="reload")]
                self._start_streams(tg)
                self._start_uplink(tg, helpers)
                sd_notify(f"READY=1\nSTATUS=running {len(cfg.devices)} devices")
                log.info("edge %s running: %d devices, log in %s", cfg.edge_id, len(cfg.devices),
                         cfg.data_dir)
                await self._stop.wait()
                sd_notify("STOPPING=1")
                log.info("stopping: intake first, then flush")
                t0 = time.monotonic()
                await asyncio.gather(*(self._stop_device(n) for n in list(self.runners)))
                await self._stop_streams()  # after intake: each commits its current batch
                # The uplink finishes its current transaction and stops; what is not yet
                # upstream stays in the log (its group is protected) and goes at the
                # next start, so shutdown stays bounded while offline.
                await self._stop_uplink()
                for t in helpers:
                    t.cancel()
                # Wait for the cancellations to land: housekeeping may be inside
                # admin.describe_log, and admin is closed right after this block.
                for t in helpers:
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
        finally:
            if self.health_server is not None:
                await self.health_server.close()
            left = max(1.0, self.shutdown_timeout - (time.monotonic() - t0)) if "t0" in locals() \
                else self.shutdown_timeout
            await asyncio.to_thread(self.producer.close, left)
            admin.close()
            self._run_lock.release()
        log.info("stopped cleanly in %.2fs", time.monotonic() - t0)

    def _open_log(self) -> tuple[KafkaProducer, KafkaAdminClient]:
        """Open the log (blocking); a log that cannot be used raises StartupError."""
        cfg = self.cfg
        try:
            producer = KafkaProducer(log_config=log_config_of(cfg, self.clock))
        except (BrokerError, OSError) as exc:
            raise log_open_error(exc, cfg.data_dir) from exc
        try:
            self._run_lock.acquire()
            admin = KafkaAdminClient(log_config=log_config_of(cfg, self.clock))
        except (BrokerError, OSError) as exc:
            producer.close(1.0)
            self._run_lock.release()
            raise log_open_error(exc, cfg.data_dir) from exc
        except StartupError:
            producer.close(1.0)
            raise
        return producer, admin

    def _start_streams(self, tg: asyncio.TaskGroup) -> None:
        """One supervised StreamsRunner per [[streams]] topology (edge/_streams.py)."""
        from edge._streams import release_removed_topologies

        # Topologies gone from the config would keep their inputs from retention for ever.
        release_removed_topologies(log_config_of(self.cfg, self.clock),
                                   [t.name for t in self.cfg.streams])
        for t in self.cfg.streams:
            self._start_topology(t)

    def _start_topology(self, t: Any) -> None:
        assert self._tg is not None
        from edge._streams import StreamsCollector, TopologySupervisor

        if not getattr(self, "_streams_collected", False):
            self.metrics.registry.register(StreamsCollector(
                lambda: {name: sup for name, (sup, _) in self.streams.items()}))
            self._streams_collected = True
        sup = TopologySupervisor(t, log_config_of(self.cfg, self.clock),
                                 self.cfg.log.dead_letter_topic)
        self.streams[t.name] = (sup, self._tg.create_task(sup.run(), name=f"streams:{t.name}"))

    async def _stop_topology(self, name: str) -> None:
        if name not in self.streams:
            return  # already stopped (a SIGHUP and a SIGTERM can cross)
        sup, task = self.streams.pop(name)
        sup.stop()
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await task
        except TimeoutError:
            log.error("streams %s: did not stop within %.0fs; cancelled", name,
                      self.shutdown_timeout)
            task.cancel()

    async def _stop_streams(self) -> None:
        for sup, _ in self.streams.values():
            sup.stop()  # all at once: each commits its current batch
        await asyncio.gather(*(self._stop_topology(n) for n in list(self.streams)))

    async def _reload_streams(self, topologies: tuple[Any, ...]) -> None:
        """SIGHUP: stop the topologies that went or changed, start the new or changed ones."""
        wanted = {t.name: t for t in topologies}
        for name in list(self.streams):
            running = self.streams.get(name)  # a SIGTERM meanwhile may have stopped it
            if running is not None and (name not in wanted or wanted[name] != running[0].cfg):
                log.info("SIGHUP: stopping topology %s", name)
                await self._stop_topology(name)
        from edge._streams import release_removed_topologies

        await asyncio.to_thread(release_removed_topologies, log_config_of(self.cfg, self.clock),
                                list(wanted))
        for name, t in wanted.items():
            if self._stop.is_set():
                return  # shutting down: start nothing the shutdown would not stop
            if name not in self.streams:
                log.info("SIGHUP: starting topology %s", name)
                self._start_topology(t)

    def _start_uplink(self, tg: asyncio.TaskGroup, helpers: list[asyncio.Task[None]]) -> None:
        """Start the uplink (edge.uplink) when [upstream] is enabled and this build has it."""
        if not self.cfg.upstream.enabled:
            return
        try:
            from edge.uplink import Uplink, UplinkConfig
        except ImportError:
            log.warning("[upstream] is configured but this build has no uplink; events stay local")
            return
        from edge._config import uplink_topics

        settings = dict(self.cfg.upstream.settings)
        settings.setdefault("topics", uplink_topics(self.cfg.devices, self.cfg.log.dead_letter_topic))
        uplink_cfg = UplinkConfig(edge_id=self.cfg.edge_id, data_dir=self.cfg.data_dir, **settings)
        self._uplink_task = tg.create_task(self._run_uplink(Uplink, uplink_cfg), name="uplink")

    async def _run_uplink(self, uplink_cls: Any, uplink_cfg: Any) -> None:
        """Run the uplink; if it fails (a local-log error), report it and start it again."""
        while not self._stop.is_set():
            self.uplink = uplink_cls(uplink_cfg)
            try:
                await self.uplink.run()
            except Exception as exc:  # noqa: BLE001 - reported in /health; devices keep flowing
                self.uplink_error = f"{type(exc).__name__}: {exc}"
                log.error("uplink failed (%s); restarting in 5s", self.uplink_error)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await self._stop.wait()
            else:
                return

    async def _stop_uplink(self) -> None:
        task = getattr(self, "_uplink_task", None)
        if task is None or self.uplink is None:
            return
        self.uplink.stop()
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await task
        except TimeoutError:
            log.error("uplink did not stop within %.0fs; cancelled", self.shutdown_timeout)
            task.cancel()


class _OneLineFormatter(logging.Formatter):
    """One line per log event (journald keeps them well): tracebacks folded onto the line."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr, one line per event; no timestamps under journald (it adds its own)."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The uplink reports its connection state itself; aiokafka's own errors would repeat it.
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(root.level if root.level <= logging.DEBUG else logging.CRITICAL)


def run_service(cfg: Config, *, log_level: str = "INFO", shutdown_timeout: float = 10.0,
                config_path: str | os.PathLike[str] | None = None,
                warnings: list[str] | None = None) -> int:
    """Run the appliance in this process until SIGTERM/SIGINT; returns the exit code (0).

    Raises StartupError (one line, and the ``exit_status`` to exit with) when the log or
    the health address cannot be used. ``warnings``: lines to log at WARNING once logging is set up (the CLI's findings)."""
    setup_logging(log_level)
    for warning in warnings or ():
        log.warning("%s", warning)

    async def main() -> None:
        service = Service(cfg, config_path=None if config_path is None else str(Path(config_path)),
                          shutdown_timeout=shutdown_timeout)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, service.request_stop)
        loop.add_signal_handler(signal.SIGINT, service.request_stop)
        loop.add_signal_handler(signal.SIGHUP, service.request_reload)
        await service.run()

    asyncio.run(main())
    return 0
