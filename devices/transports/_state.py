"""Connection lifecycle shared by the transports (their backoff is devices/_supervise.py's)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from types import TracebackType
from typing import Self

from devices._supervise import Backoff

__all__ = ["AsyncTransport", "Backoff", "ConnectionState", "StateCallback"]


class ConnectionState(enum.Enum):
    """Where a transport is in its life; CLOSED is final and only reached by close()."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # a fault: the transport is backing off and will retry
    CLOSED = "closed"


StateCallback = Callable[[ConnectionState], None]
"""Called on every state change, from the event loop's thread."""


class AsyncTransport:
    """``async with`` and ``async for`` for a transport with ``start()``/``_close()``/``__anext__``.

    ``close()`` runs the subclass's ``_close()`` once, however many callers ask at the same
    time: a device's supervisor closes the adapter while the adapter's own ``async with``
    exits, and two closes that each did the work raced (MQTT: the second ack barrier
    replaced the first, whose wait then timed out). Every caller returns once it is closed.
    """

    _close_once: asyncio.Future[None] | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Close the transport; safe to call twice, also concurrently (all wait for it)."""
        if self._close_once is None:
            self._close_once = asyncio.ensure_future(self._close())
            self._close_once.add_done_callback(_retrieve)
        # shield: a caller cancelled while waiting must not cancel the close others await.
        await asyncio.shield(self._close_once)

    async def _close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self


def _retrieve(future: asyncio.Future[None]) -> None:
    # Its callers see the error; this keeps "exception never retrieved" away when none waits.
    if not future.cancelled():
        future.exception()
