"""The adapter interface: a transport's frames through a codec into an async sink.

An adapter never raises because of bad input: a frame that does not decode
becomes a ``DeadLetter`` handed to the dead-letter sink, and is counted by
reason. So does a reading the sink refuses when called (``ReadingRejected``, a
``DecodeError``: out of range, a time outside the window, text that cannot be
encoded), and a reading whose write the log refuses twice (``refused``): the
item is dead-lettered and acknowledged, so a redelivery cannot loop. What does
raise out of ``run()`` is a sink that fails for another reason (the log is full
or gone: the event was not durably accepted, so it must not be acknowledged)
and a programming error; the supervisor that owns the adapter decides what to
do about those.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

from devices._errors import DecodeError
from devices._reading import Arrival, DeadLetter, Reading

log = logging.getLogger(__name__)

Sink = Callable[[Reading], Awaitable[None]]
"""Receives each reading; the awaitable it returns completes once the reading is durably accepted.

A sink that refuses a reading for its data raises ``DecodeError`` (``ReadingRejected``)
when called, and the adapter dead-letters the item's bytes with its reason.

An adapter calls the sink for the readings of later items before it awaits the
earlier ones (up to ``max_in_flight`` items), and awaits them in call order. A
sink that takes its place in line when *called* (queues the write and returns a
future) so has several writes in flight; a plain ``async def`` sink runs when
awaited, so its readings are handled one at a time, in order, as before.
"""

DeadLetterSink = Callable[[DeadLetter], Awaitable[None]]
"""Receives each frame that did not decode; like ``Sink``, completes once durably accepted."""

Clock = Callable[[], Arrival]
"""Stamps a frame's arrival (the service passes its trusted clock; injectable for tests)."""


