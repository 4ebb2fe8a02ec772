"""The future ``send()`` returns: resolved once the record is durable.

Records committed in one transaction share one ``_Round`` and one event, so
a send costs a small object rather than a lock and a condition of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ._errors import BrokerError, ConfigError, KafkaTimeoutError
from ._records import RecordMetadata

log = logging.getLogger("broker")

#: A callback as kept until the record is done: (on success only / on error only / both), fn, args.
_Entry = tuple[bool | None, Callable[..., Any], tuple[Any, ...]]


class _Round:
    """The records of one commit: set once, when their transaction is durable."""

    __slots__ = ("event", "callbacks", "lock", "finished")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.callbacks: list[FutureRecordMetadata] = []
        self.lock = threading.Lock()
        # Set once the callbacks ran too: what flush() waits for, as kafka-python's does.
        # get() waits only for ``event``, so it is not held up by other records' callbacks.
        self.finished = threading.Event()

    def done(self) -> None:
        self.event.set()
        try:
            with self.lock:
                waiting, self.callbacks = self.callbacks, []
            for fut in waiting:
                fut._run_callbacks()
        finally:
            self.finished.set()


class FutureRecordMetadata:
    """Where a sent record landed, once it is durable (kafka-python's name).

    ``get(timeout)`` blocks until the record is committed and returns its
    ``RecordMetadata``, or raises the ``BrokerError`` that stopped it (for
    example ``LogFullError``).  Callbacks run in the log's writer thread.
    """

    __slots__ = (
        "_round", "topic", "partition", "offset", "timestamp",
        "_key_size", "_value_size", "_header_size", "_error", "_callbacks",
    )

    def __init__(self, rnd: _Round, topic: str, partition: int | None, timestamp: int,
                 key_size: int, value_size: int, header_size: int) -> None:
        self._round = rnd
        self.topic = topic
        self.partition = partition
        self.offset = -1
        self.timestamp = timestamp
        self._key_size = key_size
        self._value_size = value_size
        self._header_size = header_size
        self._error: BrokerError | None = None
        # One callback (the usual case: a producer's, or the uplink's) is kept as its entry
        # alone, a list only from the second on: a list per queued record was 88 bytes of the
        # ~480 a record held while queued (bench/_log_perf.py's peak RSS).
        self._callbacks: _Entry | list[_Entry] | None = None

    @property
    def is_done(self) -> bool:
        """True once the record is durable or has failed (an attribute, as in kafka-python)."""
        return self._round.event.is_set()

    def succeeded(self) -> bool:
        return self.is_done and self._error is None

    def failed(self) -> bool:
        return self.is_done and self._error is not None

    def exception(self) -> BrokerError | None:
        return self._error if self.is_done else None

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Wait until durable and return where the record is; ``timeout`` in seconds."""
        if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool)
                                    or not timeout >= 0):
            raise ConfigError(f"get: timeout: expected seconds >= 0 or None, got {timeout!r:.80}")
        if not self._round.event.wait(timeout):
            raise KafkaTimeoutError(
                f"record for {self.topic!r} not committed within {timeout} s (is the disk very slow, "
                "or the log locked by another process?)"
            )
        if self._error is not None:
            raise self._error
        return self._metadata()

    def _metadata(self) -> RecordMetadata:
        return RecordMetadata(
            self.topic, self.partition if self.partition is not None else -1, self.offset,
            self.timestamp, self._key_size, self._value_size, self._header_size,
        )

    def add_callback(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, metadata)`` once the record is durable."""
        return self._add(True, fn, args)

    def add_errback(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, error)`` if the record could not be written."""
        return self._add(False, fn, args)

    def add_both(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, metadata_or_error)`` once, when the record is durable or failed."""
        return self._add(None, fn, args)  # one entry and one lock, not one of each per outcome

    def _add(self, on_success: bool | None, fn: Callable[..., Any], args: tuple[Any, ...]) -> FutureRecordMetadata:
        if not callable(fn):
            raise ConfigError(f"a callback must be callable, got {fn!r:.80}")
        rnd = self._round
        with rnd.lock:
            if not rnd.event.is_set():
                entry = (on_success, fn, args)
                held = self._callbacks
                if held is None:
                    self._callbacks = entry
                    rnd.callbacks.append(self)
                elif isinstance(held, list):
                    held.append(entry)
                else:
                    self._callbacks = [held, entry]
                return self
        self._call(on_success, fn, args)
        return self

    def _run_callbacks(self) -> None:
        held, self._callbacks = self._callbacks, None
        if isinstance(held, list):
            for on_success, fn, args in held:
                self._call(on_success, fn, args)
        elif held is not None:
            self._call(*held)

    def _call(self, on_success: bool | None, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        # Callbacks run in the log's writer thread: one that raises must not end that
        # thread (every later send() would wait forever), so it is logged, as kafka-python does.
        try:
            if on_success is None:  # add_both
                fn(*args, self._metadata() if self._error is None else self._error)
            elif on_success and self._error is None:
                fn(*args, self._metadata())
            elif not on_success and self._error is not None:
                fn(*args, self._error)
        except Exception:
            log.exception("a callback of a record sent to %r raised; the log goes on", self.topic)
