"""The console's own background work over a real log: sparklines filled from the log at
start, and a failure in one of its tasks seen."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.console._helpers import config, produce, serving

pytestmark = pytest.mark.timeout(60)


async def test_sparklines_start_from_the_log_after_a_restart(tmp_path: Path) -> None:
    # A restarted service's counters are at 0: the line's last 5 minutes come from the log.
    cfg = config(tmp_path)
    now = time.time_ns() // 1_000_000
    produce(cfg, [("temperature", "room-1", {"temperature_c": 21.0}, now - 200_000 + i, {})
                  for i in range(3)]
            + [("temperature", "room-1", {"temperature_c": 21.0}, now - 15_000 + i, {})
               for i in range(2)]
            + [("temperature", "room-1", {"temperature_c": 21.0}, now - 400_000, {})])  # too old
    async with serving(cfg) as (console, _url):
        async with asyncio.timeout(20):
            while sum(console.spark.of("room-1")) < 5:
                await asyncio.sleep(0.05)
        line = console.spark.of("room-1")
        assert len(line) == 30 and sum(line) == 5
        # 200 s before the read's end is the 11th of 30 buckets (the 10th if the read came
        # a moment after `now`), 15 s before it the 29th (or 28th).
        assert line.index(3) in (9, 10) and line.index(2) in (27, 28)
        assert sum(console.spark.of("car-1")) == 0


async def test_a_console_task_that_fails_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # The console's tasks are its own (not the service's TaskGroup's): a failure that
    # escapes one must still be seen.
    from edge.console._console import _owned

    async def broken() -> None:
        raise RuntimeError("the read went wrong")

    task = _owned(broken(), "console-test")
    with pytest.raises(RuntimeError):
        await task
    await asyncio.sleep(0)  # the done callback runs on the next turn of the loop
    assert any("console-test failed" in r.getMessage() and r.exc_info for r in caplog.records)
