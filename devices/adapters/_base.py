"""The adapter interface: a transport's frames through a codec into an async sink.

An adapter never raises because of bad input: a frame that does not decode
becomes a ``DeadLetter`` handed to the dead-letter sink, and is counted by
reason. What does raise out of ``run()`` is a failing sink (the event was not
durably accepted, so it must not be acknowledged) and a programming error;
the supervisor that owns the adapter decides what to do about those.
"""

from __future__ import annotations

import abc
import collections
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from devices._errors import DecodeError
from devices._reading import DeadLetter, Reading

log = logging.getLogger(__name__)

Sink = Callable[[Reading], Awaitable[None]]
"""Receives each reading; returns once the reading is durably accepted."""

DeadLetterSink = Callable[[DeadLetter], Awaitable[None]]
"""Receives each frame that did not decode; returns once it is durably accepted."""

Clock = Callable[[], int]
"""Wall-clock time in ms since the epoch (injectable for tests)."""


def wall_clock_ms() -> int:
    """Now, in integer ms since the epoch."""
    return time.time_ns() // 1_000_000


MAX_REASONS = 64  # distinct reasons counted by name; the rest go under "other"


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
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.id = adapter_id
        self.transport = transport
        self.sink = sink
        self.dead_letters = dead_letters or _no_dead_letters
        self.clock = clock
        self.stats = AdapterStats()

    @abc.abstractmethod
    def _decode(self, item: T) -> list[Reading]:
        """Readings in `item`; raises DecodeError (only) for bad input."""

    @abc.abstractmethod
    def _raw(self, item: T) -> bytes:
        """The raw bytes of `item`, for a dead letter."""

    def _source(self, item: T) -> str:
        return self.transport.id

    async def _done(self, item: T) -> None:
        """Called after every reading (or the dead letter) of `item` was accepted."""

    async def run(self) -> None:
        """Consume the transport until it is closed; blocks only by awaiting.

        Raises whatever the sinks raise (the item is then not acknowledged).
        """
        frames: AsyncIterator[T] = aiter(self.transport)
        async for item in frames:
            await self.handle(item)

    async def handle(self, item: T) -> None:
        """Decode one item and hand its readings or dead letter on."""
        arrived = self.clock()
        self.stats.frames += 1
        try:
            readings = self._decode(item)
        except DecodeError as exc:
            self.stats.count_error(exc.reason)
            await self.dead_letters(DeadLetter.from_error(exc, self._source(item), arrived))
        except Exception as exc:  # a codec bug meeting odd input is still bad input
            reason = f"unexpected {type(exc).__name__}: {exc}"
            self.stats.count_error(reason)
            log.exception("%s: codec raised outside DecodeError", self.id)
            err = DecodeError(self._raw(item), reason, type(exc).__module__)
            await self.dead_letters(DeadLetter.from_error(err, self._source(item), arrived))
        else:
            for reading in readings:
                if reading.timestamp_ms is None:
                    reading = reading.with_timestamp(arrived)
                await self.sink(reading)
                self.stats.readings += 1
        await self._done(item)

    async def close(self) -> None:
        """Close the transport (ends run()). Safe to call twice."""
        await self.transport.close()

    async def __aenter__(self):  # type: ignore[no-untyped-def]
        await self.transport.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
