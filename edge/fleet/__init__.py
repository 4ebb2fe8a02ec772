"""The fleet's central side: steer every box from the cluster it already replicates to.

Desired config and commands go out signed (``edge.control``'s envelope, PROTOCOL.md);
each box's reported state comes back on a compacted topic, so the fleet's inventory is
one compacted read. ``edge fleet ...`` (edge/fleet/_cli.py) is a thin layer over this::

    >>> conn = FleetConnection("kafka-1:9092")
    >>> boxes = asyncio.run(read_inventory(conn))
    >>> print(render_status(boxes, now_ms()))

The names that need aiokafka or cryptography are imported on first use (PEP 562), so
``edge --help``, which builds the fleet's parser, does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._connection import FleetConnection
from ._desired import check_desired, read_desired
from ._errors import ClusterError, FleetError, FleetUsageError, PartitionsChanged
from ._inventory import BoxState, box_state, inventory_json, render_status

if TYPE_CHECKING:
    from ._cluster import Record, now_ms, read_compacted
    from ._commands import command_args
    from ._publish import (
        Published,
        control_topic_specs,
        latest_version,
        publish_command,
        publish_desired,
    )

__all__ = [
    "BoxState",
    "ClusterError",
    "FleetConnection",
    "FleetError",
    "FleetUsageError",
    "PartitionsChanged",
    "Published",
    "Record",
    "box_state",
    "check_desired",
    "command_args",
    "control_topic_specs",
    "inventory_json",
    "latest_version",
    "now_ms",
    "publish_command",
    "publish_desired",
    "read_compacted",
    "read_desired",
    "read_inventory",
    "render_status",
]

_LAZY = {"Record": "_cluster", "now_ms": "_cluster", "read_compacted": "_cluster",
         "command_args": "_commands", "Published": "_publish", "control_topic_specs": "_publish",
         "latest_version": "_publish", "publish_command": "_publish",
         "publish_desired": "_publish"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def read_inventory(conn: FleetConnection, topic: str | None = None) -> list[BoxState]:
    """Every box's latest reported state: one compacted read of the reported topic."""
    from edge.control import DEFAULT_TOPICS

    from ._cluster import read_compacted

    latest = await read_compacted(conn, topic or DEFAULT_TOPICS.reported)
    return [box_state(r.key or b"", r.value or b"") for r in latest.values()]
