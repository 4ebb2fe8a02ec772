"""Requests per second by API: the listener's sliding window, on an injected clock."""

from __future__ import annotations

import pytest

from broker.wire import ListenerMetrics
from broker.wire._rates import RatesByKey
from edge._status import render


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_rate_is_over_the_window_and_over_the_time_since_the_start_before_it_filled() -> None:
    clock = FakeClock()
    r = RatesByKey(10, clock)
    for _ in range(4):
        r.add("Produce")
    clock.t += 2
    assert r.per_second() == {"Produce": 2.0}  # 4 over the 2 s since the start
    for _ in range(30):
        clock.t += 1
        r.add("Produce", 5)
        r.add("Fetch")
    assert r.per_second() == {"Produce": 5.0, "Fetch": 1.0}
    clock.t += 5
    assert r.per_second() == {"Produce": 2.5, "Fetch": 0.5}  # half the window silent
    clock.t += 10
    assert r.per_second() == {}  # an API silent for a window is no longer shown


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="got 0"):
        RatesByKey(0)


def test_health_and_status_show_requests_per_second_by_api() -> None:
    clock = FakeClock()
    m = ListenerMetrics(now=clock)
    for _ in range(20):
        clock.t += 1
        for _ in range(4):
            m.request(0, 100)  # Produce
        m.request(1, 50)  # Fetch
        m.request(1, 50)
    snap = m.snapshot()
    assert snap["requests"] == {"Produce": 80, "Fetch": 40}
    assert snap["requests_per_s"] == {"Produce": 4.0, "Fetch": 2.0}
    assert snap["requests_per_s_total"] == 6.0
    line = next(x for x in render({"edge_id": "box", "ok": True, "kafka": snap}).splitlines() if "kafka:" in x)
    assert "6 requests/s (Produce 4/s, Fetch 2/s), 120 requests since start" in line
