"""Errors of stream processing, leaves under ``edge``'s root ``EdgeError``::

    EdgeError (edge/_errors.py)
    └── StreamsError             root of everything edge.streams raises on purpose
        ├── TopologyError        the topology is built wrong (a duplicate processor
        │                        name, a bad window size, a sink without a topic);
        │                        fix the code that builds it (not retriable)
        └── FencedError          another runner of the same topology committed
                                 offsets this one did not expect: it stops rather
                                 than process records twice (not retriable)

A processor that raises on a record is *not* an error of the runner: the record
goes to the dead-letter topic and processing goes on.  Storage errors of the log
come out as ``broker.BrokerError`` (``retriable`` tells whether to try again).
"""

from __future__ import annotations

from edge._errors import EdgeError

__all__ = ["FencedError", "StreamsError", "TopologyError"]


class StreamsError(EdgeError):
    """Root of the errors that ``edge.streams`` raises on purpose."""


class TopologyError(StreamsError, ValueError):
    """A topology that cannot run as built; the message names the processor and the fix."""


class FencedError(StreamsError):
    """Another runner of the same topology moved its offsets: this one must stop."""
