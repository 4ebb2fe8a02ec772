"""``edge-broker serve``: one listener on one log until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

from ._config import ListenerConfig
from ._server import WireServer


def serve(config: ListenerConfig, data_dir: str | os.PathLike[str],
          ready: Callable[[WireServer], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; ``ready(server)`` once it listens (blocking)."""
    asyncio.run(_serve(config, data_dir, ready))


async def _serve(config: ListenerConfig, data_dir: str | os.PathLike[str],
                 ready: Callable[[WireServer], None] | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with WireServer(config, data_dir=data_dir) as server:
        if ready is not None:
            ready(server)
        await stop.wait()
    sys.stderr.flush()
