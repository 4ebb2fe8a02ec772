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