def system_arrival() -> Arrival:
    """Now by the system clocks, wall and monotonic, in integer ms; trust unsaid."""
    return Arrival(time.time_ns() // 1_000_000, time.monotonic_ns() // 1_000_000)


MAX_REASONS = 64  # distinct reasons counted by name; the rest go under "other"
MAX_IN_FLIGHT = 256  # items handed to the sinks and not yet acknowledged, per adapter
CLOSE_DRAIN_S = 10.0  # how long close() lets in-flight items finish before it closes the transport


@dataclass
class AdapterStats:
    """What one adapter has seen: frames in, readings out, decode errors by reason."""

    frames: int = 0
    readings: int = 0
    decode_errors: collections.Counter[str] = field(default_factory=collections.Counter)

    def count_error(self, reason: str) -> None:
        """Count one decode error; reasons past MAX_REASONS distinct ones share 'other'."""
        key = reason if reason in self.decode_errors or len(self.decode_errors) < MAX_REASONS else "other"
        self.decode_errors[key] += 1

    @property
    def decode_error_total(self) -> int:
        """All decode errors, whatever the reason."""
        return sum(self.decode_errors.values())


T = TypeVar("T")


async def _no_dead_letters(letter: DeadLetter) -> None:
    log.warning("dead letter from %s (%s): %s", letter.source, letter.codec, letter.reason)


def refused_by_default(exc: BaseException) -> bool:
    """Whether a failed write may be the record's own fault: by default, never.

    Only the owner of the sink knows its errors: the service passes ``refused=`` to tell
    a record the log refused (written once more, then dead-lettered) from a log that is
    full, closed or broken (the item stays unacknowledged and ``run()`` raises).
    """
    return False


Pending = list[tuple[Awaitable[None], Reading | None]]
"""An item's sink calls in order: each awaitable and its reading (None: the dead letter)."""


class Adapter(abc.ABC, Generic[T]):
    """Reads items of type T from a transport and turns them into readings.

    Subclasses say how an item decodes (`_decode`), where it came from
    (`_source`), and what to do once it is fully handled (`_done`, e.g. an
    MQTT ack). ``run()`` returns when the transport ends (after close()).
    """

    kind: str = ""

    def __init__(
        self,
        adapter_id: str,
        transport: Any,
        sink: Sink,
        dead_letters: DeadLetterSink | None = None,
        *,
        clock: Clock = system_arrival,
        max_in_flight: int = MAX_IN_FLIGHT,
        refused: Callable[[BaseException], bool] = refused_by_default,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight!r}")
        self.id = adapter_id
        self.transport = transport
        self.sink = sink
        self.dead_letters = dead_letters or _no_dead_letters
        self.clock = clock
        self.stats = AdapterStats()
        self.max_in_flight = max_in_flight
        self.refused = refused
        self._reader: asyncio.Task[None] | None = None
        self._drained: asyncio.Event | None = None

    @abc.abstractmethod
    def _decode(self, item: T, arrival: Arrival) -> list[Reading]:
        """Readings in `item`, which arrived at `arrival`; raises DecodeError (only) for bad input.

        A reading returned without an ``arrival`` is given this one (``Reading.arrived``);
        an adapter that copies its readings anyway sets it in the same copy."""

    @abc.abstractmethod
    def _raw(self, item: T) -> bytes:
        """The raw bytes of `item`, for a dead letter."""

    def _source(self, item: T) -> str:
        return self.transport.id

    async def _done(self, item: T) -> None:
        """Called after every reading (or the dead letter) of `item` was accepted."""

    def _done_now(self, item: T) -> bool:
        """``_done`` without awaiting, when an adapter's acknowledgement never waits.

        True: `item` is acknowledged (``_done`` is then not called); False (the default):
        ``run()`` awaits ``_done``. Saves a coroutine per item on the hot path.
        """
        return False

    async def run(self) -> None:
        """Consume the transport until it is closed; blocks only by awaiting.

        Items are read, decoded and handed to the sinks ahead of their
        acknowledgement (up to ``max_in_flight``); each item is acknowledged
        (``_done``) only after every awaitable its sinks returned completed, in
        the order the items arrived. Raises whatever the sinks raise: that item
        and every later one stay unacknowledged.
        """
        window: collections.deque[tuple[T, Pending]] = collections.deque()
        room = asyncio.Event()  # set when the window has room (a plain flag: cheaper than a Semaphore)
        ready = asyncio.Event()
        ended = False
        self._drained = asyncio.Event()

        async def read() -> None:
            frames: AsyncIterator[T] = aiter(self.transport)
            # A transport may hand over what it already holds without a coroutine per item.
            take: Callable[[], T | None] | None = getattr(self.transport, "next_nowait", None)
            limit = self.max_in_flight
            while True:
                while len(window) >= limit:  # nothing in hand: safe to cancel
                    room.clear()
                    await room.wait()
                try:
                    item = await anext(frames)
                except StopAsyncIteration:
                    return
                window.append((item, self._submit(item)))
                if take is not None:
                    while len(window) < limit and (more := take()) is not None:
                        window.append((more, self._submit(more)))
                ready.set()

        async def acknowledge() -> None:
            while True:
                if not window:
                    if ended:
                        return
                    ready.clear()
                    await ready.wait()
                    continue
                item, pending = window[0]
                await self._settle(item, pending)
                window.popleft()
                room.set()

        reader = asyncio.create_task(read(), name=f"{self.id}:read")
        acker = asyncio.create_task(acknowledge(), name=f"{self.id}:ack")
        self._reader = reader
        try:
            await asyncio.wait((reader, acker), return_when=asyncio.FIRST_COMPLETED)
            if acker.done():  # only by failing: it returns after the reader ended
                reader.cancel()
                await asyncio.wait((reader,))
                if not reader.cancelled():
                    reader.exception()  # the sink's failure is the one to report
                acker.result()
            # The reader ended: the transport is exhausted, or close() stopped intake.
            # Acknowledge what is in flight, then hand on the reader's error if any.
            ended = True
            ready.set()
            reader_error = None if reader.cancelled() else reader.exception()
            if reader_error is not None:
                acker.cancel()
                raise reader_error
            await acker
        finally:
            self._reader = None
            self._drained.set()
            for task in (reader, acker):
                task.cancel()
            _discard(window)

    def _submit(self, item: T) -> Pending:
        """Decode one item and call the sinks; the awaitables, each with its reading."""
        arrival = self.clock()
        self.stats.frames += 1
        try:
            readings = self._decode(item, arrival)
        except DecodeError as exc:
            return [self._dead_letter(item, exc, arrival)]
        except Exception as exc:  # a codec bug meeting odd input is still bad input
            log.exception("%s: codec raised outside DecodeError", self.id)
            err = DecodeError(self._raw(item), f"unexpected {type(exc).__name__}: {exc}",
                              type(exc).__module__)
            return [self._dead_letter(item, err, arrival)]
        pending: Pending = []
        try:
            for reading in readings:
                if reading.arrival is None:
                    reading = reading.arrived(arrival)
                try:
                    pending.append((self.sink(reading), reading))
                except DecodeError as exc:  # the sink refused the reading for its data
                    pending.append(self._dead_letter(item, exc, arrival))
        except BaseException:
            _discard([(item, pending)])
            raise
        return pending

    def _dead_letter(self, item: T, exc: DecodeError, arrival: Arrival | None
                     ) -> tuple[Awaitable[None], None]:
        """Count the reason and hand the item's own bytes to the dead-letter sink."""
        self.stats.count_error(exc.reason)
        if not exc.raw:  # a check that saw only the reading: the frame's bytes are the item's
            exc = DecodeError(self._raw(item), exc.reason, exc.codec)
        return self.dead_letters(DeadLetter.from_error(exc, self._source(item), arrival)), None

    async def _settle(self, item: T, pending: Pending) -> None:
        # Await the item's sink calls in order, popping each as it completes (so a failure
        # leaves only the unfinished ones for _discard), then acknowledge the item.
        while pending:
            awaitable, reading = pending[0]
            try:
                await awaitable
            except Exception as exc:
                if reading is None or not self.refused(exc):
                    raise
                written = await self._write_again(item, reading, exc)
            else:
                written = reading is not None
            pending.pop(0)
            if written:
                self.stats.readings += 1
        if not self._done_now(item):
            await self._done(item)

    async def _write_again(self, item: T, reading: Reading, first: BaseException) -> bool:
        """The log refused ``reading`` of ``item``: write it once more, alone; True if written.

        The first refusal may be a neighbour's in the same group commit. A second one is
        the data's: the item is dead-lettered with the reason (and then acknowledged), so
        neither a restart nor the broker's redelivery brings it back for ever. Only this
        reading is written again: the item's others have writes of their own in flight.
        """
        log.warning("%s: the log refused a reading of %s (%s: %s); writing it once more",
                    self.id, self._source(item), type(first).__name__, first)
        try:
            again = self.sink(reading)
        except DecodeError as exc:
            await self._dead_letter(item, exc, None)[0]
            return False
        try:
            await again
            return True
        except Exception as exc:
            if not self.refused(exc):
                raise
            reason = (f"the log refused it twice ({type(exc).__name__}: {exc}); "
                      "dead-lettered so that its redelivery cannot loop")
        await self._dead_letter(item, DecodeError(b"", reason, reading.schema), None)[0]
        return False

    async def close(self) -> None:
        """Stop intake, let in-flight items finish (bounded), close the transport. Safe to call twice."""
        reader, drained = self._reader, self._drained
        if reader is not None and drained is not None and reader is not asyncio.current_task():
            reader.cancel()
            # So their acknowledgements reach the broker before the connection goes.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_DRAIN_S):
                    await drained.wait()
        await self.transport.close()

    async def __aenter__(self) -> Self:
        await self.transport.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _discard(window: Iterable[tuple[Any, Pending]]) -> None:
    """Forget awaitables that will not be awaited, without "never awaited/retrieved" noise."""
    for _item, pending in window:
        for awaitable, _ in pending:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            elif isinstance(awaitable, asyncio.Future):
                if awaitable.done():
                    if not awaitable.cancelled():
                        awaitable.exception()
                else:
                    awaitable.add_done_callback(_retrieve)
        pending.clear()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
