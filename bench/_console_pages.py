"""N open console pages, as a load: each holds /api/stream open (reading every event) and
fetches /api/overview every OVERVIEW_EVERY_S, as a page does on load and on focus.

    python bench/_console_pages.py PORT N      # until SIGTERM; then prints what it received

Run as its own process by bench_appliance (``pages=N``), so its CPU is not the service's.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp

OVERVIEW_EVERY_S = 5.0


async def page(base: str, stop: asyncio.Event, got: dict[str, int]) -> None:
    async with aiohttp.ClientSession(base) as s:
        async def overview() -> None:
            while not stop.is_set():
                async with s.get("/api/overview") as r:
                    await r.read()
                    got["overview_fetches"] += 1
                try:
                    await asyncio.wait_for(stop.wait(), OVERVIEW_EVERY_S)
                except TimeoutError:
                    pass

        async def stream() -> None:
            async with s.get("/api/stream", timeout=aiohttp.ClientTimeout(total=None)) as r:
                async for line in r.content:
                    if line.startswith(b"event: "):
                        kind = line[7:].strip().decode()
                        got[kind] = got.get(kind, 0) + 1

        tasks = [asyncio.create_task(overview()), asyncio.create_task(stream())]
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def main(port: int, n: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    got: dict[str, int] = {"overview_fetches": 0}
    print("ready", flush=True)
    await asyncio.gather(*(page(f"http://127.0.0.1:{port}", stop, got) for _ in range(n)))
    print(json.dumps(got), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
