"""The log's "durable" (or failed) outcomes, handed to the event loop many per wake-up."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("edge")

__all__ = ["Completions"]


class Completions:
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
                except Exception:  # bookkeeping must not lose the outcome
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
                except Exception:  # a counter must not stop the others
                    log.exception("counting written events failed")

