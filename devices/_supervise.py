"""The one supervision primitive: restart a failing child with backoff, stop it within a timeout.

Everything that restarts uses it: the device runners, the stream topologies'
supervisors and the uplink's restart loop (``supervise``, ``stop_child``), the
serial transport's reopen loop (``Backoff``: it runs in a thread, so it waits
on a ``threading.Event`` with the same delays) and the MQTT transport (the same
``Backoff`` numbers, handed to paho, which reconnects by itself).

It lives in ``devices/`` because that is the lowest package that restarts
anything: ``devices`` may not import ``edge`` (or ``broker``), and ``edge``
already builds on ``devices``. It imports nothing of either, so it could move
to a package of its own the day a third user appears.

The restart policies are stated once, here, in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = [
    "DEVICE_RESTART",
    "MQTT_RECONNECT",
    "SERIAL_REOPEN",
    "STREAMS_RESTART",
    "UPLINK_RESTART",
    "Backoff",
    "Failure",
    "stop_child",
    "supervise",
]

log = logging.getLogger("edge")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter; times in seconds.

    Retry ``n`` (0-based) waits between half and all of ``min(maximum, initial *
    factor**n)``; ``jitter=False`` waits all of it.
    """

    initial: float = 0.05
    maximum: float = 10.0
    factor: float = 2.0
    jitter: bool = True

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
        if not self.jitter:
            return ceiling
        # Jitter keeps a fleet of appliances from reconnecting in lockstep.
        return (rng or random).uniform(ceiling / 2, ceiling)


#: A device runner restarting its adapter after a failure the transport did not absorb.
DEVICE_RESTART = Backoff(initial=0.5, maximum=30.0)
#: A stream topology's runner restarting after a failure.
STREAMS_RESTART = Backoff(initial=0.5, maximum=30.0)
#: The uplink started again after a local-log failure: every 5 s, no jitter.
UPLINK_RESTART = Backoff(initial=5.0, maximum=5.0, jitter=False)
#: A serial port reopened after it could not be opened or was lost.
SERIAL_REOPEN = Backoff(initial=0.05, maximum=10.0)
#: An MQTT connection re-established by paho (its reconnect_delay_set).
MQTT_RECONNECT = Backoff(initial=0.5, maximum=30.0)

#: A child that ran this long before failing starts its backoff over.
HEALTHY_AFTER_S = 60.0


@dataclass(frozen=True)
class Failure:
    """One failure of a supervised child, as ``supervise`` reports it to ``on_failure``."""

    error: str  # "TypeName: message"
    restarts: int  # restarts so far, this one included
    delay: float  # seconds until the restart


async def supervise(
    run: Callable[[], Awaitable[None]],
    *,
    name: str,
    stop: asyncio.Event,
    backoff: Backoff,
    on_failure: Callable[[Failure], None] | None = None,
) -> None:
    """Await ``run()`` until it returns or ``stop`` is set; restart it with backoff when it raises.

    A failure is handed to ``on_failure`` (state, counters), then logged as
    ``<name> failed (<error>); restart <n> in <delay>s``; the wait ends early when
    ``stop`` is set. A failure once ``stop`` is set ends supervision quietly (a child
    torn down by its own stop). A child that ran ``HEALTHY_AFTER_S`` before failing
    starts the backoff over. Cancellation propagates.
    """
    attempt = restarts = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing child is reported, never fatal to its supervisor
            if stop.is_set():
                return
            if time.monotonic() - started > HEALTHY_AFTER_S:
                attempt = 0
            delay = backoff.delay(attempt)
            attempt += 1
            restarts += 1
            failure = Failure(f"{type(exc).__name__}: {exc}", restarts, delay)
            if on_failure is not None:
                on_failure(failure)
            log.error("%s failed (%s); restart %d in %.1fs", name, failure.error, restarts, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()


async def stop_child(task: asyncio.Task[None], stop: Callable[[], Awaitable[None] | None], *,
                     name: str, timeout: float) -> bool:
    """Ask a child to stop (``stop()``, awaited if it returns an awaitable), wait ``timeout``
    seconds for its task, then cancel it. True if it stopped by itself."""
    asked = stop()
    if asked is not None:
        await asked
    try:
        async with asyncio.timeout(timeout):
            await task
    except TimeoutError:
        log.error("%s: did not stop within %.0fs; cancelled", name, timeout)
        task.cancel()
        return False
    return True
