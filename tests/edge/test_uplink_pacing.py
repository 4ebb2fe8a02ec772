"""``TransactionPacer``: how long the uplink holds a transaction after the previous commit.

Fed with transaction times from a model of the coordinator, not timed: a transaction
started before the coordinator finished the last one is refused and retried by aiokafka
20 ms later, so it takes the hold-off, plus the wait to the next retry, plus its work.
"""

from __future__ import annotations

import math

import pytest

from edge.uplink._pacing import DELAYS_S, TransactionPacer

RETRY_S = 0.020
WORK_S = 0.015   # AddPartitionsToTxn, Produce, the checkpoint, EndTxn


def took(delay_s: float, finish_s: float) -> float:
    """A transaction held ``delay_s`` after a commit the coordinator finishes in ``finish_s``."""
    retries = max(0, math.ceil((finish_s - delay_s) / RETRY_S))
    return delay_s + retries * RETRY_S + WORK_S


def run(pacer: TransactionPacer, finish_s: float, n: int) -> list[float]:
    delays = []
    for _ in range(n):
        delays.append(pacer.delay_s)
        pacer.observe(took(pacer.delay_s, finish_s))
    return delays


def test_each_delay_is_tried_once_first_starting_with_none() -> None:
    pacer = TransactionPacer()
    assert run(pacer, 0.004, len(DELAYS_S)) == list(DELAYS_S)


@pytest.mark.parametrize(("finish_s", "best_s"), [
    (0.004, 0.005),   # one broker: a few ms; holding 5 ms saves the 20 ms retry
    (0.0, 0.0),       # finished at once: no hold-off
    (0.009, 0.010),   # holding 10 ms: no retry; holding 5: one
])
def test_it_settles_on_the_quickest_delay_and_only_explores_now_and_then(
        finish_s: float, best_s: float) -> None:
    pacer = TransactionPacer(explore_every=10)
    delays = run(pacer, finish_s, 200)[len(DELAYS_S):]
    assert delays.count(best_s) >= len(delays) * 0.85
    assert set(delays) == set(DELAYS_S)   # the others are still looked at


def _most_used(delays: list[float]) -> float:
    return max(set(delays), key=delays.count)


def test_a_cluster_that_gets_slower_is_followed() -> None:
    pacer = TransactionPacer(explore_every=5)
    assert _most_used(run(pacer, 0.004, 100)[-50:]) == 0.005
    assert _most_used(run(pacer, 0.030, 300)[-100:]) == 0.010


def test_bad_settings_are_refused() -> None:
    for kw in ({"delays_s": ()}, {"explore_every": 1}, {"weight": 0}):
        with pytest.raises(ValueError):
            TransactionPacer(**kw)
