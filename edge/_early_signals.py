"""Signals that reach `edge run` before its event loop can take them.

Until the service has installed its asyncio handlers (imports, config, opening the log:
a second or more on a Pi), SIGTERM's default action killed the process with status -15,
and systemd, a test harness or an operator's Ctrl-C right after a start saw a crash
instead of a clean stop. The CLI holds these signals from its first line; the service
replays them, in order, once its own handlers are in place.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping
from types import FrameType

HELD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class EarlySignals:
    """Notes SIGTERM, SIGINT and SIGHUP from construction until ``hand_over()``."""

    def __init__(self, signums: tuple[signal.Signals, ...] = HELD) -> None:
        self.seen: list[int] = []
        for signum in signums:
            signal.signal(signum, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.seen.append(signum)

    def hand_over(self, loop: asyncio.AbstractEventLoop,
                  handlers: Mapping[int, Callable[[], None]]) -> None:
        """Install ``handlers`` on ``loop``, then run one for each signal noted so far."""
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        seen, self.seen = self.seen, []
        for signum in seen:
            noted = handlers.get(signum)
            if noted is not None:
                noted()
