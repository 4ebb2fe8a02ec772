"""A custom topology for the config tests: ``module = "tests.streams._custom_topology:build"``."""

from edge.streams import Topology


def build(threshold: float = 38.0) -> Topology:
    t = Topology("custom-hot")
    t.source("temperature").filter(lambda r: r.value["temperature_c"] >= threshold).to("hot")
    return t


def not_a_topology() -> str:
    return "nope"


def broken(threshold: float) -> Topology:
    raise ValueError(f"threshold {threshold} is silly")


NOT_CALLABLE = 3


FAILURES_LEFT = {"flaky": 0}


def flaky(fail_times: int = 1) -> Topology:
    """Fails to build ``fail_times`` times per process (set FAILURES_LEFT), then builds."""
    if FAILURES_LEFT["flaky"] > 0:
        FAILURES_LEFT["flaky"] -= 1
        raise RuntimeError("flaky build failed on purpose")
    t = Topology("flaky")
    t.source("temperature").to("copied")
    return t
