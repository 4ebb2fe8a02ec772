"""Connection lifecycle shared by the transports, and the reconnect backoff."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self


class ConnectionState(enum.Enum):
    """Where a transport is in its life; CLOSED is final and only reached by close()."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # a fault: the transport is backing off and will retry
    CLOSED = "closed"


StateCallback = Callable[[ConnectionState], None]
"""Called on every state change, from the event loop's thread."""


class AsyncTransport:
    """``async with`` and ``async for`` for a transport with ``start()``/``close()``/``__anext__``."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
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


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter; times in seconds."""

    initial: float = 0.05
    maximum: float = 10.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"backoff initial must be > 0 seconds, got {self.initial!r}")
        if self.maximum < self.initial:
            raise ValueError(
                f"backoff maximum must be >= initial ({self.initial}), got {self.maximum!r}"
            )
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before retry number `attempt` (0-based): jittered, capped at `maximum`."""
        ceiling = min(self.maximum, self.initial * self.factor**attempt)
        # Jitter keeps a fleet of appliances from reconnecting in lockstep.
        return (rng or random).uniform(ceiling / 2, ceiling)
