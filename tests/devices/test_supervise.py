"""The one supervision primitive: restart with backoff, stop within a timeout."""

from __future__ import annotations

import asyncio
import random

import pytest

from devices import DEVICE_RESTART, STREAMS_RESTART, UPLINK_RESTART, Failure, stop_child, supervise
from devices._supervise import MQTT_RECONNECT, SERIAL_REOPEN, Backoff

FAST = Backoff(initial=0.001, maximum=0.002)


def test_the_restart_policies_are_the_ones_the_loops_had() -> None:
    # Device runner and streams: 0.5 s doubling to 30 s, jittered; uplink: 5 s flat;
    # a serial port: 50 ms to 10 s; paho: 0.5 s to 30 s.
    assert (DEVICE_RESTART.initial, DEVICE_RESTART.maximum, DEVICE_RESTART.jitter) == (0.5, 30.0, True)
    assert (STREAMS_RESTART.initial, STREAMS_RESTART.maximum) == (0.5, 30.0)
    assert [UPLINK_RESTART.delay(n) for n in range(4)] == [5.0] * 4
    assert (SERIAL_REOPEN.initial, SERIAL_REOPEN.maximum) == (0.05, 10.0)
    assert (MQTT_RECONNECT.initial, MQTT_RECONNECT.maximum) == (0.5, 30.0)


def test_a_jittered_delay_is_between_half_and_all_of_the_ceiling() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0)]:
        for _ in range(50):
            assert ceiling / 2 <= DEVICE_RESTART.delay(attempt, rng) <= ceiling


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}])
def test_a_backoff_that_cannot_work_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


async def test_a_failing_child_is_restarted_until_it_returns() -> None:
    runs, failures = [], []

    async def child() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise OSError(f"failure {len(runs)}")

    await supervise(child, name="test child", stop=asyncio.Event(), backoff=FAST,
                    on_failure=failures.append)
    assert len(runs) == 3
    assert [(f.error, f.restarts) for f in failures] == [("OSError: failure 1", 1),
                                                         ("OSError: failure 2", 2)]
    assert all(isinstance(f, Failure) and f.delay <= FAST.maximum for f in failures)


async def test_stop_ends_the_backoff_wait_and_a_failure_while_stopping_is_quiet() -> None:
    stop, failures = asyncio.Event(), []

    async def child() -> None:
        raise RuntimeError("down")

    task = asyncio.create_task(supervise(child, name="test child", stop=stop,
                                         backoff=Backoff(3600, 3600), on_failure=failures.append))
    while not failures:
        await asyncio.sleep(0)
    stop.set()
    await task  # the hour's wait ended with stop
    assert len(failures) == 1

    async def failing_after_stop() -> None:
        stop.set()
        raise RuntimeError("torn down by its own stop")

    stop.clear()
    failures.clear()
    await supervise(failing_after_stop, name="test child", stop=stop, backoff=FAST,
                    on_failure=failures.append)
    assert failures == []


async def test_stop_child_waits_for_a_child_that_stops_and_cancels_one_that_does_not() -> None:
    stopped = asyncio.Event()

    async def obedient() -> None:
        await stopped.wait()

    task = asyncio.create_task(obedient())
    assert await stop_child(task, stopped.set, name="obedient", timeout=30) is True

    async def stubborn() -> None:
        await asyncio.Event().wait()

    asked = []

    async def ask() -> None:  # an async stop() is awaited
        asked.append(True)

    task = asyncio.create_task(stubborn())
    assert await stop_child(task, ask, name="stubborn", timeout=0.01) is False
    assert asked == [True]
    with pytest.raises(asyncio.CancelledError):
        await task
