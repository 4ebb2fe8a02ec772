"""The event writer: readings and dead letters → keyed, timestamped, headed records in the log."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from broker import ConfigError as BrokerConfigError
from broker import KafkaProducer
from devices import DeadLetter, Reading, ReadingRejected, TimeSource, checked_event_value
from devices.adapters._base import MAX_REASONS
from edge._clock import ClockStatus, ClockTrust, KeyStamps, gps_fix_utc_ms
from edge._completions import Completions
from edge._config import Config
from edge._dedupe import DELIVERY_HEADER, read_tail
from edge._devices import MqttDevice
from edge._metrics import Metrics
from edge._validate import EventCheck

if TYPE_CHECKING:
    from edge._runner import DeviceRunner

log = logging.getLogger("edge")

__all__ = ["EventWriter"]


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


# Keyed by str: a stamp's status is a ClockStatus, or the str an Arrival carries.
_CLOCK_BYTES: dict[str, bytes] = {status: status.value.encode() for status in ClockStatus}
MAX_REASON_CHARS = 1000  # of a dead letter's reason header
_TRUSTED = frozenset(s for s in ClockStatus if s.trusted)  # not .trusted per event: a property
_DEVICE, _POLL = TimeSource.DEVICE, TimeSource.POLL  # module globals: read per event


class _Written:
    """One sink's durable readings since the last drain, added to its metrics once per drain."""

    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        # reading, ts, ingest, value, whose clock ts is ("device" or "box") and the box's status
        self.last: tuple[Reading, int, int, dict[str, Any], str, str] | None = None


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
        self._completions: Completions | None = None
        self._bytes = _Bytes()

    def _append(self, on_failed: Callable[[BaseException], None], topic: str,
                on_durable: Callable[[], None], value: bytes, key: bytes,
                headers: list[tuple[str, bytes]], timestamp_ms: int,
                awaited: bool) -> asyncio.Future[None]:
        """Queue one record; the future completes once it is durable (or fails with the error).

        ``on_failed``: the runner's ``_failed``, made once per sink, not once per event.
        ``awaited``: a sender waits for its acknowledgement (an MQTT QoS 1 PUBACK), so the
        log starts a commit early rather than hold a publisher's in-flight window full.
        """
        completions = self._completions
        if completions is None:
            completions = self._completions = Completions(asyncio.get_running_loop())
        try:
            record = self.producer.send(topic, value, key, headers, None, timestamp_ms, awaited=awaited)
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
        mqtt = d if isinstance(d, MqttDevice) else None  # only MQTT QoS 1 redelivers
        if not (mqtt is not None and mqtt.qos > 0) and runner.content is None:
            return
        try:
            tail = await asyncio.to_thread(read_tail, self.cfg.data_dir, d.topic)
        except Exception as exc:  # the device must still start
            log.warning("device %s: could not read the tail of %s to recognise copies (%s: %s)",
                        d.name, d.topic, type(exc).__name__, exc)
            return
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        durable.set_result(None)
        deliveries = (runner.redeliveries.prime(tail, durable, f"mqtt:{mqtt.client_id}:".encode())
                      if mqtt is not None else 0)
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
        failed = functools.partial(self._failed, runner)
        key_of = _Bytes()  # device id -> event key (prefix + id, encoded)
        # The transport's id, encoded once per adapter (a property that formats a string).
        source_of: list[Any] = [None, b""]  # [adapter, its transport id as bytes]
        written = _Written()
        redeliveries, content = runner.redeliveries, runner.content
        check = EventCheck(d.ranges, d.earliest_time)
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
            reading, ts, ingest, event_value, time_from, status = last
            runner.last_reading = {"key": reading.device_id, "timestamp_ms": ts,
                                   "value": event_value}
            runner.last_reading_ms = ingest
            runner.last_reading_clock = (time_from, status)
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
            source = reading.time_source
            polled = source is _POLL
            box_made = source is not _DEVICE or device_ts is None
            if not box_made and (type(device_ts) is not int or device_ts < earliest):
                check.earliest(reading, device_ts)  # raises
            fix_utc = (gps_fix_utc_ms(reading)
                       if reading.kind == "gps" and self.cfg.clock.gps_time else None)
            arrival = reading.arrival
            status: str  # a ClockStatus, or the word the Arrival's maker used for its clock
            if fix_utc is not None:
                trust.observe_gps(fix_utc, reading.arrival_monotonic_ms)
                # The fix may have changed the time and status: stamped anew.
                ingest, status = trust.stamp()
            elif polled or arrival is None or arrival.clock is None:
                # A poll's offset below is taken against a wall clock read now; a reading
                # without an arrival of ours (a test's, a plain adapter's) is stamped here.
                ingest, status = trust.stamp()
            else:
                ingest, status = arrival.wall_ms, arrival.clock
            try:
                key = key_of[prefix + reading.device_id]
            except UnicodeEncodeError:
                raise ReadingRejected(f"device id {reading.device_id!r} is not Unicode text "
                                      "(a lone surrogate): no event key", reading.schema) from None
            ts = ingest if device_ts is None else device_ts
            if polled:
                # The bus poll was stamped by the system clock: move it onto the trusted one.
                ts += ingest - trust.clock.wall_ms()
            elif not box_made and ts > ingest + max_ahead and status in _TRUSTED:
                check.ahead(reading, ts, ingest)  # raises
            if box_made:
                ts = self.stamps.stamp(key, ts)  # box-made: never back because of a jump
            adapter = runner.adapter
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
                    # _append made the completions before any record can be durable.
                    self._completions.after_drain[written] = flush  # type: ignore[union-attr]
                written.count += 1
                written.last = (reading, ts, ingest, event_value,
                                "box" if box_made else "device", status)

            try:
                write = self._append(failed, d.topic, durable, value, key, headers, ts,
                                     delivery is not None)
            except BrokerConfigError as exc:  # the log refused the record itself: its data
                raise ReadingRejected(f"{reading.device_id}: the log refused the record "
                                      f"({type(exc).__name__}: {exc})", reading.schema) from None
            if delivery is not None:
                redeliveries.add(delivery.identity, write)
            if content is not None and content_key is not None:
                content.add(content_key, write)
            return write

        return sink

    def dead_letter_sink_for(self, runner: DeviceRunner) -> Callable[[DeadLetter], Awaitable[None]]:
        d = runner.cfg
        topic = self.cfg.log.dead_letter_topic
        failed = functools.partial(self._failed, runner)
        labels: set[str] = set()  # the reasons this device's counter is labelled with
        # A dead-lettered QoS 1 message is PUBACKed once its dead letter is durable.
        awaited = isinstance(d, MqttDevice) and d.qos > 0

        def dead_letter(letter: DeadLetter) -> asyncio.Future[None]:
            arrival = letter.arrival
            ingest, status = (self.trust.stamp() if arrival is None or arrival.clock is None
                              else (arrival.wall_ms, arrival.clock))
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
                ("clock", _CLOCK_BYTES[status]),
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
                                headers, letter.arrived_ms or ingest, awaited)

        return dead_letter

